"""Cross-entropy method over action sequences (DINO-WM / JEPA-WMs style: 300 samples, top 30)."""

from __future__ import annotations

import math

import torch

from jepa_planner.planners.base import Planner, PlanStats, out_of_time


class CEMPlanner(Planner):
    """Sample around a Gaussian, refit it to the elites, keep the best sequence ever scored.

    Args (beyond ``Planner``'s):
        num_samples: candidates per iteration (the current mean is always one of them).
        num_elites: candidates the Gaussian is refitted to.
        iterations: maximum iterations (the time budget may stop earlier).
        init_std / min_std: sampling std as a fraction of the half range of the bounds.
    """

    name = "cem"

    def __init__(
        self,
        model,
        costs,
        *,
        num_samples: int = 300,
        num_elites: int = 30,
        iterations: int = 10,
        init_std: float = 0.5,
        min_std: float = 0.02,
        **kwargs,
    ) -> None:
        super().__init__(model, costs, **kwargs)
        if not 1 <= num_elites <= num_samples:
            raise ValueError(f"need 1 <= num_elites ({num_elites}) <= num_samples ({num_samples})")
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.num_samples, self.num_elites, self.iterations = num_samples, num_elites, iterations
        half = (self.high - self.low) / 2
        self.init_std, self.min_std = init_std * half, min_std * half

    def _optimise(self, ctx, goal, init, proposals, prev_action, deadline, stats: PlanStats):
        mean, std = init, self.init_std.expand_as(init).clone()
        best_cost, best = math.inf, None
        for it in range(self.iterations):
            noise = torch.randn((self.num_samples, *mean.shape), generator=self.generator)
            candidates = self.clip(mean + std * noise)
            candidates[0] = mean
            if proposals is not None:
                candidates = torch.cat([candidates, proposals])
            latents, costs = self.evaluate(ctx, goal, candidates, prev_action, stats)
            elite_idx = torch.topk(costs.total, self.num_elites, largest=False).indices
            elites = candidates[elite_idx]
            mean, std = elites.mean(dim=0), elites.std(dim=0, unbiased=False).maximum(self.min_std)
            top = int(elite_idx[0])
            if best is None or float(costs.total[top]) < best_cost:
                best_cost, best = float(costs.total[top]), (candidates[top], latents[top], costs, top)
            stats.iterations += 1
            stats.best_cost_per_iter.append(best_cost)
            if it < self.iterations - 1 and out_of_time(deadline):
                stats.budget_hit = True
                break
        self.keep_candidates(stats, latents, costs.total)
        self.last_mean = mean.detach().clone()  # the final sampling mean: a smoother label than ``best`` (distillation)
        return best
