"""Goal supervision without ROS: when a ReachGoal goal ends, and why.

The configurator node feeds a :class:`GoalSupervisor` with each new latent and the state of the
world around the goal (preempted? cancel requested? an input silent?); the supervisor decides
whether the goal goes on, is reached, or ends (preempted, canceled, timeout, error) and keeps the
step count and the distance for feedback and the result. The node keeps only the ROS plumbing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jepa_common.convert import latent_distance

REACHED, CANCELED, TIMEOUT = "reached", "canceled", "timeout"


def resolve_tolerance(goal: float, param: float, bundle: float | None, fallback: float) -> float:
    """A goal's tolerance: its own when > 0, else the node's ``default_tolerance`` when > 0, else the bundle's
    (its latent's scale per pixel or metre is its own, so the bundle knows what "reached" means), else ``fallback``."""
    for value in (goal, param, bundle):
        if value is not None and value > 0:
            return float(value)
    return float(fallback)


class GoalSupervisor:
    """One goal's bookkeeping.

    Args:
        z_goal: the goal latent (``latent_shape``).
        latent_std: per-element std of the latents (the unit of ``tolerance``).
        tolerance: reached when the normalised distance (``jepa_common.convert.latent_distance``) drops below it.
        time_limit: seconds from ``start``.
        max_steps: steps (new latents) before a timeout; 0: no limit.
        start: the goal's start time on ``clock``.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        z_goal: np.ndarray,
        latent_std: np.ndarray,
        tolerance: float,
        time_limit: float,
        max_steps: int = 0,
        start: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.z_goal = np.asarray(z_goal, np.float32)
        self.latent_shape = self.z_goal.shape
        self.latent_std = latent_std
        self.tolerance, self.time_limit, self.max_steps = float(tolerance), float(time_limit), int(max_steps)
        self.clock = clock
        self.start = clock() if start is None else start
        self.step = 0
        self.distance = float("inf")
        self._last_stamp: Any = None

    def end_reason(self, *, preempted: str | None = None, cancel_requested: bool = False, dead_input: str | None = None) -> str | None:
        """Why the goal must end now (in this order: preempted, canceled, timeout, error), or None to go on.

        Args:
            preempted: the reason when a newer goal (or a stop) took over, else None.
            cancel_requested: the client asked to cancel.
            dead_input: why an input the goal needs is dead (perception or actor silent), else None.
        """
        if preempted is not None:
            return preempted
        if cancel_requested:
            return CANCELED
        if self.clock() - self.start > self.time_limit or (self.max_steps and self.step >= self.max_steps):
            return TIMEOUT
        if dead_input:
            return f"error: {dead_input}"
        return None

    def observe(self, data: Sequence[float] | np.ndarray, stamp: Any) -> np.ndarray | None:
        """A new latent message's data and stamp -> the latent (``latent_shape``), or None to skip it.

        Skipped: the stamp of the latent seen last (nothing new), a wrong size, or non-finite values.
        Sets :attr:`distance` for an accepted latent.
        """
        if stamp == self._last_stamp:
            return None
        self._last_stamp = stamp
        z = np.asarray(data, np.float32)
        if z.size != self.z_goal.size or not np.isfinite(z).all():
            return None
        z = z.reshape(self.latent_shape)
        self.distance = latent_distance(z, self.z_goal, self.latent_std)
        return z

    def advance(self) -> bool:
        """Count the step of the latent just observed; True when it reached the goal."""
        self.step += 1
        return self.distance < self.tolerance

    @property
    def final_distance(self) -> float:
        """The last distance, or -1 when no latent was accepted."""
        return float(self.distance) if np.isfinite(self.distance) else -1.0

    def elapsed(self) -> float:
        return self.clock() - self.start
