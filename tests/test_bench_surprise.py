"""The violation-of-expectation benchmark end to end on a tiny run: JSON schema, figure, both backends agree."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_PATH = REPO / "bench" / "bench_surprise.py"
BUNDLE = REPO / "models" / "two_rooms"

if not (BUNDLE / "manifest.json").exists():
    pytest.skip(f"the shipped bundle {BUNDLE} is missing", allow_module_level=True)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_surprise", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_writes_every_metric(bench, tmp_path: Path) -> None:
    out = tmp_path / "surprise.json"
    rc = bench.main(["--seed", "1", "--pairs", "3", "--steps", "30", "--calib-episodes", "8", "--agent-episodes", "1",
                     "--out", str(out), "--bundles", str(BUNDLE), str(REPO / "models" / "no_such_bundle")])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["pairs"] == 3 and report["seed"] == 1 and "bench_surprise.py" in report["command"]
    assert "skipped" in report["bundles"]["no_such_bundle"]
    two = report["bundles"]["two_rooms"]
    assert two["backends_max_abs_diff"] < 1e-3  # torch and ONNX agree
    assert set(two["thresholds"]) == set(bench.VARIANTS) >= {"h1", "h1_raw", "h2", "h1_w5"}
    for name, t in two["thresholds"].items():
        assert t["threshold"] > 0 and 0 <= t["false_alarm_rate"] <= 1 and t["normal_frames"] > 0
        assert t["whitened"] == (name != "h1_raw") and "whitening" not in t  # the matrix stays out of the JSON
    assert set(two["kinds"]) == {"teleport", "through_wall", "freeze", "drift", "slow_drift"}
    for kind, entry in two["kinds"].items():
        assert entry["pairs"] == 3
        for variant in bench.VARIANTS:
            for backend in ("torch", "onnx"):
                m = entry[variant][backend]
                assert 0 <= m["pairwise_accuracy"] <= 1 and 0 <= m["auroc"] <= 1, (kind, variant, backend)
                assert 0 <= m["detected_within_2_model_steps"] <= m["detected"] <= 1
                assert set(m["delay_model_steps"]) == {"median", "p90", "max"}
                assert math.isfinite(m["surprise_at_violation_median"])
    agent = two["agent"]  # closed loop with the profile two-rooms' other benchmarks drive with
    assert agent["profile"] == "flat_cem" and agent["episodes"] == 1 and agent["frames"] > 0
    assert 0 <= agent["false_alarms"] <= agent["frames"] and agent["variant"] == two["live_variant"]
    assert set(report["two_rooms_targets_met"]) >= {"teleport", "false_alarm_rate_ok"}
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_each_world_has_the_profile_its_benchmarks_drive_with() -> None:
    from jepa_planner.profiles import load_profile, profile_for_world

    assert profile_for_world("two_rooms") == "flat_cem"
    assert profile_for_world("multi_room") == profile_for_world("point_maze") == "hierarchical"
    assert profile_for_world("some_new_world") == "flat_cem"
    for world in ("two_rooms", "multi_room", "point_maze"):
        load_profile(profile_for_world(world))  # every named profile exists
