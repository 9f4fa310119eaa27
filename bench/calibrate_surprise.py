"""Calibrate a bundle's surprise alarm threshold on normal data for a stated false-alarm rate.

Normal data: episodes of the bundle's own world (options from its manifest) under five behaviour
policies in equal shares (random_momentum with and without bouncing off walls, random, noisy_goal,
random_momentum with rests: smooth runs, pushing into walls, jerky moves, goal-directed trips through
doors, and stops of 5-30 steps with zero commands, about half of that policy's frames). Every raw frame
with a full context is scored with ``jepa_world_model.surprise.surprise_series`` (the definition the
world-model node publishes): by default whitened with the mean and covariance of the calibration
split's residuals (``Whitening``, stored in the same file; ``--no-whiten`` for the plain RMS), after
summing each frame's residual with those of the ``--window`` - 1 frames before it (the detector the
calibration names, ``SurpriseDetector``; 1: each frame alone). Frames at rest (every raw command their
residuals consumed below ``--rest-below`` of the world's largest step: the robot told to stand still) form
the detector's rest regime (``RestRegime``): their own ``--rest-window``, whitening and threshold for the
same rate, scaled onto the moving regime's threshold, so a robot that drifts while it should stand still is
not judged against the tail of wall contacts in motion (``--no-rest``: one regime). Moving frames are also
scored against the surprise the model's own errors make where their prediction started (``ContextScale``, a
small MLP fitted on the calibration split's moving frames: large near walls, small in open space), and the
larger of the plain and the context-scaled value counts (``--no-context``: the plain value alone). The
threshold is the value at most ``--rate`` of the calibration split exceeds (in each regime); the false-alarm
rate is then measured on a held-out split drawn with another seed. The result is written to
``<bundle>/surprise_calibration.json`` (tied to the bundle's model id and file checksums; the
world-model node reads it) and printed.

A robot's bundle (trained on its bags) is calibrated on its own recorded normal driving instead:
    python bench/calibrate_surprise.py --bundle models/my_robot --bags my_bags/*.mcap --topics-config my_topics.yaml
(the recorded episodes taken alternately for the two splits; the rest regime then sees how this robot stops).

Rerun after retraining a bundle (the shipped two-rooms calibration uses a 5-frame window in motion, chosen
with ``bench/bench_surprise.py``, which compares the variants, and the default 1-frame rest regime):
    python bench/calibrate_surprise.py --bundle models/two_rooms --window 5 --episodes 6400
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_common.episodes import Episode
from jepa_sim.collect import collect_episodes
from jepa_world_model.bundle import load_bundle, read_manifest
from jepa_world_model.protocol import WorldModel
from jepa_world_model.surprise import (
    ContextScale,
    RestRegime,
    SurpriseCalibration,
    SurpriseDetector,
    Whitening,
    calibration_path,
    context_features,
    encode_frames,
    exceed_rate,
    residual_series,
    surprise_of,
    threshold_for_rate,
    window_sum,
    write_calibration,
)

# (policy, policy options): the mix of normal behaviour the threshold must tolerate
NORMAL_POLICIES: list[tuple[str, dict[str, Any]]] = [
    ("random_momentum", {}),
    ("random_momentum", {"bounce": False}),
    ("random", {}),
    ("noisy_goal", {}),
    ("random_momentum", {"rest_prob": 0.05}),
]
DEFAULT_RATE = 5e-4  # calibration target: half the 1/1000 budget, so the held-out rate stays inside it
REST_BELOW = 0.02  # a raw command at most this fraction of the world's largest step counts as zero
MIN_REST_FRAMES = 1000  # fewer rest frames than this in the calibration split: no rest regime (its tail unmeasurable)
MIN_CONTEXT_FRAMES = 5000  # fewer moving frames than this: no context scale (too few to fit its MLP, ~1,500 weights)

# one normal episode: (normalised residuals (T, D), raw actions (T, A), flattened latents (T, Dz) or absent)
Series = tuple[np.ndarray, ...]


def bundle_world(bundle: str | Path) -> tuple[str, dict[str, Any]]:
    """The world a bundle was trained in and its options (manifest provenance)."""
    prov = read_manifest(bundle, verify=False).get("provenance", {})
    data = prov.get("data", {}) or {}
    world = data.get("world") or prov.get("world")
    if not world:
        raise ValueError(f"{bundle}: the manifest names no world in provenance; pass --world")
    return str(world), dict(data.get("world_kwargs") or {})


def normal_episodes(world: str, world_kwargs: dict[str, Any], episodes: int, steps: int, seed: int) -> Iterator[tuple[int, Episode]]:
    """(index into NORMAL_POLICIES, episode) for ``episodes`` normal episodes split evenly over the policies: the
    normal data of one split (``seed``), the same wherever a split is named by its seed."""
    per = max(1, episodes // len(NORMAL_POLICIES))
    for i, (policy, kwargs) in enumerate(NORMAL_POLICIES):
        data = collect_episodes(world, per, steps, policy=policy, seed=seed * 101 + i, policy_kwargs=kwargs, **world_kwargs)
        for ep in data.episodes:
            yield i, ep


def normal_series(
    model: WorldModel, world: str, world_kwargs: dict[str, Any], episodes: int, steps: int, seed: int, horizon: int = 1
) -> list[Series]:
    """(normalised residuals (T, D), raw actions (T, A), latents (T, Dz)) of each of ``episodes`` normal episodes split
    evenly over NORMAL_POLICIES (residual rows before an episode's first scored frame are NaN)."""
    return [episode_series(model, ep, horizon) for _, ep in normal_episodes(world, world_kwargs, episodes, steps, seed)]


def episode_series(model: WorldModel, episode: Episode, horizon: int = 1) -> Series:
    """(normalised residuals, raw actions, flattened latents) of one episode."""
    latents = encode_frames(model, episode.frames, episode.proprio)
    residuals = residual_series(model, latents, episode.actions, horizon=horizon)
    return residuals, np.asarray(episode.actions, dtype=np.float64), latents.reshape(len(latents), -1).double().numpy()


def finite_surprise(residuals: np.ndarray, whitening: Whitening | None) -> np.ndarray:
    """Surprise of every scored frame of ``residuals`` (the rows with a full context)."""
    scores = surprise_of(residuals, whitening)
    return scores[np.isfinite(scores)]


def regime_sums(detector: SurpriseDetector, series: list[Series], frameskip: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(moving-window sums, rest-window sums, rest mask) of every frame of ``series``, episodes concatenated."""
    rest_window = detector.rest.window if detector.rest is not None else 1
    moving = np.concatenate([window_sum(r, detector.window) for r, *_ in series])
    resting = np.concatenate([window_sum(r, rest_window) for r, *_ in series])
    mask = np.concatenate([detector.rest_frames(a, frameskip) for _, a, *_ in series])
    return moving, resting, mask


def detector_scores(detector: SurpriseDetector, series: list[Series], frameskip: int) -> tuple[np.ndarray, np.ndarray]:
    """(surprise, rest mask) of every frame of ``series`` with ``detector``, episodes concatenated."""
    scores = np.concatenate([detector.score(r, a, frameskip, *z) for r, a, *z in series])
    mask = np.concatenate([detector.rest_frames(a, frameskip) for _, a, *_ in series])
    return scores, mask


def fit_context(series: list[Series], frameskip: int, rate: float, horizon: int, window: int, plain: np.ndarray,
                moving: np.ndarray, threshold: float) -> tuple[ContextScale, float]:
    """The context scale of a detector whose plain moving surprise on ``series`` is ``plain`` (frames with ``moving``
    True are in the moving regime) and its threshold for ``rate``: (scale with its gain, the threshold of the larger of
    the plain and the context-scaled surprise)."""
    if any(len(item) < 3 for item in series):
        raise ValueError("a context scale needs the latents of the normal episodes")
    features = np.concatenate([context_features(z, a, frameskip, horizon, window) for _, a, z in series])
    scale = ContextScale.fit(features[moving], plain[moving])
    ratio = plain / scale.expected(features)
    scale = replace(scale, gain=threshold / threshold_for_rate(ratio[moving & np.isfinite(ratio)], rate))
    combined = np.fmax(plain, scale.gain * ratio)
    return scale, threshold_for_rate(combined[moving & np.isfinite(combined)], rate)


def fit_detector(series: list[Series], frameskip: int, rate: float, horizon: int = 1, window: int = 1,
                 whiten: bool = True, rest_below: float | None = None, rest_window: int = 1, context: bool = False
                 ) -> tuple[SurpriseDetector, float, float]:
    """The detector and threshold for ``rate`` on one split of normal data.

    With ``rest_below`` (a raw command norm) and whitening, frames at rest get their own whitening and
    threshold for the same rate (a rest regime), when the split has at least MIN_REST_FRAMES of them.
    With ``context`` (needs whitening and latents in ``series``), moving frames also get a context scale, when the split
    has at least MIN_CONTEXT_FRAMES of them.
    Returns (detector, threshold, the rest regime's own threshold or 0)."""
    rest = RestRegime(rest_below, rest_window) if (whiten and rest_below is not None) else None
    probe = SurpriseDetector(horizon, window, None, rest)
    moving, resting, mask = regime_sums(probe, series, frameskip)
    n_rest = int((mask & np.isfinite(resting).all(axis=1)).sum())
    if rest is not None and n_rest < MIN_REST_FRAMES:
        print(f"calibrate_surprise: only {n_rest} frames at rest (< {MIN_REST_FRAMES}); calibrating without a rest regime",
              file=sys.stderr)
        rest, mask = None, np.zeros_like(mask)
    whitening = Whitening.fit(moving[~mask]) if whiten else None
    plain = surprise_of(moving, whitening)
    in_motion = ~mask & np.isfinite(plain)
    threshold = threshold_for_rate(plain[in_motion], rate)
    scale = None
    if context and whiten and in_motion.sum() < MIN_CONTEXT_FRAMES:
        print(f"calibrate_surprise: only {in_motion.sum()} moving frames (< {MIN_CONTEXT_FRAMES}); calibrating without a context scale",
              file=sys.stderr)
    elif context and whiten:
        scale, threshold = fit_context(series, frameskip, rate, horizon, window, plain, in_motion, threshold)
    if rest is None:
        return SurpriseDetector(horizon, window, whitening, None, scale), threshold, 0.0
    rest_whitening = Whitening.fit(resting[mask])
    rest_threshold = threshold_for_rate(finite_surprise(resting[mask], rest_whitening), rate)
    regime = RestRegime(rest.command_below, rest.window, rest_whitening, threshold / rest_threshold)
    return SurpriseDetector(horizon, window, whitening, regime, scale), threshold, rest_threshold


def largest_step(model: WorldModel) -> float:
    """The longest move one raw action may make along every axis: the smallest half-range of the model's level-0 raw
    action bounds (2.45 px in the point-mass worlds, whose norm bound is the same)."""
    level0 = next(spec for spec in model.levels if spec.level == 0)
    raw = int(level0.action_dim) // max(int(model.frameskip), 1)
    low, high = np.asarray(level0.action_low[:raw], dtype=np.float64), np.asarray(level0.action_high[:raw], dtype=np.float64)
    return float(np.min((high - low) / 2))


def bag_series(model: WorldModel, bags: list[str], topics_config: str | None, horizon: int = 1
               ) -> tuple[list[Series], list[Series]]:
    """Normal data from recorded bags (a robot's own driving, its stops included): (calibration, validation) series,
    the recorded episodes taken alternately, so both splits span the whole recording."""
    from jepa_world_model.offline_eval import load_bag_episodes, load_topics_config

    episodes, skipped = load_bag_episodes(bags, load_topics_config(topics_config), progress=True)
    for entry in skipped:
        print(f"calibrate_surprise: skipped {entry['source']}: {entry['reason']}", file=sys.stderr)
    if len(episodes.episodes) < 2:
        raise ValueError(f"--bags: need at least 2 recorded episodes (one split sets the threshold, the other measures its "
                         f"false alarms), got {len(episodes.episodes)} from {len(bags)} bag(s)")
    series = [episode_series(model, ep, horizon) for ep in episodes.episodes]
    return series[0::2], series[1::2]


def _rounded(values: np.ndarray) -> list[Any]:
    return [round(float(v), 8) for v in values] if values.ndim == 1 else [_rounded(row) for row in values]


def calibrate(
    bundle: str,
    backend: str = "onnx",
    rate: float = DEFAULT_RATE,
    episodes: int = 400,
    steps: int = 100,
    seed: int = 0,
    horizon: int = 1,
    world: str | None = None,
    command: str = "",
    whiten: bool = True,
    window: int = 1,
    rest_below: float | None = REST_BELOW,
    rest_window: int = 1,
    context: bool = True,
    bags: list[str] | None = None,
    topics_config: str | None = None,
) -> SurpriseCalibration:
    """Threshold for ``rate`` on one split, false-alarm rate measured on another. ``rest_below``: the rest regime's
    command bound as a fraction of the largest raw step (None: no rest regime). ``context``: fit a context scale.
    ``bags``: normal data from these recordings (every other episode per split) instead of episodes of the bundle's
    simulated world."""
    if window < 1 or horizon < 1 or rest_window < 1:
        raise ValueError(f"--horizon, --window and --rest-window must be >= 1, got {horizon}, {window} and {rest_window}")
    if rest_below is not None and not 0 <= rest_below < 1:
        raise ValueError(f"--rest-below is a fraction of the largest step in [0, 1), got {rest_below}")
    model = load_bundle(bundle, backend=backend)
    f = int(model.frameskip)
    below = None if rest_below is None else rest_below * largest_step(model)
    if bags:
        cal_series, val_series = bag_series(model, bags, topics_config, horizon)
        data: dict[str, Any] = {"bags": [str(b) for b in bags], "topics_config": topics_config, "episodes": len(cal_series) + len(val_series),
                                "split": "recorded episodes alternately (even: calibration, odd: validation)", "backend": backend}
    else:
        name, kwargs = (world, {}) if world else bundle_world(bundle)
        cal_series = normal_series(model, name, kwargs, episodes, steps, seed, horizon)
        val_series = normal_series(model, name, kwargs, episodes, steps, seed + 1000, horizon)
        data = {"world": name, "world_kwargs": kwargs, "policies": [{"policy": p, "policy_kwargs": k} for p, k in NORMAL_POLICIES],
                "episodes": episodes, "steps": steps, "seed": seed, "validation_seed": seed + 1000, "backend": backend}
    detector, threshold, rest_threshold = fit_detector(cal_series, f, rate, horizon, window, whiten, below, rest_window, context)
    cal_scores, _ = detector_scores(detector, cal_series, f)
    val_scores, val_rest = detector_scores(detector, val_series, f)
    finite = np.isfinite(val_scores)
    manifest = read_manifest(bundle, verify=False)
    whitening, rest, scale = detector.whitening, detector.rest, detector.context
    return SurpriseCalibration(
        threshold=round(threshold, 6),
        horizon=horizon,
        window=window,
        target_false_alarm_rate=rate,
        false_alarm_rate=exceed_rate(val_scores, threshold),
        calibration_frames=int(np.isfinite(cal_scores).sum()),
        validation_frames=int(finite.sum()),
        model_id=manifest["model_id"],
        checksums=dict(manifest.get("checksums", {})),
        data=data,
        command=command,
        quantiles={q: float(np.quantile(val_scores[finite], float(q))) for q in ("0.5", "0.99", "0.999", "1.0")},
        residual_mean=[] if whitening is None else _rounded(whitening.mean),
        whitening=[] if whitening is None else _rounded(whitening.matrix),
        rest_command_below=0.0 if rest is None else round(rest.command_below, 8),
        rest_window=1 if rest is None else rest.window,
        rest_residual_mean=[] if rest is None or rest.whitening is None else _rounded(rest.whitening.mean),
        rest_whitening=[] if rest is None or rest.whitening is None else _rounded(rest.whitening.matrix),
        rest_threshold=0.0 if rest is None else round(rest_threshold, 6),
        rest_frames=int((finite & val_rest).sum()) if rest is not None else 0,
        rest_false_alarm_rate=exceed_rate(val_scores[val_rest], threshold) if rest is not None else 0.0,
        context_mean=[] if scale is None else _rounded(scale.mean),
        context_std=[] if scale is None else _rounded(scale.std),
        context_layers=[] if scale is None else [{"weight": _rounded(w), "bias": _rounded(b)} for w, b in scale.layers],
        context_gain=0.0 if scale is None else round(scale.gain, 8),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="models/two_rooms", help="bundle directory (the result is written into it)")
    parser.add_argument("--backend", default="onnx", choices=("onnx", "torch"))
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="target false alarms per raw step (calibration split)")
    parser.add_argument("--episodes", type=int, default=6400,
                        help="normal episodes per split (the threshold is a tail quantile: with 400, held-out rates reached "
                             "1.5e-3; with 1,600, windowed thresholds moved 4.14-4.45 between seeds)")
    parser.add_argument("--steps", type=int, default=100, help="actions per episode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--horizon", type=int, default=1, help="model steps of the surprise (1: the 1-step error)")
    parser.add_argument("--window", type=int, default=1,
                        help="frames whose residuals are summed before whitening (a lasting violation adds up; 1: each frame alone)")
    parser.add_argument("--world", default=None, help="override the manifest's world")
    parser.add_argument("--bags", nargs="+", default=None,
                        help="normal data from these recorded bags (a robot's own driving) instead of the simulated world")
    parser.add_argument("--topics-config", default=None, help="with --bags: the BagTopics YAML (as jepa-offline-eval takes)")
    parser.add_argument("--out", default=None, help="output JSON (default <bundle>/surprise_calibration.json)")
    parser.add_argument("--no-whiten", action="store_true", help="plain RMS surprise (no residual whitening, no rest regime)")
    parser.add_argument("--rest-below", type=float, default=REST_BELOW,
                        help="a raw command at most this fraction of the world's largest step counts as zero (rest regime)")
    parser.add_argument("--rest-window", type=int, default=1, help="frames summed in the rest regime")
    parser.add_argument("--no-rest", action="store_true", help="no rest regime: frames at rest scored like moving ones")
    parser.add_argument("--no-context", action="store_true", help="no context scale: moving frames scored by their plain surprise")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    started = time.time()
    command = "python bench/calibrate_surprise.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        cal = calibrate(args.bundle, args.backend, args.rate, args.episodes, args.steps, args.seed, args.horizon, args.world, command,
                        whiten=not args.no_whiten, window=args.window, rest_below=None if args.no_rest else args.rest_below,
                        rest_window=args.rest_window, context=not args.no_context, bags=args.bags, topics_config=args.topics_config)
    except (FileNotFoundError, ValueError, ImportError) as exc:
        print(f"calibrate_surprise: {exc}", file=sys.stderr)
        return 2
    out = write_calibration(cal, args.out or calibration_path(args.bundle))
    matrices = ("checksums", "whitening", "residual_mean", "rest_whitening", "rest_residual_mean", "context_mean", "context_std", "context_layers")
    print(json.dumps({k: v for k, v in cal.to_dict().items() if k not in matrices}, indent=2))
    print(f"wrote {out} in {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
