"""The agent's nodes (no simulator): perception, world model, actor, configurator, cost, memory.

    ros2 launch jepa_planner agent.launch.py bundle:=/path/to/bundle
    ros2 launch jepa_planner agent.launch.py namespace:=robot1 use_sim_time:=true log_level:=debug
    ros2 launch jepa_planner agent.launch.py composed:=true     # all nodes in one process (lower latency)

Every node reads ``params_file`` (one ``node_name: ros__parameters:`` section per node) and then
the overrides given by the launch arguments; an empty ``bundle`` or ``profile`` keeps the params
file's value. The lifecycle nodes configure and activate themselves when ``autostart`` is true
(their own ``autostart`` parameter), so no lifecycle manager is needed; with ``autostart:=false``
they wait in the unconfigured state for ``ros2 lifecycle set <node> configure``.

With ``composed:=true`` the same nodes run in one process (``composed_agent``, see
jepa_planner/composed.py) with the same params file; the per-node overrides then go in a generated
params file with one ``/**/<node>`` section per node, as one process cannot take per-node ``-p``.

Any process of the launch (this file's nodes, and the sim of agent_sim.launch.py, which includes it)
that exits by itself, e.g. a lifecycle node that failed to configure (exit code 1), shuts the whole
launch down with one error line saying which and why, instead of leaving it running half-dead; the
launch then exits with code 1 when that process failed (0 when it stopped cleanly, and after Ctrl-C).

Parameter overrides are computed in Python (an ``OpaqueFunction``) because a launch argument left
empty must leave the params file's value alone, which a plain substitution cannot express.
tests/test_launch_files.py checks this file statically (no ``launch`` package is needed there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit, OnShutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

from launch import LaunchContext, LaunchDescription

# Launch arguments that override node parameters: node name (= params-file section) ->
# {parameter name: launch argument}. Only parameters the node declares (tests check it);
# use_sim_time is added for every node by node_overrides().
NODE_OVERRIDES = {
    "perception": {"bundle": "bundle", "autostart": "autostart", "use_proprio": "use_proprio"},
    "world_model": {"bundle": "bundle", "autostart": "autostart"},
    "actor": {
        "bundle": "bundle",
        "autostart": "autostart",
        "profile": "profile",
        "profiles_file": "profiles_file",
        "max_command": "max_command",
        "max_command_norm": "max_command_norm",
    },
    "configurator": {
        "bundle": "bundle",
        "autostart": "autostart",
        "default_profile": "profile",
        "profiles_file": "profiles_file",
        "goals_file": "goals_file",
        "max_steps": "max_steps",
    },
    "cost": {"bundle": "bundle", "autostart": "autostart", "profile": "profile", "profiles_file": "profiles_file"},
    "memory": {},
}

# Torch (OpenMP) threads per node: the nodes whose torch work is batch 1 (one latent, one plan) get one
# thread each, so their per-frame work does not take the actor's cores; the actor, which plans, half the
# cores (on a busy 2-core machine two OpenMP threads made its replans 5-30x slower). The composed process
# sets the same budgets per node itself (jepa_planner/composed.py).
ONE_THREAD_NODES = ("perception", "world_model", "configurator", "cost", "memory")


def node_env(node_name: str, cpu_count: int | None = None) -> dict[str, str]:
    """Extra environment of a separately launched node: its torch thread budget."""
    import os

    if node_name in ONE_THREAD_NODES:
        return {"OMP_NUM_THREADS": "1"}
    return {"OMP_NUM_THREADS": str(max(1, (cpu_count or os.cpu_count() or 2) // 2))}


# Parameters whose launch argument is text "true"/"false" but whose ROS type is bool: a str value in
# a launch_ros parameter dict stays a string parameter, which the node would reject.
BOOL_PARAMETERS = ("autostart", "use_sim_time", "use_proprio")
# Likewise for double parameters (a number written as text must reach the node as a float).
FLOAT_PARAMETERS = ("max_command", "max_command_norm")
# ... and integer ones.
INT_PARAMETERS = ("max_steps",)


def parse_bool(name: str, text: str) -> bool:
    """A launch argument's "true"/"false" text as a bool; anything else is a ValueError naming it."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"launch argument '{name}' = '{text}' is not a boolean; use true or false")


def parse_float(name: str, text: str) -> float:
    """A launch argument's number text as a float; anything else is a ValueError naming it."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"launch argument '{name}' = '{text}' is not a number") from None


def parse_int(name: str, text: str) -> int:
    """A launch argument's integer text as an int; anything else is a ValueError naming it."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"launch argument '{name}' = '{text}' is not an integer") from None


def node_overrides(node_name: str, arguments: dict[str, str]) -> dict[str, Any]:
    """The parameter dict given to ``node_name`` after the params file.

    Args:
        node_name: a key of NODE_OVERRIDES.
        arguments: launch argument name -> its text value.

    Returns:
        {parameter: value}: use_sim_time always; every other override only when its argument is
        non-empty (empty = keep the params file's value). Booleans are real bools.
    """
    if node_name not in NODE_OVERRIDES:
        raise ValueError(f"no launch overrides are defined for node '{node_name}'; known: {sorted(NODE_OVERRIDES)}")
    params: dict[str, Any] = {"use_sim_time": parse_bool("use_sim_time", arguments["use_sim_time"])}
    for param, argument in NODE_OVERRIDES[node_name].items():
        text = arguments[argument]
        if text == "":
            continue
        if param in BOOL_PARAMETERS:
            params[param] = parse_bool(argument, text)
        elif param in FLOAT_PARAMETERS:
            params[param] = parse_float(argument, text)
        elif param in INT_PARAMETERS:
            params[param] = parse_int(argument, text)
        else:
            params[param] = text
    return params


def namespace_problems(params_doc: Any, namespace: str, node_names: list[str]) -> list[str]:
    """Params-file sections that a namespaced node would silently miss.

    A section keyed by a bare node name (``perception:``) only matches the node ``/perception``
    (checked with rclpy: it is not applied under ``__ns:=/robot1``); ``/**/perception:`` or
    ``/<namespace>/perception:`` match in the namespace. Returns one message per such section.
    """
    if not namespace.strip("/") or not isinstance(params_doc, dict):
        return []
    ns = "/" + namespace.strip("/")
    return [
        f"params file section '{key}' does not apply to node '{ns}/{key}'; key it '/**/{key}' or '{ns}/{key}'"
        for key in params_doc
        if key in node_names
    ]


def exit_message(process: str, returncode: int) -> str:
    """Why the launch shuts down when ``process`` exited by itself with ``returncode``."""
    if returncode == 1:
        why = "it failed to configure or activate (bad bundle, profile or file: see its error above)"
    elif returncode == 2:
        why = "its parameters are invalid (see its error above)"
    elif returncode < 0:
        why = f"it was killed by signal {-returncode}"
    else:
        why = "it stopped on its own"
    return f"{process} exited with code {returncode}: {why}; shutting the launch down"


def shutdown_on_exit(event: Any, context: LaunchContext) -> list:
    """OnProcessExit callback: a node that ends while the launch is running takes the launch down with it."""
    if context.is_shutdown:  # Ctrl-C or another node's exit: already going down
        return []
    import launch.logging

    message = exit_message(event.process_name, event.returncode)
    if event.returncode != 0:
        # launch ends with exit code 0 after a Shutdown action; an exception is its only way to end with
        # 1 (it logs "Caught exception in launch ...: <message>" and shuts down), so that `ros2 launch`
        # in a script or a systemd unit reports the failed node
        raise NodeFailedError(message)
    launch.logging.get_logger("launch").error(message)
    return [Shutdown(reason=message)]


class NodeFailedError(RuntimeError):
    """A node of the launch ended with an error: the launch shuts down and exits with code 1."""


def composed_overrides_file(arguments: dict[str, str]) -> str:
    """A params file with each composed node's launch overrides in its own ``/**/<node>`` section."""
    import tempfile

    sections = {f"/**/{name}": {"ros__parameters": node_overrides(name, arguments)} for name in NODE_OVERRIDES}
    with tempfile.NamedTemporaryFile("w", prefix="jepa_composed_", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(sections, f)
    return f.name


def launch_setup(context: LaunchContext) -> list:
    """The node actions, built once the launch arguments are known."""
    argument_names = {arg for table in NODE_OVERRIDES.values() for arg in table.values()} | {"use_sim_time"}
    arguments = {name: LaunchConfiguration(name).perform(context) for name in sorted(argument_names)}
    params_file = LaunchConfiguration("params_file").perform(context)
    namespace = LaunchConfiguration("namespace").perform(context)
    log_level = LaunchConfiguration("log_level").perform(context)
    if not Path(params_file).is_file():
        raise FileNotFoundError(f"launch argument params_file = '{params_file}' is not a file; give params_file:=<agent.yaml>")
    problems = namespace_problems(yaml.safe_load(Path(params_file).read_text()), namespace, list(NODE_OVERRIDES))
    if problems:
        raise ValueError(f"{params_file}: " + "; ".join(problems))
    log_args = ["--ros-args", "--log-level", log_level]
    if parse_bool("composed", LaunchConfiguration("composed").perform(context)):
        # No name=: it would rename every node of the process. Executor threads per node, torch threads: composed.py.
        overrides = composed_overrides_file(arguments)
        return [
            Node(
                package="jepa_planner",
                executable="composed_agent",
                namespace=namespace,
                parameters=[params_file, overrides],
                arguments=log_args,
                output="screen",
            ),
            # the generated file goes with the launch (the node has read it long before)
            RegisterEventHandler(OnShutdown(on_shutdown=lambda event, context: Path(overrides).unlink(missing_ok=True))),
        ]
    return [
        LifecycleNode(
            package="jepa_perception",
            executable="perception_node",
            name="perception",
            namespace=namespace,
            parameters=[params_file, node_overrides("perception", arguments)],
            arguments=log_args,
            additional_env=node_env("perception"),
            output="screen",
        ),
        LifecycleNode(
            package="jepa_world_model",
            executable="world_model_node",
            name="world_model",
            namespace=namespace,
            parameters=[params_file, node_overrides("world_model", arguments)],
            arguments=log_args,
            additional_env=node_env("world_model"),
            output="screen",
        ),
        LifecycleNode(
            package="jepa_planner",
            executable="actor_node",
            name="actor",
            namespace=namespace,
            parameters=[params_file, node_overrides("actor", arguments)],
            arguments=log_args,
            additional_env=node_env("actor"),
            output="screen",
        ),
        LifecycleNode(
            package="jepa_planner",
            executable="configurator_node",
            name="configurator",
            namespace=namespace,
            parameters=[params_file, node_overrides("configurator", arguments)],
            arguments=log_args,
            additional_env=node_env("configurator"),
            output="screen",
        ),
        LifecycleNode(
            package="jepa_planner",
            executable="cost_node",
            name="cost",
            namespace=namespace,
            parameters=[params_file, node_overrides("cost", arguments)],
            arguments=log_args,
            additional_env=node_env("cost"),
            output="screen",
        ),
        Node(
            package="jepa_planner",
            executable="memory_node",
            name="memory",
            namespace=namespace,
            parameters=[params_file, node_overrides("memory", arguments)],
            arguments=log_args,
            additional_env=node_env("memory"),
            output="screen",
        ),
    ]


def config_dir() -> Path:
    """share/jepa_planner/config when the package is installed, else the repository's config/."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:  # not a ROS install: the repository layout (config/ beside launch/)
        return Path(__file__).resolve().parent.parent / "config"
    try:
        return Path(get_package_share_directory("jepa_planner")) / "config"
    except PackageNotFoundError:
        return Path(__file__).resolve().parent.parent / "config"


def generate_launch_description() -> LaunchDescription:
    """Launch arguments and the agent's nodes."""
    config = config_dir()
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file", default_value=str(config / "agent.yaml"), description="parameters of every node (agent.yaml)"
            ),
            DeclareLaunchArgument(
                "bundle", default_value="", description="model bundle directory (empty: the params file's 'bundle')"
            ),
            DeclareLaunchArgument(
                "use_sim_time",
                default_value="false",
                choices=["true", "false"],
                description="follow /clock (simulation, bag replay)",
            ),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of every node and topic"),
            DeclareLaunchArgument(
                "log_level",
                default_value="info",
                choices=["debug", "info", "warn", "error", "fatal"],
                description="log level of every node",
            ),
            DeclareLaunchArgument(
                "autostart",
                default_value="true",
                choices=["true", "false"],
                description="lifecycle nodes configure and activate themselves (false: wait for a lifecycle manager)",
            ),
            DeclareLaunchArgument(
                "profile",
                default_value="",
                description="planner profile of actor and cost, configurator's default (empty: the params file's)",
            ),
            DeclareLaunchArgument(
                "profiles_file",
                default_value=str(config / "planner_profiles.yaml"),
                description="planner profiles YAML read by actor, configurator and cost",
            ),
            DeclareLaunchArgument(
                "goals_file",
                default_value=str(config / "goals.yaml"),
                description="named goals (images or latents) the configurator accepts in ReachGoal",
            ),
            DeclareLaunchArgument(
                "composed",
                default_value="false",
                choices=["true", "false"],
                description="run all agent nodes in one process (jepa_planner composed_agent): lower latency",
            ),
            DeclareLaunchArgument(
                "use_proprio",
                default_value="",
                choices=["", "true", "false"],
                description="perception reads proprio on 'proprio' (true for bundles that fuse it; empty: the params file's)",
            ),
            DeclareLaunchArgument(
                "max_command", default_value="", description="actor's per-axis command bound (empty: the params file's)"
            ),
            DeclareLaunchArgument(
                "max_command_norm", default_value="", description="actor's command norm bound, 0 = none (empty: the params file's)"
            ),
            DeclareLaunchArgument(
                "max_steps", default_value="",
                description="configurator's control steps before a goal times out, 0 = no limit (empty: the params file's)",
            ),
            RegisterEventHandler(OnProcessExit(on_exit=shutdown_on_exit)),
            OpaqueFunction(function=launch_setup),
        ]
    )
