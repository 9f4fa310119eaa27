"""Give any single ``World`` the batched interface that collection and policies use."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jepa_sim.worlds.base import Observation, World
from jepa_sim.worlds.point_mass import BatchStepInfo, PointMassBatch, PointMassWorld


class SingleAsBatch:
    """A batch of one over a ``World`` without a numpy batch (e.g. point_maze, push_t)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.spec = world.spec
        self.n = 1
        self.layout = getattr(world, "layout", None)
        if self.layout is None:
            del self.layout  # policies test for the attribute

    def reset(self, seeds: Sequence[int | None] | int | None = None, goals: np.ndarray | None = None) -> Observation:
        seed = seeds if seeds is None or isinstance(seeds, (int, np.integer)) else next(iter(seeds))
        goal = None if goals is None else np.asarray(goals)[0]
        return _batched(self.world.reset(seed=seed, goal=goal))

    def step(self, actions: np.ndarray) -> tuple[Observation, BatchStepInfo]:
        obs, info = self.world.step(np.asarray(actions)[0])
        blocked = bool(info.extra.get("blocked", False))
        return _batched(obs), BatchStepInfo(
            success=np.array([info.success]),
            true_state=np.asarray(info.true_state, dtype=np.float32)[None],
            clipped=np.array([info.clipped]),
            blocked=np.array([blocked]),
        )

    def clip_actions(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.asarray(actions, dtype=np.float64)
        out = np.clip(a, self.spec.action_low, self.spec.action_high)
        if self.spec.action_norm_max is not None:
            norm = np.linalg.norm(out, axis=1, keepdims=True)
            out = out * np.minimum(1.0, self.spec.action_norm_max / np.maximum(norm, 1e-12))
        return out, np.any(out != a, axis=1)

    def true_state(self) -> np.ndarray:
        return np.asarray(self.world.true_state(), dtype=np.float32)[None]

    def goal_state(self) -> np.ndarray:
        return np.asarray(self.world.goal_state, dtype=np.float32)[None]


def as_batch(world: World) -> PointMassBatch | SingleAsBatch:
    """The batched view of a world instance (a point-mass world's own batch of one)."""
    if isinstance(world, PointMassWorld):
        return world.batch
    return SingleAsBatch(world)


def _batched(obs: Observation) -> Observation:
    return Observation(image=np.asarray(obs.image)[None], proprio=np.asarray(obs.proprio, dtype=np.float32)[None])
