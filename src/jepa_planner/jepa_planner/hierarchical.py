"""Hierarchical latent planning (H-JEPA / HWM style): coarse levels hand subgoal latents to finer ones.

The top level plans macro-actions (model level k > 0) toward the goal latent; its first predicted
latent (``subgoal_index``) becomes the goal of the level below, down to level 0, which plans raw
(stacked) actions. Upper levels replan every ``replan_every`` calls of the level below, when their
subgoal is reached, or when the goal changes; otherwise their previous plan (and subgoal) is kept.

The upper levels can also run elsewhere (the configurator node plans them and hands the subgoal to
the actor): ``subgoal()`` runs only the upper levels, and ``set_external_subgoal()`` makes ``plan()``
skip them and plan level 0 toward the subgoal it was given.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import torch

from jepa_common.convert import latent_distance
from jepa_planner.planners.base import Planner, PlanResult


class HierarchicalPlanner:
    """A stack of planners, top (coarsest) level first, level 0 last.

    Args:
        planners: one planner per level, levels strictly decreasing, ending at level 0 (all on the same model).
        replan_every: per upper level, number of ``plan`` calls between its replans (int = same for all).
        subgoal_index: which predicted latent of an upper plan is handed down (0 = after its first macro-step).
        subgoal_tolerance: replan an upper level early when the current latent is within this normalised
            distance (``jepa_common.convert.latent_distance``, RMS) of its subgoal (None: only on schedule).
        direct_goal_distance: when the current latent is within this normalised distance of the goal,
            level 0 plans straight to the goal (the last stretch needs no subgoal; None: never).
    """

    name = "hierarchical"

    def __init__(
        self,
        planners: Sequence[Planner],
        replan_every: int | Sequence[int] = 4,
        subgoal_index: int = 0,
        subgoal_tolerance: float | None = None,
        direct_goal_distance: float | None = None,
    ) -> None:
        planners = list(planners)
        if len(planners) < 2:
            raise ValueError("a hierarchical planner needs at least two levels (an upper level and level 0)")
        levels = [p.level for p in planners]
        if levels[-1] != 0 or any(a <= b for a, b in itertools.pairwise(levels)):
            raise ValueError(f"planner levels must be strictly decreasing and end at level 0 (top first), got {levels}")
        if len({id(p.model) for p in planners}) != 1:
            raise ValueError("all levels of a hierarchical planner must plan with the same world model")
        every = [replan_every] * (len(planners) - 1) if isinstance(replan_every, int) else list(replan_every)
        if len(every) != len(planners) - 1 or any(n < 1 for n in every):
            raise ValueError(f"replan_every needs one value >= 1 per upper level ({len(planners) - 1}), got {replan_every}")
        for p in planners[:-1]:
            if not 0 <= subgoal_index < p.horizon:
                raise ValueError(f"subgoal_index {subgoal_index} is outside the horizon {p.horizon} of level {p.level}")
        self.planners, self.replan_every, self.subgoal_index = planners, every, subgoal_index
        self.subgoal_tolerance, self.direct_goal_distance = subgoal_tolerance, direct_goal_distance
        self.model = planners[0].model
        self.reset()

    @property
    def level(self) -> int:
        return 0

    @property
    def horizon(self) -> int:
        return self.planners[-1].horizon

    def reset(self, seed: int | None = None) -> None:
        """Forget every level's plan and warm start."""
        for i, p in enumerate(self.planners):
            p.reset(None if seed is None else seed + i)
        self._plans: list[PlanResult | None] = [None] * (len(self.planners) - 1)
        self._calls_since = [0] * (len(self.planners) - 1)
        self._steps_since = [0] * (len(self.planners) - 1)  # level-0 steps executed since each upper replan
        self._goal: torch.Tensor | None = None
        self.external_subgoal: torch.Tensor | None = None

    def set_external_subgoal(self, subgoal: torch.Tensor | None) -> None:
        """Plan level 0 toward ``subgoal`` (computed by another process) instead of running the upper levels;
        None returns to planning them here."""
        self.external_subgoal = None if subgoal is None else torch.as_tensor(subgoal, dtype=torch.float32)

    def subgoal(
        self, z_ctx: torch.Tensor, goal: torch.Tensor, *, max_time: float | None = None, shift: int = 1
    ) -> tuple[torch.Tensor, PlanResult]:
        """Run the upper levels only (on their schedule): the latent handed to level 0, and the plan just above it.

        ``shift`` is the number of level-0 steps executed since the last call.
        """
        ctx, goal = self.planners[-1].validate(z_ctx, goal)
        return self._subgoal(ctx, goal, max_time, shift)

    def _subgoal(
        self, ctx: torch.Tensor, goal: torch.Tensor, max_time: float | None, shift: int
    ) -> tuple[torch.Tensor, PlanResult]:
        """``subgoal`` on validated inputs (context (1, C, *L), goal (*L))."""
        z_now = ctx[0, -1]
        if self._goal is None or not torch.equal(goal, self._goal):
            self._plans = [None] * len(self._plans)  # a new goal invalidates every upper plan
            self._goal = goal.clone()
        first_call = all(p is None for p in self._plans)
        target, parent = goal, None
        for i, planner in enumerate(self.planners[:-1]):
            if not first_call:
                self._steps_since[i] += shift
            cached = self._plans[i]
            if cached is None or self._due(i, z_now):
                stride = planner.spec.stride
                cached = planner.plan(ctx, target, max_time=max_time, shift=max(1, self._steps_since[i] // stride))
                cached.subgoal = None if i == 0 else target
                cached.parent = parent
                self._plans[i], self._calls_since[i], self._steps_since[i] = cached, 0, 0
            else:
                cached = _reused(cached)
            self._calls_since[i] += 1
            parent = cached
            target = cached.latents[self.subgoal_index]
        return target, parent

    def plan(
        self,
        z_ctx: torch.Tensor,
        goal: torch.Tensor,
        *,
        prev_action: torch.Tensor | None = None,
        proposals: torch.Tensor | None = None,
        max_time: float | None = None,
        shift: int = 1,
    ) -> PlanResult:
        """Plan every level top-down; returns level 0's plan with ``subgoal`` and ``parent`` (the level above) set.

        Args mirror ``Planner.plan``; ``shift`` is the number of level-0 steps executed since the last call,
        ``proposals`` seed level 0 only, ``max_time`` applies to each level that replans.
        """
        low = self.planners[-1]
        ctx, goal = low.validate(z_ctx, goal)
        z_now = ctx[0, -1]
        if self.external_subgoal is not None:
            _, target = low.validate(ctx, self.external_subgoal)
            parent = None
        else:
            target, parent = self._subgoal(ctx, goal, max_time, shift)
        if self.direct_goal_distance is not None and self._distance(z_now, goal) <= self.direct_goal_distance:
            target = goal
        result = low.plan(ctx, target, prev_action=prev_action, proposals=proposals, max_time=max_time, shift=shift)
        result.subgoal, result.parent = target, parent
        return result

    def _due(self, i: int, z_now: torch.Tensor) -> bool:
        """Whether upper level ``i`` must replan now (schedule or subgoal reached)."""
        if self._calls_since[i] >= self.replan_every[i]:
            return True
        plan = self._plans[i]
        if self.subgoal_tolerance is not None and plan is not None:
            return self._distance(z_now, plan.latents[self.subgoal_index]) <= self.subgoal_tolerance
        return False

    def _distance(self, a: torch.Tensor, b: torch.Tensor) -> float:
        return latent_distance(a, b, self.model.latent_std)


def _reused(plan: PlanResult) -> PlanResult:
    """A shallow copy of a kept upper plan marked as not recomputed (so its work is not counted twice)."""
    return replace(plan, replanned=False)
