"""CEM, MPPI and gradient planners against a known linear model and quadratic cost."""

from __future__ import annotations

import pytest
import torch

from jepa_planner.costs import ActionEffortCost, CostInputs, CostModule, CostTerm, GoalDistanceCost
from jepa_planner.planners import PLANNER_TYPES, CEMPlanner, GradientPlanner, MPPIPlanner
from jepa_planner.testing import LinearWorldModel, SlowWorldModel

torch.set_num_threads(1)

FAST = {
    "cem": {"num_samples": 200, "num_elites": 20, "iterations": 12},
    "mppi": {"num_samples": 256, "num_elites": 32, "iterations": 12},
    "gradient": {"num_starts": 4, "iterations": 150, "lr": 0.05},
}


def quadratic_costs(effort: float) -> CostModule:
    return CostModule([GoalDistanceCost(1.0, normalise=False), ActionEffortCost(effort)])


@pytest.mark.parametrize("kind", ["cem", "mppi", "gradient"])
def test_finds_the_optimum_of_a_quadratic_cost(kind):
    # z' = z + a, terminal squared distance + lam * mean a^2: the optimum is a_t = H g / (H^2 + lam) for every step.
    horizon, lam = 3, 1.0
    model = LinearWorldModel(dim=2, bound=2.0)
    planner = PLANNER_TYPES[kind](model, quadratic_costs(lam), horizon=horizon, seed=1, **FAST[kind])
    goal = torch.tensor([2.0, -1.0])
    result = planner.plan(torch.zeros(2), goal)
    # effort is measured in half-range units (bound 2): lam_eff = lam / 4
    expected = horizon * goal / (horizon**2 + lam / 4)
    assert torch.allclose(result.actions, expected.expand(horizon, -1), atol=0.08), result.actions
    assert torch.allclose(result.latents[-1], result.actions.sum(0), atol=1e-5)
    assert result.planner == kind and result.level == 0
    assert [t.name for t in result.terms] == ["goal_distance", "action_effort"]
    assert result.cost == pytest.approx(sum(t.value for t in result.terms), rel=1e-5)


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_one_batched_rollout_per_iteration(kind):
    model = LinearWorldModel(dim=2)
    planner = PLANNER_TYPES[kind](model, quadratic_costs(0.0), horizon=4, iterations=3, num_samples=50, num_elites=5)
    result = planner.plan(torch.zeros(2), torch.ones(2))
    assert model.predict_calls == 3 * 4  # one predict per horizon step for all candidates
    assert result.stats.samples == 150 and result.stats.model_steps == 600
    assert len(result.stats.best_cost_per_iter) == 3
    assert all(a >= b for a, b in zip(result.stats.best_cost_per_iter, result.stats.best_cost_per_iter[1:]))


class PushOutOfBounds(CostTerm):
    """Adversarial: rewards ever larger actions, so optimisers run into the bounds."""

    type_name = "push"

    def score(self, inputs: CostInputs) -> torch.Tensor:
        return -(inputs.actions * torch.tensor([1.0, -1.0])).sum(dim=(1, 2)) * 100


@pytest.mark.parametrize("kind", ["cem", "mppi", "gradient"])
def test_bounds_hold_under_adversarial_costs(kind):
    model = LinearWorldModel(dim=2, bound=0.5)
    planner = PLANNER_TYPES[kind](model, CostModule([PushOutOfBounds()]), horizon=3, **FAST[kind])
    for _ in range(3):
        actions = planner.plan(torch.zeros(2), torch.zeros(2)).actions
        assert (actions <= 0.5).all() and (actions >= -0.5).all()
    assert torch.allclose(actions, torch.tensor([0.5, -0.5]).expand(3, -1), atol=0.05)


def test_proposals_are_clipped_and_can_win():
    model = LinearWorldModel(dim=2, bound=1.0)
    planner = CEMPlanner(model, quadratic_costs(0.0), horizon=2, num_samples=10, num_elites=2, iterations=1, init_std=0.01)
    proposal = torch.tensor([[[5.0, 0.0], [1.0, 1.0]]])  # first step beyond the bound
    result = planner.plan(torch.zeros(2), torch.tensor([2.0, 1.0]), proposals=proposal)
    assert torch.allclose(result.actions, torch.tensor([[1.0, 0.0], [1.0, 1.0]]))


def test_warm_start_shifts_the_previous_plan():
    model = LinearWorldModel(dim=2)
    planner = CEMPlanner(model, quadratic_costs(0.0), horizon=4, warm_start="repeat")
    planner._previous = torch.arange(8, dtype=torch.float32).reshape(4, 2) / 10
    shifted = planner.initial_mean(shift=1)
    assert torch.allclose(shifted[:3], planner._previous[1:]) and torch.allclose(shifted[3], planner._previous[3])
    assert torch.allclose(planner.initial_mean(shift=2)[:2], planner._previous[2:])
    planner.warm_start = "prior"
    assert torch.allclose(planner.initial_mean(shift=1)[3], torch.zeros(2))
    planner.reset()
    assert torch.equal(planner.initial_mean(), torch.zeros(4, 2))


def test_warm_start_is_used_by_the_next_plan():
    model = LinearWorldModel(dim=2)
    planner = CEMPlanner(
        model, quadratic_costs(0.0), horizon=3, num_samples=20, num_elites=4, iterations=1, init_std=1e-4, min_std=1e-5
    )
    planner._previous = torch.tensor([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]])
    # With a negligible spread every sample equals the warm start: [prev[1], prev[2], prev[2]].
    result = planner.plan(torch.zeros(2), torch.ones(2))
    assert torch.allclose(result.actions, torch.tensor([[0.2, 0.2], [0.3, 0.3], [0.3, 0.3]]), atol=1e-3)


@pytest.mark.parametrize("kind", ["cem", "mppi", "gradient"])
def test_seeded_planners_are_reproducible(kind):
    model = LinearWorldModel(dim=2)
    runs = [
        PLANNER_TYPES[kind](model, quadratic_costs(0.1), horizon=3, seed=7, **FAST[kind])
        .plan(torch.zeros(2), torch.ones(2))
        .actions
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("kind", ["cem", "mppi", "gradient"])
def test_time_budget_stops_early_with_the_best_so_far(kind):
    model = SlowWorldModel(LinearWorldModel(dim=2), delay=0.02)
    params = {**FAST[kind], "iterations": 50}
    planner = PLANNER_TYPES[kind](model, quadratic_costs(0.0), horizon=2, max_time=0.05, **params)
    result = planner.plan(torch.zeros(2), torch.ones(2))
    assert 1 <= result.stats.iterations < 50 and result.stats.budget_hit
    assert result.cost == pytest.approx(result.stats.best_cost_per_iter[-1])
    # An already exhausted budget still runs one iteration and returns an action.
    tiny = PLANNER_TYPES[kind](model, quadratic_costs(0.0), horizon=2, **params).plan(
        torch.zeros(2), torch.ones(2), max_time=1e-9
    )
    assert tiny.stats.iterations == 1 and tiny.actions.shape == (2, 2)


@pytest.mark.parametrize("kind", ["cem", "mppi", "gradient"])
def test_bad_inputs_raise_clear_errors(kind):
    planner = PLANNER_TYPES[kind](LinearWorldModel(dim=2), quadratic_costs(0.0), horizon=2, **FAST[kind])
    with pytest.raises(ValueError, match="goal latent has shape"):
        planner.plan(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="z_ctx has shape"):
        planner.plan(torch.zeros(4, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        planner.plan(torch.tensor([float("nan"), 0.0]), torch.zeros(2))
    with pytest.raises(ValueError, match="goal latent contains NaN"):
        planner.plan(torch.zeros(2), torch.tensor([0.0, float("inf")]))
    with pytest.raises(ValueError, match="levels"):
        PLANNER_TYPES[kind](LinearWorldModel(dim=2), quadratic_costs(0.0), level=1)


def test_context_forms_are_accepted():
    planner = MPPIPlanner(
        LinearWorldModel(dim=2, context=2), quadratic_costs(0.0), horizon=2, iterations=1, num_samples=8, num_elites=2
    )
    for ctx in (torch.zeros(2), torch.zeros(3, 2), torch.zeros(1, 3, 2)):
        assert planner.plan(ctx, torch.ones(1, 2)).actions.shape == (2, 2)


def test_gradient_planner_needs_a_differentiable_model():
    class NoGrad(LinearWorldModel):
        def rollout(self, z_ctx, actions, level=0):
            with torch.no_grad():
                return super().rollout(z_ctx, actions, level)

    planner = GradientPlanner(NoGrad(dim=2), quadratic_costs(0.0), horizon=2, iterations=2)
    with pytest.raises(ValueError, match="differentiable"):
        planner.plan(torch.zeros(2), torch.ones(2))
