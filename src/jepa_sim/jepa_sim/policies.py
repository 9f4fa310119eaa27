"""Behaviour policies that generate training data, batched over environments.

* ``random``: actions uniform in the action box (then limited to the world's norm bound).
* ``random_momentum``: a smoothly turning direction and a slowly varying speed, with a new
  direction after bumping into a wall. Long straight runs cross doors far more often than a
  white-noise walk (PLDM reports success falling to 34% when the data never crossed the door).
  With ``rest_prob`` it also stops now and then for a while (commands at the centre of the action
  box, zero in the point-mass worlds): a robot at rest is normal behaviour too.
* ``noisy_goal``: heads for the episode goal along the shortest path (a geodesic distance field
  of the layout, so in two-rooms it goes through the door) plus Gaussian noise. Needs a world
  with a layout (two_rooms, multi_room).

* ``door_probe``: straight runs across the walls next to the agent's room, launched from a point a few
  px in front of the wall and aimed (with probability ``door_fraction``) inside a door's gap or anywhere
  along the wall: passages through the door and pushes against the wall at every height, the two
  outcomes a predictor has to tell apart from the image when the door moves (random walks rarely
  produce either near a door that is not where it usually is). Needs a world with a layout.

* ``pusher``: Push-T's scripted pusher (``jepa_sim.worlds.push_t.ScriptedPusher``: approach the block from
  behind a push direction, then push through it; a new direction every ``switch_every`` steps), one per
  environment, plus Gaussian noise: data in which the block moves and turns, which random motion of the
  pusher rarely produces.

A policy sees privileged state: it is a data generator, not the agent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from jepa_sim.worlds.base import WorldSpec


@dataclass
class PolicyInput:
    """What a behaviour policy may look at for a batch of n environments."""

    proprio: np.ndarray  # (n, P)
    true_state: np.ndarray  # (n, S)
    goal_state: np.ndarray  # (n, S)
    blocked: np.ndarray  # (n,) bool: the last move was stopped by an obstacle


class Policy(ABC):
    """A batched behaviour policy; ``reset`` starts new episodes, ``act`` returns (n, A) actions."""

    name: str = ""

    def reset(self, env: Any, rng: np.random.Generator) -> None:
        """Start episodes in ``env`` (a batched world with ``spec`` and ``n``)."""
        self.spec: WorldSpec = env.spec
        self.n: int = env.n
        self.rng = rng

    @abstractmethod
    def act(self, inp: PolicyInput) -> np.ndarray:
        """Actions (n, action_dim) float64 within the world's bounds."""

    def _largest_step(self) -> float:
        """The longest move one action may make: the norm bound, else the smallest half-side of the action box."""
        return float(self.spec.action_norm_max or np.min(self.spec.action_high))

    def _bounded(self, actions: np.ndarray) -> np.ndarray:
        low, high = np.asarray(self.spec.action_low), np.asarray(self.spec.action_high)
        out = np.clip(actions, low, high)
        if self.spec.action_norm_max is not None:
            norm = np.linalg.norm(out, axis=1, keepdims=True)
            out = out * np.minimum(1.0, self.spec.action_norm_max / np.maximum(norm, 1e-12))
        return out


class RandomPolicy(Policy):
    """Independent uniform actions in the action box."""

    name = "random"

    def act(self, inp: PolicyInput) -> np.ndarray:
        low, high = np.asarray(self.spec.action_low), np.asarray(self.spec.action_high)
        return self._bounded(self.rng.uniform(low, high, size=(self.n, len(low))))


class RandomMomentumPolicy(Policy):
    """A random walk of the direction with persistence ``momentum`` in [0, 1).

    Args:
        momentum: 0 turns freely each step, 0.95 keeps heading for tens of steps.
        speed_range: (min, max) speed as a fraction of the largest allowed step.
        bounce: pick a fresh direction when the last move was blocked.
        rest_prob: chance per step of starting a rest (0: never; no random numbers are drawn for it then,
            so the data of ``rest_prob = 0`` is what it was before the option existed).
        rest_steps: (min, max) length of a rest in steps, inclusive.
    """

    name = "random_momentum"

    def __init__(
        self,
        momentum: float = 0.9,
        speed_range: tuple[float, float] = (0.4, 1.0),
        bounce: bool = True,
        rest_prob: float = 0.0,
        rest_steps: tuple[int, int] = (5, 30),
    ) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        lo, hi = speed_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"speed_range must satisfy 0 <= min <= max <= 1, got {speed_range}")
        if not 0.0 <= rest_prob <= 1.0:
            raise ValueError(f"rest_prob must be in [0, 1], got {rest_prob}")
        if not 1 <= int(rest_steps[0]) <= int(rest_steps[1]):
            raise ValueError(f"rest_steps must satisfy 1 <= min <= max, got {rest_steps}")
        self.momentum = float(momentum)
        self.speed_range = (float(lo), float(hi))
        self.bounce = bounce
        self.rest_prob = float(rest_prob)
        self.rest_steps = (int(rest_steps[0]), int(rest_steps[1]))

    def reset(self, env: Any, rng: np.random.Generator) -> None:
        super().reset(env, rng)
        dim = len(self.spec.action_low)
        self._dir = self._unit(rng.normal(size=(self.n, dim)))
        self._speed = rng.uniform(*self.speed_range, size=(self.n, 1))
        low, high = np.asarray(self.spec.action_low), np.asarray(self.spec.action_high)
        self._centre = (low + high) / 2
        radius = float(np.min((high - low) / 2))
        if self.spec.action_norm_max is not None:
            radius = min(radius, self.spec.action_norm_max)
        self._radius = radius
        self._resting = np.zeros(self.n, dtype=np.int64)  # steps of rest left per environment

    @staticmethod
    def _unit(v: np.ndarray) -> np.ndarray:
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def act(self, inp: PolicyInput) -> np.ndarray:
        rng, m = self.rng, self.momentum
        turn = (1.0 - m) * np.pi / np.sqrt(self._dir.shape[1])
        self._dir = self._unit(self._dir + turn * rng.normal(size=self._dir.shape))
        if self.bounce and inp.blocked.any():
            fresh = self._unit(rng.normal(size=self._dir.shape))
            self._dir = np.where(inp.blocked[:, None], fresh, self._dir)
        self._speed = m * self._speed + (1.0 - m) * rng.uniform(*self.speed_range, size=self._speed.shape)
        action = self._centre + self._dir * self._speed * self._radius
        if self.rest_prob > 0:
            start = (self._resting == 0) & (rng.random(self.n) < self.rest_prob)
            lengths = rng.integers(self.rest_steps[0], self.rest_steps[1] + 1, size=self.n)
            self._resting = np.where(start, lengths, self._resting)
            action = np.where((self._resting > 0)[:, None], self._centre, action)
            self._resting = np.maximum(self._resting - 1, 0)
        return self._bounded(action)


class NoisyGoalPolicy(Policy):
    """Goal reaching along the layout's shortest path, plus noise.

    Args:
        noise: std of the Gaussian added to each action, as a fraction of the largest step.
        speed: step length as a fraction of the largest step.
        lookahead: radius (px) of the neighbourhood searched for the next cell on the path.
    """

    name = "noisy_goal"

    def __init__(self, noise: float = 0.3, speed: float = 1.0, lookahead: int = 2) -> None:
        if noise < 0 or not 0 < speed <= 1 or lookahead < 1:
            raise ValueError(f"need noise >= 0, 0 < speed <= 1, lookahead >= 1; got {noise}, {speed}, {lookahead}")
        self.noise, self.speed, self.lookahead = float(noise), float(speed), int(lookahead)

    def reset(self, env: Any, rng: np.random.Generator) -> None:
        super().reset(env, rng)
        layout = getattr(env, "layout", None)
        if layout is None:
            raise ValueError(
                f"policy 'noisy_goal' needs a world with a wall layout (two_rooms, multi_room), not {self.spec.name!r}"
            )
        self._size = layout.size
        self._fields = layout.distance_fields(env.goal_state())
        k = np.arange(-self.lookahead, self.lookahead + 1)
        self._offsets = np.stack(np.meshgrid(k, k, indexing="xy"), axis=-1).reshape(-1, 2)  # (K, 2) [dx, dy]
        self._step = self.speed * self._largest_step()

    def act(self, inp: PolicyInput) -> np.ndarray:
        pos = inp.true_state[:, :2].astype(np.float64)
        goal = inp.goal_state[:, :2].astype(np.float64)
        cells = np.clip(pos.astype(int)[:, None, :] + self._offsets[None], 0, self._size - 1)  # (n, K, 2)
        values = self._fields[np.arange(self.n)[:, None], cells[..., 1], cells[..., 0]]  # (n, K)
        best = cells[np.arange(self.n), np.argmin(values, axis=1)] + 0.5
        to_goal = goal - pos
        dist_goal = np.linalg.norm(to_goal, axis=1, keepdims=True)
        near = dist_goal[:, 0] < 2 * self.lookahead + 1
        target = np.where(near[:, None], goal, best)
        stuck = ~np.isfinite(values).any(axis=1)
        direction = target - pos
        length = np.linalg.norm(direction, axis=1, keepdims=True)
        step = np.where(near[:, None], np.minimum(self._step, dist_goal), self._step)
        action = direction / np.maximum(length, 1e-12) * step
        action += self.noise * self._step * self.rng.normal(size=action.shape)
        action = np.where(stuck[:, None], self.rng.normal(size=action.shape) * self._step, action)
        return self._bounded(action)


class PusherPolicy(Policy):
    """Push-T's scripted pusher per environment, with Gaussian action noise.

    Args:
        noise: std of the Gaussian added to each action, as a fraction of the largest step.
        speed: pushing step as a fraction of the largest step.
        switch_every: steps between new push directions.
    """

    name = "pusher"

    def __init__(self, noise: float = 0.1, speed: float = 0.5, switch_every: int = 25) -> None:
        if noise < 0 or not 0 < speed <= 1 or switch_every < 1:
            raise ValueError(f"need noise >= 0, 0 < speed <= 1, switch_every >= 1; got {noise}, {speed}, {switch_every}")
        self.noise, self.speed, self.switch_every = float(noise), float(speed), int(switch_every)

    def reset(self, env: Any, rng: np.random.Generator) -> None:
        super().reset(env, rng)
        if self.spec.name != "push_t":
            raise ValueError(f"policy 'pusher' pushes the Push-T block; world {self.spec.name!r} has none")
        from jepa_sim.worlds.push_t import ScriptedPusher

        self._step = self._largest_step()
        self._pushers = [ScriptedPusher(rng, self._step, self.speed, self.switch_every) for _ in range(self.n)]

    def act(self, inp: PolicyInput) -> np.ndarray:
        actions = np.stack([p.act(state) for p, state in zip(self._pushers, inp.true_state, strict=True)])
        actions = actions + self.noise * self._step * self.rng.normal(size=actions.shape)
        return self._bounded(actions)


class DoorProbePolicy(Policy):
    """Legs that cross a wall of the agent's room: to a launch point in front of the wall, then straight across.

    Each leg picks one door of the agent's room and a point along that door's wall: inside the gap with
    probability ``door_fraction``, else anywhere along the room's side of the wall. The agent first drives
    to a launch point ``launch_range`` px in front of it, then perpendicular across, aiming the same
    distance beyond; the leg ends on arrival, after a number of blocked steps drawn per leg from
    ``push_steps`` (pressing on the wall for several model steps: a predictor rolled out against a wall has to
    keep the agent there), or after ``leg_steps`` steps. Speeds are drawn per leg from ``speed_range``
    (fractions of the largest step). With ``retreat_range`` a leg that ended pressed on the wall is followed by
    a retreat straight back from it, that many px (drawn per retreat), at the leg's speed: without it the data
    has many "at the wall, no motion" steps and few "at the wall, driving away" ones, and a predictor trained on
    it held the agent at a wall whichever way it drove (session 29, two-rooms with the door anywhere). With
    ``slant`` the aim beyond the wall is moved along it by up to that many px (drawn per leg): crossings at an
    angle, which clip a doorway's jambs and press on the wall at an angle, where straight ones do neither.

    Args:
        door_fraction: share of legs aimed inside a door's gap.
        noise: std of the Gaussian added to each action, as a fraction of the largest step.
        speed_range: (min, max) leg speed as fractions of the largest step.
        launch_range: (min, max) px between the wall's face and the launch point (and the aim beyond it).
        push_steps: (min, max) blocked steps that end a leg, drawn per leg.
        leg_steps: steps that end a leg in any case.
        retreat_range: (min, max) px to back straight away from the wall after a leg that ended pressed on it;
            None: no retreats (the next leg starts at once).
        slant: largest shift (px) of the aim along the wall, drawn uniformly per leg; 0: straight across.
    """

    name = "door_probe"

    def __init__(
        self,
        door_fraction: float = 0.5,
        noise: float = 0.1,
        speed_range: tuple[float, float] = (0.4, 1.0),
        launch_range: tuple[float, float] = (3.0, 12.0),
        push_steps: tuple[int, int] = (2, 20),
        leg_steps: int = 40,
        retreat_range: tuple[float, float] | None = None,
        slant: float = 0.0,
    ) -> None:
        lo, hi = (float(v) for v in speed_range)
        if not 0.0 <= door_fraction <= 1.0 or noise < 0 or not 0.0 < lo <= hi <= 1.0:
            raise ValueError(
                f"need 0 <= door_fraction <= 1, noise >= 0, 0 < speed min <= max <= 1; got {door_fraction}, {noise}, {speed_range}"
            )
        if not 0.0 < float(launch_range[0]) <= float(launch_range[1]) or not 1 <= int(push_steps[0]) <= int(push_steps[1]):
            raise ValueError(f"need 0 < launch min <= max and 1 <= push_steps min <= max; got {launch_range}, {push_steps}")
        if leg_steps < 1:
            raise ValueError(f"leg_steps must be >= 1, got {leg_steps}")
        if retreat_range is not None and not 0.0 < float(retreat_range[0]) <= float(retreat_range[1]):
            raise ValueError(f"need 0 < retreat_range min <= max (px), got {retreat_range}")
        self.retreat_range = None if retreat_range is None else (float(retreat_range[0]), float(retreat_range[1]))
        if not 0.0 <= float(slant) < float("inf"):
            raise ValueError(f"slant must be a finite number of px >= 0, got {slant}")
        self.slant = float(slant)
        self.door_fraction, self.noise = float(door_fraction), float(noise)
        self.speed_range = (lo, hi)
        self.launch_range = (float(launch_range[0]), float(launch_range[1]))
        self.push_steps, self.leg_steps = (int(push_steps[0]), int(push_steps[1])), int(leg_steps)

    def reset(self, env: Any, rng: np.random.Generator) -> None:
        super().reset(env, rng)
        layout = getattr(env, "layout", None)
        if layout is None or not layout.doors:
            raise ValueError(f"policy 'door_probe' needs a world with doors in its walls (two_rooms, multi_room), not {self.spec.name!r}")
        self._layout = layout
        self._gaps = [self._gap(door) for door in layout.doors]
        self._step = self._largest_step()
        n = self.n
        self._launch, self._aim = np.zeros((n, 2)), np.zeros((n, 2))
        self._crossing = np.zeros(n, dtype=bool)
        self._age, self._pushed = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        self._push_limit = np.zeros(n, dtype=np.int64)
        self._speed = np.zeros(n)
        self._fresh = np.ones(n, dtype=bool)
        self._away = np.zeros((n, 2))  # unit vector from the pressed wall back into the room (launch side)
        self._retreat, self._retreating = np.zeros((n, 2)), np.zeros(n, dtype=bool)

    def _gap(self, door: Any) -> tuple[float, float, float]:
        """(first, last free coordinate along the wall, wall half thickness) of a door, read off the layout."""
        c = np.asarray(door.centre, dtype=np.float64)
        along, across = 1 - door.axis, door.axis
        offsets = np.arange(-self._layout.size, self._layout.size + 1, 0.25)
        pts = np.repeat(c[None], len(offsets), axis=0)
        pts[:, along] += offsets
        free = self._layout.is_free(pts)
        mid = len(offsets) // 2
        lo = hi = mid
        while lo > 0 and free[lo - 1]:
            lo -= 1
        while hi < len(offsets) - 1 and free[hi + 1]:
            hi += 1
        inside_wall = c.copy()  # just beside the gap, on the wall's centre line
        inside_wall[along] += offsets[lo] - 1.0
        normal = np.eye(2)[across]
        k = 0.0  # half thickness: how far from the centre line the wall's face is
        while k < self._layout.size and not self._layout.is_free((inside_wall + k * normal)[None])[0]:
            k += 0.25
        return float(c[along] + offsets[lo]), float(c[along] + offsets[hi]), k

    def _new_legs(self, pos: np.ndarray, which: np.ndarray) -> None:
        rooms = self._layout.room_of(pos)
        for i in np.flatnonzero(which):
            doors = [j for j, d in enumerate(self._layout.doors) if rooms[i] in d.rooms] or list(range(len(self._layout.doors)))
            j = int(self.rng.choice(doors))
            door, (g_lo, g_hi, half) = self._layout.doors[j], self._gaps[j]
            along, across = 1 - door.axis, door.axis
            b = self._layout.room_bounds(int(rooms[i]))
            inside = self.rng.random() < self.door_fraction  # inside the gap, else anywhere along the room's wall
            u = self.rng.uniform(*((g_lo + 0.5, g_hi - 0.5) if inside else (b[along] + 2.0, b[along + 2] - 2.0)))
            wall = door.centre[across]
            side = 1.0 if pos[i, across] >= wall else -1.0
            self._launch[i, along] = self._aim[i, along] = u
            self._launch[i, across] = wall + side * (half + self.rng.uniform(*self.launch_range))
            self._aim[i, across] = wall - side * (half + self.rng.uniform(*self.launch_range))
            if self.slant > 0:
                self._aim[i, along] = np.clip(u + self.rng.uniform(-self.slant, self.slant), b[along] + 1.0, b[along + 2] - 1.0)
            self._away[i] = side * np.eye(2)[across]
            self._speed[i] = self.rng.uniform(*self.speed_range) * self._step
            self._push_limit[i] = self.rng.integers(self.push_steps[0], self.push_steps[1] + 1)
        self._crossing[which] = False
        self._age[which] = 0
        self._pushed[which] = 0

    def act(self, inp: PolicyInput) -> np.ndarray:
        pos = inp.true_state[:, :2].astype(np.float64)
        self._pushed = np.where(self._crossing & inp.blocked, self._pushed + 1, self._pushed)
        arrived_launch = ~self._crossing & (np.linalg.norm(self._launch - pos, axis=1) < 1.0)
        self._crossing |= arrived_launch | (~self._crossing & (self._age >= self.leg_steps // 2))
        done = self._fresh | (self._crossing & (np.linalg.norm(self._aim - pos, axis=1) < 1.0))
        pressed = (self._pushed >= self._push_limit) & ~self._retreating & ~self._fresh
        done |= pressed | (self._age >= self.leg_steps)
        if self.retreat_range is not None:  # a pressed leg backs away first; a retreat ends on arrival or after half a leg
            back = self._retreating & ((np.linalg.norm(self._retreat - pos, axis=1) < 1.0) | (self._age >= self.leg_steps // 2))
            done = (done & ~self._retreating & ~pressed) | back
            self._retreating &= ~back
            for i in np.flatnonzero(pressed):
                self._retreat[i] = pos[i] + self._away[i] * self.rng.uniform(*self.retreat_range)
                self._retreating[i], self._age[i], self._pushed[i] = True, 0, 0
        self._fresh[:] = False
        if done.any():
            self._new_legs(pos, done)
        self._age += 1
        target = np.where(self._crossing[:, None], self._aim, self._launch)
        target = np.where(self._retreating[:, None], self._retreat, target)
        delta = target - pos
        dist = np.linalg.norm(delta, axis=1, keepdims=True)
        action = delta / np.maximum(dist, 1e-12) * np.minimum(self._speed[:, None], dist)
        action += self.noise * self._step * self.rng.normal(size=action.shape)
        return self._bounded(action)


POLICIES: dict[str, type[Policy]] = {
    p.name: p for p in (RandomPolicy, RandomMomentumPolicy, NoisyGoalPolicy, DoorProbePolicy, PusherPolicy)
}


def make_policy(name: str | Policy, **kwargs: Any) -> Policy:
    """A policy by name ("random", "random_momentum", "noisy_goal", "door_probe", "pusher") or the given instance."""
    if isinstance(name, Policy):
        return name
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; valid names: {', '.join(POLICIES)}")
    try:
        return POLICIES[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"bad arguments for policy {name!r}: {err}") from err
