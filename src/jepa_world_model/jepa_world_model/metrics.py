"""Representation health and prediction quality: the numbers that predict planning success.

All functions take plain tensors so they are testable without a trainer.
"""

from __future__ import annotations

import torch


class RepresentationCollapseError(RuntimeError):
    """Raised when the latents lose their spread for several checks in a row (training cannot recover)."""


def effective_rank(z: torch.Tensor) -> float:
    """exp(entropy of the normalised singular values) of centred latents (N, D): 1 = a line, D = full use."""
    z = z.reshape(z.shape[0], -1).double()
    zc = z - z.mean(dim=0)
    s = torch.linalg.svdvals(zc)
    total = s.sum()
    if total <= 1e-12:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def latent_std(z: torch.Tensor) -> torch.Tensor:
    """Per-dimension std over the batch of (N, *latent) latents."""
    return z.reshape(z.shape[0], -1).std(dim=0)


def normalised_mse(pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> float:
    """MSE divided by the mean per-dimension variance of the latents: 1.0 = no better than the mean latent."""
    return float((pred - target).pow(2).mean() / scale.pow(2).mean().clamp_min(1e-12))


def ridge_probe(
    z_train: torch.Tensor, y_train: torch.Tensor, z_val: torch.Tensor, y_val: torch.Tensor, ridge: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form ridge regression latent -> true state, fitted on train; per state dimension on validation:
    (R^2, RMSE in the state's units)."""
    xt = z_train.reshape(z_train.shape[0], -1).double()
    xv = z_val.reshape(z_val.shape[0], -1).double()
    mu, sd = xt.mean(0), xt.std(0).clamp_min(1e-8)
    xt, xv = (xt - mu) / sd, (xv - mu) / sd
    xt = torch.cat([xt, torch.ones(xt.shape[0], 1, dtype=xt.dtype)], 1)
    xv = torch.cat([xv, torch.ones(xv.shape[0], 1, dtype=xv.dtype)], 1)
    yt, yv = y_train.double(), y_val.double()
    eye = torch.eye(xt.shape[1], dtype=xt.dtype) * ridge * xt.shape[0]
    eye[-1, -1] = 0.0  # the intercept is not penalised
    w = torch.linalg.solve(xt.T @ xt + eye, xt.T @ yt)
    sq = (xv @ w - yv).pow(2)
    total = (yv - yv.mean(0)).pow(2).sum(0).clamp_min(1e-12)
    return 1.0 - sq.sum(0) / total, sq.mean(0).sqrt()


def ridge_probe_r2(
    z_train: torch.Tensor, y_train: torch.Tensor, z_val: torch.Tensor, y_val: torch.Tensor, ridge: float = 1e-3
) -> float:
    """``ridge_probe``'s validation R^2 averaged over state dimensions (the training runs' ``probe_r2``)."""
    return float(ridge_probe(z_train, y_train, z_val, y_val, ridge)[0].mean())


class CollapseDetector:
    """Counts consecutive checks with effective rank or mean std below thresholds; raises after ``patience``."""

    def __init__(self, min_effective_rank: float, min_std: float, patience: int) -> None:
        self.min_effective_rank, self.min_std, self.patience = min_effective_rank, min_std, patience
        self.bad_checks = 0

    def check(self, eff_rank: float, mean_std: float) -> None:
        bad = eff_rank < self.min_effective_rank or mean_std < self.min_std
        self.bad_checks = self.bad_checks + 1 if bad else 0
        if self.bad_checks >= self.patience:
            raise RepresentationCollapseError(
                f"representation collapsed: effective rank {eff_rank:.3f} (min {self.min_effective_rank}), "
                f"mean latent std {mean_std:.2e} (min {self.min_std}) for {self.bad_checks} checks in a row. "
                "Raise train.var_weight / train.cov_weight, use anti_collapse: ema, or lower train.lr."
            )
