"""Training-time photometric augmentation and the invariance term (``augment`` section of the experiment).

A real camera adds noise and changes brightness, contrast and colour from frame to frame; a world
model trained on clean renders moves its latent as far for one intensity level of noise as for a
12-pixel move of the agent. Augmenting every frame independently makes such changes unpredictable
nuisances the JEPA loss learns to drop; the optional invariance term pulls the latents of two
augmented views of the same frame together directly (the VICReg variance term on the main pass
keeps the latents from collapsing while it does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from jepa_world_model.config import AugmentConfig


def augment_frames(frames: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Photometrically augment uint8 frames (..., H, W, 3), each frame with its own random levels, or with
    ``cfg.per_window`` each window (first axis of (B, T, H, W, 3)) with its own levels shared by its frames
    (the noise pattern still differs per frame).

    Returns uint8 frames of the same shape (quantised like a camera's output); unchanged when disabled.
    """
    if not cfg.enabled or frames.numel() == 0:
        return frames
    lead = frames.shape[:-3]
    x = frames.reshape(-1, *frames.shape[-3:]).to(torch.float32) / 255.0  # (N, H, W, 3)
    n, dev = x.shape[0], x.device
    per_window = cfg.per_window and len(lead) >= 2
    draws = lead[0] if per_window else n
    repeat = n // draws  # frames sharing one draw (consecutive in the flattened order)

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        u = lo + (hi - lo) * torch.rand(draws, *shape, generator=generator, device=dev)
        return u.repeat_interleave(repeat, dim=0)

    if cfg.gamma > 0:
        log_g = uniform(-1.0, 1.0, 1, 1, 1) * torch.log1p(torch.tensor(cfg.gamma))
        x = x.clamp(0.0, 1.0) ** torch.exp(log_g)
    if cfg.contrast > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = mean + (x - mean) * uniform(1 - cfg.contrast, 1 + cfg.contrast, 1, 1, 1)
    if cfg.brightness > 0:
        x = x * uniform(1 - cfg.brightness, 1 + cfg.brightness, 1, 1, 1)
    if cfg.colour_shift > 0:
        x = x + uniform(-cfg.colour_shift, cfg.colour_shift, 1, 1, 3)
    if cfg.noise_std > 0:
        std = uniform(0.0, cfg.noise_std, 1, 1, 1)
        x = x + std * torch.randn(x.shape, generator=generator, device=dev)
    out = (x.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
    if cfg.probability < 1.0:
        keep = (torch.rand(draws, generator=generator, device=dev) >= cfg.probability).repeat_interleave(repeat)
        out[keep] = frames.reshape(-1, *frames.shape[-3:])[keep]
    return out.reshape(*lead, *frames.shape[-3:])


def invariance_loss(encoder: torch.nn.Module, frames: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Mean squared latent difference between two augmented views of up to ``invariance_frames`` frames.

    Args:
        encoder: uint8 (N, H, W, 3) -> latents (N, ...); gradients flow through both views.
        frames: clean uint8 frames (B, T, H, W, 3) of the batch; the first frame of each window is used
            (then further time steps until ``invariance_frames`` frames are taken).
    """
    flat = frames.transpose(0, 1).reshape(-1, *frames.shape[-3:])[: cfg.invariance_frames]
    always = cfg.model_copy(update={"probability": 1.0, "enabled": True})
    views = torch.cat([augment_frames(flat, always), augment_frames(flat, always)])
    z = encoder(views)
    za, zb = z[: len(flat)], z[len(flat) :]
    return F.mse_loss(za, zb)
