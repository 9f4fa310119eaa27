"""The trainable JEPA world model: encoder, one predictor per level, macro-action encoders, heads.

``forward(batch)`` returns the training loss, so ``DistributedDataParallel`` wraps the
whole thing without any special casing.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from jepa_world_model.config import ExperimentConfig
from jepa_world_model.models.encoders import build_encoder
from jepa_world_model.models.heads import InverseDynamics, LatentDecoder, MacroActionEncoder, NoisePosterior
from jepa_world_model.models.predictors import build_predictor

LAYOUT_STD = 1.0e6
"""``latent_std`` written for a layout part's dimensions: every normalised distance (plan costs, goal and stall
tests, surprise) divides by it, so the layout, context rather than state, does not count in them."""


@dataclass(frozen=True)
class DataDims:
    """What the model needs to know about the data: image side, raw action and proprio sizes."""

    image_size: int
    raw_action_dim: int
    proprio_dim: int


def vicreg_variance(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Hinge on the per-dimension std (target 1): the term that keeps latents from collapsing to a point."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(1.0 - std).mean()


def temporal_variance(
    z: torch.Tensor, target: float, eps: float = 1e-4, per_dim: bool = False, per_window: bool = False
) -> torch.Tensor:
    """Hinge on the std of latents (B, T, D) around their own window's mean.

    VICReg's variance term counts spread across the whole batch, which a feature that is constant within
    an episode (a layout drawn per episode, like a randomised door) provides for free while costing no
    prediction error: then nothing makes the latent follow the agent. Spread within a window can only
    come from what changes during it. Default: one hinge on the RMS over dimensions, so some dimensions
    may stay per-episode; ``per_dim``: a hinge per dimension, averaged (VICReg's form), so every
    dimension has to follow what moves; ``per_window``: one hinge per window on its own RMS spread,
    averaged, so no window (no layout) may collapse while the others carry the batch.
    """
    dev = z - z.mean(dim=1, keepdim=True)
    if per_window:
        return F.relu(target - torch.sqrt(dev.pow(2).mean(dim=(1, 2)) + eps)).mean()
    var = dev.reshape(-1, z.shape[-1]).var(dim=0)
    if per_dim:
        return F.relu(target - torch.sqrt(var + eps)).mean()
    return F.relu(target - torch.sqrt(var.mean() + eps))


def cross_correlation(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Mean squared batch correlation between every column of ``a`` (N, Da) and every column of ``b`` (N, Db)."""
    ac, bc = a - a.mean(dim=0), b - b.mean(dim=0)
    ac = ac / torch.sqrt(ac.pow(2).mean(dim=0) + eps)
    bc = bc / torch.sqrt(bc.pow(2).mean(dim=0) + eps)
    return ((ac.T @ bc) / a.shape[0]).pow(2).mean()


def vicreg_covariance(z: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal covariances / D: decorrelates dimensions (prevents dimensional collapse)."""
    n, d = z.shape
    zc = z - z.mean(dim=0)
    cov = (zc.T @ zc) / max(n - 1, 1)
    off = cov - torch.diag(torch.diag(cov))
    return off.pow(2).sum() / d


def sigreg(z: torch.Tensor, directions: int = 256, knots: int = 17, t_max: float = 3.0) -> torch.Tensor:
    """Distance of latents (N, D) from an isotropic standard normal, sketched over random directions.

    Each of ``directions`` random unit vectors projects the batch to one dimension; the Epps-Pulley statistic
    compares that sample's empirical characteristic function with the standard normal's, exp(-t^2 / 2), over
    t in [-t_max, t_max] under a Gaussian window (``knots`` points on t >= 0; the rest by symmetry). Averaged
    over directions. Any collapse, to a point or to a subspace, shows up in some direction; unlike VICReg's
    hinge it also keeps dimensions from growing and shapes the whole distribution. Not multiplied by N, so
    the weight does not depend on the batch size. LeWM (LeWorldModel, 2026) trains end to end from pixels with it.
    """
    d = z.shape[1]
    a = torch.randn(d, directions, device=z.device, dtype=z.dtype)
    x = z @ (a / a.norm(dim=0, keepdim=True))  # (N, M)
    t = torch.linspace(0.0, t_max, knots, device=z.device, dtype=z.dtype)
    xt = x.unsqueeze(-1) * t  # (N, M, K)
    normal = torch.exp(-0.5 * t * t)
    err = (torch.cos(xt).mean(0) - normal).pow(2) + torch.sin(xt).mean(0).pow(2)  # (M, K)
    return 2.0 * torch.trapezoid(err * normal, t, dim=-1).mean()


class JEPAWorldModel(nn.Module):
    """Encoder + predictors at every level, trained by predicting target latents of future frames."""

    def __init__(self, cfg: ExperimentConfig, dims: DataDims, onnx_bytes: bytes | None = None) -> None:
        super().__init__()
        self.cfg, self.dims = cfg, dims
        m = cfg.model
        self.context, self.frameskip = m.context, m.frameskip
        self.encoder = build_encoder(m.encoder, dims.image_size, dims.proprio_dim, onnx_bytes)
        self.encoder_frozen = getattr(self.encoder, "frozen", False)
        self.latent_shape: tuple[int, ...] = tuple(self.encoder.latent_shape)
        self.target_encoder: nn.Module | None = None
        if cfg.train.anti_collapse == "ema" and not self.encoder_frozen:
            self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        a0 = dims.raw_action_dim * m.frameskip
        self.level_action_dims = [a0] + [lv.macro_dim for lv in m.levels[1:]]
        self.level_strides = [lv.stride for lv in m.levels]
        # the encoder's layout part (last dimensions): carried unchanged by every predictor, free of anti-collapse
        self.layout_dim = int(getattr(self.encoder, "layout_dim", 0))
        self.predictors = nn.ModuleList(  # level 0 takes raw actions (scaled); higher levels learned macro-actions
            build_predictor(m.predictor, self.latent_shape, m.context, a, m.action_scale if i == 0 else 1.0, self.layout_dim)
            for i, a in enumerate(self.level_action_dims)
        )
        self.macro_encoders = nn.ModuleList(
            MacroActionEncoder(lv.stride, a0, lv.macro_dim, action_scale=m.action_scale) for lv in m.levels[1:]
        )
        self.noise_dim = m.predictor.noise_dim
        self.posteriors = (
            nn.ModuleList(NoisePosterior(self.latent_shape, self.noise_dim) for _ in m.levels) if self.noise_dim else None
        )
        agent_shape = (self.latent_shape[0] - self.layout_dim, *self.latent_shape[1:])
        self.inverse_dynamics = InverseDynamics(agent_shape, a0) if cfg.train.inverse_dynamics_weight > 0 else None
        self.decoder = LatentDecoder(self.latent_shape, dims.image_size, cfg.decoder.width) if cfg.decoder.enabled else None
        self.register_buffer("latent_mean", torch.zeros(self.latent_shape))
        self.register_buffer("latent_std", torch.ones(self.latent_shape))

    # ---- inference -------------------------------------------------------------------------
    def encode(self, images: torch.Tensor, proprio: torch.Tensor | None = None, target: bool = False) -> torch.Tensor:
        """uint8 (..., H, W, 3) -> latents (..., *latent_shape); any leading batch dims."""
        lead = images.shape[:-3]
        flat_img = images.reshape(-1, *images.shape[-3:])
        flat_pro = proprio.reshape(-1, proprio.shape[-1]) if proprio is not None else None
        enc = self.target_encoder if (target and self.target_encoder is not None) else self.encoder
        z = enc(flat_img, flat_pro)
        return z.reshape(*lead, *self.latent_shape)

    def predict(
        self, z_ctx: torch.Tensor, action: torch.Tensor, level: int = 0, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.predictors[level](z_ctx, action, noise)

    def encode_macro(self, actions: torch.Tensor, level: int = 1) -> torch.Tensor:
        if level < 1 or level > len(self.macro_encoders):
            raise ValueError(f"level {level} has no macro-action encoder (levels 1..{len(self.macro_encoders)} do)")
        return self.macro_encoders[level - 1](actions)

    @torch.no_grad()
    def update_target(self) -> None:
        """EMA step of the target encoder (no-op for VICReg or a frozen encoder)."""
        if self.target_encoder is None:
            return
        mom = self.cfg.train.ema_momentum
        for p_t, p in zip(self.target_encoder.parameters(), self.encoder.parameters()):
            p_t.mul_(mom).add_(p.detach(), alpha=1.0 - mom)

    def agent_part(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (..., D) without the encoder's layout part (the identity when it has none)."""
        return z[..., : z.shape[-1] - self.layout_dim] if self.layout_dim else z

    def layout_part(self, z: torch.Tensor) -> torch.Tensor:
        """The encoder's layout part of latents (..., D): the last ``layout_dim`` dimensions (empty without one)."""
        return z[..., z.shape[-1] - self.layout_dim :]

    # ---- training --------------------------------------------------------------------------
    def _sequence_losses(
        self, level: int, z: torch.Tensor, tgt: torch.Tensor, actions: torch.Tensor, rollout_steps: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher-forced one-step loss over every position, k-step rollout loss from the first context, KL.

        Args:
            z: (B, T, *L) context latents (online encoder); tgt: (B, T, *L) targets (no grad).
            actions: (B, T-1, A_level), actions[:, t] leads from frame t to t+1.
        """
        c, t_len = self.context, z.shape[1]
        pred = self.predictors[level]
        n = t_len - 1  # transitions available
        # all teacher-forced contexts in one batched call; early positions get a padded context
        idx = torch.arange(n).unsqueeze(1) + torch.arange(-c + 1, 1).unsqueeze(0)  # (n, C)
        ctx = z[:, idx.clamp(min=0)]  # (B, n, C, *L)
        b = z.shape[0]
        ctx = ctx.reshape(b * n, c, *self.latent_shape)
        act = actions[:, :n].reshape(b * n, -1)
        target = tgt[:, 1 : n + 1].reshape(b * n, *self.latent_shape)
        kl = z.new_zeros(())
        noise = None
        if self.posteriors is not None:
            mu, logvar = self.posteriors[level](ctx[:, -1], target)
            noise = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            kl = -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())
        teacher = F.mse_loss(pred(ctx, act, noise), target)
        rollout = z.new_zeros(())
        steps = min(rollout_steps, t_len - c)
        if steps > 1:
            window = z[:, :c]
            losses = []
            for k in range(steps):
                i = c - 1 + k
                u = None
                if self.posteriors is not None:
                    mu, _ = self.posteriors[level](tgt[:, i], tgt[:, i + 1])
                    u = mu
                z_next = pred(window, actions[:, i], u)
                losses.append(F.mse_loss(z_next, tgt[:, i + 1]))
                window = torch.cat([window, z_next.unsqueeze(1)], dim=1)[:, -c:]
            rollout = torch.stack(losses).mean()
        return teacher, rollout, kl

    def forward(
        self, frames: torch.Tensor, actions: torch.Tensor, proprio: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """JEPA loss of a batch of windows. frames uint8 (B, T, H, W, 3), actions (B, T-1, A0)."""
        tc, m = self.cfg.train, self.cfg.model
        use_pro = proprio if getattr(self.encoder, "use_proprio", False) else None
        z = self.encode(frames, use_pro)
        with torch.no_grad():
            tgt = self.encode(frames, use_pro, target=True) if self.target_encoder is not None else z.detach()
        logs: dict[str, float] = {}
        teacher, rollout, kl = self._sequence_losses(0, z, tgt, actions, tc.horizon)
        loss = tc.teacher_weight * teacher + tc.rollout_weight * rollout + m.predictor.kl_weight * kl
        logs.update(teacher=teacher.item(), rollout=rollout.item())
        if self.noise_dim:
            logs["kl"] = kl.item()
        # coarser levels: same targets, fed stop-grad latents so they never bend the shared encoder
        zd = z.detach()
        for lv_i in range(1, len(m.levels)):
            s = self.level_strides[lv_i]
            n_sub = (z.shape[1] - 1) // s + 1
            if n_sub < 2:
                raise ValueError(f"training windows of {z.shape[1]} frames are too short for level {lv_i} with stride {s}")
            chunks = actions[:, : (n_sub - 1) * s].reshape(actions.shape[0], n_sub - 1, s, -1)
            macro = self.macro_encoders[lv_i - 1](chunks.reshape(-1, s, chunks.shape[-1])).reshape(
                actions.shape[0], n_sub - 1, -1
            )
            hz, htgt = zd[:, 0 : (n_sub - 1) * s + 1 : s], tgt[:, 0 : (n_sub - 1) * s + 1 : s]
            h_teacher, h_rollout, h_kl = self._sequence_losses(lv_i, hz, htgt, macro, m.levels[lv_i].rollout_steps)
            loss = loss + tc.high_level_weight * (h_teacher + h_rollout + m.predictor.kl_weight * h_kl)
            logs[f"level{lv_i}_teacher"] = h_teacher.item()
        if not self.encoder_frozen:
            # anti-collapse and smoothness shape the agent part; a layout part only has to help prediction
            # (its copy through the predictor already asks it to stay put within an episode)
            flat_all = z.reshape(-1, z.shape[-1])
            if self.layout_dim and tc.layout_decorrelation_weight > 0:
                dec = cross_correlation(self.agent_part(flat_all), self.layout_part(flat_all).detach())
                loss = loss + tc.layout_decorrelation_weight * dec
                logs["layout_decorrelation"] = dec.item()
            if self.layout_dim and tc.layout_var_weight > 0:
                lvar = vicreg_variance(self.layout_part(flat_all))
                loss = loss + tc.layout_var_weight * lvar
                logs["layout_variance"] = lvar.item()
            z = self.agent_part(z)
            flat = z.reshape(-1, z.shape[-1])
            if tc.anti_collapse == "vicreg":
                var, cov = vicreg_variance(flat), vicreg_covariance(flat)
                loss = loss + tc.var_weight * var + tc.cov_weight * cov
                logs.update(variance=var.item(), covariance=cov.item())
                if tc.temporal_var_weight > 0:
                    tvar = temporal_variance(z, tc.temporal_var_target, per_dim=tc.temporal_var_per_dim)
                    loss = loss + tc.temporal_var_weight * tvar
                    logs["temporal_variance"] = tvar.item()
                if tc.window_var_weight > 0:
                    wvar = temporal_variance(z, tc.window_var_target, per_window=True)
                    loss = loss + tc.window_var_weight * wvar
                    logs["window_variance"] = wvar.item()
            elif tc.anti_collapse == "sigreg":
                reg = sigreg(flat, tc.sigreg_directions, tc.sigreg_knots)
                loss = loss + tc.sigreg_weight * reg
                logs["sigreg"] = reg.item()
            if self.inverse_dynamics is not None:
                b, t = z.shape[:2]
                a_hat = self.inverse_dynamics(
                    z[:, :-1].reshape(b * (t - 1), *z.shape[2:]), z[:, 1:].reshape(b * (t - 1), *z.shape[2:])
                )
                idm = F.mse_loss(a_hat, actions.reshape(b * (t - 1), -1))
                loss = loss + tc.inverse_dynamics_weight * idm
                logs["inverse_dynamics"] = idm.item()
            if tc.smoothness_weight > 0:
                smooth = (z[:, 1:] - z[:, :-1]).pow(2).mean()
                loss = loss + tc.smoothness_weight * smooth
                logs["smoothness"] = smooth.item()
        logs["loss"] = loss.item()
        return loss, logs
