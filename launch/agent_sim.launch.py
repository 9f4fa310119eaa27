"""The agent against a built-in simulated world: the sim node plus everything in agent.launch.py.

    ros2 launch jepa_planner agent_sim.launch.py bundle:=/path/to/bundle world:=two_rooms mode:=lockstep
    ros2 launch jepa_planner agent_sim.launch.py world:=multi_room bundle:=models/multi_room composed:=true
    ros2 launch jepa_planner agent_sim.launch.py world:=push_t

The world's options come from the params file's ``world_options.<world>`` for the chosen world, or
from ``world_args:='{...}'`` when given. A world named with ``world:=`` brings what the agent needs for it
(jepa_planner.world_defaults), for every one of these arguments left empty: ``bundle`` models/<world> (relative
to the working directory, like the params file's), ``max_command``/``max_command_norm`` the world's own action
bounds (Push-T: 50 px per axis, no norm bound; the params file's 2.45 px are two-rooms'), ``use_proprio`` from
the bundle's manifest, the world's benchmark ``profile`` (Push-T: flat_cem; point_maze: hierarchical) and
``max_steps`` per goal (the demo's: 50 for Push-T's d = 25, 600 for point_maze). A world whose optional extra is
missing stops the launch with one line saying what to install. A lockstep sim repeats its observation until the first
command, so the agent's nodes may start in any order (as they do here, all at once).

The agent's nodes run on sim time (``use_sim_time`` true): the sim publishes ``/clock`` and stamps
its images with it, so stamps, timeouts and rates follow the world, not the wall clock. The sim
itself stays on the wall clock: it is the clock source, and its realtime-mode timer would never
fire if it waited for its own ``/clock``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchContext, LaunchDescription

# Launch arguments that override sim parameters (parameter -> argument); empty keeps the params file's.
SIM_OVERRIDES = {"world": "world", "world_args": "world_args", "mode": "mode"}

# Arguments of agent.launch.py passed through unchanged (use_sim_time is forced to true).
AGENT_ARGUMENTS = ("params_file", "bundle", "namespace", "log_level", "autostart", "profile", "composed", "use_proprio",
                   "max_command", "max_command_norm", "max_steps")


def sim_overrides(arguments: dict[str, str]) -> dict[str, Any]:
    """The sim's parameter dict after the params file: wall clock, and world/mode when given."""
    params: dict[str, Any] = {"use_sim_time": False}
    for param, argument in SIM_OVERRIDES.items():
        if arguments[argument] != "":
            params[param] = arguments[argument]
    return params


def agent_arguments(arguments: dict[str, str]) -> dict[str, str]:
    """The arguments handed to agent.launch.py: ``AGENT_ARGUMENTS`` as given, on sim time; with ``world:=``, the
    empty ones that world decides are filled in (jepa_planner.world_defaults.launch_defaults)."""
    passed = {name: arguments[name] for name in AGENT_ARGUMENTS}
    if arguments["world"]:
        import yaml

        from jepa_planner.world_defaults import launch_defaults

        world_args = yaml.safe_load(arguments["world_args"] or "{}") or {}
        if not isinstance(world_args, dict):
            raise ValueError(f"launch argument 'world_args' = '{arguments['world_args']}' is not a YAML mapping")
        passed = launch_defaults(arguments["world"], world_args, passed)
    return {**passed, "use_sim_time": "true"}


def launch_setup(context: LaunchContext) -> list:
    """The sim node and the agent (agent.launch.py), built once the launch arguments are known."""
    names = sorted(set(SIM_OVERRIDES.values()) | set(AGENT_ARGUMENTS))
    arguments = {name: LaunchConfiguration(name).perform(context) for name in names}
    # agent.launch.py sits beside this file both in the repository and in share/jepa_planner/launch.
    agent_launch = str(Path(__file__).resolve().parent / "agent.launch.py")
    return [
        Node(
            package="jepa_sim",
            executable="jepa-sim-node",
            name="sim",
            namespace=LaunchConfiguration("namespace").perform(context),
            parameters=[LaunchConfiguration("params_file").perform(context), sim_overrides(arguments)],
            arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level").perform(context)],
            output="screen",
        ),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(agent_launch),
                                 launch_arguments=agent_arguments(arguments).items()),
    ]


def generate_launch_description() -> LaunchDescription:
    """Sim arguments, the sim node and the agent (agent.launch.py) on sim time."""
    config = Path(__file__).resolve().parent.parent / "config"
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file", default_value=str(config / "agent.yaml"), description="parameters of every node, sim included"
            ),
            DeclareLaunchArgument(
                "bundle", default_value="",
                description="model bundle directory (empty: the params file's; with world:=, models/<world>)",
            ),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and topic"),
            DeclareLaunchArgument(
                "log_level", default_value="info", choices=["debug", "info", "warn", "error", "fatal"], description="log level"
            ),
            DeclareLaunchArgument(
                "autostart", default_value="true", choices=["true", "false"], description="lifecycle autostart"
            ),
            DeclareLaunchArgument(
                "profile", default_value="",
                description="planner profile (empty: the params file's; with world:=push_t, flat_cem)",
            ),
            DeclareLaunchArgument(
                "world",
                default_value="",
                description="world: two_rooms, multi_room, point_maze, push_t (empty: the params file's)",
            ),
            DeclareLaunchArgument(
                "world_args",
                default_value="",
                description="world options as a YAML mapping, e.g. '{goal_doors: 4}' (empty: the params file's for the world)",
            ),
            DeclareLaunchArgument(
                "composed",
                default_value="false",
                choices=["true", "false"],
                description="run all agent nodes in one process (lower latency)",
            ),
            DeclareLaunchArgument(
                "mode",
                default_value="",
                choices=["", "lockstep", "realtime"],
                description="lockstep: one world step per command (deterministic); realtime: steps at the sim's rate",
            ),
            DeclareLaunchArgument(
                "use_proprio",
                default_value="",
                choices=["", "true", "false"],
                description="perception reads proprio (empty: the params file's; with world:=, the bundle's manifest)",
            ),
            DeclareLaunchArgument(
                "max_command",
                default_value="",
                description="actor's per-axis command bound (empty: the params file's 2.45; with world:=, the world's own)",
            ),
            DeclareLaunchArgument(
                "max_command_norm",
                default_value="",
                description="actor's command norm bound, 0 = none (empty: the params file's; with world:=, the world's own)",
            ),
            DeclareLaunchArgument(
                "max_steps", default_value="",
                description="control steps before a goal times out (empty: the params file's; with world:=, the world's)",
            ),
            OpaqueFunction(function=launch_setup),
        ]
    )
