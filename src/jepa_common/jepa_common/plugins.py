"""Plugin points through Python entry points (the pip/colcon counterpart of pluginlib).

A package offers a planner, cost term, world or encoder by declaring it in its ``setup.py``::

    entry_points={"jepa.planners": ["my_planner = my_pkg.planner:MyPlanner"]}

and, once installed (``pip install -e`` or ``colcon build``), it is usable by name from a planner
profile, a cost config, ``make_world`` or an encoder config, without editing this repository.
The suite's own built-ins are declared the same way in their packages' ``setup.py``; each registry
also passes its built-in table as ``builtins`` so a source checkout used through PYTHONPATH (no
installed metadata) still finds them. An installed entry point of the same name wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

PLANNERS = "jepa.planners"
COST_TERMS = "jepa.cost_terms"
WORLDS = "jepa.worlds"
ENCODERS = "jepa.encoders"
PLANNER_BUILDERS = "jepa.planner_builders"
GROUPS = (PLANNERS, COST_TERMS, WORLDS, ENCODERS, PLANNER_BUILDERS)


class PluginError(ValueError):
    """An unknown plugin name, or one whose entry point does not load; the text lists the valid names."""


def registered(group: str) -> dict[str, EntryPoint]:
    """Installed entry points of ``group`` by name (read afresh, so newly installed plugins are seen)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def names(group: str, builtins: Mapping[str, Any] | None = None) -> list[str]:
    """Every name usable in ``group``: the built-ins, then installed plugins, sorted within each."""
    base = list(builtins or {})
    return base + sorted(n for n in registered(group) if n not in base)


def load(group: str, name: str, builtins: Mapping[str, Any] | None = None) -> Any:
    """The object registered as ``name`` in ``group`` (an installed entry point first, then ``builtins``).

    Raises:
        PluginError: no such name (the message lists the valid ones), or its entry point fails to import.
    """
    ep = registered(group).get(name)
    if ep is not None:
        try:
            return ep.load()
        except Exception as exc:
            raise PluginError(f"{group} plugin {name!r} ({ep.value}) does not load: {type(exc).__name__}: {exc}") from exc
    if builtins is not None and name in builtins:
        return builtins[name]
    raise PluginError(
        f"unknown {group.split('.')[-1].rstrip('s').replace('_', ' ')} {name!r}; valid names: "
        f"{', '.join(names(group, builtins))} (a plugin registers itself under entry point group {group!r})"
    )
