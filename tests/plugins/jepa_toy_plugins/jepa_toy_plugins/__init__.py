"""A third-party plugin package for the suite's plugin points (used by tests/test_plugins.py).

It lives outside ``src/`` and is never imported by the suite directly: the suite finds it only through
the entry points declared in its ``setup.py`` (or, in the test, an equivalent ``.dist-info``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from jepa_planner.costs import CostInputs, CostTerm
from jepa_planner.planners.base import Planner, PlanStats


class RandomShootingPlanner(Planner):
    """One round of uniform random sequences inside the bounds; the cheapest wins."""

    name = "random_shooting"

    def __init__(self, model: Any, costs: Any, *, num_samples: int = 64, **kwargs: Any) -> None:
        super().__init__(model, costs, **kwargs)
        self.num_samples = num_samples

    def _optimise(self, ctx, goal, init, proposals, prev_action, deadline, stats: PlanStats):
        u = torch.rand((self.num_samples, *init.shape), generator=self.generator)
        candidates = self.low + u * (self.high - self.low)
        candidates[0] = init
        latents, costs = self.evaluate(ctx, goal, candidates, prev_action, stats)
        best = int(torch.argmin(costs.total))
        stats.iterations += 1
        return candidates[best], latents[best], costs, best


class FirstActionCost(CostTerm):
    """Squared size of the first action only."""

    type_name = "first_action"

    def score(self, inputs: CostInputs) -> torch.Tensor:
        return inputs.actions[:, 0].pow(2).sum(dim=-1)


class MeanColourEncoder(nn.Module):
    """Latent = mean RGB of the image (3 values): the smallest possible encoder."""

    def __init__(self, cfg: Any, image_size: int, proprio_dim: int = 0) -> None:
        super().__init__()
        self.latent_shape = (3,)

    def forward(self, images: torch.Tensor, proprio: torch.Tensor | None = None) -> torch.Tensor:
        return images.float().mean(dim=(-1, -2))


def small_two_rooms(**kwargs: Any) -> Any:
    """The built-in two-rooms world at 32 px (a world plugin may wrap or replace any world)."""
    from jepa_sim.worlds.two_rooms import TwoRooms

    return TwoRooms(**{"image_size": 32, **kwargs})
