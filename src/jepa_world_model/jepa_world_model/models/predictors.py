"""Action-conditioned one-step predictors: z_{t+1} = z_t + f(z_{t-C+1..t}, a_t[, u]).

Both predictors share one signature, ``forward(z_ctx, action, noise=None)``, so
the trainer, the exporter and ``protocol.sliding_rollout`` treat them alike.
``noise`` is the optional latent variable for stochastic futures (zeros at plan time).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from jepa_world_model.config import PredictorConfig


def pad_context(z_ctx: torch.Tensor, context: int) -> torch.Tensor:
    """Keep the last ``context`` latents; repeat the oldest when fewer are given (start of an episode)."""
    if z_ctx.shape[1] >= context:
        return z_ctx[:, z_ctx.shape[1] - context :]
    missing = context - z_ctx.shape[1]
    return torch.cat([z_ctx[:, :1].expand(-1, missing, *z_ctx.shape[2:]), z_ctx], dim=1)


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class MLPPredictor(nn.Module):
    """Residual MLP over the flattened context and the action: cheap enough for CPU planning.

    ``static_dims``: the last that many latent dimensions (an encoder's layout part) are an input only, carried
    unchanged from the last context frame to the prediction.
    """

    def __init__(
        self,
        cfg: PredictorConfig,
        latent_shape: tuple[int, ...],
        context: int,
        action_dim: int,
        action_scale: float = 1.0,
        static_dims: int = 0,
    ) -> None:
        super().__init__()
        self.latent_shape, self.context, self.action_dim, self.noise_dim = tuple(latent_shape), context, action_dim, cfg.noise_dim
        self.action_scale = float(action_scale)  # a constant of the config, not a weight (old checkpoints load)
        flat = math.prod(latent_shape)
        if static_dims and len(latent_shape) != 1:
            raise ValueError(f"static (layout) dimensions need a vector latent, got shape {tuple(latent_shape)}")
        self.static_dims = static_dims
        self.inp = nn.Linear(flat * context + action_dim + cfg.noise_dim, cfg.hidden)
        self.blocks = nn.Sequential(*[ResidualBlock(cfg.hidden) for _ in range(cfg.layers)])
        self.out = nn.Sequential(nn.LayerNorm(cfg.hidden), nn.Linear(cfg.hidden, flat - static_dims))

    def forward(self, z_ctx: torch.Tensor, action: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        ctx = pad_context(z_ctx, self.context)
        b = ctx.shape[0]
        parts = [ctx.reshape(b, -1), action if self.action_scale == 1.0 else action / self.action_scale]
        if self.noise_dim:
            parts.append(noise if noise is not None else ctx.new_zeros(b, self.noise_dim))
        delta = self.out(self.blocks(self.inp(torch.cat(parts, dim=1))))
        if self.static_dims:
            last = ctx[:, -1]
            moving = last[:, : -self.static_dims] + delta
            return torch.cat([moving, last[:, -self.static_dims :]], dim=1)
        return ctx[:, -1] + delta.view(b, *self.latent_shape)


def frame_causal_mask(n_frames: int, tokens_per_frame: int) -> torch.Tensor:
    """Boolean (L, L) mask, True where attention is *blocked*: a token sees its own and earlier frames only."""
    frame_of = torch.arange(n_frames * tokens_per_frame) // tokens_per_frame
    return frame_of.unsqueeze(1) < frame_of.unsqueeze(0)


class CausalTransformerPredictor(nn.Module):
    """Frame-causal transformer over vector latents (1 token per frame) or token latents (N per frame).

    The action (and noise) embedding is added to the tokens of the frame it follows,
    so the output at frame t predicts frame t+1 from frames <= t.
    """

    def __init__(
        self, cfg: PredictorConfig, latent_shape: tuple[int, ...], context: int, action_dim: int, action_scale: float = 1.0
    ) -> None:
        super().__init__()
        if cfg.hidden % cfg.heads:
            raise ValueError(f"predictor.hidden ({cfg.hidden}) must be divisible by predictor.heads ({cfg.heads})")
        self.latent_shape, self.context, self.action_dim, self.noise_dim = tuple(latent_shape), context, action_dim, cfg.noise_dim
        self.action_scale = float(action_scale)
        self.tokens_per_frame = latent_shape[0] if len(latent_shape) == 2 else 1
        dim = latent_shape[-1]
        self.inp = nn.Linear(dim, cfg.hidden)
        self.cond = nn.Linear(action_dim + cfg.noise_dim, cfg.hidden)
        self.time_pos = nn.Parameter(torch.randn(1, context, 1, cfg.hidden) * 0.02)
        self.token_pos = nn.Parameter(torch.randn(1, 1, self.tokens_per_frame, cfg.hidden) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.hidden, cfg.heads, 2 * cfg.hidden, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(cfg.hidden), nn.Linear(cfg.hidden, dim))
        self.register_buffer("mask", frame_causal_mask(context, self.tokens_per_frame), persistent=False)

    def forward_frames(self, z_seq: torch.Tensor, frame_cond: torch.Tensor) -> torch.Tensor:
        """Predictions for every frame: (B, T, *latent) from latents (B, T, *latent) and per-frame conditions (B, T, A+U)."""
        b, t = z_seq.shape[:2]
        if t > self.context:
            raise ValueError(f"at most {self.context} context frames, got {t}")
        tok = z_seq.reshape(b, t, self.tokens_per_frame, -1)
        h = self.inp(tok) + self.time_pos[:, :t] + self.token_pos + self.cond(frame_cond).unsqueeze(2)
        n = t * self.tokens_per_frame
        h = self.blocks(h.reshape(b, n, -1), mask=self.mask[:n, :n])
        delta = self.out(h).reshape(b, t, self.tokens_per_frame, -1)
        return z_seq + delta.reshape(z_seq.shape)

    def forward(self, z_ctx: torch.Tensor, action: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        ctx = pad_context(z_ctx, self.context)
        b, t = ctx.shape[:2]
        cond = action if self.action_scale == 1.0 else action / self.action_scale
        if self.noise_dim:
            cond = torch.cat([cond, noise if noise is not None else action.new_zeros(b, self.noise_dim)], dim=1)
        # earlier frames get a zero condition: the protocol gives only the action after the last frame
        frame_cond = torch.cat([cond.new_zeros(b, t - 1, cond.shape[1]), cond.unsqueeze(1)], dim=1)
        return self.forward_frames(ctx, frame_cond)[:, -1]


def build_predictor(
    cfg: PredictorConfig,
    latent_shape: tuple[int, ...],
    context: int,
    action_dim: int,
    action_scale: float = 1.0,
    static_dims: int = 0,
) -> nn.Module:
    """Predictor named by ``cfg.type``; its actions are divided by ``action_scale`` first; the last
    ``static_dims`` latent dimensions (a layout part) are carried unchanged (MLP predictor only)."""
    if cfg.type == "mlp":
        return MLPPredictor(cfg, latent_shape, context, action_dim, action_scale, static_dims)
    if static_dims:
        raise ValueError("encoder.layout_dim needs predictor.type 'mlp' (the transformer predictor has no layout part)")
    return CausalTransformerPredictor(cfg, latent_shape, context, action_dim, action_scale)
