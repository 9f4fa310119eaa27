"""Open-loop evaluation of a world model on recorded episodes (our bags or any robot's): JSON + PNG + HTML.

The same encoder and predictor that run on the robot are applied to recorded frames and actions:

* prediction error vs horizon: for every window of ``context + horizon`` model steps (every raw start,
  as ``WindowDataset(stride=1)`` cuts them) the context is encoded, the recorded actions are rolled out
  open-loop and each predicted latent is compared with the encoded real frame (normalised MSE: MSE
  divided by the mean per-dimension latent variance, so 1.0 is no better than predicting the mean);
* surprise: the prediction error at every raw frame that has a full context behind it (None before), as
  ``jepa_world_model.surprise`` defines it for the world-model node: the detector of the bundle's
  calibration (e.g. 1-step residuals summed over 5 frames, whitened), else the 1-step RMS error in latent std;
  frames above the alarm threshold (``--surprise-threshold``, else the bundle's calibration) are marked;
* collapse statistics of the latents on this data: per-dimension std, effective rank, and the ratio
  to the training std in the bundle (a shift of the data distribution shows here first);
* optionally the planner's first action vs the recorded action, with the goal taken from a later frame
  of the same episode (the recorded behaviour reached it, so a good model plans something similar).

Bad inputs (unreadable bag, missing topic, unknown type, an image size the model does not take) are
reported by bag and topic and skipped; the rest is evaluated.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from jepa_common import plugins
from jepa_common.episodes import Episode, EpisodeSet
from jepa_common.yaml_io import load_yaml_file
from jepa_world_model.metrics import effective_rank, latent_std
from jepa_world_model.protocol import WorldModel
from jepa_world_model.surprise import SurpriseDetector

DEFAULT_HORIZON = 8
ENCODE_CHUNK = 256
ROLLOUT_CHUNK = 512


@dataclass
class EpisodeResult:
    """Evaluation of one episode.

    Attributes:
        source: where the episode came from (bag path and episode index).
        frames: raw frames in the episode.
        windows: open-loop windows evaluated (0 when the episode is shorter than one window).
        horizon_error: normalised MSE per horizon step 1..H over this episode's windows (empty when windows == 0).
        surprise: per raw frame surprise (the calibration's detector), None where there is no full context.
        surprise_times_s: seconds since the episode's first frame, per raw frame.
        plan: planner vs recorded action for this episode (None when not evaluated).
        surprising_frames: frame indices whose surprise exceeds the alarm threshold (``mark_surprising``).
    """

    source: str
    frames: int
    windows: int
    horizon_error: list[float]
    surprise: list[float | None]
    surprise_times_s: list[float]
    plan: dict[str, Any] | None = None
    surprising_frames: list[int] = field(default_factory=list)


@dataclass
class OfflineEvalReport:
    """Everything the offline evaluation measured; ``to_dict`` is the JSON written to disk."""

    horizon: int
    context: int
    frameskip: int
    normalise: str
    horizon_error: list[float]
    episodes: list[EpisodeResult]
    collapse: dict[str, Any]
    planner: dict[str, Any]
    skipped: list[dict[str, str]] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    inputs: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    data: list[dict[str, Any]] = field(default_factory=list)  # per-bag data reports (load_bags)
    surprise_alarm: dict[str, Any] = field(default_factory=dict)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["frames_per_s"] = round(self.frames_per_s, 2)
        out["surprise_mean"] = _mean_finite([s for e in self.episodes for s in e.surprise if s is not None])
        return _json_safe(out)


# ----------------------------------------------------------------------------- core computations
def _mean_finite(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else None


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None (strict JSON), numpy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


@torch.no_grad()
def encode_episode(model: WorldModel, episode: Episode, chunk: int = ENCODE_CHUNK) -> torch.Tensor:
    """All frames of an episode -> latents (T, *latent_shape), in chunks; proprio goes in when the model fuses it."""
    uses_proprio = bool(getattr(model, "uses_proprio", False))
    out = []
    for i in range(0, len(episode), chunk):
        frames = np.asarray(episode.frames[i : i + chunk], dtype=np.uint8)
        if uses_proprio:
            out.append(model.encode(frames, np.asarray(episode.proprio[i : i + chunk], dtype=np.float32)))
        else:
            out.append(model.encode(frames))
    return torch.cat(out).float()


def stacked_actions(actions: np.ndarray, starts: np.ndarray, frameskip: int) -> torch.Tensor:
    """Raw actions (T, A) -> model-step actions (N, A*frameskip): the ``frameskip`` raw actions from each start, in order."""
    idx = starts[:, None] + np.arange(frameskip)[None, :]
    return torch.from_numpy(np.asarray(actions, dtype=np.float32)[idx].reshape(len(starts), -1))


def scale_of(model: WorldModel, latents: torch.Tensor, normalise: str) -> torch.Tensor:
    """Per-dimension scale of the normalised MSE: the bundle's training std (``model``) or this data's std (``data``)."""
    if normalise == "model":
        return torch.as_tensor(model.latent_std, dtype=torch.float32).reshape(model.latent_shape)
    if normalise == "data":
        return latent_std(latents).reshape(model.latent_shape)
    raise ValueError(f"normalise must be 'model' or 'data', got {normalise!r}")


@torch.no_grad()
def horizon_errors(model: WorldModel, latents: torch.Tensor, actions: np.ndarray, horizon: int) -> tuple[torch.Tensor, int]:
    """Squared errors of open-loop rollouts over every window of one episode.

    Windows are those of ``WindowDataset(context, horizon, frameskip, stride=1)``: start s, context
    frames s, s+f, ..., s+(C-1)f, targets s+(C-1+k)f for k = 1..H.

    Returns:
        (per-horizon mean squared error per window and latent element, shape (N, H); number of windows N).
    """
    c, f = model.context, model.frameskip
    t = latents.shape[0]
    span = (c + horizon - 1) * f + 1
    n = t - span + 1
    if n <= 0:
        return torch.zeros(0, horizon), 0
    starts = np.arange(n)
    ctx_idx = starts[:, None] + f * np.arange(c)[None, :]
    tgt_idx = starts[:, None] + f * (c - 1 + np.arange(1, horizon + 1))[None, :]
    act_starts = starts[:, None] + f * (c - 1 + np.arange(horizon))[None, :]
    errs = []
    for lo in range(0, n, ROLLOUT_CHUNK):
        sl = slice(lo, lo + ROLLOUT_CHUNK)
        z_ctx = latents[torch.from_numpy(ctx_idx[sl])]
        acts = stacked_actions(actions, act_starts[sl].reshape(-1), f).reshape(z_ctx.shape[0], horizon, -1)
        pred = model.rollout(z_ctx, acts).float()
        target = latents[torch.from_numpy(tgt_idx[sl])]
        errs.append((pred - target).pow(2).reshape(pred.shape[0], horizon, -1).mean(dim=2))
    return torch.cat(errs), n


def surprise_per_frame(model: WorldModel, latents: torch.Tensor, actions: np.ndarray, scale: torch.Tensor,
                       detector: SurpriseDetector | None = None) -> list[float | None]:
    """Surprise (``detector``'s, default the 1-step RMS error) at each raw frame; None without full context."""
    series = (detector or SurpriseDetector()).series(model, latents, actions, scale)
    return [float(v) if np.isfinite(v) else None for v in series]


def mark_surprising(report: OfflineEvalReport, threshold: float | None, source: str = "") -> None:
    """Mark every frame whose surprise exceeds ``threshold`` (None: nothing marked, the reason in ``source``)."""
    scored = [s for e in report.episodes for s in e.surprise if s is not None]
    if threshold is None:
        report.surprise_alarm = {"threshold": None, "source": source}
        return
    for ep in report.episodes:
        ep.surprising_frames = [i for i, v in enumerate(ep.surprise) if v is not None and v > threshold]
    marked = sum(len(e.surprising_frames) for e in report.episodes)
    report.surprise_alarm = {
        "threshold": float(threshold),
        "source": source,
        "surprising_frames": marked,
        "rate": marked / len(scored) if scored else 0.0,
    }


def alarm_threshold(bundle: str, override: float | None, normalise: str) -> tuple[float | None, str, SurpriseDetector | None]:
    """The threshold for ``mark_surprising`` (``override``, else the bundle's calibration; model-std units only) and
    the calibration's detector, which defines the surprise that threshold applies to."""
    if normalise != "model":
        if override is not None:
            return override, "--surprise-threshold", None
        return None, "the calibrated threshold is in model-std units; --normalise data has none", None
    from jepa_world_model.bundle import read_manifest
    from jepa_world_model.surprise import alarm_setting, calibration_path

    try:
        manifest = read_manifest(bundle, verify=False)
    except (FileNotFoundError, ValueError) as exc:  # a test double or foreign model: no calibration to use
        return override, "--surprise-threshold" if override is not None else str(exc), None
    alarm = alarm_setting(calibration_path(bundle), manifest, override, "--surprise-threshold")
    return alarm.threshold, alarm.source or alarm.problem, alarm.detector


def collapse_stats(model: WorldModel, latents: torch.Tensor) -> dict[str, Any]:
    """Spread of the latents on this data, and how it compares with the bundle's training spread."""
    flat = latents.reshape(latents.shape[0], -1)
    std = latent_std(flat) if flat.shape[0] > 1 else torch.zeros(flat.shape[1])
    train_std = torch.as_tensor(model.latent_std, dtype=torch.float32).reshape(-1)
    ratio = std / train_std.clamp_min(1e-12)
    return {
        "num_latents": int(flat.shape[0]),
        "dim": int(flat.shape[1]),
        "std_per_dim": std.tolist(),
        "train_std_per_dim": train_std.tolist(),
        "std_mean": float(std.mean()),
        "std_min": float(std.min()),
        "std_ratio_median": float(ratio.median()),
        "effective_rank": effective_rank(flat) if flat.shape[0] > 1 else 0.0,
        "dims_below_1pct_of_train_std": int((ratio < 0.01).sum()),
    }


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 2 or a.std() < 1e-12 or b.std() < 1e-12:
        return None
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@torch.no_grad()
def planner_vs_recorded(
    planner: Any, model: WorldModel, latents: torch.Tensor, actions: np.ndarray, goal_steps: int, max_plans: int
) -> dict[str, Any] | None:
    """Plan from evenly spaced points of one episode toward the frame ``goal_steps`` model steps later.

    Returns:
        {"plans", "rmse", "correlation", "planned", "recorded"} (actions are level-0 model-step actions),
        or None when the episode is too short for one plan.
    """
    c, f = model.context, model.frameskip
    first = (c - 1) * f  # context end
    last = latents.shape[0] - 1 - goal_steps * f
    if last < first or max_plans < 1:
        return None
    points = np.unique(np.linspace(first, last, max_plans).round().astype(np.int64))
    planned, recorded = [], []
    for t in points:
        ctx = latents[torch.from_numpy(t - f * np.arange(c - 1, -1, -1))].unsqueeze(0)
        planner.reset()
        result = planner.plan(ctx, latents[t + goal_steps * f])
        planned.append(result.actions[0].detach().cpu().numpy().astype(np.float64))
        recorded.append(stacked_actions(actions, np.array([t]), f)[0].numpy().astype(np.float64))
    planned_arr, recorded_arr = np.stack(planned), np.stack(recorded)
    return {
        "plans": len(points),
        "rmse": float(np.sqrt(np.mean((planned_arr - recorded_arr) ** 2))),
        "correlation": _correlation(planned_arr, recorded_arr),
        "planned": planned_arr.tolist(),
        "recorded": recorded_arr.tolist(),
    }


def evaluate_episodes(
    model: WorldModel,
    episodes: EpisodeSet,
    horizon: int = DEFAULT_HORIZON,
    normalise: str = "model",
    planner: Any = None,
    goal_steps: int | None = None,
    max_plans_per_episode: int = 5,
    image_topic: str = "image",
    progress: bool = False,
    detector: SurpriseDetector | None = None,
) -> OfflineEvalReport:
    """Open-loop evaluation of ``model`` on ``episodes`` (see the module docstring for the figures).

    Args:
        model: any WorldModel (a loaded bundle, or a test double).
        episodes: the recorded episodes; raw actions (T, A) with A * frameskip == the model's level-0 action_dim.
        horizon: model steps of open-loop prediction.
        normalise: ``model`` (divide by the bundle's training latent variance) or ``data`` (this data's).
        planner: an object with ``plan(z_ctx, goal) -> PlanResult`` and ``reset()``, or None to skip that part.
        goal_steps: model steps between the plan start and its goal frame (default: the planner's horizon).
        max_plans_per_episode: plans per episode (evenly spaced).
        image_topic: named in the skip reason of an episode whose images the model rejects.
        progress: show a tqdm bar.
        detector: the bundle's surprise calibration's (None: the plain 1-step RMS error).

    Returns:
        The report; episodes the model cannot take are listed in ``skipped`` with the reason.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    action_dim = model.levels[0].action_dim
    start = time.perf_counter()
    results: list[EpisodeResult] = []
    skipped: list[dict[str, str]] = []
    all_latents, window_errs = [], []
    frames_done = 0
    encoded: list[tuple[Episode, torch.Tensor]] = []
    for ep in tqdm(episodes.episodes, desc="encode", unit="ep", disable=not progress):
        where = ep.source or "episode"
        if ep.actions.shape[1] * model.frameskip != action_dim:
            skipped.append(
                {
                    "source": where,
                    "topic": "action",
                    "reason": f"raw actions have {ep.actions.shape[1]} dims; with frameskip {model.frameskip} the model needs "
                    f"{action_dim // max(model.frameskip, 1)} (check the action source in the topics config)",
                }
            )
            continue
        try:
            z = encode_episode(model, ep)
        except ValueError as exc:  # e.g. an image size the bundle was not trained on
            skipped.append({"source": where, "topic": image_topic, "reason": str(exc)})
            continue
        encoded.append((ep, z))
        all_latents.append(z)
        frames_done += len(ep)
    if not encoded:
        raise ValueError(
            "no episode could be evaluated: " + "; ".join(f"{s['source']} ({s['topic']}): {s['reason']}" for s in skipped)
        )
    latents_all = torch.cat(all_latents)
    scale = scale_of(model, latents_all, normalise)
    denom = float(scale.pow(2).mean().clamp_min(1e-12))
    for ep, z in tqdm(encoded, desc="predict", unit="ep", disable=not progress):
        errs, n = horizon_errors(model, z, ep.actions, horizon)
        window_errs.append(errs)
        stamps = ep.stamps_ns if ep.stamps_ns is not None else None
        times = ((np.asarray(stamps) - stamps[0]) * 1e-9).tolist() if stamps is not None else [float(i) for i in range(len(ep))]
        results.append(
            EpisodeResult(
                source=ep.source,
                frames=len(ep),
                windows=n,
                horizon_error=(errs.mean(0) / denom).tolist() if n else [],
                surprise=surprise_per_frame(model, z, ep.actions, scale, detector),
                surprise_times_s=times,
            )
        )
    all_errs = torch.cat(window_errs)
    overall = (all_errs.mean(0) / denom).tolist() if all_errs.shape[0] else []
    planner_info: dict[str, Any] = {"status": "not requested"}
    if planner is not None:
        steps = int(goal_steps if goal_steps is not None else getattr(planner, "horizon", horizon))
        per_ep = []
        for res, (ep, z) in tqdm(list(zip(results, encoded)), desc="plan", unit="ep", disable=not progress):
            res.plan = planner_vs_recorded(planner, model, z, ep.actions, steps, max_plans_per_episode)
            if res.plan is not None:
                per_ep.append(res.plan)
        planned = np.array([p for e in per_ep for p in e["planned"]]) if per_ep else np.zeros((0, action_dim))
        recorded = np.array([r for e in per_ep for r in e["recorded"]]) if per_ep else np.zeros((0, action_dim))
        planner_info = {
            "status": "evaluated" if per_ep else "no episode long enough",
            "goal_steps": steps,
            "plans": int(planned.shape[0]),
            "rmse": float(np.sqrt(np.mean((planned - recorded) ** 2))) if planned.size else None,
            "correlation": _correlation(planned, recorded),
            "correlation_per_dim": [_correlation(planned[:, d], recorded[:, d]) for d in range(planned.shape[1])]
            if planned.size
            else [],
        }
    elapsed = time.perf_counter() - start
    return OfflineEvalReport(
        horizon=horizon,
        context=model.context,
        frameskip=model.frameskip,
        normalise=normalise,
        horizon_error=overall,
        episodes=results,
        collapse=collapse_stats(model, latents_all),
        planner=planner_info,
        skipped=skipped,
        frames=frames_done,
        seconds=elapsed,
    )


# ----------------------------------------------------------------------------- bags in, report out
def load_topics_config(path: str | Path | None) -> Any:
    """A BagTopics config from YAML: the file is the topics mapping itself, or a training config with ``data.topics``.

    A ``preset: <world>`` key (with optional ``dt``) starts from that built-in world's topics and the other
    keys override it. Returns None for no path (the default topics of the built-in worlds).
    """
    if path is None:
        return None

    from jepa_world_model.data.bags import topics_from_mapping

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"topics config {path} does not exist")
    raw = load_yaml_file(path) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"topics config {path} must be a mapping, got {type(raw).__name__}")
    if isinstance(raw.get("data"), dict) and "topics" in raw["data"]:
        raw = raw["data"]["topics"]
    elif "topics" in raw and isinstance(raw["topics"], dict):
        raw = raw["topics"]
    return topics_from_mapping(raw, f"topics config {path}")  # also ``per_bag: {glob: {...}}``


def load_bag_episodes(
    paths: Sequence[str | Path], topics: Any = None, cache_dir: str | Path | None = None, progress: bool = False
) -> tuple[EpisodeSet, list[dict[str, str]]]:
    """Read each bag on its own, so one bad bag is reported and skipped while the others load.

    Returns:
        (all episodes, skipped entries {"source", "topic", "reason"}).
    """
    from jepa_world_model.data.bags import load_bags

    episodes: list[Episode] = []
    skipped: list[dict[str, str]] = []
    reports: list[dict[str, Any]] = []
    for path in tqdm([Path(p) for p in paths], desc="read bags", unit="bag", disable=not progress):
        try:
            check_image_topic(path, topics.for_bag(path) if topics is not None else None)
            eps = load_bags([path], topics, cache_dir=cache_dir, on_error="raise")
        except Exception as exc:  # any reader failure of this bag must not stop the others
            skipped.append({"source": str(path), "topic": _topic_in(str(exc)), "reason": f"{type(exc).__name__}: {exc}"})
            continue
        for entry in eps.metadata.get("skipped", []) or []:
            skipped.append(_skip_entry(entry, path))
        episodes.extend(eps.episodes)
        reports.extend(eps.metadata.get("data_report", []))
    return EpisodeSet(episodes=episodes, metadata={"bags": [str(p) for p in paths], "data_report": reports}), skipped


IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


def check_image_topic(path: Path, topics: Any) -> None:
    """Fail early, naming bag, topic and type, when the image topic carries something other than an image.

    Only the type name is checked (the bag is opened, no message is read); everything else is the loader's job.
    """
    from rosbags.highlevel import AnyReader

    image = getattr(topics, "image", None) or "/camera/image_raw"
    if not path.exists():
        raise FileNotFoundError(f"bag {path} does not exist")
    try:
        with AnyReader([path]) as reader:
            types = {c.topic: c.msgtype for c in reader.connections}
    except Exception:
        return  # unreadable: the loader reports it in its own words
    if image in types and types[image] not in IMAGE_TYPES:
        raise ValueError(
            f"bag {path}: topic {image} has message type {types[image]}, not one of {', '.join(IMAGE_TYPES)}; "
            "set 'image' in the topics config to the camera topic"
        )


def _topic_in(text: str) -> str:
    """The topic an error message names ("topic /x ..."), or '' (for the skipped table)."""
    match = re.search(r"topic '?(/[^\s,;:()'\"]+)", text)
    return match.group(1) if match else ""


def _skip_entry(entry: Any, path: Path) -> dict[str, str]:
    if isinstance(entry, dict):
        reason = str(entry.get("error", entry.get("reason", entry)))
        return {
            "source": str(entry.get("path", entry.get("bag", entry.get("source", path)))),
            "topic": str(entry.get("topic", "") or _topic_in(reason)),
            "reason": reason,
        }
    return {"source": str(path), "topic": _topic_in(str(entry)), "reason": str(entry)}


def _png_report(report: OfflineEvalReport, path: Path) -> None:
    """One 2x2 figure: error vs horizon, surprise timelines, std spectrum, planned vs recorded actions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0, 0]
    hs = np.arange(1, report.horizon + 1)
    for ep in report.episodes[:30]:
        if ep.horizon_error:
            ax.plot(hs, ep.horizon_error, color="0.75", lw=0.8)
    if report.horizon_error:
        ax.plot(hs, report.horizon_error, "o-", color="C0", lw=2, label="all episodes")
    ax.axhline(1.0, color="C3", ls="--", lw=1, label="mean-latent baseline")
    ax.set(
        xlabel=f"horizon (model steps of {report.frameskip} raw steps)",
        ylabel="normalised MSE",
        title="open-loop prediction error",
    )
    ax.legend(loc="upper left", fontsize=8)

    ax = axes[0, 1]
    for i, ep in enumerate(report.episodes[:12]):
        ys = np.array([np.nan if s is None else s for s in ep.surprise], dtype=float)
        ax.plot(ep.surprise_times_s[: len(ys)], ys, lw=0.9, label=Path(ep.source).name[-28:] or f"episode {i}")
        marked = [i for i in ep.surprising_frames if i < len(ys)]
        ax.plot([ep.surprise_times_s[i] for i in marked], ys[marked], "rx", ms=5)
    if report.surprise_alarm.get("threshold") is not None:
        ax.axhline(report.surprise_alarm["threshold"], color="C3", ls="--", lw=1, label="alarm threshold (x: above)")
    ax.set(xlabel="time in episode (s)", ylabel="surprise", title="surprise per frame")
    if report.episodes:
        ax.legend(fontsize=6, ncol=2, loc="upper right")

    ax = axes[1, 0]
    std = np.sort(np.asarray(report.collapse["std_per_dim"]))[::-1]
    train = np.sort(np.asarray(report.collapse["train_std_per_dim"]))[::-1]
    ax.bar(np.arange(len(std)), std, color="C0", label="this data")
    ax.plot(np.arange(len(train)), train, "k--", lw=1, label="training (bundle)")
    if std.size and std.min() > 0:
        ax.set_yscale("log")  # spreads of different magnitude stay visible side by side
    ax.set(
        xlabel="latent dimension (sorted)",
        ylabel="std",
        title=f"latent std spectrum, effective rank {report.collapse['effective_rank']:.1f} of {report.collapse['dim']}",
    )
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    pairs = [(p["recorded"], p["planned"]) for ep in report.episodes if ep.plan for p in [ep.plan]]
    if pairs:
        rec = np.concatenate([np.asarray(r) for r, _ in pairs])
        pla = np.concatenate([np.asarray(p) for _, p in pairs])
        for d in range(rec.shape[1]):
            ax.scatter(rec[:, d], pla[:, d], s=12, alpha=0.7, label=f"action[{d}]")
        lim = [min(rec.min(), pla.min()), max(rec.max(), pla.max())]
        ax.plot(lim, lim, "k:", lw=1)
        corr = report.planner.get("correlation")
        ax.set(
            xlabel="recorded action",
            ylabel="planner's first action",
            title=f"planner vs recorded (corr {corr:.2f})" if corr is not None else "planner vs recorded",
        )
        ax.legend(fontsize=6, ncol=2)
    else:
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            f"planner comparison: {report.planner.get('status')}\n{report.planner.get('reason', '')}",
            ha="center",
            va="center",
            wrap=True,
            fontsize=9,
        )
    fig.suptitle(f"offline evaluation: {len(report.episodes)} episodes, {report.frames} frames, {len(report.skipped)} skipped")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _html_report(report: OfflineEvalReport, png: Path, path: Path) -> None:
    data = base64.b64encode(png.read_bytes()).decode()
    h1 = report.horizon_error[0] if report.horizon_error else float("nan")
    hh = report.horizon_error[-1] if report.horizon_error else float("nan")
    rows = [
        ("inputs", ", ".join(report.inputs) or "(in memory)"),
        ("episodes / frames", f"{len(report.episodes)} / {report.frames}"),
        ("throughput", f"{report.frames_per_s:.1f} frames/s"),
        ("1-step / H-step error", f"{h1:.4f} / {hh:.4f} (H = {report.horizon}, normalised by {report.normalise} std)"),
        ("effective rank", f"{report.collapse['effective_rank']:.2f} of {report.collapse['dim']}"),
        ("surprising frames", _surprise_row(report)),
        ("std ratio (data / training), median", f"{report.collapse['std_ratio_median']:.3f}"),
        ("planner", json.dumps({k: v for k, v in _json_safe(report.planner).items() if k != "correlation_per_dim"})),
    ]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    skipped = (
        "".join(
            f"<tr><td>{html.escape(s['source'])}</td><td>{html.escape(s.get('topic', ''))}</td><td>{html.escape(s['reason'])}</td></tr>"
            for s in report.skipped
        )
        or "<tr><td colspan=3>nothing skipped</td></tr>"
    )
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>JEPA offline evaluation</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        "table{border-collapse:collapse;margin-bottom:1em}</style></head><body>"
        f"<h1>Offline evaluation</h1><table>{table}</table>"
        f"<img alt='report' style='max-width:100%' src='data:image/png;base64,{data}'>"
        f"<h2>Skipped</h2><table><tr><th>source</th><th>topic</th><th>reason</th></tr>{skipped}</table>"
        "<p>Details: offline_eval.json next to this page.</p></body></html>"
    )


def _surprise_row(report: OfflineEvalReport) -> str:
    alarm = report.surprise_alarm
    if alarm.get("threshold") is None:
        return f"not marked ({alarm.get('source') or 'no threshold'})"
    where = "; ".join(f"{Path(e.source).name or i}: {e.surprising_frames[:20]}" for i, e in enumerate(report.episodes) if e.surprising_frames)
    return (f"{alarm['surprising_frames']} above {alarm['threshold']:.3f} ({alarm['rate']:.2%} of frames; "
            f"threshold from {alarm['source']}){': ' + where if where else ''}")


def write_report(report: OfflineEvalReport, out_dir: str | Path) -> dict[str, Path]:
    """Write offline_eval.json, report.png and report.html into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "offline_eval.json", "png": out / "report.png", "html": out / "report.html"}
    paths["json"].write_text(json.dumps(report.to_dict(), indent=1))
    _png_report(report, paths["png"])
    _html_report(report, paths["png"], paths["html"])
    return paths


def make_planner(profile: str | None, model: WorldModel) -> tuple[Any, dict[str, Any]]:
    """A planner for ``profile`` from the installed planner builder, or (None, reason) when none is installed.

    The builder is found through entry point group ``jepa.planner_builders`` (jepa_planner registers
    ``profiles``), so this package does not import the planner package above it.
    """
    if not profile:
        return None, {"status": "not requested"}
    try:
        build_planner = plugins.load(plugins.PLANNER_BUILDERS, "profiles")
    except plugins.PluginError as exc:
        return None, {"status": "skipped", "reason": f"no planner builder is installed ({exc})"}
    return build_planner(profile, model), {"status": "requested", "profile": profile}


def run_offline_eval(
    bags: Sequence[str | Path],
    model: WorldModel,
    topics: Any = None,
    horizon: int = DEFAULT_HORIZON,
    normalise: str = "model",
    planner: Any = None,
    planner_info: dict[str, Any] | None = None,
    goal_steps: int | None = None,
    max_plans_per_episode: int = 5,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    detector: SurpriseDetector | None = None,
) -> OfflineEvalReport:
    """Read bags (bad ones skipped and listed) and evaluate ``model`` on their episodes.

    Raises:
        ValueError: when no bag yields an evaluable episode; the message lists every reason.
    """
    load_start = time.perf_counter()
    episodes, skipped = load_bag_episodes(bags, topics, cache_dir, progress)
    load_s = time.perf_counter() - load_start
    if len(episodes) == 0:
        reasons = "; ".join(f"{s['source']} {s['topic']}: {s['reason']}" for s in skipped) or "no episodes found"
        raise ValueError(f"no episode could be read from {len(bags)} bag(s): {reasons}")
    image_topic = str(getattr(topics, "image", None) or "/camera/image_raw")
    report = evaluate_episodes(
        model, episodes, horizon, normalise, planner, goal_steps, max_plans_per_episode, image_topic, progress, detector
    )
    report.skipped = skipped + report.skipped
    report.inputs = [str(b) for b in bags]
    report.data = episodes.metadata.get("data_report", [])
    report.model["load_seconds"] = round(load_s, 3)
    if planner is None and planner_info:
        report.planner = planner_info
    elif planner_info:
        report.planner = {**planner_info, **report.planner}
    return report


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jepa-offline-eval",
        description="Evaluate a world-model bundle open-loop on rosbags (ours or any robot's): prediction error vs horizon, "
        "surprise per frame, latent collapse statistics, optionally planner vs recorded actions. Writes JSON, PNG and HTML.",
    )
    p.add_argument(
        "bags", nargs="+", help="rosbag2 bag directories or .mcap/.db3 files; unreadable ones are skipped and reported"
    )
    p.add_argument("--bundle", required=True, help="model bundle directory (manifest.json + networks), e.g. models/two_rooms")
    p.add_argument(
        "--backend", choices=("torch", "onnx"), default="torch", help="run the bundle's torch networks or its ONNX export"
    )
    p.add_argument(
        "--topics-config",
        default=None,
        help="YAML with the BagTopics mapping (or a training config with data.topics); default: the built-in worlds' topics",
    )
    p.add_argument("--horizon", type=int, default=DEFAULT_HORIZON, help="open-loop prediction horizon in model steps")
    p.add_argument(
        "--normalise",
        choices=("model", "data"),
        default="model",
        help="divide squared errors by the bundle's training latent variance (model) or by this data's (data)",
    )
    p.add_argument(
        "--planner-profile",
        default=None,
        help="planner profile name (config/planner_profiles.yaml) to compare with recorded actions",
    )
    p.add_argument(
        "--goal-steps",
        type=int,
        default=None,
        help="model steps from plan start to the goal frame (default: the planner's horizon)",
    )
    p.add_argument("--plans-per-episode", type=int, default=5, help="planner calls per episode, evenly spaced")
    p.add_argument("--cache-dir", default=None, help="where decoded episodes are cached between runs (load_bags cache)")
    p.add_argument("--out", default="offline_eval", help="output directory for offline_eval.json, report.png and report.html")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument(
        "--surprise-threshold",
        type=float,
        default=None,
        help="mark frames whose surprise exceeds this (default: the bundle's surprise_calibration.json)",
    )
    return p


def main(argv: list[str] | None = None, model_loader: Callable[[str, str], WorldModel] | None = None) -> int:
    """Entry point of ``jepa-offline-eval``; returns 0 on success, 1 when nothing could be evaluated."""
    args = build_arg_parser().parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    try:
        if model_loader is None:
            from jepa_world_model.bundle import load_bundle

            model_loader = lambda path, backend: load_bundle(path, backend=backend)  # noqa: E731
        model = model_loader(args.bundle, args.backend)
        topics = load_topics_config(args.topics_config)
        planner, planner_info = make_planner(args.planner_profile, model)
        threshold, source, detector = alarm_threshold(args.bundle, args.surprise_threshold, args.normalise)
        report = run_offline_eval(
            args.bags,
            model,
            topics,
            args.horizon,
            args.normalise,
            planner,
            planner_info,
            args.goal_steps,
            args.plans_per_episode,
            args.cache_dir,
            progress=True,
            detector=detector,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"jepa-offline-eval: {exc}")
        return 1
    report.model.update(bundle=str(args.bundle), backend=args.backend)
    mark_surprising(report, threshold, source)
    paths = write_report(report, args.out)
    if report.data:
        from jepa_world_model.data.bags import format_data_report, write_data_report

        write_data_report(report.data, args.out)
        print(format_data_report(report.data))
    for s in report.skipped:
        print(f"skipped {s['source']} {s.get('topic', '')}: {s['reason']}")
    errs = ", ".join(f"{e:.3f}" for e in report.horizon_error)
    print(
        f"{len(report.episodes)} episodes, {report.frames} frames: error vs horizon [{errs}]; "
        f"effective rank {report.collapse['effective_rank']:.2f}; planner: {report.planner.get('status')}"
    )
    print(f"evaluated {report.frames} frames in {report.seconds:.2f} s ({report.frames_per_s:.1f} frames/s)")
    print(f"report: {paths['html']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
