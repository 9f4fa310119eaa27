"""A tiny toy world for tests: a Gaussian dot on a small image, moved by additive actions.

Its latent-space truth is known (position), so tests can check what a model learned, and it
is small enough that a few hundred training steps take seconds on one core. Used by this
package's tests; planners' tests may use it too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from jepa_common.episodes import Episode, EpisodeSet
from jepa_world_model.config import ExperimentConfig, parse_config

TOY_SIZE = 16
TOY_LOW, TOY_HIGH = 2.0, 13.0


def render_dots(pos: np.ndarray, size: int = TOY_SIZE, sigma: float = 1.0) -> np.ndarray:
    """Positions (N, 2) as (x, y) in px -> uint8 images (N, size, size, 3), dot in the red and green channels."""
    grid = np.arange(size, dtype=np.float32) + 0.5
    gx = np.exp(-((grid[None, :] - pos[:, :1]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((grid[None, :] - pos[:, 1:2]) ** 2) / (2 * sigma**2))
    img = gy[:, :, None] * gx[:, None, :]
    img = (255 * img / img.max(axis=(1, 2), keepdims=True)).astype(np.uint8)
    return np.stack([img, img, np.zeros_like(img)], axis=-1)


def toy_episodes(n_episodes: int, steps: int, seed: int = 0, action_scale: float = 0.6, constant: bool = False) -> EpisodeSet:
    """Random-walk episodes; position = clip(position + action). ``constant`` freezes every frame (a collapsed world)."""
    rng = np.random.default_rng(seed)
    eps = []
    for i in range(n_episodes):
        pos = np.empty((steps + 1, 2), np.float32)
        pos[0] = rng.uniform(5.0, 10.0, 2)
        acts = np.zeros((steps + 1, 2), np.float32)
        acts[:steps] = rng.uniform(-action_scale, action_scale, (steps, 2))
        for t in range(steps):
            pos[t + 1] = np.clip(pos[t] + acts[t], TOY_LOW, TOY_HIGH)
        if constant:
            pos[:] = pos[0]
        frames = render_dots(pos)
        eps.append(Episode(frames=frames, actions=acts, proprio=pos.copy(), state=pos.copy(), source=f"toy episode {i}"))
    return EpisodeSet(eps, metadata={"world": "toy"})


TOY_META = {
    "source": "sim",
    "world": "toy",
    "raw_action_low": [-0.6, -0.6],
    "raw_action_high": [0.6, 0.6],
    "action_norm_max": None,
}


def toy_config(**overrides: object) -> ExperimentConfig:
    """A small experiment config for 16 px toy images; ``overrides`` are dotted keys."""
    raw: dict = {
        "name": "toy",
        "seed": 0,
        "data": {"source": "sim", "world": "toy", "episodes": 12, "steps": 30, "val_fraction": 0.25},
        "model": {
            "frameskip": 2,
            "context": 1,
            "encoder": {"type": "cnn", "latent_dim": 8, "channels": [8, 16]},
            "predictor": {"type": "mlp", "hidden": 32, "layers": 1},
            "levels": [{"stride": 1}, {"stride": 2, "macro_dim": 2, "rollout_steps": 1}],
        },
        "train": {
            "epochs": 2,
            "batch_size": 16,
            "horizon": 2,
            "steps_per_epoch": 4,
            "val_windows": 32,
            "num_threads": 1,
            "var_weight": 10.0,
            "cov_weight": 1.0,
        },
        "decoder": {"enabled": True, "epochs": 1, "width": 8},
    }
    for key, value in overrides.items():
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return parse_config(raw)


class CentroidEncoder(torch.nn.Module):
    """Intensity-weighted centroid of the red channel: a fixed 'encoder' whose latent is the dot position."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        w = images[..., 0].float()
        grid = torch.arange(images.shape[1], dtype=torch.float32) + 0.5
        total = w.sum(dim=(1, 2))
        x = (w.sum(dim=1) * grid).sum(dim=1) / total
        y = (w.sum(dim=2) * grid).sum(dim=1) / total
        return torch.stack([x, y], dim=1)


def export_centroid_onnx(path: Path) -> Path:
    """The centroid encoder as an ONNX file taking uint8 NHWC images (a user's 'own encoder')."""
    torch.onnx.export(
        CentroidEncoder(),
        (torch.zeros(2, TOY_SIZE, TOY_SIZE, 3, dtype=torch.uint8),),
        str(path),
        input_names=["images"],
        output_names=["latent"],
        dynamic_axes={"images": {0: "b"}, "latent": {0: "b"}},
        opset_version=17,
        dynamo=False,
    )
    return path
