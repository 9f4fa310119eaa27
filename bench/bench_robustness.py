"""Robustness benchmark: success under factors of variation (camera, geometry, physics), model unchanged.

For every bundle: one row per factor level (``jepa_sim.factors``), each evaluated closed loop with the
bundle's world settings (its manifest), the evaluation defaults (goals in another room / far away,
starts and goals uniform, near walls or in corners) and the factor applied, on held-out seeds (from
100000: no training or tuning ever used them). Also the encoder's sensitivity: how far (in px of agent
motion) a camera change moves the latent.

Usage:
    .venv/bin/python bench/bench_robustness.py                                   # every shipped bundle
    .venv/bin/python bench/bench_robustness.py --bundle models/two_rooms --episodes 40 --rows noise brightness
    .venv/bin/python bench/bench_robustness.py --bundle models/two_rooms --rows door_y=random,noise=0.01176

A row is one factor level, or several applied together (NAME=LEVEL,NAME=LEVEL: the door anywhere and camera
noise at once, say).

Writes bench/results/robustness_<bundle>.json, .md (table) and .png (plot) per bundle.
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
import yaml

from jepa_planner.evaluate import evaluate, load_model, machine_info, wilson_interval, world_settings
from jepa_planner.profiles import build_planner, load_profile, profile_for_world
from jepa_sim.camera import CameraPerturbation
from jepa_sim.factors import make_varied_world

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT_SEED = 100_000
CAMERA_ROWS: list[tuple[str, Any]] = [
    ("noise", 1 / 255),
    ("noise", 3 / 255),
    ("noise", 10 / 255),
    ("brightness", 0.8),
    ("brightness", 1.2),
    ("contrast", 0.8),
    ("gamma", 1.3),
    ("shift_g", 1 / 255),
    ("shift_g", 0.05),
    ("background", 0.1),
    ("blur", 0.7),
]
POINT_MASS_ROWS: list[tuple[str, Any]] = [
    ("placement", "uniform"),
    ("placement", "near_wall"),
    ("placement", "corner"),
    ("agent_size", 1.0),
    ("agent_size", 1.8),
    ("door_width", 6.0),
    ("door_width", 12.0),
    ("floor_colour", 0.1),
    ("wall_colour", "0,0.6,1"),
    ("agent_colour", "1,0.5,0"),
    ("action_noise", 0.5),
    ("gain", 0.8),
    ("gain", 1.2),
    ("delay", 2),
]
WORLD_ROWS: dict[str, list[tuple[str, Any]]] = {
    "two_rooms": [("door_y", 20.0), ("door_y", "random"), *POINT_MASS_ROWS],
    "multi_room": POINT_MASS_ROWS,
}
MAX_STEPS = {"two_rooms": 200, "multi_room": 600}
SHIPPED = ["models/two_rooms", "models/two_rooms_fixed_door", "models/multi_room", "models/point_maze"]


def rows_for(world: str, only: list[str] | None) -> list[tuple[str, Any]]:
    """(factor, level) rows for a world, nominal first; ``only`` keeps the named factors ('nominal' included) or NAME=LEVEL
    rows. A combined row (NAME=LEVEL,NAME=LEVEL) is ("NAME+NAME", {NAME: LEVEL, ...})."""
    rows = [("nominal", None), *CAMERA_ROWS, *WORLD_ROWS.get(world, [])]
    if only is None:
        return rows
    picked = [r for r in rows if r[0] in only]
    for item in only:
        if "=" in item:
            pairs = [part.split("=", 1) for part in item.split(",")]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError(f"--rows: {item!r} is not NAME=LEVEL[,NAME=LEVEL...]")
            levels = {name.strip(): yaml.safe_load(level) for name, level in pairs}
            picked.append(next(iter(levels.items())) if len(levels) == 1 else ("+".join(levels), levels))
    return picked


def row_factors(factor: str, level: Any) -> dict[str, Any]:
    """The factors a row applies (``make_varied_world``'s): none for nominal, every one of a combined row."""
    return {} if factor == "nominal" else dict(level) if isinstance(level, dict) else {factor: level}


def level_text(level: Any) -> str:
    """A row's level for tables and plots (a combined row's: NAME=LEVEL, ...)."""
    if level is None:
        return ""
    if isinstance(level, dict):
        return ", ".join(f"{name}={level_text(value)}" for name, value in level.items())
    return f"{level:.4g}" if isinstance(level, float) else str(level)


def encoder_sensitivity(model, world, n: int = 256, seed: int = 0) -> dict[str, float] | None:
    """Median latent displacement of camera changes, in px of agent motion (point-mass worlds only).

    The unit is the median latent distance between the agent at p and at p + 1 px; a value of 12 means the
    camera change moves the latent as far as a 12 px move of the agent would.
    """
    batch = getattr(world, "batch", None)
    if batch is None or not hasattr(batch, "render"):
        return None
    rng = np.random.default_rng(seed)
    pts, moved = [], []
    while len(pts) < n:
        p = batch.layout.sample_free(rng, 2.0)
        a = rng.uniform(0, 2 * np.pi)
        q = p + np.array([np.cos(a), np.sin(a)])
        if batch.layout.is_free(q, 1.0)[0]:
            pts.append(p)
            moved.append(q)
    pts_a, moved_a = np.stack(pts).astype(np.float32), np.stack(moved).astype(np.float32)
    clean = batch.render(pts_a)
    std = model.latent_std.clamp_min(1e-6)

    def encode(images: np.ndarray, pos: np.ndarray) -> torch.Tensor:
        if not getattr(model, "uses_proprio", False):  # proprio bundles get the agent at rest at ``pos``
            return model.encode(images)
        return model.encode(images, np.concatenate([pos, np.zeros_like(pos)], axis=1))

    def dist(images: np.ndarray, pos: np.ndarray = pts_a) -> float:
        with torch.no_grad():
            za, zb = encode(clean, pts_a), encode(images, pos)
        return float(np.median((((za - zb) / std) ** 2).flatten(1).mean(-1).sqrt().numpy()))

    unit = dist(batch.render(moved_a), moved_a)
    cams = {
        "noise_1/255": CameraPerturbation(noise=1 / 255),
        "noise_3/255": CameraPerturbation(noise=3 / 255),
        "brightness_1.2": CameraPerturbation(brightness=1.2),
        "brightness_0.8": CameraPerturbation(brightness=0.8),
        "green_+1/255": CameraPerturbation(shift=(0.0, 1 / 255, 0.0)),
    }
    out = {"latent_distance_per_px": unit}
    for name, cam in cams.items():
        out[f"{name}_in_px"] = dist(cam.apply(clean, np.random.default_rng(seed + 1))) / unit
    return out


def bench_bundle(bundle: str, args: argparse.Namespace, partial: Path | None = None) -> dict[str, Any]:
    """All rows of one bundle; after each row the rows so far go to ``partial`` (a long run can be stopped)."""
    world_name, world_kwargs, notes = world_settings(str(ROOT / bundle), None, {})
    model = load_model(str(ROOT / bundle), None, "torch")
    profile_name = args.profile or profile_for_world(world_name)
    profile = load_profile(profile_name)
    max_steps = args.max_steps or MAX_STEPS.get(world_name)
    make_varied_world(world_name, world_kwargs, {}).close()  # an optional simulator that is missing skips the bundle
    rows = []
    for factor, level in rows_for(world_name, args.rows):
        factors = row_factors(factor, level)
        try:
            world = make_varied_world(world_name, world_kwargs, factors)
        except ValueError as err:
            rows.append({"factor": factor, "level": level, "error": str(err)})
            print(f"{bundle} {factor}={level}: skipped ({err})")
            continue
        planner = build_planner(profile, model, seed=args.seed)
        t0 = time.time()
        summary, records, _ = evaluate(
            model, planner, world, args.episodes, HELD_OUT_SEED + args.seed, max_steps,
            profile.replan_interval(model.frameskip), progress=False, gif_episode=None,
        )
        wins = sum(r.success for r in records)
        row = {
            "factor": factor,
            "level": level,
            "episodes": len(records),
            "successes": wins,
            "success_rate": wins / len(records),
            "success_ci95": list(wilson_interval(wins, len(records))),
            "plan_time_median_s": summary["plan_time_median_s"],
            "steps_to_goal_median": summary["steps_to_goal_median"],
            "by_task_length": summary["by_task_length"],
            "wall_s": round(time.time() - t0, 1),
        }
        rows.append(row)
        print(f"{bundle} {factor}={level}: {row['success_rate']:.0%} [{row['success_ci95'][0]:.0%}, {row['success_ci95'][1]:.0%}]"
              f" ({row['wall_s']} s)", flush=True)
        world.close()
        if partial is not None:
            partial.write_text(json.dumps({"bundle": bundle, "rows": rows}, indent=1))
    sensitivity = encoder_sensitivity(model, make_varied_world(world_name, world_kwargs, {})) if world_name in WORLD_ROWS else None
    return {
        "bundle": bundle,
        "model_id": getattr(model, "manifest", {}).get("model_id"),
        "world": world_name,
        "world_kwargs": world_kwargs,
        "world_notes": notes,
        "profile": profile_name,
        "max_steps": max_steps,
        "first_seed": HELD_OUT_SEED + args.seed,
        "rows": rows,
        "encoder_sensitivity": sensitivity,
    }


def markdown(result: dict[str, Any]) -> str:
    """The table for a README: factor, level, success with its Wilson 95% interval."""
    lines = [
        f"Robustness of `{result['bundle']}` ({result['world']}, profile `{result['profile']}`, seeds from "
        f"{result['first_seed']}; episodes per row in the success column):",
        "",
        "| factor | level | success | Wilson 95% CI |",
        "|---|---|---|---|",
    ]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['factor']} | {r['level']} | n/a ({r['error']}) | |")
            continue
        lo, hi = r["success_ci95"]
        lines.append(f"| {r['factor']} | {level_text(r['level'])} | {r['success_rate']:.1%} ({r['successes']}/{r['episodes']}) | {lo:.1%}-{hi:.1%} |")
    sens = result.get("encoder_sensitivity")
    if sens:
        lines += ["", "Encoder sensitivity (median latent move, in px of agent motion): " + ", ".join(
            f"{k.removesuffix('_in_px')} {v:.2f} px" for k, v in sens.items() if k.endswith("_in_px"))]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if "error" not in r]
    labels = [r["factor"] if r["level"] is None else level_text(r["level"]) if isinstance(r["level"], dict)
              else f"{r['factor']}={level_text(r['level'])}" for r in rows]
    rate = np.array([r["success_rate"] for r in rows])
    lo = np.maximum(rate - np.array([r["success_ci95"][0] for r in rows]), 0.0)  # results written before the exact
    hi = np.maximum(np.array([r["success_ci95"][1] for r in rows]) - rate, 0.0)  # all-or-none bounds: clip float noise
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    colours = ["tab:blue" if r["level"] is None else "tab:green" if r["success_rate"] >= 0.9 else "tab:orange" for r in rows]
    ax.barh(y, rate, xerr=[lo, hi], color=colours, alpha=0.85, capsize=2)
    ax.axvline(rows[0]["success_rate"], color="k", lw=0.8, ls="--")
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("success rate (Wilson 95% CI)")
    ax.set_title(f"{result['bundle']} ({result['model_id']}): factors of variation", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--bundle", action="append", default=None, help="bundle directory, relative to the repository (repeatable; default every shipped one)"
    )
    p.add_argument("--episodes", type=int, default=30, help="episodes per row")
    p.add_argument("--rows", nargs="*", default=None,
                   help="only these factors or NAME=LEVEL rows ('nominal' for the nominal row; NAME=LEVEL,NAME=LEVEL applies both)")
    p.add_argument("--profile", default=None, help="planner profile (default per world: two_rooms flat_cem, else hierarchical)")
    p.add_argument("--max-steps", type=int, default=None, help="raw steps per episode (default per world)")
    p.add_argument("--seed", type=int, default=0, help="offset added to the held-out first seed")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--out-dir", default="bench/results", help="output directory, relative to the repository")
    p.add_argument("--tag", default="", help="suffix of the output file names")
    p.add_argument(
        "--merge", nargs="+", default=None, metavar="JSON",
        help="merge the rows of earlier runs of one bundle (e.g. split over processes) into robustness_<bundle><tag>.*",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out_dir = ROOT / args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.merge:
        parts = [json.loads((ROOT / f).read_text()) for f in args.merge]
        merged = dict(parts[0], rows=[r for part in parts for r in part["rows"] if part is parts[0] or r["factor"] != "nominal"])
        merged["merged_from"] = [str(f) for f in args.merge]
        stem = f"robustness_{Path(merged['bundle']).name}{args.tag}"
        (out_dir / f"{stem}.json").write_text(json.dumps(merged, indent=1))
        (out_dir / f"{stem}.md").write_text(markdown(merged))
        plot(merged, out_dir / f"{stem}.png")
        print(markdown(merged))
        return 0
    for bundle in args.bundle or SHIPPED:
        try:
            result = bench_bundle(bundle, args, out_dir / f"robustness_{Path(bundle).name}{args.tag}.partial.json")
        except ImportError as err:  # optional simulator missing (point_maze needs gymnasium-robotics)
            print(f"{bundle}: skipped ({err})")
            continue
        except ValueError as err:  # a malformed --rows item
            print(f"bench_robustness: {err}", file=sys.stderr)
            return 2
        result["machine"] = machine_info()
        result["args"] = vars(args)
        stem = f"robustness_{Path(bundle).name}{args.tag}"
        (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=1))
        (out_dir / f"{stem}.partial.json").unlink(missing_ok=True)
        (out_dir / f"{stem}.md").write_text(markdown(result))
        plot(result, out_dir / f"{stem}.png")
        print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
