"""The params files and launch overrides agree with the parameters the nodes declare (their PARAMS).

Semantics tested here: a node applies a params-file value only for a parameter it declares, and
``declare_params`` refuses at start a key its own section sets but it does not declare; a value of
the wrong type fails at start (an int for a double parameter is accepted as that double); ranges
and choices are checked by ``declare_params``. A
``/**`` key reaches every node; nodes that do not declare it ignore it, which is harmless, so the
meaningful checks are that some launched node declares it and that every declaring node accepts
its value.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from jepa_common.ros_common import Param, check_param

REPO = Path(__file__).resolve().parents[1]
AGENT_YAML = REPO / "config" / "agent.yaml"
SIM_YAML = REPO / "src" / "jepa_sim" / "config" / "sim.yaml"
IMPLICIT = {"use_sim_time"}  # declared by rclpy itself on every node


def _launch_test_module() -> Any:
    """tests/test_launch_files.py (its AST helpers), loaded by path: tests are not an importable package here."""
    spec = importlib.util.spec_from_file_location("_launch_checks", Path(__file__).with_name("test_launch_files.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LAUNCH = _launch_test_module()


def node_params() -> dict[str, dict[str, Param]]:
    """Launched node name -> PARAMS of its module (module found through the package's console script)."""
    return {name: importlib.import_module(LAUNCH.node_module(node)).PARAMS for name, node in LAUNCH.launched_nodes().items()}


def sections(path: Path) -> dict[str, dict[str, Any]]:
    """Params-file sections: node name (or '/**') -> its ros__parameters."""
    doc = yaml.safe_load(path.read_text())
    out = {}
    for key, body in doc.items():
        assert isinstance(body, dict) and set(body) == {"ros__parameters"}, (
            f"{path.name}: section '{key}' must hold only ros__parameters"
        )
        out[key if key == "/**" else LAUNCH.yaml_node_name(key)] = flatten(body["ros__parameters"])
    return out


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested keys as the dotted parameter names rcl gives them: {a: {b: 1}} -> {'a.b': 1}."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def value_problem(name: str, value: Any, spec: Param) -> str | None:
    """Why ``value`` would be refused for ``spec`` at start: ROS type first, then range/choices."""
    expected = type(spec.default)
    if expected is float and type(value) is int:
        value = float(value)  # declare_params takes an int for a double
    if type(value) is not expected:
        return f"parameter '{name}' = {value!r} is a {type(value).__name__}, the node declares a {expected.__name__}"
    return check_param(name, value, spec)


@pytest.fixture(scope="module")
def params() -> dict[str, dict[str, Param]]:
    return node_params()


def test_node_defaults_satisfy_their_own_specs(params: dict[str, dict[str, Param]]) -> None:
    for node, specs in params.items():
        for name, spec in specs.items():
            assert check_param(name, spec.default, spec) is None, f"{node}: default of '{name}' violates its own spec"


@pytest.mark.parametrize(("path", "aliases"), [(AGENT_YAML, {}), (SIM_YAML, {"jepa_sim": "sim"})], ids=["agent.yaml", "sim.yaml"])
def test_every_section_key_is_declared_with_a_valid_value(params: dict[str, dict[str, Param]], path: Path, aliases: dict) -> None:
    problems = []
    for section, values in sections(path).items():
        if section == "/**":
            continue
        node = aliases.get(section, section)
        assert node in params, f"{path.name}: section '{section}' is for no launched node ({sorted(params)})"
        for key, value in values.items():
            if key in IMPLICIT:
                continue
            if key not in params[node]:
                problems.append(f"{path.name}: '{section}.{key}' is not declared by the node (it would be ignored)")
            elif problem := value_problem(key, value, params[node][key]):
                problems.append(f"{path.name}: {section}: {problem}")
    assert not problems, "\n".join(problems)


def test_wildcard_keys_are_used_and_valid(params: dict[str, dict[str, Param]]) -> None:
    for key, value in sections(AGENT_YAML).get("/**", {}).items():
        users = [node for node, specs in params.items() if key in specs]
        assert users or key in IMPLICIT, f"agent.yaml '/**.{key}' is declared by no launched node"
        for node in users:
            assert value_problem(key, value, params[node][key]) is None, f"agent.yaml '/**.{key}' is invalid for {node}"


def test_bundle_reaches_every_node_that_needs_it(params: dict[str, dict[str, Param]]) -> None:
    """Nodes declaring 'bundle' get it from the '/**' section or their own, and from the launch argument."""
    agent = sections(AGENT_YAML)
    overrides = LAUNCH.module_literals(LAUNCH.parse(REPO / "launch" / "agent.launch.py"))["NODE_OVERRIDES"]
    for node, specs in params.items():
        if "bundle" in specs:
            assert "bundle" in agent.get("/**", {}) or "bundle" in agent.get(node, {}), f"agent.yaml gives no bundle to {node}"
            if node != "sim":
                assert overrides[node].get("bundle") == "bundle", f"the bundle launch argument does not reach {node}"


@pytest.mark.parametrize(("file", "table"), [("agent.launch.py", "NODE_OVERRIDES"), ("agent_sim.launch.py", "SIM_OVERRIDES")])
def test_launch_overrides_are_declared_parameters(params: dict[str, dict[str, Param]], file: str, table: str) -> None:
    literals = LAUNCH.module_literals(LAUNCH.parse(REPO / "launch" / file))
    per_node = literals[table] if table == "NODE_OVERRIDES" else {"sim": literals[table]}
    agent_literals = LAUNCH.module_literals(LAUNCH.parse(REPO / "launch" / "agent.launch.py"))
    bool_params, float_params = set(agent_literals["BOOL_PARAMETERS"]), set(agent_literals["FLOAT_PARAMETERS"])
    int_params = set(agent_literals["INT_PARAMETERS"])
    for node, overrides in per_node.items():
        for key in overrides:
            assert key in params[node], f"{file}: override '{key}' is not declared by {node}"
            # Launch arguments are text: bool, float and int parameters are converted, the rest must be strings.
            expected = bool if key in bool_params else float if key in float_params else int if key in int_params else str
            assert isinstance(params[node][key].default, expected), (
                f"{file}: override '{key}' of {node} would have the wrong type"
            )


class _NoDuplicateKeys(yaml.SafeLoader):
    """A YAML loader that refuses a key set twice in one mapping (PyYAML keeps the last one silently)."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    doubled = sorted({str(k) for k in keys if keys.count(k) > 1})
    if doubled:
        raise yaml.constructor.ConstructorError(None, None, f"key(s) {doubled} set twice", node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_NoDuplicateKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


@pytest.mark.parametrize("path", [*sorted(p.relative_to(REPO) for p in (REPO / "config").rglob("*.yaml")), SIM_YAML.relative_to(REPO)],
                         ids=str)
def test_config_files_set_no_key_twice(path: Path) -> None:
    """A key set twice in a params or profile file silently loses one of its values."""
    yaml.load((REPO / path).read_text(), Loader=_NoDuplicateKeys)
