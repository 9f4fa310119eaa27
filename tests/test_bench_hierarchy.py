"""The hierarchy benchmark's bookkeeping: budget scaling and the compute ratio at equal success."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from jepa_planner.profiles import load_profile

_PATH = Path(__file__).resolve().parents[1] / "bench" / "bench_hierarchy.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_hierarchy", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(kind: str, factor: float, success: float, evals: float, plan_s: float) -> dict:
    name = f"{kind} x{factor:g}"
    return {"planner": name, "kind": kind, "factor": factor, "success_rate": success, "model_evals_per_episode": evals,
            "plan_time_per_episode_s": plan_s}


def test_compute_ratio_uses_the_cheapest_budget_reaching_the_common_success(bench) -> None:
    flat = [row("flat", 1, 0.2, 600.0, 6.0), row("flat", 2, 0.5, 1100.0, 9.0), row("flat", 4, 0.5, 2000.0, 15.0)]
    hier = [row("hier", 0.25, 0.3, 100.0, 1.0), row("hier", 0.5, 0.6, 200.0, 2.0), row("hier", 1, 0.8, 300.0, 3.0)]
    c = bench.compute_at_equal_success(flat, hier)
    assert c["success_level"] == 0.5  # flat never gets past 50%
    assert c["flat_row"] == "flat x2" and c["hierarchical_row"] == "hier x0.5"
    assert c["ratio_evals"] == pytest.approx(1100.0 / 200.0) and c["ratio_plan_time"] == pytest.approx(4.5)
    assert not c["flat_reaches_hierarchical_best"]


def test_scaled_profile_scales_every_level_and_keeps_the_original(bench) -> None:
    profile = load_profile("hierarchical")
    half = bench.scaled(profile, 0.5)
    for original, copy in zip(profile.levels, half.levels, strict=True):
        assert copy.params["num_samples"] == round(original.params["num_samples"] * 0.5)
        assert copy.params["num_elites"] == round(original.params["num_elites"] * 0.5)
    assert load_profile("hierarchical").levels[0].params == profile.levels[0].params


def test_world_options_come_from_the_bundle_and_path_lengths_are_geodesic(bench) -> None:
    root = _PATH.parents[1]
    assert bench.trained_world_options(str(root / "models" / "point_maze")) == {
        "maze": "large", "action_repeat": 2, "show_target": False,
    }
    assert bench.trained_world_options("oracle") == {}
    world = bench.make_task_world("multi_room", 2)
    record = type("Rec", (), {"goal": [20.0, 10.0], "trajectory": [[10.0, 10.0, 0.0, 0.0]]})
    straight = bench.path_lengths(world, [record, record])
    assert straight[0] == straight[1] and 9.0 <= straight[0] <= 11.0  # same room, 10 px apart
