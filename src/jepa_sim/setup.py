"""ament_python package jepa_sim: installs with colcon on a ROS 2 install, or with pip into the project venv."""

from glob import glob

from setuptools import find_packages, setup

package_name = "jepa_sim"

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
    description="Built-in simulated worlds, the sim node, and data collection to MCAP bags.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "sim_node = jepa_sim.sim_node:main",
            "jepa-replay = jepa_sim.replay:main",
            "jepa-collect = jepa_sim.collect:main",
            "jepa-sim-node = jepa_sim.sim_node:main",
        ],
        # Plugin points (jepa_common.plugins): factories taking the world's keyword arguments.
        "jepa.worlds": [
            "two_rooms = jepa_sim.worlds:_two_rooms",
            "multi_room = jepa_sim.worlds:_multi_room",
            "point_maze = jepa_sim.worlds:_point_maze",
            "push_t = jepa_sim.worlds:_push_t",
        ],
    },
)
