"""Behaviour of the built-in point-mass worlds: determinism, bounds, walls, doors, goals, batching."""

from __future__ import annotations

import numpy as np
import pytest

from jepa_sim.worlds import make_batch_world, make_world, world_names
from jepa_sim.worlds.multi_room import MultiRoom
from jepa_sim.worlds.point_mass import AGENT_CHANNEL, WALL_CHANNEL
from jepa_sim.worlds.two_rooms import TwoRooms, TwoRoomsBatch

# two_rooms defaults: wall columns [31, 34), door gap y in [28, 36].
WALL_X0, WALL_X1, DOOR_LO, DOOR_HI = 31.0, 34.0, 28.0, 36.0


def test_registry_names_and_unknown_name():
    assert world_names() == ["two_rooms", "multi_room", "point_maze", "push_t"]
    with pytest.raises(ValueError, match="two_rooms, multi_room, point_maze, push_t"):
        make_world("three_rooms")
    with pytest.raises(ValueError, match="bad arguments for world 'two_rooms'"):
        make_world("two_rooms", no_such_option=1)


def test_spec_and_observation_layout():
    world = make_world("two_rooms")
    obs = world.reset(seed=0)
    assert world.spec.image_size == 64 and world.spec.action_dim == 2 and world.spec.action_norm_max == pytest.approx(2.45)
    assert obs.image.shape == (64, 64, 3) and obs.image.dtype == np.uint8
    assert obs.proprio.dtype == np.float32 and obs.proprio.shape == (4,)
    np.testing.assert_array_equal(obs.proprio[:2], world.true_state())
    # walls in the blue channel: the three wall columns outside the door, and the borders
    walls = obs.image[..., WALL_CHANNEL] > 0
    assert walls[10, 31:34].all() and not walls[32, 31:34].any() and walls[0].all() and walls[:, 63].all()
    # the agent's dot peaks in the red channel at the agent's pixel
    col, row = np.round(world.world_to_pixel(world.true_state())).astype(int)
    assert np.unravel_index(obs.image[..., AGENT_CHANNEL].argmax(), (64, 64)) == (row, col)


def test_determinism_under_seed():
    a, b = TwoRooms(), TwoRooms()
    rng = np.random.default_rng(3)
    actions = rng.uniform(-3, 3, size=(50, 2))
    oa, ob = a.reset(seed=7), b.reset(seed=7)
    np.testing.assert_array_equal(oa.image, ob.image)
    for act in actions:
        oa, _ = a.step(act)
        ob, _ = b.step(act)
    np.testing.assert_array_equal(oa.proprio, ob.proprio)
    np.testing.assert_array_equal(a.goal_state, b.goal_state)
    assert not np.array_equal(TwoRooms().reset(seed=8).proprio, b.reset(seed=7).proprio)


def test_action_norm_and_box_clipping():
    world = TwoRooms()
    world.reset(start=np.array([10.0, 10.0]), goal=np.array([50.0, 50.0]))
    obs, info = world.step(np.array([10.0, 0.0]))
    np.testing.assert_allclose(obs.proprio[2:], [2.45, 0.0], atol=1e-6)
    assert info.clipped
    obs, info = world.step(np.array([2.0, 2.0]))  # norm 2.83 -> 2.45 along the diagonal
    np.testing.assert_allclose(obs.proprio[2:], [2.45 / np.sqrt(2)] * 2, atol=1e-5)
    obs, info = world.step(np.array([1.0, -0.5]))
    np.testing.assert_allclose(obs.proprio[2:], [1.0, -0.5], atol=1e-6)
    assert not info.clipped
    with pytest.raises(ValueError, match="finite"):
        world.step(np.array([np.nan, 0.0]))


def test_wall_blocks_outside_door_and_door_passes():
    world = TwoRooms()
    world.reset(start=np.array([29.5, 10.0]), goal=np.array([50.0, 50.0]))
    obs, info = world.step(np.array([2.45, 0.0]))  # would enter the wall at x=31
    assert info.extra["blocked"] and info.clipped
    assert obs.proprio[0] < WALL_X0 and obs.proprio[0] == pytest.approx(WALL_X0, abs=1e-2)
    for _ in range(20):  # pushing on keeps it at the wall
        obs, _ = world.step(np.array([2.45, 0.0]))
    assert obs.proprio[0] < WALL_X0
    # through the door: a straight horizontal run passes
    world.reset(start=np.array([25.0, 32.0]), goal=np.array([50.0, 50.0]))
    for _ in range(8):
        obs, info = world.step(np.array([2.45, 0.0]))
        assert not info.extra["blocked"]
    assert obs.proprio[0] > WALL_X1


def test_no_tunnelling_random_walk_only_crosses_at_the_door():
    batch = TwoRoomsBatch(64)
    batch.reset(seeds=list(range(64)))
    rng = np.random.default_rng(0)
    crossings = 0
    for _ in range(300):
        before = batch.pos.copy()
        batch.step(rng.uniform(-2.45, 2.45, size=(64, 2)))
        after = batch.pos
        assert batch.layout.is_free(after).all()
        side_before, side_after = before[:, 0] < WALL_X0, after[:, 0] < WALL_X0
        crossed = side_before != side_after
        # a crossing segment meets the wall's x range inside the door gap
        crossings += int(crossed.sum())
        for i in np.flatnonzero(crossed):
            t = (np.array([WALL_X0, WALL_X1]) - before[i, 0]) / (after[i, 0] - before[i, 0])
            ys = before[i, 1] + np.clip(t, 0, 1) * (after[i, 1] - before[i, 1])
            assert (ys > DOOR_LO).all() and (ys < DOOR_HI).all()
        assert ((after >= 1.0) & (after <= 63.0)).all()
    assert crossings > 0  # the check above was exercised


def test_success_within_radius():
    world = TwoRooms(success_radius=1.0)
    world.reset(start=np.array([20.0, 20.0]), goal=np.array([22.0, 20.0]))
    assert not world.is_success()
    _, info = world.step(np.array([1.2, 0.0]))
    assert info.success and world.is_success()  # 0.8 px away
    _, info = world.step(np.array([-0.5, 0.0]))
    assert not info.success  # 1.3 px away
    # the same test on published states (the demo client's)
    goal = world.goal_state
    assert world.state_success(goal, goal + np.array([0.8, 0.0], np.float32))
    assert not world.state_success(goal, goal + np.array([0.0, 1.3], np.float32))


def test_goal_image_equals_observation_at_goal():
    world = TwoRooms()
    world.reset(seed=5)
    goal = world.goal_state.copy()
    obs = world.reset(start=goal, goal=goal)
    np.testing.assert_array_equal(world.goal_observation().image, obs.image)
    world.reset(seed=5)
    assert not np.array_equal(world.goal_observation().image, world.reset(seed=5).image)


def test_goal_in_other_room_and_bad_goal():
    world = TwoRooms(goal_in_other_room=True)
    for seed in range(30):
        world.reset(seed=seed)
        assert (world.true_state()[0] < 32.5) != (world.goal_state[0] < 32.5)
    with pytest.raises(ValueError, match="inside a wall"):
        world.reset(goal=np.array([32.0, 5.0]))


def test_batched_equals_single():
    seeds = [11, 12, 13, 14]
    batch = TwoRoomsBatch(4, goal_in_other_room=True)
    obs_b = batch.reset(seeds)
    singles = [TwoRooms(goal_in_other_room=True) for _ in seeds]
    obs_s = [w.reset(seed=s) for w, s in zip(singles, seeds)]
    rng = np.random.default_rng(1)
    for _ in range(40):
        for i in range(4):
            np.testing.assert_array_equal(obs_b.image[i], obs_s[i].image)
            np.testing.assert_array_equal(obs_b.proprio[i], obs_s[i].proprio)
        actions = rng.uniform(-3, 3, size=(4, 2))
        obs_b, info_b = batch.step(actions)
        steps = [w.step(a) for w, a in zip(singles, actions)]
        obs_s = [o for o, _ in steps]
        assert info_b.success.tolist() == [i.success for _, i in steps]


def test_image_size_rescales_and_pixel_mapping_roundtrips():
    world = TwoRooms(image_size=128)
    obs = world.reset(seed=0)
    assert obs.image.shape == (128, 128, 3)
    xy = np.array([12.3, 40.7])
    np.testing.assert_allclose(world.pixel_to_world(world.world_to_pixel(xy)), xy)
    assert world.render_map().shape == (128, 128, 3)


def test_multi_room_far_goals_and_layout():
    world = MultiRoom(goal_far=True, far_rooms=3)
    layout = world.layout
    assert layout.num_rooms == 9 and len(layout.doors) == 8  # a spanning tree of doors
    for seed in range(10):
        world.reset(seed=seed)
        start_room = int(layout.room_of(world.true_state())[0])
        goal_room = int(layout.room_of(world.goal_state)[0])
        assert layout.room_distances(start_room)[goal_room] >= 3
    assert world.reset(seed=0).image.shape == (64, 64, 3)
    assert make_batch_world("multi_room", 3, rooms="2x2").reset(0).image.shape == (3, 64, 64, 3)
    with pytest.raises(ValueError, match="rows x cols"):
        MultiRoom(rooms="three")


@pytest.mark.parametrize("doors", [1, 2, 4])
def test_multi_room_goals_an_exact_number_of_doors_away(doors):
    world = MultiRoom(goal_doors=doors)
    layout = world.layout
    for seed in range(8):
        world.reset(seed=seed)
        start_room = int(layout.room_of(world.true_state())[0])
        dist = layout.room_distances(start_room)
        goal_room = int(layout.room_of(world.goal_state)[0])
        assert dist[goal_room] == min(doors, int(dist.max()))
