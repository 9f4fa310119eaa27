"""A point-mass agent moving among rectangular walls, batched with numpy.

One code path serves both the batched world (``PointMassBatch``: n environments stepped at
once) and the single ``World`` (``PointMassWorld``: a batch of one), so they agree exactly.

Dynamics (after PLDM's wall environment, as its public description gives it): the action is a
2-D displacement in px, clipped to the box bounds and then to an L2 norm of ``max_step``; the
agent moves along the straight segment and stops just before the first wall it would touch
(no tunnelling, whatever the step). Proprio is [x, y, vx, vy] in px (vx, vy = the displacement
actually made in the last step); the true state is [x, y].

Image: RGB uint8; channel 0 (red) holds the agent as a Gaussian dot, channel 2 (blue) the
walls and borders, channel 1 is left empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jepa_sim.worlds.base import Observation, StepInfo, World, WorldSpec
from jepa_sim.worlds.layout import RectLayout

AGENT_CHANNEL = 0
WALL_CHANNEL = 2
GOAL_MODES = ("any", "other_room", "far", "doors")


@dataclass
class BatchStepInfo:
    """Per-environment step facts of a batched world (arrays over the batch)."""

    success: np.ndarray  # (n,) bool
    true_state: np.ndarray  # (n, S) float32
    clipped: np.ndarray  # (n,) bool: the action was shortened or the move was blocked
    blocked: np.ndarray  # (n,) bool: a wall stopped the move


class PointMassBatch:
    """``n`` point-mass environments in one layout, stepped together.

    Args:
        layout: the walls and rooms.
        n: number of environments.
        name: world name for the spec.
        image_size: camera image side in px (the arena is scaled to it).
        max_step: bound on the L2 norm of an action (px per step).
        sigma: Gaussian dot radius in image px.
        success_radius: success when the distance to the goal is below this (px).
        max_steps: episode length limit recorded in the spec.
        dt: simulated seconds per step.
        goal_mode: "any" (goal anywhere free), "other_room" (goal in a different room than the
            start), "far" (goal at least ``far_rooms`` doors away, or as far as the layout allows) or
            "doors" (exactly ``far_rooms`` doors away, or as far as the layout allows: task-length sweeps).
        far_rooms: door count for goal_modes "far" and "doors".
        sample_margin: minimum distance (px) of sampled starts and goals to any wall.
    """

    def __init__(
        self,
        layout: RectLayout,
        n: int,
        name: str,
        image_size: int | None = None,
        max_step: float = 2.45,
        sigma: float = 1.3,
        success_radius: float = 1.0,
        max_steps: int = 200,
        dt: float = 0.1,
        goal_mode: str = "any",
        far_rooms: int = 2,
        sample_margin: float = 2.0,
    ) -> None:
        if n < 1:
            raise ValueError(f"n (number of environments) must be >= 1, got {n}")
        if goal_mode not in GOAL_MODES:
            raise ValueError(f"goal_mode must be one of {GOAL_MODES}, got {goal_mode!r}")
        image_size = int(image_size if image_size is not None else layout.size)
        for label, value in (
            ("image_size", image_size),
            ("max_step", max_step),
            ("sigma", sigma),
            ("success_radius", success_radius),
            ("dt", dt),
        ):
            if not value > 0:
                raise ValueError(f"{label} must be > 0, got {value}")
        self.layout = layout
        self.n = int(n)
        self.max_step = float(max_step)
        self.sigma = float(sigma)
        self.success_radius = float(success_radius)
        self.goal_mode = goal_mode
        self.far_rooms = int(far_rooms)
        self.sample_margin = float(sample_margin)
        self.spec = WorldSpec(
            name=name,
            image_size=image_size,
            action_dim=2,
            action_low=(-self.max_step, -self.max_step),
            action_high=(self.max_step, self.max_step),
            proprio_dim=4,
            state_dim=2,
            max_steps=int(max_steps),
            dt=float(dt),
            action_norm_max=self.max_step,
        )
        self.scale = image_size / layout.size
        self._pix = np.arange(image_size, dtype=np.float32) + 0.5
        self._background = np.zeros((image_size, image_size, 3), dtype=np.uint8)
        self._background[..., WALL_CHANNEL] = layout.wall_mask(image_size) * np.uint8(255)
        self.pos = np.zeros((self.n, 2))
        self.vel = np.zeros((self.n, 2))
        self.goal = np.zeros((self.n, 2))
        self._has_reset = False

    # ------------------------------------------------------------------ episode control
    def reset(
        self,
        seeds: Sequence[int | None] | int | None = None,
        goals: np.ndarray | None = None,
        starts: np.ndarray | None = None,
    ) -> Observation:
        """Start all episodes; env i samples from ``np.random.default_rng(seeds[i])``.

        Args:
            seeds: one seed per env, or an int s (env i gets s + i), or None (fresh entropy).
            goals / starts: optional (n, 2) positions in free space; sampled when None.

        Returns:
            Batched observation: image (n, H, W, 3), proprio (n, 4).
        """
        if seeds is None or isinstance(seeds, (int, np.integer)):
            seed_list: list[int | None] = [None if seeds is None else int(seeds) + i for i in range(self.n)]
        else:
            seed_list = list(seeds)
            if len(seed_list) != self.n:
                raise ValueError(f"got {len(seed_list)} seeds for {self.n} environments")
        goals = self._check_points(goals, "goal")
        starts = self._check_points(starts, "start")
        for i, seed in enumerate(seed_list):
            rng = np.random.default_rng(seed)
            start_i = starts[i] if starts is not None else None
            goal_i = goals[i] if goals is not None else None
            self.pos[i], self.goal[i] = self._sample_pair(rng, start_i, goal_i)
        self.vel[:] = 0.0
        self._has_reset = True
        return self.observe()

    def step(self, actions: np.ndarray) -> tuple[Observation, BatchStepInfo]:
        """Apply (n, 2) displacements (clipped to the bounds) to all environments."""
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        clipped_actions, shortened = self.clip_actions(actions)
        new_pos, blocked = self.layout.move(self.pos, clipped_actions)
        self.vel = new_pos - self.pos
        self.pos = new_pos
        info = BatchStepInfo(
            success=self.is_success(),
            true_state=self.true_state(),
            clipped=shortened | blocked,
            blocked=blocked,
        )
        return self.observe(), info

    def clip_actions(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clip (n, 2) actions to the box and the L2 bound; returns (clipped, was_changed)."""
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (self.n, 2):
            raise ValueError(f"actions must have shape ({self.n}, 2), got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"actions must be finite, got {a}")
        boxed = np.clip(a, -self.max_step, self.max_step)
        norm = np.linalg.norm(boxed, axis=1, keepdims=True)
        factor = np.minimum(1.0, self.max_step / np.maximum(norm, 1e-12))
        out = boxed * factor
        return out, np.any(out != a, axis=1)

    # ------------------------------------------------------------------ views
    def observe(self) -> Observation:
        """Current batched observation."""
        return Observation(image=self.render(self.pos), proprio=self.proprio())

    def proprio(self) -> np.ndarray:
        return np.concatenate([self.pos, self.vel], axis=1).astype(np.float32)

    def true_state(self) -> np.ndarray:
        return self.pos.astype(np.float32)

    def goal_state(self) -> np.ndarray:
        return self.goal.astype(np.float32)

    def is_success(self) -> np.ndarray:
        return np.linalg.norm(self.pos - self.goal, axis=1) < self.success_radius

    def goal_observation(self) -> Observation:
        """Images with each agent drawn at its goal; proprio = [goal, 0, 0]."""
        proprio = np.concatenate([self.goal, np.zeros_like(self.goal)], axis=1).astype(np.float32)
        return Observation(image=self.render(self.goal), proprio=proprio)

    def render(self, positions: np.ndarray) -> np.ndarray:
        """(n, H, W, 3) uint8 images with the agent dot at each of (n, 2) positions."""
        uv = np.asarray(positions, dtype=np.float32) * np.float32(self.scale)
        inv = np.float32(-0.5 / self.sigma**2)
        gx = np.exp((self._pix[None, :] - uv[:, 0:1]) ** 2 * inv)  # (n, W)
        gy = np.exp((self._pix[None, :] - uv[:, 1:2]) ** 2 * inv)  # (n, H)
        dot = gy[:, :, None] * gx[:, None, :] * np.float32(255.0) + np.float32(0.5)
        images = np.repeat(self._background[None], positions.shape[0], axis=0)
        images[..., AGENT_CHANNEL] = dot.astype(np.uint8)
        return images

    def render_map(self) -> np.ndarray:
        """Top-down layout picture: walls white, free space dark grey, doors unmarked."""
        walls = self._background[..., WALL_CHANNEL] > 0
        out = np.full((*walls.shape, 3), 40, dtype=np.uint8)
        out[walls] = 255
        return out

    def world_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        """Arena positions (..., 2) [x, y] to image coordinates (..., 2) [col, row] (float; pixel centres at integers)."""
        return np.asarray(xy, dtype=np.float64) * self.scale - 0.5

    def pixel_to_world(self, colrow: np.ndarray) -> np.ndarray:
        """Inverse of ``world_to_pixel``."""
        return (np.asarray(colrow, dtype=np.float64) + 0.5) / self.scale

    # ------------------------------------------------------------------ sampling
    def _check_points(self, pts: np.ndarray | None, what: str) -> np.ndarray | None:
        if pts is None:
            return None
        arr = np.asarray(pts, dtype=np.float64)
        if arr.shape != (self.n, 2):
            raise ValueError(f"{what}s must have shape ({self.n}, 2), got {arr.shape}")
        bad = ~self.layout.is_free(arr, 0.0)
        if bad.any():
            raise ValueError(f"{what} {arr[bad][0].tolist()} is inside a wall or outside the arena of size {self.layout.size}")
        return arr

    def _sample_pair(
        self, rng: np.random.Generator, start: np.ndarray | None, goal: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        layout, m = self.layout, self.sample_margin
        if start is None:
            start = layout.sample_free(rng, m)
        if goal is None:
            start_room = int(layout.room_of(start)[0])
            if self.goal_mode == "any" or layout.num_rooms == 1:
                goal = layout.sample_free(rng, m)
            elif self.goal_mode == "other_room":
                goal = layout.sample_free(rng, m, rooms=[r for r in range(layout.num_rooms) if r != start_room])
            else:
                dist = layout.room_distances(start_room)
                wanted = min(self.far_rooms, int(dist.max()))
                rooms = dist == wanted if self.goal_mode == "doors" else dist >= wanted
                goal = layout.sample_free(rng, m, rooms=[int(r) for r in np.flatnonzero(rooms)])
        return np.asarray(start, dtype=np.float64), np.asarray(goal, dtype=np.float64)


class PointMassWorld(World):
    """A single point-mass environment: a ``PointMassBatch`` of one, so both share the code."""

    batch_class = PointMassBatch

    def __init__(self, batch: PointMassBatch) -> None:
        if batch.n != 1:
            raise ValueError(f"a single world wraps a batch of 1, got {batch.n}")
        self.batch = batch
        self.layout = batch.layout
        self.spec = batch.spec

    def reset(self, seed: int | None = None, goal: np.ndarray | None = None, start: np.ndarray | None = None) -> Observation:
        """Start an episode (``start``/``goal`` are [x, y] in px; sampled when None)."""
        goals = None if goal is None else np.asarray(goal, dtype=np.float64).reshape(1, 2)
        starts = None if start is None else np.asarray(start, dtype=np.float64).reshape(1, 2)
        return _first(self.batch.reset([seed], goals=goals, starts=starts))

    def step(self, action: np.ndarray) -> tuple[Observation, StepInfo]:
        obs, info = self.batch.step(np.asarray(action, dtype=np.float64).reshape(1, -1))
        return _first(obs), StepInfo(
            success=bool(info.success[0]),
            true_state=info.true_state[0],
            clipped=bool(info.clipped[0]),
            extra={"blocked": bool(info.blocked[0])},
        )

    def goal_observation(self) -> Observation:
        return _first(self.batch.goal_observation())

    def is_success(self) -> bool:
        return bool(self.batch.is_success()[0])

    def true_state(self) -> np.ndarray:
        return self.batch.true_state()[0]

    @property
    def goal_state(self) -> np.ndarray:
        return self.batch.goal_state()[0]

    def render_map(self) -> np.ndarray:
        return self.batch.render_map()

    def world_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        return self.batch.world_to_pixel(xy)

    def pixel_to_world(self, colrow: np.ndarray) -> np.ndarray:
        return self.batch.pixel_to_world(colrow)


def _first(obs: Observation) -> Observation:
    return Observation(image=obs.image[0], proprio=obs.proprio[0])
