"""Small known world models implementing the WorldModel protocol, for tests, examples and benchmarks.

``LinearWorldModel``: z' = A z + B a, so the optimum of a quadratic goal cost is known in closed form.
``SlowWorldModel``: wraps a model and sleeps in ``predict`` (to exercise time budgets).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from jepa_world_model.protocol import LevelSpec, sliding_rollout


class LinearWorldModel:
    """A vector-latent linear model with optional coarser levels (macro-action = sum of the chunk's actions).

    Args:
        dim: latent size D.
        action_dim: level-0 action size A.
        a_matrix / b_matrix: (D, D) and (D, A) dynamics; identity-like defaults (z' = z + B a).
        bound: symmetric box bound of level-0 actions.
        strides: strides of levels 1.. (level k predicts ``stride`` level-0 steps with a summed action).
    """

    def __init__(
        self,
        dim: int = 2,
        action_dim: int = 2,
        a_matrix: torch.Tensor | None = None,
        b_matrix: torch.Tensor | None = None,
        bound: float = 1.0,
        strides: tuple[int, ...] = (),
        context: int = 1,
    ) -> None:
        self.latent_shape = (dim,)
        self.context = context
        self.frameskip = 1
        self.A = torch.eye(dim) if a_matrix is None else torch.as_tensor(a_matrix, dtype=torch.float32)
        self.B = torch.eye(dim, action_dim) if b_matrix is None else torch.as_tensor(b_matrix, dtype=torch.float32)
        lo, hi = (-bound,) * action_dim, (bound,) * action_dim
        self.levels = [LevelSpec(0, 1, action_dim, lo, hi)]
        for k, stride in enumerate(strides, start=1):
            self.levels.append(LevelSpec(k, stride, action_dim, tuple(x * stride for x in lo), tuple(x * stride for x in hi)))
        self.latent_mean = torch.zeros(dim)
        self.latent_std = torch.ones(dim)
        self.predict_calls = 0

    def encode(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Not an image model: the mean of the first D pixels' channels, only so the protocol is complete."""
        x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
        return x.flatten(1)[:, : self.latent_shape[0]] / 255.0

    def predict(self, z_ctx: torch.Tensor, action: torch.Tensor, level: int = 0) -> torch.Tensor:
        self.predict_calls += 1
        z = z_ctx[:, -1]
        if level == 0:
            return z @ self.A.T + action @ self.B.T
        # Level k: ``stride`` level-0 steps with the macro-action spread evenly (exact when A = I).
        stride = self.levels[level].stride
        for _ in range(stride):
            z = z @ self.A.T + (action / stride) @ self.B.T
        return z

    def rollout(self, z_ctx: torch.Tensor, actions: torch.Tensor, level: int = 0) -> torch.Tensor:
        return sliding_rollout(self, z_ctx, actions, level)

    def encode_macro(self, actions: torch.Tensor, level: int = 1) -> torch.Tensor:
        return actions.sum(dim=1)


class SlowWorldModel:
    """Delegates to ``inner`` but sleeps ``delay`` seconds per ``predict`` call."""

    def __init__(self, inner, delay: float = 0.01) -> None:
        self.inner, self.delay = inner, delay
        for name in ("latent_shape", "context", "frameskip", "levels", "latent_mean", "latent_std"):
            setattr(self, name, getattr(inner, name))

    def encode(self, images):
        return self.inner.encode(images)

    def predict(self, z_ctx, action, level=0):
        time.sleep(self.delay)
        return self.inner.predict(z_ctx, action, level)

    def rollout(self, z_ctx, actions, level=0):
        return sliding_rollout(self, z_ctx, actions, level)

    def encode_macro(self, actions, level=1):
        return self.inner.encode_macro(actions, level)
