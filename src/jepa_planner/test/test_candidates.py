"""Planners expose their best candidate rollouts (for the actor's ``candidates`` display) only when asked."""

from __future__ import annotations

import pytest
import torch

from jepa_planner.costs import CostModule, GoalDistanceCost
from jepa_planner.hierarchical import HierarchicalPlanner
from jepa_planner.planners import PLANNER_TYPES
from jepa_planner.planners.base import set_candidates_kept
from jepa_planner.testing import LinearWorldModel

torch.set_num_threads(1)

SMALL = {
    "cem": {"num_samples": 40, "num_elites": 8, "iterations": 2},
    "mppi": {"num_samples": 40, "num_elites": 8, "iterations": 2},
    "gradient": {"num_starts": 6, "iterations": 3},
}


def costs() -> CostModule:
    return CostModule([GoalDistanceCost(1.0, normalise=False)])


@pytest.mark.parametrize("kind", list(SMALL))
def test_best_candidates_kept_sorted_and_consistent(kind: str) -> None:
    model = LinearWorldModel(dim=2)
    planner = PLANNER_TYPES[kind](model, costs(), horizon=4, seed=0, **SMALL[kind])
    goal = torch.tensor([1.5, -0.5])
    assert planner.plan(torch.zeros(2), goal).stats.candidate_latents is None  # default: nothing kept, nothing copied
    planner.candidates_kept = 5
    result = planner.plan(torch.zeros(2), goal)
    cand, cost = result.stats.candidate_latents, result.stats.candidate_costs
    assert cand.shape == (5, 4, 2) and not cand.requires_grad
    assert torch.all(cost[1:] >= cost[:-1])  # best first
    # each kept rollout is a real trajectory of the model: its last latent's mean squared distance is its cost
    assert torch.allclose(((cand[:, -1] - goal) ** 2).mean(-1), cost, rtol=1e-4, atol=1e-5)
    planner.candidates_kept = 1000  # more than evaluated: all of the last iteration's candidates
    n = planner.plan(torch.zeros(2), goal).stats.candidate_latents.shape[0]
    assert n == (SMALL[kind].get("num_samples") or SMALL[kind]["num_starts"])
    with pytest.raises(ValueError, match="candidates_kept"):
        PLANNER_TYPES[kind](model, costs(), horizon=4, candidates_kept=-1, **SMALL[kind])


def test_set_candidates_kept_reaches_every_level_and_wrappers() -> None:
    model = LinearWorldModel(dim=2, strides=(3,))
    top = PLANNER_TYPES["cem"](model, costs(), horizon=2, level=1, **SMALL["cem"])
    low = PLANNER_TYPES["cem"](model, costs(), horizon=3, level=0, **SMALL["cem"])
    hier = HierarchicalPlanner([top, low], replan_every=2)

    class Wrapper:  # like profiles.PolicySeededPlanner
        planner = hier

    set_candidates_kept(Wrapper(), 7)
    assert top.candidates_kept == 7 and low.candidates_kept == 7
    result = hier.plan(torch.zeros(2), torch.ones(2))
    assert result.level == 0 and result.stats.candidate_latents.shape == (7, 3, 2)
    set_candidates_kept(hier, 0)
    assert hier.plan(torch.zeros(2), torch.ones(2)).stats.candidate_latents is None
