"""Camera perturbations: what a real camera adds to a clean render, as a wrapper usable on any world.

``CameraPerturbation`` changes uint8 RGB images (background colour, blur, gamma, contrast,
brightness, colour shift, sensor noise, in that order: scene, optics, sensor response, read-out);
``PerturbedCamera`` wraps a ``World`` so every observation and the goal image go through it, with
noise drawn from the episode seed so an evaluation stays reproducible. The world itself (dynamics,
success test, plots) is untouched: the model is tested on what it sees, nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from jepa_sim.worlds.base import Observation, StepInfo, World


@dataclass(frozen=True)
class CameraPerturbation:
    """Image changes, all in units of full scale (1.0 = 255 intensity levels).

    Attributes:
        noise: std of additive Gaussian sensor noise (3/255 ~ 0.0118).
        brightness: multiplicative gain on intensities (1.2 = +20%).
        contrast: scale of deviations from the image's mean grey level.
        gamma: intensity exponent (x ** gamma on [0, 1]).
        shift: additive per-channel offset (r, g, b).
        background: RGB painted behind the scene where it is dark (weighted by 1 - brightest channel), or None.
        blur: std (px) of a Gaussian blur (optics out of focus).
    """

    noise: float = 0.0
    brightness: float = 1.0
    contrast: float = 1.0
    gamma: float = 1.0
    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
    background: tuple[float, float, float] | None = None
    blur: float = 0.0

    def __post_init__(self) -> None:
        for name in ("noise", "blur"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"camera {name} must be >= 0, got {getattr(self, name)}")
        for name in ("brightness", "contrast", "gamma"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"camera {name} must be > 0, got {getattr(self, name)}")
        if len(self.shift) != 3 or not np.isfinite(self.shift).all():
            raise ValueError(f"camera shift must be 3 finite numbers (r, g, b), got {self.shift}")
        if self.background is not None and (len(self.background) != 3 or not np.isfinite(self.background).all()):
            raise ValueError(f"camera background must be 3 numbers in [0, 1] (r, g, b), got {self.background}")

    @property
    def is_identity(self) -> bool:
        """True when ``apply`` returns its input unchanged."""
        return self == CameraPerturbation()

    def apply(self, images: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Perturb uint8 images (..., H, W, 3); ``rng`` draws the noise (fresh entropy when None)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim < 3 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (..., H, W, 3), got {images.dtype} {images.shape}")
        if self.is_identity:
            return images
        x = images.astype(np.float32) / np.float32(255.0)
        if self.background is not None:
            weight = 1.0 - x.max(axis=-1, keepdims=True)
            x = x + weight * np.asarray(self.background, dtype=np.float32)
        if self.blur > 0:
            x = gaussian_blur(x, self.blur)
        if self.gamma != 1.0:
            x = np.clip(x, 0.0, 1.0) ** np.float32(self.gamma)
        if self.contrast != 1.0:
            mean = x.mean(axis=(-3, -2, -1), keepdims=True)
            x = mean + (x - mean) * np.float32(self.contrast)
        if self.brightness != 1.0:
            x = x * np.float32(self.brightness)
        if any(self.shift):
            x = x + np.asarray(self.shift, dtype=np.float32)
        if self.noise > 0:
            rng = rng if rng is not None else np.random.default_rng()
            x = x + rng.normal(0.0, self.noise, size=x.shape).astype(np.float32)
        return (np.clip(x, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of float images (..., H, W, C) with edge padding."""
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    for axis in (-3, -2):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(x, pad, mode="edge")
        n = x.shape[axis]
        out = np.zeros_like(x)
        for k, w in enumerate(taps):
            out += w * np.take(padded, np.arange(k, k + n), axis=axis)
        x = out
    return x


class PerturbedCamera(World):
    """Any world seen through a ``CameraPerturbation``; everything but the images is the wrapped world's.

    Args:
        world: the world to wrap.
        perturbation: what the camera does to every image (observations and the goal image).
    """

    def __init__(self, world: World, perturbation: CameraPerturbation) -> None:
        self.world = world
        self.perturbation = perturbation
        self.spec = world.spec
        self._rng = np.random.default_rng()

    def __getattr__(self, name: str) -> Any:  # layout, world_to_pixel, batch, task_length ... of the wrapped world
        if name == "world":  # not set yet (e.g. during unpickling)
            raise AttributeError(name)
        return getattr(self.world, name)

    def _see(self, obs: Observation) -> Observation:
        return Observation(image=self.perturbation.apply(obs.image, self._rng), proprio=obs.proprio)

    def reset(self, seed: int | None = None, goal: np.ndarray | None = None, **kwargs: Any) -> Observation:
        self._rng = np.random.default_rng(None if seed is None else [int(seed), 13])
        return self._see(self.world.reset(seed=seed, goal=goal, **kwargs))

    def step(self, action: np.ndarray) -> tuple[Observation, StepInfo]:
        obs, info = self.world.step(action)
        return self._see(obs), info

    def goal_observation(self) -> Observation:
        return self._see(self.world.goal_observation())

    def is_success(self) -> bool:
        return self.world.is_success()

    def true_state(self) -> np.ndarray:
        return self.world.true_state()

    @property
    def goal_state(self) -> np.ndarray:
        return self.world.goal_state

    def render_map(self) -> np.ndarray:
        return self.world.render_map()  # plots show the true layout, not the camera's view

    def close(self) -> None:
        self.world.close()
