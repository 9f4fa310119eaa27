"""The door-anywhere diagnostics (bench/door_paths.py, bench/layout_probe.py) on the shipped two-rooms bundle."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "models" / "two_rooms"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_layout_probe_finds_the_shipped_latent_codes_position_not_the_door(tmp_path: Path) -> None:
    """The shipped bundle (no layout part) codes the agent's x linearly and nothing of the door's height."""
    out = tmp_path / "probe.json"
    assert load("layout_probe").main(["--bundle", str(BUNDLE), "--episodes", "3", "--steps", "40", "--out", str(out)]) == 0
    row = json.loads(out.read_text())["bundles"][0]
    assert row["layout_dims"] == 0 and "layout_to_door" not in row and row["frames"] == 7 * 3 * 41
    assert row["agent_to_xy"][0] > 0.9 and row["agent_to_door"] < 0.3
    assert row["latent_to_xy"] == row["agent_to_xy"]


def test_layout_probe_refuses_a_directory_without_a_bundle(tmp_path: Path, capsys) -> None:
    assert load("layout_probe").main(["--bundle", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_door_paths_scores_both_paths_for_every_door(tmp_path: Path) -> None:
    out = tmp_path / "paths.json"
    mod = load("door_paths")
    assert mod.main(["--bundles", str(BUNDLE), "--horizon", "6", "--out", str(out)]) == 0
    result = json.loads(out.read_text())["results"][0]
    assert len(result["rows"]) == len(mod.DOORS) * len(mod.START_GOAL_Y)
    assert 0.0 <= result["door_path_predicted_cheaper_when_blocked"] <= 1.0
    for row in result["rows"]:
        assert row["door_predicted"] >= 0 and row["straight_predicted"] >= 0 and row["straight_true_px"] >= 0
