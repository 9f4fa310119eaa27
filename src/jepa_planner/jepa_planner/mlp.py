"""A small MLP over (latent, goal latent) pairs, shared by the critic and the distilled policy."""

from __future__ import annotations

import torch
from torch import nn


class LatentGoalMLP(nn.Module):
    """MLP on the concatenation of the normalised flattened latent and goal latent.

    Args:
        latent_shape: shape of one latent.
        out_dim: output size.
        hidden: hidden width; depth: hidden layers.
        latent_mean / latent_std: normalisation (identity when None).
        difference: also feed (goal - latent), normalised: a small offset to the goal is then an input the
            net need not learn to subtract (the policy's precision in the last pixels before the goal).
    """

    def __init__(
        self,
        latent_shape: tuple[int, ...],
        out_dim: int,
        hidden: int = 128,
        depth: int = 2,
        latent_mean: torch.Tensor | None = None,
        latent_std: torch.Tensor | None = None,
        difference: bool = False,
    ) -> None:
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        flat = int(torch.tensor(self.latent_shape).prod())
        mean = torch.zeros(self.latent_shape) if latent_mean is None else torch.as_tensor(latent_mean, dtype=torch.float32)
        std = torch.ones(self.latent_shape) if latent_std is None else torch.as_tensor(latent_std, dtype=torch.float32)
        self.register_buffer("latent_mean", mean.reshape(self.latent_shape).clone())
        self.register_buffer("latent_std", std.reshape(self.latent_shape).clamp_min(1e-6).clone())
        layers: list[nn.Module] = []
        self.difference = bool(difference)
        width = (3 if self.difference else 2) * flat
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LayerNorm(hidden), nn.Mish()]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """(B, *L), (B, *L) -> (B, out_dim)."""
        nd = len(self.latent_shape)
        if tuple(z.shape[-nd:]) != self.latent_shape or tuple(goal.shape[-nd:]) != self.latent_shape:
            raise ValueError(f"latents must end with shape {self.latent_shape}, got {tuple(z.shape)} and {tuple(goal.shape)}")
        zn = ((z - self.latent_mean) / self.latent_std).flatten(start_dim=z.dim() - nd)
        gn = ((goal - self.latent_mean) / self.latent_std).flatten(start_dim=goal.dim() - nd)
        gn = gn.expand_as(zn)
        return self.net(torch.cat([zn, gn, gn - zn] if self.difference else [zn, gn], dim=-1))
