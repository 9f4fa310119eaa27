"""Surprise: how far what the camera shows is from what the world model predicted, and its alarm threshold.

One definition serves the world-model node (live ``/surprise``), offline evaluation and the
violation-of-expectation benchmark:

    surprise(t) = RMS over latent dimensions of (pred(t) - z(t)) / latent_std

where ``pred(t)`` is the model's open-loop prediction of frame t from the context ending ``horizon``
model steps earlier (frame ``t - horizon * frameskip``, then every ``frameskip`` frames back) and the
raw actions applied in between, stacked ``frameskip`` at a time. With ``horizon = 1`` this is the
1-step prediction error, evaluated at every raw frame (frameskip-aware: a frame is compared with the
prediction made one model step before it). The unit is the one of goal tolerances: latent standard
deviations of the training data.

With a calibration that carries a whitening (``bench/calibrate_surprise.py`` fits one by default), the
residual ``r = (pred(t) - z(t)) / latent_std`` is first whitened with the mean and covariance of the
residuals on normal data, and surprise is the Mahalanobis distance per dimension,
``sqrt((r - mean)^T cov^-1 (r - mean) / D)``: the normalised-innovation test of a Kalman filter's fault
detection, in the model's latent space. Normal residuals are far from isotropic (the model's usual
errors lie along a few directions), so a violation that moves the latent the "wrong" way, like an agent
that does not move although commanded, stands out at the same false-alarm rate (freeze: pairwise
accuracy 0.83 -> 0.97 and detection within 2 model steps 0 -> 0.45 on 60 held-out two-rooms pairs; the
figures of record are in bench/results/surprise.json). Its unit is then that of normal residuals (about 1).

The alarm threshold is calibrated on normal data for a stated false-alarm rate per raw step and stored
as ``surprise_calibration.json`` next to the bundle's manifest, tied to the bundle by its model id and
file checksums, so a retrained bundle cannot silently use an old threshold. The whitening lives in the
same file: a threshold is only ever used with the definition it was calibrated for.

A calibration also names its detector (``SurpriseDetector``): the horizon of the prediction and a
``window`` of frames whose residuals are summed before whitening. A violation that lasts (an agent
that stays put although commanded) leaves residuals of one sign frame after frame, while normal errors
partly cancel, so a window finds more of them in time at the same false-alarm rate; the node, offline
evaluation and the benchmark all score with the calibration's detector.

A detector may also have a *rest regime* (``RestRegime``): frames whose predictions consumed only zero
commands (every raw command norm at or below ``command_below``: a velocity-commanded robot told to stand
still). The model's normal residuals there are far smaller than in motion, where wall contacts make the
tail, so rest frames get their own window, whitening and calibrated tail, and a drift of a robot that
should stand still stands out at once. Their whitened value is scaled so that one threshold holds in both
regimes at the calibrated false-alarm rate. A *debiased* rest regime first subtracts, from each rest frame's
residual, the residual the model would leave had the robot stood still at the place its prediction started
(``rest_bias_series``: the model's prediction from a context of that one latent repeated, zero commands). The
model's error at rest is a constant per place (an encoder's latent does not move while the camera sees the
same image), so without this the rest tail is the worst place's constant, and a slow drift from rest hides
under it; with it, what is left is the latent's own motion where none was commanded (for a one-frame context
exactly the latent's change over the prediction's span). On a noiseless simulator that is exactly zero at
rest, so its calibration adds a stated camera noise to the rest frames (``bench/calibrate_surprise.py``).

A detector may also carry a *context scale* (``ContextScale``): how large the model's own normal error is
where a frame's prediction started (the latent it started from and the commands it consumed), learnt on
normal data. The model is often wrong at walls (a stop it did not predict) and rarely in open space, so a
moving frame's surprise is the larger of its plain value and its value over the expected one (times a gain
that puts both on one threshold): an agent that stops in open space stands out, a wall stop of the same size
does not.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_common.convert import latent_distances
from jepa_world_model.protocol import WorldModel

CALIBRATION_FILE = "surprise_calibration.json"
CALIBRATION_SCHEMA = 1
CHUNK = 512


def normalised_distance(a: np.ndarray, b: np.ndarray, std: np.ndarray) -> np.ndarray:
    """RMS over latent dimensions of (a - b) / std (the unit of tolerances and surprise): the suite's one
    distance, :func:`jepa_common.convert.latent_distances`."""
    return latent_distances(a, b, std)


def model_std(model: WorldModel) -> torch.Tensor:
    """The bundle's per-dimension training latent std (floored at 1e-6), shaped like a latent."""
    return torch.as_tensor(model.latent_std, dtype=torch.float32).reshape(model.latent_shape).clamp_min(1e-6)


def first_scored_frame(model: WorldModel, horizon: int = 1) -> int:
    """Index of the first raw frame with a full context ``horizon`` model steps behind it."""
    return (int(model.context) - 1 + int(horizon)) * int(model.frameskip)


@dataclass(frozen=True)
class Whitening:
    """Mean and whitening matrix of the normalised residuals on normal data: ``W (r - mean)`` has identity
    covariance there (``W^T W`` is the inverse covariance)."""

    mean: np.ndarray  # (D,)
    matrix: np.ndarray  # (D, D)

    @classmethod
    def fit(cls, residuals: np.ndarray, ridge: float = 1e-6) -> Whitening:
        """From (N, D) residuals of normal frames (rows with NaN are ignored)."""
        r = np.asarray(residuals, dtype=np.float64)
        r = r[np.isfinite(r).all(axis=1)]
        if r.shape[0] <= r.shape[1]:
            raise ValueError(f"need more normal frames than latent dimensions to fit a whitening, got {r.shape[0]}")
        cov = np.cov(r.T) + ridge * np.eye(r.shape[1])
        return cls(r.mean(axis=0), np.linalg.cholesky(np.linalg.inv(cov)).T)

    def scores(self, residuals: np.ndarray) -> np.ndarray:
        """Mahalanobis distance per dimension of each (..., D) residual."""
        d = (np.asarray(residuals, dtype=np.float64) - self.mean) @ self.matrix.T
        return np.sqrt((d**2).mean(axis=-1))


@torch.no_grad()
def residual_series(
    model: WorldModel,
    latents: torch.Tensor,
    actions: np.ndarray,
    std: torch.Tensor | None = None,
    horizon: int = 1,
) -> np.ndarray:
    """Normalised prediction residual ``(pred(t) - z(t)) / std`` at every raw frame, flattened: float64
    (T, D), NaN rows before ``first_scored_frame``. Arguments as :func:`surprise_series`."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 model step, got {horizon}")
    c, f = int(model.context), int(model.frameskip)
    latents = torch.as_tensor(latents, dtype=torch.float32)
    actions = np.asarray(actions, dtype=np.float32)
    t_total = latents.shape[0]
    if actions.shape[0] < t_total - 1:
        raise ValueError(f"need one raw action per frame transition: {t_total} frames, {actions.shape[0]} actions")
    scale = (model_std(model) if std is None else torch.as_tensor(std, dtype=torch.float32)).clamp_min(1e-6)
    out = np.full((t_total, int(np.prod(model.latent_shape))), np.nan)
    first = first_scored_frame(model, horizon)
    if t_total <= first:
        return out
    targets = np.arange(first, t_total)
    last_ctx = targets - horizon * f
    ctx_idx = last_ctx[:, None] - f * np.arange(c - 1, -1, -1)[None, :]
    act_idx = last_ctx[:, None, None] + f * np.arange(horizon)[None, :, None] + np.arange(f)[None, None, :]  # (N, H, f)
    for lo in range(0, len(targets), CHUNK):
        sl = slice(lo, lo + CHUNK)
        z_ctx = latents[torch.from_numpy(ctx_idx[sl])]
        acts = torch.from_numpy(actions[act_idx[sl]].reshape(len(targets[sl]), horizon, -1))
        pred = model.predict(z_ctx, acts[:, 0]) if horizon == 1 else model.rollout(z_ctx, acts)[:, -1]
        diff = (pred.float() - latents[torch.from_numpy(targets[sl])]) / scale
        out[first + lo : first + lo + len(targets[sl])] = diff.reshape(len(targets[sl]), -1).double().numpy()
    return out


@torch.no_grad()
def rest_bias_series(model: WorldModel, latents: torch.Tensor, std: torch.Tensor | None = None, horizon: int = 1) -> np.ndarray:
    """The residual the model would leave at every raw frame had the robot stood still where the frame's prediction
    started: ``(pred(z0, ..., z0; zero commands) - z0) / std`` with ``z0`` the frame ``horizon`` model steps back,
    repeated over the whole context. float64 (T, D), NaN rows before ``first_scored_frame`` (as ``residual_series``).

    Subtracted from ``residual_series`` it removes the model's constant error at a place (the debiased rest regime,
    ``RestRegime.debias``); for a one-frame context and zero commands what is left is ``(z(t - horizon * frameskip) -
    z(t)) / std``, the latent's own change."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 model step, got {horizon}")
    c, f = int(model.context), int(model.frameskip)
    latents = torch.as_tensor(latents, dtype=torch.float32)
    scale = (model_std(model) if std is None else torch.as_tensor(std, dtype=torch.float32)).clamp_min(1e-6)
    out = np.full((latents.shape[0], int(np.prod(model.latent_shape))), np.nan)
    first = first_scored_frame(model, horizon)
    if latents.shape[0] <= first:
        return out
    level0 = next(spec for spec in model.levels if spec.level == 0)
    starts = np.arange(first, latents.shape[0]) - horizon * f
    for lo in range(0, len(starts), CHUNK):
        z0 = latents[torch.from_numpy(starts[lo : lo + CHUNK])]
        ctx = z0.unsqueeze(1).expand(-1, c, *z0.shape[1:])
        acts = torch.zeros(len(z0), horizon, int(level0.action_dim))
        pred = model.predict(ctx, acts[:, 0]) if horizon == 1 else model.rollout(ctx, acts)[:, -1]
        out[first + lo : first + lo + len(z0)] = ((pred.float() - z0) / scale).reshape(len(z0), -1).double().numpy()
    return out


def surprise_series(
    model: WorldModel,
    latents: torch.Tensor,
    actions: np.ndarray,
    std: torch.Tensor | None = None,
    horizon: int = 1,
    whitening: Whitening | None = None,
) -> np.ndarray:
    """Surprise at every raw frame of one episode (NaN before ``first_scored_frame``).

    Args:
        model: the world model (any backend).
        latents: (T, *latent_shape) encoded frames, in order, one per raw control step.
        actions: (T, A_raw) raw actions; ``actions[t]`` moves frame t to t + 1 (the last row is unused).
        std: per-dimension scale (default: the bundle's training latent std).
        horizon: model steps between the context and the scored frame (1: the 1-step error).
        whitening: the calibration's (see the module docstring); None: RMS of the normalised residual.

    Returns:
        float64 (T,) surprise per frame.
    """
    return SurpriseDetector(horizon, 1, whitening).series(model, latents, actions, std)


def window_sum(residuals: np.ndarray, window: int) -> np.ndarray:
    """Sum of each frame's residual with those of the ``window - 1`` frames before it: (T, D) -> (T, D),
    NaN where any row of the window is NaN (so a window never reaches across an episode's unscored start).

    A violation that lasts (an agent that stays put although commanded) leaves residuals of the same sign
    in consecutive frames, while normal errors partly cancel; whitening the sums (fitted on normal sums)
    tests that. ``window = 1`` returns the residuals unchanged."""
    if window < 1:
        raise ValueError(f"window must be >= 1 frame, got {window}")
    r = np.asarray(residuals, dtype=np.float64)
    if window == 1:
        return r.copy()
    bad = ~np.isfinite(r).all(axis=-1)
    zero = np.zeros((1, r.shape[-1]))
    sums = np.cumsum(np.concatenate([zero, np.where(bad[:, None], 0.0, r)]), axis=0)
    bads = np.cumsum(np.concatenate([[0], bad.astype(np.int64)]))
    out = np.full_like(r, np.nan)
    out[window - 1 :] = sums[window:] - sums[:-window]
    out[window - 1 :][(bads[window:] - bads[:-window]) > 0] = np.nan
    return out


def at_rest(actions: np.ndarray, span: int, command_below: float) -> np.ndarray:
    """(T,) bool: frame t is at rest when the ``span`` raw actions before it (``actions[t - span : t]``, the
    commands its windowed residuals consumed) all have a norm at or below ``command_below``. Frames with fewer
    than ``span`` actions before them, or a non-finite action among them, are not at rest."""
    a = np.asarray(actions, dtype=np.float64)
    still = np.linalg.norm(np.nan_to_num(a.reshape(len(a), -1), nan=np.inf), axis=1) <= command_below
    counts = np.concatenate([[0], np.cumsum(still)])
    out = np.zeros(len(a), dtype=bool)
    if span >= 1 and len(a) > span:
        t = np.arange(span, len(a))
        out[span:] = (counts[t] - counts[t - span]) == span
    return out


def context_features(latents: np.ndarray, actions: np.ndarray, frameskip: int, horizon: int, window: int) -> np.ndarray:
    """(T, D + 2A) what each frame's windowed residual was predicted from: the latent its newest prediction started
    from (frame ``t - horizon * frameskip``), the raw commands summed over every action the window consumed and over
    the newest prediction's own; NaN rows where the episode is too short or a command is missing."""
    z = np.asarray(latents, dtype=np.float64).reshape(len(latents), -1)
    a = np.asarray(actions, dtype=np.float64).reshape(len(actions), -1)
    lead = int(horizon) * int(frameskip)
    before = np.full((len(z), a.shape[1]), np.nan)  # before[t] = actions[t - 1], the command that led to frame t
    before[1:] = a[: len(z) - 1]
    start = np.full_like(z, np.nan)
    if len(z) > lead:
        start[lead:] = z[: len(z) - lead]
    return np.concatenate([start, window_sum(before, lead + int(window) - 1), window_sum(before, lead)], axis=1)


@dataclass(frozen=True)
class ContextScale:
    """The moving regime's expected surprise on normal data given a frame's ``context_features``: a small MLP
    (SiLU between layers) predicting its log, on features standardised with ``mean`` and ``std``. ``gain`` puts
    ``surprise / expected`` on the plain surprise's threshold (see the module docstring)."""

    mean: np.ndarray  # (F,)
    std: np.ndarray  # (F,)
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]  # (weight (out, in), bias (out,)) each
    gain: float = 1.0

    def __post_init__(self) -> None:
        size = np.asarray(self.mean).size
        ok = bool(self.layers) and np.asarray(self.std).shape == np.asarray(self.mean).shape == (size,)
        ok = ok and bool(np.isfinite(self.mean).all() and np.isfinite(self.std).all() and (np.asarray(self.std) > 0).all())
        for weight, bias in self.layers if ok else ():
            w, b = np.asarray(weight), np.asarray(bias)
            ok = ok and w.ndim == 2 and w.shape[1] == size and b.shape == (w.shape[0],) and bool(np.isfinite(w).all() and np.isfinite(b).all())
            size = w.shape[0] if w.ndim == 2 else -1
        if not (ok and size == 1 and math.isfinite(self.gain) and self.gain > 0):
            raise ValueError("a context scale needs finite layers chained from its features to one output, std > 0 and gain > 0")

    def expected(self, features: np.ndarray) -> np.ndarray:
        """(T,) expected surprise of (T, F) features (NaN where a feature is)."""
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.std
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ np.asarray(weight).T + bias
            if i < len(self.layers) - 1:
                x = x / (1.0 + np.exp(-np.clip(x, -60, 60)))  # SiLU
        return np.exp(x[:, 0])

    @classmethod
    def fit(cls, features: np.ndarray, scores: np.ndarray, hidden: int = 32, epochs: int = 20, seed: int = 0,
            min_steps: int = 2000) -> ContextScale:
        """Least squares on log ``scores`` (N,) from (N, F) ``features`` of normal moving frames (rows with a
        non-finite value or a score <= 0 are ignored), for ``epochs`` or at least ``min_steps`` batches; gain 1."""
        x, y = np.asarray(features, dtype=np.float64), np.asarray(scores, dtype=np.float64)
        keep = np.isfinite(x).all(axis=1) & np.isfinite(y) & (y > 0)
        x, y = x[keep], np.log(y[keep])
        if len(x) < 10 * x.shape[1]:
            raise ValueError(f"need at least {10 * x.shape[1]} normal moving frames to fit a context scale, got {len(x)}")
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden),
                                      torch.nn.SiLU(), torch.nn.Linear(hidden, 1))
            xt = torch.as_tensor((x - mean) / std, dtype=torch.float32)
            yt = torch.as_tensor(y, dtype=torch.float32)
            opt = torch.optim.Adam(net.parameters(), lr=3e-3)
            epochs = max(epochs, math.ceil(min_steps / math.ceil(len(xt) / 1024)))
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
            for _ in range(epochs):
                order = torch.randperm(len(xt))
                for lo in range(0, len(xt), 1024):
                    batch = order[lo : lo + 1024]
                    loss = ((net(xt[batch]).squeeze(-1) - yt[batch]) ** 2).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                sched.step()
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        layers = tuple((m.weight.detach().double().numpy(), m.bias.detach().double().numpy()) for m in linears)
        return cls(mean, std, layers)


@dataclass(frozen=True)
class RestRegime:
    """How a detector scores frames at rest (see the module docstring): the residual (``debias``: minus the model's
    own residual for a stay at the place, ``rest_bias_series``) summed over ``window`` frames, whitened with
    ``whitening``, times ``scale`` (the moving regime's threshold over the rest regime's calibrated tail, so one
    threshold holds in both)."""

    command_below: float
    window: int = 1
    whitening: Whitening | None = None
    scale: float = 1.0
    debias: bool = False

    def __post_init__(self) -> None:
        ok = isinstance(self.window, int) and self.window >= 1 and math.isfinite(self.command_below) and self.command_below >= 0
        if not (ok and math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"a rest regime needs command_below >= 0, an integer window >= 1 and scale > 0, got "
                             f"{self.command_below}, {self.window}, {self.scale}")


@dataclass(frozen=True)
class SurpriseDetector:
    """The surprise an alarm threshold applies to: the ``horizon``-model-step prediction residual, summed over the
    last ``window`` frames (``window_sum``), whitened with ``whitening`` (None: RMS); frames at rest scored by
    ``rest`` where it is given, moving frames also against their expected value where ``context`` is given."""

    horizon: int = 1
    window: int = 1
    whitening: Whitening | None = None
    rest: RestRegime | None = None
    context: ContextScale | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.horizon, int) and self.horizon >= 1 and isinstance(self.window, int) and self.window >= 1):
            raise ValueError(f"a surprise detector needs integer horizon and window >= 1, got {self.horizon}, {self.window}")

    def longest_window(self) -> int:
        """Frames of residuals the longer of the two regimes' windows sums."""
        return max(self.window, self.rest.window if self.rest is not None else 1)

    def history_needed(self, frameskip: int) -> int:
        """Frames of (residual, command, latent) the newest frame's score reads (windows, rest span, context)."""
        span = self.horizon * int(frameskip) + self.window if self.context is not None else 0
        return max(self.longest_window(), self.rest_span(frameskip) + 1, span)

    def frames_needed(self, model: WorldModel) -> int:
        """Frames of history for the newest frame to be scored."""
        return first_scored_frame(model, self.horizon) + self.longest_window()

    def rest_span(self, frameskip: int) -> int:
        """Raw actions a rest frame's windowed residuals consume (0 without a rest regime)."""
        return 0 if self.rest is None else self.horizon * int(frameskip) + self.rest.window - 1

    def rest_frames(self, actions: np.ndarray, frameskip: int) -> np.ndarray:
        """(T,) bool: the frames this detector scores in its rest regime."""
        if self.rest is None:
            return np.zeros(len(actions), dtype=bool)
        return at_rest(actions, self.rest_span(frameskip), self.rest.command_below)

    @property
    def debiased(self) -> bool:
        """True when the rest regime scores residuals minus the model's own error at rest (``rest_bias_series``)."""
        return self.rest is not None and self.rest.debias

    def score(self, residuals: np.ndarray, actions: np.ndarray, frameskip: int, latents: np.ndarray | None = None,
              rest_residuals: np.ndarray | None = None) -> np.ndarray:
        """Surprise of one episode's (T, D) residuals (``residual_series``), given its (T, A) raw actions and, for a
        detector with a context scale, its (T, ...) latents. ``rest_residuals``: what the rest regime scores instead of
        ``residuals`` (a debiased regime needs them: ``residuals - rest_bias_series``)."""
        if rest_residuals is None and self.debiased:
            raise ValueError("this surprise detector's rest regime is debiased: score() needs rest_residuals "
                             "(residuals minus rest_bias_series)")
        moving = surprise_of(window_sum(residuals, self.window), self.whitening)
        if self.context is not None:
            if latents is None:
                raise ValueError("this surprise detector has a context scale: score() needs the episode's latents")
            features = context_features(latents, actions, frameskip, self.horizon, self.window)
            moving = np.fmax(moving, self.context.gain * moving / self.context.expected(features))
        if self.rest is None:
            return moving
        rest_in = residuals if rest_residuals is None else rest_residuals
        resting = surprise_of(window_sum(rest_in, self.rest.window), self.rest.whitening) * self.rest.scale
        return np.where(self.rest_frames(actions, frameskip), resting, moving)

    def rest_residuals(self, model: WorldModel, latents: torch.Tensor, residuals: np.ndarray,
                       std: torch.Tensor | None = None) -> np.ndarray | None:
        """What the rest regime scores for ``residuals`` of ``latents``: None (the residuals themselves) unless the
        regime is debiased."""
        return residuals - rest_bias_series(model, latents, std, self.horizon) if self.debiased else None

    def series(self, model: WorldModel, latents: torch.Tensor, actions: np.ndarray, std: torch.Tensor | None = None) -> np.ndarray:
        """Surprise at every raw frame (NaN until a full context and window), arguments as :func:`surprise_series`."""
        residuals = residual_series(model, latents, actions, std, self.horizon)
        flat = torch.as_tensor(latents).reshape(len(residuals), -1).numpy()
        return self.score(residuals, actions, int(model.frameskip), flat, self.rest_residuals(model, latents, residuals, std))

    def describe(self) -> str:
        window = f", summed over {self.window} frames" if self.window > 1 else ""
        rest = ""
        if self.rest is not None:
            debias = "debiased, " if self.rest.debias else ""
            rest = (f"; at rest {self.rest.window}-frame, {debias}{'whitened' if self.rest.whitening is not None else 'RMS'} "
                    f"x {self.rest.scale:.3g}")
        context = ", context-scaled" if self.context is not None else ""
        return f"{self.horizon}-step{window}, {'whitened' if self.whitening is not None else 'RMS'}{context}{rest}"


class OnlineSurprise:
    """A detector's surprise frame by frame, as a live node receives frames: each frame's residual is
    computed once, when it arrives, and the window sums the ones kept (:meth:`SurpriseDetector.series`
    over the same frames gives the same values; recomputing the whole window for every frame cost the
    world-model node ``window`` predictions per latent).

    ``raw_dim``: values in one raw action; a frame whose context misses an action (a command lost) or
    holds one of another size gets no residual, and the windows that contain it no surprise.
    """

    def __init__(self, detector: SurpriseDetector, model: WorldModel, std: torch.Tensor | np.ndarray, raw_dim: int) -> None:
        self.detector, self.model, self.raw_dim = detector, model, int(raw_dim)
        self.std = torch.as_tensor(np.asarray(std), dtype=torch.float32)
        self.frames: deque[tuple[np.ndarray, np.ndarray | None]] = deque(maxlen=first_scored_frame(model, detector.horizon) + 1)
        # (residual, raw action before the frame, latent, what the rest regime scores)
        self.history: deque[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = deque(
            maxlen=detector.history_needed(int(model.frameskip)))
        self.dim = int(np.prod(model.latent_shape))

    def push(self, z: np.ndarray, action_before: np.ndarray | None) -> float:
        """Surprise of the newest frame ``z``, given the raw action applied since the previous frame (None:
        unknown); NaN until a full context and window have been seen, or when an action is missing."""
        if self.frames:
            self.frames[-1] = (self.frames[-1][0], action_before)
        self.frames.append((np.asarray(z, np.float32), None))
        residual = np.full(self.dim, np.nan)
        resting = residual
        actions = [a for _, a in list(self.frames)[:-1]]
        used = actions[-self.detector.horizon * int(self.model.frameskip) :]  # those the prediction of z consumes
        if len(self.frames) == self.frames.maxlen and all(a is not None and a.size == self.raw_dim for a in used):
            latents = torch.from_numpy(np.stack([f for f, _ in self.frames]))
            filled = [a if a is not None and a.size == self.raw_dim else np.zeros(self.raw_dim, np.float32) for a in actions]
            residuals = residual_series(self.model, latents, np.stack(filled), self.std, self.detector.horizon)
            residual = residuals[-1]
            debiased = self.detector.rest_residuals(self.model, latents, residuals, self.std)
            resting = residual if debiased is None else debiased[-1]
        known = action_before is not None and np.asarray(action_before).size == self.raw_dim
        before = np.asarray(action_before, np.float64).reshape(-1) if known else np.full(self.raw_dim, np.nan)
        self.history.append((residual, before, self.frames[-1][0].reshape(-1), resting))
        if len(self.history) < self.detector.window:
            return float("nan")
        rows = list(self.history)
        # actions[i] moves frame i to i + 1: the action before each kept frame, shifted by one
        actions_after = np.concatenate([np.stack([row[1] for row in rows])[1:], np.full((1, self.raw_dim), np.nan)])
        score = self.detector.score(np.stack([row[0] for row in rows]), actions_after, int(self.model.frameskip),
                                    np.stack([row[2] for row in rows]), np.stack([row[3] for row in rows]))
        return float(score[-1])


def surprise_of(residuals: np.ndarray, whitening: Whitening | None = None) -> np.ndarray:
    """Surprise of (..., D) normalised residuals: whitened when ``whitening`` is given, else their RMS."""
    if whitening is not None:
        return whitening.scores(residuals)
    return np.sqrt((np.asarray(residuals, dtype=np.float64) ** 2).mean(axis=-1))


def encode_frames(model: WorldModel, frames: np.ndarray, proprio: np.ndarray | None = None, chunk: int = 256) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) -> latents (T, *latent_shape), in chunks; proprio goes in when the model fuses it."""
    uses_proprio = bool(getattr(model, "uses_proprio", False))
    out = []
    with torch.no_grad():
        for i in range(0, len(frames), chunk):
            batch = np.asarray(frames[i : i + chunk], dtype=np.uint8)
            if uses_proprio:
                out.append(model.encode(batch, np.asarray(proprio[i : i + chunk], dtype=np.float32)))  # type: ignore[call-arg,index]
            else:
                out.append(model.encode(batch))
    return torch.cat(out).float()


# ------------------------------------------------------------------------------------- statistics
def threshold_for_rate(scores: np.ndarray, rate: float) -> float:
    """Smallest threshold that at most a fraction ``rate`` of the (normal) ``scores`` exceed (strictly)."""
    s = np.sort(np.asarray(scores, dtype=np.float64)[np.isfinite(scores)])
    if s.size == 0:
        raise ValueError("no finite surprise values to calibrate on")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"false-alarm rate must be in [0, 1), got {rate}")
    allowed = math.floor(rate * s.size)  # values allowed above the threshold
    return float(s[s.size - 1 - allowed])


def exceed_rate(scores: np.ndarray, threshold: float) -> float:
    """Fraction of finite scores strictly above ``threshold``."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    return float((s > threshold).mean()) if s.size else 0.0


def auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the ROC curve: probability a positive scores above a negative (ties count half)."""
    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    neg_sorted = np.sort(neg)
    below = np.searchsorted(neg_sorted, pos, side="left")
    equal = np.searchsorted(neg_sorted, pos, side="right") - below
    return float((below + 0.5 * equal).sum() / (pos.size * neg.size))


# ------------------------------------------------------------------------------------- calibration
@dataclass
class SurpriseCalibration:
    """An alarm threshold for one bundle, measured on normal data.

    Attributes:
        threshold: alarm when surprise > threshold.
        horizon: model steps of the surprise it was calibrated for.
        window: frames whose residuals are summed before whitening (1: each frame alone).
        rest_command_below: raw command norm at or below which a command counts as zero (0 and no
            ``rest_whitening``: no rest regime); rest_window, rest_residual_mean, rest_whitening: the rest
            regime's window and whitening; rest_threshold: its own value at the target rate (the rest scale is
            ``threshold / rest_threshold``); rest_frames / rest_false_alarm_rate: its held-out frames and rate;
            rest_debias: the regime scores residuals minus the model's own error at rest (``RestRegime.debias``);
            rest_noise: std (full scale) of the camera noise added to the rest frames it was calibrated on.
        context_mean, context_std, context_layers ({"weight", "bias"} per layer), context_gain: the detector's
            context scale (no layers: none).
        target_false_alarm_rate: per raw step, on the calibration split.
        false_alarm_rate: measured per raw step on a held-out normal split.
        calibration_frames / validation_frames: scored frames in each split.
        model_id / checksums: the bundle it belongs to (its manifest's values).
        data: how the normal data was made (world, policies, episodes, seed).
        command: the command that wrote it (to redo it on a new bundle).
    """

    threshold: float
    horizon: int
    target_false_alarm_rate: float
    false_alarm_rate: float
    calibration_frames: int
    validation_frames: int
    model_id: str
    checksums: dict[str, str]
    data: dict[str, Any] = field(default_factory=dict)
    command: str = ""
    schema_version: int = CALIBRATION_SCHEMA
    quantiles: dict[str, float] = field(default_factory=dict)
    residual_mean: list[float] = field(default_factory=list)
    whitening: list[list[float]] = field(default_factory=list)
    window: int = 1
    rest_command_below: float = 0.0
    rest_window: int = 1
    rest_residual_mean: list[float] = field(default_factory=list)
    rest_whitening: list[list[float]] = field(default_factory=list)
    rest_threshold: float = 0.0
    rest_frames: int = 0
    rest_false_alarm_rate: float = 0.0
    rest_debias: bool = False
    rest_noise: float = 0.0
    context_mean: list[float] = field(default_factory=list)
    context_std: list[float] = field(default_factory=list)
    context_layers: list[dict[str, Any]] = field(default_factory=list)
    context_gain: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def whitener(self) -> Whitening | None:
        """The whitening the threshold was calibrated with (None: plain RMS surprise)."""
        return _whitening(self.residual_mean, self.whitening)

    def rest_regime(self) -> RestRegime | None:
        """The rest regime the threshold was calibrated with (None: every frame scored alike)."""
        if not self.rest_whitening:
            return None
        return RestRegime(self.rest_command_below, self.rest_window, _whitening(self.rest_residual_mean, self.rest_whitening),
                          self.threshold / self.rest_threshold, bool(self.rest_debias))

    def context_scale(self) -> ContextScale | None:
        """The context scale the threshold was calibrated with (None: moving frames scored by their plain value)."""
        if not self.context_layers:
            return None
        layers = tuple((np.asarray(layer["weight"], dtype=np.float64), np.asarray(layer["bias"], dtype=np.float64))
                       for layer in self.context_layers)
        return ContextScale(np.asarray(self.context_mean, dtype=np.float64), np.asarray(self.context_std, dtype=np.float64), layers,
                            float(self.context_gain))

    def detector(self) -> SurpriseDetector:
        """The surprise its threshold applies to."""
        return SurpriseDetector(self.horizon, self.window, self.whitener(), self.rest_regime(), self.context_scale())


def _whitening(mean: list[float], matrix: list[list[float]]) -> Whitening | None:
    if not matrix:
        return None
    return Whitening(np.asarray(mean, dtype=np.float64), np.asarray(matrix, dtype=np.float64))


def calibration_path(bundle_dir: str | Path) -> Path:
    """Where a bundle's calibration lives."""
    return Path(bundle_dir) / CALIBRATION_FILE


def write_calibration(cal: SurpriseCalibration, path: str | Path) -> Path:
    """Write the calibration JSON (sorted keys, one stable format)."""
    path = Path(path)
    path.write_text(json.dumps(cal.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def read_calibration(path: str | Path, manifest: dict[str, Any] | None = None) -> SurpriseCalibration:
    """Load and validate a calibration; with ``manifest`` also check it belongs to that bundle.

    Raises:
        FileNotFoundError: no file.
        ValueError: unreadable, wrong schema, a bad threshold, or calibrated for another bundle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"surprise calibration {path} not found; write one with bench/calibrate_surprise.py --bundle <dir>")
    try:
        data = json.loads(path.read_text())
        cal = SurpriseCalibration(**data)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path} is not a surprise calibration ({exc}); rerun bench/calibrate_surprise.py") from None
    if cal.schema_version != CALIBRATION_SCHEMA:
        raise ValueError(f"{path}: schema_version {cal.schema_version}, expected {CALIBRATION_SCHEMA}; rerun bench/calibrate_surprise.py")
    if not (isinstance(cal.threshold, (int, float)) and math.isfinite(cal.threshold) and cal.threshold > 0):
        raise ValueError(f"{path}: threshold must be a finite number > 0, got {cal.threshold!r}")
    if not (isinstance(cal.horizon, int) and cal.horizon >= 1):
        raise ValueError(f"{path}: horizon must be an integer >= 1, got {cal.horizon!r}")
    if not (isinstance(cal.window, int) and cal.window >= 1):
        raise ValueError(f"{path}: window must be an integer >= 1, got {cal.window!r}")
    for prefix in ("", "rest_"):
        mean, matrix = getattr(cal, prefix + "residual_mean"), getattr(cal, prefix + "whitening")
        if not matrix:
            continue
        try:
            w = _whitening(mean, matrix)
            ok = w is not None and w.matrix.ndim == 2 and w.matrix.shape == (w.mean.size, w.mean.size)
            ok = ok and bool(np.isfinite(w.matrix).all() and np.isfinite(w.mean).all())
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"{path}: {prefix}whitening must be a finite D x D matrix with a D-vector {prefix}residual_mean; "
                             "rerun bench/calibrate_surprise.py")
    if not isinstance(cal.rest_debias, bool):
        raise ValueError(f"{path}: rest_debias must be true or false, got {cal.rest_debias!r}; rerun bench/calibrate_surprise.py")
    if isinstance(cal.rest_noise, bool) or not (isinstance(cal.rest_noise, (int, float)) and math.isfinite(cal.rest_noise)
                                                 and cal.rest_noise >= 0):
        raise ValueError(f"{path}: rest_noise must be a finite number >= 0, got {cal.rest_noise!r}; rerun bench/calibrate_surprise.py")
    if cal.rest_whitening:
        try:
            cal.rest_regime()
        except (TypeError, ValueError, ZeroDivisionError):
            raise ValueError(f"{path}: the rest regime needs rest_threshold > 0, rest_window >= 1 and rest_command_below >= 0, got "
                             f"{cal.rest_threshold!r}, {cal.rest_window!r}, {cal.rest_command_below!r}; rerun bench/calibrate_surprise.py") from None
    if cal.context_layers:
        try:
            scale = cal.context_scale()
        except (TypeError, ValueError, KeyError, ZeroDivisionError):
            scale = None
        if scale is None or isinstance(cal.context_gain, bool):
            raise ValueError(f"{path}: the context scale needs finite context_layers (each a weight and a bias, chained from "
                             "context_mean's features to one output), context_std > 0 and context_gain > 0; rerun bench/calibrate_surprise.py")
    if manifest is not None:
        dims = int(np.prod(manifest.get("latent_shape") or [0]))
        extra = len(cal.context_mean) - dims
        if cal.context_layers and dims and (extra <= 0 or extra % 2):
            raise ValueError(f"{path}: the context scale reads {len(cal.context_mean)} features, not a latent of the bundle's {dims} "
                             "dimensions and two command sums; rerun bench/calibrate_surprise.py")
        for prefix in ("", "rest_"):
            mean = getattr(cal, prefix + "residual_mean")
            if getattr(cal, prefix + "whitening") and dims and len(mean) != dims:
                raise ValueError(f"{path}: {prefix}whitening is for {len(mean)} latent dimensions, the bundle has {dims}; "
                                 "rerun bench/calibrate_surprise.py")
        mismatch = [k for k, v in manifest.get("checksums", {}).items() if cal.checksums.get(k) != v]
        if cal.model_id != manifest.get("model_id") or mismatch:
            raise ValueError(
                f"{path} was calibrated for bundle {cal.model_id!r}, not {manifest.get('model_id')!r}"
                f"{' (files changed: ' + ', '.join(mismatch) + ')' if mismatch else ''}; "
                "recalibrate with bench/calibrate_surprise.py --bundle <dir>"
            )
    return cal


@dataclass(frozen=True)
class AlarmSetting:
    """What an alarm on surprise uses: ``threshold`` (None: no alarm), the ``detector`` that defines the surprise it
    applies to, where the threshold came from (``source``) and, when the calibration could not be used, why
    (``problem``)."""

    threshold: float | None
    detector: SurpriseDetector = field(default_factory=SurpriseDetector)
    source: str = ""
    problem: str = ""


def alarm_setting(path: str | Path, manifest: dict[str, Any] | None, override: float | None,
                  override_name: str) -> AlarmSetting:
    """The alarm of the world-model node and of offline evaluation: the calibration at ``path`` (its detector and
    threshold), with ``override`` (named ``override_name`` in ``source``) replacing the threshold; without a
    usable calibration, the plain 1-step RMS surprise and ``override`` or no alarm."""
    try:
        cal = read_calibration(path, manifest)
    except (FileNotFoundError, ValueError) as exc:
        return AlarmSetting(override, SurpriseDetector(), override_name if override is not None else "", str(exc))
    detector = cal.detector()
    if override is not None:
        return AlarmSetting(override, detector, override_name)
    source = f"{Path(path).name} ({detector.describe()}; false alarms {cal.false_alarm_rate:.2g} per step on normal data)"
    return AlarmSetting(float(cal.threshold), detector, source)
