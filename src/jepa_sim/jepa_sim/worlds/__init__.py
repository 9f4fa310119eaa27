"""Built-in worlds and their registry.

``make_world(name, **kwargs)`` builds one environment; ``make_batch_world(name, n, **kwargs)``
builds n stepped together where the world has a numpy batch (two_rooms, multi_room), else None.
Optional worlds (point_maze, push_t) import their simulators only when built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jepa_common import plugins
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
    "batch_world_names",
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


def _optional_world(name: str, module: str, cls: str, package: str, **kwargs: Any) -> World:
    """Import an optional world's module only when it is built; absent -> ImportError saying what to install."""
    import importlib

    try:
        world_cls = getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as err:
        if err.name == module:
            raise ImportError(f"world {name!r} (on {package!r}) has no adapter module {module} in this build yet") from err
        raise ImportError(
            f"world {name!r} needs the optional simulator {package!r} and its jepa_sim module ({err.name} is missing); "
            f"install it with `pip install {package}` (see requirements/extras-*.txt)"
        ) from err
    return world_cls(**kwargs)


def _point_maze(**kwargs: Any) -> World:
    return _optional_world("point_maze", "jepa_sim.worlds.point_maze", "PointMaze", "gymnasium-robotics", **kwargs)


def _push_t(**kwargs: Any) -> World:
    return _optional_world("push_t", "jepa_sim.worlds.push_t", "PushT", "gym-pusht", **kwargs)


_WORLDS: dict[str, Callable[..., World]] = {
    "two_rooms": _two_rooms,
    "multi_room": _multi_room,
    "point_maze": _point_maze,
    "push_t": _push_t,
}


def world_names() -> list[str]:
    """Registry names accepted by ``make_world``: the built-ins, then worlds registered under ``jepa.worlds``."""
    return plugins.names(plugins.WORLDS, _WORLDS)


def batch_world_names() -> list[str]:
    """Names for which ``make_batch_world`` returns a numpy batch."""
    return ["two_rooms", "multi_room"]


def _check_name(name: str) -> None:
    if name not in world_names():
        raise ValueError(f"unknown world {name!r}; valid names: {', '.join(world_names())}")


def make_world(name: str, **kwargs: Any) -> World:
    """Build one environment by registry name; ``kwargs`` go to the world's constructor."""
    _check_name(name)
    try:
        return plugins.load(plugins.WORLDS, name, _WORLDS)(**kwargs)
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
