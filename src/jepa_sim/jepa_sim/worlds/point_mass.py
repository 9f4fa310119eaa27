"""A point-mass agent moving among rectangular walls, batched with numpy.

One code path serves both the batched world (``PointMassBatch``: n environments stepped at
once) and the single ``World`` (``PointMassWorld``: a batch of one), so they agree exactly.

Dynamics (after PLDM's wall environment, as its public description gives it): the action is a
2-D displacement in px, clipped to the box bounds and then to an L2 norm of ``max_step``; the
agent moves along the straight segment and stops just before the first wall it would touch
(no tunnelling, whatever the step). Proprio is [x, y, vx, vy] in px (vx, vy = the displacement
actually made in the last step); the true state is [x, y].

Image: RGB uint8; by default channel 0 (red) holds the agent as a Gaussian dot, channel 2 (blue)
the walls and borders, channel 1 is left empty. ``agent_colour``/``wall_colour``/``floor_colour``
repaint them (the agent is alpha-blended over the scene), for factors of variation.

Factors of variation that are part of the world (evaluation-time robustness, training-time
domain randomisation): colours, agent size (``sigma``), where starts and goals are placed
(``placement``: near walls, in corners), and how commands act (``action_noise`` std in px added
to every applied displacement, ``action_gain`` scaling it, ``action_delay`` steps of latency).
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
PLACEMENTS = ("uniform", "near_wall", "corner", "mixed")
DEFAULT_AGENT_COLOUR = (255, 0, 0)
DEFAULT_WALL_COLOUR = (0, 0, 255)
DEFAULT_FLOOR_COLOUR = (0, 0, 0)
# How far (px) beyond the sampling margin a "near wall" or "corner" point may lie from the wall.
NEAR_WALL_BAND = 3.0


def _colour(value: object, what: str) -> tuple[int, int, int]:
    """An RGB colour from 3 ints in [0, 255] or 3 floats in [0, 1] (any float > 1 means 0-255)."""
    try:
        vals = [float(v) for v in value]  # type: ignore[union-attr]
    except TypeError:
        raise ValueError(f"{what} must be 3 numbers (RGB), got {value!r}") from None
    if len(vals) != 3 or not all(np.isfinite(vals)):
        raise ValueError(f"{what} must be 3 finite numbers (RGB), got {value!r}")
    if all(isinstance(v, float) for v in value) and max(vals) <= 1.0:  # type: ignore[union-attr]
        vals = [v * 255.0 for v in vals]
    if min(vals) < 0 or max(vals) > 255:
        raise ValueError(f"{what} components must be in [0, 255] (or [0, 1] as floats), got {value!r}")
    r, g, b = (round(v) for v in vals)
    return r, g, b


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
        placement: where starts and goals are sampled: "uniform" over free space, "near_wall"
            (within ``NEAR_WALL_BAND`` px beyond the margin of a wall), "corner" (near two walls
            of a room corner) or "mixed" (each point uniform, near a wall or in a corner, a third each).
        agent_colour / wall_colour / floor_colour: RGB (ints 0-255 or floats 0-1); None = the defaults.
        action_noise: std (px) of Gaussian noise added to each applied displacement (after clipping).
        action_gain: factor on each applied displacement (a miscalibrated actuator).
        action_delay: the world applies the command given this many steps earlier (zeros at first).
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
        placement: str = "uniform",
        agent_colour: tuple | list | None = None,
        wall_colour: tuple | list | None = None,
        floor_colour: tuple | list | None = None,
        action_noise: float = 0.0,
        action_gain: float = 1.0,
        action_delay: int = 0,
    ) -> None:
        if n < 1:
            raise ValueError(f"n (number of environments) must be >= 1, got {n}")
        if goal_mode not in GOAL_MODES:
            raise ValueError(f"goal_mode must be one of {GOAL_MODES}, got {goal_mode!r}")
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
        if not (np.isfinite(action_noise) and action_noise >= 0):
            raise ValueError(f"action_noise must be >= 0 px, got {action_noise}")
        if not (np.isfinite(action_gain) and action_gain > 0):
            raise ValueError(f"action_gain must be > 0, got {action_gain}")
        if int(action_delay) != action_delay or action_delay < 0:
            raise ValueError(f"action_delay must be a whole number of steps >= 0, got {action_delay}")
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
        self.placement = placement
        self.colours = (
            _colour(agent_colour, "agent_colour") if agent_colour is not None else DEFAULT_AGENT_COLOUR,
            _colour(wall_colour, "wall_colour") if wall_colour is not None else DEFAULT_WALL_COLOUR,
            _colour(floor_colour, "floor_colour") if floor_colour is not None else DEFAULT_FLOOR_COLOUR,
        )
        self.action_noise = float(action_noise)
        self.action_gain = float(action_gain)
        self.action_delay = int(action_delay)
        self._noise_rngs: list[np.random.Generator] = []
        self._pending: list[np.ndarray] = []
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
        self.set_layout(layout)
        self.pos = np.zeros((self.n, 2))
        self.vel = np.zeros((self.n, 2))
        self.goal = np.zeros((self.n, 2))
        self._has_reset = False

    def set_layout(self, layout: RectLayout) -> None:
        """Use ``layout`` from now on (same arena size), e.g. a door moved between episodes."""
        if layout.size != getattr(self, "layout", layout).size:
            raise ValueError(f"a new layout must keep the arena size {self.layout.size}, got {layout.size}")
        self.layout = layout
        size = self.spec.image_size
        walls = layout.wall_mask(size)
        self._walls = walls
        self._background = np.zeros((size, size, 3), dtype=np.uint8)
        if self.colours == (DEFAULT_AGENT_COLOUR, DEFAULT_WALL_COLOUR, DEFAULT_FLOOR_COLOUR):
            self._background[..., WALL_CHANNEL] = walls * np.uint8(255)
        else:
            self._background[:] = np.asarray(self.colours[2], dtype=np.uint8)
            self._background[walls] = np.asarray(self.colours[1], dtype=np.uint8)

    def _layout_for_episode(self, rng: np.random.Generator) -> RectLayout | None:
        """A new layout for the next episodes (domain randomisation), or None to keep the current one."""
        return None

    @property
    def layout_varies(self) -> bool:
        """Whether every reset may draw a new layout (``_layout_for_episode``): one map does not show them all."""
        return False

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
        first = seed_list[0]
        new_layout = self._layout_for_episode(np.random.default_rng(None if first is None else [int(first), 7]))
        if new_layout is not None:
            self.set_layout(new_layout)
        goals = self._check_points(goals, "goal")
        starts = self._check_points(starts, "start")
        self._noise_rngs = [np.random.default_rng(None if s is None else [int(s), 11]) for s in seed_list]
        self._pending = [np.zeros((self.n, 2)) for _ in range(self.action_delay)]
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
        applied = self._actuate(clipped_actions)
        new_pos, blocked = self.layout.move(self.pos, applied)
        self.vel = new_pos - self.pos
        self.pos = new_pos
        info = BatchStepInfo(
            success=self.is_success(),
            true_state=self.true_state(),
            clipped=shortened | blocked,
            blocked=blocked,
        )
        return self.observe(), info

    def _actuate(self, commanded: np.ndarray) -> np.ndarray:
        """What the actuators really do with a (clipped) command: delay, gain, noise."""
        if self.action_delay:
            self._pending.append(commanded)
            commanded = self._pending.pop(0)
        out = commanded * self.action_gain
        if self.action_noise > 0:
            out = out + np.stack([rng.normal(0.0, self.action_noise, size=2) for rng in self._noise_rngs])
        return out

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
        if self.colours == (DEFAULT_AGENT_COLOUR, DEFAULT_WALL_COLOUR, DEFAULT_FLOOR_COLOUR):
            images[..., AGENT_CHANNEL] = dot.astype(np.uint8)
            return images
        alpha = (dot.astype(np.uint8).astype(np.float32) / np.float32(255.0))[..., None]
        agent = np.asarray(self.colours[0], dtype=np.float32)
        blended = images.astype(np.float32) * (1.0 - alpha) + agent * alpha
        return (blended + 0.5).astype(np.uint8)

    def render_map(self) -> np.ndarray:
        """Top-down layout picture: walls white, free space dark grey, doors unmarked."""
        walls = self._walls
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
        layout = self.layout
        if start is None:
            start = self._sample_point(rng, None)
        if goal is None:
            start_room = int(layout.room_of(start)[0])
            if self.goal_mode == "any" or layout.num_rooms == 1:
                goal = self._sample_point(rng, None)
            elif self.goal_mode == "other_room":
                goal = self._sample_point(rng, [r for r in range(layout.num_rooms) if r != start_room])
            else:
                dist = layout.room_distances(start_room)
                wanted = min(self.far_rooms, int(dist.max()))
                rooms = dist == wanted if self.goal_mode == "doors" else dist >= wanted
                goal = self._sample_point(rng, [int(r) for r in np.flatnonzero(rooms)])
        return np.asarray(start, dtype=np.float64), np.asarray(goal, dtype=np.float64)

    def _sample_point(self, rng: np.random.Generator, rooms: list[int] | None) -> np.ndarray:
        """One start or goal as ``placement`` says (uniform, near a wall, in a corner), inside ``rooms`` if given."""
        layout, m = self.layout, self.sample_margin
        mode = self.placement
        if mode == "uniform":  # the original sampler, so default episodes stay identical
            return layout.sample_free(rng, m, rooms=rooms)
        if mode == "mixed":
            mode = ("uniform", "near_wall", "corner")[int(rng.integers(3))]
            if mode == "uniform":
                return layout.sample_free(rng, m, rooms=rooms)
        allowed = rooms if rooms is not None else list(range(layout.num_rooms))
        for _ in range(10_000):
            x0, y0, x1, y1 = layout.room_bounds(allowed[int(rng.integers(len(allowed)))])
            # offsets from the room cell's edges: walls take at most ~2 px of the cell, plus margin and band
            reach = 2.0 + m + NEAR_WALL_BAND
            pt = rng.uniform((x0, y0), (x1, y1))
            sides = rng.integers(2, size=2)
            offsets = rng.uniform(0.0, reach, size=2)
            snapped = np.where(sides == 0, np.array([x0, y0]) + offsets, np.array([x1, y1]) - offsets)
            if mode == "corner":
                pt = snapped
            else:
                axis = int(rng.integers(2))
                pt[axis] = snapped[axis]
            if layout.is_free(pt, m)[0] and not layout.is_free(pt, m + NEAR_WALL_BAND)[0]:
                return pt
        raise RuntimeError(f"could not sample a {mode} point with margin {m} in rooms {allowed}")


class PointMassWorld(World):
    """A single point-mass environment: a ``PointMassBatch`` of one, so both share the code."""

    batch_class = PointMassBatch

    def __init__(self, batch: PointMassBatch) -> None:
        if batch.n != 1:
            raise ValueError(f"a single world wraps a batch of 1, got {batch.n}")
        self.batch = batch
        self.spec = batch.spec

    @property
    def layout(self) -> RectLayout:  # follows the batch (a door may move between episodes)
        return self.batch.layout

    def reset(self, seed: int | None = None, goal: np.ndarray | None = None, start: np.ndarray | None = None) -> Observation:
        """Start an episode (``start``/``goal`` are [x, y] in px; sampled when None)."""
        goals = None if goal is None else np.asarray(goal, dtype=np.float64).reshape(1, 2)
        starts = None if start is None else np.asarray(start, dtype=np.float64).reshape(1, 2)
        obs = _first(self.batch.reset([seed], goals=goals, starts=starts))
        self._start = self.batch.pos[0].copy()
        return obs

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

    def state_success(self, goal_state: np.ndarray, state: np.ndarray) -> bool:
        return bool(np.linalg.norm(np.asarray(state)[:2] - np.asarray(goal_state)[:2]) < self.batch.success_radius)

    def true_state(self) -> np.ndarray:
        return self.batch.true_state()[0]

    @property
    def goal_state(self) -> np.ndarray:
        return self.batch.goal_state()[0]

    def render_map(self) -> np.ndarray:
        return self.batch.render_map()

    def task_length(self) -> int:
        """Doors between the start's room and the goal's room this episode (the realised task length)."""
        start_room = int(self.layout.room_of(self._start)[0])
        return int(self.layout.room_distances(start_room)[int(self.layout.room_of(self.goal_state)[0])])

    def world_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        return self.batch.world_to_pixel(xy)

    def pixel_to_world(self, colrow: np.ndarray) -> np.ndarray:
        return self.batch.pixel_to_world(colrow)


def _first(obs: Observation) -> Observation:
    return Observation(image=obs.image[0], proprio=obs.proprio[0])
