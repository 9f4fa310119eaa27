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


def load_script(path: Path):
    """A bench script as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cal():
    """bench/calibrate_surprise.py as a module."""
    return load_script(REPO / "bench" / "calibrate_surprise.py")


@pytest.fixture(scope="module")
def bench():
    return load_script(_PATH)


def test_tiny_run_writes_every_metric(bench, tmp_path: Path) -> None:
    out = tmp_path / "surprise.json"
    rc = bench.main(["--seed", "1", "--pairs", "3", "--steps", "30", "--calib-episodes", "8", "--agent-episodes", "1",
                     "--out", str(out), "--bundles", str(BUNDLE), str(REPO / "models" / "no_such_bundle")])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["pairs"] == 3 and report["seed"] == 1 and "bench_surprise.py" in report["command"]
    assert "skipped" in report["bundles"]["no_such_bundle"]
    two = report["bundles"]["two_rooms"]
    # torch and ONNX agree to 0.1% of the alarm threshold (whitening scales float32 differences up by the inverse of
    # the model's normal residual spread: the 20 x 500-step bundle's surprise differs by up to 0.006 at a threshold of 9.7)
    assert two["backends_max_abs_diff"] < 1e-3 * two["thresholds"][two["live_variant"]]["threshold"]
    assert set(two["thresholds"]) == set(bench.VARIANTS) >= {"h1", "h1_raw", "h2", "h1_w5", "h1_w5_rest"}
    for name, t in two["thresholds"].items():
        assert t["threshold"] > 0 and 0 <= t["false_alarm_rate"] <= 1 and t["normal_frames"] > t["rest_frames"] >= 0
        assert (t["rest_frames"] > 0) == t["rest_regime"]  # rest frames are counted where a rest regime scores them
        assert t["whitened"] == (name != "h1_raw") and "detector" not in t  # the matrices stay out of the JSON
    # the shipped calibration is the live variant: a 5-frame window in motion with a context scale, its own debiased
    # regime at rest
    assert two["live_variant"] == "h1_w5_rest_ctx_db" and two["thresholds"]["h1_w5_rest_ctx_db"]["rest_regime"]
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
    assert agent["profile"] == "flat_cem_search" and agent["episodes"] == 1 and agent["frames"] > 0
    assert 0 <= agent["false_alarms"] <= agent["frames"] and agent["variant"] == two["live_variant"]
    assert set(report["two_rooms_targets_met"]) >= {"teleport", "false_alarm_rate_ok"}
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_each_world_has_the_profile_its_benchmarks_drive_with() -> None:
    from jepa_planner.profiles import load_profile, profile_for_world

    assert profile_for_world("two_rooms") == "flat_cem_search"  # the door-reading bundle needs the search
    assert profile_for_world("multi_room") == profile_for_world("point_maze") == "hierarchical"
    assert profile_for_world("some_new_world") == "flat_cem"
    for world in ("two_rooms", "multi_room", "point_maze"):
        load_profile(profile_for_world(world))  # every named profile exists


def test_calibration_fits_a_rest_regime_that_finds_a_drift_the_moving_tail_hides(cal) -> None:
    """fit_detector (what bench/calibrate_surprise.py and the benchmark use): frames whose commands were zero get their
    own whitening and threshold at the same rate, scaled onto the moving threshold; too few of them: no regime."""
    import numpy as np

    rng = np.random.default_rng(0)

    def split(episodes: int) -> list:
        out = []
        for _ in range(episodes):
            actions = np.zeros((200, 2))
            actions[:100] = rng.normal(size=(100, 2)) + 3.0  # driving, then standing still
            residuals = np.concatenate([rng.normal(size=(100, 4)), 0.05 * rng.normal(size=(100, 4))])
            residuals[0] = np.nan  # no context yet
            out.append((residuals, actions))
        return out

    rate = 0.01
    detector, threshold, rest_threshold = cal.fit_detector(split(60), 1, rate, rest_below=0.1)
    assert detector.rest is not None and detector.rest.scale == pytest.approx(threshold / rest_threshold)
    scores, at_rest = cal.detector_scores(detector, split(60), 1)
    assert at_rest.sum() == 60 * 99  # frames 101..199: every command consumed was zero
    for regime in (at_rest, ~at_rest):  # each regime alarms at about the calibrated rate on fresh normal data
        assert 0.3 * rate < (scores[regime] > threshold).mean() < 3 * rate
    drift = (np.full((3, 4), np.nan), np.zeros((3, 2)))
    drift[0][1:] = 0.5  # at rest, the latent moves by half a moving-noise std
    assert detector.score(*drift, 1)[2] > threshold
    plain, plain_threshold, _ = cal.fit_detector(split(60), 1, rate, rest_below=None)
    assert plain.rest is None and plain.score(*drift, 1)[2] < plain_threshold  # hidden in the moving tail
    few, _, none = cal.fit_detector(split(5), 1, rate, rest_below=0.1)  # 495 rest frames < MIN_REST_FRAMES
    assert few.rest is None and none == 0.0


def test_calibration_fits_a_context_scale_that_finds_a_stop_in_open_space_a_wall_tail_hides(cal) -> None:
    """fit_detector(context=True): where the model is often wrong (near a wall, latent dim 0 > 0) normal residuals are
    large, elsewhere small; the context scale learns that, so a stop in open space stands out at the same false-alarm
    rate on fresh normal data, while the plain detector judges it against the wall tail."""
    import numpy as np

    rng = np.random.default_rng(1)

    def episode(wall: bool) -> tuple:
        t = 100
        latents = rng.normal(size=(t, 3))
        latents[:, 0] = (1.0 + np.abs(latents[:, 0])) * (1.0 if wall else -1.0)
        actions = rng.normal(size=(t, 2)) + 3.0  # always driving
        residuals = rng.normal(size=(t, 3)) * (2.0 if wall else 0.2)
        residuals[0] = np.nan
        return residuals, actions, latents

    def split(episodes: int) -> list:
        return [episode(i % 2 == 0) for i in range(episodes)]

    rate = 0.01
    detector, threshold, _ = cal.fit_detector(split(120), 1, rate, context=True)
    plain, plain_threshold, _ = cal.fit_detector(split(120), 1, rate)
    assert detector.context is not None and plain.context is None
    scores, _ = cal.detector_scores(detector, split(120), 1)
    assert 0.3 * rate < (scores > threshold).mean() < 3 * rate
    stop = episode(False)
    stop[0][50] = 1.2  # in open space, six quiet-noise stds on every dimension; a third of the wall noise
    assert detector.score(stop[0], stop[1], 1, stop[2])[50] > threshold
    assert plain.score(*stop[:2], 1)[50] < plain_threshold  # hidden in the wall tail
    with pytest.raises(ValueError, match="latents"):
        cal.fit_detector([s[:2] for s in split(120)], 1, rate, context=True)


def test_calibration_on_recorded_bags_fits_the_robots_own_stops(cal, tmp_path: Path, capsys, monkeypatch) -> None:
    """A robot's bundle is calibrated on its own recorded driving (--bags): episodes alternate between the splits,
    the rest regime learns from the recorded stops, the node reads the file; too little data is refused clearly."""
    from jepa_sim.collect import main as collect_main
    from jepa_world_model.bundle import read_manifest
    from jepa_world_model.surprise import read_calibration

    bags = []
    for i in range(2):
        bags.append(tmp_path / f"drive_{i}")
        assert collect_main(["--world", "two_rooms", "--episodes", "4", "--steps", "80", "--seed", str(i), "--policy",
                             "random_momentum", "--policy-arg", "rest_prob=0.1", "--out", str(bags[-1])]) == 0
    monkeypatch.setattr(cal, "MIN_REST_FRAMES", 100)  # a small recording; the shipped default wants 1,000 rest frames for the tail
    out = tmp_path / "surprise_calibration.json"
    # these recordings come from the simulator, whose frames at rest never change: the debiased rest regime would see
    # exactly nothing there, so the calibration refuses and says what to add (a camera's own bags carry noise)
    assert cal.main(["--bundle", str(BUNDLE), "--bags", *map(str, bags), "--window", "5", "--out", str(out)]) == 2
    assert "--rest-noise" in capsys.readouterr().err and not out.exists()
    assert cal.main(["--bundle", str(BUNDLE), "--bags", *map(str, bags), "--window", "5", "--rest-noise", "3", "--out", str(out)]) == 0
    calibration = read_calibration(out, read_manifest(BUNDLE, verify=False))  # tied to the bundle, as the node checks
    assert calibration.data["bags"] == [str(b) for b in bags] and calibration.data["episodes"] == 8
    assert calibration.validation_frames > 0 and calibration.threshold > 0 and 0 <= calibration.false_alarm_rate <= 1
    regime = calibration.detector().rest
    assert regime is not None and regime.command_below == pytest.approx(0.02 * 2.45) and calibration.rest_frames > 0
    assert regime.debias and calibration.rest_noise == pytest.approx(3 / 255, abs=1e-6)
    # too little driving for the context scale's MLP: calibrated without one, and said so
    assert calibration.detector().context is None and "without a context scale" in capsys.readouterr().err
    assert cal.main(["--bundle", str(BUNDLE), "--bags", str(tmp_path / "missing"), "--out", str(tmp_path / "x.json")]) == 2
    assert "need at least 2 recorded episodes" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_normal_data_uses_each_worlds_own_goal_directed_behaviour(cal) -> None:
    """Push-T has no doors for noisy_goal: its normal data has the scripted pusher in that share instead; the mix is
    otherwise the same (its rests included)."""
    assert cal.normal_policies("two_rooms") == cal.normal_policies("multi_room") == cal.NORMAL_POLICIES
    push_t = cal.normal_policies("push_t")
    assert len(push_t) == len(cal.NORMAL_POLICIES) and ("pusher", {}) in push_t
    assert all(name != "noisy_goal" for name, _ in push_t) and ("random_momentum", {"rest_prob": 0.05}) in push_t


def test_calibration_data_covers_the_layouts_the_bundle_was_trained_on(cal) -> None:
    """The shipped two-rooms bundle was trained with a door drawn per batch of episodes (the manifest's data.randomise):
    its normal data draws doors too, not only the world's default one; the fixed-door bundle keeps its world."""
    assert cal.bundle_world(REPO / "models" / "two_rooms") == ("two_rooms", {"door_y": "random"})
    name, kwargs = cal.bundle_world(REPO / "models" / "two_rooms_fixed_door")
    assert name == "two_rooms" and "door_y" not in kwargs


def test_normal_data_draws_a_layout_for_every_episode(cal) -> None:
    """A batched world draws its random door once per batch of environments: a split of normal data then saw a few doors
    (25 in 1,600 episodes, 5 of them in the share that rests), and the door-anywhere encoder's normal tails depend on the
    door (7x the camera-noise response at rest with the door at 55 px), so the calibrated tail did not carry over to the
    held-out split (false alarms 1.3e-2 at rest against 5e-4). Every episode must draw its own layout; a fixed layout
    stays fixed."""
    import numpy as np

    def doors(kwargs: dict) -> list[float]:
        out = []
        for _, episode in cal.normal_episodes("two_rooms", kwargs, 20, 2, seed=3):
            column = episode.frames[0][:, 32].astype(int).sum(axis=1)  # the dividing wall's column
            out.append(float(np.flatnonzero(column != column[0]).mean()))  # the door's rows
        return out

    assert cal.layouts_vary("two_rooms", {"door_y": "random"}) and not cal.layouts_vary("two_rooms", {})
    assert not cal.layouts_vary("multi_room", {}) and not cal.layouts_vary("push_t", {})
    random_doors = doors({"door_y": "random"})
    assert len(random_doors) == 20 and len(set(random_doors)) >= 12  # whole pixels; one per batch: 5 (one per policy)
    assert doors({}).count(31.5) >= 18  # the default door (the agent may cover part of the wall's column)
