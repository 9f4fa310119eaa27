"""Push-T at the field's yardstick: goals d steps ahead along a scripted pusher's trajectory, flat vs hierarchical.

For every d in ``--ds`` (default 25, 50, 75) and planner profile (default ``flat_cem`` and ``hierarchical``),
closed-loop episodes on held-out seeds (from 200000; no training or tuning used them): the world resets with
``goal_steps=d`` (the goal is the state the scripted pusher reaches after d steps from the start) and the
agent has a budget of 2 d steps, as in HWM's long-horizon setting. Success is reported two ways:

* coverage: gym-pusht's own test, the block covers the goal pose by more than 95% (the episode ends there);
* DINO-WM's state criterion on the final state: agent and block positions within 20 px and block angle within
  pi/9 (``jepa_sim.worlds.push_t.dino_wm_success``).

Each with a Wilson 95% interval, plus planning time per replan and predictor evaluations per episode (success
against planning compute). Writes JSON and a plot (success vs d per profile, and success vs compute).

    .venv/bin/python bench/bench_push_t.py --model models/push_t --episodes 20 --out bench/results/push_t.json

Needs the push_t extra (requirements/extras-pusht.txt).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_planner.evaluate import run_episode, wilson_interval
from jepa_planner.profiles import build_planner, load_profile
from jepa_sim.machine import machine_info

HELD_OUT_SEED = 200_000


def rate(wins: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(wins, n)
    return {"successes": wins, "episodes": n, "rate": wins / n if n else 0.0, "ci95": [lo, hi]}


def bench_cell(model: Any, profile: str, d: int, episodes: int, seed: int) -> dict[str, Any]:
    """One (profile, d) cell: ``episodes`` closed-loop episodes with a 2 d step budget."""
    from jepa_sim.worlds import make_world
    from jepa_sim.worlds.push_t import dino_wm_success, state_errors

    world = make_world("push_t", goal_steps=d, max_steps=2 * d)
    planner = build_planner(load_profile(profile), model, seed=seed)
    coverage, dino, times, evals, errors = 0, 0, [], [], []
    for i in range(episodes):
        rec, _ = run_episode(model, planner, world, seed + i, 2 * d, int(model.frameskip))
        coverage += rec.success
        dino += dino_wm_success(world.goal_state, world.true_state())
        times += rec.plan_times
        evals.append(rec.model_steps)
        errors.append((state_errors(world.goal_state, np.asarray(rec.trajectory[0])),
                       state_errors(world.goal_state, world.true_state())))
    world.close()
    return {
        "profile": profile, "d": d, "budget_steps": 2 * d,
        "coverage": rate(coverage, episodes), "dino_wm_state": rate(dino, episodes),
        # below any success threshold: how far the agent got (medians over episodes, start -> end)
        "median_error_start": {k: float(np.median([s[k] for s, _ in errors])) for k in errors[0][0]},
        "median_error_end": {k: float(np.median([e[k] for _, e in errors])) for k in errors[0][0]},
        "plan_time_median_ms": float(np.median(times) * 1000) if times else None,
        "model_evals_per_episode": float(np.mean(evals)) if evals else 0.0,
    }


def plot(cells: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for profile in sorted({c["profile"] for c in cells}):
        mine = [c for c in cells if c["profile"] == profile]
        ds = [c["d"] for c in mine]
        for key, style in (("coverage", "-o"), ("dino_wm_state", "--s")):
            ax1.plot(ds, [100 * c[key]["rate"] for c in mine], style, label=f"{profile} ({key})")
        xs = [c["model_evals_per_episode"] / 1000 for c in mine]
        ys = [100 * c["dino_wm_state"]["rate"] for c in mine]
        ax2.plot(xs, ys, "-o", label=profile)
        for x, y, d in zip(xs, ys, ds, strict=True):
            ax2.annotate(f"d={d}", (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7)
    ax1.set_xlabel("goal d steps ahead (budget 2 d)")
    ax1.set_ylabel("success %")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("predictor evaluations per episode (thousands)")
    ax2.set_ylabel("success % (DINO-WM state)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/push_t", help="a Push-T bundle directory")
    p.add_argument("--ds", type=int, nargs="+", default=[25, 50, 75], help="goal distances d in steps")
    p.add_argument("--profiles", nargs="+", default=["flat_cem", "hierarchical"])
    p.add_argument("--episodes", type=int, default=20, help="episodes per (profile, d)")
    p.add_argument("--seed", type=int, default=0, help="offset added to the held-out first seed")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench/results/push_t.json")
    args = p.parse_args(argv)
    try:
        from jepa_sim.worlds import make_world

        make_world("push_t").close()
    except ImportError as exc:
        print(f"bench_push_t: {exc}", file=sys.stderr)
        return 2
    if not (Path(args.model) / "manifest.json").is_file():
        from jepa_planner.world_defaults import REPO, missing_bundle_hint

        print(f"bench_push_t: no bundle at {args.model}{missing_bundle_hint('push_t', REPO, '--model')}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    from jepa_world_model.bundle import load_bundle

    model = load_bundle(args.model, backend="torch")
    started = time.time()
    cells = []
    for d in args.ds:
        for profile in args.profiles:
            cell = bench_cell(model, profile, d, args.episodes, HELD_OUT_SEED + args.seed)
            cells.append(cell)
            plan_ms = "-" if cell["plan_time_median_ms"] is None else f"{cell['plan_time_median_ms']:.1f} ms"  # no replan: solved at the start
            print(f"d={d:3d} {profile:>14}: coverage {cell['coverage']['successes']}/{args.episodes}, DINO-WM state "
                  f"{cell['dino_wm_state']['successes']}/{args.episodes}, plan {plan_ms}, "
                  f"{cell['model_evals_per_episode']:.0f} evals/episode; median agent / block / angle error "
                  + " -> ".join("{agent_px:.0f} px / {block_px:.0f} px / {angle_rad:.2f} rad".format(**cell[k])
                                for k in ("median_error_start", "median_error_end")), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"command": "bench/bench_push_t.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "model": str(args.model), "model_id": model.model_id, "machine": machine_info(),
              "held_out_first_seed": HELD_OUT_SEED + args.seed, "cells": cells, "seconds": time.time() - started}
    out.write_text(json.dumps(result, indent=2))
    plot(cells, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
