"""Where would "reached" be declared? The latent goal distance against the true distance along closed-loop episodes.

In process, without ROS: each episode runs the actor's ``MPCController`` for ``--steps`` raw steps toward a goal in
the other room and does *not* stop at the world's success, recording each step's normalised latent distance to the
goal (the configurator's measure) and the agent's true distance. For each tolerance: the tasks whose latent distance
never falls under it (the node suite would time out), and the tasks where it first does with the agent farther than
the world's success radius (a reach declared too far out), with those distances. Complements
``bench/tolerance_sweep.py`` (the real nodes, fewer tasks) and ``bench/calibrate_tolerance.py`` (static images).

Usage (about 1 s per task on one core):
    python bench/reach_precision.py --bundle models/two_rooms --episodes 100 --world-args "{door_y: random}" \\
        --tolerances 0.004 0.006 0.01 --out bench/results/reach_precision_two_rooms.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from jepa_common.convert import latent_distance
from jepa_common.yaml_io import load_yaml_text
from jepa_planner.controller import MPCController
from jepa_planner.evaluate import encode_observation, load_model
from jepa_planner.profiles import build_planner, load_profile, profile_for_world
from jepa_sim.machine import write_result
from jepa_sim.worlds import make_world

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_robustness import HELD_OUT_SEED  # the tasks no tuning used


def distances(bundle: str, world_args: dict[str, Any], profile: str, episodes: int, seed: int,
              steps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(latent distance, true distance) per raw step of each episode."""
    world = make_world("two_rooms", **{"goal_in_other_room": True, **world_args})
    model = load_model(bundle, world, "torch", 5, (4,))
    planner = build_planner(load_profile(profile), model, seed=seed)
    out = []
    for ep in tqdm(range(episodes), desc="episodes"):
        obs = world.reset(seed=seed + ep)
        planner.reset(seed + ep)
        controller = MPCController(model, planner, replan_every=model.frameskip)
        goal = encode_observation(model, world.goal_observation())
        controller.set_goal(goal)
        latent, true = [], []
        for _ in range(steps):
            z = encode_observation(model, obs)
            latent.append(latent_distance(z, goal, model.latent_std))
            true.append(float(np.linalg.norm(world.true_state()[:2] - world.goal_state[:2])))
            obs, _info = world.step(controller.step(z).action.astype(np.float64))
        out.append((np.array(latent), np.array(true)))
    return out


def at_tolerance(series: list[tuple[np.ndarray, np.ndarray]], tolerance: float, radius: float) -> dict[str, Any]:
    """Never under ``tolerance``, first under it farther than ``radius``, and the true distance when first under it."""
    never, far, at_reach, steps = 0, [], [], []
    for latent, true in series:
        under = np.flatnonzero(latent < tolerance)
        if not len(under):
            never += 1
            continue
        at_reach.append(float(true[under[0]]))
        steps.append(int(under[0]))
        if true[under[0]] > radius:
            far.append(round(float(true[under[0]]), 2))
    return {"tolerance": tolerance, "tasks": len(series), "never": never, "farther_than_radius": len(far),
            "farther_px": sorted(far), "true_px_at_reach_median": float(np.median(at_reach)) if at_reach else None,
            "steps_to_reach_median": float(np.median(steps)) if steps else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default="models/two_rooms")
    p.add_argument("--world-args", default="{}", help="two-rooms options as a YAML mapping (goals are in the other room)")
    p.add_argument("--profile", default=profile_for_world("two_rooms"))
    p.add_argument("--tolerances", type=float, nargs="+", required=True)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="offset from the held-out first seed 100000")
    p.add_argument("--steps", type=int, default=200, help="raw steps per task (the node suite's max_steps)")
    p.add_argument("--radius", type=float, default=1.0, help="the world's success radius, px")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    world_args = load_yaml_text(args.world_args, "--world-args") or {}
    if not isinstance(world_args, dict) or any(not (t > 0) for t in args.tolerances) or args.episodes < 1:
        print("reach_precision: --world-args must be a mapping, tolerances > 0, --episodes >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    t0 = time.monotonic()
    series = distances(args.bundle, world_args, args.profile, args.episodes, HELD_OUT_SEED + args.seed, args.steps)
    rows = [at_tolerance(series, t, args.radius) for t in args.tolerances]
    for r in rows:
        print(f"tolerance {r['tolerance']}: {r['never']} of {r['tasks']} never under it, {r['farther_than_radius']} first "
              f"under it farther than {args.radius} px {r['farther_px']}")
    if args.out:
        write_result(args.out, "bench/reach_precision.py", sys.argv[1:] if argv is None else argv, time.monotonic() - t0,
                     {"bundle": args.bundle, "world_args": world_args, "profile": args.profile, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
