"""The common API of every built-in world.

A world is a single environment (``World``) or a batch of them stepped at once
(``BatchWorld``). The agent only ever sees ``Observation`` (camera image and
proprioception); ``true_state`` exists for evaluation, probes and plots, never
as an agent input.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Observation:
    """What a robot would sense.

    Attributes:
        image: uint8 RGB image, shape (H, W, 3), row 0 at the top.
        proprio: float32 proprioception, shape (P,) (for a point mass: position
            and velocity in world units, see the world's docstring).
    """

    image: np.ndarray
    proprio: np.ndarray


@dataclass
class StepInfo:
    """Extra facts about a step, for logging and evaluation only."""

    success: bool
    true_state: np.ndarray
    clipped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorldSpec:
    """Static description of a world, copied into bags and model bundles.

    Attributes:
        name: registry name, e.g. ``"two_rooms"``.
        image_size: square image side in pixels.
        action_dim: length of one action vector.
        action_low / action_high: per-dimension bounds of a valid action.
        proprio_dim: length of the proprioception vector.
        state_dim: length of ``true_state`` (for probes).
        max_steps: episode length limit used by evaluation.
        dt: seconds of simulated time per step (for /clock and Twist scaling).
        action_norm_max: bound on the L2 norm of an action, or None.
    """

    name: str
    image_size: int
    action_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    proprio_dim: int
    state_dim: int
    max_steps: int
    dt: float = 0.1
    action_norm_max: float | None = None


class World(ABC):
    """One environment. Deterministic given the seed passed to ``reset``."""

    spec: WorldSpec
    position_unit: str = "px"  # unit of the position part (first two components) of true states

    @abstractmethod
    def reset(self, seed: int | None = None, goal: np.ndarray | None = None) -> Observation:
        """Start an episode; ``goal`` is a true-state goal, sampled when None."""

    @abstractmethod
    def step(self, action: np.ndarray) -> tuple[Observation, StepInfo]:
        """Apply one action (clipped to the bounds) and return the new observation."""

    @abstractmethod
    def goal_observation(self) -> Observation:
        """What the camera would see with the agent at the goal (the goal image)."""

    @abstractmethod
    def is_success(self) -> bool:
        """Whether the current state satisfies the world's success test."""

    def state_success(self, goal_state: np.ndarray, state: np.ndarray) -> bool:
        """The world's success test on a true state against a goal state: what ``is_success`` asks of the
        current state, for tools that see only published states (the demo client)."""
        raise NotImplementedError(f"{type(self).__name__} has no success test on states")

    @abstractmethod
    def true_state(self) -> np.ndarray:
        """Privileged state (float32), for evaluation and probes only."""

    @property
    @abstractmethod
    def goal_state(self) -> np.ndarray:
        """Privileged goal state (float32), for evaluation only."""

    def render_map(self) -> np.ndarray:
        """A top-down RGB picture of the layout for plots (defaults to the camera)."""
        return self.goal_observation().image

    def close(self) -> None:
        """Release simulator resources."""
