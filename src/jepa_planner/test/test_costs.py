"""Cost terms and the cost module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jepa_planner.costs import (
    COST_TYPES,
    ActionSmoothnessCost,
    CostInputs,
    CostModule,
    GoalDistanceCost,
    ProprioGoalCost,
    SafetyCost,
)

REPO = Path(__file__).resolve().parents[3]


def inputs(latents, actions=None, goal=None, **kw) -> CostInputs:
    b, h = latents.shape[:2]
    actions = torch.zeros(b, h, 2) if actions is None else actions
    goal = torch.zeros(latents.shape[2:]) if goal is None else goal
    return CostInputs(latents, actions, goal, **kw)


def test_goal_distance_terminal_all_l1_l2_and_normalisation():
    latents = torch.tensor([[[1.0, 0.0], [2.0, 0.0]]])  # B=1, H=2, D=2
    assert GoalDistanceCost(norm="l2").score(inputs(latents)).item() == pytest.approx(2.0)  # mean(4, 0)
    assert GoalDistanceCost(norm="l1").score(inputs(latents)).item() == pytest.approx(1.0)
    uniform = GoalDistanceCost(mode="all", step_weighting="uniform").score(inputs(latents)).item()
    assert uniform == pytest.approx((0.5 + 2.0) / 2)
    linear = GoalDistanceCost(mode="all", step_weighting="linear").score(inputs(latents)).item()
    assert linear == pytest.approx((0.5 * 1 + 2.0 * 2) / 3)
    normed = inputs(latents, latent_mean=torch.zeros(2), latent_std=torch.tensor([2.0, 1.0]))
    assert GoalDistanceCost().score(normed).item() == pytest.approx(0.5)
    assert GoalDistanceCost(normalise=False).score(normed).item() == pytest.approx(2.0)


def test_goal_distance_on_token_latents_and_per_candidate_goals():
    latents = torch.ones(3, 2, 4, 5)  # (B, H, N, D) token latents
    goal = torch.zeros(3, 4, 5)
    assert torch.allclose(GoalDistanceCost().score(inputs(latents, goal=goal)), torch.ones(3))


def test_module_from_config_weights_and_breakdown():
    module = CostModule.from_config(
        [
            {"type": "goal_distance", "weight": 2.0},
            {"type": "action_effort", "weight": 0.5},
            {"type": "goal_distance", "weight": 1.0, "params": {"mode": "all"}},
        ]
    )
    latents = torch.tensor([[[1.0, 1.0]], [[0.0, 0.0]]])
    actions = torch.tensor([[[1.0, 1.0]], [[0.0, 0.0]]])
    out = module(inputs(latents, actions, action_low=-torch.ones(2), action_high=torch.ones(2)))
    assert torch.allclose(out.total, torch.tensor([2.0 + 0.5 + 1.0, 0.0]))
    assert [t.name for t in out.summary(0)] == ["goal_distance", "action_effort", "goal_distance_2"]
    assert out.summary(0)[1].weight == 0.5 and out.summary(0)[1].value == pytest.approx(0.5)


def test_unknown_cost_type_lists_valid_ones():
    with pytest.raises(ValueError, match="valid types") as err:
        CostModule.from_config([{"type": "teleport", "weight": 1.0}])
    assert all(name in str(err.value) for name in COST_TYPES)
    with pytest.raises(ValueError, match="unknown params"):
        CostModule.from_config([{"type": "goal_distance", "params": {"nrom": "l2"}}])
    with pytest.raises(ValueError, match="norm"):
        GoalDistanceCost(norm="l3")
    with pytest.raises(FileNotFoundError):
        CostModule.from_config(REPO / "config" / "missing.yaml")


def test_every_profile_cost_list_builds_and_every_type_builds_with_defaults():
    from jepa_planner.profiles import load_profiles

    for name, profile in load_profiles(REPO / "config" / "planner_profiles.yaml").items():
        for level in profile.levels:
            assert CostModule.from_config([t.model_dump() for t in level.costs]).terms, name
    module = CostModule.from_config([{"type": kind} for kind in COST_TYPES])
    assert {t.type_name for t in module.terms} == set(COST_TYPES)


def test_cost_module_is_differentiable():
    module = CostModule.from_config(
        [{"type": "goal_distance"}, {"type": "action_smoothness"}, {"type": "safety", "params": {"max_sigma": 0.1}}]
    )
    latents = torch.randn(4, 3, 2, requires_grad=True)
    actions = torch.randn(4, 3, 2, requires_grad=True)
    module(inputs(latents, actions, goal=torch.ones(2), prev_action=torch.zeros(2))).total.sum().backward()
    assert latents.grad is not None and actions.grad is not None and latents.grad.abs().sum() > 0


def test_smoothness_includes_the_previous_action():
    actions = torch.tensor([[[1.0, 1.0], [1.0, 1.0]]])
    term = ActionSmoothnessCost()
    assert term.score(inputs(torch.zeros(1, 2, 2), actions)).item() == 0.0
    assert term.score(inputs(torch.zeros(1, 2, 2), actions, prev_action=torch.zeros(2))).item() == pytest.approx(0.5)


def test_proprio_critic_and_safety_terms():
    latents = torch.tensor([[[0.0, 0.0, 5.0]], [[1.0, 2.0, 0.0]]])
    readout = lambda z: z[..., :2]  # noqa: E731
    proprio = ProprioGoalCost(readout=readout, goal_proprio=[1.0, 2.0])
    assert torch.allclose(proprio.score(inputs(latents)), torch.tensor([2.5, 0.0]))
    assert torch.equal(ProprioGoalCost().score(inputs(latents)), torch.zeros(2))  # no readout: skipped
    module = CostModule.from_config([{"type": "critic", "weight": 2.0}], critic=lambda z, g: z.sum(-1))
    assert torch.allclose(module(inputs(latents, goal=torch.zeros(3))).total, torch.tensor([10.0, 6.0]))
    safety = SafetyCost(max_sigma=3.0)
    assert torch.allclose(safety.score(inputs(latents)), torch.tensor([4.0 / 3, 0.0]))
    assert torch.allclose(SafetyCost(fn=lambda z: z.amax(dim=(1, 2))).score(inputs(latents)), torch.tensor([5.0, 2.0]))
