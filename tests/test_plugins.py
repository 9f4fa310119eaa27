"""Plugin points: a package outside src/ registers a planner, cost term, encoder and world by entry point.

The plugin package (tests/plugins/jepa_toy_plugins) is made visible the way pip would: its source on
sys.path plus a ``.dist-info`` holding the ``entry_points.txt`` that its setup.py declares.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import yaml

from jepa_common import plugins

REPO = Path(__file__).resolve().parents[1]
PLUGIN_SRC = REPO / "tests" / "plugins" / "jepa_toy_plugins"


def _setup_entry_points(setup_py: Path) -> dict[str, list[str]]:
    """The ``entry_points`` literal of a setup.py (read statically: nothing is executed)."""
    for node in ast.walk(ast.parse(setup_py.read_text())):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            return ast.literal_eval(node.value)
    raise AssertionError(f"{setup_py} declares no entry_points")


def _install_fake(tmp_path: Path, name: str, groups: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / f"{name}-0.0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
    (dist / "entry_points.txt").write_text("".join(f"[{g}]\n" + "".join(f"{e}\n" for e in eps) + "\n" for g, eps in groups.items()))
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.fixture
def toy_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    _install_fake(tmp_path, "jepa_toy_plugins", _setup_entry_points(PLUGIN_SRC / "setup.py"), monkeypatch)


def _profiles(tmp_path: Path) -> Path:
    path = tmp_path / "profiles.yaml"
    body = {"levels": [{"type": "random_shooting", "horizon": 3, "params": {"num_samples": 16},
                        "costs": [{"type": "goal_distance"}, {"type": "first_action", "weight": 0.1}]}]}
    path.write_text(yaml.safe_dump({"profiles": {"toy": body}}))
    return path


def test_profile_uses_a_planner_and_cost_term_from_a_plugin(toy_plugins: None, tmp_path: Path) -> None:
    from jepa_planner.profiles import build_planner, load_profile
    from jepa_planner.testing import LinearWorldModel

    model = LinearWorldModel(dim=2, bound=1.0)
    planner = build_planner(load_profile("toy", _profiles(tmp_path)), model)
    assert type(planner).__name__ == "RandomShootingPlanner"
    assert [t.name for t in planner.costs.terms] == ["goal_distance", "first_action"]
    result = planner.plan(torch.zeros(2), torch.ones(2))
    assert result.planner == "random_shooting" and result.actions.shape == (3, 2)
    assert result.stats.samples == 16
    assert "random_shooting" in plugins.names(plugins.PLANNERS)


def test_without_the_plugin_the_profile_is_rejected_by_name(tmp_path: Path) -> None:
    from jepa_planner.profiles import load_profiles

    with pytest.raises(ValueError, match=r"unknown planner type 'random_shooting'.*cem"):
        load_profiles(_profiles(tmp_path))


def test_world_and_encoder_from_a_plugin(toy_plugins: None) -> None:
    from jepa_sim.worlds import make_world, world_names
    from jepa_world_model.config import EncoderConfig
    from jepa_world_model.models.encoders import build_encoder

    assert "small_two_rooms" in world_names()
    world = make_world("small_two_rooms")
    assert world.spec.image_size == 32
    encoder = build_encoder(EncoderConfig(type="mean_colour"), image_size=32)
    assert encoder.latent_shape == (3,)
    assert encoder(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"unknown encoder.type 'nope'"):
        EncoderConfig(type="nope")


def test_a_broken_plugin_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake(tmp_path, "jepa_broken", {plugins.WORLDS: ["broken = jepa_no_such_module:make"]}, monkeypatch)
    with pytest.raises(plugins.PluginError, match=r"'broken' .*does not load: ModuleNotFoundError"):
        plugins.load(plugins.WORLDS, "broken")
    with pytest.raises(plugins.PluginError, match=r"unknown world 'nope'; valid names: .*broken"):
        plugins.load(plugins.WORLDS, "nope")


def test_builtins_are_registered_as_entry_points_too() -> None:
    """Each built-in table equals what its package's setup.py registers (one mechanism for all)."""
    from jepa_planner.costs import COST_TYPES
    from jepa_planner.planners import PLANNER_TYPES
    from jepa_sim import worlds
    from jepa_world_model.models.encoders import BUILTIN_ENCODERS

    def declared(pkg: str, group: str) -> dict[str, str]:
        eps = _setup_entry_points(REPO / "src" / pkg / "setup.py")[group]
        return {e.split("=")[0].strip(): e.split("=")[1].strip() for e in eps}

    def target(obj: object) -> str:
        return f"{obj.__module__}:{obj.__qualname__}"

    for pkg, group, table in [
        ("jepa_planner", plugins.PLANNERS, PLANNER_TYPES),
        ("jepa_planner", plugins.COST_TERMS, COST_TYPES),
        ("jepa_sim", plugins.WORLDS, worlds._WORLDS),
        ("jepa_world_model", plugins.ENCODERS, BUILTIN_ENCODERS),
    ]:
        assert declared(pkg, group) == {k: target(v) for k, v in table.items()}, f"{pkg} {group}"
    assert declared("jepa_planner", plugins.PLANNER_BUILDERS) == {"profiles": "jepa_planner.profiles:build_planner"}
