"""ament_python package jepa_common: installs with colcon on a ROS 2 install, or with pip into the project venv."""

from setuptools import find_packages, setup

package_name = "jepa_common"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="JEPA agent suite maintainers",
    maintainer_email="maintainers@jepa-agent.dev",
    description="Shared layer of the suite: ROS helpers, episode types and bag schema, message/array converters, plugin registry.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
)
