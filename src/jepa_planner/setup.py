"""ament_python package jepa_planner: installs with colcon on a ROS 2 install, or with pip into the project venv."""

from glob import glob

from setuptools import find_packages, setup

package_name = "jepa_planner"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz")),
        ("share/" + package_name + "/config/goals", glob("config/goals/*.png")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="JEPA agent suite maintainers",
    maintainer_email="maintainers@jepa-agent.dev",
    description="Latent MPC (CEM, MPPI, gradient), cost module, critic, memory, distilled policy, configurator and actor nodes.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "actor_node = jepa_planner.actor_node:main",
            "configurator_node = jepa_planner.configurator_node:main",
            "cost_node = jepa_planner.cost_node:main",
            "memory_node = jepa_planner.memory_node:main",
            "composed_agent = jepa_planner.composed:main",
            "jepa-demo = jepa_planner.demo:main",
            "jepa-evaluate = jepa_planner.evaluate:main",
        ],
        # Plugin points (jepa_common.plugins): the built-ins are registered like any third-party plugin.
        "jepa.planners": [
            "cem = jepa_planner.planners.cem:CEMPlanner",
            "mppi = jepa_planner.planners.mppi:MPPIPlanner",
            "gradient = jepa_planner.planners.gradient:GradientPlanner",
        ],
        "jepa.cost_terms": [
            "goal_distance = jepa_planner.costs:GoalDistanceCost",
            "proprio_goal = jepa_planner.costs:ProprioGoalCost",
            "action_effort = jepa_planner.costs:ActionEffortCost",
            "action_smoothness = jepa_planner.costs:ActionSmoothnessCost",
            "critic = jepa_planner.costs:CriticCost",
            "safety = jepa_planner.costs:SafetyCost",
        ],
        "jepa.planner_builders": ["profiles = jepa_planner.profiles:build_planner"],
    },
)
