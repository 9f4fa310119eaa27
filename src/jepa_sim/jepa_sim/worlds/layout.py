"""Walls as axis-aligned rectangles: collision clipping, free-space tests, rooms and path distances.

Shared by the two-rooms and multi-room worlds. Coordinates are arena pixels: x grows to the
right (image column), y grows downwards (image row); pixel (row r, col c) covers
[c, c+1) x [r, r+1), so its centre is (c + 0.5, r + 0.5).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

# Distance (px) kept between a blocked agent and the wall it ran into, so it is never inside it.
STOP_GAP = 1e-3


@dataclass(frozen=True)
class Door:
    """A gap in a wall between two rooms.

    Attributes:
        rooms: the two room indices it connects.
        centre: (x, y) of the gap centre on the wall's centre line.
        axis: 0 when the wall is vertical (the door is crossed along x), 1 when horizontal.
    """

    rooms: tuple[int, int]
    centre: tuple[float, float]
    axis: int


class RectLayout:
    """A square arena of ``size`` px with rectangular walls and a grid of rooms.

    Args:
        size: arena side in px.
        rects: (R, 4) float array of walls [x0, y0, x1, y1] (closed for collisions,
            half-open [x0, x1) for rendering pixel centres).
        room_grid: (rows, cols) of equal room cells (a room is the cell a point lies in).
        doors: the doors between rooms (for room graphs and plots).
    """

    def __init__(self, size: int, rects: np.ndarray, room_grid: tuple[int, int], doors: list[Door]) -> None:
        self.size = int(size)
        self.rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        self.room_grid = room_grid
        self.doors = doors
        self._neighbours: dict[int, list[int]] = {i: [] for i in range(self.num_rooms)}
        for door in doors:
            a, b = door.rooms
            self._neighbours[a].append(b)
            self._neighbours[b].append(a)

    @property
    def num_rooms(self) -> int:
        return self.room_grid[0] * self.room_grid[1]

    # ---------------------------------------------------------------- geometry
    def move(self, pos: np.ndarray, disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Move points along straight segments, stopping just before the first wall hit.

        Args:
            pos: (N, 2) start positions (outside all walls).
            disp: (N, 2) displacements.

        Returns:
            (new positions (N, 2), blocked (N,) bool).
        """
        p = pos[:, None, :]  # (N, 1, 2)
        d = disp[:, None, :]
        lo = self.rects[None, :, :2]  # (1, R, 2)
        hi = self.rects[None, :, 2:]
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (lo - p) / d
            t2 = (hi - p) / d
        moving = d != 0
        inside_slab = (p >= lo) & (p <= hi)
        # An axis without motion never limits entry if inside its slab, and rules out a hit otherwise.
        t_near = np.where(moving, np.minimum(t1, t2), np.where(inside_slab, -np.inf, np.inf))
        t_far = np.where(moving, np.maximum(t1, t2), np.where(inside_slab, np.inf, -np.inf))
        t_enter = t_near.max(axis=2)
        t_exit = t_far.min(axis=2)
        hit = (t_enter <= t_exit) & (t_exit >= 0.0) & (t_enter <= 1.0)
        t_hit = np.where(hit, np.maximum(t_enter, 0.0), np.inf).min(axis=1)  # (N,)
        blocked = t_hit <= 1.0
        length = np.linalg.norm(disp, axis=1)
        safe_len = np.where(length > 0, length, 1.0)
        frac = np.where(blocked, np.maximum(t_hit - STOP_GAP / safe_len, 0.0), 1.0)
        return pos + frac[:, None] * disp, blocked

    def is_free(self, pts: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Whether each point of (N, 2) is at least ``margin`` px away from every wall."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        x = pts[:, None, 0]
        y = pts[:, None, 1]
        r = self.rects
        inside = (x >= r[:, 0] - margin) & (x <= r[:, 2] + margin) & (y >= r[:, 1] - margin) & (y <= r[:, 3] + margin)
        return ~inside.any(axis=1)

    def room_of(self, pts: np.ndarray) -> np.ndarray:
        """Room index (row-major over the room grid) of each point of (N, 2)."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        rows, cols = self.room_grid
        c = np.clip((pts[:, 0] / (self.size / cols)).astype(int), 0, cols - 1)
        r = np.clip((pts[:, 1] / (self.size / rows)).astype(int), 0, rows - 1)
        return r * cols + c

    def room_bounds(self, room: int) -> tuple[float, float, float, float]:
        """[x0, y0, x1, y1] of a room cell (walls included)."""
        rows, cols = self.room_grid
        w, h = self.size / cols, self.size / rows
        r, c = divmod(int(room), cols)
        return c * w, r * h, (c + 1) * w, (r + 1) * h

    def room_distances(self, room: int) -> np.ndarray:
        """Number of doors to pass from ``room`` to each room (BFS over the door graph; -1 unreachable)."""
        dist = np.full(self.num_rooms, -1, dtype=int)
        dist[room] = 0
        queue = deque([room])
        while queue:
            a = queue.popleft()
            for b in self._neighbours[a]:
                if dist[b] < 0:
                    dist[b] = dist[a] + 1
                    queue.append(b)
        return dist

    def sample_free(
        self, rng: np.random.Generator, margin: float, room: int | None = None, rooms: list[int] | None = None
    ) -> np.ndarray:
        """One uniformly random free point (float64 (2,)), optionally inside one of ``rooms``."""
        allowed = rooms if rooms is not None else ([room] if room is not None else None)
        for _ in range(10_000):
            if allowed is None:
                pt = rng.uniform(0.0, self.size, size=2)
            else:
                x0, y0, x1, y1 = self.room_bounds(allowed[int(rng.integers(len(allowed)))])
                pt = rng.uniform((x0, y0), (x1, y1))
            if self.is_free(pt, margin)[0]:
                return pt
        raise RuntimeError(f"could not sample a free point with margin {margin} (rooms {allowed}); is the layout all walls?")

    # ---------------------------------------------------------------- pictures and planning
    def wall_mask(self, image_size: int) -> np.ndarray:
        """(image_size, image_size) bool: pixels whose centre lies in a wall."""
        scale = image_size / self.size
        centres = (np.arange(image_size) + 0.5) / scale
        x = centres[None, None, :]
        y = centres[None, :, None]
        r = self.rects[:, :, None, None]
        inside = (x >= r[:, 0]) & (x < r[:, 2]) & (y >= r[:, 1]) & (y < r[:, 3])
        return inside.any(axis=0)

    def distance_fields(self, goals: np.ndarray, margin: float = 1.5) -> np.ndarray:
        """Geodesic distance (px) to each goal over a 1-px grid of free cells, 8-connected.

        Cells closer than ``margin`` to a wall are blocked so paths keep clear of walls and
        pass doors through their middle. Used by goal-reaching behaviour policies.

        Args:
            goals: (N, 2) goal positions.

        Returns:
            (N, size, size) float32 distances indexed [row, col]; inf where unreachable.
        """
        goals = np.asarray(goals, dtype=np.float64).reshape(-1, 2)
        n, s = goals.shape[0], self.size
        centres = np.arange(s) + 0.5
        grid = np.stack(np.meshgrid(centres, centres, indexing="xy"), axis=-1).reshape(-1, 2)
        free = self.is_free(grid, margin).reshape(s, s)
        dist = np.full((n, s, s), np.inf)
        gc = np.clip(goals.astype(int), 0, s - 1)
        dist[np.arange(n), gc[:, 1], gc[:, 0]] = 0.0
        passable = np.broadcast_to(free, (n, s, s)).copy()
        passable[np.arange(n), gc[:, 1], gc[:, 0]] = True  # a goal near a wall still seeds the field
        shifts = [(dy, dx, float(np.hypot(dy, dx))) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
        # Wavefront relaxation: each sweep extends every shortest path by one cell.
        for _ in range(4 * s * max(self.room_grid)):
            new = dist.copy()
            for dy, dx, cost in shifts:
                src = dist[:, max(0, -dy) : s - max(0, dy), max(0, -dx) : s - max(0, dx)]
                dst = new[:, max(0, dy) : s - max(0, -dy), max(0, dx) : s - max(0, -dx)]
                np.minimum(dst, src + cost, out=dst)
            new[~passable] = np.inf
            if np.array_equal(new, dist):
                break
            dist = new
        return dist.astype(np.float32)


def grid_layout(
    size: int,
    room_grid: tuple[int, int],
    open_pairs: list[tuple[int, int]],
    door_offsets: dict[tuple[int, int], float] | None = None,
    wall_width: int = 3,
    door_half_width: float = 4.0,
) -> RectLayout:
    """Build a grid of rooms separated by walls, with a door between each pair in ``open_pairs``.

    Args:
        size: arena side in px.
        room_grid: (rows, cols) rooms.
        open_pairs: adjacent room pairs (row-major indices) that get a door.
        door_offsets: per pair, the door centre along the wall (px from the arena origin);
            defaults to the middle of the shared wall.
        wall_width: wall thickness in px (walls are pixel-aligned).
        door_half_width: half the door gap in px.
    """
    rows, cols = room_grid
    w, h = size / cols, size / rows
    door_offsets = door_offsets or {}
    rects: list[tuple[float, float, float, float]] = [
        (0, 0, size, 1),
        (0, size - 1, size, size),
        (0, 0, 1, size),
        (size - 1, 0, size, size),
    ]
    doors: list[Door] = []
    pairs = {tuple(sorted(p)) for p in open_pairs}

    def wall_span(centre: float) -> tuple[float, float]:
        start = float(np.floor(centre - wall_width / 2 + 0.5))
        return start, start + wall_width

    for r in range(rows):
        for c in range(cols):
            room = r * cols + c
            if c + 1 < cols:  # vertical wall to the right of this room
                pair = (room, room + 1)
                x0, x1 = wall_span((c + 1) * w)
                y_lo, y_hi = r * h, (r + 1) * h
                rects.extend(
                    _wall_with_gap(
                        pair in pairs, door_offsets.get(pair, (y_lo + y_hi) / 2), door_half_width, y_lo, y_hi, x0, x1, axis=0
                    )
                )
                if pair in pairs:
                    doors.append(Door(pair, ((x0 + x1) / 2, door_offsets.get(pair, (y_lo + y_hi) / 2)), axis=0))
            if r + 1 < rows:  # horizontal wall below this room
                pair = (room, room + cols)
                y0, y1 = wall_span((r + 1) * h)
                x_lo, x_hi = c * w, (c + 1) * w
                rects.extend(
                    _wall_with_gap(
                        pair in pairs, door_offsets.get(pair, (x_lo + x_hi) / 2), door_half_width, x_lo, x_hi, y0, y1, axis=1
                    )
                )
                if pair in pairs:
                    doors.append(Door(pair, (door_offsets.get(pair, (x_lo + x_hi) / 2), (y0 + y1) / 2), axis=1))
    for a, b in pairs:
        if (b - a not in (1, cols)) or (b - a == 1 and a // cols != b // cols):
            raise ValueError(f"rooms {a} and {b} are not adjacent in a {rows}x{cols} grid")
    return RectLayout(size, np.array(rects), room_grid, doors)


def _wall_with_gap(
    has_door: bool, door_at: float, half: float, lo: float, hi: float, t0: float, t1: float, axis: int
) -> list[tuple[float, float, float, float]]:
    """Wall pieces along [lo, hi] with thickness [t0, t1], leaving a gap around ``door_at``."""
    spans = [(lo, door_at - half), (door_at + half, hi)] if has_door else [(lo, hi)]
    out = []
    for a, b in spans:
        if b <= a:
            continue
        out.append((t0, a, t1, b) if axis == 0 else (a, t0, b, t1))
    return out
