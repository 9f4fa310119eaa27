"""The optional worlds point_maze (gymnasium-robotics + MuJoCo) and push_t (gym-pusht + pymunk).

Each world's tests skip, with the pip command in the reason, when its extra is not installed
(CI installs only requirements/core.txt). The missing-extra error itself is tested always.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from jepa_sim.collect import collect_episodes
from jepa_sim.worlds import make_world

POINT_MAZE_SKIP = "point_maze extra not installed: pip install -r requirements/extras-pointmaze.txt"
PUSH_T_SKIP = "push_t extra not installed: pip install -r requirements/extras-pusht.txt"


def _build(name: str, reason: str, **kwargs):
    try:
        return make_world(name, **kwargs)
    except ImportError:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def maze():
    world = _build("point_maze", POINT_MAZE_SKIP, maze="umaze")
    yield world
    world.close()


@pytest.fixture(scope="module")
def pusht():
    world = _build("push_t", PUSH_T_SKIP)
    yield world
    world.close()


@pytest.fixture(params=["maze", "pusht"])
def world(request):
    return request.getfixturevalue(request.param)


def _rollout(world, seed: int, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    obs = world.reset(seed=seed)
    states, images = [world.true_state()], [obs.image]
    for a in actions:
        obs, info = world.step(a)
        states.append(info.true_state)
        images.append(obs.image)
    return np.stack(states), np.stack(images)


def _random_actions(world, n: int, seed: int = 0) -> np.ndarray:
    low, high = np.asarray(world.spec.action_low), np.asarray(world.spec.action_high)
    return np.random.default_rng(seed).uniform(low, high, size=(n, len(low)))


# ---------------------------------------------------------------------------- missing extras
@pytest.mark.parametrize(
    ("name", "blocked_module", "hint"),
    [
        ("point_maze", "gymnasium_robotics.envs.maze.point_maze", "requirements/extras-pointmaze.txt"),
        ("push_t", "gym_pusht.envs.pusht", "requirements/extras-pusht.txt"),
    ],
)
def test_missing_extra_names_the_requirements_file(monkeypatch, name, blocked_module, hint):
    monkeypatch.setitem(sys.modules, blocked_module, None)  # makes that import fail as if absent
    with pytest.raises(ImportError, match=f"pip install -r {hint}"):
        make_world(name)


# ---------------------------------------------------------------------------- common API
def test_reset_and_steps_are_deterministic_under_seed(world):
    actions = _random_actions(world, 15)
    states_a, images_a = _rollout(world, 11, actions)
    goal_a = world.goal_state.copy()
    states_b, images_b = _rollout(world, 11, actions)
    np.testing.assert_array_equal(states_a, states_b)
    np.testing.assert_array_equal(images_a, images_b)
    np.testing.assert_array_equal(goal_a, world.goal_state)
    states_c, _ = _rollout(world, 12, actions)
    assert not np.array_equal(states_a[0], states_c[0])


def test_observation_layout(world):
    obs = world.reset(seed=0)
    side = world.spec.image_size
    assert obs.image.shape == (side, side, 3) and obs.image.dtype == np.uint8
    assert obs.proprio.shape == (world.spec.proprio_dim,) and obs.proprio.dtype == np.float32
    assert world.true_state().shape == (world.spec.state_dim,)
    assert world.goal_state.shape == (world.spec.state_dim,)
    np.testing.assert_allclose(obs.proprio[:2], world.true_state()[:2])
    assert world.render_map().shape == (side, side, 3)


def test_actions_are_clipped_to_the_spec_bounds(world):
    high = np.asarray(world.spec.action_high)
    world.reset(seed=3)
    _, inside = world.step(high * 0.5)
    assert not inside.clipped or inside.extra.get("blocked")
    over = np.array([high[0] * 10, high[1] * 0.5])
    _, info_over = world.step(over)
    world.reset(seed=3)
    world.step(high * 0.5)
    _, info_edge = world.step(np.array([high[0], high[1] * 0.5]))
    assert info_over.clipped
    np.testing.assert_array_equal(info_over.true_state, info_edge.true_state)
    with pytest.raises(ValueError, match="action"):
        world.step(np.array([np.nan, 0.0]))


def test_goal_image_equals_an_observation_at_the_goal(world):
    world.reset(seed=5)
    goal = world.goal_state.copy()
    goal_image = world.goal_observation().image
    obs = world.reset(seed=6, goal=goal, start=goal)
    np.testing.assert_array_equal(world.goal_state, goal)
    np.testing.assert_array_equal(obs.image, goal_image)  # exact: rendering depends on positions only
    np.testing.assert_array_equal(world.goal_observation().image, goal_image)
    assert world.is_success()


def test_sampled_start_is_not_a_success(world):
    for seed in range(5):
        world.reset(seed=seed)
        assert not world.is_success()


def test_goal_observation_does_not_disturb_the_episode(world):
    actions = _random_actions(world, 10, seed=4)
    plain, _ = _rollout(world, 21, actions)
    world.reset(seed=21)
    disturbed = [world.true_state()]
    for a in actions:
        world.goal_observation()
        world.render_map()
        disturbed.append(world.step(a)[1].true_state)
    np.testing.assert_array_equal(plain, np.stack(disturbed))


def test_collect_episodes_records_short_episodes(world):
    episodes = collect_episodes(world, n_episodes=2, steps=6, policy="random_momentum", seed=1)
    assert len(episodes.episodes) == 2
    for ep in episodes.episodes:
        side = world.spec.image_size
        assert ep.frames.shape == (7, side, side, 3)
        assert ep.state.shape == (7, world.spec.state_dim)
        assert np.all(ep.actions[:-1] >= np.asarray(world.spec.action_low))
        assert np.all(ep.actions[:-1] <= np.asarray(world.spec.action_high))
    assert episodes.metadata["world"] == world.spec.name


# ---------------------------------------------------------------------------- options
@pytest.mark.parametrize(("name", "reason"), [("point_maze", POINT_MAZE_SKIP), ("push_t", PUSH_T_SKIP)])
def test_image_size_option(name, reason):
    world = _build(name, reason, image_size=40)
    try:
        assert world.spec.image_size == 40
        assert world.reset(seed=0).image.shape == (40, 40, 3)
        assert world.goal_observation().image.shape == (40, 40, 3)
    finally:
        world.close()


def test_point_maze_sizes_goal_far_and_bad_input():
    world = _build("point_maze", POINT_MAZE_SKIP, maze="medium", goal_far=True)
    try:
        for seed in range(3):
            world.reset(seed=seed)
            dist = world.cell_distances(world.cell_of(world.true_state()[:2]))
            assert dist[world.cell_of(world.goal_state[:2])] >= 0.75 * max(dist.values())
        with pytest.raises(ValueError, match="wall"):
            world.reset(seed=0, start=np.array([-4.0 + 0.5, 4.0 - 0.5]))  # cell (0, 0) is a wall
    finally:
        world.close()
    with pytest.raises(ValueError, match="maze must be one of"):
        make_world("point_maze", maze="huge")


def test_point_maze_goal_cells_sets_the_task_length():
    world = _build("point_maze", POINT_MAZE_SKIP, maze="large", goal_cells=6)
    try:
        for seed in range(4):
            world.reset(seed=seed)
            dist = world.cell_distances(world.cell_of(world.true_state()[:2]))
            assert dist[world.cell_of(world.goal_state[:2])] == min(6, max(dist.values()))
    finally:
        world.close()
    with pytest.raises(ValueError, match="goal_cells"):
        make_world("point_maze", goal_cells=0)


def test_point_maze_force_moves_the_ball_and_success_uses_045_m(maze):
    cell_centre = np.array([-1.0, 1.0])  # U-maze cell (1, 1); cells (1, 2) and (1, 3) to its right are free
    maze.reset(seed=0, start=cell_centre, goal=cell_centre + np.array([0.44, 0.0]))
    assert maze.is_success()
    for _ in range(20):
        obs, _ = maze.step(np.array([1.0, 0.0]))
    assert obs.proprio[0] > cell_centre[0] + 0.05 and obs.proprio[2] > 0
    maze.reset(seed=0, start=cell_centre, goal=cell_centre + np.array([0.46, 0.0]))
    assert not maze.is_success()


def test_push_t_scripted_goal_is_reproducible_and_moves_the_block():
    world = _build("push_t", PUSH_T_SKIP, goal_steps=25)
    try:
        world.reset(seed=2)
        start, goal = world.true_state(), world.goal_state
        world.reset(seed=2)
        np.testing.assert_array_equal(goal, world.goal_state)
        np.testing.assert_array_equal(start, world.true_state())
        assert np.linalg.norm(goal[2:4] - start[2:4]) > 1.0 or abs(goal[4] - start[4]) > 0.05
        assert not world.is_success()
        # the pusher's recorded actions replayed from the start reach the goal state exactly
        actions = world.goal_actions
        assert actions.shape == (25, 2)
        for a in actions:
            world.step(a)
        np.testing.assert_allclose(world.true_state(), goal, atol=1e-3)
        world.reset(seed=2)
        # coverage on published states, the demo client's test: agrees with is_success on the live state
        assert world.state_success(goal, goal) and not world.state_success(goal, start)
        assert world.state_success(goal, world.true_state()) == world.is_success()
        assert world.state_success(goal, goal + np.array([40.0, 0.0, 1.0, 0.0, 0.0], np.float32))  # agent moved, block not
        assert not world.state_success(goal, goal + np.array([0.0, 0.0, 15.0, 0.0, 0.0], np.float32))
    finally:
        world.close()


def test_push_t_goals_ahead_keep_the_drawn_target_where_training_data_has_it():
    """With goal_steps the goal is the goal image: the T stays at the standard pose, so observations look like the
    standard task's (which the models were trained on) and only the goal image shows the goal."""
    from jepa_sim.worlds.push_t import DEFAULT_TARGET_POSE

    ahead, standard = _build("push_t", PUSH_T_SKIP, goal_steps=25), _build("push_t", PUSH_T_SKIP)
    try:
        obs = ahead.reset(seed=2)
        assert np.linalg.norm(ahead.goal_state[2:5] - np.asarray(DEFAULT_TARGET_POSE)) > 1.0  # goal elsewhere
        same = standard.reset(seed=0, start=ahead.true_state())
        np.testing.assert_array_equal(obs.image, same.image)  # the T where the standard task draws it
        assert not np.array_equal(ahead.goal_observation().image, obs.image)
    finally:
        ahead.close()
        standard.close()


def test_pusher_policy_moves_the_block_where_random_motion_barely_does(pusht) -> None:
    """Data for Push-T needs the block to move: the scripted pusher moves it in every episode."""
    moved = {}
    for policy in ("pusher", "random_momentum"):
        data = collect_episodes("push_t", 12, 100, policy=policy, seed=3)
        moved[policy] = np.array([np.linalg.norm(ep.state[-1, 2:4] - ep.state[0, 2:4]) for ep in data.episodes])
    assert (moved["pusher"] > 20).all()
    assert np.median(moved["pusher"]) > 5 * np.median(moved["random_momentum"])


def test_pusher_policy_refuses_worlds_without_a_block() -> None:
    with pytest.raises(ValueError, match="pushes the Push-T block"):
        collect_episodes("two_rooms", 1, 5, policy="pusher", seed=0)


def test_dino_wm_state_criterion() -> None:
    """Positions (agent and block, one norm) within 20 px and the block angle within pi/9, across the 2 pi wrap."""
    from jepa_sim.worlds.push_t import dino_wm_success

    goal = np.array([100.0, 100.0, 250.0, 250.0, 0.05])
    assert dino_wm_success(goal, goal + np.array([10, 0, 10, 0, 0]))  # |(10, 0, 10, 0)| = 14.1 px
    assert not dino_wm_success(goal, goal + np.array([15, 0, 15, 0, 0]))  # 21.2 px
    assert dino_wm_success(goal, np.array([100, 100, 250, 250, 2 * np.pi - 0.2]))  # 0.25 rad across the wrap
    assert not dino_wm_success(goal, np.array([100, 100, 250, 250, 0.05 + np.pi / 8]))  # 22.5 deg > 20 deg


def test_push_t_pusher_bag_from_jepa_collect_trains_on_what_the_recipe_collects(pusht, tmp_path) -> None:
    """Issue 18's data path: ``jepa-collect --world push_t --policy pusher`` writes MCAP that the bag loader,
    with the ``push_t`` topics preset, reads back frame for frame, action for action, as the training recipe's
    in-process collection draws it (so a bag-sourced recipe trains on the same episodes)."""
    from jepa_sim.collect import main as collect_main
    from jepa_world_model.config import load_config
    from jepa_world_model.data.bags import load_bags, topics_from_mapping

    bag = tmp_path / "push_t_pusher"
    collect_main(["--world", "push_t", "--policy", "pusher", "--episodes", "2", "--steps", "20", "--seed", "5",
                  "--out", str(bag)])
    recipe = tmp_path / "push_t_bags.yaml"
    recipe.write_text(f"name: push_t_bags\ndata:\n  source: bags\n  paths: [{bag}]\n  topics: {{preset: push_t}}\n")
    cfg = load_config(recipe)
    read = load_bags([str(bag)], topics_from_mapping(cfg.data.topics))
    drawn = collect_episodes("push_t", 2, 20, policy="pusher", seed=5)
    assert len(read) == len(drawn) == 2
    for got, want in zip(read.episodes, drawn.episodes, strict=True):
        np.testing.assert_array_equal(got.frames, want.frames)
        np.testing.assert_array_equal(got.actions, want.actions)
        np.testing.assert_array_equal(got.proprio, want.proprio)
        assert np.abs(got.actions).max() > 1.0  # real pushes, not zeroed actions


def test_point_maze_renders_from_any_thread() -> None:
    """The sim node builds its world on one thread and steps it on an executor's pool threads: an EGL context left
    current on the building thread had failed every render elsewhere (EGL_BAD_ACCESS)."""
    import threading

    try:
        world = make_world("point_maze")
    except ImportError as exc:
        pytest.skip(str(exc))
    try:
        first = world.reset(seed=3).image
        errors: list[str] = []

        def render_here() -> None:
            try:
                world.goal_observation()
                world.step(np.zeros(2, np.float32))
            except Exception as exc:  # any thread's error, reported below
                errors.append(repr(exc))

        for _ in range(2):
            thread = threading.Thread(target=render_here)
            thread.start()
            thread.join()
        assert errors == []
        again = world.reset(seed=3).image  # and on this thread again, the same picture
        assert np.array_equal(first, again)
    finally:
        world.close()
