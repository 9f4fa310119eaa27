"""Does a two-rooms model see the door? Predicted goal cost of a path through it against one into the wall.

For each door position and start/goal pair (start in the left room, goal in the right one), two open-loop
paths of ``--horizon`` model steps are run in the simulator and in the model from the start frame: one
through the door (to the doorway, across, on to the goal: it ends at the goal) and one straight at the goal
(blocked by the wall unless the door is on the line). A model that plans well predicts the door path
cheaper (normalised goal distance, as ``flat_cem``'s terminal cost, the layout part left out) by a clear
margin. Written per door: how often the door path is predicted cheaper, the median predicted costs of both
paths and their true distances to the goal.

Why: closed-loop success mixes the model with the sampler. With the door anywhere, a bigger CEM budget
(horizon 12, 1000 samples, 4 iterations) did not raise success, so what limits it is what the model predicts,
and this measures that directly, in seconds.

Usage:
    python bench/door_paths.py --bundles models/two_rooms runs/some_bundle --out bench/results/door_paths.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_sim.machine import write_result
from jepa_sim.worlds import make_world
from jepa_world_model.bundle import load_bundle
from jepa_world_model.models.world_model import LAYOUT_STD

DOORS = (10.0, 18.0, 26.0, 32.0, 38.0, 46.0, 54.0)
START_GOAL_Y = ((10.0, 50.0), (50.0, 10.0), (32.0, 32.0), (54.0, 54.0), (10.0, 10.0))
START_X, GOAL_X, STEP = 20.0, 46.0, 2.4


def path_actions(points: list[np.ndarray], n: int) -> np.ndarray:
    """Raw displacement actions (n, 2) of at most STEP px each along a polyline, zeros after its end."""
    acts: list[np.ndarray] = []
    pos = np.asarray(points[0], float)
    for target in points[1:]:
        target = np.asarray(target, float)
        while np.linalg.norm(target - pos) > 1e-6 and len(acts) < n:
            d = target - pos
            step = d if np.linalg.norm(d) <= STEP else d / np.linalg.norm(d) * STEP
            acts.append(step)
            pos = pos + step
    acts += [np.zeros(2)] * (n - len(acts))
    return np.asarray(acts[:n])


def normalised_distance(z: torch.Tensor, goal: torch.Tensor, std: torch.Tensor) -> float:
    """RMS of (z - goal) / std over the dimensions that count (a layout part's, ``LAYOUT_STD``, left out)."""
    keep = std < LAYOUT_STD
    return float(torch.sqrt((((z - goal) / std)[keep] ** 2).mean()))


def score_bundle(bundle: str, horizon: int) -> dict[str, Any]:
    model = load_bundle(bundle, backend="torch")
    std = model.latent_std.reshape(-1)
    raw_per_step = model.levels[0].action_dim // 2
    rows = []
    for door in DOORS:
        for k, (start_y, goal_y) in enumerate(START_GOAL_Y):
            world = make_world("two_rooms", door_y=door)
            start, goal = np.array([START_X, start_y]), np.array([GOAL_X, goal_y])
            paths = {"door": [start, (30.0, door), (36.0, door), goal], "straight": [start, goal]}
            row: dict[str, Any] = {"door_y": door, "start": start.tolist(), "goal": goal.tolist()}
            obs = world.reset(seed=k, start=start, goal=goal)
            z0 = model.encode(obs.image[None])  # both paths start from this frame toward this goal
            g = model.encode(world.goal_observation().image[None]).reshape(-1)
            for name, points in paths.items():
                actions = path_actions(points, horizon * raw_per_step)
                world.reset(seed=k, start=start, goal=goal)
                for a in actions:
                    world.step(a)
                with torch.no_grad():
                    zs = model.rollout(z0[:, None], torch.as_tensor(actions.reshape(1, horizon, -1), dtype=torch.float32))
                row[f"{name}_predicted"] = round(normalised_distance(zs[0, -1].reshape(-1), g, std), 4)
                row[f"{name}_true_px"] = round(float(np.linalg.norm(world.true_state()[:2] - goal)), 2)
            world.close()
            rows.append(row)
    per_door = {}
    for door in DOORS:
        rs = [r for r in rows if r["door_y"] == door]
        per_door[str(door)] = {
            "door_path_predicted_cheaper": float(np.mean([r["door_predicted"] < r["straight_predicted"] for r in rs])),
            "door_predicted_median": float(np.median([r["door_predicted"] for r in rs])),
            "straight_predicted_median": float(np.median([r["straight_predicted"] for r in rs])),
            "straight_true_px_median": float(np.median([r["straight_true_px"] for r in rs])),
        }
    # the pairs whose straight path is really blocked are the ones that test the model
    blocked = [r for r in rows if r["straight_true_px"] > 5.0]
    return {
        "bundle": bundle,
        "horizon": horizon,
        "door_path_predicted_cheaper_when_blocked": float(np.mean([r["door_predicted"] < r["straight_predicted"] for r in blocked])),
        "median_margin_when_blocked": float(np.median([r["straight_predicted"] - r["door_predicted"] for r in blocked])),
        "per_door": per_door,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundles", nargs="+", default=["models/two_rooms"], help="two-rooms bundle directories")
    ap.add_argument("--horizon", type=int, default=12, help="model steps per path (flat_cem's escalated horizon)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    results = [score_bundle(b, args.horizon) for b in args.bundles]
    for r in results:
        print(f"{r['bundle']}: door path predicted cheaper than the blocked straight one in "
              f"{100 * r['door_path_predicted_cheaper_when_blocked']:.0f}% of pairs, median margin {r['median_margin_when_blocked']:.3f}")
        for door, d in r["per_door"].items():
            print(f"  door y {door}: cheaper {100 * d['door_path_predicted_cheaper']:.0f}%, predicted door / straight "
                  f"{d['door_predicted_median']:.3f} / {d['straight_predicted_median']:.3f}")
    if args.out:
        write_result(args.out, "bench/door_paths.py", argv if argv is not None else sys.argv[1:], time.perf_counter() - t0, results)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
