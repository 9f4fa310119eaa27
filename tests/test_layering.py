"""Package layering and declared dependencies, checked from the source (every import, lazy ones included).

Layers, lowest first: jepa_interfaces -> jepa_common -> jepa_sim -> jepa_world_model -> jepa_perception
-> jepa_planner. A package may import only packages before it in that order (so there is no cycle and
no upward import), and every module it imports outside the standard library must be declared in its
package.xml (ROS packages by name, Python libraries by their rosdep key), so rosdep on a robot installs
what the nodes need.
"""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ORDER = ["jepa_interfaces", "jepa_common", "jepa_sim", "jepa_world_model", "jepa_perception", "jepa_planner"]
PYTHON_PACKAGES = ORDER[1:]

# Python module -> rosdep key. ROS packages (rclpy, *_msgs, *_interfaces, ament_index_python) are their own key.
ROSDEP_KEYS = {
    "numpy": "python3-numpy",
    "yaml": "python3-yaml",
    "tqdm": "python3-tqdm",
    "torch": "python3-torch",
    "matplotlib": "python3-matplotlib",
    "pydantic": "python3-pydantic",
    "imageio": "python3-imageio",
    "onnxruntime": "python3-onnxruntime",
    "rosbags": "python3-rosbags",
}
# Keys that the Docker images install with pip from requirements/core.txt (so rosdep must skip them).
PIP_KEYS = {"python3-torch", "python3-tqdm", "python3-matplotlib", "python3-pydantic", "python3-imageio",
            "python3-onnxruntime", "python3-rosbags"}
# Imports used only when present; each is guarded (ImportError handled) and explained in the code.
OPTIONAL = {
    "jepa_common": {"cv_bridge": "other image encodings on a ROS install"},
    "jepa_sim": {
        "torch": "machine_info reports its version when installed",
        "mujoco": "point_maze extra", "gymnasium_robotics": "point_maze extra",
        "gym_pusht": "push_t extra", "pygame": "push_t extra", "pymunk": "push_t extra", "shapely": "push_t extra",
    },
}


def _imports(pkg: str) -> dict[str, list[str]]:
    """Top-level module -> ["file:line", ...] for every absolute import in the package's Python code."""
    found: dict[str, list[str]] = {}
    for path in sorted((REPO / "src" / pkg / pkg).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):  # ast.walk also enters function bodies: lazy imports count
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                found.setdefault(mod.split(".")[0], []).append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def _declared(pkg: str) -> set[str]:
    root = ET.parse(REPO / "src" / pkg / "package.xml").getroot()
    tags = ("depend", "exec_depend", "build_depend", "build_export_depend")
    return {el.text.strip() for tag in tags for el in root.iter(tag) if el.text}


def _key(module: str) -> str:
    return ROSDEP_KEYS.get(module, module)


def _internal(pkg: str) -> set[str]:
    return {m for m in _imports(pkg) if m in ORDER and m != pkg}


@pytest.mark.parametrize("pkg", PYTHON_PACKAGES)
def test_no_upward_import(pkg: str) -> None:
    imports = _imports(pkg)
    allowed = set(ORDER[: ORDER.index(pkg)])
    bad = {m: imports[m][:3] for m in _internal(pkg) if m not in allowed}
    assert not bad, f"{pkg} imports packages at or above its layer (allowed: {sorted(allowed)}): {bad}"


def test_no_cycle_between_packages() -> None:
    graph = {p: _internal(p) for p in PYTHON_PACKAGES}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail(f"import cycle: {' -> '.join([*trail, node, nxt])}")
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for p in PYTHON_PACKAGES:
        if p not in state:
            visit(p, [])


@pytest.mark.parametrize("pkg", PYTHON_PACKAGES)
def test_imports_declared_in_package_xml(pkg: str) -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    declared = _declared(pkg)
    optional = OPTIONAL.get(pkg, {})
    missing = {
        m: (_key(m), where[:2])
        for m, where in _imports(pkg).items()
        if m != pkg and m not in stdlib and m not in optional and _key(m) not in declared
    }
    assert not missing, f"src/{pkg}/package.xml lacks exec_depend for (module: (rosdep key, where)): {missing}"


@pytest.mark.parametrize("pkg", PYTHON_PACKAGES)
def test_declared_internal_dependencies_point_down(pkg: str) -> None:
    below = set(ORDER[: ORDER.index(pkg)])
    declared_internal = {d for d in _declared(pkg) if d in ORDER}
    assert declared_internal <= below, f"{pkg} declares packages not below it: {sorted(declared_internal - below)}"


@pytest.mark.parametrize("dockerfile", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_docker_rosdep_skips_every_pip_installed_key(dockerfile: str) -> None:
    text = (REPO / "docker" / dockerfile).read_text()
    match = re.search(r'--skip-keys "([^"]*)"', text)
    assert match, f"docker/{dockerfile} runs rosdep without --skip-keys"
    skipped = set(match.group(1).split())
    used = set().union(*(_declared(p) for p in PYTHON_PACKAGES)) & PIP_KEYS
    assert used <= skipped, f"docker/{dockerfile}: rosdep would try to apt-install pip-provided keys {sorted(used - skipped)}"


def test_layering_check_sees_lazy_and_upward_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself: an import inside a function body is found."""
    src = tmp_path / "src" / "jepa_sim" / "jepa_sim"
    src.mkdir(parents=True)
    (src / "m.py").write_text("def f():\n    from jepa_planner.profiles import build_planner\n    return build_planner\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert _internal("jepa_sim") == {"jepa_planner"}


def test_every_package_is_layered_and_installed_by_setup() -> None:
    on_disk = {p.parent.name for p in (REPO / "src").glob("*/package.xml")}
    assert on_disk == set(ORDER), f"packages not in the layer order: {sorted(on_disk ^ set(ORDER))}"
    setup = (REPO / "scripts" / "setup.sh").read_text()
    match = re.search(r"^pkgs=\(([^)]*)\)", setup, re.M)
    assert match and set(match.group(1).split()) == set(PYTHON_PACKAGES), "scripts/setup.sh must install every Python package"
