"""The closed-loop evaluation command, end to end with the oracle model."""

from __future__ import annotations

import json

import pytest
import torch

from jepa_planner.evaluate import encode_observation, main, wilson_interval
from jepa_planner.policy import DistilledPolicy

torch.set_num_threads(1)


def test_wilson_interval():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
    for n in (20, 50, 100, 200):  # all or none: exactly 1 / 0 on that side (float rounding once gave 0.9999999999999999)
        assert wilson_interval(n, n)[1] == 1.0 and wilson_interval(0, n)[0] == 0.0


class _RecordingEncoder:
    """Stands in for a bundle: records what ``encode`` was given."""

    def __init__(self, uses_proprio: bool) -> None:
        self.uses_proprio, self.calls = uses_proprio, []

    def encode(self, images, proprio=None):
        self.calls.append((images.shape, None if proprio is None else proprio.shape))
        return torch.zeros(images.shape[0], 3)


def test_observations_are_encoded_with_proprio_only_for_fusing_models():
    from types import SimpleNamespace

    import numpy as np

    obs = SimpleNamespace(image=np.zeros((8, 8, 3), np.uint8), proprio=np.ones(4))
    for fuses, expected in ((True, (1, 4)), (False, None)):
        model = _RecordingEncoder(fuses)
        assert encode_observation(model, obs).shape == (3,)
        assert model.calls == [((1, 8, 8, 3), expected)]


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


def _fake_bundle(tmp_path, world: str, world_kwargs: dict):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(
        json.dumps({"provenance": {"world": world, "data": {"world": world, "world_kwargs": world_kwargs}}})
    )
    return str(bundle)


def test_world_settings_come_from_the_bundle_and_overrides_are_named(tmp_path):
    from jepa_planner.evaluate import world_settings

    bundle = _fake_bundle(tmp_path, "point_maze", {"maze": "large", "action_repeat": 2, "show_target": False})
    name, kwargs, notes = world_settings(bundle, None, {})
    assert name == "point_maze" and kwargs == {"maze": "large", "action_repeat": 2, "show_target": False}
    assert any("from the bundle's manifest" in n for n in notes)
    name, kwargs, notes = world_settings(bundle, None, {"action_repeat": 1})
    assert kwargs["action_repeat"] == 1 and any("action_repeat=1 overrides the bundle's action_repeat=2" in n for n in notes)
    name, kwargs, notes = world_settings(bundle, "two_rooms", {})
    assert name == "two_rooms" and "maze" not in kwargs and any("overrides the bundle's world point_maze" in n for n in notes)
    name, kwargs, _ = world_settings("oracle", None, {})
    assert name == "two_rooms" and kwargs == {"goal_in_other_room": True, "placement": "mixed"}


def test_factors_on_the_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit, match="unknown factor 'nois'; valid factors for two_rooms: noise="):
        main(["--factor", "nois=0.1", "--episodes", "1", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match=r"noise=0.9 for world 'two_rooms' is out of range"):
        main(["--factor", "noise=0.9", "--episodes", "1", "--out", str(tmp_path / "x")])
    out = tmp_path / "f"
    args = ["--factor", "door_y=random", "--factor", "noise=0.0118", "--episodes", "2", "--max-steps", "10"]
    rc = main([*args, "--out", str(out), "--no-progress", "--gif-episode", "-1", "--threads", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "factors of variation: {'door_y': 'random', 'noise': 0.0118}" in printed
    assert "episode.gif" not in printed and not (out / "episode.gif").exists()
    report = json.loads((out / "evaluation.json").read_text())
    assert report["config"]["factors"] == {"door_y": "random", "noise": 0.0118}
    assert all(e["task_length"] == 1 for e in report["episodes"])  # two rooms, goal in the other one
    assert all(e["final_distance"] >= 0 for e in report["episodes"])


def test_map_extent_is_in_world_units():
    from types import SimpleNamespace

    import numpy as np

    from jepa_planner.evaluate import map_extent
    from jepa_sim.worlds import make_world

    assert map_extent(make_world("two_rooms")) == pytest.approx((0.0, 64.0, 64.0, 0.0))

    # a world in metres, y up, centred (as PointMaze): the extent follows its pixel_to_world
    def to_world(colrow):
        c = np.asarray(colrow, float)
        return np.stack([(c[..., 0] + 0.5) / 10 - 3.0, 3.0 - (c[..., 1] + 0.5) / 10], axis=-1)

    maze_like = SimpleNamespace(spec=SimpleNamespace(image_size=60), pixel_to_world=to_world)
    assert map_extent(maze_like) == pytest.approx((-3.0, 3.0, -3.0, 3.0))


def test_plots_say_when_every_episode_has_its_own_layout():
    """With the door anywhere, one map cannot show every episode's door: the plot must say whose it shows."""
    from jepa_planner.evaluate import layout_varies
    from jepa_sim.worlds import make_world

    assert not layout_varies(make_world("two_rooms"))
    random_door = make_world("two_rooms", door_y="random")
    assert layout_varies(random_door)
    from jepa_sim.camera import CameraPerturbation, PerturbedCamera

    assert layout_varies(PerturbedCamera(random_door, CameraPerturbation(noise=0.01)))
    assert not layout_varies(make_world("multi_room"))


def test_default_model_is_the_oracle_for_point_mass_worlds_and_the_shipped_bundle_otherwise():
    from jepa_planner.evaluate import default_model
    from jepa_planner.world_defaults import REPO

    assert default_model(None) == default_model("two_rooms") == default_model("multi_room") == "oracle"
    assert default_model("push_t") == str(REPO / "models" / "push_t")
    with pytest.raises(FileNotFoundError, match=r"no shipped bundle at models/no_such_world.*--model"):
        default_model("no_such_world")


def test_push_t_evaluation_runs_as_the_issue_writes_it(tmp_path, capsys):
    """``jepa-evaluate --world push_t --world-arg goal_steps=25 --max-steps 50``: no --model, the shipped bundle."""
    pytest.importorskip("gym_pusht", reason="push_t extra not installed: pip install -r requirements/extras-pusht.txt")
    out = tmp_path / "push_t"
    rc = main(["--world", "push_t", "--world-arg", "goal_steps=25", "--max-steps", "50", "--episodes", "1",
               "--out", str(out), "--no-progress", "--threads", "1", "--gif-episode", "-1"])
    assert rc == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["config"]["model"].endswith("models/push_t") and report["config"]["world"] == "push_t"
    assert report["config"]["world_kwargs"]["goal_steps"] == 25
    assert report["episodes"][0]["steps"] <= 50
    assert "on push_t (1 episodes, model " in capsys.readouterr().out
