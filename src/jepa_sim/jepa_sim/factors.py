"""Factors of variation: named changes to a world at evaluation time, with the model unchanged.

A factor is either a camera factor (any world: applied by ``jepa_sim.camera.PerturbedCamera``) or a
world factor (an option of the world's constructor, so the sim node can use it too). Levels are
checked against each factor's range; an unknown name or a level out of range is refused with the
list of valid ones.

    world = make_varied_world("two_rooms", {"goal_in_other_room": True}, parse_factors(["noise=0.012", "door_y=20"]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from jepa_sim.camera import CameraPerturbation, PerturbedCamera
from jepa_sim.worlds import World, make_world

POINT_MASS_WORLDS = ("two_rooms", "multi_room")


@dataclass(frozen=True)
class Factor:
    """One factor of variation.

    Attributes:
        name: what ``--factor NAME=LEVEL`` calls it.
        kind: "camera" (image only) or "world" (a world constructor option).
        low / high: valid range of a numeric level (inclusive).
        nominal: the level that changes nothing.
        help: what the level means, with its unit.
        worlds: worlds that have it (None: every world).
        option: the world constructor option a world factor sets.
        choices: valid levels of a categorical factor (instead of low/high).
        colour: the level is an RGB colour: one grey level or r,g,b, each in [0, 1].
        integer: the level must be a whole number.
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    nominal: Any = None
    help: str = ""
    worlds: tuple[str, ...] | None = None
    option: str | None = None
    choices: tuple[str, ...] | None = None
    colour: bool = False
    integer: bool = False

    def describe(self) -> str:
        if self.choices:
            rng = "|".join(self.choices)
        elif self.colour:
            rng = "grey level or r,g,b in [0, 1]"
        else:
            rng = f"[{self.low:g}, {self.high:g}]"
        return f"{self.name}={rng} ({self.help}; nominal {self.nominal})"


FACTORS: dict[str, Factor] = {
    f.name: f
    for f in [
        # camera: any world
        Factor("noise", "camera", 0.0, 0.25, 0.0, "sensor noise std, fraction of full scale (3/255 = 0.0118)"),
        Factor("brightness", "camera", 0.2, 3.0, 1.0, "intensity gain (1.2 = +20%)"),
        Factor("contrast", "camera", 0.2, 3.0, 1.0, "scale of deviations from the mean grey"),
        Factor("gamma", "camera", 0.2, 5.0, 1.0, "intensity exponent"),
        Factor("shift_r", "camera", -0.5, 0.5, 0.0, "red offset, fraction of full scale"),
        Factor("shift_g", "camera", -0.5, 0.5, 0.0, "green offset, fraction of full scale"),
        Factor("shift_b", "camera", -0.5, 0.5, 0.0, "blue offset, fraction of full scale"),
        Factor("background", "camera", nominal="none", help="colour painted behind the dark parts of the scene", colour=True),
        Factor("blur", "camera", 0.0, 4.0, 0.0, "Gaussian blur std in px"),
        # world: geometric
        Factor(
            "door_y", "world", 5.0, 59.0, 32.0, "door centre in px along the wall, or 'random' per episode",
            worlds=("two_rooms",), option="door_y",
        ),
        Factor("door_width", "world", 4.0, 24.0, 8.0, "door gap in px", worlds=POINT_MASS_WORLDS, option="door_half_width"),
        Factor("agent_size", "world", 0.5, 4.0, 1.3, "agent dot radius (Gaussian std) in image px", worlds=POINT_MASS_WORLDS,
               option="sigma"),
        Factor(
            "placement", "world", nominal="mixed", help="where starts and goals are sampled", worlds=POINT_MASS_WORLDS,
            option="placement", choices=("uniform", "near_wall", "corner", "mixed"),
        ),
        # world: colours
        Factor("wall_colour", "world", nominal="0,0,1", help="wall RGB", worlds=POINT_MASS_WORLDS, option="wall_colour",
               colour=True),
        Factor("floor_colour", "world", nominal="0,0,0", help="floor RGB", worlds=POINT_MASS_WORLDS, option="floor_colour",
               colour=True),
        Factor("agent_colour", "world", nominal="1,0,0", help="agent RGB", worlds=POINT_MASS_WORLDS, option="agent_colour",
               colour=True),
        # world: physical
        Factor("action_noise", "world", 0.0, 2.45, 0.0, "std in px of noise on every applied displacement",
               worlds=POINT_MASS_WORLDS, option="action_noise"),
        Factor("gain", "world", 0.25, 2.0, 1.0, "factor on every applied displacement", worlds=POINT_MASS_WORLDS,
               option="action_gain"),
        Factor("delay", "world", 0, 10, 0, "steps between a command and its effect", worlds=POINT_MASS_WORLDS,
               option="action_delay", integer=True),
    ]
}


def valid_factors(world: str | None = None) -> list[Factor]:
    """Factors that apply to ``world`` (all when None)."""
    return [f for f in FACTORS.values() if world is None or f.worlds is None or world in f.worlds]


def _valid_list(world: str | None) -> str:
    return "; ".join(f.describe() for f in valid_factors(world))


def check_level(factor: Factor, level: Any, world: str | None = None) -> Any:
    """The level as the world or camera wants it, or ValueError naming the valid range."""
    where = f" for world {world!r}" if world else ""
    if factor.choices:
        if level not in factor.choices:
            raise ValueError(f"factor {factor.name}={level!r}{where} is not one of {', '.join(factor.choices)}")
        return level
    if factor.colour:
        vals = [level] * 3 if isinstance(level, (int, float)) else str(level).split(",") if isinstance(level, str) else level
        try:
            rgb = tuple(float(v) for v in vals)
        except (TypeError, ValueError):
            rgb = ()
        if len(rgb) != 3 or not all(0.0 <= v <= 1.0 for v in rgb):
            raise ValueError(f"factor {factor.name}={level!r}{where} must be one grey level or r,g,b, each in [0, 1]")
        return rgb
    if factor.name == "door_y" and level == "random":
        return level
    if isinstance(level, bool) or not isinstance(level, (int, float)):
        raise ValueError(f"factor {factor.name}={level!r}{where} must be a number in [{factor.low:g}, {factor.high:g}]")
    if not factor.low <= level <= factor.high:
        raise ValueError(f"factor {factor.name}={level!r}{where} is out of range [{factor.low:g}, {factor.high:g}] ({factor.help})")
    if factor.integer:
        if int(level) != level:
            raise ValueError(f"factor {factor.name}={level!r}{where} must be a whole number")
        return int(level)
    return float(level)


def parse_factors(items: list[str], world: str | None = None) -> dict[str, Any]:
    """['noise=0.012', 'brightness=1.2'] -> checked levels by name; ValueError lists the valid factors."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--factor expects NAME=LEVEL, got {item!r}; valid factors: {_valid_list(world)}")
        name, raw = (part.strip() for part in item.split("=", 1))
        out[name] = yaml.safe_load(raw) if raw else raw
    return check_factors(out, world)


def check_factors(factors: dict[str, Any], world: str | None = None) -> dict[str, Any]:
    """Checked levels by name: unknown names, factors the world lacks and out-of-range levels are refused."""
    out: dict[str, Any] = {}
    for name, level in factors.items():
        factor = FACTORS.get(name)
        if factor is None:
            raise ValueError(f"unknown factor {name!r}; valid factors{' for ' + world if world else ''}: {_valid_list(world)}")
        if world is not None and factor.worlds is not None and world not in factor.worlds:
            raise ValueError(f"factor {name!r} does not apply to world {world!r}; valid factors for it: {_valid_list(world)}")
        out[name] = check_level(factor, level, world)
    return out


def split_factors(factors: dict[str, Any]) -> tuple[dict[str, Any], CameraPerturbation]:
    """Checked factors -> (world constructor options, camera perturbation)."""
    world_kwargs: dict[str, Any] = {}
    cam: dict[str, Any] = {}
    shift = [0.0, 0.0, 0.0]
    for name, level in factors.items():
        factor = FACTORS[name]
        if factor.kind == "world":
            assert factor.option is not None
            value = level
            if name == "door_width":
                value = level / 2.0
            elif factor.colour:
                value = tuple(float(v) for v in level)
            world_kwargs[factor.option] = value
        elif name.startswith("shift_"):
            shift["rgb".index(name[-1])] = float(level)
        else:
            cam[name] = level
    return world_kwargs, CameraPerturbation(shift=(shift[0], shift[1], shift[2]), **cam)


def make_varied_world(name: str, world_kwargs: dict[str, Any] | None = None, factors: dict[str, Any] | None = None) -> World:
    """Build ``name`` with ``world_kwargs``, then apply the (checked) factors: world options, then the camera."""
    factors = check_factors(dict(factors or {}), name)
    extra, camera = split_factors(factors)
    world = make_world(name, **{**(world_kwargs or {}), **extra})
    return world if camera.is_identity else PerturbedCamera(world, camera)
