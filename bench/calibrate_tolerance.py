"""Latent distance per pixel of agent displacement: the unit behind the configurator's ``default_tolerance``.

The configurator declares success when the RMS of (z - goal) / latent_std falls below a tolerance.
This script measures that distance for 1 px moves of the agent in random directions at random free
positions of a point-mass world, so the tolerance can be set inside the world's success radius.
Writes bench/results/tolerance.json (tolerance_<world>.json for other worlds).

A median says little where the latent moves unevenly with position; ``--tolerances`` also measures, for each given
tolerance, how far from a goal "reached" can be declared: the share of goals (``--goals`` of them) with a free point
at 1, 1.5 and 2 px (16 directions) whose latent distance is under the tolerance (``reach_radius``), and the share of
goals where some point 1.5 px out is closer than some point 0.5 px out (``far_closer_than_near``: where that is
common, no tolerance separates "within a pixel" from "farther").

Usage: .venv/bin/python bench/calibrate_tolerance.py [--bundle models/two_rooms] [--world two_rooms] [--n 2000]
           [--tolerances 0.006 0.01] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_common.paths import portable_path
from jepa_sim.machine import machine_info
from jepa_sim.worlds import make_world
from jepa_world_model.bundle import load_bundle

RESULTS = Path(__file__).resolve().parent / "results" / "tolerance.json"


def distances_per_px(bundle: str, world_name: str, n: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """(RMS normalised latent distance between images of the agent at p and at p + 1 px (random direction), the
    bundle's model id)."""
    model = load_bundle(bundle, backend="torch")
    world = make_world(world_name)
    batch = getattr(world, "batch", None)
    if batch is None or not hasattr(batch, "render"):
        raise ValueError(f"world '{world_name}' has no point-mass renderer; calibration needs two_rooms or multi_room")
    rng, layout = np.random.default_rng(seed), batch.layout
    starts, ends = [], []
    while len(starts) < n:
        p = layout.sample_free(rng, margin=1.0)
        angle = rng.uniform(0, 2 * np.pi)
        q = p + np.array([np.cos(angle), np.sin(angle)])
        if layout.is_free(q, margin=1.0)[0]:
            starts.append(p)
            ends.append(q)
    std = model.latent_std.clamp_min(1e-6)
    with torch.no_grad():
        za = model.encode(batch.render(np.stack(starts).astype(np.float32)))
        zb = model.encode(batch.render(np.stack(ends).astype(np.float32)))
    return (((za - zb) / std) ** 2).flatten(1).mean(-1).sqrt().numpy(), model.model_id


def reach_radius(bundle: str, world_name: str, tolerances: list[float], goals: int = 400, seed: int = 0,
                 radii: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0), directions: int = 16) -> dict[str, Any]:
    """Per tolerance and radius: the share of goals with a free point that far (some direction) closer than the
    tolerance in normalised latent distance, i.e. where "reached" can be declared that many px out; and
    ``far_closer_than_near`` (see the module docstring)."""
    model = load_bundle(bundle, backend="torch")
    batch = make_world(world_name).batch
    rng, layout = np.random.default_rng(seed), batch.layout
    g = np.stack([layout.sample_free(rng, margin=1.0) for _ in range(goals)]).astype(np.float32)
    std = model.latent_std.clamp_min(1e-6)
    angles = np.linspace(0, 2 * np.pi, directions, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], -1).astype(np.float32)
    out: dict[str, Any] = {str(t): {} for t in tolerances}
    nearest: dict[float, np.ndarray] = {}
    with torch.no_grad():
        zg = model.encode(batch.render(g))
        for r in radii:
            pts = (g[:, None, :] + r * ring[None]).reshape(-1, 2)
            free = layout.is_free(pts, margin=1.0).reshape(goals, directions)
            z = model.encode(batch.render(pts)).reshape(goals, directions, -1)
            d = (((z - zg[:, None]) / std) ** 2).flatten(2).mean(-1).sqrt().numpy()
            nearest[r] = np.where(free, d, np.nan)
            for t in tolerances:
                out[str(t)][f"{r:g}px"] = round(float(((d < t) & free).any(axis=1).mean()), 4)
    if 0.5 in nearest and 1.5 in nearest:
        with np.errstate(all="ignore"):
            far_min, near_max = np.nanmin(nearest[1.5], axis=1), np.nanmax(nearest[0.5], axis=1)
        out["far_closer_than_near"] = round(float(np.nan_to_num(far_min < near_max).mean()), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="models/two_rooms")
    parser.add_argument("--world", default="two_rooms")
    parser.add_argument("--n", type=int, default=2000, help="position pairs")
    parser.add_argument("--tolerances", type=float, nargs="*", default=[],
                        help="also measure how far from a goal each of these tolerances declares it reached")
    parser.add_argument("--goals", type=int, default=400, help="goals of the --tolerances measure")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON to write (default bench/results/tolerance.json, tolerance_<world>.json for other worlds)")
    args = parser.parse_args()
    d, model_id = distances_per_px(args.bundle, args.world, args.n)
    out = args.out or (RESULTS if args.world == "two_rooms" else RESULTS.with_name(f"tolerance_{args.world}.json"))
    result = {
        "bundle": portable_path(args.bundle),
        "model_id": model_id,
        "world": args.world,
        "pairs": len(d),
        "distance_per_px": {"median": float(np.median(d)), "p2": float(np.quantile(d, 0.02)),
                            "p10": float(np.quantile(d, 0.1)), "p90": float(np.quantile(d, 0.9))},
        # "reached" (distance < tolerance) should mean "inside the 1 px success radius" almost everywhere:
        # a tolerance at the 2nd percentile of the distance of a 1 px move holds at 98% of positions
        "suggested_tolerance": round(float(np.quantile(d, 0.02)), 3),
        "machine": machine_info(),
    }
    if args.tolerances:
        result["reach_radius"] = reach_radius(args.bundle, args.world, args.tolerances, args.goals)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    q = result["distance_per_px"]
    print(f"{args.bundle} on {args.world}: 1 px of displacement = {q['median']:.3f} normalised latent distance "
          f"(p2 {q['p2']:.3f}, p10 {q['p10']:.3f}, p90 {q['p90']:.3f}); suggested tolerance "
          f"{result['suggested_tolerance']}; wrote {out}")
    for tol, shares in result.get("reach_radius", {}).items():
        if not isinstance(shares, dict):
            print(f"  goals where a point 1.5 px out is closer than one 0.5 px out: {shares:.1%}")
            continue
        print(f"  tolerance {tol}: goals that can be declared reached this far out: "
              + ", ".join(f"{r} {s:.1%}" for r, s in shares.items()))


if __name__ == "__main__":
    main()
