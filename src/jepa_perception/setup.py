"""ament_python package jepa_perception: installs with colcon on a ROS 2 install, or with pip into the project venv."""

from glob import glob

from setuptools import find_packages, setup

package_name = "jepa_perception"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="JEPA agent suite maintainers",
    maintainer_email="maintainers@jepa-agent.dev",
    description="Perception node: camera image and proprioception to a latent state with the bundle's encoder.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "perception_node = jepa_perception.perception_node:main",
        ],
    },
)
