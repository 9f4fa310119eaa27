"""Hierarchical vs flat planning on long-horizon tasks: multi-room goals 1..6 doors away, or large PointMaze
goals 2..16 maze cells away.

Two sweeps, one run, one machine:

1. Task length: for each length (doors in multi-room, maze cells in PointMaze), the flat and the hierarchical
   profile (each at its own budget) on the same episodes (same seeds, so the same starts and goals). Success
   (Wilson 95% CI), steps to goal, planning time and predictor evaluations per episode, and (multi-room) the
   geodesic start-goal path length of the tasks.
2. Budget, on one task length (``--budget-length``): the flat profile with its samples scaled up (x1, x2, x4)
   and the hierarchical one scaled down (x0.25 .. x1), giving success against compute for both.

Compute at equal success: take the highest success rate both planners reach at some budget (the smaller of
their best rates); for each, the cheapest budget that reaches it (predictor evaluations per episode); the ratio
is flat / hierarchical. A flat planner that never reaches the hierarchical best is reported as such.

Usage:
    .venv/bin/python bench/bench_hierarchy.py                  # multi-room, about 16 min on 2 CPU cores
    .venv/bin/python bench/bench_hierarchy.py --world point_maze --model models/point_maze
    .venv/bin/python bench/bench_hierarchy.py --episodes 4 --lengths 1 3 --flat-factors 1 --hier-factors 1  # smoke
Writes bench/results/hierarchy_<world>.json and .png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from jepa_common.paths import portable_args
from jepa_planner.evaluate import EpisodeRecord, evaluate, load_model, machine_info
from jepa_planner.profiles import PlannerProfile, build_planner, load_profile
from jepa_sim.worlds import make_world

ROOT = Path(__file__).resolve().parents[1]

class Task(NamedTuple):
    """A world's long-horizon task family."""

    length_option: str  # world constructor option that sets the task length
    unit: str
    lengths: list[int]  # default sweep
    budget_length: int  # default length of the budget sweep


TASKS = {
    "multi_room": Task("goal_doors", "doors", [1, 2, 3, 4, 6], 4),
    "point_maze": Task("goal_cells", "maze cells", [2, 5, 8, 12, 16], 12),
}


def trained_world_options(model_spec: str) -> dict:
    """The world options a bundle was trained with (its manifest's data provenance); {} for the oracle."""
    manifest = Path(model_spec) / "manifest.json"
    if not manifest.is_file():
        return {}
    return json.loads(manifest.read_text()).get("provenance", {}).get("data", {}).get("world_kwargs", {}) or {}


def scaled(profile: PlannerProfile, factor: float) -> PlannerProfile:
    """A copy of ``profile`` with every level's num_samples and num_elites scaled by ``factor``."""
    profile = profile.model_copy(deep=True)
    for lv in profile.levels:
        for key in ("num_samples", "num_elites"):
            if key in lv.params:
                lv.params[key] = max(2, round(lv.params[key] * factor))
    return profile


def path_lengths(world, records: list[EpisodeRecord]) -> list[float] | None:
    """Geodesic start-goal distance (px) of each episode's task (worlds with a wall layout; else None)."""
    if getattr(world, "layout", None) is None:
        return None
    fields = world.layout.distance_fields(np.asarray([r.goal for r in records]))  # one wavefront for all goals
    starts = np.clip(np.asarray([r.trajectory[0][:2] for r in records]).astype(int), 0, fields.shape[1] - 1)
    return [float(f[y, x]) for f, (x, y) in zip(fields, starts, strict=True)]


def make_task_world(world_name: str, length: int, options: dict | None = None):
    """The benchmark world (with the model's training ``options``) and goals ``length`` doors or cells away."""
    return make_world(world_name, **(options or {}), **{TASKS[world_name].length_option: length})


def run(model, length: int, profile: PlannerProfile, name: str, kind: str, factor: float, args) -> dict:
    """Evaluate ``profile`` on ``args.episodes`` tasks of ``length``; one result row."""
    world = make_task_world(args.world, length, args.world_options)
    try:
        planner = build_planner(profile, model, seed=args.seed)
        start = time.perf_counter()
        summary, records, _ = evaluate(
            model, planner, world, args.episodes, args.seed, args.max_steps, profile.replan_interval(model.frameskip),
            progress=False, gif_episode=None,
        )
        lengths = path_lengths(world, records)
    finally:
        world.close()
    row = {
        "planner": f"{name} x{factor:g}", "kind": kind, "factor": factor, "length": length, **summary,
        "plan_time_per_episode_s": statistics.fmean(sum(r.plan_times) for r in records),
        "path_length_px_median": statistics.median(lengths) if lengths else None,
        "episode_success": [r.success for r in records],
        "wall_s": time.perf_counter() - start,
    }
    path = f"  path {row['path_length_px_median']:.0f} px" if lengths else ""
    print(
        f"length {length:2d}  {row['planner']:18s} success {row['success_rate']:4.0%}  "
        f"evals/episode {row['model_evals_per_episode']:9.0f}  plan/episode {row['plan_time_per_episode_s']:5.2f} s  "
        f"replan {row['plan_time_median_s'] * 1000:4.0f} ms{path}",
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


def plot(world_name: str, length_rows: list[dict], budget_rows: list[dict], budget_length: int, path: Path) -> None:
    """Success vs task length (left) and success vs compute on the budget sweep (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, colour in (("flat", "tab:red"), ("hierarchical", "tab:blue")):
        rows = sorted((r for r in length_rows if r["kind"] == kind), key=lambda r: r["length"])
        if rows:
            x = [r["length"] for r in rows]
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
    unit = TASKS[world_name].unit
    ax1.set(xlabel=f"task length ({unit} between start and goal)", ylabel="success rate (95% CI)", ylim=(-0.05, 1.05),
            title=f"{world_name}: success vs task length")
    ax2.set(xscale="log", xlabel="predictor evaluations per episode", ylabel="success rate", ylim=(-0.05, 1.05),
            title=f"{world_name}, {budget_length} {unit}: success vs compute")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", default="multi_room", choices=sorted(TASKS), help="benchmark world")
    p.add_argument("--model", default=None, help="bundle with >= 2 levels (default models/<world>), or 'oracle' (multi_room)")
    p.add_argument("--flat", default="flat_cem", help="flat profile")
    p.add_argument("--hierarchical", default="hierarchical", help="hierarchical profile")
    p.add_argument("--lengths", nargs="+", type=int, default=None, help="task lengths to sweep (default per world)")
    p.add_argument("--budget-length", type=int, default=None, help="task length of the budget sweep (default per world)")
    p.add_argument("--flat-factors", nargs="+", type=float, default=[1.0, 2.0, 4.0], help="flat sample-budget factors")
    p.add_argument("--hier-factors", nargs="+", type=float, default=[0.25, 0.5, 1.0], help="hierarchical budget factors")
    p.add_argument("--episodes", type=int, default=20, help="episodes per row")
    p.add_argument("--max-steps", type=int, default=600, help="raw steps per episode")
    p.add_argument("--seed", type=int, default=0, help="first episode seed")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--out", default=None, help="JSON output path (default bench/results/hierarchy_<world>.json)")
    args = p.parse_args(argv)
    task = TASKS[args.world]
    args.lengths = args.lengths or task.lengths
    args.budget_length = args.budget_length or task.budget_length
    args.model = args.model or str(ROOT / "models" / args.world)
    args.world_options = trained_world_options(args.model)
    args.out = args.out or str(ROOT / "bench" / "results" / f"hierarchy_{args.world}.json")
    if args.episodes < 1 or any(n < 1 for n in args.lengths) or args.budget_length < 1:
        p.error("--episodes, --lengths and --budget-length must be >= 1")
    torch.set_num_threads(args.threads)
    probe = make_task_world(args.world, args.budget_length, args.world_options)
    try:
        model = load_model(args.model, probe)
    finally:
        probe.close()
    flat, hier = load_profile(args.flat), load_profile(args.hierarchical)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": machine_info(), "args": portable_args(args), "length_sweep": [], "budget_sweep": []}

    def save() -> None:
        out.write_text(json.dumps(result, indent=1))

    for length in args.lengths:
        for name, prof, kind in ((args.flat, flat, "flat"), (args.hierarchical, hier, "hierarchical")):
            result["length_sweep"].append(run(model, length, prof, name, kind, 1.0, args))
            save()
    reuse = {(r["kind"], r["factor"]): r for r in result["length_sweep"] if r["length"] == args.budget_length}
    for name, prof, kind, factors in (
        (args.flat, flat, "flat", args.flat_factors),
        (args.hierarchical, hier, "hierarchical", args.hier_factors),
    ):
        for factor in factors:
            row = reuse.get((kind, factor)) or run(model, args.budget_length, scaled(prof, factor), name, kind, factor, args)
            result["budget_sweep"].append(row)
            save()
    rows = result["budget_sweep"]
    result["compute_at_equal_success"] = compute_at_equal_success(
        [r for r in rows if r["kind"] == "flat"], [r for r in rows if r["kind"] == "hierarchical"]
    )
    save()
    png = out.with_suffix(".png")
    plot(args.world, result["length_sweep"], rows, args.budget_length, png)
    c = result["compute_at_equal_success"]
    print(
        f"at {c['success_level']:.0%} success: flat {c['flat_row']} needs {c['ratio_evals']:.1f}x the predictor evaluations "
        f"({c['ratio_plan_time']:.1f}x the planning time) of {c['hierarchical_row']}; flat best {c['flat_best_success']:.0%}, "
        f"hierarchical best {c['hierarchical_best_success']:.0%}; wrote {out} and {png}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
