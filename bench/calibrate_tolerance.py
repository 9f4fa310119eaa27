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

A world with a success radius in metres and no pixel grid (``point_maze``, whose ``observation_at`` renders the ball at
rest anywhere) is measured against that radius instead: for ``--goals`` goals of the bundle's own maze, the latent
distance to the goal of free points at fractions of the radius in 16 directions (``distance_at_radius``), and for each
tolerance the share of goals with a point at or beyond the radius under it (``declared_outside``: "reached" said
outside the world's success) and the share of points at half the radius under it (``within_half_radius``: how easily
the planner comes under it). The suggested tolerance is the 5th percentile of the distance at the radius.

Usage: .venv/bin/python bench/calibrate_tolerance.py [--bundle models/two_rooms] [--world two_rooms] [--n 2000]
           [--tolerances 0.006 0.01] [--out FILE]
       .venv/bin/python bench/calibrate_tolerance.py --bundle models/point_maze --world point_maze --goals 200 \
           --tolerances 0.1 0.2 0.3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_common.convert import latent_distances
from jepa_common.paths import portable_path
from jepa_sim.machine import machine_info
from jepa_sim.worlds import make_world
from jepa_world_model.bundle import load_bundle

RESULTS = Path(__file__).resolve().parent / "results" / "tolerance.json"


def point_mass_batch(world_name: str) -> Any:
    """The world's batched point-mass renderer (its ``render`` and ``layout``)."""
    batch = getattr(make_world(world_name), "batch", None)
    if batch is None or not hasattr(batch, "render"):
        raise ValueError(f"world '{world_name}' has no point-mass renderer; calibration needs two_rooms or multi_room")
    return batch


def encode(model: Any, batch: Any, positions: np.ndarray) -> np.ndarray:
    """Latents of the agent rendered at ``positions`` (N, 2)."""
    with torch.no_grad():
        return model.encode(batch.render(np.asarray(positions, np.float32))).numpy()


def distances_per_px(model: Any, batch: Any, n: int, seed: int = 0) -> np.ndarray:
    """Normalised latent distance (``latent_distances``) between images of the agent at p and at p + 1 px (random
    direction)."""
    rng, layout = np.random.default_rng(seed), batch.layout
    starts, ends = [], []
    while len(starts) < n:
        p = layout.sample_free(rng, margin=1.0)
        angle = rng.uniform(0, 2 * np.pi)
        q = p + np.array([np.cos(angle), np.sin(angle)])
        if layout.is_free(q, margin=1.0)[0]:
            starts.append(p)
            ends.append(q)
    return latent_distances(encode(model, batch, np.stack(starts)), encode(model, batch, np.stack(ends)), model.latent_std.numpy())


def reach_radius(model: Any, batch: Any, tolerances: list[float], goals: int = 400, seed: int = 0,
                 radii: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0), directions: int = 16) -> tuple[dict[str, dict[str, float]], float]:
    """(per tolerance and radius: the share of goals with a free point that far (some direction) closer than the
    tolerance, i.e. where "reached" can be declared that many px out; ``far_closer_than_near``, see the module
    docstring)."""
    layout, std = batch.layout, model.latent_std.numpy()
    rng = np.random.default_rng(seed)
    g = np.stack([layout.sample_free(rng, margin=1.0) for _ in range(goals)])
    angles = np.linspace(0, 2 * np.pi, directions, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], -1)
    zg = encode(model, batch, g)
    shares: dict[str, dict[str, float]] = {str(t): {} for t in tolerances}
    nearest: dict[float, np.ndarray] = {}
    for r in radii:
        pts = (g[:, None, :] + r * ring[None]).reshape(-1, 2)
        free = layout.is_free(pts, margin=1.0).reshape(goals, directions)
        d = latent_distances(encode(model, batch, pts).reshape(goals, directions, -1), zg[:, None], std)
        nearest[r] = np.where(free, d, np.nan)
        for t in tolerances:
            shares[str(t)][f"{r:g}px"] = round(float(((d < t) & free).any(axis=1).mean()), 4)
    with np.errstate(all="ignore"):
        far_closer = np.nan_to_num(np.nanmin(nearest[1.5], axis=1) < np.nanmax(nearest[0.5], axis=1))
    return shares, round(float(far_closer.mean()), 4)


RADIUS_FRACTIONS = (0.25, 0.5, 0.75, 1.0, 1.5)


def radius_calibration(model: Any, world: Any, radius: float, tolerances: list[float], goals: int = 200,
                       seed: int = 0, directions: int = 16) -> dict[str, Any]:
    """Latent distance to the goal at fractions of a success radius (see the module docstring)."""
    angles = np.linspace(0, 2 * np.pi, directions, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], -1)
    std = model.latent_std.numpy()

    def encode_obs(observations: list[Any]) -> np.ndarray:
        with torch.no_grad():
            images = np.stack([o.image for o in observations])
            proprio = torch.as_tensor(np.stack([o.proprio for o in observations]), dtype=torch.float32)
            return model.encode(images, proprio if model.uses_proprio else None).numpy()

    dist = {f: [] for f in RADIUS_FRACTIONS}  # per fraction: (goals, directions) with NaN where not free
    for g in range(goals):
        world.reset(seed=seed + g)
        goal = world.goal_state[:2]
        zg = encode_obs([world.goal_observation()])[0]
        for f in RADIUS_FRACTIONS:
            pts = goal + f * radius * ring
            free = np.array([world.is_free(p) for p in pts])
            row = np.full(directions, np.nan)
            if free.any():
                row[free] = latent_distances(encode_obs([world.observation_at(p) for p in pts[free]]), zg[None], std)
            dist[f].append(row)
    d = {f: np.array(rows) for f, rows in dist.items()}
    outside = np.concatenate([d[f] for f in RADIUS_FRACTIONS if f >= 1.0], axis=1)
    with np.errstate(all="ignore"):
        nearest_outside = np.nanmin(outside, axis=1)
    return {
        "radius": radius,
        "goals": goals,
        "distance_at_radius": {f"{f:g}": {q: round(float(np.nanquantile(d[f], v)), 4) for q, v in
                                          (("p5", 0.05), ("median", 0.5), ("p95", 0.95))} for f in RADIUS_FRACTIONS},
        "suggested_tolerance": round(float(np.nanquantile(d[1.0], 0.05)), 3),
        "tolerances": {str(t): {"declared_outside": round(float(np.nan_to_num(nearest_outside < t).mean()), 4),
                                "within_half_radius": round(float(np.nanmean(d[0.5] < t)), 4)} for t in tolerances},
    }


def main_radius(args: argparse.Namespace) -> None:
    """The success-radius calibration of a world with ``observation_at`` (point_maze), in the bundle's own world."""
    from jepa_planner.evaluate import bundle_world
    from jepa_sim.worlds.point_maze import SUCCESS_THRESHOLD

    model = load_bundle(args.bundle, backend="torch")
    _, kwargs = bundle_world(args.bundle)
    world = make_world(args.world, **{**kwargs, "show_target": False})
    try:
        result = {"bundle": portable_path(args.bundle), "model_id": model.model_id, "world": args.world,
                  "world_kwargs": kwargs,
                  **radius_calibration(model, world, SUCCESS_THRESHOLD, args.tolerances, args.goals),
                  "machine": machine_info()}
    finally:
        world.close()
    out = args.out or RESULTS.with_name(f"tolerance_{args.world}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"{args.bundle} on {args.world}: latent distance at the success radius {result['radius']} "
          f"{result['distance_at_radius']['1']}; suggested tolerance {result['suggested_tolerance']}; wrote {out}")
    for tol, shares in result["tolerances"].items():
        print(f"  tolerance {tol}: goals declared reachable outside the radius {shares['declared_outside']:.1%}, "
              f"points at half the radius under it {shares['within_half_radius']:.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="models/two_rooms")
    parser.add_argument("--world", default="two_rooms")
    parser.add_argument("--n", type=int, default=2000, help="position pairs")
    parser.add_argument("--tolerances", type=float, nargs="*", default=[],
                        help="also measure how far from a goal each of these tolerances declares it reached")
    parser.add_argument("--goals", type=int, default=400, help="goals of the --tolerances measure (point_maze: of the radius"
                        " calibration)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON to write (default bench/results/tolerance.json, tolerance_<world>.json for other worlds)")
    args = parser.parse_args()
    if args.world == "point_maze":
        main_radius(args)
        return
    model, batch = load_bundle(args.bundle, backend="torch"), point_mass_batch(args.world)
    d = distances_per_px(model, batch, args.n)
    out = args.out or (RESULTS if args.world == "two_rooms" else RESULTS.with_name(f"tolerance_{args.world}.json"))
    result = {
        "bundle": portable_path(args.bundle),
        "model_id": model.model_id,
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
        result["reach_radius"], result["far_closer_than_near"] = reach_radius(model, batch, args.tolerances, args.goals)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    q = result["distance_per_px"]
    print(f"{args.bundle} on {args.world}: 1 px of displacement = {q['median']:.3f} normalised latent distance "
          f"(p2 {q['p2']:.3f}, p10 {q['p10']:.3f}, p90 {q['p90']:.3f}); suggested tolerance "
          f"{result['suggested_tolerance']}; wrote {out}")
    for tol, shares in result.get("reach_radius", {}).items():
        print(f"  tolerance {tol}: goals that can be declared reached this far out: "
              + ", ".join(f"{r} {s:.1%}" for r, s in shares.items()))
    if "far_closer_than_near" in result:
        print(f"  goals where a point 1.5 px out is closer than one 0.5 px out: {result['far_closer_than_near']:.1%}")


if __name__ == "__main__":
    main()
