"""collect_episodes and behaviour policies."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from jepa_sim.collect import collect_episodes, main, parse_world_args
from jepa_sim.policies import make_policy
from jepa_sim.worlds import make_batch_world
from jepa_sim.worlds.two_rooms import TwoRooms


def test_collect_shapes_metadata_and_consistency():
    eps = collect_episodes("two_rooms", n_episodes=5, steps=20, policy="random", seed=3, batch_size=2, goal_in_other_room=True)
    assert len(eps) == 5 and eps.num_frames == 5 * 21
    meta = eps.metadata
    assert meta["world"] == "two_rooms" and meta["policy"] == "random" and meta["seed"] == 3
    assert meta["world_spec"]["image_size"] == 64 and meta["world_kwargs"] == {"goal_in_other_room": True}
    for ep in eps.episodes:
        ep.validate()
        assert ep.frames.shape == (21, 64, 64, 3) and ep.actions.shape == (21, 2) and ep.state.shape == (21, 2)
        assert np.all(ep.actions[-1] == 0) and (np.linalg.norm(ep.actions, axis=1) <= 2.45 + 1e-6).all()
        # proprio velocity is the displacement actually made; it equals the action unless a wall stopped it
        np.testing.assert_allclose(np.diff(ep.state, axis=0), ep.proprio[1:, 2:], atol=1e-4)
    stamps = np.concatenate([e.stamps_ns for e in eps.episodes])
    assert (np.diff(stamps) > 0).all()


def test_collect_is_reproducible_and_replays_in_the_single_world():
    a = collect_episodes("two_rooms", 3, 15, "random_momentum", seed=9)
    b = collect_episodes("two_rooms", 3, 15, "random_momentum", seed=9)
    for ea, eb in zip(a.episodes, b.episodes):
        np.testing.assert_array_equal(ea.frames, eb.frames)
        np.testing.assert_array_equal(ea.actions, eb.actions)
    # replaying the recorded actions in a fresh single world reproduces frames exactly
    ep, goal = a.episodes[1], np.array(a.metadata["goals"][1])
    world = TwoRooms()
    obs = world.reset(start=ep.state[0].astype(np.float64), goal=goal)
    np.testing.assert_array_equal(obs.image, ep.frames[0])
    for t in range(15):
        obs, _ = world.step(ep.actions[t].astype(np.float64))
        np.testing.assert_allclose(obs.proprio, ep.proprio[t + 1], atol=1e-4)


def test_random_momentum_crosses_the_door_more_than_random():
    def crossing_rate(policy: str) -> float:
        eps = collect_episodes("two_rooms", 128, 100, policy, seed=0)
        side = [np.sign(e.state[:, 0] - 32.5) for e in eps.episodes]
        return float(np.mean([(s != s[0]).any() for s in side]))

    momentum, plain = crossing_rate("random_momentum"), crossing_rate("random")
    assert momentum > 0.1 and momentum > 2 * plain


def test_random_momentum_rests_with_zero_commands_and_is_unchanged_without_rests():
    resting = collect_episodes("two_rooms", 16, 100, "random_momentum", seed=4, policy_kwargs={"rest_prob": 0.05, "rest_steps": (8, 12)})
    still = np.concatenate([np.linalg.norm(e.actions[:-1], axis=1) == 0 for e in resting.episodes])
    assert 0.1 < still.mean() < 0.6  # stops now and then, and moves the rest of the time
    for e in resting.episodes:  # a rest lasts at least 8 steps (unless the episode ends) and the agent stays put
        runs = np.diff(np.flatnonzero(np.diff(np.r_[0, np.linalg.norm(e.actions[:-1], axis=1) == 0, 0])).reshape(-1, 2), axis=1)
        assert (runs[:-1] >= 8).all()
        stopped = np.flatnonzero(np.linalg.norm(e.actions[:-1], axis=1) == 0)
        np.testing.assert_array_equal(e.state[stopped + 1], e.state[stopped])
    # rest_prob = 0 draws nothing extra: the same data as the policy before the option existed
    plain = collect_episodes("two_rooms", 3, 30, "random_momentum", seed=9)
    zero = collect_episodes("two_rooms", 3, 30, "random_momentum", seed=9, policy_kwargs={"rest_prob": 0.0})
    for a, b in zip(plain.episodes, zero.episodes):
        np.testing.assert_array_equal(a.actions, b.actions)
    with pytest.raises(ValueError, match="rest_steps"):
        make_policy("random_momentum", rest_steps=(5, 2))
    with pytest.raises(ValueError, match="rest_prob"):
        make_policy("random_momentum", rest_prob=1.5)


def test_noisy_goal_reaches_goals_through_the_door():
    eps = collect_episodes("two_rooms", 16, 80, "noisy_goal", seed=2, policy_kwargs={"noise": 0.2}, goal_in_other_room=True)
    reached = [(np.linalg.norm(e.state - np.array(g), axis=1) < 1.0).any() for e, g in zip(eps.episodes, eps.metadata["goals"])]
    assert np.mean(reached) >= 0.9


def test_door_probe_crosses_the_moved_door_and_pushes_the_wall_at_every_height():
    """Data for a moved door: passages through its gap and pushes against the wall far from it."""
    door = 12.0
    eps = collect_episodes("two_rooms", 16, 100, "door_probe", seed=3, door_y=door)
    states = np.stack([e.state for e in eps.episodes])
    actions = np.stack([e.actions[:-1] for e in eps.episodes])
    assert np.linalg.norm(actions, axis=-1).max() <= 2.45 + 1e-6
    x, y = states[..., 0], states[..., 1]
    crossed = np.diff(np.sign(x - 32.0), axis=1) != 0
    assert crossed.sum() >= 16  # about one passage per episode or more
    assert np.all(np.abs(y[:, 1:][crossed] - door) < 4.0)  # only ever through the gap
    # pressed on the dividing wall (either face) at heights well away from the door, above and below mid-arena
    pressed = (np.abs(x - 32.0) < 3.0) & (np.abs(y - door) > 6.0)
    assert pressed.sum() >= 100
    assert (y[pressed] < 32).any() and (y[pressed] > 44).any()
    # and keeps pressing for two model steps (frameskip 5) or more: a rollout against the wall needs that data
    held = (np.abs(np.diff(x, axis=1)) < 0.05) & (np.abs(x[:, 1:] - 32.0) < 3.0)
    longest = max(max((len(r) for r in "".join("1" if h else "0" for h in row).split("0")), default=0) for row in held)
    assert longest >= 10


def test_door_probe_retreats_back_from_the_wall_it_pressed_on():
    """retreat_range: after pressing on the wall, the agent drives straight back from it (data of "at the wall,
    driving away moves"), several times as often as without; the pressing itself stays."""
    door = 12.0

    def at_the_wall(**kwargs):
        eps = collect_episodes("two_rooms", 16, 100, "door_probe", seed=3, door_y=door, policy_kwargs=kwargs)
        states = np.stack([e.state for e in eps.episodes])
        actions = np.stack([e.actions[:-1] for e in eps.episodes])
        x, y, dx = states[:, :-1, 0], states[:, :-1, 1], np.diff(states[..., 0], axis=1)
        near = (np.abs(x - 32.0) < 3.0) & (np.abs(y - door) > 6.0)  # at the dividing wall, away from the door
        away = near & (np.sign(actions[..., 0]) == np.sign(x - 32.0)) & (np.abs(actions[..., 0]) > 1.0)
        return int((away & (np.abs(dx) > 0.8)).sum()), int((near & (np.abs(dx) < 0.05)).sum())

    (plain_away, plain_pressed), (away, pressed) = at_the_wall(), at_the_wall(retreat_range=(3.0, 15.0))
    assert away >= 3 * max(plain_away, 1) and away >= 20
    assert pressed >= 0.5 * plain_pressed
    with pytest.raises(ValueError, match="retreat_range"):
        make_policy("door_probe", retreat_range=(5.0, 2.0))


def test_door_probe_slant_presses_on_the_wall_at_an_angle():
    """slant: the aim beyond the wall moves along it, so a good share of the pressing is at an angle to the wall."""
    door = 12.0

    def pressing(**kwargs):
        eps = collect_episodes("two_rooms", 16, 100, "door_probe", seed=3, door_y=door, policy_kwargs=kwargs)
        states = np.stack([e.state for e in eps.episodes])
        actions = np.stack([e.actions[:-1] for e in eps.episodes])
        speed = np.linalg.norm(actions, axis=-1)
        pressed = (np.abs(states[:, :-1, 0] - 32.0) < 3.0) & (np.abs(np.diff(states[..., 0], axis=1)) < 0.05) & (speed > 0.5)
        return int(pressed.sum()), int((pressed & (np.abs(actions[..., 1]) > 0.3 * speed)).sum())

    (plain, plain_slanted), (pressed, slanted) = pressing(), pressing(slant=10.0)
    assert slanted >= 0.3 * pressed and slanted >= 4 * max(plain_slanted, 1) and pressed >= 0.5 * plain
    with pytest.raises(ValueError, match="slant"):
        make_policy("door_probe", slant=-1.0)


def test_door_probe_is_reproducible_and_refuses_worlds_without_doors():
    a = collect_episodes("multi_room", 4, 30, "door_probe", seed=5)
    b = collect_episodes("multi_room", 4, 30, "door_probe", seed=5)
    assert all(np.array_equal(e.actions, f.actions) for e, f in zip(a.episodes, b.episodes))
    spec = make_batch_world("two_rooms", 1).spec
    with pytest.raises(ValueError, match=r"door_probe.*doors"):
        make_policy("door_probe").reset(SimpleNamespace(spec=spec, n=1), np.random.default_rng(0))
    with pytest.raises(ValueError, match="door_fraction"):
        make_policy("door_probe", door_fraction=1.5)

def test_collect_accepts_world_instance_and_rejects_bad_input():
    eps = collect_episodes(TwoRooms(image_size=32), 2, 5, "random")
    assert eps.image_size == (32, 32)
    with pytest.raises(ValueError, match="valid names: random, random_momentum, noisy_goal, door_probe"):
        collect_episodes("two_rooms", 1, 5, "teleport")
    with pytest.raises(ValueError, match="momentum"):
        make_policy("random_momentum", momentum=1.5)
    with pytest.raises(ValueError, match=">= 1"):
        collect_episodes("two_rooms", 0, 5)
    assert parse_world_args(["door_y=20", "goal_in_other_room=true"]) == {"door_y": 20, "goal_in_other_room": True}


def test_cli_config_file_and_flag_override(tmp_path):
    from jepa_world_model.data.bags import default_topics, load_bags

    config = tmp_path / "c.yaml"
    config.write_text("world: two_rooms\nworld_args: {image_size: 32}\nepisodes: 3\nsteps: 4\npolicy: random\nseed: 5\n")
    assert main(["--config", str(config), "--episodes", "2", "--out", str(tmp_path / "bag")]) == 0
    loaded = load_bags([tmp_path / "bag"], default_topics())
    assert len(loaded) == 2 and loaded.image_size == (32, 32) and loaded.metadata["seed"] == 5
    config.write_text("wrld: two_rooms\n")
    with pytest.raises(ValueError, match="unknown keys"):
        main(["--config", str(config), "--out", str(tmp_path / "other")])
