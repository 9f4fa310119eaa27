"""Matched possible / impossible episode pairs for violation-of-expectation tests of a world model.

Each pair shares the start state and every action; the two episodes are identical up to frame
``step - 1`` and from frame ``step`` on the impossible one breaks the world's physics in one way:

* ``teleport``: the agent jumps to a free place at least ``min_jump`` px away in one step.
* ``through_wall``: the agent, driven straight at a wall, passes through it instead of stopping.
* ``freeze``: the agent stops for ``hold_steps`` steps although commanded to move.
* ``drift``: after the commands go to zero, the agent moves on by itself for ``hold_steps`` steps.
* ``slow_drift``: ``drift`` at a quarter of the speed (a violation that builds up slowly).
* Push-T (only when gym-pusht is installed): ``block_moves`` (the block jumps while the pusher is
  far from it) and ``block_vanishes`` (the block leaves the scene).

Frame index conventions are those of ``jepa_sim.collect``: ``actions[t]`` moves frame t to t + 1,
the last action row is zero padding. A good world model scores the impossible episode as more
surprising, at ``step`` or within a model step or two after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from jepa_common.episodes import Episode
from jepa_sim.worlds import make_batch_world, make_world  # make_world: Push-T
from jepa_sim.worlds.point_mass import PointMassBatch

POINT_MASS_KINDS = ("teleport", "through_wall", "freeze", "drift", "slow_drift")
PUSH_T_KINDS = ("block_moves", "block_vanishes")
CANDIDATES = 512  # episodes simulated per rejection-sampling round


@dataclass
class ViolationPair:
    """One matched pair.

    Attributes:
        kind: the violation (see the module docstring).
        world: world registry name.
        step: first frame index at which ``impossible`` differs from ``possible``.
        possible / impossible: the two episodes (same length, same actions).
        hold_steps: raw steps the violation lasts (1 for a jump).
    """

    kind: str
    world: str
    step: int
    possible: Episode
    impossible: Episode
    hold_steps: int = 1

    def check_matched(self) -> None:
        """Raise ValueError unless the pair is matched: same actions, identical frames before ``step``, different at it."""
        p, q = self.possible, self.impossible
        if len(p) != len(q) or not np.array_equal(p.actions, q.actions):
            raise ValueError(f"{self.kind} pair: episodes differ in length or actions")
        if not np.array_equal(p.frames[: self.step], q.frames[: self.step]):
            raise ValueError(f"{self.kind} pair: frames differ before the violation step {self.step}")
        if np.array_equal(p.frames[self.step], q.frames[self.step]):
            raise ValueError(f"{self.kind} pair: frames are equal at the violation step {self.step}")


def kinds_for(world: str) -> tuple[str, ...]:
    """The violation kinds this module can build in ``world``."""
    if world in ("two_rooms", "multi_room"):
        return POINT_MASS_KINDS
    if world == "push_t":
        return PUSH_T_KINDS
    return ()


def make_pairs(
    world: str,
    kind: str,
    n: int,
    seed: int = 0,
    steps: int = 40,
    first_step: int = 12,
    tail_steps: int = 12,
    world_kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> list[ViolationPair]:
    """``n`` matched pairs of one violation kind, reproducible from ``seed``.

    Args:
        world: "two_rooms", "multi_room" or "push_t" (needs gym-pusht).
        kind: one of ``kinds_for(world)``.
        n: number of pairs.
        seed: seeds starts, actions and violation steps.
        steps: actions per episode (``steps + 1`` frames).
        first_step / tail_steps: the violation step lies in [first_step, steps - tail_steps], so the model has
            a full context before it and room to react after it.
        world_kwargs: options of the world's constructor.
        **options: kind options (min_jump, hold_steps, rest_steps, drift_speed, min_speed).

    Raises:
        ValueError: unknown kind for the world, or a step range that leaves no room.
        ImportError: push_t without gym-pusht.
    """
    if kind not in kinds_for(world):
        raise ValueError(f"violation kind {kind!r} is not available in world {world!r}; valid: {kinds_for(world)}")
    if n < 1:
        raise ValueError(f"n (number of pairs) must be >= 1, got {n}")
    if not 1 <= first_step <= steps - tail_steps:
        raise ValueError(f"no room for a violation: first_step={first_step}, steps={steps}, tail_steps={tail_steps}")
    rng = np.random.default_rng([seed, POINT_MASS_KINDS.index(kind) if kind in POINT_MASS_KINDS else 99])
    if world == "push_t":
        return _push_t_pairs(kind, n, rng, steps, first_step, tail_steps, world_kwargs or {}, **options)
    env = make_batch_world(world, CANDIDATES, **(world_kwargs or {}))
    assert env is not None
    out: list[ViolationPair] = []
    for _ in range(200):
        out += _point_mass_round(env, kind, rng, steps, first_step, steps - tail_steps, **options)
        if len(out) >= n:
            return out[:n]
    raise RuntimeError(f"could not build {n} {kind!r} pairs in {world!r} (only {len(out)}); relax the step range")


# ------------------------------------------------------------------------------------------ point mass
def _smooth_actions(rng: np.random.Generator, m: int, steps: int, max_step: float, min_speed: float, turn: float) -> np.ndarray:
    """(m, steps, 2) actions with a slowly turning heading and a speed in [min_speed, 1] x max_step."""
    heading = rng.uniform(0, 2 * np.pi, size=(m, 1)) + np.cumsum(rng.normal(0, turn, size=(m, steps)), axis=1)
    speed = rng.uniform(min_speed, 1.0, size=(m, 1)) * max_step * 0.999
    return np.stack([np.cos(heading), np.sin(heading)], axis=-1) * speed[..., None]


def _simulate(env: PointMassBatch, start: np.ndarray, actions: np.ndarray, hook: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Positions (m, T+1, 2) and blocked flags (m, T) under the world's physics; ``hook(t, pos, new_pos, action)``
    may replace the new positions (the violation)."""
    m, steps = actions.shape[:2]
    pos = np.zeros((m, steps + 1, 2))
    blocked = np.zeros((m, steps), bool)
    pos[:, 0] = start
    for t in range(steps):
        new, blocked[:, t] = env.layout.move(pos[:, t], actions[:, t])
        pos[:, t + 1] = new if hook is None else hook(t, pos[:, t], new, actions[:, t])
    return pos, blocked


def _point_mass_round(
    env: PointMassBatch,
    kind: str,
    rng: np.random.Generator,
    steps: int,
    lo: int,
    hi: int,
    min_jump: float = 10.0,
    hold_steps: int = 10,
    rest_steps: int = 6,
    drift_speed: float = 2.0,
    min_speed: float = 0.6,
) -> list[ViolationPair]:
    """One rejection-sampling round of ``CANDIDATES`` episodes; returns the valid pairs among them."""
    m, layout, max_step = env.n, env.layout, env.max_step
    start = np.stack([layout.sample_free(rng, env.sample_margin) for _ in range(m)])
    k = rng.integers(lo, hi + 1, size=m)  # the first differing frame: action k - 1 is where physics breaks
    rows = np.arange(m)
    if kind == "through_wall":
        actions = _smooth_actions(rng, m, steps, max_step, min_speed, turn=0.0)
    else:
        actions = _smooth_actions(rng, m, steps, max_step, min_speed, turn=0.15)
    if kind in ("drift", "slow_drift"):
        actions[np.arange(steps)[None, :] >= (k - 1 - rest_steps)[:, None]] = 0.0  # at rest, commands zero
    possible, blocked = _simulate(env, start, actions)
    valid = np.ones(m, bool)
    if kind == "teleport":
        targets = np.stack([layout.sample_free(rng, env.sample_margin) for _ in range(m)])
        valid &= np.linalg.norm(targets - possible[rows, k], axis=1) >= min_jump
        hook = _jump_hook(k, targets)
        hold = np.ones(m, int)
    elif kind == "freeze":
        moved = np.linalg.norm(np.diff(possible, axis=1), axis=2)  # (m, T)
        window = (np.arange(steps)[None, :] >= (k - 1)[:, None]) & (np.arange(steps)[None, :] < (k - 1 + hold_steps)[:, None])
        valid &= np.where(window, moved >= 0.5 * min_speed * max_step, True).all(axis=1)
        hook = _freeze_hook(k, hold_steps)
        hold = np.full(m, hold_steps)
    elif kind in ("drift", "slow_drift"):
        speed = drift_speed * (0.25 if kind == "slow_drift" else 1.0)
        angle = rng.uniform(0, 2 * np.pi, size=m)
        velocity = np.stack([np.cos(angle), np.sin(angle)], axis=1) * speed
        # the first drift step must really move (not straight into a wall)
        _, first_blocked = layout.move(possible[rows, k - 1], velocity)
        valid &= ~first_blocked
        hook = _drift_hook(layout, k, hold_steps, velocity)
        hold = np.full(m, hold_steps)
    else:  # through_wall
        hit = np.where(blocked.any(axis=1), blocked.argmax(axis=1), steps)
        k = hit + 1
        valid &= (k >= lo) & (k <= hi)
        k = np.clip(k, 1, steps)
        hook = _ghost_hook(layout, k)
        hold = np.ones(m, int)
    impossible, _ = _simulate(env, start, actions, hook)
    if kind == "through_wall":
        valid &= hook.crossed  # came out on the far side of the wall, inside the arena
        hold = np.maximum(hook.inside_steps, 1)
    valid &= np.linalg.norm(impossible[rows, k] - possible[rows, k], axis=1) > 1e-6
    pairs = []
    for i in np.flatnonzero(valid):
        pair = ViolationPair(
            kind=kind,
            world=env.spec.name,
            step=int(k[i]),
            possible=_episode(env, possible[i], actions[i], f"{env.spec.name}:{kind}:possible"),
            impossible=_episode(env, impossible[i], actions[i], f"{env.spec.name}:{kind}:impossible"),
            hold_steps=int(hold[i]),
        )
        try:
            pair.check_matched()  # a sub-pixel difference may render to the same image: not a visible violation
        except ValueError:
            continue
        pairs.append(pair)
    return pairs


def _jump_hook(k: np.ndarray, targets: np.ndarray) -> Any:
    def hook(t: int, pos: np.ndarray, new: np.ndarray, action: np.ndarray) -> np.ndarray:
        return np.where((t == k - 1)[:, None], targets, new)

    return hook


def _freeze_hook(k: np.ndarray, hold: int) -> Any:
    def hook(t: int, pos: np.ndarray, new: np.ndarray, action: np.ndarray) -> np.ndarray:
        frozen = (t >= k - 1) & (t < k - 1 + hold)
        return np.where(frozen[:, None], pos, new)

    return hook


def _drift_hook(layout: Any, k: np.ndarray, hold: int, velocity: np.ndarray) -> Any:
    def hook(t: int, pos: np.ndarray, new: np.ndarray, action: np.ndarray) -> np.ndarray:
        drifting = (t >= k - 1) & (t < k - 1 + hold)
        if not drifting.any():
            return new
        drifted, _ = layout.move(pos, velocity)
        return np.where(drifting[:, None], drifted, new)

    return hook


class _ghost_hook:  # noqa: N801 - used like the other hook functions
    """From action ``k - 1`` on, the agent ignores walls until it is back in free space (at most 4 steps)."""

    def __init__(self, layout: Any, k: np.ndarray) -> None:
        self.layout, self.k = layout, k
        self.inside_steps = np.zeros(len(k), int)
        self.crossed = np.zeros(len(k), bool)
        self.ghost = np.zeros(len(k), bool)

    def __call__(self, t: int, pos: np.ndarray, new: np.ndarray, action: np.ndarray) -> np.ndarray:
        self.ghost |= t == self.k - 1
        if not self.ghost.any():
            return new
        free_move = pos + action  # straight through whatever is in the way
        inside = ~self.layout.is_free(free_move, 0.0)
        out = np.where(self.ghost[:, None], free_move, new)
        self.inside_steps += self.ghost & inside
        self.crossed |= self.ghost & ~inside
        self.ghost &= inside & (self.inside_steps < 4)
        return out


def _episode(env: PointMassBatch, pos: np.ndarray, actions: np.ndarray, source: str) -> Episode:
    """An Episode of positions (T+1, 2) and actions (T, 2) with rendered frames and [x, y, vx, vy] proprio."""
    vel = np.concatenate([np.zeros((1, 2)), np.diff(pos, axis=0)])
    acts = np.concatenate([actions, np.zeros((1, 2))]).astype(np.float32)
    return Episode(
        frames=env.render(pos),
        actions=acts,
        proprio=np.concatenate([pos, vel], axis=1).astype(np.float32),
        state=pos.astype(np.float32),
        stamps_ns=(np.arange(len(pos)) * int(env.spec.dt * 1e9)).astype(np.int64),
        source=source,
    )


# ------------------------------------------------------------------------------------------ Push-T
def _push_t_pairs(
    kind: str,
    n: int,
    rng: np.random.Generator,
    steps: int,
    first_step: int,
    tail_steps: int,
    world_kwargs: dict[str, Any],
    min_clearance: float = 120.0,
    min_jump: float = 60.0,
) -> list[ViolationPair]:
    """Push-T pairs: two simulators from the same seed and actions; in the second, after action ``step - 1``
    the block jumps by at least ``min_jump`` px (``block_moves``) or leaves the scene (``block_vanishes``)
    while the pusher is at least ``min_clearance`` px from it (no contact could have moved it)."""
    worlds = [make_world("push_t", **world_kwargs), make_world("push_t", **world_kwargs)]
    pairs: list[ViolationPair] = []
    for _ in range(50 * n):
        if len(pairs) >= n:
            break
        seed, k = int(rng.integers(2**31)), int(rng.integers(first_step, steps - tail_steps + 1))
        speed = 0.5 * worlds[0].max_step
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.3, size=steps))
        actions = np.stack([np.cos(heading), np.sin(heading)], axis=1) * speed
        runs = []
        for j, world in enumerate(worlds):
            obs = world.reset(seed=seed)
            frames, proprio, states = [obs.image], [obs.proprio], [world.true_state()]
            ok = True
            for t in range(steps):
                obs, _ = world.step(actions[t])
                if j == 1 and t == k - 1:
                    ok = _push_t_violate(world, kind, rng, min_clearance, min_jump)
                    obs = world._observe()
                frames.append(obs.image)
                proprio.append(obs.proprio)
                states.append(world.true_state())
            runs.append((np.stack(frames), np.stack(proprio), np.stack(states), ok))
        if not runs[1][3]:
            continue
        acts = np.concatenate([actions, np.zeros((1, 2))]).astype(np.float32)
        eps = [
            Episode(frames=f, actions=acts, proprio=pr.astype(np.float32), state=st.astype(np.float32), source=f"push_t:{kind}:{name}")
            for (f, pr, st, _), name in zip(runs, ("possible", "impossible"), strict=True)
        ]
        pair = ViolationPair(kind=kind, world="push_t", step=k, possible=eps[0], impossible=eps[1], hold_steps=1)
        try:
            pair.check_matched()
        except ValueError:
            continue
        pairs.append(pair)
    for world in worlds:
        world.close()
    if len(pairs) < n:
        raise RuntimeError(f"could not build {n} {kind!r} Push-T pairs (only {len(pairs)})")
    return pairs


def _push_t_violate(world: Any, kind: str, rng: np.random.Generator, min_clearance: float, min_jump: float) -> bool:
    """Move the block of a running Push-T simulation without contact; False when the pusher is too close."""
    env = world._env  # the gym-pusht simulation the world wraps
    agent, block = np.asarray(env.agent.position), np.asarray(env.block.position)
    if np.linalg.norm(agent - block) < min_clearance:
        return False
    if kind == "block_vanishes":
        target = np.array([-1000.0, -1000.0])
    else:
        for _ in range(50):
            target = rng.uniform(150, 362, size=2)
            if np.linalg.norm(target - block) >= min_jump and np.linalg.norm(target - agent) >= min_clearance:
                break
        else:
            return False
    env.block.position = (float(target[0]), float(target[1]))
    env.block.velocity = (0.0, 0.0)
    env.block.angular_velocity = 0.0
    env.space.reindex_shapes_for_body(env.block)
    return True
