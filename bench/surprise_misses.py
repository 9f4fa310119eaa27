"""Where the live surprise alarm misses violations: each pair's place in the world, found in time or not.

``bench/bench_surprise.py`` says how many violations of each kind the live alarm finds within 2 model steps;
this says where the rest happen. For every violation pair of a point-mass world (``jepa_sim.violations``,
the same pairs as the benchmark for the same seed and count) it scores the impossible episode with the
bundle's own calibration (``surprise_calibration.json``: the detector and threshold the world-model node
runs, ONNX backend) and sorts the pair by where the agent was when the violation began: within
``--door-radius`` px of a door centre (``doorway``), otherwise within ``--wall-margin`` px of a wall
(``near_wall``), otherwise ``open``. Per kind and place it writes how many pairs were found within 2 model
steps and the peak surprise of those missed, and every missed pair's position, against the threshold. For
freezes, whose possible twin moves freely through the violation's frames, it also writes per place the median of
the model's predicted latent step over the true one on that twin (first model step across the violation, in
the model's normalised units): below 1, the model expects a shorter step than the agent made, so a freeze
there leaves a smaller residual.

Usage (about 15 s per kind and seed on the 2-core machine):
    python bench/surprise_misses.py --seed 0 --pairs 100 --out bench/results/surprise_misses.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_surprise import detection_delays, pair_series
from calibrate_surprise import bundle_world

from jepa_sim.violations import POINT_MASS_KINDS, make_pairs
from jepa_sim.worlds import make_batch_world
from jepa_world_model.bundle import load_bundle, read_manifest
from jepa_world_model.surprise import encode_frames, model_std, read_calibration, residual_series

PLACES = ("doorway", "near_wall", "open")
IN_TIME = 2.0  # model steps, the detection target


def wall_distance(rects: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Euclidean distance (N,) from each point of (N, 2) to the nearest axis-aligned wall [x0, y0, x1, y1]."""
    p = np.asarray(points, np.float64)[:, None, :]
    lo, hi = rects[None, :, :2], rects[None, :, 2:]
    gap = np.maximum(np.maximum(lo - p, p - hi), 0.0)  # 0 along an axis whose slab holds the point
    return np.linalg.norm(gap, axis=2).min(axis=1)


def place_of(layout: Any, points: np.ndarray, door_radius: float, wall_margin: float) -> list[str]:
    """``doorway`` / ``near_wall`` / ``open`` for each point of (N, 2) in a ``RectLayout``."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    doors = np.array([d.centre for d in layout.doors], np.float64).reshape(-1, 2)
    to_door = np.linalg.norm(points[:, None] - doors[None], axis=2).min(axis=1) if len(doors) else np.full(len(points), np.inf)
    to_wall = wall_distance(layout.rects, points)
    return ["doorway" if d <= door_radius else "near_wall" if w <= wall_margin else "open"
            for d, w in zip(to_door, to_wall, strict=True)]


def predicted_step_ratio(model: Any, episode: Any, frame: int) -> float:
    """|predicted latent step| / |true latent step| of the 1-step prediction that ends at ``frame``."""
    f = int(model.frameskip)
    latents = encode_frames(model, episode.frames, episode.proprio)
    residual = residual_series(model, latents, episode.actions)[frame]
    flat = latents.reshape(len(latents), -1).double().numpy()
    true_step = flat[frame] - flat[frame - f]
    predicted_step = true_step + residual * model_std(model).reshape(-1).double().numpy()
    return float(np.linalg.norm(predicted_step) / max(float(np.linalg.norm(true_step)), 1e-12))


def kind_report(model: Any, detector: Any, threshold: float, pairs: list, layout: Any, door_radius: float,
                wall_margin: float) -> dict[str, Any]:
    """Found-in-time counts per place and the missed pairs of one violation kind."""
    fs = int(model.frameskip)
    _, impossible = pair_series(model, pairs, detector)
    starts = np.array([p.impossible.state[p.step - 1] for p in pairs])
    places = place_of(layout, starts, door_radius, wall_margin)
    table = {place: {"pairs": 0, "found_in_time": 0} for place in PLACES}
    missed = []
    delays = detection_delays(impossible, np.array([p.step for p in pairs]), fs, threshold)
    for i, (pair, delay) in enumerate(zip(pairs, delays, strict=True)):
        row = table[places[i]]
        row["pairs"] += 1
        if delay <= IN_TIME:
            row["found_in_time"] += 1
        else:
            missed.append({"place": places[i], "position": [round(float(v), 2) for v in starts[i]], "step": int(pair.step),
                           "peak_surprise": round(float(np.nanmax(impossible[i, pair.step:])), 3),
                           "delay_model_steps": None if not np.isfinite(delay) else round(float(delay), 2)})
    if pairs and pairs[0].kind == "freeze":  # the possible twin moves freely across the violation's frames
        ratios = [predicted_step_ratio(model, p.possible, p.step - 1 + fs) for p in pairs]
        for place in PLACES:
            mine = [r for r, at in zip(ratios, places, strict=True) if at == place]
            table[place]["predicted_step_ratio_median"] = round(float(np.median(mine)), 3) if mine else None
    for row in table.values():
        row["share_in_time"] = round(row["found_in_time"] / row["pairs"], 4) if row["pairs"] else None
    return {"pairs": len(pairs), "found_in_time": sum(r["found_in_time"] for r in table.values()),
            "by_place": table, "missed": missed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="models/two_rooms")
    parser.add_argument("--seed", type=int, nargs="+", default=[0], help="pair seeds (the benchmark's --seed)")
    parser.add_argument("--pairs", type=int, default=100, help="pairs per violation kind and seed")
    parser.add_argument("--steps", type=int, default=40, help="actions per episode (the benchmark's --steps)")
    parser.add_argument("--kinds", nargs="+", default=list(POINT_MASS_KINDS), choices=POINT_MASS_KINDS)
    parser.add_argument("--door-radius", type=float, default=8.0, help="px from a door centre that count as the doorway")
    parser.add_argument("--wall-margin", type=float, default=4.0, help="px from a wall that count as near it")
    parser.add_argument("--out", default="bench/results/surprise_misses.json")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error(f"--pairs must be >= 1, got {args.pairs}")
    bundle = Path(args.bundle)
    calibration_path = bundle / "surprise_calibration.json"
    if not calibration_path.exists():
        parser.error(f"{calibration_path} not found: calibrate the bundle first (bench/calibrate_surprise.py)")
    torch.set_num_threads(2)
    started = time.time()
    world, kwargs = bundle_world(bundle)
    model = load_bundle(bundle, backend="onnx")
    calibration = read_calibration(calibration_path, read_manifest(bundle))
    detector = calibration.detector()
    layout = make_batch_world(world, 1, **kwargs).layout
    kinds: dict[str, Any] = {}
    for kind in args.kinds:
        per_seed = {}
        for seed in args.seed:
            print(f"{kind}, seed {seed} ...", file=sys.stderr)
            pairs = make_pairs(world, kind, args.pairs, seed=seed, steps=args.steps, world_kwargs=kwargs)
            per_seed[str(seed)] = kind_report(model, detector, calibration.threshold, pairs, layout,
                                              args.door_radius, args.wall_margin)
        kinds[kind] = per_seed
    report = {
        "command": "python bench/surprise_misses.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "model_id": model.model_id,
        "threshold": calibration.threshold,
        "detector": detector.describe(),
        "in_time_model_steps": IN_TIME,
        "door_radius_px": args.door_radius,
        "wall_margin_px": args.wall_margin,
        "kinds": kinds,
        "seconds": round(time.time() - started, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for kind, per_seed in kinds.items():
        for seed, entry in per_seed.items():
            cells = ", ".join(f"{place} {row['found_in_time']}/{row['pairs']}" for place, row in entry["by_place"].items())
            print(f"{kind:12s} seed {seed}: in time {entry['found_in_time']}/{entry['pairs']} ({cells})")
    print(f"wrote {out} in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
