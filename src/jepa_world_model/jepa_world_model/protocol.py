"""What a planner needs from a world model: the contract between jepa_world_model and jepa_planner.

A loaded model bundle (torch or onnxruntime backend) implements ``WorldModel``.
Planners only use this protocol, so they can be tested with a known linear model.

Conventions:
    * latents are torch float32 tensors of shape (B, *latent_shape); a vector
      latent has latent_shape == (D,), a token latent (N, D);
    * a context is (B, C, *latent_shape), oldest first, C <= ``context``;
    * one model step covers ``frameskip`` raw control steps; its action is the
      concatenation of those raw actions (length ``levels[0].action_dim``);
    * level 0 is the fine level over (stacked) raw actions; level k > 0 jumps
      ``levels[k].stride`` level-0 steps at once over a learned macro-action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@dataclass(frozen=True)
class LevelSpec:
    """One temporal scale of the world model.

    Attributes:
        level: 0 for the fine level, 1.. for coarser ones.
        stride: number of level-0 model steps one step at this level spans.
        action_dim: size of this level's action (stacked raw actions, or macro-action).
        action_low / action_high: bounds of a valid action at this level.
    """

    level: int
    stride: int
    action_dim: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]


@runtime_checkable
class WorldModel(Protocol):
    """Encoder + action-conditioned predictor(s) in one latent space."""

    latent_shape: tuple[int, ...]
    context: int
    frameskip: int
    levels: list[LevelSpec]
    latent_mean: torch.Tensor  # (*latent_shape,) statistics of training latents, for cost normalisation
    latent_std: torch.Tensor

    def encode(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 RGB (B, H, W, 3) -> latents (B, *latent_shape). Raises ValueError on a wrong size."""
        ...

    def predict(self, z_ctx: torch.Tensor, action: torch.Tensor, level: int = 0) -> torch.Tensor:
        """Next latent (B, *latent_shape) from a context (B, C, *latent_shape) and one action (B, A_level)."""
        ...

    def rollout(self, z_ctx: torch.Tensor, actions: torch.Tensor, level: int = 0) -> torch.Tensor:
        """Predicted latents (B, H, *latent_shape) for action sequences (B, H, A_level): one ``predict`` per step."""
        ...

    def encode_macro(self, actions: torch.Tensor, level: int = 1) -> torch.Tensor:
        """Level-0 action chunks (B, stride, A_0) -> macro-actions (B, A_level) of ``level``."""
        ...


def sliding_rollout(model: WorldModel, z_ctx: torch.Tensor, actions: torch.Tensor, level: int = 0) -> torch.Tensor:
    """Generic rollout: feed each prediction back into a context window of ``model.context`` latents."""
    ctx = z_ctx[:, -model.context :]
    outs = []
    for t in range(actions.shape[1]):
        z_next = model.predict(ctx, actions[:, t], level=level)
        outs.append(z_next)
        ctx = torch.cat([ctx, z_next.unsqueeze(1)], dim=1)[:, -model.context :]
    return torch.stack(outs, dim=1)
