"""The search's blocked-move memory, A/B on the same tasks: does remembering where the world stopped a push help?

``flat_cem_search`` with ``search.blocked_radius`` 0 (off, as shipped) and with each other setting, every variant on
the same held-out tasks of each row (``jepa_sim.factors`` rows, as in ``bench/bench_robustness.py``), so the counts
compare task for task; the tasks that differ between variants are listed per row (``jepa_planner.search``, "Blocked
moves").

Usage:
    python bench/blocked_moves.py --bundles models/two_rooms --variants 0:45 0.1:45 \\
        --rows nominal door_y=random placement=corner brightness=0.8 --episodes 100 --out bench/results/blocked_moves.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from jepa_planner.evaluate import evaluate, load_model, wilson_interval, world_settings
from jepa_planner.profiles import build_planner, load_profile
from jepa_sim.factors import make_varied_world
from jepa_sim.machine import write_result

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_robustness import HELD_OUT_SEED, MAX_STEPS, row_factors, rows_for  # the rows and tasks of that bench


def parse_variant(text: str) -> tuple[float, float]:
    """'RADIUS:ANGLE' -> (blocked_radius, blocked_angle)."""
    try:
        radius, angle = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a variant is RADIUS:ANGLE (e.g. 0.1:45), got {text!r}") from None
    return radius, angle


def run_bundle(bundle: str, variants: list[tuple[float, float]], rows: list[str], episodes: int, first_seed: int,
               profile_name: str) -> dict[str, Any]:
    world_name, world_kwargs, _ = world_settings(bundle, None, {})
    model = load_model(bundle, None, "torch")
    base = load_profile(profile_name)
    if base.search is None:
        raise ValueError(f"profile {profile_name!r} has no search: blocked moves are a search setting")
    max_steps = MAX_STEPS.get(world_name, 200)
    out_rows = []
    for row in rows:
        picked = rows_for(world_name, [row])
        if len(picked) != 1:
            raise ValueError(f"--rows {row!r} is not one row: give nominal or NAME=LEVEL[,NAME=LEVEL...]")
        (factor, level), = picked
        factors = row_factors(factor, level)
        by_variant = {}
        for radius, angle in variants:
            search = base.search.model_copy(update={"blocked_radius": radius, "blocked_angle": angle})
            profile = base.model_copy(update={"search": search})
            world = make_varied_world(world_name, world_kwargs, factors)
            _, records, _ = evaluate(model, build_planner(profile, model, seed=0), world, episodes, first_seed, max_steps,
                                     profile.replan_interval(model.frameskip), progress=False, gif_episode=None)
            world.close()
            wins = sum(r.success for r in records)
            by_variant[f"{radius}:{angle}"] = {"blocked_radius": radius, "blocked_angle": angle, "successes": wins,
                                                "success_ci95": list(wilson_interval(wins, len(records))),
                                                "seeds_failed": [r.seed for r in records if not r.success]}
            print(f"{bundle} {row} radius {radius} angle {angle}: {wins}/{len(records)}", flush=True)
        out_rows.append({"row": row, "episodes": episodes, "variants": by_variant})
    return {"bundle": bundle, "model_id": model.manifest.get("model_id"), "world": world_name, "profile": profile_name,
            "first_seed": first_seed, "max_steps": max_steps, "rows": out_rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundles", nargs="+", default=["models/two_rooms"])
    p.add_argument("--variants", nargs="+", type=parse_variant, default=[(0.0, 45.0), (0.1, 45.0)],
                   help="RADIUS:ANGLE settings of search.blocked_radius / blocked_angle (0:ANGLE = off)")
    p.add_argument("--rows", nargs="+", default=["nominal", "door_y=random", "placement=corner", "brightness=0.8"])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="offset added to the held-out first seed (100000)")
    p.add_argument("--profile", default="flat_cem_search")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error("--episodes must be >= 1")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        results = [run_bundle(b, args.variants, args.rows, args.episodes, HELD_OUT_SEED + args.seed, args.profile)
                   for b in args.bundles]
    except (ValueError, FileNotFoundError) as err:
        print(f"blocked_moves: {err}", file=sys.stderr)
        return 2
    if args.out:
        write_result(args.out, "bench/blocked_moves.py", argv if argv is not None else sys.argv[1:],
                     time.perf_counter() - t0, results)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
