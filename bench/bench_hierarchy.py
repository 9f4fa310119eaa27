"""Hierarchical vs flat planning on long-horizon tasks (multi_room, far goals).

Flat planners run at several sample budgets (x0.5, x1, x2 of the profile's samples); the hierarchical profile
runs once. Reports success (Wilson 95% CI), planning time per replan and predictor evaluations (candidate-steps)
per episode, and the compute ratio at equal success: the cheapest flat budget whose success reaches the
hierarchical one, divided by the hierarchical compute (or null when no flat budget reaches it).

Usage:
    .venv/bin/python bench/bench_hierarchy.py --episodes 6 --max-steps 300
Writes bench/results/hierarchy.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from jepa_planner.evaluate import evaluate, load_model, machine_info
from jepa_planner.profiles import build_planner, load_profile
from jepa_sim.worlds import make_world, world_names

ROOT = Path(__file__).resolve().parents[1]


def run(model, world, profile, episodes: int, max_steps: int, seed: int) -> dict:
    planner = build_planner(profile, model, seed=seed)
    summary, _, _ = evaluate(
        model, planner, world, episodes, seed, max_steps, profile.replan_interval(model.frameskip), progress=True, gif_episode=None
    )
    return summary


def scaled(profile, factor: float):
    """A copy of a flat profile with num_samples (and elites) scaled by ``factor``."""
    profile = profile.model_copy(deep=True)
    for lv in profile.levels:
        for key in ("num_samples", "num_elites"):
            if key in lv.params:
                lv.params[key] = max(2, int(lv.params[key] * factor))
    return profile


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="oracle", help="'oracle' or a multi_room bundle directory with >= 2 levels")
    p.add_argument("--flat", default="flat_cem", help="flat profile to compare")
    p.add_argument("--hierarchical", default="hierarchical", help="hierarchical profile")
    p.add_argument("--factors", nargs="+", type=float, default=[0.5, 1.0, 2.0], help="flat sample-budget factors")
    p.add_argument("--episodes", type=int, default=6, help="episodes per configuration")
    p.add_argument("--max-steps", type=int, default=300, help="raw steps per episode")
    p.add_argument("--seed", type=int, default=0, help="first episode seed")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "hierarchy.json"), help="JSON output path")
    args = p.parse_args(argv)
    if "multi_room" not in world_names():
        print("multi_room world not available; nothing to benchmark")
        return 0
    torch.set_num_threads(args.threads)
    world = make_world("multi_room", goal_far=True)
    model = load_model(args.model, world)
    flat_profile, hier_profile = load_profile(args.flat), load_profile(args.hierarchical)
    rows = []
    for factor in args.factors:
        s = run(model, world, scaled(flat_profile, factor), args.episodes, args.max_steps, args.seed)
        rows.append({"planner": f"{args.flat} x{factor}", "kind": "flat", "factor": factor, **s})
        print(
            f"{rows[-1]['planner']:18s} success {s['success_rate']:.0%}  evals/episode {s['model_evals_per_episode']:.0f}  "
            f"plan {s['plan_time_median_s'] * 1000:.0f} ms"
        )
    h = run(model, world, hier_profile, args.episodes, args.max_steps, args.seed)
    rows.append({"planner": args.hierarchical, "kind": "hierarchical", **h})
    print(
        f"{args.hierarchical:18s} success {h['success_rate']:.0%}  evals/episode {h['model_evals_per_episode']:.0f}  "
        f"plan {h['plan_time_median_s'] * 1000:.0f} ms"
    )
    reaching = [r for r in rows[:-1] if r["success_rate"] >= h["success_rate"]]
    cheapest = min(reaching, key=lambda r: r["model_evals_per_episode"]) if reaching else None
    ratio = (
        cheapest["model_evals_per_episode"] / h["model_evals_per_episode"] if cheapest and h["model_evals_per_episode"] else None
    )
    result = {
        "machine": machine_info(),
        "args": vars(args),
        "rows": rows,
        "compute_ratio_flat_over_hier_at_equal_success": ratio,
        "note": "ratio null: no flat budget reached the hierarchical success rate" if ratio is None else "",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"compute ratio flat/hierarchical at equal success: {ratio}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
