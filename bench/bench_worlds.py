"""Steps per second of the built-in worlds at 64 px (single env and numpy batch), written to bench/results/worlds.json.

Usage: .venv/bin/python bench/bench_worlds.py [--steps 2000] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from jepa_sim.machine import machine_info
from jepa_sim.worlds import make_batch_world, make_world


def single_rate(name: str, steps: int, **kwargs) -> float:
    world = make_world(name, **kwargs)
    world.reset(seed=0)
    rng = np.random.default_rng(0)
    low, high = np.asarray(world.spec.action_low), np.asarray(world.spec.action_high)
    actions = rng.uniform(low, high, size=(steps, len(low)))
    start = time.perf_counter()
    for a in actions:
        world.step(a)
    rate = steps / (time.perf_counter() - start)
    world.close()
    return rate


def batch_rate(name: str, n: int, steps: int, **kwargs) -> float:
    batch = make_batch_world(name, n, **kwargs)
    batch.reset(0)
    actions = np.random.default_rng(0).uniform(-2.45, 2.45, size=(steps, n, 2))
    start = time.perf_counter()
    for a in actions:
        batch.step(a)
    return steps * n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000, help="steps timed per single-env measurement")
    parser.add_argument("--batch", type=int, default=64, help="environments in the batched measurement")
    args = parser.parse_args()
    results: dict[str, object] = {"machine": machine_info(), "image_size": 64}
    rates: dict[str, float] = {
        "two_rooms_single": single_rate("two_rooms", args.steps),
        f"two_rooms_batch{args.batch}": batch_rate("two_rooms", args.batch, max(1, args.steps // 10)),
        "multi_room_single": single_rate("multi_room", args.steps),
        f"multi_room_batch{args.batch}": batch_rate("multi_room", args.batch, max(1, args.steps // 10)),
    }
    # Optional worlds (extras): one env each, 64 px, uniform random actions in the spec's box.
    optional = {
        "point_maze_umaze": ("point_maze", {"maze": "umaze"}),
        "point_maze_medium": ("point_maze", {"maze": "medium"}),
        "point_maze_large": ("point_maze", {"maze": "large"}),
        "push_t": ("push_t", {}),
    }
    for label, (name, kwargs) in optional.items():
        try:
            rates[f"{label}_single"] = single_rate(name, max(1, args.steps // 4), image_size=64, **kwargs)
        except ImportError as err:
            results[f"{label}_skipped"] = str(err)
    if any(k.startswith("point_maze") for k in rates):
        results["mujoco_gl"] = os.environ.get("MUJOCO_GL")
    results["steps_per_s"] = {k: round(v, 1) for k, v in rates.items()}
    results["batch_speedup_two_rooms"] = round(rates[f"two_rooms_batch{args.batch}"] / rates["two_rooms_single"], 2)
    for k, v in rates.items():
        print(f"{k:28s} {v:10.0f} steps/s")
    print(f"two_rooms batch/single speedup: {results['batch_speedup_two_rooms']}x")
    out = Path(__file__).parent / "results" / "worlds.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
