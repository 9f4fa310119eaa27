"""Door anywhere with a perfect model: is the model or the goal distance the limit?

The oracle model (``jepa_planner.oracle``: the true point-mass dynamics, the latent the agent's position) plans in
two-rooms with the door at several heights, held-out tasks (goals in the other room, the default placement mix),
with two terminal costs and the rest of ``flat_cem`` as shipped (progress term, stall recovery, horizon escalation,
final approach):

- ``straight``: ``flat_cem`` itself, the straight-line distance to the goal (what any latent L2 distance that only
  codes position is);
- ``through_door``: the true shortest distance, through the door when the goal is in the other room, as a critic
  term in place of the terminal distance (what a perfect cost-to-go would give).

If ``straight`` fails where ``through_door`` succeeds, a model that reads the wall is not enough: the planner needs a
cost-to-go that knows the door (``models/two_rooms_fixed_door/README.md``, "Door anywhere").

``--bundle DIR`` plans with a learned model instead (one with a position readout); the true distance is then taken
between the readout's positions of the predicted and the goal latents (``--px-per-unit`` px per unit of the terminal
distance it replaces): whether the learned model's predictions are good enough once the cost-to-go is right.

Usage:
    python bench/door_oracle.py --episodes 40 --out bench/results/door_oracle.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from jepa_planner.evaluate import evaluate
from jepa_planner.oracle import OracleWorldModel
from jepa_planner.profiles import CostTermConfig, PlannerProfile, build_planner, load_profile
from jepa_sim.machine import machine_info
from jepa_sim.worlds import make_world
from jepa_world_model.bundle import load_bundle

HELD_OUT_SEED = 100000
DOOR_X = 32.0  # the wall's centre line in the 64 px arena
DOOR_SAMPLES = 5  # points across the door opening the shortest path may pass through


def through_door_distance(door_y: float, half_width: float = 2.0, scale: float = 1.0):
    """Callable (positions (B, 2), goals (B, 2)) -> (B,): straight-line distance in one room, else the shortest way
    through a point of the door opening (``door_y`` +- ``half_width``), divided by ``scale``."""
    ys = torch.linspace(door_y - half_width, door_y + half_width, DOOR_SAMPLES, dtype=torch.float64)
    door = torch.stack([torch.full_like(ys, DOOR_X), ys], dim=1)

    def distance(z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        same_room = (z[:, 0] < DOOR_X) == (goal[:, 0] < DOOR_X)
        gate = door.to(z.dtype)  # the points in the dtype of the positions (float32 latents, float64 here)
        via = (torch.cdist(z, gate) + torch.cdist(goal, gate)).amin(dim=1)
        return torch.where(same_room, (z - goal).norm(dim=1), via) / scale

    return distance


def with_through_door_terminal(profile: PlannerProfile) -> PlannerProfile:
    """The profile with its level-0 terminal goal distance replaced by a ``critic`` term (the caller's callable)."""
    level = profile.levels[-1]
    costs = [c for c in level.costs if not (c.type == "goal_distance" and c.params.get("mode") == "terminal")]
    if len(costs) == len(level.costs):
        raise ValueError(f"profile {profile.name!r} has no terminal goal_distance term to replace")
    costs.append(CostTermConfig(type="critic", weight=1.0, name="through_door"))
    return profile.model_copy(update={"levels": [*profile.levels[:-1], level.model_copy(update={"costs": costs})]})


def on_readout(model: Any, distance):
    """``distance`` between the model's readout positions of two batches of latents."""
    return lambda z, goal: distance(model.readout_position(z), model.readout_position(goal))


def run(doors: list[float], episodes: int, profile_name: str, threads: int, bundle: str | None = None,
        px_per_unit: float = 20.0) -> list[dict[str, Any]]:
    torch.set_num_threads(threads)
    base = load_profile(profile_name)
    learned = None
    if bundle is not None:
        learned = load_bundle(bundle, backend="torch")
        if not learned.has_position_readout:
            raise ValueError(f"bundle {bundle} has no position readout (jepa-bundle add-readout {bundle})")
    rows = []
    for door in doors:
        world = make_world("two_rooms", door_y=door, goal_in_other_room=True, placement="mixed")
        if learned is None:
            model = OracleWorldModel.from_world(world, frameskip=5, strides=(4,))
            # the critic in the unit of the terminal distance it replaces
            critic = through_door_distance(door, scale=float(model.latent_std[0]))
        else:
            model, critic = learned, on_readout(learned, through_door_distance(door, scale=px_per_unit))
        for cost in ("straight", "through_door"):
            planner = build_planner(base, model) if cost == "straight" else build_planner(with_through_door_terminal(base), model, critic=critic)
            start = time.perf_counter()
            summary, records, _ = evaluate(model, planner, world, episodes, seed=HELD_OUT_SEED, progress=False, gif_episode=None)
            wins = sum(r.success for r in records)
            rows.append({"door_y": door, "cost": cost, "episodes": episodes, "successes": wins,
                         **{k: summary[k] for k in ("success_rate", "success_ci95", "steps_to_goal_median")},
                         "wall_s": time.perf_counter() - start})
            print(f"door {door:4.0f} {cost:13s} {wins}/{episodes} ({100 * wins / episodes:.1f}%)")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--doors", type=float, nargs="+", default=[10.0, 32.0, 54.0], help="door heights (px)")
    p.add_argument("--episodes", type=int, default=40, help="held-out tasks per door and cost")
    p.add_argument("--profile", default="flat_cem", help="a flat profile with a terminal goal_distance term")
    p.add_argument("--bundle", default=None, help="plan with this learned bundle (with a position readout) instead of the oracle")
    p.add_argument("--px-per-unit", type=float, default=20.0,
                   help="with --bundle: px of the true distance per unit of the terminal latent distance it replaces")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="results JSON to write")
    args = p.parse_args(argv)
    if args.episodes < 1:
        print("door_oracle: --episodes must be >= 1", file=sys.stderr)
        return 2
    try:
        rows = run(args.doors, args.episodes, args.profile, args.threads, args.bundle, args.px_per_unit)
    except ValueError as err:
        print(f"door_oracle: {err}", file=sys.stderr)
        return 2
    if args.out:
        result = {"command": "python bench/door_oracle.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
                  "profile": args.profile, "model": args.bundle or "oracle", "held_out_first_seed": HELD_OUT_SEED, "rows": rows, "machine": machine_info()}
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
