"""The two-rooms world: a point mass in a square arena split by a wall with one door.

Re-implemented from the public description of PLDM's wall environment (see docs/background.md):
64 px arena, a vertical wall about 3 px thick at x = size/2 with a door gap of +-4 px around
``door_y``, displacement actions with L2 norm <= 2.45 px, success within 1 px of the goal.
Dynamics, images and proprio are those of ``jepa_sim.worlds.point_mass``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jepa_sim.worlds.layout import RectLayout, grid_layout
from jepa_sim.worlds.point_mass import PointMassBatch, PointMassWorld


def two_rooms_layout(
    size: int = 64, wall_width: int = 3, door_y: float | None = None, door_half_width: float = 4.0
) -> RectLayout:
    """Left and right rooms (room 0 and 1) with one door centred at ``door_y`` (default size/2)."""
    if size < 16:
        raise ValueError(f"size must be >= 16 px, got {size}")
    door_y = size / 2 if door_y is None else float(door_y)
    if not (door_half_width + 1 <= door_y <= size - door_half_width - 1):
        raise ValueError(f"door_y={door_y} puts the door (half width {door_half_width}) outside the arena of size {size}")
    return grid_layout(size, (1, 2), [(0, 1)], {(0, 1): door_y}, wall_width=wall_width, door_half_width=door_half_width)


def door_range(size: int = 64, door_half_width: float = 4.0) -> tuple[float, float]:
    """Lowest and highest door centre (px) that keeps the whole door inside the arena."""
    return door_half_width + 1, size - door_half_width - 1


class TwoRoomsBatch(PointMassBatch):
    """``n`` two-rooms environments stepped together.

    Args:
        n: number of environments.
        size: arena side in px (64).
        image_size: image side in px (default ``size``).
        wall_width, door_y, door_half_width: the wall and its door (px). ``door_y="random"`` draws a
            new door position (uniform over ``door_range``) at every reset, from the first env's seed:
            domain randomisation for training, "door anywhere" for evaluation.
        goal_in_other_room: sample start and goal in different rooms (the evaluation setting).
        **kwargs: ``PointMassBatch`` options (max_step, sigma, success_radius, max_steps, dt, sample_margin).
    """

    def __init__(
        self,
        n: int,
        size: int = 64,
        image_size: int | None = None,
        wall_width: int = 3,
        door_y: float | str | None = None,
        door_half_width: float = 4.0,
        goal_in_other_room: bool = False,
        **kwargs: Any,
    ) -> None:
        self.random_door = door_y == "random"
        if isinstance(door_y, str) and not self.random_door:
            raise ValueError(f"door_y must be a number of px or 'random', got {door_y!r}")
        self._layout_args = (size, wall_width, door_half_width)
        layout = two_rooms_layout(size, wall_width, None if self.random_door else door_y, door_half_width)
        goal_mode = "other_room" if goal_in_other_room else "any"
        super().__init__(layout, n, "two_rooms", image_size=image_size, goal_mode=goal_mode, **kwargs)

    @property
    def layout_varies(self) -> bool:
        return self.random_door

    def _layout_for_episode(self, rng: np.random.Generator) -> RectLayout | None:
        if not self.random_door:
            return None
        size, wall_width, half = self._layout_args
        lo, hi = door_range(size, half)
        return two_rooms_layout(size, wall_width, float(rng.uniform(lo, hi)), half)


class TwoRooms(PointMassWorld):
    """One two-rooms environment (same arguments as ``TwoRoomsBatch`` without ``n``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(TwoRoomsBatch(1, **kwargs))
