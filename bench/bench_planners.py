"""Planner benchmark on two-rooms: success vs planning time, batched vs per-candidate throughput, torch vs onnxruntime.

Usage:
    .venv/bin/python bench/bench_planners.py                      # oracle model (+ models/two_rooms when it exists)
    .venv/bin/python bench/bench_planners.py --model oracle --episodes 10 --budgets 0.01 0.03 0.1

Writes bench/results/planners.json and bench/results/planners.png. All compared figures come from the same run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from jepa_common.paths import portable_args
from jepa_planner.evaluate import DEFAULT_WORLD_KWARGS, evaluate, load_model, machine_info
from jepa_planner.profiles import build_planner, load_profile
from jepa_sim.worlds import make_world

ROOT = Path(__file__).resolve().parents[1]
PROFILES = {"cem": "flat_cem", "mppi": "flat_mppi", "gradient": "gradient"}


def throughput(model, batch: int, horizon: int, repeats: int = 20, warmup: int = 5) -> dict[str, float]:
    """Candidate-steps per second of one batched rollout vs a loop of single-candidate rollouts
    (median of ``repeats`` after ``warmup`` calls: onnxruntime's first runs allocate and optimise)."""
    spec = model.levels[0]
    gen = torch.Generator().manual_seed(0)
    low, high = torch.tensor(spec.action_low), torch.tensor(spec.action_high)
    actions = low + (high - low) * torch.rand(batch, horizon, spec.action_dim, generator=gen)
    z = model.latent_mean.expand(1, model.context, *model.latent_shape).clone()
    with torch.no_grad():
        for _ in range(warmup):
            model.rollout(z.expand(batch, *z.shape[1:]), actions)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.rollout(z.expand(batch, *z.shape[1:]), actions)
            times.append(time.perf_counter() - start)
        batched = batch * horizon / float(np.median(times))
        start = time.perf_counter()
        for i in range(batch):
            model.rollout(z, actions[i : i + 1])
        looped = batch * horizon / (time.perf_counter() - start)
    return {"batched_candidate_steps_per_s": batched, "loop_candidate_steps_per_s": looped, "batched_over_loop": batched / looped}


def success_curves(
    model, world, planners: list[str], budgets: list[float], episodes: int, max_steps: int, seed: int
) -> list[dict]:
    """Success rate and planning time per (planner, time budget per replan)."""
    rows = []
    for name in planners:
        for budget in budgets:
            profile = load_profile(PROFILES[name])
            for lv in profile.levels:
                lv.max_time = budget
                # let the budget, not the iteration cap, decide how long a plan runs
                lv.params = {**lv.params, "iterations": 200 if name != "gradient" else 1000}
            try:
                planner = build_planner(profile, model, seed=seed)
                summary, _, _ = evaluate(
                    model, planner, world, episodes, seed, max_steps, profile.replan_interval(model.frameskip), progress=False, gif_episode=None
                )
            except ValueError as err:  # e.g. the gradient planner on a non-differentiable backend
                rows.append({"planner": name, "budget_s": budget, "error": str(err)})
                continue
            rows.append({"planner": name, "budget_s": budget, **summary})
            print(
                f"  {name:9s} budget {budget * 1000:6.0f} ms: success {summary['success_rate']:.0%} "
                f"CI {summary['success_ci95'][0]:.0%}-{summary['success_ci95'][1]:.0%}, plan {summary['plan_time_median_s'] * 1000:.0f} ms median"
            )
    return rows


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model_name, block in results["models"].items():
        for planner in sorted({r["planner"] for r in block["curves"]}):
            rows = [r for r in block["curves"] if r["planner"] == planner and "error" not in r]
            if not rows:
                continue
            x = [r["plan_time_median_s"] * 1000 for r in rows]
            y = [r["success_rate"] for r in rows]
            err = np.array(
                [
                    [r["success_rate"] - r["success_ci95"][0] for r in rows],
                    [r["success_ci95"][1] - r["success_rate"] for r in rows],
                ]
            )
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=f"{planner} ({model_name})")
    ax.set_xscale("log")
    ax.set_xlabel("median planning time per replan (ms)")
    ax.set_ylabel("success rate (Wilson 95% CI)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("two-rooms, goal in the other room")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--model", default="auto", help="'oracle', a bundle directory, or 'auto' (oracle + models/two_rooms when present)"
    )
    p.add_argument(
        "--planners", nargs="+", default=["cem", "mppi", "gradient"], choices=sorted(PROFILES), help="planners to compare"
    )
    p.add_argument("--budgets", nargs="+", type=float, default=[0.01, 0.03, 0.1], help="planning time budgets per replan (s)")
    p.add_argument("--episodes", type=int, default=10, help="episodes per (planner, budget)")
    p.add_argument("--max-steps", type=int, default=120, help="raw steps per episode")
    p.add_argument("--seed", type=int, default=0, help="first episode seed")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--throughput-only", action="store_true", help="skip the success curves (writes to --out all the same)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "planners.json"), help="JSON output path (PNG next to it)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    world = make_world("two_rooms", **DEFAULT_WORLD_KWARGS["two_rooms"])
    bundle_dir = ROOT / "models" / "two_rooms"
    specs = {"auto": ["oracle"] + ([str(bundle_dir)] if bundle_dir.exists() else [])}.get(args.model, [args.model])
    results: dict = {"machine": machine_info(), "args": portable_args(args), "models": {}}
    for spec in tqdm(specs, desc="models"):
        name = "oracle" if spec == "oracle" else Path(spec).name
        model = load_model(spec, world)
        print(f"[{name}] frameskip {model.frameskip}, levels {[s.level for s in model.levels]}")
        block = {"throughput": throughput(model, 300, 6)}
        print(
            f"  throughput: batched {block['throughput']['batched_candidate_steps_per_s']:.0f} candidate-steps/s, "
            f"{block['throughput']['batched_over_loop']:.1f}x a per-candidate loop"
        )
        if spec != "oracle":
            onnx_model = load_model(spec, world, backend="onnx")
            onnx = throughput(onnx_model, 300, 6)
            block["throughput_onnx"] = onnx
            block["onnx_over_torch"] = (
                onnx["batched_candidate_steps_per_s"] / block["throughput"]["batched_candidate_steps_per_s"]
            )
            print(f"  onnxruntime batched throughput: {onnx['batched_candidate_steps_per_s']:.0f} candidate-steps/s, "
                  f"{block['onnx_over_torch']:.2f}x torch's")
        if args.throughput_only:
            block["curves"] = []
            results["models"][name] = block
            continue
        block["curves"] = success_curves(model, world, args.planners, args.budgets, args.episodes, args.max_steps, args.seed)
        results["models"][name] = block
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
