"""Small heads around the world model: macro-action encoder, noise posterior, inverse dynamics, visual decoder."""

from __future__ import annotations

import math

import torch
from torch import nn


class MacroActionEncoder(nn.Module):
    """A chunk of ``stride`` level-0 actions (B, stride, A0) -> a bounded macro-action (B, M) in [-1, 1]."""

    def __init__(self, stride: int, action_dim: int, macro_dim: int, hidden: int = 128, action_scale: float = 1.0) -> None:
        super().__init__()
        self.stride, self.action_dim, self.macro_dim = stride, action_dim, macro_dim
        self.action_scale = float(action_scale)  # raw actions are divided by it (a config constant, not a weight)
        self.net = nn.Sequential(
            nn.Linear(stride * action_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, macro_dim)
        )

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        if actions.shape[1:] != (self.stride, self.action_dim):
            raise ValueError(
                f"macro-action encoder expects (B, {self.stride}, {self.action_dim}) action chunks, got {tuple(actions.shape)}"
            )
        flat = actions.reshape(actions.shape[0], -1)
        return torch.tanh(self.net(flat if self.action_scale == 1.0 else flat / self.action_scale))


class NoisePosterior(nn.Module):
    """q(u | z_t, z_{t+1}): infers the latent variable that explains a transition (trained with a KL to N(0, I))."""

    def __init__(self, latent_shape: tuple[int, ...], noise_dim: int, hidden: int = 128) -> None:
        super().__init__()
        flat = math.prod(latent_shape)
        self.net = nn.Sequential(nn.Linear(2 * flat, hidden), nn.GELU(), nn.Linear(hidden, 2 * noise_dim))

    def forward(self, z_now: torch.Tensor, z_next: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = z_now.shape[0]
        mu, logvar = self.net(torch.cat([z_now.reshape(b, -1), z_next.reshape(b, -1)], dim=1)).chunk(2, dim=1)
        return mu, logvar.clamp(-8.0, 8.0)


class InverseDynamics(nn.Module):
    """(z_t, z_{t+1}) -> a_t: an auxiliary loss that makes the latent keep what actions change."""

    def __init__(self, latent_shape: tuple[int, ...], action_dim: int, hidden: int = 128) -> None:
        super().__init__()
        flat = math.prod(latent_shape)
        self.net = nn.Sequential(nn.Linear(2 * flat, hidden), nn.GELU(), nn.Linear(hidden, action_dim))

    def forward(self, z_now: torch.Tensor, z_next: torch.Tensor) -> torch.Tensor:
        b = z_now.shape[0]
        return self.net(torch.cat([z_now.reshape(b, -1), z_next.reshape(b, -1)], dim=1))


class LatentDecoder(nn.Module):
    """Latent -> RGB image in [0, 1] (B, H, W, 3). For pictures of imagined futures only, never for planning."""

    def __init__(self, latent_shape: tuple[int, ...], image_size: int, width: int = 32) -> None:
        super().__init__()
        self.image_size = image_size
        self.token_latent = len(latent_shape) == 2
        dim = latent_shape[-1]
        stages = max(1, int(math.log2(max(image_size, 8) // 4)))
        self.start = nn.Linear(dim, 4 * 4 * width * 2)
        self.width = width
        layers: list[nn.Module] = []
        ch = width * 2
        for i in range(stages):
            out = 3 if i == stages - 1 else max(width // 2, 8) if i >= stages - 2 else width
            layers.append(nn.ConvTranspose2d(ch, out, 4, stride=2, padding=1))
            if i < stages - 1:
                layers.append(nn.GELU())
            ch = out
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.token_latent:
            z = z.mean(dim=1)  # pictures only need a summary of the tokens
        h = self.start(z).view(z.shape[0], self.width * 2, 4, 4)
        x = self.deconv(h)
        if x.shape[-1] != self.image_size:
            x = nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return torch.sigmoid(x).permute(0, 2, 3, 1)
