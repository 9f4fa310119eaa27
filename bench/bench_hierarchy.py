"""Hierarchical vs flat planning on long-horizon tasks: multi-room goals 1..6 doors away.

Two sweeps, one run, one machine:

1. Task length: for each door count, the flat and the hierarchical profile (each at its own budget) on the same
   episodes (same seeds, so the same starts and goals). Success (Wilson 95% CI), steps to goal, planning time
   and predictor evaluations per episode, and the geodesic start-goal path length of the tasks.
2. Budget, on the longest-but-one task length (``--budget-doors``): the flat profile with its samples scaled up
   (x1, x2, x4) and the hierarchical one scaled down (x0.25 .. x1), giving success against compute for both.

Compute at equal success: take the highest success rate both planners reach at some budget (the smaller of
their best rates); for each, the cheapest budget that reaches it (predictor evaluations per episode); the ratio
is flat / hierarchical. A flat planner that never reaches the hierarchical best is reported as such.

Usage:
    .venv/bin/python bench/bench_hierarchy.py                  # about 16 min on 2 CPU cores
    .venv/bin/python bench/bench_hierarchy.py --episodes 4 --doors 1 3 --flat-factors 1 --hier-factors 1  # smoke
Writes bench/results/hierarchy.json and bench/results/hierarchy.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from jepa_planner.evaluate import EpisodeRecord, evaluate, load_model, machine_info
from jepa_planner.profiles import PlannerProfile, build_planner, load_profile
from jepa_sim.worlds import make_world

ROOT = Path(__file__).resolve().parents[1]


def scaled(profile: PlannerProfile, factor: float) -> PlannerProfile:
    """A copy of ``profile`` with every level's num_samples and num_elites scaled by ``factor``."""
    profile = profile.model_copy(deep=True)
    for lv in profile.levels:
        for key in ("num_samples", "num_elites"):
            if key in lv.params:
                lv.params[key] = max(2, round(lv.params[key] * factor))
    return profile


def path_lengths(world, records: list[EpisodeRecord]) -> list[float]:
    """Geodesic start-goal distance (px) of each episode's task."""
    out = []
    for r in records:
        field = world.layout.distance_fields(np.asarray(r.goal)[None])[0]
        x, y = np.clip(np.asarray(r.trajectory[0][:2]).astype(int), 0, field.shape[0] - 1)
        out.append(float(field[y, x]))
    return out


def run(model, doors: int, profile: PlannerProfile, name: str, kind: str, factor: float, args) -> dict:
    """Evaluate ``profile`` on ``args.episodes`` tasks ``doors`` doors long; one result row."""
    world = make_world("multi_room", goal_doors=doors)
    planner = build_planner(profile, model, seed=args.seed)
    start = time.perf_counter()
    summary, records, _ = evaluate(
        model, planner, world, args.episodes, args.seed, args.max_steps, profile.replan_interval(model.frameskip),
        progress=False, gif_episode=None,
    )
    lengths = path_lengths(world, records)
    row = {
        "planner": f"{name} x{factor:g}", "kind": kind, "factor": factor, "doors": doors, **summary,
        "plan_time_per_episode_s": statistics.fmean(sum(r.plan_times) for r in records),
        "path_length_px_median": statistics.median(lengths),
        "episode_success": [r.success for r in records],
        "wall_s": time.perf_counter() - start,
    }
    print(
        f"doors {doors}  {row['planner']:18s} success {row['success_rate']:4.0%}  "
        f"evals/episode {row['model_evals_per_episode']:9.0f}  plan/episode {row['plan_time_per_episode_s']:5.2f} s  "
        f"replan {row['plan_time_median_s'] * 1000:4.0f} ms  path {row['path_length_px_median']:.0f} px",
        flush=True,
    )
    return row


def compute_at_equal_success(flat: list[dict], hier: list[dict]) -> dict:
    """Cheapest budget of each planner reaching the highest success rate both reach, and their ratio."""
    best_flat, best_hier = max(r["success_rate"] for r in flat), max(r["success_rate"] for r in hier)
    level = min(best_flat, best_hier)
    f = min((r for r in flat if r["success_rate"] >= level), key=lambda r: r["model_evals_per_episode"])
    h = min((r for r in hier if r["success_rate"] >= level), key=lambda r: r["model_evals_per_episode"])
    return {
        "success_level": level,
        "flat_row": f["planner"],
        "hierarchical_row": h["planner"],
        "flat_evals_per_episode": f["model_evals_per_episode"],
        "hierarchical_evals_per_episode": h["model_evals_per_episode"],
        "ratio_evals": f["model_evals_per_episode"] / max(h["model_evals_per_episode"], 1.0),
        "ratio_plan_time": f["plan_time_per_episode_s"] / max(h["plan_time_per_episode_s"], 1e-9),
        "flat_best_success": best_flat,
        "hierarchical_best_success": best_hier,
        "flat_reaches_hierarchical_best": best_flat >= best_hier,
    }


def plot(length_rows: list[dict], budget_rows: list[dict], budget_doors: int, path: Path) -> None:
    """Success vs task length (left) and success vs compute on the budget sweep (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, colour in (("flat", "tab:red"), ("hierarchical", "tab:blue")):
        rows = sorted((r for r in length_rows if r["kind"] == kind), key=lambda r: r["doors"])
        if rows:
            x = [r["doors"] for r in rows]
            y = np.array([r["success_rate"] for r in rows])
            ci = np.array([r["success_ci95"] for r in rows]).T
            ax1.errorbar(x, y, yerr=[y - ci[0], ci[1] - y], color=colour, marker="o", capsize=3, label=rows[0]["planner"])
        rows = sorted((r for r in budget_rows if r["kind"] == kind), key=lambda r: r["model_evals_per_episode"])
        if rows:
            ax2.plot([r["model_evals_per_episode"] for r in rows], [r["success_rate"] for r in rows], color=colour,
                     marker="o", label=kind)
            for r in rows:
                ax2.annotate(f"x{r['factor']:g}", (r["model_evals_per_episode"], r["success_rate"]), fontsize=8,
                             textcoords="offset points", xytext=(3, 3))
    ax1.set(xlabel="task length (doors between start and goal)", ylabel="success rate (95% CI)", ylim=(-0.05, 1.05),
            title="multi-room: success vs task length")
    ax2.set(xscale="log", xlabel="predictor evaluations per episode", ylabel="success rate", ylim=(-0.05, 1.05),
            title=f"multi-room, {budget_doors} doors: success vs compute")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "models" / "multi_room"), help="multi_room bundle with >= 2 levels, or 'oracle'")
    p.add_argument("--flat", default="flat_cem", help="flat profile")
    p.add_argument("--hierarchical", default="hierarchical", help="hierarchical profile")
    p.add_argument("--doors", nargs="+", type=int, default=[1, 2, 3, 4, 6], help="task lengths (doors) to sweep")
    p.add_argument("--budget-doors", type=int, default=4, help="task length of the budget sweep")
    p.add_argument("--flat-factors", nargs="+", type=float, default=[1.0, 2.0, 4.0], help="flat sample-budget factors")
    p.add_argument("--hier-factors", nargs="+", type=float, default=[0.25, 0.5, 1.0], help="hierarchical budget factors")
    p.add_argument("--episodes", type=int, default=20, help="episodes per row")
    p.add_argument("--max-steps", type=int, default=600, help="raw steps per episode")
    p.add_argument("--seed", type=int, default=0, help="first episode seed")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "hierarchy.json"), help="JSON output path")
    args = p.parse_args(argv)
    if args.episodes < 1 or any(d < 1 for d in args.doors) or args.budget_doors < 1:
        p.error("--episodes, --doors and --budget-doors must be >= 1")
    torch.set_num_threads(args.threads)
    model = load_model(args.model, make_world("multi_room"))
    flat, hier = load_profile(args.flat), load_profile(args.hierarchical)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": machine_info(), "args": vars(args), "length_sweep": [], "budget_sweep": []}

    def save() -> None:
        out.write_text(json.dumps(result, indent=1))

    for doors in args.doors:
        for name, prof, kind in ((args.flat, flat, "flat"), (args.hierarchical, hier, "hierarchical")):
            result["length_sweep"].append(run(model, doors, prof, name, kind, 1.0, args))
            save()
    reuse = {(r["kind"], r["factor"]): r for r in result["length_sweep"] if r["doors"] == args.budget_doors}
    for name, prof, kind, factors in (
        (args.flat, flat, "flat", args.flat_factors),
        (args.hierarchical, hier, "hierarchical", args.hier_factors),
    ):
        for factor in factors:
            row = reuse.get((kind, factor)) or run(model, args.budget_doors, scaled(prof, factor), name, kind, factor, args)
            result["budget_sweep"].append(row)
            save()
    rows = result["budget_sweep"]
    result["compute_at_equal_success"] = compute_at_equal_success(
        [r for r in rows if r["kind"] == "flat"], [r for r in rows if r["kind"] == "hierarchical"]
    )
    save()
    png = out.with_suffix(".png")
    plot(result["length_sweep"], rows, args.budget_doors, png)
    c = result["compute_at_equal_success"]
    print(
        f"at {c['success_level']:.0%} success: flat {c['flat_row']} needs {c['ratio_evals']:.1f}x the predictor evaluations "
        f"({c['ratio_plan_time']:.1f}x the planning time) of {c['hierarchical_row']}; flat best {c['flat_best_success']:.0%}, "
        f"hierarchical best {c['hierarchical_best_success']:.0%}; wrote {out} and {png}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
