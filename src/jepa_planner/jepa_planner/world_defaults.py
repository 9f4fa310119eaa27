"""What the agent uses for a built-in world unless told otherwise: one place for the demo, the evaluator and the launch.

A world named on its own (``scripts/demo.sh --world push_t``, ``jepa-evaluate --world push_t``, ``ros2 launch
jepa_planner agent_sim.launch.py world:=push_t``) brings its shipped bundle (``models/<world>``), the actor's
command bounds from the world's own action space (the params file's 2.45 px are two-rooms'), whether perception
reads proprio (the bundle's manifest says), and the planner profile its benchmarks measure. Anything given
explicitly wins. No ROS here: the launch file calls :func:`launch_defaults` from an ``OpaqueFunction``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class WorldDefaults:
    """What the demo uses for a world unless the command line says otherwise."""

    world_args: str = "{}"  # with --world (else the params file's sim section)
    max_steps: int = 200
    profile: str = ""  # planner profile without --profile (empty: the params file's, made for two-rooms)


# The goal tolerance is the bundle's own (manifest goal.tolerance; the params file's default_tolerance is 0).
WORLD_DEFAULTS = {
    "two_rooms": WorldDefaults("{goal_in_other_room: true}"),
    "multi_room": WorldDefaults("{goal_doors: 4}", max_steps=600),
    # goals 25 steps along the scripted pusher, a budget of twice that (bench/bench_push_t.py's d = 25)
    # and flat_cem, the profile its benchmarks measure (the params file's flat_cem_search is two-rooms' wall search)
    "push_t": WorldDefaults("{goal_steps: 25}", max_steps=50, profile="flat_cem"),
    # the maze, control rate and picture the shipped bundle learned (its manifest's provenance; the world's own
    # defaults, a U-maze with the goal drawn, collapse its latent to one point), goals 5 maze cells away, 600 steps
    # (12 s) and the hierarchical profile (models/point_maze/README.md: flat CEM fails on long mazes)
    "point_maze": WorldDefaults("{maze: large, action_repeat: 2, show_target: false, goal_cells: 5}", max_steps=600,
                                profile="hierarchical"),
}


def world_defaults(world_name: str) -> WorldDefaults:
    """The world's defaults (plain ones for a world without an entry)."""
    return WORLD_DEFAULTS.get(world_name, WorldDefaults())


def world_command_bounds(world_name: str, world_args: dict[str, Any]) -> dict[str, float]:
    """The actor's command bounds for a built-in world: the world's own action bounds (per axis, and the norm
    bound where it has one; 0 = none), so that the params file's robot limits (two-rooms' 2.45 px) do not
    throttle a world with larger actions (Push-T's +-50 px). ImportError names the extra a world needs."""
    from jepa_sim.worlds import make_world

    world = make_world(world_name, **world_args)
    try:
        spec = world.spec
        per_axis = float(max(np.abs(spec.action_low).max(), np.abs(spec.action_high).max()))
        return {"max_command": per_axis, "max_command_norm": float(spec.action_norm_max or 0.0)}
    finally:
        world.close()


def missing_bundle_hint(world_name: str, repo: Path = REPO, option: str = "--bundle") -> str:
    """What to run when a world has no shipped bundle: its training recipe, when the repository has one
    (``option``: the caller's flag for a bundle directory)."""
    recipe = repo / "config" / "train" / f"{world_name}.yaml"
    if not recipe.exists():
        return f"; pass {option} DIR (no bundle and no training recipe for world {world_name!r} in this repository)"
    return (f"; train one with: jepa-train --config config/train/{world_name}.yaml --out runs/{world_name} && "
            f"jepa-export --run runs/{world_name} --out models/{world_name}   (or pass {option} DIR)")


def bundle_uses_proprio(bundle: Path) -> bool | None:
    """Whether a bundle fuses proprio (manifest ``input.uses_proprio``); None when its manifest cannot be read
    (the nodes then report the bundle's problem themselves)."""
    try:
        manifest = json.loads((Path(bundle) / "manifest.json").read_text())
        return bool(manifest["input"].get("uses_proprio", False))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def launch_defaults(world_name: str, world_args: dict[str, Any], arguments: dict[str, str]) -> dict[str, str]:
    """The agent launch arguments for ``world:=<world_name>``, as launch-argument text: the given ``arguments``
    with the empty ones that the world decides filled in.

    ``bundle``: ``models/<world>`` (relative to the working directory, like the params file's own bundle);
    ``max_command``, ``max_command_norm``: the world's action bounds; ``use_proprio``: the bundle's manifest (left
    empty when the bundle cannot be read: the nodes say why); ``profile``: the world's benchmark profile, if it has
    one. A world whose optional extra is missing raises ImportError naming what to install.
    """
    out = dict(arguments)
    if not out.get("bundle"):
        out["bundle"] = f"models/{world_name}"
    bounds = world_command_bounds(world_name, world_args)
    for name, value in bounds.items():
        if not out.get(name):
            out[name] = repr(value)
    if not out.get("use_proprio"):
        proprio = bundle_uses_proprio(Path(out["bundle"]))
        out["use_proprio"] = "" if proprio is None else str(proprio).lower()
    defaults = world_defaults(world_name)
    if not out.get("profile"):
        out["profile"] = defaults.profile
    if not out.get("max_steps"):
        out["max_steps"] = str(defaults.max_steps)
    return out
