"""Push-T benchmark and diagnosis end to end on a tiny run with the shipped bundle (needs the push_t extra)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "models" / "push_t"
pytest.importorskip("gym_pusht", reason="push_t extra not installed: pip install -r requirements/extras-pusht.txt")


def load(name: str):
    sys.path.insert(0, str(REPO / "bench"))  # the diagnosis imports the benchmark's helpers, as when run from bench/
    try:
        spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(REPO / "bench"))


def test_tiny_benchmark_reports_success_both_ways_and_errors(tmp_path: Path) -> None:
    out = tmp_path / "push_t.json"
    assert load("bench_push_t").main(["--model", str(BUNDLE), "--ds", "10", "--profiles", "flat_cem", "--episodes", "1",
                                      "--threads", "1", "--out", str(out)]) == 0
    cell = json.loads(out.read_text())["cells"][0]
    assert cell["d"] == 10 and cell["budget_steps"] == 20
    assert {"coverage", "dino_wm_state", "median_error_start", "median_error_end"} <= set(cell)
    assert cell["median_error_start"]["block_px"] >= 0 and out.with_suffix(".png").is_file()


def test_diagnosis_splits_model_error_into_image_and_proprio_parts(tmp_path: Path) -> None:
    out = tmp_path / "diag.json"
    assert load("push_t_diagnose").main(["--model", str(BUNDLE), "--d", "10", "--tasks", "1", "--threads", "1",
                                         "--out", str(out)]) == 0
    summary = json.loads(out.read_text())["summary"]
    assert len(summary["model_error_by_step"]) == 2  # 10 raw steps = 2 model steps of 5
    assert len(summary["model_error_by_step_image"]) == len(summary["model_error_by_step_proprio"]) == 2
    assert summary["task_distance"] > 0 and summary["expert_true"] < summary["task_distance"]


def test_probe_reads_each_target_apart_and_refuses_a_missing_bundle(tmp_path: Path) -> None:
    import numpy as np

    probe = load("push_t_probe")
    t = probe.targets(np.array([[1.0, 2.0, 3.0, 4.0, np.pi / 2]]))
    assert np.allclose(t, [[1, 2, 3, 4, 1, 0]], atol=1e-12)  # the angle as sin / cos: no wrap at +-pi
    out = tmp_path / "probe.json"
    assert probe.main(["--bundles", str(BUNDLE), "--episodes", "4", "--out", str(out)]) == 0
    row = json.loads(out.read_text())["results"]["bundles"][0]
    assert set(row["r2"]) == set(probe.TARGETS) and row["r2"]["agent_x"] > 0.9  # the agent: proprio's own dimensions
    assert row["rmse"]["block_x"] > 0 and row["mlp"]["block_x_rmse_px"] > 0
    assert 0 <= row["mlp"]["block_angle_median_error_rad"] <= 3.1416
    with pytest.raises(SystemExit):
        probe.main(["--bundles", str(tmp_path / "nothing"), "--out", str(out)])
