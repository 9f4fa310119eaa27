"""jepa_sim.violations: pairs are matched (identical until the violation) and each kind really breaks the physics."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from jepa_sim.violations import kinds_for, make_pairs
from jepa_sim.worlds import make_batch_world

MAX_STEP = 2.45


@pytest.mark.parametrize("world", ["two_rooms", "multi_room"])
@pytest.mark.parametrize("kind", kinds_for("two_rooms"))
def test_pairs_are_matched_and_reproducible(world: str, kind: str) -> None:
    pairs = make_pairs(world, kind, 6, seed=5, steps=36, first_step=12, tail_steps=10)
    again = make_pairs(world, kind, 6, seed=5, steps=36, first_step=12, tail_steps=10)
    assert len(pairs) == 6
    for p, q in zip(pairs, again, strict=True):
        p.check_matched()
        assert p.step == q.step and np.array_equal(p.impossible.frames, q.impossible.frames)
        assert 12 <= p.step <= 26 and len(p.possible) == len(p.impossible) == 37
        np.testing.assert_array_equal(p.possible.actions, p.impossible.actions)
        np.testing.assert_array_equal(p.possible.state[: p.step], p.impossible.state[: p.step])
        assert not np.array_equal(p.possible.state[p.step], p.impossible.state[p.step])
        p.possible.validate()
        p.impossible.validate()


def _steps(state: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(state, axis=0), axis=1)


def test_teleport_jumps_further_than_any_step() -> None:
    for p in make_pairs("two_rooms", "teleport", 10, seed=1):
        k = p.step
        assert _steps(p.possible.state).max() <= MAX_STEP + 1e-4
        assert np.linalg.norm(p.impossible.state[k] - p.impossible.state[k - 1]) > 3 * MAX_STEP


def test_through_wall_passes_where_the_possible_agent_is_stopped() -> None:
    env = make_batch_world("two_rooms", 1)
    for p in make_pairs("two_rooms", "through_wall", 10, seed=2):
        k, a = p.step, p.possible.actions[p.step - 1].astype(np.float64)
        start = p.possible.state[k - 1].astype(np.float64)[None]
        _, blocked = env.layout.move(start, a[None])
        assert blocked[0], "the possible agent is not stopped by a wall at the violation step"
        # the impossible agent makes the whole commanded move, ending in or beyond the wall
        np.testing.assert_allclose(p.impossible.state[k], start[0] + a, atol=1e-4)
        path = p.impossible.state[k - 1 : k + p.hold_steps + 1].astype(np.float64)
        _, crossing = env.layout.move(path[:-1], np.diff(path, axis=0))
        assert crossing.any() or not env.layout.is_free(path, 0.0).all()
        assert env.layout.is_free(p.impossible.state[k + p.hold_steps :].astype(np.float64), 0.0).all()


def test_freeze_stays_put_although_commanded() -> None:
    for p in make_pairs("two_rooms", "freeze", 10, seed=3, hold_steps=8):
        k = p.step
        window = slice(k - 1, k - 1 + 8)
        assert (np.linalg.norm(p.possible.actions[window], axis=1) > 1.0).all()
        assert (_steps(p.possible.state)[window] > 0.5).all()
        assert np.allclose(_steps(p.impossible.state)[window], 0.0)


@pytest.mark.parametrize("kind,speed", [("drift", 2.0), ("slow_drift", 0.5)])
def test_drift_moves_without_a_command(kind: str, speed: float) -> None:
    for p in make_pairs("two_rooms", kind, 10, seed=4):
        k = p.step
        assert np.allclose(p.possible.actions[k - 1 - 6 :], 0.0)
        assert np.allclose(_steps(p.possible.state)[k - 1 - 6 :], 0.0)
        assert _steps(p.impossible.state)[k - 1] == pytest.approx(speed, abs=1e-4)


def test_bad_requests_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="not available in world"):
        make_pairs("two_rooms", "block_moves", 2)
    with pytest.raises(ValueError, match="no room for a violation"):
        make_pairs("two_rooms", "teleport", 2, steps=20, first_step=15, tail_steps=10)


@pytest.mark.skipif(importlib.util.find_spec("gym_pusht") is None, reason="gym-pusht is not installed")
@pytest.mark.parametrize("kind", ["block_moves", "block_vanishes"])
def test_push_t_block_changes_without_contact(kind: str) -> None:
    for p in make_pairs("push_t", kind, 2, seed=0, steps=30, first_step=10, tail_steps=8):
        p.check_matched()
        k = p.step
        block_p, block_i = p.possible.state[k, 2:4], p.impossible.state[k, 2:4]
        assert np.linalg.norm(block_i - block_p) > 40.0
        assert np.linalg.norm(p.impossible.state[k, :2] - p.impossible.state[k - 1, 2:4]) > 100.0
