"""Built-in worlds and their registry.

``make_world(name, **kwargs)`` builds one environment; ``make_batch_world(name, n, **kwargs)``
builds n stepped together where the world has a numpy batch (two_rooms, multi_room), else None.
Optional worlds (point_maze, push_t) import their simulators only when built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jepa_sim.worlds.base import Observation, StepInfo, World, WorldSpec
from jepa_sim.worlds.point_mass import BatchStepInfo, PointMassBatch, PointMassWorld

__all__ = [
    "BatchStepInfo",
    "Observation",
    "PointMassBatch",
    "PointMassWorld",
    "StepInfo",
    "World",
    "WorldSpec",
    "make_batch_world",
    "make_world",
    "world_names",
]


def _two_rooms(**kwargs: Any) -> World:
    from jepa_sim.worlds.two_rooms import TwoRooms

    return TwoRooms(**kwargs)


def _multi_room(**kwargs: Any) -> World:
    from jepa_sim.worlds.multi_room import MultiRoom

    return MultiRoom(**kwargs)


def _point_maze(**kwargs: Any) -> World:
    from jepa_sim.worlds.point_maze import PointMaze

    return PointMaze(**kwargs)


def _push_t(**kwargs: Any) -> World:
    from jepa_sim.worlds.push_t import PushT

    return PushT(**kwargs)


_WORLDS: dict[str, Callable[..., World]] = {
    "two_rooms": _two_rooms,
    "multi_room": _multi_room,
    "point_maze": _point_maze,
    "push_t": _push_t,
}


def world_names() -> list[str]:
    """Registry names accepted by ``make_world``."""
    return list(_WORLDS)


def _check_name(name: str) -> None:
    if name not in _WORLDS:
        raise ValueError(f"unknown world {name!r}; valid names: {', '.join(_WORLDS)}")


def make_world(name: str, **kwargs: Any) -> World:
    """Build one environment by registry name; ``kwargs`` go to the world's constructor."""
    _check_name(name)
    try:
        return _WORLDS[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"bad arguments for world {name!r}: {err}") from err


def make_batch_world(name: str, n: int, **kwargs: Any) -> PointMassBatch | None:
    """Build ``n`` environments stepped together, or None when the world has no batched version."""
    _check_name(name)
    if name == "two_rooms":
        from jepa_sim.worlds.two_rooms import TwoRoomsBatch

        return TwoRoomsBatch(n, **kwargs)
    if name == "multi_room":
        from jepa_sim.worlds.multi_room import MultiRoomBatch

        return MultiRoomBatch(n, **kwargs)
    return None
