"""The multi-room world: a grid of rooms whose doors form a tree, so paths are long.

Same point-mass dynamics, images and proprio as two-rooms (``jepa_sim.worlds.point_mass``).
The doors connect the rooms along a random spanning tree drawn from ``layout_seed`` (fixed per
world), so reaching a room several doors away needs a long detour: a long-horizon test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jepa_sim.worlds.layout import RectLayout, grid_layout
from jepa_sim.worlds.point_mass import PointMassBatch, PointMassWorld


def parse_rooms(rooms: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """'3x2' or (3, 2) -> (rows, cols)."""
    if isinstance(rooms, str):
        parts = rooms.lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"rooms must look like '3x3' (rows x cols), got {rooms!r}")
        rows, cols = int(parts[0]), int(parts[1])
    else:
        rows, cols = (int(v) for v in rooms)
    if rows < 1 or cols < 1 or rows * cols < 2:
        raise ValueError(f"rooms must give at least 2 rooms, got {rooms!r}")
    return rows, cols


def multi_room_layout(
    size: int = 96,
    rooms: str | tuple[int, int] = "3x3",
    layout_seed: int = 0,
    extra_doors: int = 0,
    wall_width: int = 3,
    door_half_width: float = 4.0,
) -> RectLayout:
    """Grid of rooms with doors on a random spanning tree (plus ``extra_doors`` random loops)."""
    rows, cols = parse_rooms(rooms)
    if size / max(rows, cols) < 4 * door_half_width:
        raise ValueError(f"size {size} is too small for {rows}x{cols} rooms with door half width {door_half_width}")
    rng = np.random.default_rng(layout_seed)
    edges = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
    edges += [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    # Randomised depth-first search gives a tree with long corridors (a maze of rooms).
    neighbours: dict[int, list[int]] = {i: [] for i in range(rows * cols)}
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    seen, stack, tree = {0}, [0], []
    while stack:
        room = stack[-1]
        options = [b for b in neighbours[room] if b not in seen]
        if not options:
            stack.pop()
            continue
        nxt = options[int(rng.integers(len(options)))]
        tree.append((room, nxt))
        seen.add(nxt)
        stack.append(nxt)
    unused = [e for e in edges if e not in tree and (e[1], e[0]) not in tree]
    rng.shuffle(unused)
    return grid_layout(
        size, (rows, cols), tree + unused[: max(0, int(extra_doors))], wall_width=wall_width, door_half_width=door_half_width
    )


class MultiRoomBatch(PointMassBatch):
    """``n`` multi-room environments stepped together.

    Args:
        n: number of environments.
        size: arena side in px (96).
        image_size: image side in px (64; pass e.g. 96 or 128 for a finer picture).
        rooms: 'rows x cols' of rooms ('3x3').
        layout_seed: draws the door tree (fixed per world).
        extra_doors: additional doors that create loops.
        goal_far: sample goals at least ``far_rooms`` doors from the start (or as far as possible).
        far_rooms: see goal_far.
        goal_doors: sample goals exactly this many doors from the start (or as far as possible); overrides
            goal_far (the task length of the hierarchy benchmark's sweep).
        **kwargs: ``PointMassBatch`` options (max_step, sigma, success_radius, max_steps, dt, sample_margin).
    """

    def __init__(
        self,
        n: int,
        size: int = 96,
        image_size: int | None = 64,
        rooms: str | tuple[int, int] = "3x3",
        layout_seed: int = 0,
        extra_doors: int = 0,
        wall_width: int = 3,
        door_half_width: float = 4.0,
        goal_far: bool = False,
        far_rooms: int = 3,
        goal_doors: int | None = None,
        max_steps: int = 500,
        **kwargs: Any,
    ) -> None:
        layout = multi_room_layout(size, rooms, layout_seed, extra_doors, wall_width, door_half_width)
        super().__init__(
            layout,
            n,
            "multi_room",
            image_size=image_size,
            goal_mode="doors" if goal_doors is not None else "far" if goal_far else "any",
            far_rooms=far_rooms if goal_doors is None else goal_doors,
            max_steps=max_steps,
            **kwargs,
        )


class MultiRoom(PointMassWorld):
    """One multi-room environment (same arguments as ``MultiRoomBatch`` without ``n``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(MultiRoomBatch(1, **kwargs))
