"""rviz2 with the agent's view (config/agent.rviz): camera, imagined frames, plan, candidates, odometry.

    ros2 launch jepa_planner rviz.launch.py
    ros2 launch jepa_planner rviz.launch.py namespace:=robot1 use_sim_time:=true

The displays use relative topic names, so rviz2 started in the agent's namespace finds its topics.
Agent status is a custom message that rviz2 cannot show: use ``ros2 topic echo agent_status``.
"""

from __future__ import annotations

from pathlib import Path

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    """Launch arguments and the rviz2 node."""
    # config/ is beside launch/ both in the repository and in share/jepa_planner.
    rviz_config = Path(__file__).resolve().parent.parent / "config" / "agent.rviz"
    return LaunchDescription(
        [
            DeclareLaunchArgument("rviz_config", default_value=str(rviz_config), description="rviz2 config file"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the agent's topics"),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                choices=["true", "false"],
                description="follow /clock (simulation, bag replay)",
            ),
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                namespace=LaunchConfiguration("namespace"),
                arguments=["-d", LaunchConfiguration("rviz_config")],
                parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}],
                output="screen",
            ),
        ]
    )
