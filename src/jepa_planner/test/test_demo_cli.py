"""The demo's command line and pictures (the node processes themselves are covered by tests/test_agent_integration.py)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from jepa_planner.demo import EpisodeRecord, run, save_pictures
from jepa_planner.world_defaults import REPO, WORLD_DEFAULTS, missing_bundle_hint, world_command_bounds
from jepa_sim.worlds import make_world


def test_bad_world_args_and_missing_bundle_exit_2_before_starting_nodes(tmp_path, capsys) -> None:
    assert run(["--world", "multi_room", "--world-args", "[1, 2]", "--out", str(tmp_path)]) == 2
    assert "YAML mapping" in capsys.readouterr().err
    assert run(["--world", "multi_room", "--bundle", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "logs").exists()
    assert run(["--world", "two_rooms", "--world-args", "{no_such_option: 1}", "--out", str(tmp_path)]) == 2
    assert "no_such_option" in capsys.readouterr().err
    assert run(["--world", "two_rooms", "--world-args", "{door_y: 20, door_y: 40}", "--out", str(tmp_path)]) == 2
    assert "appears twice" in capsys.readouterr().err  # not silently the last one


def test_an_optional_world_without_its_extra_is_one_line_naming_what_to_install(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gym_pusht.envs.pusht", None)  # as if gym-pusht were not installed
    assert run(["--world", "push_t", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install -r requirements/extras-pusht.txt" in err
    assert not (tmp_path / "logs").exists()


def test_a_world_without_a_bundle_names_its_training_recipe(tmp_path) -> None:
    hint = missing_bundle_hint("push_t", REPO)
    assert "jepa-train --config config/train/push_t.yaml" in hint and "--bundle" in hint
    assert (REPO / "config" / "train" / "push_t.yaml").exists()
    assert "no training recipe" in missing_bundle_hint("no_such_world", tmp_path)


def test_pictures_use_world_coordinates_and_draw_plans_on_the_gif(tmp_path) -> None:
    world = make_world("multi_room")  # 96 px arena seen at 64 px
    obs = world.reset(seed=0)
    path = [[10.0, 10.0], [12.0, 11.0], [80.0, 80.0], [81.0, 81.0]]  # a reset jump in the middle
    record = EpisodeRecord(seed=0, success=True, goal=[81.0, 81.0], path=path)
    plan = np.array([[48.0, 48.0]])  # arena centre, in world px
    saved = save_pictures(tmp_path, world, [record], [obs.image], [plan])
    assert any(s.endswith("trajectories.png") for s in saved) and any(s.endswith(".gif") for s in saved)
    gif = np.asarray(Image.open(tmp_path / "episode.gif").convert("RGB"))
    centre = gif.shape[0] // 2  # the plan point lands at the centre of the 4x scaled frame
    assert (gif[centre - 1 : centre + 2, centre - 1 : centre + 2] == (255, 255, 0)).all()


def test_latencies_are_timed_by_the_middleware_receipt_when_it_gives_one() -> None:
    """The client's latency figures leave its own executor out: the message info's receive time, else the wall clock."""
    import inspect
    import time

    from jepa_planner.demo import DemoClient

    assert DemoClient.received_s({"received_timestamp": 5_000_000_000}) == 5.0
    for no_time in (None, {}, {"received_timestamp": 0}):
        assert abs(DemoClient.received_s(no_time) - time.time()) < 5.0
    for callback in (DemoClient.on_image, DemoClient.on_command, DemoClient.on_plan):
        inspect.signature(callback).bind(object(), object(), object())  # (self, msg, info): rclpy passes the info
        try:
            inspect.signature(callback).bind(object(), object())
        except TypeError:
            pass
        else:
            raise AssertionError(f"{callback.__name__} takes no MessageInfo: rclpy would not pass it")


def test_the_actor_is_bounded_by_the_worlds_own_action_bounds() -> None:
    """The params file's 2.45 px are two-rooms'; a world with larger actions gets its own bounds, never more."""
    assert world_command_bounds("two_rooms", {}) == {"max_command": 2.45, "max_command_norm": 2.45}
    try:
        bounds = world_command_bounds("push_t", {"goal_steps": 25})
    except ImportError:
        pytest.skip("push_t extra not installed: pip install -r requirements/extras-pusht.txt")
    assert bounds == {"max_command": 50.0, "max_command_norm": 0.0}


def test_push_t_plans_with_its_benchmark_profile_unless_told_otherwise() -> None:
    """The params file's default profile is two-rooms' wall search; the Push-T demo plans as bench_push_t does."""
    from jepa_planner.profiles import load_profile

    assert WORLD_DEFAULTS["push_t"].profile == "flat_cem" and load_profile("flat_cem").kind == "flat"
    assert WORLD_DEFAULTS["two_rooms"].profile == WORLD_DEFAULTS["multi_room"].profile == ""  # the params file's


def test_each_worlds_defaults_are_the_world_its_shipped_bundle_learned() -> None:
    """The demo's and the launch file's options for a world include every option its shipped bundle was trained with
    (point_maze's large maze, control rate and picture: with the world's own defaults the bundle's latent collapsed
    to one point and every goal was 'reached' on its first step)."""
    import yaml

    from jepa_planner.evaluate import bundle_world
    from jepa_planner.world_defaults import world_defaults
    from jepa_sim.worlds import world_names

    sim = yaml.safe_load((REPO / "config" / "agent.yaml").read_text())["/**/sim"]["ros__parameters"]
    shipped = [w for w in world_names() if (REPO / "models" / w / "manifest.json").is_file()]
    assert {"two_rooms", "multi_room", "point_maze", "push_t"} <= set(shipped)
    for world in shipped:
        trained_in, trained = bundle_world(str(REPO / "models" / world))
        assert trained_in == world
        demo = yaml.safe_load(world_defaults(world).world_args) or {}
        launch = yaml.safe_load(sim["world_options"][world] or "{}") or {}
        for name, options in (("the demo's", demo), ("the params file's", launch)):
            differ = {k: (v, options.get(k)) for k, v in trained.items() if options.get(k) != v}
            assert not differ, f"{world}: {name} options differ from models/{world}'s training world: {differ}"
