"""What every latent planner shares: input checks, action bounds, warm start, time budget, stats, ``PlanResult``.

A planner is stateful only for the warm start (the previous solution, shifted by the executed steps);
``reset()`` forgets it. Subclasses implement ``_optimise`` as one short loop over batched tensors.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from jepa_planner.costs import CostBreakdown, CostInputs, CostModule, TermValue
from jepa_world_model.protocol import LevelSpec, WorldModel


@dataclass
class PlanStats:
    """How much work a plan took.

    Attributes:
        iterations: optimisation iterations run.
        samples: candidate action sequences evaluated.
        model_steps: candidate-steps predicted (samples x horizon), the model evaluations.
        time_s: wall time of ``plan``.
        best_cost_per_iter: best cost seen so far after each iteration.
        budget_hit: whether ``max_time`` stopped the loop early.
        candidate_latents: (K, H, *latent_shape) predicted latents of the K best candidates of the last
            iteration, best first, when the planner was asked to keep them (``candidates_kept``), else None.
        candidate_costs: (K,) their total costs.
    """

    iterations: int = 0
    samples: int = 0
    model_steps: int = 0
    time_s: float = 0.0
    best_cost_per_iter: list[float] = field(default_factory=list)
    budget_hit: bool = False
    candidate_latents: torch.Tensor | None = None
    candidate_costs: torch.Tensor | None = None


@dataclass
class PlanResult:
    """The best action sequence found and what the model predicts it does.

    Attributes:
        actions: (H, A) actions of ``level``, within its bounds; execute ``actions[0]`` (or the first few).
        latents: (H, *latent_shape) predicted latents after each action.
        cost: total cost of the plan.
        terms: per-term weighted costs of the plan (name, weight, value).
        planner: planner name (``cem``, ``mppi``, ``gradient``, ``policy``, ``hierarchical``).
        level: model level the actions belong to.
        stats: work done.
        subgoal: the latent this level aimed at when it is a subgoal from the level above, else None.
        parent: the plan of the level above (hierarchical planning), else None.
        replanned: False when a hierarchical planner reused this (upper-level) plan from an earlier call.
    """

    actions: torch.Tensor
    latents: torch.Tensor
    cost: float
    terms: list[TermValue]
    planner: str
    level: int
    stats: PlanStats
    subgoal: torch.Tensor | None = None
    parent: PlanResult | None = None
    replanned: bool = True

    @property
    def chain(self) -> list[PlanResult]:
        """This plan and the plans of the levels above it, finest first."""
        out, node = [], self
        while node is not None:
            out.append(node)
            node = node.parent
        return out

    def model_steps_this_call(self) -> int:
        """Candidate-steps predicted by this call, over all levels that replanned."""
        return sum(p.stats.model_steps for p in self.chain if p.replanned)


def level_spec(model: WorldModel, level: int) -> LevelSpec:
    """The model's LevelSpec for ``level``; a clear error when the model lacks it."""
    for spec in model.levels:
        if spec.level == level:
            return spec
    raise ValueError(
        f"the world model has levels {[s.level for s in model.levels]}, but level {level} was asked for; "
        "use a flat profile or a model bundle trained with more levels"
    )


def check_latent(name: str, z: torch.Tensor) -> None:
    """Raise ValueError when ``z`` holds NaN/inf (the caller must then not act on a plan)."""
    if not torch.isfinite(z).all():
        raise ValueError(f"{name} contains NaN or inf values; refusing to plan (check the encoder input)")


class Planner(ABC):
    """Base of CEM, MPPI and gradient planners over one model level.

    Args:
        model: any ``WorldModel``.
        costs: the cost module scoring candidate rollouts.
        horizon: number of steps (of ``level``) planned.
        level: model level whose actions are planned.
        seed: seed of the planner's torch.Generator (sampling is reproducible).
        max_time: default time budget in seconds per ``plan`` call (None: no limit); at least one iteration always runs.
        warm_start: ``repeat`` (shift the previous plan, repeat its last step), ``prior`` (shift, append the
            prior mean) or ``none``.
        candidates_kept: how many of the last iteration's best candidate rollouts ``PlanStats`` keeps
            (for displays; 0 keeps none and costs nothing).
    """

    name = "base"

    def __init__(
        self,
        model: WorldModel,
        costs: CostModule,
        *,
        horizon: int = 5,
        level: int = 0,
        seed: int = 0,
        max_time: float | None = None,
        warm_start: str = "repeat",
        candidates_kept: int = 0,
    ) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if warm_start not in ("repeat", "prior", "none"):
            raise ValueError(f"warm_start must be 'repeat', 'prior' or 'none', got {warm_start!r}")
        if max_time is not None and max_time <= 0:
            raise ValueError(f"max_time must be > 0 seconds or None, got {max_time}")
        self.model, self.costs, self.horizon, self.level = model, costs, int(horizon), int(level)
        self.spec = level_spec(model, level)
        self.low = torch.tensor(self.spec.action_low, dtype=torch.float32)
        self.high = torch.tensor(self.spec.action_high, dtype=torch.float32)
        if self.low.numel() != self.spec.action_dim or self.high.numel() != self.spec.action_dim:
            raise ValueError(
                f"level {level}: action bounds have {self.low.numel()}/{self.high.numel()} entries, action_dim is {self.spec.action_dim}"
            )
        self.prior_mean = (self.low + self.high) / 2
        self.max_time, self.warm_start, self.seed = max_time, warm_start, seed
        self.generator = torch.Generator().manual_seed(seed)
        self._previous: torch.Tensor | None = None
        if candidates_kept < 0:
            raise ValueError(f"candidates_kept must be >= 0, got {candidates_kept}")
        self.candidates_kept = int(candidates_kept)

    @property
    def action_dim(self) -> int:
        return self.spec.action_dim

    def reset(self, seed: int | None = None) -> None:
        """Forget the warm start (new episode or new goal); reseed when ``seed`` is given."""
        self._previous = None
        if seed is not None:
            self.seed = seed
            self.generator.manual_seed(seed)

    def clip(self, actions: torch.Tensor) -> torch.Tensor:
        """Actions clamped to the level's bounds."""
        return torch.maximum(torch.minimum(actions, self.high), self.low)

    def initial_mean(self, shift: int = 1) -> torch.Tensor:
        """The warm-start action sequence (H, A): previous plan shifted by ``shift`` executed steps."""
        prior = self.prior_mean.expand(self.horizon, -1).clone()
        if self._previous is None or self.warm_start == "none" or shift >= self.horizon:
            return prior
        kept = self._previous[shift:]
        fill_row = kept[-1:] if self.warm_start == "repeat" else self.prior_mean.unsqueeze(0)
        return torch.cat([kept, fill_row.expand(self.horizon - kept.shape[0], -1)], dim=0)

    def plan(
        self,
        z_ctx: torch.Tensor,
        goal: torch.Tensor,
        *,
        prev_action: torch.Tensor | None = None,
        proposals: torch.Tensor | None = None,
        max_time: float | None = None,
        shift: int = 1,
        warm_actions: torch.Tensor | None = None,
    ) -> PlanResult:
        """Optimise an action sequence from the context toward the goal latent.

        Args:
            z_ctx: context latents, (C, *latent_shape), (1, C, *latent_shape) or one latent (*latent_shape).
            goal: goal latent (*latent_shape) or (1, *latent_shape).
            prev_action: (A,) last executed action of this level (for the smoothness term).
            proposals: (P, H, A) candidate sequences to include (e.g. from the Mode-1 policy).
            max_time: time budget for this call (default: the planner's).
            shift: steps of the previous plan executed since the last call (warm start).
            warm_actions: (A,) or (K, A), K <= H: replace the first K actions of the warm start (the samplers'
                initial mean), e.g. the Mode-1 policy's decision or its rollout; the rest stays the previous
                plan shifted.

        Returns:
            PlanResult with in-bound actions.
        """
        ctx, goal = self.validate(z_ctx, goal)
        if proposals is not None:
            proposals = self._check_proposals(proposals)
        budget = self.max_time if max_time is None else max_time
        stats = PlanStats()
        start = time.perf_counter()
        deadline = math.inf if budget is None else start + budget
        init = self.initial_mean(shift)
        if warm_actions is not None:
            warm = torch.as_tensor(warm_actions, dtype=torch.float32)
            warm = warm.unsqueeze(0) if warm.dim() == 1 else warm
            if warm.dim() != 2 or warm.shape[1] != self.action_dim or not 1 <= warm.shape[0] <= self.horizon \
                    or not torch.isfinite(warm).all():
                raise ValueError(f"warm_actions must be (A,) or (K, A) finite values with A = {self.action_dim} and "
                                 f"K <= horizon {self.horizon}, got shape {tuple(warm.shape)}")
            init = init.clone()
            init[: warm.shape[0]] = warm
        init = self.clip(init)
        with torch.no_grad():  # sampling planners need no graph; the gradient planner re-enables it
            actions, latents, breakdown, best = self._optimise(ctx, goal, init, proposals, prev_action, deadline, stats)
        stats.time_s = time.perf_counter() - start
        actions = self.clip(actions.detach())  # never hand out an out-of-bound action
        self._previous = actions.clone()
        return PlanResult(
            actions=actions,
            latents=latents.detach(),
            cost=float(breakdown.total[best]),
            terms=breakdown.summary(best),
            planner=self.name,
            level=self.level,
            stats=stats,
        )

    @abstractmethod
    def _optimise(
        self,
        ctx: torch.Tensor,
        goal: torch.Tensor,
        init: torch.Tensor,
        proposals: torch.Tensor | None,
        prev_action: torch.Tensor | None,
        deadline: float,
        stats: PlanStats,
    ) -> tuple[torch.Tensor, torch.Tensor, CostBreakdown, int]:
        """Return (best actions (H, A), their latents (H, *L), a breakdown holding them, their index in it)."""

    def evaluate(
        self, ctx: torch.Tensor, goal: torch.Tensor, actions: torch.Tensor, prev_action: torch.Tensor | None, stats: PlanStats
    ) -> tuple[torch.Tensor, CostBreakdown]:
        """Roll out all candidates (B, H, A) in one batched ``model.rollout`` and score them."""
        batch = actions.shape[0]
        latents = self.model.rollout(ctx.expand(batch, *ctx.shape[1:]), actions, level=self.level)
        breakdown = self.costs(
            CostInputs(
                latents=latents,
                actions=actions,
                goal=goal,
                latent_mean=self.model.latent_mean,
                latent_std=self.model.latent_std,
                action_low=self.low,
                action_high=self.high,
                prev_action=prev_action,
            )
        )
        # A diverged rollout must never win.
        breakdown.total = torch.nan_to_num(breakdown.total, nan=math.inf, posinf=math.inf)
        stats.samples += batch
        stats.model_steps += batch * actions.shape[1]
        return latents, breakdown

    def keep_candidates(self, stats: PlanStats, latents: torch.Tensor, total: torch.Tensor) -> None:
        """Store the ``candidates_kept`` best rollouts (B, H, *L) of the last iteration in ``stats``, best first."""
        k = min(self.candidates_kept, int(latents.shape[0]))
        if k <= 0:
            return
        idx = torch.topk(total.detach(), k, largest=False).indices
        stats.candidate_latents = latents.detach()[idx]
        stats.candidate_costs = total.detach()[idx]

    def validate(self, z_ctx: torch.Tensor, goal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Context as (1, C, *L) and goal as (*L); ValueError naming the bad input otherwise."""
        shape = tuple(self.model.latent_shape)
        nd = len(shape)
        z_ctx = torch.as_tensor(z_ctx, dtype=torch.float32)
        goal = torch.as_tensor(goal, dtype=torch.float32)
        if tuple(z_ctx.shape) == shape:
            z_ctx = z_ctx.reshape(1, 1, *shape)
        elif z_ctx.dim() == nd + 1 and tuple(z_ctx.shape[1:]) == shape:
            z_ctx = z_ctx.unsqueeze(0)
        elif not (z_ctx.dim() == nd + 2 and z_ctx.shape[0] == 1 and tuple(z_ctx.shape[2:]) == shape):
            raise ValueError(
                f"z_ctx has shape {tuple(z_ctx.shape)}; expected (C, {shape}) or (1, C, {shape}) for latent_shape {shape}"
            )
        if tuple(goal.shape) == (1, *shape):
            goal = goal[0]
        if tuple(goal.shape) != shape:
            raise ValueError(f"goal latent has shape {tuple(goal.shape)}; expected {shape} (the model's latent_shape)")
        if z_ctx.shape[1] == 0:
            raise ValueError("z_ctx has an empty context (C = 0)")
        check_latent("z_ctx (current state latents)", z_ctx)
        check_latent("goal latent", goal)
        return z_ctx[:, -self.model.context :], goal

    def _check_proposals(self, proposals: torch.Tensor) -> torch.Tensor:
        proposals = torch.as_tensor(proposals, dtype=torch.float32)
        if proposals.dim() == 2:
            proposals = proposals.unsqueeze(0)
        if proposals.dim() != 3 or proposals.shape[2] != self.action_dim:
            raise ValueError(f"proposals have shape {tuple(proposals.shape)}; expected (P, H, {self.action_dim})")
        if proposals.shape[1] != self.horizon:  # cut or pad (repeat last step) to the horizon
            if proposals.shape[1] > self.horizon:
                proposals = proposals[:, : self.horizon]
            else:
                pad = proposals[:, -1:].expand(-1, self.horizon - proposals.shape[1], -1)
                proposals = torch.cat([proposals, pad], dim=1)
        if not torch.isfinite(proposals).all():
            raise ValueError("proposals contain NaN or inf values")
        return self.clip(proposals)


def out_of_time(deadline: float) -> bool:
    """Whether the time budget has run out (checked after each iteration)."""
    return time.perf_counter() >= deadline


def planner_parts(planner: object) -> Iterator[object]:
    """Every planner a composed planner holds, for settings that must reach all of them: the planner inside a
    wrapper (``planner``), the long planner of a horizon escalation (``long_planner``), the short planner of a
    final approach (``short_planner``), every level of a hierarchical one (``planners``), else the planner
    itself (wrappers are yielded too)."""
    for inner in (getattr(planner, "planner", None), getattr(planner, "long_planner", None),
                  getattr(planner, "short_planner", None)):
        if inner is not None:
            yield from planner_parts(inner)
    yield from getattr(planner, "planners", [planner])


def set_candidates_kept(planner: object, n: int) -> None:
    """Ask a planner (all its parts, :func:`planner_parts`) to keep its ``n`` best candidate rollouts; planners
    without candidates (Mode-1 policy) are left alone."""
    for p in planner_parts(planner):
        if hasattr(p, "candidates_kept"):
            p.candidates_kept = max(0, int(n))
