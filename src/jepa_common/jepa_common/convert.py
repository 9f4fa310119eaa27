"""Message <-> array conventions used by every node, the recorder and the bag reader.

One Twist <-> action convention: an action is a displacement per control step, a Twist carries it
as a velocity (action / dt). Components map in :data:`TWIST_FIELDS` order: a 2-D planar action is
(linear.x, linear.y), a third component is the yaw rate (angular.z), then linear.z, angular.x,
angular.y. Fields beyond the action's dimension are zero.

LatentState -> array: :func:`parse_latent` (the one set of checks every node applies).

One latent distance: :func:`latent_distance` is the RMS over latent dimensions of
(a - b) / latent_std ("normalised distance"). Goal tolerances, ``distance_to_goal`` feedback and
the hierarchical planner's subgoal/direct-goal thresholds are all in this unit.

Pure NumPy (the distance also accepts torch tensors): no rclpy, no message imports.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TWIST_FIELDS: tuple[tuple[str, str], ...] = (
    ("linear", "x"),
    ("linear", "y"),
    ("angular", "z"),
    ("linear", "z"),
    ("angular", "x"),
    ("angular", "y"),
)
STD_FLOOR = 1e-6


def twist_to_action(twist: Any, action_dim: int, dt: float) -> np.ndarray:
    """geometry_msgs/Twist (velocity) -> float64 action (displacement per step) of ``action_dim`` values.

    Raises:
        ValueError: ``action_dim`` outside 0..6 or a non-finite component.
    """
    if not 0 <= action_dim <= len(TWIST_FIELDS):
        raise ValueError(f"a Twist carries at most {len(TWIST_FIELDS)} action components, asked for {action_dim}")
    values = np.array([getattr(getattr(twist, part), axis) for part, axis in TWIST_FIELDS[:action_dim]], np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"non-finite Twist components {values.tolist()}")
    return values * dt


def action_to_twist_components(action: np.ndarray, dt: float) -> dict[str, tuple[float, float, float]]:
    """Action (displacement per step) -> {"linear": (x, y, z), "angular": (x, y, z)} velocities.

    Returned as plain floats so both rclpy messages and rosbags message classes can be filled.
    """
    a = np.asarray(action, np.float64).reshape(-1)
    if a.size > len(TWIST_FIELDS):
        raise ValueError(f"a Twist carries at most {len(TWIST_FIELDS)} action components, got {a.size}")
    out = {"linear": [0.0, 0.0, 0.0], "angular": [0.0, 0.0, 0.0]}
    for value, (part, axis) in zip(a / dt, TWIST_FIELDS, strict=False):
        out[part]["xyz".index(axis)] = float(value)
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def fill_twist(twist: Any, action: np.ndarray, dt: float) -> Any:
    """Write an action into an existing Twist message (rclpy or rosbags) and return it."""
    for part, xyz in action_to_twist_components(action, dt).items():
        vec = getattr(twist, part)
        vec.x, vec.y, vec.z = xyz
    return twist


def latent_distances(a: np.ndarray, b: np.ndarray, latent_std: np.ndarray) -> np.ndarray:
    """Batched :func:`latent_distance` (NumPy): RMS over the trailing ``latent_std.ndim`` axes."""
    std = np.maximum(np.asarray(latent_std), STD_FLOOR)
    d = (np.asarray(a) - np.asarray(b)) / std
    return np.sqrt(np.mean(d * d, axis=tuple(range(-std.ndim, 0))))


def latent_distance(a: Any, b: Any, latent_std: Any) -> float:
    """RMS over all elements of (a - b) / latent_std: the suite's one "distance to goal" unit.

    Works on NumPy arrays and torch tensors; ``latent_std`` is floored at ``STD_FLOOR``.
    """
    std = latent_std.clamp_min(STD_FLOOR) if hasattr(latent_std, "clamp_min") else np.maximum(latent_std, STD_FLOOR)
    d = (a - b) / std
    return float((d * d).mean()) ** 0.5


def parse_latent(msg: Any, shape: tuple[int, ...], model_id: str = "", topic: str = "latent") -> np.ndarray:
    """LatentState -> float32 array of ``shape``, validated; ValueError naming ``topic`` and the problem.

    Checks the model id (when both are set), the declared shape, the number of values and that all
    are finite: one place for the rules every node applies to latents.
    """
    if model_id and msg.model_id and msg.model_id != model_id:
        raise ValueError(f"{topic} comes from model '{msg.model_id}', this node runs '{model_id}'")
    data = np.asarray(msg.data, np.float32)
    got = tuple(int(s) for s in msg.shape)
    if got != tuple(shape) or data.size != int(np.prod(shape)):
        raise ValueError(f"{topic} has shape {list(got)} with {data.size} values, expected {list(shape)}")
    if not np.isfinite(data).all():
        raise ValueError(f"{topic} contains NaN/inf")
    return data.reshape(shape)


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
