"""Position readout of a bundle: a linear (ridge) head latent -> (x, y) in the robot's odometry frame.

Displays need it: the actor draws planned and candidate latent trajectories as paths, which needs a
position for every predicted latent. The head is fitted on episodes of the bundle's own data source
(the simulated world and world options its manifest records, or the rosbags it was trained from)
against the first two proprioception values, which are the odometry position (x, y) the sim node
publishes (frame ``map``; px for the point-mass worlds, metres for point_maze) and the default bag
proprio fields read from ``/odom``. It lives in the manifest as plain JSON numbers with its frame,
units and the R^2 it reaches on held-out episodes: no pickles, and the same numbers serve both
backends.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_common.episodes import EpisodeSet
from jepa_world_model.manifest import MANIFEST, BundleError, write_manifest

RIDGE = 1e-3  # relative to the number of frames, on standardised latents
HELDOUT_FRACTION = 0.2
DEFAULT_EPISODES = 100
DEFAULT_SEED = 7919  # not a training seed: the fit is checked on data the model never saw
# units of proprio[0:2] of the built-in worlds (the sim node publishes them unchanged as odometry)
WORLD_UNITS = {"two_rooms": "px", "multi_room": "px", "point_maze": "m"}
SIM_FRAME = "map"  # frame_id of the sim node's odometry
BAG_FRAME = "odom"  # REP 105 odometry frame of a robot's /odom
log = logging.getLogger(__name__)


@dataclass
class PositionReadout:
    """``position = weights @ latent.flatten() + bias``, in ``frame_id`` and ``units``."""

    weights: np.ndarray  # (2, F)
    bias: np.ndarray  # (2,)
    frame_id: str
    units: str
    r2: float | None = None

    @classmethod
    def from_manifest(cls, spec: dict[str, Any]) -> PositionReadout:
        return cls(
            np.asarray(spec["weights"], np.float64),
            np.asarray(spec["bias"], np.float64),
            str(spec["frame_id"]),
            str(spec["units"]),
            spec.get("r2"),
        )

    def __call__(self, latents: torch.Tensor | np.ndarray, latent_shape: tuple[int, ...]) -> torch.Tensor:
        """Latents (..., *latent_shape) -> positions (..., 2) float32 (any leading batch dims)."""
        z = torch.as_tensor(latents).detach().to("cpu", torch.float32)
        nd = len(latent_shape)
        if z.ndim < nd or tuple(z.shape[z.ndim - nd :]) != tuple(latent_shape):
            raise ValueError(f"latents must be (..., {', '.join(map(str, latent_shape))}), got {tuple(z.shape)}")
        lead = z.shape[: z.ndim - nd]
        flat = z.reshape(*lead, -1)
        w = torch.as_tensor(self.weights, dtype=torch.float32)
        b = torch.as_tensor(self.bias, dtype=torch.float32)
        return flat @ w.T + b


def fit_ridge(x: np.ndarray, y: np.ndarray, ridge: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression on standardised features, folded back: returns (weights (T, F), bias (T,)) for raw x."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mu, sd = x.mean(0), np.maximum(x.std(0), 1e-6)
    xs = (x - mu) / sd
    ym = y.mean(0)
    gram = xs.T @ xs + ridge * len(xs) * np.eye(xs.shape[1])
    ws = np.linalg.solve(gram, xs.T @ (y - ym))  # (F, T)
    weights = (ws / sd[:, None]).T
    return weights, ym - weights @ mu


def r2_score(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-output coefficient of determination."""
    ss_res = ((target - pred) ** 2).sum(0)
    ss_tot = np.maximum(((target - target.mean(0)) ** 2).sum(0), 1e-12)
    return 1.0 - ss_res / ss_tot


def episode_positions(eps: EpisodeSet) -> list[np.ndarray]:
    """Per episode, the (T, 2) odometry position: the first two proprioception values."""
    out = []
    for ep in eps.episodes:
        if ep.proprio.ndim != 2 or ep.proprio.shape[1] < 2:
            raise ValueError(
                f"{ep.source or 'episode'}: proprio has {ep.proprio.shape[-1] if ep.proprio.ndim == 2 else 0} values; "
                "a position readout needs the odometry position (x, y) as its first two"
            )
        out.append(np.asarray(ep.proprio[:, :2], np.float64))
    return out


@torch.no_grad()
def encode_episodes(model: Any, eps: EpisodeSet, chunk: int = 512) -> list[np.ndarray]:
    """Per episode, the flattened latents (T, F) the bundle's encoder gives at run time (eval mode)."""
    out = []
    for ep in eps.episodes:
        parts = []
        for i in range(0, len(ep), chunk):
            proprio = ep.proprio[i : i + chunk] if getattr(model, "uses_proprio", False) else None
            parts.append(model.encode(np.ascontiguousarray(ep.frames[i : i + chunk]), proprio).reshape(-1, math.prod(model.latent_shape)))
        out.append(torch.cat(parts).double().numpy())
    return out


def fit_position_readout(
    latents: list[np.ndarray], positions: list[np.ndarray], heldout_fraction: float = HELDOUT_FRACTION, seed: int = 0,
    ridge: float = RIDGE,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Fit on a random part of the episodes, score R^2 on the others (whole episodes held out).

    Returns:
        (weights (2, F), bias (2,), fit report with r2, r2 per axis, RMSE per axis and frame counts).
    """
    n = len(latents)
    if n < 2:
        raise ValueError(f"a position readout needs at least 2 episodes (one held out), got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_held = min(n - 1, max(1, round(heldout_fraction * n)))
    held, train = order[:n_held], order[n_held:]
    xt, yt = np.concatenate([latents[i] for i in train]), np.concatenate([positions[i] for i in train])
    xv, yv = np.concatenate([latents[i] for i in held]), np.concatenate([positions[i] for i in held])
    weights, bias = fit_ridge(xt, yt, ridge)
    pred = xv @ weights.T + bias
    r2 = r2_score(pred, yv)
    report = {
        "r2": round(float(r2.mean()), 5),
        "r2_xy": [round(float(v), 5) for v in r2],
        "rmse_xy": [round(float(v), 5) for v in np.sqrt(((pred - yv) ** 2).mean(0))],
        "ridge": ridge,
        "train_episodes": len(train),
        "heldout_episodes": len(held),
        "train_frames": len(xt),
        "heldout_frames": len(xv),
    }
    return weights, bias, report


def _data_config(manifest: dict[str, Any]) -> dict[str, Any]:
    prov = manifest.get("provenance") or {}
    data = prov.get("data") or (prov.get("config") or {}).get("data")
    if not isinstance(data, dict) or "source" not in data:
        raise ValueError("the manifest's provenance.data does not say where the training data came from; "
                         "pass episodes (jepa-export fits the readout on its training data)")
    return data


def bundle_episodes(manifest: dict[str, Any], n_episodes: int, seed: int) -> tuple[EpisodeSet, dict[str, Any]]:
    """Episodes of the bundle's own data source: its simulated world (and world options) or its bags.

    Returns:
        (episodes, description with source, world, world_kwargs, policy, frame_id, units).
    """
    data = _data_config(manifest)
    if data["source"] == "sim":
        from jepa_sim.collect import collect_episodes
        from jepa_sim.worlds import make_world

        world, kwargs = str(data.get("world")), dict(data.get("world_kwargs") or {})
        size = int(manifest["input"]["image_size"][0])
        probe = make_world(world, **kwargs)  # ValueError naming an unknown world or a bad option
        spec = probe.spec
        probe.close()
        if spec.image_size != size:
            kwargs["image_size"] = size
        policy, policy_kwargs = data.get("policy", "random_momentum"), dict(data.get("policy_kwargs") or {})
        steps = int(data.get("steps", 100))
        eps = collect_episodes(world, n_episodes, steps, policy=policy, seed=seed, policy_kwargs=policy_kwargs, **kwargs)
        desc = {"source": "sim", "world": world, "world_kwargs": kwargs, "policy": policy, "steps": steps,
                "episodes": n_episodes, "seed": seed, "frame_id": SIM_FRAME, "units": WORLD_UNITS.get(world, "world units")}
        return eps, desc
    if data["source"] == "bags":
        from jepa_world_model.config import BagDataConfig
        from jepa_world_model.data_source import load_episodes

        eps, _ = load_episodes(BagDataConfig.model_validate(data))
        eps = EpisodeSet(eps.episodes[:n_episodes] if n_episodes else eps.episodes, eps.metadata)
        return eps, {"source": "bags", "paths": data.get("paths"), "episodes": len(eps), "frame_id": BAG_FRAME, "units": "m"}
    raise ValueError(f"unknown data source {data['source']!r} in the manifest's provenance.data")


def add_position_readout(
    bundle: str | Path,
    episodes: EpisodeSet | None = None,
    n_episodes: int = DEFAULT_EPISODES,
    seed: int = DEFAULT_SEED,
    frame_id: str | None = None,
    units: str | None = None,
    description: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit the position readout of a bundle and store it in its manifest (replacing an older one).

    The bundle is loaded (and so verified: schema, paths, checksums) first; its files do not change,
    only ``manifest.json`` gains ``readout.position``.

    Args:
        bundle: bundle directory.
        episodes: episodes to fit on (e.g. the training data at export); None collects ``n_episodes``
            of the bundle's own world (or reads its bags) with ``seed``.
        frame_id / units: override the frame and units of the position (default: the data source's).
        description: what ``episodes`` are, for the manifest (when they are given).

    Returns:
        the ``readout.position`` entry written.
    """
    from jepa_world_model.bundle import load_bundle

    root = Path(bundle)
    model = load_bundle(root, backend="torch")
    raw = json.loads((root / MANIFEST).read_text())
    if episodes is None:
        if n_episodes < 2:
            raise ValueError(f"--episodes must be >= 2 (one is held out to measure R^2), got {n_episodes}")
        episodes, desc = bundle_episodes(raw, n_episodes, seed)
    else:
        desc = {"source": "given", "episodes": len(episodes), **(description or {})}
        desc.setdefault("frame_id", SIM_FRAME)
        desc.setdefault("units", WORLD_UNITS.get(str(episodes.metadata.get("world")), "world units"))
    latents = encode_episodes(model, episodes)
    weights, bias, report = fit_position_readout(latents, episode_positions(episodes), seed=seed)
    entry = {
        "weights": [[float(v) for v in row] for row in weights],
        "bias": [float(v) for v in bias],
        "frame_id": frame_id or desc.pop("frame_id"),
        "units": units or desc.pop("units"),
        "r2": report.pop("r2"),
        "target": "proprio[0:2] (odometry position x, y)",
        "fit": {**report, "data": {k: v for k, v in desc.items() if k not in ("frame_id", "units")},
                "created": datetime.now(UTC).isoformat(timespec="seconds")},
    }
    raw["readout"] = {**(raw.get("readout") or {}), "position": entry}
    write_manifest(root, raw)
    return entry


def try_add_position_readout(bundle: Path, **kwargs: Any) -> tuple[dict[str, Any] | None, str]:
    """``add_position_readout`` for export: (entry, "") or (None, reason) when no data is at hand."""
    try:
        return add_position_readout(bundle, **kwargs), ""
    except (ValueError, ImportError, FileNotFoundError, BundleError) as exc:
        reason = " ".join(str(exc).split())
        log.warning("no position readout for %s: %s", bundle, reason)
        return None, reason
