"""Static checks of launch/*.launch.py and config/agent.rviz.

``launch``/``launch_ros`` are not installable in the project venv, so the launch files are read
with ``ast``: launch arguments used are declared, every node's package/executable is a console
script of that package, node names match config/agent.yaml sections, lifecycle nodes are started
as LifecycleNode, and the pure helpers (override computation) behave. On a ROS install the files
are also imported and ``generate_launch_description()`` is called.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import re
from glob import glob
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH_DIR = REPO / "launch"
LAUNCH_FILES = ("agent.launch.py", "agent_sim.launch.py", "rviz.launch.py")
AGENT_YAML = REPO / "config" / "agent.yaml"
RVIZ_CONFIG = REPO / "config" / "agent.rviz"
NODE_CLASSES = ("Node", "LifecycleNode")
# Executables that hold several nodes: launched without name= (it would rename every node of the process).
COMPOSED_EXECUTABLES = {"composed_agent"}


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and call_name(n) == name]


def first_string_arg(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    for kw in call.keywords:
        if kw.arg == "name" and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def module_literals(tree: ast.Module) -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments (dicts/tuples of constants)."""
    out = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            with contextlib.suppress(ValueError):
                out[stmt.targets[0].id] = ast.literal_eval(stmt.value)
    return out


def declared_arguments(tree: ast.Module) -> set[str]:
    return {first_string_arg(c) for c in calls(tree, "DeclareLaunchArgument")} - {None}


def used_arguments(tree: ast.Module) -> set[str]:
    """LaunchConfiguration("x") names plus the argument names listed in module-level tables."""
    names = {first_string_arg(c) for c in calls(tree, "LaunchConfiguration")} - {None}
    for var, value in module_literals(tree).items():
        if var == "NODE_OVERRIDES":
            names |= {arg for table in value.values() for arg in table.values()}
        elif var.endswith("_OVERRIDES"):
            names |= set(value.values())
        elif var.endswith("_ARGUMENTS"):
            names |= set(value)
    return names


def node_calls(tree: ast.Module) -> list[dict[str, Any]]:
    """Every Node/LifecycleNode call: class, literal package/executable/name, keyword names."""
    out = []
    for cls in NODE_CLASSES:
        for c in calls(tree, cls):
            literal = {kw.arg: kw.value.value for kw in c.keywords if isinstance(kw.value, ast.Constant)}
            out.append({"class": cls, "keywords": {kw.arg for kw in c.keywords}, **literal})
    return out


def console_scripts(package: str) -> dict[str, str]:
    """executable -> "module:function" from src/<package>/setup.py."""
    setup_py = REPO / "src" / package / "setup.py"
    if not setup_py.is_file():
        raise FileNotFoundError(f"{setup_py} does not exist: is '{package}' a package of this repository?")
    text = setup_py.read_text()
    return dict(re.findall(r"""["']\s*([\w.-]+)\s*=\s*([\w.]+:\w+)\s*["']""", text))


def yaml_node_name(key: str) -> str:
    """A params-file section key as the node name it addresses: 'x', '/x' and '/**/x' -> 'x'."""
    return key.removeprefix("/**/").lstrip("/")


def launched_nodes() -> dict[str, dict[str, Any]]:
    """Node name -> its launch call (package, executable, class) over all launch files, ours only."""
    out = {}
    for file in LAUNCH_FILES:
        for node in node_calls(parse(LAUNCH_DIR / file)):
            if str(node.get("package", "")).startswith("jepa_") and node.get("executable") not in COMPOSED_EXECUTABLES:
                out[node["name"]] = {**node, "file": file}
    return out


def node_module(node: dict[str, Any]) -> str:
    """The Python module behind a launched node's executable."""
    return console_scripts(node["package"])[node["executable"]].split(":")[0]


def load_helpers(file: str, names: tuple[str, ...]) -> dict[str, Any]:
    """Execute only the named module-level functions/assignments of a launch file (no launch import)."""
    tree = parse(LAUNCH_DIR / file)
    keep = [
        s
        for s in tree.body
        if (isinstance(s, ast.FunctionDef) and s.name in names)
        or (isinstance(s, ast.Assign) and any(isinstance(t, ast.Name) and t.id in names for t in s.targets))
    ]
    namespace: dict[str, Any] = {"Any": Any}
    exec(compile(ast.Module(body=keep, type_ignores=[]), file, "exec"), namespace)
    missing = [n for n in names if n not in namespace]
    assert not missing, f"{file} does not define {missing}"
    return namespace


@pytest.mark.parametrize("file", LAUNCH_FILES)
def test_defines_generate_launch_description(file: str) -> None:
    tree = parse(LAUNCH_DIR / file)
    functions = {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef)}
    assert "generate_launch_description" in functions, f"{file} has no generate_launch_description()"
    assert not functions["generate_launch_description"].args.args, "generate_launch_description() takes no arguments"


@pytest.mark.parametrize("file", LAUNCH_FILES)
def test_used_launch_arguments_are_declared(file: str) -> None:
    tree = parse(LAUNCH_DIR / file)
    undeclared = used_arguments(tree) - declared_arguments(tree)
    assert not undeclared, f"{file} uses launch arguments it never declares: {sorted(undeclared)}"


@pytest.mark.parametrize("file", LAUNCH_FILES)
def test_nodes_are_console_scripts_of_their_packages(file: str) -> None:
    nodes = node_calls(parse(LAUNCH_DIR / file))
    assert nodes, f"{file} starts no node"
    for node in nodes:
        composed = node.get("executable") in COMPOSED_EXECUTABLES
        for key in ("package", "executable") if composed else ("package", "executable", "name"):
            assert isinstance(node.get(key), str), f"{file}: a {node['class']} has no literal {key}="
        if composed:
            assert "name" not in node["keywords"], f"{file}: {node['executable']} must not get name= (it renames every node)"
        if node["package"].startswith("jepa_"):
            scripts = console_scripts(node["package"])
            assert node["executable"] in scripts, (
                f"{file}: executable '{node['executable']}' is not a console script of {node['package']} "
                f"(setup.py declares {sorted(scripts)})"
            )
        if node["class"] == "LifecycleNode":
            # launch_ros >= Humble requires namespace= on LifecycleNode.
            assert "namespace" in node["keywords"], f"{file}: LifecycleNode '{node['name']}' has no namespace="


def test_agent_launch_starts_the_agent_nodes_with_the_right_classes() -> None:
    """Every agent node once; LifecycleNode exactly for rclpy lifecycle nodes (managed state)."""
    from rclpy.lifecycle import LifecycleNode as RclpyLifecycleNode
    from rclpy.node import Node as RclpyNode

    nodes = {n["name"]: n for n in node_calls(parse(LAUNCH_DIR / "agent.launch.py")) if "name" in n}
    assert set(nodes) == {"perception", "world_model", "actor", "configurator", "cost", "memory"}
    for name, node in nodes.items():
        module = importlib.import_module(node_module(node))
        classes = [
            c
            for c in vars(module).values()
            if isinstance(c, type) and issubclass(c, RclpyNode) and c.__module__ == module.__name__
        ]
        assert len(classes) == 1, f"{module.__name__} defines {len(classes)} node classes, expected 1"
        is_lifecycle = issubclass(classes[0], RclpyLifecycleNode)
        assert (node["class"] == "LifecycleNode") == is_lifecycle, (
            f"'{name}' is launched as {node['class']} but {classes[0].__name__} is {'' if is_lifecycle else 'not '}a lifecycle node"
        )
    overrides = module_literals(parse(LAUNCH_DIR / "agent.launch.py"))["NODE_OVERRIDES"]
    assert set(overrides) == set(nodes), "NODE_OVERRIDES must list exactly the launched nodes"


def test_node_names_match_params_file_sections() -> None:
    sections = {yaml_node_name(k) for k in yaml.safe_load(AGENT_YAML.read_text()) if k != "/**"}
    names = set(launched_nodes())
    assert names - sections == set(), f"launched nodes without a section in {AGENT_YAML.name}: {sorted(names - sections)}"
    assert sections - names == set(), f"{AGENT_YAML.name} sections for nodes no launch file starts: {sorted(sections - names)}"


def test_agent_sim_passes_only_arguments_agent_launch_declares() -> None:
    agent_args = declared_arguments(parse(LAUNCH_DIR / "agent.launch.py"))
    passed = set(module_literals(parse(LAUNCH_DIR / "agent_sim.launch.py"))["AGENT_ARGUMENTS"]) | {"use_sim_time"}
    assert passed <= agent_args, f"agent_sim passes arguments agent.launch.py does not declare: {sorted(passed - agent_args)}"
    required = {"params_file", "bundle", "use_sim_time", "namespace", "log_level", "autostart", "profile"}
    assert required <= agent_args, f"agent.launch.py lacks the conventional arguments {sorted(required - agent_args)}"


def test_node_overrides_keep_params_file_values_for_empty_arguments() -> None:
    h = load_helpers("agent.launch.py", ("NODE_OVERRIDES", "BOOL_PARAMETERS", "FLOAT_PARAMETERS", "INT_PARAMETERS",
                                         "parse_bool", "parse_float", "parse_int", "node_overrides"))
    base = {"bundle": "", "autostart": "true", "use_sim_time": "false", "profile": "", "profiles_file": "/p.yaml",
            "goals_file": "/g.yaml", "use_proprio": "", "max_command": "", "max_command_norm": "", "max_steps": ""}
    assert h["node_overrides"]("actor", base) == {"use_sim_time": False, "autostart": True, "profiles_file": "/p.yaml"}
    given = {**base, "bundle": "/b", "profile": "flat_mppi", "autostart": "False", "use_sim_time": "true"}
    assert h["node_overrides"]("configurator", given) == {
        "use_sim_time": True,
        "bundle": "/b",
        "autostart": False,
        "default_profile": "flat_mppi",
        "profiles_file": "/p.yaml",
        "goals_file": "/g.yaml",
    }
    assert h["node_overrides"]("memory", given) == {"use_sim_time": True}
    with pytest.raises(ValueError, match="autostart"):
        h["node_overrides"]("actor", {**base, "autostart": "maybe"})
    # a world with larger actions (Push-T): typed bounds for the actor, proprio for perception
    pusht = {**base, "use_proprio": "true", "max_command": "50", "max_command_norm": "0"}
    assert h["node_overrides"]("actor", pusht) == {"use_sim_time": False, "autostart": True, "profiles_file": "/p.yaml",
                                                   "max_command": 50.0, "max_command_norm": 0.0}
    assert h["node_overrides"]("perception", pusht) == {"use_sim_time": False, "autostart": True, "use_proprio": True}
    with pytest.raises(ValueError, match="max_command"):
        h["node_overrides"]("actor", {**base, "max_command": "fast"})
    assert h["node_overrides"]("configurator", {**base, "max_steps": "600"})["max_steps"] == 600
    with pytest.raises(ValueError, match="max_steps"):
        h["node_overrides"]("configurator", {**base, "max_steps": "1.5"})
    with pytest.raises(ValueError, match="planner"):
        h["node_overrides"]("planner", base)


def test_namespace_problems_flag_bare_node_sections() -> None:
    h = load_helpers("agent.launch.py", ("namespace_problems",))
    doc = {"/**": {}, "actor": {}, "/**/cost": {}, "/robot1/memory": {}}
    assert h["namespace_problems"](doc, "", ["actor", "cost", "memory"]) == []
    problems = h["namespace_problems"](doc, "robot1", ["actor", "cost", "memory"])
    assert len(problems) == 1 and "'actor'" in problems[0] and "/**/actor" in problems[0]


def test_sim_overrides() -> None:
    h = load_helpers("agent_sim.launch.py", ("SIM_OVERRIDES", "sim_overrides"))
    assert h["sim_overrides"]({"world": "", "world_args": "", "mode": ""}) == {"use_sim_time": False}
    assert h["sim_overrides"]({"world": "push_t", "world_args": "{image_size: 96}", "mode": "realtime"}) == {
        "use_sim_time": False,
        "world": "push_t",
        "world_args": "{image_size: 96}",
        "mode": "realtime",
    }


def agent_arguments(**given: str) -> dict[str, str]:
    """agent_sim.launch.py's agent_arguments() for these launch arguments (the rest empty, as declared)."""
    h = load_helpers("agent_sim.launch.py", ("AGENT_ARGUMENTS", "agent_arguments"))
    arguments = {name: "" for name in (*h["AGENT_ARGUMENTS"], "world", "world_args")}
    return h["agent_arguments"]({**arguments, **given})


def test_without_world_the_agent_gets_the_arguments_as_given(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    passed = agent_arguments(bundle="models/two_rooms", max_command="1.5")
    assert passed["use_sim_time"] == "true" and passed["bundle"] == "models/two_rooms" and passed["max_command"] == "1.5"
    assert passed["profile"] == passed["use_proprio"] == passed["max_command_norm"] == passed["max_steps"] == ""


def test_world_push_t_alone_brings_its_bundle_bounds_proprio_and_profile(monkeypatch) -> None:
    """world:=push_t is enough: the Push-T bundle, its +-50 px actions, proprio on, flat_cem; given values win."""
    monkeypatch.chdir(REPO)
    try:
        passed = agent_arguments(world="push_t")
    except ImportError as exc:
        assert "pip install -r requirements/extras-pusht.txt" in str(exc)
        pytest.skip("push_t extra not installed: pip install -r requirements/extras-pusht.txt")
    assert passed["bundle"] == "models/push_t" and (REPO / passed["bundle"] / "manifest.json").is_file()
    assert float(passed["max_command"]) == 50.0 and float(passed["max_command_norm"]) == 0.0
    assert passed["use_proprio"] == "true" and passed["profile"] == "flat_cem" and passed["use_sim_time"] == "true"
    assert passed["max_steps"] == "50"
    mine = agent_arguments(world="push_t", profile="push_t_cem", max_command="20", use_proprio="false")
    assert (mine["profile"], mine["max_command"], mine["use_proprio"]) == ("push_t_cem", "20", "false")


def test_world_two_rooms_alone_keeps_the_params_files_profile(monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    passed = agent_arguments(world="two_rooms", world_args="{goal_in_other_room: true}")
    assert passed["bundle"] == "models/two_rooms" and passed["use_proprio"] == "false" and passed["profile"] == ""
    assert float(passed["max_command"]) == float(passed["max_command_norm"]) == 2.45
    with pytest.raises(ValueError, match="world_args"):
        agent_arguments(world="two_rooms", world_args="[1, 2]")


def test_a_world_bundle_that_cannot_be_read_leaves_proprio_to_the_params_file(tmp_path, monkeypatch) -> None:
    """No bundle at models/<world> here: use_proprio stays empty and the nodes name the missing bundle."""
    monkeypatch.chdir(tmp_path)
    assert agent_arguments(world="two_rooms")["use_proprio"] == ""


@pytest.mark.parametrize("world", ["two_rooms", "multi_room", "point_maze", "push_t"])
def test_world_argument_alone_picks_that_worlds_options_from_the_params_file(world: str) -> None:
    """world:=NAME with the shipped agent.yaml: the sim gets NAME's own options, never another world's."""
    from jepa_sim.sim_node import build_world, node_section_params, world_options

    h = load_helpers("agent_sim.launch.py", ("SIM_OVERRIDES", "sim_overrides"))
    params = {**node_section_params(yaml.safe_load(AGENT_YAML.read_text())),
              **h["sim_overrides"]({"world": world, "world_args": "", "mode": ""})}
    assert world_options(params)[0] == f"world_options.{world}"
    try:
        built = build_world(params)
    except ValueError as exc:
        if "not available" in str(exc):
            pytest.skip(f"{world}: optional extras not installed")
        raise
    assert built.spec.name == world


def test_every_built_in_world_has_options_in_the_params_file() -> None:
    from jepa_sim.worlds import world_names

    sim = yaml.safe_load(AGENT_YAML.read_text())["/**/sim"]["ros__parameters"]
    assert sim["world_args"] == "", "a non-empty world_args would apply to every world (world:=NAME would break)"
    assert set(sim["world_options"]) == set(world_names())


def test_agent_sim_declares_the_new_arguments_and_passes_composed() -> None:
    sim_tree = parse(LAUNCH_DIR / "agent_sim.launch.py")
    assert {"world", "world_args", "mode", "composed"} <= declared_arguments(sim_tree)
    assert "composed" in module_literals(sim_tree)["AGENT_ARGUMENTS"]
    assert "composed" in declared_arguments(parse(LAUNCH_DIR / "agent.launch.py"))


def test_composed_launch_runs_the_composed_executable_with_every_agent_node() -> None:
    """composed:=true starts composed_agent, which composes exactly the nodes agent.launch.py starts."""
    from jepa_planner.composed import NODES

    tree = parse(LAUNCH_DIR / "agent.launch.py")
    composed = [n for n in node_calls(tree) if n.get("executable") in COMPOSED_EXECUTABLES]
    assert len(composed) == 1 and composed[0]["package"] == "jepa_planner" and "namespace" in composed[0]["keywords"]
    assert console_scripts("jepa_planner")["composed_agent"] == "jepa_planner.composed:main"
    separate = {n["name"]: n for n in node_calls(tree) if "name" in n}
    assert set(NODES) == set(separate)
    for name, (module, _cls) in NODES.items():
        assert node_module(separate[name]) == module, f"composed.py builds {name} from {module}, the launch from another module"


def test_composed_overrides_file_has_one_section_per_node(tmp_path) -> None:
    h = load_helpers(
        "agent.launch.py", ("NODE_OVERRIDES", "BOOL_PARAMETERS", "FLOAT_PARAMETERS", "INT_PARAMETERS", "parse_bool",
                            "parse_float", "parse_int", "node_overrides", "composed_overrides_file")
    )
    h["yaml"] = yaml
    arguments = {"bundle": "/b", "autostart": "true", "use_sim_time": "true", "profile": "flat_mppi",
                 "profiles_file": "/p.yaml", "goals_file": "/g.yaml", "use_proprio": "", "max_command": "", "max_command_norm": "",
                 "max_steps": ""}
    path = Path(h["composed_overrides_file"](arguments))
    try:
        doc = yaml.safe_load(path.read_text())
    finally:
        path.unlink()
    assert set(doc) == {f"/**/{name}" for name in h["NODE_OVERRIDES"]}
    assert doc["/**/actor"]["ros__parameters"]["profile"] == "flat_mppi"
    assert doc["/**/configurator"]["ros__parameters"]["default_profile"] == "flat_mppi"
    assert doc["/**/memory"]["ros__parameters"] == {"use_sim_time": True}


def test_a_node_exiting_by_itself_shuts_the_launch_down_with_a_reason() -> None:
    """The global OnProcessExit handler: exit code -> one clear line; nothing while already shutting down."""
    tree = parse(LAUNCH_DIR / "agent.launch.py")
    handlers = [c for c in calls(tree, "OnProcessExit")]
    assert len(handlers) == 1 and not any(kw.arg == "target_action" for kw in handlers[0].keywords), (
        "one global handler: it must also cover the sim of agent_sim.launch.py"
    )
    assert calls(tree, "RegisterEventHandler")
    h = load_helpers("agent.launch.py", ("exit_message",))
    message = h["exit_message"]("perception_node-1", 1)
    assert "perception_node-1" in message and "configure" in message and "shutting the launch down" in message
    assert "parameters" in h["exit_message"]("sim-1", 2)
    assert "signal 9" in h["exit_message"]("actor_node-3", -9)

    # a failed node ends the launch with exit code 1: launch gives 1 only for an exception from a handler
    tree_names = {s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.ClassDef))}
    assert "NodeFailedError" in tree_names
    handler = next(s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "shutdown_on_exit")
    raised = [n for n in ast.walk(handler) if isinstance(n, ast.Raise)]
    assert raised and "NodeFailedError" in ast.unparse(raised[0]), "shutdown_on_exit must raise NodeFailedError for a failed node"


def test_jepa_planner_installs_what_the_launch_files_read() -> None:
    """setup.py data_files globs (run in src/jepa_planner, through its launch/ and config/ links) cover the files."""
    pkg = REPO / "src" / "jepa_planner"
    patterns = re.findall(r"""glob\(\s*["']([^"']+)["']\s*\)""", (pkg / "setup.py").read_text())
    installed = {Path(p).as_posix() for pattern in patterns for p in glob(str(pkg / pattern))}
    needed = [f"launch/{f}" for f in LAUNCH_FILES] + ["config/agent.yaml", "config/planner_profiles.yaml", "config/agent.rviz"]
    missing = [f for f in needed if (pkg / f).as_posix() not in installed]
    assert not missing, f"src/jepa_planner/setup.py data_files do not install {missing}"


@pytest.mark.parametrize("file", LAUNCH_FILES)
def test_generate_launch_description_runs_on_a_ros_install(file: str) -> None:
    # The repository's launch/ directory is itself importable as a namespace package named "launch"
    # (from the repo root): only a real package (with an origin) is the ROS one.
    launch_spec = importlib.util.find_spec("launch")
    if launch_spec is None or launch_spec.origin is None or importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch/launch_ros are not installed here (they come with a ROS 2 install); static checks only")
    spec = importlib.util.spec_from_file_location(file.replace(".", "_"), LAUNCH_DIR / file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from launch import LaunchDescription

    assert isinstance(module.generate_launch_description(), LaunchDescription)


# ---------------------------------------------------------------------------------------------- rviz


def published_topics() -> set[str]:
    """Topics the suite's nodes publish: literal names in create_(lifecycle_)publisher calls."""
    topics = set()
    for node in launched_nodes().values():
        source = Path(importlib.util.find_spec(node_module(node)).origin)
        for c in ast.walk(parse(source)):
            if (
                isinstance(c, ast.Call)
                and call_name(c) in ("create_publisher", "create_lifecycle_publisher")
                and len(c.args) >= 2
            ) and isinstance(c.args[1], ast.Constant):
                topics.add(c.args[1].value)
    return topics


def rviz_displays() -> list[dict[str, Any]]:
    config = yaml.safe_load(RVIZ_CONFIG.read_text())
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == "map"
    return config["Visualization Manager"]["Displays"]


def test_rviz_topics_are_published_by_the_nodes() -> None:
    topics = published_topics()
    assert {"camera/image_raw", "plan_path", "candidates", "imagined", "odom"} <= topics, "node sources changed: update the test"
    for display in rviz_displays():
        if "Topic" in display:
            assert display["Topic"]["Value"] in topics, f"rviz display '{display['Name']}' shows a topic no node publishes"


def test_rviz_shows_the_agent_view() -> None:
    shown = {(d["Class"], d["Topic"]["Value"]) for d in rviz_displays() if "Topic" in d}
    expected = {
        ("rviz_default_plugins/Image", "camera/image_raw"),
        ("rviz_default_plugins/Image", "imagined"),
        ("rviz_default_plugins/Path", "plan_path"),
        ("rviz_default_plugins/MarkerArray", "candidates"),
        ("rviz_default_plugins/Odometry", "odom"),
    }
    assert expected <= shown, f"agent.rviz lacks {sorted(expected - shown)}"


def test_torch_thread_budgets_per_node() -> None:
    h = load_helpers("agent.launch.py", ("ONE_THREAD_NODES", "node_env"))
    assert h["node_env"]("cost", 8) == {"OMP_NUM_THREADS": "1"}
    assert h["node_env"]("actor", 8) == {"OMP_NUM_THREADS": "4"}
    assert h["node_env"]("actor", 1) == {"OMP_NUM_THREADS": "1"}
