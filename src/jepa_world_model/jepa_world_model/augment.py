"""Training-time photometric augmentation and the invariance term (``augment`` section of the experiment).

A real camera adds noise and changes brightness, contrast and colour from frame to frame; a world
model trained on clean renders moves its latent as far for one intensity level of noise as for a
12-pixel move of the agent. Augmenting every frame independently makes such changes unpredictable
nuisances the JEPA loss learns to drop; the optional invariance term pulls the latents of two
augmented views of the same frame together directly (the VICReg variance term on the main pass
keeps the latents from collapsing while it does).

The scene terms (``background``, ``colour_mix``) and ``blur`` randomise what a camera does not: the
colour of the floor behind the scene, the colours of walls and agent, and focus. They are drawn per
frame like the rest, so the model cannot spend latent dimensions on them (a colour drawn once per
episode would be a per-episode constant that the anti-collapse term would happily encode).
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

    if cfg.background > 0:  # a floor colour painted where the scene is dark, as the camera factor does
        x = x + (1.0 - x.amax(dim=-1, keepdim=True)) * uniform(0.0, cfg.background, 1, 1, 3)
    if cfg.colour_mix > 0:  # recoloured scene: a random colour matrix near the identity
        mix = torch.eye(3, device=dev) + uniform(-cfg.colour_mix, cfg.colour_mix, 3, 3)
        x = torch.einsum("nhwc,ndc->nhwd", x, mix)
    if cfg.blur > 0:
        x = _blur(x, uniform(0.0, cfg.blur))
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


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of float frames (N, H, W, C), frame n with std ``sigma[n]`` px (0 = unchanged)."""
    radius = max(1, int(torch.ceil(3 * sigma.max()).item()))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    taps = torch.exp(-0.5 * (offsets / sigma.clamp_min(1e-3)[:, None]) ** 2)
    taps = taps / taps.sum(dim=1, keepdim=True)  # (N, K)
    n, h, w, c = x.shape
    y = x.permute(0, 3, 1, 2).reshape(1, n * c, h, w)
    k = taps.repeat_interleave(c, dim=0)[:, None]  # (N*C, 1, K): one kernel per frame and channel
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), k[:, :, None, :], groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), k[:, :, :, None], groups=n * c)
    return y.reshape(n, c, h, w).permute(0, 2, 3, 1)


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
