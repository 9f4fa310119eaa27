"""Violation-of-expectation benchmark: does the world model's surprise flag physically impossible events?

For every shipped bundle whose world imports, matched possible / impossible episode pairs
(``jepa_sim.violations``: same start, same actions, the violation at a known frame) are scored
with the surprise detector the world-model node runs (``jepa_world_model.surprise.SurpriseDetector``),
with the torch and the ONNX backend (which must agree). Per bundle, violation kind, surprise
variant (``h1``: the whitened 1-step error; ``h1_raw``: the same error's plain RMS, the definition
before whitening, measured in the same run for the ratio; ``h2``: the whitened 2-step open-loop error;
``h1_w5``: the sum of the last 5 frames' 1-step residuals, whitened on normal sums, for violations that
last; ``h1_rest``, ``h1_w5_rest``: the same with a rest regime, frames whose predictions consumed only zero
commands whitened and thresholded on their own, ``jepa_world_model.surprise.RestRegime``; ``h1_rest_ctx``,
``h1_w5_rest_ctx``: the same with a context scale, moving frames also scored against the surprise the model's own
errors make where their prediction started, ``jepa_world_model.surprise.ContextScale``; ``h1_rest_db``,
``h1_w5_rest_ctx_db``: the same with a debiased rest regime, which scores each rest frame's residual minus the model's
own residual for a stay at that place, ``RestRegime.debias``; every rest regime's normal frames carry the camera noise
its calibration names, 3/255 by default) and backend it writes:

* pairwise accuracy: the impossible episode's peak surprise from the violation frame on is above the
  possible one's over the same frames (ties count half);
* AUROC: surprise of the impossible episode one model step after the violation (the first prediction
  made entirely across it) against the surprise of every normal frame (all scored frames of the
  possible episodes);
* detection: first frame at or after the violation whose surprise exceeds the alarm threshold,
  as a delay in model steps ((frame - violation frame) / frameskip), the share detected within
  2 model steps, and false alarms per normal frame (held-out normal episodes and the possible episodes);
* with ``--agent-episodes N``: false alarms while the agent itself drives to goals (closed loop, for the
  world's full episode length, with the profile the world's other benchmarks use: ``profile_for_world``).

The variant the bundle's calibration (``surprise_calibration.json``, written by
bench/calibrate_surprise.py) names is the *live* one, what the world-model node and offline evaluation
use: its threshold and whitening come from that file, the others' are calibrated here the same way.
The targets summary, the closed-loop false alarms and the figure (surprise around the violation frame
per kind) are of the live variant.

Usage (4.5 min on the idle 2-core machine, half of it the 200 closed-loop episodes):
    python bench/bench_surprise.py --seed 0 --pairs 100 --agent-episodes 100 --calib-episodes 1600 --out bench/results/surprise.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate_surprise import (
    DEFAULT_RATE,
    REST_BELOW,
    REST_NOISE,
    bundle_world,
    detector_scores,
    fit_detector,
    largest_step,
    normal_series,
)

from jepa_planner.profiles import profile_for_world
from jepa_sim.violations import kinds_for, make_pairs
from jepa_world_model.bundle import load_bundle, read_manifest
from jepa_world_model.surprise import (
    CALIBRATION_FILE,
    SurpriseDetector,
    auroc,
    calibration_path,
    encode_frames,
    exceed_rate,
    read_calibration,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLES = ["models/two_rooms", "models/multi_room", "models/point_maze"]
# name -> (horizon in model steps, whitened, window in frames, rest regime's window in frames (0: no rest regime),
#          context scale, debiased rest regime)
VARIANTS = {"h1": (1, True, 1, 0, False, False), "h1_raw": (1, False, 1, 0, False, False), "h2": (2, True, 1, 0, False, False),
            "h1_w5": (1, True, 5, 0, False, False), "h1_rest": (1, True, 1, 1, False, False),
            "h1_w5_rest": (1, True, 5, 1, False, False), "h1_rest_ctx": (1, True, 1, 1, True, False),
            "h1_w5_rest_ctx": (1, True, 5, 1, True, False), "h1_rest_db": (1, True, 1, 1, False, True),
            "h1_rest_ctx_db": (1, True, 1, 1, True, True), "h1_w5_rest_ctx_db": (1, True, 5, 1, True, True)}
BACKENDS = ("torch", "onnx")
TARGETS = {"pairwise_accuracy": 0.95, "auroc": 0.95, "false_alarm_rate": 1e-3, "delay_model_steps": 2}
PLOT_WINDOW = (-8, 16)  # frames around the violation in the figure


def json_safe(value: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, so the JSON is strict."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def pair_series(model: Any, pairs: list, detector: SurpriseDetector) -> tuple[np.ndarray, np.ndarray]:
    """Surprise (n, T) of the possible and impossible episodes of every pair (all episodes encoded in one batch)."""
    frames = np.concatenate([np.concatenate([p.possible.frames, p.impossible.frames]) for p in pairs])
    proprio = np.concatenate([np.concatenate([p.possible.proprio, p.impossible.proprio]) for p in pairs])  # for bundles that fuse it
    z = encode_frames(model, frames, proprio).reshape(len(pairs), 2, len(pairs[0].possible), *model.latent_shape)
    out = np.zeros((2, len(pairs), len(pairs[0].possible)))
    for i, p in enumerate(pairs):
        for j, episode in enumerate((p.possible, p.impossible)):
            out[j, i] = detector.series(model, z[i, j], episode.actions)
    return out[0], out[1]


def detection_delays(impossible: np.ndarray, steps: np.ndarray, frameskip: int, threshold: float) -> np.ndarray:
    """(n,) model steps from each pair's violation frame to its first surprise above ``threshold`` (inf: never)."""
    delays = np.full(len(impossible), np.inf)
    for i, step in enumerate(steps):
        hits = np.flatnonzero(impossible[i, step:] > threshold)
        if hits.size:
            delays[i] = hits[0] / frameskip
    return delays


def kind_metrics(possible: np.ndarray, impossible: np.ndarray, steps: np.ndarray, frameskip: int, horizon: int,
                 threshold: float) -> dict[str, Any]:
    """Pairwise accuracy, AUROC, detection delay and false alarms of one kind (one variant and backend)."""
    n, t_len = possible.shape
    after = np.arange(t_len)[None, :] >= steps[:, None]
    peak_p = np.where(after, np.nan_to_num(possible, nan=-1.0), -1.0).max(axis=1)
    peak_i = np.where(after, np.nan_to_num(impossible, nan=-1.0), -1.0).max(axis=1)
    accuracy = float(np.mean((peak_i > peak_p) + 0.5 * (peak_i == peak_p)))
    at = np.minimum(steps - 1 + horizon * frameskip, t_len - 1)
    positives = impossible[np.arange(n), at]
    normal = possible[np.isfinite(possible)]
    delays_arr = detection_delays(impossible, steps, frameskip, threshold)
    found = delays_arr[np.isfinite(delays_arr)]
    return {
        "pairwise_accuracy": accuracy,
        "auroc": auroc(positives, normal),
        "detected": float(np.isfinite(delays_arr).mean()),
        "detected_within_2_model_steps": float((delays_arr <= 2).mean()),
        "delay_model_steps": {
            "median": float(np.median(found)) if found.size else None,
            "p90": float(np.quantile(found, 0.9)) if found.size else None,
            "max": float(found.max()) if found.size else None,
        },
        "false_alarm_rate_possible": exceed_rate(possible, threshold),
        "surprise_at_violation_median": float(np.nanmedian(positives)),
        "normal_surprise_p99": float(np.quantile(normal, 0.99)),
    }


def thresholds_for(bundle: str, model: Any, world: str, kwargs: dict, seed: int, episodes: int) -> dict[str, dict[str, Any]]:
    """Alarm threshold and detector per variant: the bundle's calibration where it applies, else calibrated here
    (``calibrate_surprise.fit_detector``, the calibration's own procedure); plus the false-alarm rate on held-out
    normal episodes (a seed the calibration never used), overall and at rest. The detector is under the key
    "detector" (not written to the JSON)."""
    out: dict[str, dict[str, Any]] = {}
    stored = None
    try:
        stored = read_calibration(calibration_path(bundle), read_manifest(bundle, verify=False))
    except (FileNotFoundError, ValueError) as exc:
        print(f"  no usable calibration for {bundle}: {exc}", file=sys.stderr)
    cache: dict[tuple[int, int], list] = {}
    frameskip = int(model.frameskip)
    # the rest regimes' normal frames carry camera noise: the stored calibration's, else calibrate_surprise's default
    rest_noise = stored.rest_noise if stored is not None and stored.rest_noise > 0 else REST_NOISE / 255.0

    def series(split_seed: int, horizon: int) -> list:
        if (split_seed, horizon) not in cache:
            cache[(split_seed, horizon)] = normal_series(model, world, kwargs, episodes, 100, split_seed, horizon, rest_noise,
                                                         REST_BELOW * largest_step(model))
        return cache[(split_seed, horizon)]

    stored_key = None
    if stored is not None:
        stored_key = (stored.horizon, stored.whitener() is not None, stored.window, stored.rest_window if stored.rest_regime() else 0,
                      bool(stored.context_layers), bool(stored.rest_regime() and stored.rest_debias))
    for name, key in VARIANTS.items():
        horizon, whiten, window, rest_window, context, debias = key
        live = stored_key == key
        if live:
            detector, thr = stored.detector(), stored.threshold
            source = f"{Path(bundle).name}/{CALIBRATION_FILE} ({stored.command})"
        else:
            below = REST_BELOW * largest_step(model) if rest_window else None
            detector, thr, _ = fit_detector(series(seed + 7000, horizon), frameskip, DEFAULT_RATE, horizon, window, whiten, below,
                                            max(rest_window, 1), context, debias)
            source = f"calibrated here: rate {DEFAULT_RATE}, {episodes} episodes, seed {seed + 7000}"
        held_out, at_rest = detector_scores(detector, series(seed + 9000, horizon), frameskip)
        finite = np.isfinite(held_out)
        out[name] = {"threshold": float(thr), "source": source, "false_alarm_rate": exceed_rate(held_out, thr),
                     "normal_frames": int(finite.sum()), "rest_frames": int((finite & at_rest).sum()),
                     "false_alarm_rate_at_rest": exceed_rate(held_out[at_rest], thr), "whitened": whiten,
                     "rest_regime": detector.rest is not None, "detector": detector, "live": live}
    if stored is not None and not any(t["live"] for t in out.values()):
        print(f"  {bundle}'s calibration ({stored.detector().describe()}) is none of the variants {sorted(VARIANTS)}; "
              "its figures are not in this report", file=sys.stderr)
    return out


def agent_false_alarms(bundle: str, model: Any, world: str, kwargs: dict, episodes: int, seed: int, threshold: float,
                       detector: SurpriseDetector, profile: str = "flat_cem", max_steps: int = 100) -> dict[str, Any]:
    """False alarms while the agent itself drives (closed loop, the actor's MPCController and profile): the live
    behaviour the alarm must stay quiet for. Planning uses the torch backend as the actor does; surprise uses ``model``.
    ``max_steps``: raw steps per episode (0: the world's episode length)."""
    from jepa_planner.controller import MPCController
    from jepa_planner.evaluate import encode_observation
    from jepa_planner.profiles import build_planner
    from jepa_sim.worlds import make_world

    planning_model = load_bundle(bundle, backend="torch")
    planner = build_planner(profile, planning_model)
    env = make_world(world, **kwargs)
    max_steps = max_steps or int(env.spec.max_steps)
    clip = getattr(getattr(env, "batch", None), "clip_actions", None)
    scores, successes = [], 0
    for i in range(episodes):
        obs = env.reset(seed=seed + i)
        planner.reset(seed + i)
        controller = MPCController(planning_model, planner)
        controller.set_goal(encode_observation(planning_model, env.goal_observation()))
        frames, proprio, actions = [obs.image], [obs.proprio], []
        for _ in range(max_steps):
            action = controller.step(encode_observation(planning_model, obs)).action.astype(np.float64)
            applied = clip(action[None])[0][0] if clip is not None else action
            obs, info = env.step(applied)
            frames.append(obs.image)
            proprio.append(obs.proprio)
            actions.append(applied)
            if info.success:
                successes += 1
                break
        actions.append(np.zeros_like(actions[-1]))
        latents = encode_frames(model, np.stack(frames), np.stack(proprio).astype(np.float32))
        series = detector.series(model, latents, np.stack(actions).astype(np.float32))
        scores.append(series[np.isfinite(series)])
    flat = np.concatenate(scores)
    return {"profile": profile, "episodes": episodes, "successes": successes, "frames": int(flat.size),
            "false_alarms": int((flat > threshold).sum()), "false_alarm_rate": exceed_rate(flat, threshold),
            "surprise_p99": float(np.quantile(flat, 0.99)), "surprise_max": float(flat.max())}


def bench_bundle(bundle: str, seed: int, n_pairs: int, steps: int, calib_episodes: int,
                 agent_episodes: int = 0, agent_profile: str | None = None) -> tuple[dict[str, Any], dict]:
    """All metrics of one bundle, and the traces for the figure."""
    world, kwargs = bundle_world(bundle)
    kinds = kinds_for(world)
    if not kinds:
        return {"skipped": f"no violation pairs are defined for world {world!r} (jepa_sim.violations covers "
                           "two_rooms, multi_room and push_t)"}, {}
    try:
        models = {b: load_bundle(bundle, backend=b) for b in BACKENDS}
        pairs_by_kind = {k: make_pairs(world, k, n_pairs, seed=seed, steps=steps, world_kwargs=kwargs) for k in kinds}
    except ImportError as exc:
        return {"skipped": str(exc)}, {}
    fs = int(models["onnx"].frameskip)
    thresholds = thresholds_for(bundle, models["onnx"], world, kwargs, seed, calib_episodes)
    public = {name: {k: v for k, v in t.items() if k != "detector"} for name, t in thresholds.items()}
    live = next((name for name, t in thresholds.items() if t["live"]), "h1")  # no usable calibration: h1, as the node
    result: dict[str, Any] = {"model_id": models["onnx"].model_id, "world": world, "frameskip": fs, "live_variant": live,
                              "thresholds": public, "kinds": {}}
    traces: dict[str, Any] = {"threshold": thresholds[live]["threshold"], "variant": live, "kinds": {}}
    max_diff = 0.0
    for kind, pairs in pairs_by_kind.items():
        steps_arr = np.array([p.step for p in pairs])
        entry: dict[str, Any] = {"pairs": len(pairs), "violation_step_range": [int(steps_arr.min()), int(steps_arr.max())]}
        for name, (horizon, *_) in VARIANTS.items():
            series = {b: pair_series(models[b], pairs, thresholds[name]["detector"]) for b in BACKENDS}
            for j in range(2):
                ok = np.isfinite(series["onnx"][j])
                max_diff = max(max_diff, float(np.abs(series["onnx"][j][ok] - series["torch"][j][ok]).max()))
            entry[name] = {b: kind_metrics(*series[b], steps_arr, fs, horizon, thresholds[name]["threshold"]) for b in BACKENDS}
            if name == live:
                traces["kinds"][kind] = (series["onnx"], steps_arr)
        result["kinds"][kind] = entry
    result["backends_max_abs_diff"] = max_diff
    if agent_episodes > 0:
        result["agent"] = agent_false_alarms(bundle, models["onnx"], world, kwargs, agent_episodes, seed + 11000,
                                             thresholds[live]["threshold"], thresholds[live]["detector"],
                                             profile=agent_profile or profile_for_world(world), max_steps=0)
        result["agent"]["variant"] = live
    return result, traces


def plot(traces: dict[str, Any], path: Path) -> None:
    """Median and 10-90% band of surprise around the violation frame, possible vs impossible, per bundle and kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)  # frames before the model's first context
    rows = [(b, t) for b, t in traces.items() if t]
    if not rows:
        return
    ncols = max(len(t["kinds"]) for _, t in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(3.2 * ncols, 2.8 * len(rows)), squeeze=False, sharey="row")
    rel = np.arange(*PLOT_WINDOW)
    for r, (bundle, tr) in enumerate(rows):
        for c, (kind, ((possible, impossible), steps)) in enumerate(tr["kinds"].items()):
            ax = axes[r, c]
            for series, colour, label in ((possible, "tab:blue", "possible"), (impossible, "tab:red", "impossible")):
                idx = np.clip(steps[:, None] + rel[None, :], 0, series.shape[1] - 1)
                vals = np.take_along_axis(series, idx, axis=1)
                ax.fill_between(rel, np.nanquantile(vals, 0.1, axis=0), np.nanquantile(vals, 0.9, axis=0), color=colour, alpha=0.2)
                ax.plot(rel, np.nanmedian(vals, axis=0), color=colour, lw=1.5, label=label)
            ax.axhline(tr["threshold"], color="k", ls="--", lw=0.8, label="alarm threshold")
            ax.axvline(0, color="grey", lw=0.6)
            ax.set_title(f"{bundle}: {kind}", fontsize=9)
            ax.set_xlabel("frames after the violation")
            if c == 0:
                ax.set_ylabel(f"surprise ({tr['variant']})")
        for c in range(len(tr["kinds"]), ncols):
            axes[r, c].axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """Targets of the issue for the two-rooms bundle (its live variant, ONNX backend: what the node runs)."""
    two = results.get("two_rooms", {})
    live = two.get("live_variant", "h1")
    out: dict[str, Any] = {"variant": live}
    for kind, entry in two.get("kinds", {}).items():
        m = entry[live]["onnx"]
        out[kind] = {
            "pairwise_accuracy": m["pairwise_accuracy"] >= TARGETS["pairwise_accuracy"],
            "auroc": m["auroc"] >= TARGETS["auroc"],
            "detected_within_2_model_steps": m["detected_within_2_model_steps"],
        }
    if "thresholds" in two:
        out["false_alarm_rate_ok"] = two["thresholds"][live]["false_alarm_rate"] <= TARGETS["false_alarm_rate"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=100, help="pairs per violation kind and bundle")
    parser.add_argument("--out", default="bench/results/surprise.json", help="JSON output (the figure goes next to it as .png)")
    parser.add_argument("--bundles", nargs="+", default=DEFAULT_BUNDLES)
    parser.add_argument("--steps", type=int, default=40, help="actions per episode")
    parser.add_argument("--calib-episodes", type=int, default=400, help="normal episodes for thresholds and false-alarm rates")
    parser.add_argument("--agent-episodes", type=int, default=0,
                        help="closed-loop episodes of the agent for its own false-alarm rate (slow: planning on CPU)")
    parser.add_argument("--agent-profile", default=None,
                        help="the agent's planner profile (default per world, as the other benchmarks: two_rooms flat_cem, "
                             "multi_room hierarchical)")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error(f"--pairs must be >= 1, got {args.pairs}")
    torch.set_num_threads(2)
    started = time.time()
    results: dict[str, Any] = {}
    traces: dict[str, Any] = {}
    for bundle in args.bundles:
        name = Path(bundle).name
        print(f"bundle {bundle} ...", file=sys.stderr)
        try:
            results[name], traces[name] = bench_bundle(bundle, args.seed, args.pairs, args.steps, args.calib_episodes,
                                                       args.agent_episodes, args.agent_profile)
        except (FileNotFoundError, ValueError) as exc:
            results[name], traces[name] = {"skipped": str(exc)}, {}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python bench/bench_surprise.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "seed": args.seed,
        "pairs": args.pairs,
        "steps": args.steps,
        "variants": {k: f"{h}-model-step open-loop prediction error, " + (f"summed over the last {n} frames, " if n > 1 else "")
                     + ("whitened (Mahalanobis per dimension)" if w else "RMS")
                     + (f"; frames at rest (zero commands) in their own {r}-frame regime" if r else "")
                     + ("; moving frames also against the context's expected surprise" if c else "")
                     + ("; the rest regime debiased (minus the model's own error for a stay at the place)" if db else "")
                     for k, (h, w, n, r, c, db) in VARIANTS.items()},
        "targets": TARGETS,
        "bundles": results,
        "two_rooms_targets_met": summary(results),
        "seconds": round(time.time() - started, 1),
    }
    out.write_text(json.dumps(json_safe(report), indent=2, allow_nan=False) + "\n")
    if not args.no_plot:
        plot(traces, out.with_suffix(".png"))
    print(json.dumps(report["two_rooms_targets_met"], indent=2))
    print(f"wrote {out} in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
