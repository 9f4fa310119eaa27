"""bench/bench_train_step.py: the same training steps with subnormals kept and flushed (timings are not asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def test_train_step_bench_times_the_same_steps_both_ways(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_train_step", REPO / "bench" / "bench_train_step.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "step.json"
    args = ["--bundle", str(REPO / "models" / "two_rooms"), "--steps", "2", "--episodes", "4", "--out", str(out)]
    try:
        assert mod.main(args) == 0
    finally:
        torch.set_flush_denormal(True)
    res = json.loads(out.read_text())["results"]
    assert res["steps"] == 2 and res["seconds_subnormals_kept"] > 0 and res["seconds_flushed"] > 0
    assert abs(res["mean_loss_kept"] - res["mean_loss_flushed"]) < 1e-3  # flushing subnormals does not change training
