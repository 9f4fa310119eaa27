"""bench/tolerance_sweep.py and bench/reach_precision.py: tasks sorted into reached within the radius, reaches declared too far out and timeouts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load(name: str = "tolerance_sweep"):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_separates_reached_within_the_radius_from_false_reaches_and_timeouts() -> None:
    episodes = [
        {"agent_reason": "reached", "success": True, "min_distance_px": 0.4, "steps": 40},
        {"agent_reason": "reached", "success": False, "min_distance_px": 1.234, "steps": 30},  # declared reached 1.2 px out
        {"agent_reason": "timeout", "success": True, "min_distance_px": 0.8, "steps": 200},  # passed by, never declared
        {"agent_reason": "error: perception silent", "success": False, "min_distance_px": 9.0, "steps": 12},
    ]
    s = load().summarise(episodes)
    assert (s["reached_within"], s["false_reach"], s["timeout"]) == (1, 1, 1)
    assert s["false_reach_closest_px"] == [1.23] and s["other"] == ["error: perception silent"]
    assert s["episodes"] == 4 and s["steps_median"] == 35


def test_bad_tolerances_are_refused(capsys) -> None:
    assert load().main(["--tolerances", "0.01", "0"]) == 2
    assert "tolerances must be > 0" in capsys.readouterr().err


def test_reach_precision_counts_never_and_too_far_reaches() -> None:
    import numpy as np

    mod = load("reach_precision")

    series = [
        (np.array([0.5, 0.02, 0.004, 0.001]), np.array([20.0, 2.0, 0.5, 0.1])),  # under 0.006 at 0.5 px: fine
        (np.array([0.5, 0.005, 0.001]), np.array([20.0, 1.4, 0.2])),  # under 0.006 first at 1.4 px: too far
        (np.array([0.5, 0.03, 0.02]), np.array([20.0, 0.6, 0.3])),  # never under 0.006: a timeout
    ]
    row = mod.at_tolerance(series, 0.006, radius=1.0)
    assert (row["tasks"], row["never"], row["farther_than_radius"], row["farther_px"]) == (3, 1, 1, [1.4])
    assert row["steps_to_reach_median"] == 1.5 and row["true_px_at_reach_median"] == 0.95
    assert mod.at_tolerance(series, 0.001, radius=1.0)["never"] == 3
