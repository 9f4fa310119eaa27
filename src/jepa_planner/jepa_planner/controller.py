"""Closed-loop MPC controller: latents in, raw control actions out (Mode 2), independent of ROS.

One model step spans ``frameskip`` raw control steps and its action is those raw actions stacked.
The controller keeps the latent history at the raw rate, builds the model context at model-step
spacing, replans every ``replan_every`` raw steps (warm-started by the planner, shifted by the model
steps executed), and in between executes the plan's stacked raw actions one by one.

The actor node and the evaluation command both drive this class, so what is measured offline is
what runs on the robot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from jepa_common.convert import latent_distance
from jepa_planner.planners.base import PlanResult, check_latent
from jepa_world_model.protocol import WorldModel


@dataclass(frozen=True)
class StallRecovery:
    """A way out when the agent is stuck against an obstacle the model does not see stopping it.

    Near a wall's corner (a doorway's jamb) the model predicts sliding past where the wall stops the agent,
    so every new plan pushes into it again (two-rooms: half the failures of starts and goals near walls or
    in corners, ``models/two_rooms_fixed_door/README.md``). When, over the last ``window`` raw steps, the commands
    averaged more than ``min_command`` but the latent moved less than ``min_move`` (RMS of the change in
    units of the model's latent std), and the goal is still farther than ``min_goal_distance`` (same unit:
    never near the goal), the controller executes ``steps`` raw actions of size ``scale`` (clipped to the
    action bounds) before it plans again: one straight back from the mean command, the rest sideways to a
    random side.
    """

    window: int = 8
    min_move: float = 0.05
    min_command: float = 1.0
    min_goal_distance: float = 0.2
    steps: int = 4
    scale: float = 2.0

    def __post_init__(self) -> None:
        if self.window < 1 or self.steps < 1 or min(self.min_move, self.min_command, self.min_goal_distance, self.scale) < 0:
            raise ValueError(f"stall recovery needs window and steps >= 1 and non-negative thresholds, got {self}")


@dataclass(frozen=True)
class HorizonEscalation:
    """A longer look ahead when the goal stops coming nearer.

    A sampling planner whose horizon cannot see round a wall settles where the wall is a local minimum of the
    latent goal distance: the agent roams its start room, moving, so the stall recovery never fires. When, over
    the last ``window`` raw steps, the goal distance (RMS in units of the model's latent std) fell by less than
    ``min_progress`` and the goal is farther than ``min_goal_distance``, the controller plans with a second
    planner, the same level-0 planner with horizon ``horizon``, for the next ``steps`` raw steps, then returns
    to the profile's own. Replans keep their usual cost while the agent makes progress; only the stuck ones
    pay for the longer horizon (two-rooms: ``models/two_rooms_fixed_door/README.md``).
    """

    horizon: int = 12
    window: int = 40
    min_progress: float = 0.1
    min_goal_distance: float = 0.2
    steps: int = 40

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.window < 1 or self.steps < 1 or min(self.min_progress, self.min_goal_distance) < 0:
            raise ValueError(f"horizon escalation needs horizon, window and steps >= 1 and non-negative thresholds, got {self}")


@dataclass(frozen=True)
class FinalApproach:
    """A shorter look ahead near the goal.

    A predictor rolled out for many steps drifts even under zero actions (two-rooms: 0.03-0.13 latent std in 8
    model steps), as much as the last 2 px to the goal change the distance, so with a long horizon the terminal
    cost no longer tells the plan that arrives from the one that stays, and the agent hovers 1-3 px from goals
    near walls (``models/two_rooms_fixed_door/README.md``). When the goal distance (RMS in units of the model's latent std)
    is below ``goal_distance``, the controller plans with the profile's level-0 planner alone (no subgoals) at
    horizon ``horizon``, whose first steps the model predicts well.
    """

    horizon: int = 2
    goal_distance: float = 0.25  # about 5 px in two-rooms (flat_cem's, chosen on tuning seeds)

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.goal_distance < 0:
            raise ValueError(f"final approach needs horizon >= 1 and a non-negative goal_distance, got {self}")


def model_context(history: Sequence[torch.Tensor], frameskip: int, context: int) -> torch.Tensor:
    """(C, *latent_shape) from latents at the raw control rate: the newest and its predecessors
    ``frameskip`` raw steps apart, oldest first (fewer than C at the start of an episode)."""
    picks = list(history)[::-1][::frameskip][:context][::-1]
    return torch.stack(picks)


@dataclass
class ControlStep:
    """One control decision.

    Attributes:
        action: raw action (A_raw,) to send now, within the bounds.
        plan: the plan it comes from.
        replanned: whether this step ran the planner.
        index: which raw action of the plan this is (0 = the first raw action of its first model step; -1: a
            stall-recovery manoeuvre, not from the plan).
    """

    action: np.ndarray
    plan: PlanResult
    replanned: bool
    index: int


class MPCController:
    """Receding-horizon control over a (possibly hierarchical) latent planner.

    Args:
        model: the world model the planner uses (for context length and frameskip).
        planner: any object with ``plan(z_ctx, goal, shift=..., prev_action=...) -> PlanResult`` and ``reset()``.
        replan_every: raw steps between replans (default frameskip: one model step; at most the plan's length).
        raw_action_dim: size of one raw action (default: level-0 action_dim / frameskip).
        recovery: a :class:`StallRecovery` (default: the planner's ``stall_recovery``, which a profile
            sets; None: no recovery).

    A planner that carries ``escalation`` (a :class:`HorizonEscalation`) and ``long_planner`` (which a profile's
    ``escalation`` sets) is swapped for the long one while the goal distance stalls; one that carries
    ``approach`` (a :class:`FinalApproach`) and ``short_planner`` (a profile's ``approach``) for the short one
    while the goal is near (before any escalation).
    """

    def __init__(self, model: WorldModel, planner, *, replan_every: int | None = None, raw_action_dim: int | None = None,
                 recovery: StallRecovery | None = None) -> None:
        self.model, self.planner = model, planner
        self.recovery = recovery if recovery is not None else getattr(planner, "stall_recovery", None)
        std = getattr(model, "latent_std", None)  # the unit of latent_distance (stall recovery's thresholds)
        self.latent_std = torch.ones(model.latent_shape) if std is None else torch.as_tensor(std, dtype=torch.float32).reshape(model.latent_shape)
        self.recent: deque[tuple[torch.Tensor, np.ndarray]] = deque(maxlen=(self.recovery.window if self.recovery else 1) + 1)
        self.manoeuvre: list[np.ndarray] = []
        self.rng = np.random.default_rng(0)
        self.escalation: HorizonEscalation | None = getattr(planner, "escalation", None)
        self.long_planner = getattr(planner, "long_planner", None) if self.escalation is not None else None
        if self.escalation is not None and self.long_planner is None:
            raise ValueError("the planner carries a horizon escalation but no long_planner to escalate to")
        self.distances: deque[float] = deque(maxlen=(self.escalation.window if self.escalation else 0) + 1)
        self.approach: FinalApproach | None = getattr(planner, "approach", None)
        self.short_planner = getattr(planner, "short_planner", None) if self.approach is not None else None
        if self.approach is not None and self.short_planner is None:
            raise ValueError("the planner carries a final approach but no short_planner to approach with")
        self.escalated_left = 0  # raw steps still planned with the long planner
        self.escalations = 0  # times the escalation fired since the last reset (evaluation reports it)
        self.active = planner  # the planner the current plan came from
        self.frameskip = int(model.frameskip)
        level0 = next(s for s in model.levels if s.level == 0)
        self.raw_dim = raw_action_dim or level0.action_dim // self.frameskip
        if self.raw_dim * self.frameskip != level0.action_dim:
            raise ValueError(f"level-0 action_dim {level0.action_dim} is not frameskip {self.frameskip} x raw {self.raw_dim}")
        self.replan_every = int(replan_every or self.frameskip)
        horizon = int(getattr(planner, "horizon", 1))
        if not 1 <= self.replan_every <= horizon * self.frameskip:
            raise ValueError(f"replan_every must be in 1..horizon x frameskip = {horizon * self.frameskip} raw steps, "
                             f"got {self.replan_every}")
        low = np.asarray(level0.action_low, np.float32).reshape(self.frameskip, self.raw_dim)
        high = np.asarray(level0.action_high, np.float32).reshape(self.frameskip, self.raw_dim)
        self.raw_low, self.raw_high = low.min(0), high.max(0)
        self.history: deque[torch.Tensor] = deque(maxlen=(model.context - 1) * self.frameskip + 1)
        self.goal: torch.Tensor | None = None
        self.plan: PlanResult | None = None
        self.since_plan = 0
        self.last_model_action: torch.Tensor | None = None

    def reset(self, goal: torch.Tensor | None = None) -> None:
        """Forget history and plan (new episode); optionally set a new goal."""
        self.history.clear()
        self.plan, self.since_plan, self.last_model_action = None, 0, None
        self.recent.clear()
        self.manoeuvre, self.rng = [], np.random.default_rng(0)
        self.escalations = 0
        self.planner.reset()
        self.forget_blocked()
        if goal is not None:
            self.set_goal(goal)

    def set_goal(self, goal: torch.Tensor) -> None:
        """New goal latent: the next step replans from scratch."""
        goal = torch.as_tensor(goal, dtype=torch.float32)
        if tuple(goal.shape) != tuple(self.model.latent_shape):
            raise ValueError(
                f"goal latent has shape {tuple(goal.shape)}, the model's latents are {tuple(self.model.latent_shape)}"
            )
        check_latent("goal latent", goal)
        self.goal = goal
        self.plan = None
        self.recent.clear()
        self.manoeuvre = []
        self.planner.reset()
        self.distances.clear()
        self.escalated_left, self.active = 0, self.planner
        for other in (self.long_planner, self.short_planner):
            if other is not None:
                other.reset()
        self.forget_blocked()

    def forget_blocked(self) -> None:
        """Stalls seen on the way to the last goal (or in the last episode) say nothing about this one's way."""
        for planner in self.planners():
            if hasattr(planner, "forget_blocked"):
                planner.forget_blocked()

    def planners(self) -> list:
        """The profile's planner and its long / short variants (those the profile has)."""
        return [p for p in (self.planner, self.long_planner, self.short_planner) if p is not None]

    def context(self) -> torch.Tensor:
        """(C, *latent_shape): the newest latent and its predecessors at model-step spacing, oldest first."""
        return model_context(self.history, self.frameskip, self.model.context)

    def step(self, z: torch.Tensor, max_time: float | None = None) -> ControlStep:
        """Observe latent ``z`` and decide the raw action to apply now.

        Raises:
            ValueError: no goal set, NaN/inf latent, or a latent of the wrong shape. The caller must
                then send no command (or a stop), never a stale one as if valid.
        """
        if self.goal is None:
            raise ValueError("no goal set: call set_goal() first")
        z = torch.as_tensor(z, dtype=torch.float32)
        if tuple(z.shape) != tuple(self.model.latent_shape):
            raise ValueError(f"latent has shape {tuple(z.shape)}, the model's latents are {tuple(self.model.latent_shape)}")
        check_latent("observed latent", z)
        self.history.append(z)
        far = latent_distance(z, self.goal, self.latent_std)  # the goal distance every rule below reads
        self.track_progress(far)
        if self.recovery is not None and (self.manoeuvre or self.stalled(z, far)):
            return self.manoeuvre_step(z)
        replanned = False
        raw_left = 0 if self.plan is None else self.plan.actions.shape[0] * self.frameskip - self.since_plan
        if self.plan is None or self.since_plan >= self.replan_every or raw_left <= 0:
            shift = 0 if self.plan is None else self.since_plan // self.frameskip
            if self.plan is not None and self.since_plan > 0:  # the model action executed last (smoothness term)
                self.last_model_action = self.plan.actions[(self.since_plan - 1) // self.frameskip].detach()
            planner = self.choose_planner(far)
            if planner is not self.active:  # the other planner's warm start is stale: plan it afresh
                planner.reset()
                self.active, shift = planner, 0
            self.plan = planner.plan(
                self.context(), self.goal, shift=shift, prev_action=self.last_model_action, max_time=max_time
            )
            self.since_plan, replanned = 0, True
        raw = self.plan.actions.detach().cpu().numpy().reshape(-1, self.raw_dim)
        index = self.since_plan
        action = np.clip(raw[index], self.raw_low, self.raw_high).astype(np.float32)
        self.since_plan += 1
        self.remember(z, action)
        return ControlStep(action=action, plan=self.plan, replanned=replanned, index=index)

    # ---------------------------------------------------------------- horizon escalation
    def track_progress(self, far: float) -> None:
        """Record the goal distance ``far`` of each raw step and count down an escalation in progress."""
        if self.escalation is None:
            return
        if self.escalated_left == 1:  # it ends now: the profile's planner gets a full window before the next one
            self.distances.clear()
        self.escalated_left = max(0, self.escalated_left - 1)
        self.distances.append(far)

    def progress_stalled(self) -> bool:
        """Over the escalation window the goal distance fell by less than ``min_progress``, the goal not near."""
        esc = self.escalation
        if esc is None or len(self.distances) <= esc.window:
            return False
        now = self.distances[-1]
        return self.distances[0] - now < esc.min_progress and now > esc.min_goal_distance

    def choose_planner(self, far: float):
        """The short planner while the goal is near (goal distance ``far``); else the long planner while an
        escalation lasts (starting one when progress stalls); else the profile's."""
        if self.approach is not None and far < self.approach.goal_distance:
            return self.short_planner
        if self.escalation is not None and self.escalated_left == 0 and self.progress_stalled():
            self.escalated_left, self.escalations = self.escalation.steps, self.escalations + 1
        return self.long_planner if self.escalated_left > 0 else self.planner

    # ---------------------------------------------------------------- stall recovery
    def remember(self, z: torch.Tensor, action: np.ndarray) -> None:
        if self.recovery is not None:
            self.recent.append((z, action))

    def stalled(self, z: torch.Tensor, far: float) -> bool:
        """Commands kept pushing over the recovery window, the latent hardly moved, and the goal (distance ``far``)
        is not near."""
        rec = self.recovery
        if len(self.recent) < rec.window or self.plan is None:
            return False
        moved = latent_distance(z, self.recent[-rec.window][0], self.latent_std)
        pushed = float(np.mean([np.linalg.norm(a) for _, a in list(self.recent)[-rec.window:]]))
        return moved < rec.min_move and pushed > rec.min_command and far > rec.min_goal_distance

    def manoeuvre_step(self, z: torch.Tensor) -> ControlStep:
        """The next raw action of the recovery manoeuvre (planned when the stall is seen); a fresh plan after it."""
        if not self.manoeuvre:
            rec = self.recovery
            mean = np.mean([a for _, a in list(self.recent)[-rec.window:]], axis=0)
            back = -mean / (np.linalg.norm(mean) + 1e-9)
            side = np.zeros_like(back)
            if back.size >= 2:
                side[:2] = np.array([-back[1], back[0]]) * (1.0 if self.rng.random() < 0.5 else -1.0)
            self.manoeuvre = [back * rec.scale] + [side * rec.scale] * (rec.steps - 1)
            self.recent.clear()
            for planner in self.planners():  # a planner that searches avoids this push from here on (this goal)
                if hasattr(planner, "note_blocked"):
                    planner.note_blocked(z, torch.as_tensor(mean, dtype=torch.float32))
        action = np.clip(self.manoeuvre.pop(0), self.raw_low, self.raw_high).astype(np.float32)
        plan = self.plan
        if not self.manoeuvre:
            self.plan = None  # plan afresh from where the manoeuvre ends
        return ControlStep(action=action, plan=plan, replanned=False, index=-1)
