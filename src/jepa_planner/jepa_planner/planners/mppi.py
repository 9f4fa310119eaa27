"""Model-predictive path integral control over action sequences (TD-MPC2 / PLDM / HWM style)."""

from __future__ import annotations

import math

import torch

from jepa_planner.planners.base import Planner, PlanStats, out_of_time


class MPPIPlanner(Planner):
    """Sample around the mean, move it to the softmin-weighted average of the elites.

    Defaults follow TD-MPC2 (512 samples, 64 elites, 6 iterations); HWM uses 2000-4000 samples at its high level.

    Args (beyond ``Planner``'s):
        num_samples: candidates per iteration (the current mean is always one of them).
        num_elites: best candidates entering the weighted average (``num_samples`` for classic MPPI).
        iterations: maximum iterations (the time budget may stop earlier).
        temperature: softmin temperature, in units of the elites' cost spread (so it is scale free).
        noise_std: sampling std as a fraction of the half range of the bounds.
        adapt_std: refit the std to the weighted elites (TD-MPC2) instead of keeping ``noise_std``.
        min_std: lower bound of an adapted std (fraction of the half range).
    """

    name = "mppi"

    def __init__(
        self,
        model,
        costs,
        *,
        num_samples: int = 512,
        num_elites: int = 64,
        iterations: int = 6,
        temperature: float = 0.5,
        noise_std: float = 0.5,
        adapt_std: bool = True,
        min_std: float = 0.02,
        **kwargs,
    ) -> None:
        super().__init__(model, costs, **kwargs)
        if not 1 <= num_elites <= num_samples:
            raise ValueError(f"need 1 <= num_elites ({num_elites}) <= num_samples ({num_samples})")
        if iterations < 1 or temperature <= 0:
            raise ValueError(f"need iterations >= 1 and temperature > 0, got {iterations}, {temperature}")
        self.num_samples, self.num_elites, self.iterations = num_samples, num_elites, iterations
        self.temperature, self.adapt_std = temperature, adapt_std
        half = (self.high - self.low) / 2
        self.noise_std, self.min_std = noise_std * half, min_std * half

    def _optimise(self, ctx, goal, init, proposals, prev_action, deadline, stats: PlanStats):
        mean, std = init, self.noise_std.expand_as(init).clone()
        best_cost, best = math.inf, None
        for it in range(self.iterations):
            noise = torch.randn((self.num_samples, *mean.shape), generator=self.generator)
            candidates = self.clip(mean + std * noise)
            candidates[0] = mean
            if proposals is not None:
                candidates = torch.cat([candidates, proposals])
            latents, costs = self.evaluate(ctx, goal, candidates, prev_action, stats)
            elite_cost, elite_idx = torch.topk(costs.total, self.num_elites, largest=False)
            elites = candidates[elite_idx]
            spread = (elite_cost[-1] - elite_cost[0]).clamp_min(1e-8) if math.isfinite(float(elite_cost[-1])) else 1.0
            weights = torch.softmax(-(elite_cost - elite_cost[0]) / (self.temperature * spread), dim=0)
            weights = torch.nan_to_num(weights, nan=0.0)
            if float(weights.sum()) <= 0:  # every elite diverged: keep the best one
                weights = torch.zeros_like(weights)
                weights[0] = 1.0
            mean = torch.einsum("e,eha->ha", weights, elites)
            if self.adapt_std:
                var = torch.einsum("e,eha->ha", weights, (elites - mean).pow(2))
                std = var.sqrt().maximum(self.min_std)
            top = int(elite_idx[0])
            if best is None or float(costs.total[top]) < best_cost:
                best_cost, best = float(costs.total[top]), (candidates[top], latents[top], costs, top)
            stats.iterations += 1
            stats.best_cost_per_iter.append(best_cost)
            if it < self.iterations - 1 and out_of_time(deadline):
                stats.budget_hit = True
                break
        self.keep_candidates(stats, latents, costs.total)
        return best
