"""Factors of variation: names and ranges are checked, and every factor really changes what it names."""

from __future__ import annotations

import numpy as np
import pytest

from jepa_sim.camera import CameraPerturbation, PerturbedCamera
from jepa_sim.factors import FACTORS, check_factors, make_varied_world, parse_factors, valid_factors
from jepa_sim.worlds import make_world

# A non-nominal level of every factor, as the command line would give it.
LEVELS = {
    "noise": "0.0118",
    "brightness": "1.2",
    "contrast": "0.8",
    "gamma": "1.5",
    "shift_r": "0.05",
    "shift_g": "0.004",
    "shift_b": "-0.05",
    "background": "0.2",
    "blur": "1.0",
    "door_y": "20",
    "door_width": "14",
    "agent_size": "2.5",
    "placement": "corner",
    "wall_colour": "0,0.6,1",
    "floor_colour": "0.1",
    "agent_colour": "1,0.5,0",
    "action_noise": "1.0",
    "gain": "0.5",
    "delay": "3",
}
BASE = {"goal_in_other_room": True}


def test_every_factor_has_a_test_level():
    assert set(LEVELS) == set(FACTORS)


def test_unknown_factor_is_refused_with_the_valid_list():
    with pytest.raises(ValueError, match=r"unknown factor 'nois'.*noise=.*brightness="):
        parse_factors(["nois=0.1"], "two_rooms")
    with pytest.raises(ValueError, match="NAME=LEVEL"):
        parse_factors(["noise"], "two_rooms")


@pytest.mark.parametrize(
    "item, match",
    [
        ("noise=0.9", r"out of range \[0, 0.25\]"),
        ("brightness=0", r"out of range"),
        ("delay=1.5", "whole number"),
        ("placement=ceiling", "not one of uniform, near_wall, corner, mixed"),
        ("floor_colour=2", "grey level or r,g,b"),
        ("wall_colour=1,0", "grey level or r,g,b"),
        ("gain=fast", "must be a number"),
        ("door_y=60", "out of range"),
    ],
)
def test_out_of_range_levels_are_refused(item, match):
    with pytest.raises(ValueError, match=match):
        parse_factors([item], "two_rooms")


def test_world_factors_are_refused_on_worlds_without_them():
    with pytest.raises(ValueError, match="does not apply to world 'multi_room'"):
        check_factors({"door_y": 20}, "multi_room")
    assert {f.name for f in valid_factors("point_maze")} == {f.name for f in FACTORS.values() if f.kind == "camera"}


def _rollout(world, seed: int = 3, steps: int = 6):
    obs = world.reset(seed=seed)
    images, states = [obs.image], [world.true_state().copy()]
    for _ in range(steps):
        obs, info = world.step(np.array([2.0, 1.0]))
        images.append(obs.image)
        states.append(info.true_state.copy())
    return np.stack(images), np.stack(states), world.goal_observation().image, world.goal_state.copy()


@pytest.mark.parametrize("name", sorted(LEVELS))
def test_each_factor_changes_the_observation_or_the_world(name):
    nominal = _rollout(make_world("two_rooms", **BASE))
    varied_world = make_varied_world("two_rooms", BASE, parse_factors([f"{name}={LEVELS[name]}"], "two_rooms"))
    varied = _rollout(varied_world)
    if FACTORS[name].kind == "camera":
        assert isinstance(varied_world, PerturbedCamera)
        np.testing.assert_array_equal(varied[1], nominal[1])  # the camera changes nothing but the images
        assert not np.array_equal(varied[0], nominal[0])
        assert not np.array_equal(varied[2], nominal[2])  # the goal image is seen through the same camera
    elif name in ("action_noise", "gain", "delay"):
        np.testing.assert_array_equal(varied[1][0], nominal[1][0])  # same start
        assert not np.allclose(varied[1][1:], nominal[1][1:])  # other motion
    else:
        changed_images = not np.array_equal(varied[0], nominal[0]) or not np.array_equal(varied[2], nominal[2])
        assert changed_images


def test_camera_noise_is_reproducible_per_episode_seed():
    cam = make_varied_world("two_rooms", BASE, {"noise": 0.02})
    a, b = cam.reset(seed=5).image, cam.reset(seed=5).image
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, cam.reset(seed=6).image)


def test_camera_perturbation_levels():
    img = np.full((4, 4, 3), 100, np.uint8)
    assert CameraPerturbation(brightness=1.2).apply(img)[0, 0, 0] == 120
    assert CameraPerturbation(shift=(0.0, 1 / 255, 0.0)).apply(img)[0, 0].tolist() == [100, 101, 100]
    black = np.zeros((4, 4, 3), np.uint8)
    assert CameraPerturbation(background=(0.2, 0.2, 0.2)).apply(black)[0, 0].tolist() == [51, 51, 51]
    assert CameraPerturbation().is_identity and CameraPerturbation().apply(img) is img
    with pytest.raises(ValueError, match="brightness must be > 0"):
        CameraPerturbation(brightness=0.0)


def test_random_door_moves_between_episodes_and_shows_in_the_image():
    world = make_world("two_rooms", door_y="random", goal_in_other_room=True)
    doors, walls = set(), []
    for seed in range(6):
        world.reset(seed=seed)
        doors.add(round(world.layout.doors[0].centre[1], 3))
        walls.append(world.goal_observation().image[:, 32, 2].copy())  # the wall column, blue channel
        assert world.layout.room_of(world.true_state())[0] != world.layout.room_of(world.goal_state)[0]
    assert len(doors) == 6
    assert len({w.tobytes() for w in walls}) == 6
    world.reset(seed=2)
    again = world.layout.doors[0].centre
    world.reset(seed=2)
    assert world.layout.doors[0].centre == again  # reproducible per seed


@pytest.mark.parametrize("placement", ["near_wall", "corner"])
def test_placements_near_walls_and_corners(placement):
    world = make_world("two_rooms", placement=placement)
    layout = world.layout
    for seed in range(30):
        world.reset(seed=seed)
        for pt in (world.true_state(), world.goal_state):
            assert layout.is_free(pt, 2.0)[0] and not layout.is_free(pt, 5.0)[0]
            if placement == "corner":
                x0, y0, x1, y1 = layout.room_bounds(int(layout.room_of(pt)[0]))
                assert min(pt[0] - x0, x1 - pt[0]) <= 7.0 and min(pt[1] - y0, y1 - pt[1]) <= 7.0


def test_default_rendering_and_sampling_are_unchanged_by_the_new_options():
    plain = make_world("two_rooms")
    obs = plain.reset(seed=1)
    assert obs.image[..., 1].max() == 0  # green stays empty by default
    explicit = make_world("two_rooms", placement="uniform", action_gain=1.0, action_delay=0, action_noise=0.0)
    np.testing.assert_array_equal(explicit.reset(seed=1).image, obs.image)
    np.testing.assert_array_equal(explicit.goal_state, plain.goal_state)


def test_task_length_is_the_realised_number_of_doors():
    world = make_world("multi_room", goal_doors=3)
    world.reset(seed=0)
    assert world.task_length() == 3
    world = make_world("multi_room", goal_doors=50)  # asked for more than the layout has
    world.reset(seed=0)
    assert 1 <= world.task_length() < 50
