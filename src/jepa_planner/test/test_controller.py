"""MPCController: replan schedule, raw-action execution of stacked plans, context spacing, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_planner.controller import MPCController
from jepa_planner.costs import CostModule
from jepa_planner.planners.base import PlanResult, PlanStats
from jepa_planner.planners.cem import CEMPlanner
from jepa_planner.testing import LinearWorldModel


def stacked_model(frameskip: int = 2, context: int = 1, bound: float = 1.0) -> LinearWorldModel:
    """z' = z + sum of the frameskip stacked 2-D raw actions (a model step spans frameskip raw steps)."""
    b = torch.cat([torch.eye(2)] * frameskip, dim=1)
    model = LinearWorldModel(dim=2, action_dim=2 * frameskip, b_matrix=b, bound=bound, context=context)
    model.frameskip = frameskip
    return model


class ScriptedPlanner:
    """Returns plans whose raw actions count up (0, 1, 2, ...) so the executed order is visible."""

    horizon = 3
    name = "scripted"

    def __init__(self, model: LinearWorldModel) -> None:
        self.model, self.calls = model, []

    def reset(self) -> None:
        self.calls.append("reset")

    def plan(self, z_ctx, goal, shift=0, prev_action=None, max_time=None) -> PlanResult:
        self.calls.append({"ctx": z_ctx.clone(), "shift": shift, "prev": prev_action})
        n = len([c for c in self.calls if c != "reset"])
        raw = torch.arange(self.horizon * self.model.frameskip, dtype=torch.float32) / 100 + n
        actions = raw.repeat_interleave(2).reshape(self.horizon, -1)  # each raw action = (v, v)
        return PlanResult(actions=actions, latents=torch.zeros(self.horizon, 2), cost=0.0, terms=[],
                          planner=self.name, level=0, stats=PlanStats())


def test_executes_stacked_raw_actions_in_order_and_replans_every_model_step() -> None:
    model = stacked_model(frameskip=2)
    model.levels[0] = type(model.levels[0])(0, 1, 4, (-10.0,) * 4, (10.0,) * 4)
    planner = ScriptedPlanner(model)
    ctl = MPCController(model, planner)  # replan_every defaults to frameskip = 2
    ctl.set_goal(torch.zeros(2))
    steps = [ctl.step(torch.full((2,), float(t))) for t in range(5)]
    assert [s.replanned for s in steps] == [True, False, True, False, True]
    assert [s.action[0] for s in steps] == pytest.approx([1.00, 1.01, 2.00, 2.01, 3.00])
    plans = [c for c in planner.calls if c != "reset"]
    assert [p["shift"] for p in plans] == [0, 1, 1]
    # the previous model action handed to the planner is the one executed last (for the smoothness term)
    assert plans[1]["prev"] is not None and plans[1]["prev"][0] == pytest.approx(1.00)


def test_execute_several_model_steps_per_replan() -> None:
    model = stacked_model(frameskip=2)
    model.levels[0] = type(model.levels[0])(0, 1, 4, (-10.0,) * 4, (10.0,) * 4)
    planner = ScriptedPlanner(model)
    ctl = MPCController(model, planner, replan_every=4)
    ctl.set_goal(torch.zeros(2))
    steps = [ctl.step(torch.zeros(2)) for _ in range(5)]
    assert [s.replanned for s in steps] == [True, False, False, False, True]
    assert [p["shift"] for p in planner.calls if p != "reset"] == [0, 2]
    with pytest.raises(ValueError, match="replan_every"):
        MPCController(model, planner, replan_every=7)  # more than horizon x frameskip = 6 raw steps


def test_context_is_taken_at_model_step_spacing() -> None:
    model = stacked_model(frameskip=2, context=2)
    planner = ScriptedPlanner(model)
    ctl = MPCController(model, planner, replan_every=1)
    ctl.set_goal(torch.zeros(2))
    for t in range(5):
        ctl.step(torch.full((2,), float(t)))
    last_ctx = [c for c in planner.calls if c != "reset"][-1]["ctx"]
    assert last_ctx[:, 0].tolist() == [2.0, 4.0]  # z2 and z4: one model step (2 raw steps) apart, oldest first


def test_bad_inputs_are_refused() -> None:
    model = stacked_model()
    ctl = MPCController(model, ScriptedPlanner(model))
    with pytest.raises(ValueError, match="no goal"):
        ctl.step(torch.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        ctl.set_goal(torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        ctl.set_goal(torch.tensor([0.0, float("nan")]))
    ctl.set_goal(torch.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        ctl.step(torch.tensor([float("inf"), 0.0]))
    with pytest.raises(ValueError, match="shape"):
        ctl.step(torch.zeros(1, 2))


def test_closed_loop_reaches_the_goal_of_a_linear_system_within_bounds() -> None:
    model = stacked_model(frameskip=2, bound=0.5)
    # terminal-only cost would let the receding horizon dither (any path ending at the goal is optimal):
    # the progress term over all steps, as in the shipped profiles, makes it go straight
    costs = CostModule.from_config([{"type": "goal_distance", "params": {"mode": "terminal"}},
                                    {"type": "goal_distance", "weight": 0.5, "params": {"mode": "all"}}])
    planner = CEMPlanner(model, costs, horizon=4, num_samples=200, num_elites=20, iterations=4, seed=0)
    ctl = MPCController(model, planner)
    goal = torch.tensor([2.0, -1.5])
    ctl.set_goal(goal)
    z = torch.zeros(2)
    for _ in range(20):
        step = ctl.step(z)
        assert np.all(np.abs(step.action) <= 0.5 + 1e-6)
        z = z + torch.from_numpy(step.action)  # the true system moves one raw step per action
    assert torch.linalg.norm(z - goal) < 0.15


class PushingPlanner:
    """Always plans to push +x at ``speed`` per raw step (a wall the model does not know stops the agent); its
    plans are ``horizon`` steps long, so which of two planners planned is visible; counts its resets."""

    name = "pushing"

    def __init__(self, horizon: int = 4, speed: float = 2.0) -> None:
        self.horizon, self.speed, self.resets = horizon, speed, 0

    def reset(self, seed: int | None = None) -> None:
        self.resets += 1

    def plan(self, z_ctx, goal, shift=0, prev_action=None, max_time=None) -> PlanResult:
        actions = torch.tensor([[self.speed, 0.0]] * self.horizon)
        return PlanResult(actions=actions, latents=torch.zeros(self.horizon, 2), cost=0.0, terms=[],
                          planner=self.name, level=0, stats=PlanStats())


@pytest.mark.parametrize("situation", ["stuck", "moving", "at_goal"])
def test_stall_recovery_backs_off_and_steps_aside_only_when_stuck_away_from_the_goal(situation: str) -> None:
    from jepa_planner.controller import StallRecovery

    model = stacked_model(frameskip=1, bound=3.0)
    recovery = StallRecovery(window=4, min_move=0.05, min_command=1.0, min_goal_distance=0.2, steps=3, scale=1.5)
    ctl = MPCController(model, PushingPlanner(), recovery=recovery)
    ctl.set_goal(torch.zeros(2) if situation == "at_goal" else torch.tensor([50.0, 0.0]))
    steps = []
    for t in range(10):
        z = torch.tensor([0.5 * t, 0.0]) if situation == "moving" else torch.full((2,), 0.05)
        steps.append(ctl.step(z))
    manoeuvre = [s for s in steps if s.index == -1]
    if situation != "stuck":
        assert manoeuvre == []  # moving, or pushing at the goal itself: the plan is executed
        return
    first = next(i for i, s in enumerate(steps) if s.index == -1)
    assert first == 4  # after `window` raw steps of pushing without moving
    assert steps[first].action.tolist() == pytest.approx([-1.5, 0.0])  # straight back from the mean command
    for s in steps[first + 1 : first + 3]:  # then sideways, one side for the whole manoeuvre
        assert abs(s.action[0]) < 1e-6 and abs(abs(s.action[1]) - 1.5) < 1e-6
    assert steps[first + 1].action[1] == steps[first + 2].action[1]
    assert steps[first + 3].replanned  # a fresh plan where the manoeuvre ended
    assert all(np.all(np.abs(s.action) <= 3.0) for s in steps)


def test_profiles_carry_their_stall_recovery_to_the_controller() -> None:
    from jepa_planner.controller import StallRecovery
    from jepa_planner.profiles import PlannerProfile, build_planner, load_profile

    model = stacked_model(frameskip=1, bound=3.0)
    shipped = load_profile("flat_cem")
    assert shipped.stall_recovery is not None
    ctl = MPCController(model, build_planner(shipped, model))
    assert isinstance(ctl.recovery, StallRecovery) and ctl.recovery.window == 8
    assert MPCController(model, build_planner(load_profile("flat_mppi"), model)).recovery is None
    from jepa_planner.policy import DistilledPolicy  # Mode 1 alone gets it too: the `policy` profile has one

    policy = DistilledPolicy.for_model(model, hidden=8)
    mode1 = build_planner(load_profile("policy"), model, policy=policy)
    assert isinstance(MPCController(model, mode1).recovery, StallRecovery)
    from jepa_planner.profiles import PolicySeededPlanner  # a wrapper seeding Mode 2 keeps its planner's recovery

    seeded = PolicySeededPlanner(build_planner(shipped, model), policy, 0, warm_start="first")
    assert MPCController(model, seeded).recovery == ctl.recovery
    with pytest.raises(ValueError, match="stall_recovery"):
        PlannerProfile.model_validate({"name": "x", "stall_recovery": {"windw": 3}})
    with pytest.raises(ValueError, match="window"):
        StallRecovery(window=0)


@pytest.mark.parametrize("situation", ["no_progress", "progress", "at_goal"])
def test_horizon_escalation_plans_longer_only_while_the_goal_stops_coming_nearer(situation: str) -> None:
    from jepa_planner.controller import HorizonEscalation

    model = stacked_model(frameskip=1, bound=3.0)
    short, long = PushingPlanner(2, speed=1.0), PushingPlanner(5, speed=1.0)
    short.escalation = HorizonEscalation(horizon=5, window=6, min_progress=0.5, min_goal_distance=0.2, steps=4)
    short.long_planner = long
    ctl = MPCController(model, short)
    goal = torch.zeros(2) if situation == "at_goal" else torch.tensor([40.0, 0.0])
    ctl.set_goal(goal)
    horizons = []
    for t in range(30):
        # roaming on a circle around the start (no progress), or walking to the goal
        z = torch.tensor([t * 1.0, 0.0]) if situation == "progress" else torch.tensor([np.cos(t), np.sin(t)]) * 0.1
        step = ctl.step(z)
        if step.replanned:
            horizons.append(step.plan.actions.shape[0])
    if situation != "no_progress":
        assert set(horizons) == {2} and ctl.escalations == 0  # progress, or already at the goal: the profile's own
        return
    # replanning every raw step: `window` raw steps of no progress, `steps` with the long planner, then the
    # profile's own for a full window again before the next escalation
    assert horizons == ([2] * 6 + [5] * 4) * 3 and ctl.escalations == 3
    assert long.resets >= 3 and short.resets >= 3  # each switch plans afresh (the other's warm start is stale)


def test_profiles_build_the_escalation_and_refuse_it_where_it_cannot_apply() -> None:
    from pydantic import ValidationError

    from jepa_planner.controller import HorizonEscalation
    from jepa_planner.profiles import PlannerProfile, build_planner, load_profile

    model = stacked_model(frameskip=1, bound=3.0)
    flat = load_profile("flat_cem").model_dump() | {"escalation": None}
    escalating = PlannerProfile(**{**flat, "escalation": {"horizon": flat["levels"][0]["horizon"] + 4}})
    planner = build_planner(escalating, model)
    assert isinstance(planner.escalation, HorizonEscalation)
    assert planner.long_planner.horizon == escalating.escalation.horizon > planner.horizon
    assert type(planner.long_planner) is type(planner)  # the same level-0 planner, only looking further
    from jepa_planner.planners.base import planner_parts, set_candidates_kept

    assert planner.long_planner in list(planner_parts(planner))  # critic swaps and shown candidates reach it
    set_candidates_kept(planner, 3)
    assert planner.candidates_kept == planner.long_planner.candidates_kept == 3
    ctl = MPCController(model, planner)
    assert ctl.escalation is planner.escalation and ctl.long_planner is planner.long_planner
    assert not hasattr(build_planner(PlannerProfile(**flat), model), "long_planner")
    with pytest.raises(ValidationError, match="must exceed the level's horizon"):
        PlannerProfile(**{**flat, "escalation": {"horizon": flat["levels"][0]["horizon"]}})
    hierarchical = load_profile("hierarchical").model_dump()
    with pytest.raises(ValidationError, match="escalation needs a flat profile"):
        PlannerProfile(**{**hierarchical, "escalation": {"horizon": 20}})
    with pytest.raises(ValidationError, match="seeded"):
        PlannerProfile(**{**flat, "escalation": {"horizon": 20}, "seed_warm_start": "first", "policy_path": "p.pt"})
    with pytest.raises(ValueError, match="no long_planner"):
        bare = PushingPlanner(2)
        bare.escalation = HorizonEscalation()
        MPCController(model, bare)


def test_final_approach_plans_short_exactly_while_the_goal_is_near_and_before_an_escalation() -> None:
    from jepa_common.convert import latent_distance
    from jepa_planner.controller import FinalApproach, HorizonEscalation

    model = stacked_model(frameskip=1, bound=3.0)
    own, short, long = PushingPlanner(3, speed=1.0), PushingPlanner(1, speed=1.0), PushingPlanner(6, speed=1.0)
    own.approach, own.short_planner = FinalApproach(horizon=1, goal_distance=2.0), short
    # an escalation that would fire at once (no progress needed to stall, goal never "near" for it)
    own.escalation = HorizonEscalation(horizon=6, window=1, min_progress=100.0, min_goal_distance=0.0, steps=2)
    own.long_planner = long
    ctl = MPCController(model, own)
    goal = torch.tensor([10.0, 0.0])
    ctl.set_goal(goal)
    seen = []
    for t in range(12):  # walking to the goal, one unit per raw step (replans every raw step)
        z = torch.tensor([float(t), 0.0])
        step = ctl.step(z)
        assert step.replanned
        seen.append((latent_distance(z, goal, ctl.latent_std) < 2.0, step.plan.actions.shape[0]))
    assert any(near for near, _ in seen) and not all(near for near, _ in seen)
    assert all(h == 1 for near, h in seen if near)  # near the goal: the short planner, escalation or not
    assert all(h in (3, 6) for near, h in seen if not near)
    assert short.resets >= 2  # set_goal resets it, and switching to it plans afresh


def test_profiles_build_the_final_approach_and_refuse_it_where_it_cannot_apply() -> None:
    from pydantic import ValidationError

    from jepa_planner.controller import FinalApproach
    from jepa_planner.planners.base import planner_parts
    from jepa_planner.profiles import PlannerProfile, build_planner, load_profile
    from jepa_planner.testing import LinearWorldModel

    model = stacked_model(frameskip=1, bound=3.0)
    flat = load_profile("flat_cem").model_dump() | {"approach": None}
    horizon = flat["levels"][0]["horizon"]
    approaching = PlannerProfile(**{**flat, "approach": {"horizon": 2, "goal_distance": 0.1}})
    planner = build_planner(approaching, model)
    assert planner.approach == FinalApproach(horizon=2, goal_distance=0.1)
    assert planner.short_planner.horizon == 2 < planner.horizon == horizon
    assert type(planner.short_planner) is type(planner) and planner.short_planner in list(planner_parts(planner))
    ctl = MPCController(model, planner)
    assert ctl.approach is planner.approach and ctl.short_planner is planner.short_planner
    assert not hasattr(build_planner(PlannerProfile(**flat), model), "short_planner")
    with pytest.raises(ValidationError, match="must be below level 0's horizon"):
        PlannerProfile(**{**flat, "approach": {"horizon": horizon}})
    with pytest.raises(ValidationError, match="goal_distance"):
        PlannerProfile(**{**flat, "approach": {"goal_distance": -1.0}})
    hierarchical = load_profile("hierarchical").model_dump() | {"approach": None}
    two_levels = LinearWorldModel(dim=2, bound=1.0, strides=(4,))
    h_planner = build_planner(PlannerProfile(**{**hierarchical, "approach": {"horizon": 1}}), two_levels)
    assert h_planner.short_planner.horizon == 1 and not hasattr(h_planner.short_planner, "planners")  # level 0 alone
    assert h_planner.short_planner in list(planner_parts(h_planner))
    with pytest.raises(ValidationError, match="must be below level 0's horizon"):
        PlannerProfile(**{**hierarchical, "approach": {"horizon": hierarchical["levels"][-1]["horizon"]}})
    with pytest.raises(ValidationError, match="approach needs a flat or hierarchical profile"):
        PlannerProfile(**{**flat, "escalation": None, "approach": {"horizon": 1}, "seed_warm_start": "first", "policy_path": "p.pt"})
    with pytest.raises(ValueError, match="no short_planner"):
        bare = PushingPlanner(2)
        bare.approach = FinalApproach()
        MPCController(model, bare)
    with pytest.raises(ValueError, match="final approach needs"):
        FinalApproach(horizon=0)
