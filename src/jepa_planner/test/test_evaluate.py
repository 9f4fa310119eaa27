"""The closed-loop evaluation command, end to end with the oracle model."""

from __future__ import annotations

import json

import pytest
import torch

from jepa_planner.evaluate import main, wilson_interval
from jepa_planner.policy import DistilledPolicy

torch.set_num_threads(1)


def test_wilson_interval():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


def test_evaluate_runs_end_to_end_with_the_oracle(tmp_path):
    out = tmp_path / "flat"
    rc = main(
        [
            "--model",
            "oracle",
            "--profile",
            "flat_cem",
            "--episodes",
            "3",
            "--max-steps",
            "25",
            "--seed",
            "1",
            "--out",
            str(out),
            "--no-progress",
            "--world-arg",
            "goal_in_other_room=false",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    report = json.loads((out / "evaluation.json").read_text())
    summary = report["summary"]
    assert summary["episodes"] == 3 and 0.0 <= summary["success_rate"] <= 1.0
    assert summary["success_ci95"][0] <= summary["success_rate"] <= summary["success_ci95"][1]
    assert summary["model_evals_per_episode"] > 0 and summary["plan_time_median_s"] > 0
    assert report["probe_r2"] > 0.99  # the oracle latent is the position
    assert all(len(e["trajectory"]) == e["steps"] + 1 for e in report["episodes"])
    assert (out / "trajectories.png").stat().st_size > 0 and (out / "episode.gif").stat().st_size > 0
    assert report["gif_frames"] >= 1


def test_evaluate_hierarchical_and_policy_profiles(tmp_path):
    rc = main(
        [
            "--profile",
            "hierarchical",
            "--episodes",
            "1",
            "--max-steps",
            "15",
            "--out",
            str(tmp_path / "h"),
            "--no-progress",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    assert json.loads((tmp_path / "h" / "evaluation.json").read_text())["summary"]["replans_per_episode"] >= 1
    from jepa_planner.oracle import OracleTwoRoomsModel

    policy = DistilledPolicy.for_model(OracleTwoRoomsModel(frameskip=5), hidden=8)
    policy.save(tmp_path / "policy.pt")
    rc = main(
        [
            "--profile",
            "policy",
            "--policy",
            str(tmp_path / "policy.pt"),
            "--episodes",
            "1",
            "--max-steps",
            "10",
            "--out",
            str(tmp_path / "p"),
            "--no-progress",
            "--gif-episode",
            "-1",
            "--threads",
            "1",
        ]
    )
    assert rc == 0 and not (tmp_path / "p" / "episode.gif").exists()
