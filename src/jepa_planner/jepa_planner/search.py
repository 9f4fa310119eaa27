"""Latent search: a breadth-first search through the predictor hands the sampling planner a subgoal.

A sampling planner (CEM, MPPI) scores each candidate by the latent distance from its last predicted state to the
goal. Where a wall stands between the agent and the goal, that distance falls toward the wall and rises toward the
door, so every candidate that goes round looks worse than one pressed on the wall: even with the exact model,
``flat_cem`` reaches goals in the other room only 55-70% of the time when the door is away from the middle
(``bench/door_oracle.py``). A cost-to-go that knows the door fixes it, and the search below is one the model
itself provides, without a learned critic:

- from the current latent, expand every node with a small set of constant level-0 actions (``directions``
  headings at full speed; for raw actions that are not 2-D, plus and minus each axis), one batched predictor call
  per depth, to ``depth`` model steps;
- keep at most ``max_nodes`` new nodes per depth, chosen farthest-point first among those farther than
  ``radius`` from every node kept so far (both in units of the largest one-step move from the root, so the
  settings carry over between latents of different scales): the frontier spreads over the reachable states
  instead of crowding the wall;
- the best node minimises its goal distance plus ``step_cost`` per model step (a shortest way, not any way);
- the node ``lead`` steps along the path to it becomes the sampling planner's goal, the path its warm start
  and one of its candidates; within ``lead`` steps of the best node the planner aims at the goal itself.

``replan_every`` model steps between searches: in between the path found last is followed (the planner still
replans every step). ``bench/door_oracle.py --profile flat_cem_search`` measures it.

Blocked moves: where the predictor lets the agent through a wall (a doorway's jamb a few pixels off), the search
keeps choosing the push that the world stops, and the controller's stall recovery backs off only for the agent
to come back. The controller tells the planner each stall (``note_blocked``: the latent and the command that did
not move it); until the next goal, the search does not expand a node within ``blocked_radius`` (units of the
largest one-step move) of a stall with a heading within ``blocked_angle`` degrees of its command, so its path goes
round the place the world, not the model, showed to be closed. 0 turns it off.

Distances are RMS in units of the model's ``latent_std``, as everywhere in the suite (``jepa_common.convert.latent_distance``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from jepa_common.convert import STD_FLOOR
from jepa_planner.planners.base import PlanResult, level_spec


@dataclass
class LatentSearch:
    """Settings of the search (the profile key ``search``; see the module docstring)."""

    depth: int = 12
    directions: int = 8
    max_nodes: int = 32
    radius: float = 0.3
    step_cost: float = 0.04
    lead: int = 3
    replan_every: int = 1
    blocked_radius: float = 0.0
    blocked_angle: float = 45.0  # the setting measured (bench/blocked_moves.py)

    def __post_init__(self) -> None:
        if self.depth < 1 or self.directions < 2 or self.max_nodes < 1 or self.lead < 1 or self.replan_every < 1:
            raise ValueError(f"search needs depth, max_nodes, lead, replan_every >= 1 and directions >= 2, got {self}")
        if not (self.radius > 0 and self.step_cost >= 0 and math.isfinite(self.radius) and math.isfinite(self.step_cost)):
            raise ValueError(f"search needs radius > 0 and step_cost >= 0 (units of the largest one-step move), got {self}")
        if not (0 <= self.blocked_radius < math.inf and 0 <= self.blocked_angle <= 180):
            raise ValueError(f"search needs blocked_radius >= 0 (finite) and blocked_angle in [0, 180] degrees, got {self}")


@dataclass
class SearchResult:
    """What one search found.

    Attributes:
        latents: (N, *L) every node kept (the root first).
        path: (K,) node indices from the root's child to the best node (empty: no node beats the root).
        actions: (K, A) the level-0 action into each node of ``path``.
    """

    latents: torch.Tensor
    path: list[int]
    actions: torch.Tensor


def action_set(low: torch.Tensor, high: torch.Tensor, frameskip: int, directions: int) -> torch.Tensor:
    """(M, A) constant level-0 actions: each raw action held for the ``frameskip`` raw steps of a model step.

    2-D raw actions: ``directions`` headings at the largest speed every heading allows; otherwise the largest
    action plus and minus along each raw axis.
    """
    raw_low, raw_high = low.reshape(frameskip, -1)[0], high.reshape(frameskip, -1)[0]
    if raw_low.numel() == 2:
        reach = float(torch.minimum(raw_high, -raw_low).min())
        angles = torch.arange(directions, dtype=torch.float32) * (2 * math.pi / directions)
        raw = torch.stack([angles.cos(), angles.sin()], dim=1) * reach
    else:
        eye = torch.eye(raw_low.numel())
        raw = torch.cat([eye * raw_high, eye * raw_low])
    return torch.maximum(torch.minimum(raw.repeat(1, frameskip), high), low)


class SearchGuidedPlanner:
    """A level-0 sampling planner steered by :class:`LatentSearch` subgoals (``search`` in a flat profile).

    Args:
        planner: the flat level-0 planner (``CEMPlanner``, ``MPPIPlanner``, ...).
        search: the search settings.

    The moves hold each raw action for the model's ``frameskip`` raw steps (1 when it has none).
    """

    def __init__(self, planner, search: LatentSearch) -> None:
        self.planner, self.settings, self.model = planner, search, planner.model
        if planner.level != 0:
            raise ValueError(f"search steers a level-0 planner, got level {planner.level}")
        spec = level_spec(self.model, 0)
        frameskip = int(getattr(self.model, "frameskip", 1) or 1)
        if spec.action_dim % frameskip:
            raise ValueError(f"level-0 action_dim {spec.action_dim} is not a multiple of frameskip {frameskip}")
        self.actions = action_set(planner.low, planner.high, frameskip, search.directions)
        self.name, self.horizon, self.level = f"search+{planner.name}", planner.horizon, 0
        self.std = torch.as_tensor(self.model.latent_std, dtype=torch.float32).clamp_min(STD_FLOOR)
        self.last: SearchResult | None = None
        self._route: list[tuple[torch.Tensor, torch.Tensor]] = []  # (latent, action) still ahead on the last path
        self._since_search = 0
        raw = self.actions.reshape(self.actions.shape[0], frameskip, -1)[:, 0]
        self._headings = raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-9)  # (M, A_raw) unit raw heading per move
        self._blocked_at = torch.zeros(0, self.std.numel())  # (K, D) point of each stall (see ``points``)
        self._blocked_heading = torch.zeros(0, self._headings.shape[1])  # (K, A_raw) its command's unit heading

    MAX_BLOCKED = 64  # stalls remembered per goal (the oldest go first)

    def note_blocked(self, z: torch.Tensor, command: torch.Tensor) -> None:
        """The world stopped the agent at latent ``z`` (*L) under raw ``command`` (A_raw,): the search will not
        expand that heading near there until ``forget_blocked`` (a new goal). Nothing when blocked_radius is 0."""
        command = torch.as_tensor(command, dtype=torch.float32).flatten()
        norm = float(command.norm())
        if self.settings.blocked_radius <= 0 or norm == 0 or command.numel() != self._headings.shape[1]:
            return
        point = self.points(torch.as_tensor(z, dtype=torch.float32).unsqueeze(0))
        self._blocked_at = torch.cat([self._blocked_at, point])[-self.MAX_BLOCKED:]
        self._blocked_heading = torch.cat([self._blocked_heading, (command / norm)[None]])[-self.MAX_BLOCKED:]
        self._route, self._since_search = [], 0  # search again from here

    def forget_blocked(self) -> None:
        self._blocked_at, self._blocked_heading = self._blocked_at[:0], self._blocked_heading[:0]

    @property
    def blocked_count(self) -> int:
        """Stalls remembered for the current goal."""
        return self._blocked_at.shape[0]

    def blocked_moves(self, points: torch.Tensor, step: float) -> torch.Tensor:
        """(N, M) bool: move m from the node at ``points[n]`` pushes where a stall was seen (``step``: the unit)."""
        near = torch.cdist(points, self._blocked_at) < self.settings.blocked_radius * step  # (N, K)
        aligned = self._headings @ self._blocked_heading.T > math.cos(math.radians(self.settings.blocked_angle))  # (M, K)
        return (near.float() @ aligned.float().T) > 0

    def reset(self, seed: int | None = None) -> None:
        """Forget the path (new goal or episode) and the planner's warm start."""
        self.planner.reset(seed)
        self._route, self._since_search, self.last = [], 0, None

    def points(self, z: torch.Tensor) -> torch.Tensor:
        """(N, *L) latents as (N, D) points whose Euclidean distances are the RMS distances in latent_std units."""
        u = (z / self.std).flatten(1)
        return u / math.sqrt(u.shape[1])

    def search(self, ctx: torch.Tensor, goal: torch.Tensor, deadline: float = math.inf) -> SearchResult:
        """Search from context ``ctx`` (1, C, *L) toward ``goal`` (*L); no deeper once ``deadline``
        (``time.perf_counter()``) has passed."""
        s, moves = self.settings, self.actions
        m = moves.shape[0]
        nodes, contexts = ctx[0, -1:].clone(), ctx.clone()  # (1, *L), (1, C, *L)
        points = self.points(nodes)
        parent, move, depth = [-1], [-1], [0]
        frontier = torch.zeros(1, dtype=torch.long)
        step = radius = step_cost = 0.0
        for d in range(1, s.depth + 1):
            ctxs = contexts[frontier].repeat_interleave(m, 0)
            with torch.no_grad():
                nxt = self.model.predict(ctxs, moves.repeat(len(frontier), 1), level=0)
            finite = torch.isfinite(nxt).flatten(1).all(1)
            nxt = torch.where(finite.view(-1, *[1] * (nxt.dim() - 1)), nxt, nodes[:1])  # a diverged child is never kept
            new = self.points(nxt)
            if d == 1:
                step = float(torch.cdist(new, points[:1]).amax())
                radius, step_cost = s.radius * step, s.step_cost * step
                if step <= 0:
                    break
            gap = torch.cdist(new, points).amin(1).masked_fill(~finite, -math.inf)
            if self.blocked_count:  # a child the world showed to be out of reach is never kept
                gap = gap.masked_fill(self.blocked_moves(points[frontier], step).flatten(), -math.inf)
            pair = torch.cdist(new, new)
            kept: list[int] = []
            while len(kept) < s.max_nodes:  # farthest-point first, none within radius of another
                i = int(gap.argmax())
                if float(gap[i]) <= radius:
                    break
                kept.append(i)
                gap = torch.minimum(gap, pair[i])
            if not kept:
                break
            idx = torch.tensor(kept)
            first = nodes.shape[0]
            nodes, points = torch.cat([nodes, nxt[idx]]), torch.cat([points, new[idx]])
            contexts = torch.cat([contexts, torch.cat([ctxs[idx, 1:], nxt[idx, None]], dim=1)])
            parent += frontier.repeat_interleave(m)[idx].tolist()
            move += (idx % m).tolist()
            depth += [d] * len(kept)
            frontier = torch.arange(first, nodes.shape[0])
            if time.perf_counter() >= deadline:
                break
        goal_point = self.points(goal.unsqueeze(0))
        score = torch.cdist(points, goal_point)[:, 0] + step_cost * torch.tensor(depth, dtype=torch.float32)
        best, path = int(score.argmin()), []
        while best > 0:
            path.append(best)
            best = parent[best]
        path.reverse()
        acts = moves[[move[i] for i in path]] if path else moves[:0]
        return SearchResult(latents=nodes, path=path, actions=acts)

    def plan(self, z_ctx, goal, *, shift: int = 1, proposals=None, warm_actions=None, max_time: float | None = None,
             **kwargs) -> PlanResult:
        """Search (every ``replan_every`` model steps, else follow the last path ``shift`` steps on), then plan
        toward the subgoal ``lead`` steps along it with the path as warm start and candidate. With a time budget
        (``max_time``, else the planner's) the search stops deepening at half of it and the planner gets the rest."""
        if proposals is not None or warm_actions is not None:
            raise ValueError("search guides the planner itself: proposals and warm_actions are not taken")
        start = time.perf_counter()
        budget = self.planner.max_time if max_time is None else max_time
        ctx, g = self.planner.validate(z_ctx, goal)
        self._route = self._route[shift:]
        self._since_search += shift
        if not self._route or self._since_search >= self.settings.replan_every or len(self._route) <= self.settings.lead:
            self.last = self.search(ctx, g, math.inf if budget is None else start + budget / 2)
            self._route = [(self.last.latents[i], a) for i, a in zip(self.last.path, self.last.actions, strict=True)]
            self._since_search = 0
        if budget is not None:  # what the search left of the budget (the planner always runs one iteration)
            kwargs["max_time"] = max(budget - (time.perf_counter() - start), 1e-6)
        if not self._route:
            return self.planner.plan(ctx, g, shift=shift, **kwargs)
        acts = torch.stack([a for _, a in self._route[: self.horizon]])
        candidate = torch.cat([acts, acts.new_zeros(self.horizon - acts.shape[0], acts.shape[1])])
        lead = self.settings.lead
        subgoal = self._route[lead - 1][0] if len(self._route) > lead else None  # within lead steps: the goal itself
        target = g if subgoal is None else subgoal
        result = self.planner.plan(ctx, target, shift=shift, proposals=candidate[None], warm_actions=acts, **kwargs)
        result.planner, result.subgoal = self.name, subgoal
        return result
