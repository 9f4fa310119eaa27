"""The missed-violation breakdown: places from the layout, counts that add up, a bad bundle refused."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "models" / "two_rooms"

if not (BUNDLE / "surprise_calibration.json").exists():
    pytest.skip(f"the shipped bundle {BUNDLE} or its calibration is missing", allow_module_level=True)


@pytest.fixture(scope="module")
def misses():
    sys.path.insert(0, str(REPO / "bench"))  # its sibling modules, as when run as a script
    spec = importlib.util.spec_from_file_location("surprise_misses", REPO / "bench" / "surprise_misses.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_places_follow_the_two_rooms_walls(misses) -> None:
    from jepa_sim.worlds import make_world

    layout = make_world("two_rooms").layout  # outer walls 1 px thick, the middle wall x 31-34 with its door at y 28-36
    points = np.array([[32.5, 32.0], [31.0, 39.5], [2.0, 50.0], [34.1, 18.9], [12.0, 12.0], [48.0, 50.0]])
    assert misses.place_of(layout, points, door_radius=8.0, wall_margin=4.0) == [
        "doorway", "doorway", "near_wall", "near_wall", "open", "open"]
    assert misses.wall_distance(layout.rects, points[[2, 4]]) == pytest.approx([1.0, 11.0])


def test_tiny_run_counts_add_up(misses, tmp_path: Path) -> None:
    out = tmp_path / "misses.json"
    assert misses.main(["--bundle", str(BUNDLE), "--seed", "1", "--pairs", "4", "--steps", "30",
                        "--kinds", "freeze", "teleport", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["kinds"]) == {"freeze", "teleport"} and report["threshold"] > 0
    assert "context-scaled" in report["detector"] and "surprise_misses.py" in report["command"]
    for per_seed in report["kinds"].values():
        entry = per_seed["1"]
        by_place = entry["by_place"]
        assert set(by_place) == {"doorway", "near_wall", "open"}
        assert sum(r["pairs"] for r in by_place.values()) == entry["pairs"] == 4
        assert entry["found_in_time"] + len(entry["missed"]) == 4
        ratios = [r.get("predicted_step_ratio_median") for r in by_place.values() if r["pairs"]]
        if per_seed is report["kinds"]["freeze"]:  # the model's own step against the agent's, where it moved freely
            assert all(0.2 < r < 2.0 for r in ratios), ratios
        else:
            assert ratios == [None] * len(ratios)
        for miss in entry["missed"]:
            assert miss["place"] in by_place
            if miss["delay_model_steps"] is None:  # never above the threshold
                assert miss["peak_surprise"] <= report["threshold"]
            else:  # found, but late
                assert miss["delay_model_steps"] > 2 and miss["peak_surprise"] > report["threshold"]


def test_a_bundle_without_calibration_is_one_clear_error(misses, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        misses.main(["--bundle", str(tmp_path), "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2
    assert "surprise_calibration.json not found" in capsys.readouterr().err
