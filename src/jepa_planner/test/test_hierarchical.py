"""Hierarchical planning: subgoals handed down, bounds per level, replanning schedule, level errors."""

from __future__ import annotations

import pytest
import torch

from jepa_planner.costs import CostModule
from jepa_planner.hierarchical import HierarchicalPlanner
from jepa_planner.planners import CEMPlanner, MPPIPlanner
from jepa_planner.profiles import PlannerProfile, build_planner
from jepa_planner.testing import LinearWorldModel

torch.set_num_threads(1)


def goal_costs() -> CostModule:
    return CostModule.from_config([{"type": "goal_distance"}])


def two_level(model, replan_every=3, **kw) -> HierarchicalPlanner:
    high = MPPIPlanner(model, goal_costs(), horizon=4, level=1, num_samples=128, num_elites=16, iterations=4, seed=1)
    low = CEMPlanner(model, goal_costs(), horizon=3, level=0, num_samples=64, num_elites=8, iterations=4, seed=2)
    return HierarchicalPlanner([high, low], replan_every=replan_every, **kw)


def test_subgoal_is_the_first_predicted_latent_of_the_high_level():
    model = LinearWorldModel(dim=2, bound=1.0, strides=(4,))
    planner = two_level(model)
    result = planner.plan(torch.zeros(2), torch.tensor([10.0, -6.0]))
    high = result.parent
    assert high is not None and high.level == 1 and result.level == 0
    assert torch.equal(result.subgoal, high.latents[0])
    # bounds of each level hold
    assert (high.actions.abs() <= 4.0).all() and (result.actions.abs() <= 1.0).all()
    # the high level moves toward the goal and the low level toward the subgoal
    assert high.latents[-1].norm() > 5.0
    assert torch.linalg.vector_norm(result.latents[-1] - result.subgoal) < torch.linalg.vector_norm(result.subgoal)
    assert result.model_steps_this_call() == result.stats.model_steps + high.stats.model_steps


def test_upper_level_replans_on_schedule_and_when_the_goal_changes():
    model = LinearWorldModel(dim=2, bound=1.0, strides=(4,))
    planner = two_level(model, replan_every=3)
    goal = torch.tensor([10.0, 0.0])
    flags = [planner.plan(torch.zeros(2), goal).parent.replanned for _ in range(7)]
    assert flags == [True, False, False, True, False, False, True]
    assert planner.plan(torch.zeros(2), torch.tensor([0.0, 9.0])).parent.replanned  # new goal


def test_upper_levels_can_run_elsewhere():
    """subgoal() alone gives what plan() hands down; an external subgoal replaces the upper levels."""
    model = LinearWorldModel(dim=2, bound=1.0, strides=(4,))
    goal = torch.tensor([10.0, -6.0])
    target, parent = two_level(model).subgoal(torch.zeros(2), goal)
    assert torch.equal(target, two_level(model).plan(torch.zeros(2), goal).subgoal)
    assert torch.equal(target, parent.latents[0])

    planner = two_level(model)
    handed = torch.tensor([1.0, 0.5])
    planner.set_external_subgoal(handed)
    result = planner.plan(torch.zeros(2), goal)
    assert result.parent is None and torch.equal(result.subgoal, handed)  # no upper level ran here
    assert torch.linalg.vector_norm(result.latents[-1] - handed) < 0.2
    planner.set_external_subgoal(None)
    assert planner.plan(torch.zeros(2), goal).parent is not None
    planner.set_external_subgoal(torch.tensor([float("nan"), 0.0]))
    with pytest.raises(ValueError):
        planner.plan(torch.zeros(2), goal)
    planner.reset()  # a new task forgets the handed subgoal
    assert planner.external_subgoal is None


def test_direct_goal_when_close_and_subgoal_tolerance():
    model = LinearWorldModel(dim=2, bound=1.0, strides=(4,))
    planner = two_level(model, replan_every=100, direct_goal_distance=1.0)
    goal = torch.tensor([0.5, 0.5])
    assert torch.equal(planner.plan(torch.zeros(2), goal).subgoal, goal)
    planner = two_level(model, replan_every=100, subgoal_tolerance=1e9)
    planner.plan(torch.zeros(2), torch.tensor([9.0, 0.0]))
    assert planner.plan(torch.zeros(2), torch.tensor([9.0, 0.0])).parent.replanned  # "reached" -> replans


def test_bad_level_stacks_raise():
    model = LinearWorldModel(dim=2, strides=(4,))
    low = CEMPlanner(model, goal_costs(), level=0)
    with pytest.raises(ValueError, match="strictly decreasing"):
        HierarchicalPlanner([low, CEMPlanner(model, goal_costs(), level=1)])
    with pytest.raises(ValueError, match="at least two"):
        HierarchicalPlanner([low])
    profile = PlannerProfile.model_validate(
        {"name": "deep", "kind": "hierarchical", "levels": [{"level": 2}, {"level": 1}, {"level": 0}]}
    )
    with pytest.raises(ValueError, match="missing \\[2\\]"):
        build_planner(profile, model)
    with pytest.raises(ValueError, match="strictly decreasing"):
        PlannerProfile.model_validate({"kind": "hierarchical", "levels": [{"level": 1}, {"level": 1}, {"level": 0}]})
