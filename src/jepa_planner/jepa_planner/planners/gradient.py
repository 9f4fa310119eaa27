"""Gradient-based planning: Adam on the action sequence, back-propagating the cost through the torch model."""

from __future__ import annotations

import math

import torch

from jepa_planner.planners.base import Planner, PlanStats, out_of_time


class GradientPlanner(Planner):
    """Optimise a few action sequences in parallel by Adam, projecting onto the bounds after every step.

    Actions are optimised in units of the half range of the bounds so ``lr`` is scale free.
    Needs a differentiable model (the torch backend of a bundle, not onnxruntime).

    Args (beyond ``Planner``'s):
        num_starts: sequences optimised in parallel (the warm start plus random restarts).
        iterations: maximum Adam steps.
        lr: Adam learning rate (fraction of the half range per step, roughly).
        init_std: spread of the random restarts around the warm start (fraction of the half range).
    """

    name = "gradient"

    def __init__(
        self, model, costs, *, num_starts: int = 8, iterations: int = 50, lr: float = 0.1, init_std: float = 0.5, **kwargs
    ) -> None:
        super().__init__(model, costs, **kwargs)
        if num_starts < 1 or iterations < 1 or lr <= 0:
            raise ValueError(f"need num_starts >= 1, iterations >= 1, lr > 0; got {num_starts}, {iterations}, {lr}")
        self.num_starts, self.iterations, self.lr, self.init_std = num_starts, iterations, lr, init_std
        self.centre, self.half = (self.high + self.low) / 2, ((self.high - self.low) / 2).clamp_min(1e-6)

    def _optimise(self, ctx, goal, init, proposals, prev_action, deadline, stats: PlanStats):
        starts = init.unsqueeze(0).repeat(self.num_starts, 1, 1)
        noise = torch.randn(starts[1:].shape, generator=self.generator)
        starts[1:] += noise * self.init_std * self.half
        if proposals is not None:
            starts = torch.cat([starts, proposals])
        u = ((self.clip(starts) - self.centre) / self.half).requires_grad_(True)
        optimiser = torch.optim.Adam([u], lr=self.lr)
        best_cost, best = math.inf, None
        for it in range(self.iterations):
            with torch.enable_grad():
                actions = self.centre + self.half * u
                latents, costs = self.evaluate(ctx, goal, actions, prev_action, stats)
                if not costs.total.requires_grad:
                    raise ValueError(
                        "the gradient planner needs a differentiable world model (torch backend); "
                        "this model's rollout returned tensors without gradients"
                    )
                optimiser.zero_grad()
                costs.total.sum().backward()
            top = int(torch.argmin(costs.total))
            if best is None or float(costs.total[top]) < best_cost:
                best_cost = float(costs.total[top])
                best = (actions[top].detach(), latents[top].detach(), _detached(costs), top)
            optimiser.step()
            with torch.no_grad():
                u.clamp_(-1.0, 1.0)  # project onto the bounds after every update
            stats.iterations += 1
            stats.best_cost_per_iter.append(best_cost)
            if it < self.iterations - 1 and out_of_time(deadline):
                stats.budget_hit = True
                break
        self.keep_candidates(stats, latents, costs.total)
        return best


def _detached(costs):
    costs.total = costs.total.detach()
    costs.terms = {k: v.detach() for k, v in costs.terms.items()}
    return costs
