"""Intrinsic cost: pluggable, weighted, differentiable terms scored over a batch of candidate rollouts.

Each term is a small class with a ``name``, a ``weight`` and ``score(inputs) -> (B,)`` raw values
(one per candidate); ``CostModule`` sums the weighted terms and keeps the per-term values for display.
Each level of a planner profile (``config/planner_profiles.yaml``) lists its terms as ``{type, weight, params}``;
the defaults of a term's params are those of its class below (there is no separate cost file).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from jepa_common import plugins
from jepa_common.yaml_io import load_yaml_file


@dataclass
class CostInputs:
    """A batch of candidate rollouts and what the terms need to score them.

    Attributes:
        latents: predicted latents (B, H, *latent_shape).
        actions: candidate actions (B, H, A).
        goal: goal latent (*latent_shape) or (B, *latent_shape).
        latent_mean / latent_std: training latent statistics (*latent_shape) for normalisation, or None.
        action_low / action_high: (A,) bounds of the level's action.
        prev_action: (A,) the action executed just before the plan, or None (for smoothness).
    """

    latents: torch.Tensor
    actions: torch.Tensor
    goal: torch.Tensor
    latent_mean: torch.Tensor | None = None
    latent_std: torch.Tensor | None = None
    action_low: torch.Tensor | None = None
    action_high: torch.Tensor | None = None
    prev_action: torch.Tensor | None = None

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        """Latents in units of the training distribution (identity when the statistics are absent)."""
        if self.latent_mean is None or self.latent_std is None:
            return z
        return (z - self.latent_mean) / self.latent_std.clamp_min(1e-6)

    @property
    def latent_ndim(self) -> int:
        return self.latents.dim() - 2


def _mean_over_latent(x: torch.Tensor, latent_ndim: int) -> torch.Tensor:
    """Mean over the trailing latent dimensions."""
    return x.flatten(start_dim=x.dim() - latent_ndim).mean(dim=-1) if latent_ndim else x


def latent_error(a: torch.Tensor, b: torch.Tensor, latent_ndim: int, norm: str = "l2") -> torch.Tensor:
    """Mean squared (``l2``) or mean absolute (``l1``) difference over the latent dimensions (a cost; the
    distance unit of tolerances is ``jepa_common.convert.latent_distance``, its square root for ``l2``)."""
    diff = a - b
    per_dim = diff.pow(2) if norm == "l2" else diff.abs()
    return _mean_over_latent(per_dim, latent_ndim)


def _step_weights(horizon: int, weighting: str, device: torch.device) -> torch.Tensor:
    """Weights over the horizon summing to 1 (``uniform`` or ``linear``: later steps count more)."""
    w = (
        torch.ones(horizon, device=device)
        if weighting == "uniform"
        else torch.arange(1, horizon + 1, dtype=torch.float32, device=device)
    )
    return w / w.sum()


class CostTerm:
    """Base of every term: a name, a weight and a batched ``score``."""

    type_name = "base"

    def __init__(self, weight: float = 1.0, name: str | None = None) -> None:
        self.weight = float(weight)
        self.name = name or self.type_name

    def score(self, inputs: CostInputs) -> torch.Tensor:
        """Raw (unweighted) value per candidate, shape (B,)."""
        raise NotImplementedError


class GoalDistanceCost(CostTerm):
    """Distance between predicted latents and the goal latent, on normalised latents.

    Args:
        norm: ``l2`` (mean squared error, the best in published latent planners: docs/background.md) or ``l1``.
        mode: ``terminal`` (last predicted latent only) or ``all`` (weighted over the horizon).
        step_weighting: ``uniform`` or ``linear`` (for ``mode: all``).
        normalise: divide by the model's latent_std after removing latent_mean.
    """

    type_name = "goal_distance"

    def __init__(
        self,
        weight: float = 1.0,
        norm: str = "l2",
        mode: str = "terminal",
        step_weighting: str = "linear",
        normalise: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(weight, name)
        _check_choice("norm", norm, ("l2", "l1"))
        _check_choice("mode", mode, ("terminal", "all"))
        _check_choice("step_weighting", step_weighting, ("uniform", "linear"))
        self.norm, self.mode, self.step_weighting, self.normalise = norm, mode, step_weighting, normalise

    def score(self, inputs: CostInputs) -> torch.Tensor:
        prep = inputs.normalise if self.normalise else (lambda z: z)
        goal = prep(inputs.goal)
        if goal.dim() == inputs.latent_ndim + 1:  # per-candidate goal (B, *L) -> (B, 1, *L)
            goal = goal.unsqueeze(1)
        if self.mode == "terminal":
            z = prep(inputs.latents[:, -1:])
            return latent_error(z, goal, inputs.latent_ndim, self.norm)[:, 0]
        per_step = latent_error(prep(inputs.latents), goal, inputs.latent_ndim, self.norm)  # (B, H)
        return per_step @ _step_weights(per_step.shape[1], self.step_weighting, per_step.device)


class ProprioGoalCost(CostTerm):
    """Squared error between a proprio readout of the terminal latent and the goal's.

    Args:
        readout: callable mapping latents (..., *latent_shape) to proprio (..., P), e.g. a linear probe;
            when None the term scores zero (a model without a proprio readout).
        goal_proprio: (P,) target; when None it is the readout of the goal latent.
    """

    type_name = "proprio_goal"

    def __init__(
        self,
        weight: float = 1.0,
        readout: Callable[[torch.Tensor], torch.Tensor] | None = None,
        goal_proprio: Sequence[float] | torch.Tensor | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(weight, name)
        self.readout = readout
        self.goal_proprio = None if goal_proprio is None else torch.as_tensor(goal_proprio, dtype=torch.float32)

    def score(self, inputs: CostInputs) -> torch.Tensor:
        if self.readout is None:
            return inputs.latents.new_zeros(inputs.latents.shape[0])
        p = self.readout(inputs.latents[:, -1])
        target = self.goal_proprio if self.goal_proprio is not None else self.readout(inputs.goal)
        return (p - target.to(p)).pow(2).flatten(1).mean(dim=1)


class ActionEffortCost(CostTerm):
    """Mean squared action, in units of the half range of the bounds (so 1 = at the bound)."""

    type_name = "action_effort"

    def score(self, inputs: CostInputs) -> torch.Tensor:
        return _scaled_actions(inputs, inputs.actions).pow(2).mean(dim=(1, 2))


class ActionSmoothnessCost(CostTerm):
    """Mean squared change between consecutive actions (including the previously executed one)."""

    type_name = "action_smoothness"

    def score(self, inputs: CostInputs) -> torch.Tensor:
        a = _scaled_actions(inputs, inputs.actions)
        if inputs.prev_action is not None:
            prev = _scaled_actions(inputs, inputs.prev_action.reshape(1, 1, -1).to(a)).expand(a.shape[0], 1, -1)
            a = torch.cat([prev, a], dim=1)
        if a.shape[1] < 2:
            return a.new_zeros(a.shape[0])
        return (a[:, 1:] - a[:, :-1]).pow(2).mean(dim=(1, 2))


class CriticCost(CostTerm):
    """A learned critic's predicted cost-to-go from the terminal latent (terminal cost beyond the horizon).

    Args:
        critic: callable ``(latents (B, *L), goal (B, *L)) -> (B,)``, e.g. ``jepa_planner.critic.Critic``.
            When None the term scores zero, so a profile can list it before a critic is trained.
        path: a critic checkpoint to load when no ``critic`` object is given (a profile naming its critic);
            a missing file leaves the term at zero until one is hot-swapped in (``swap_critic``).
    """

    type_name = "critic"

    def __init__(
        self,
        weight: float = 1.0,
        critic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        path: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(weight, name)
        if critic is None and path and Path(path).is_file():
            from jepa_planner.critic import load_critic_checked

            critic = load_critic_checked(path)
        self.critic = critic

    def score(self, inputs: CostInputs) -> torch.Tensor:
        critic = self.critic  # read once: a hot swap between here and the call cannot mix two critics
        if critic is None:
            return inputs.latents.new_zeros(inputs.latents.shape[0])
        z = inputs.latents[:, -1]
        goal = inputs.goal if inputs.goal.dim() == z.dim() else inputs.goal.unsqueeze(0).expand_as(z)
        return critic(z, goal).reshape(-1)


class SafetyCost(CostTerm):
    """Penalises predicted latents outside the training distribution, or a user-supplied callable.

    Args:
        max_sigma: normalised latent magnitude beyond which the penalty grows quadratically.
        fn: optional callable ``latents (B, H, *L) -> (B,)`` replacing the default.
    """

    type_name = "safety"

    def __init__(
        self,
        weight: float = 1.0,
        max_sigma: float = 3.0,
        fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(weight, name)
        self.max_sigma, self.fn = float(max_sigma), fn

    def score(self, inputs: CostInputs) -> torch.Tensor:
        if self.fn is not None:
            return self.fn(inputs.latents).reshape(-1)
        excess = torch.relu(inputs.normalise(inputs.latents).abs() - self.max_sigma)
        return _mean_over_latent(excess.pow(2), inputs.latent_ndim).mean(dim=1)


COST_TYPES: dict[str, type[CostTerm]] = {
    cls.type_name: cls
    for cls in (GoalDistanceCost, ProprioGoalCost, ActionEffortCost, ActionSmoothnessCost, CriticCost, SafetyCost)
}


@dataclass
class TermValue:
    """One term's share of a plan's cost, for display."""

    name: str
    weight: float
    value: float  # weighted


@dataclass
class CostBreakdown:
    """Total cost per candidate and each term's weighted value per candidate."""

    total: torch.Tensor  # (B,)
    terms: dict[str, torch.Tensor]  # name -> (B,) weighted
    weights: dict[str, float]

    def summary(self, index: int) -> list[TermValue]:
        """Per-term weighted values of one candidate (e.g. the best plan)."""
        return [TermValue(n, self.weights[n], float(v[index])) for n, v in self.terms.items()]


class CostModule:
    """A weighted sum of cost terms; differentiable when every term is."""

    def __init__(self, terms: Sequence[CostTerm]) -> None:
        if not terms:
            raise ValueError("CostModule needs at least one cost term (e.g. {type: goal_distance, weight: 1.0})")
        names: dict[str, int] = {}
        for term in terms:  # unique display names: goal_distance, goal_distance_2, ...
            count = names.get(term.name, 0) + 1
            names[term.name] = count
            if count > 1:
                term.name = f"{term.name}_{count}"
        self.terms = list(terms)

    def __call__(self, inputs: CostInputs) -> CostBreakdown:
        terms: dict[str, torch.Tensor] = {}
        total = inputs.latents.new_zeros(inputs.latents.shape[0])
        for term in self.terms:
            if term.weight == 0.0:
                continue
            value = term.weight * term.score(inputs)
            terms[term.name] = value
            total = total + value
        return CostBreakdown(total, terms, {t.name: t.weight for t in self.terms})

    def term(self, name_or_type: str) -> CostTerm:
        """The first term with this name or type (to set a critic or readout after building)."""
        for t in self.terms:
            if name_or_type in (t.name, t.type_name):
                return t
        raise KeyError(f"no cost term named {name_or_type!r}; terms: {[t.name for t in self.terms]}")

    @classmethod
    def from_config(cls, config: Sequence[Mapping[str, Any]] | Mapping[str, Any] | str | Path, **objects: Any) -> CostModule:
        """Build from a list of ``{type, weight, params}`` (or a YAML path / a dict with key ``terms``).

        Args:
            objects: non-YAML objects passed to terms that accept them by parameter name
                (``critic=...``, ``readout=...``, ``fn=...``).
        """
        if isinstance(config, str | Path):
            path = Path(config)
            if not path.is_file():
                raise FileNotFoundError(f"cost config {path} does not exist")
            config = load_yaml_file(path) or {}
        if isinstance(config, Mapping):
            if "terms" not in config:
                raise ValueError(f"cost config mapping needs a 'terms' list, got keys {sorted(config)}")
            config = config["terms"]
        terms = []
        for i, entry in enumerate(config):
            terms.append(build_term(entry, where=f"cost term {i}", **objects))
        return cls(terms)


def build_term(entry: Mapping[str, Any], where: str = "cost term", **objects: Any) -> CostTerm:
    """One term from ``{type, weight, params, name}``; unknown types list the valid ones."""
    if not isinstance(entry, Mapping) or "type" not in entry:
        raise ValueError(f"{where}: expected a mapping with a 'type' key, got {entry!r}")
    unknown_keys = set(entry) - {"type", "weight", "params", "name"}
    if unknown_keys:
        raise ValueError(f"{where}: unknown keys {sorted(unknown_keys)}; valid: type, weight, params, name")
    kind = entry["type"]
    valid = plugins.names(plugins.COST_TERMS, COST_TYPES)
    if kind not in valid:
        raise ValueError(f"{where}: unknown cost type {kind!r}; valid types: {sorted(valid)}")
    cls = plugins.load(plugins.COST_TERMS, kind, COST_TYPES)
    params = dict(entry.get("params") or {})
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    bad = set(params) - accepted
    if bad:
        raise ValueError(f"{where} ({kind}): unknown params {sorted(bad)}; valid: {sorted(accepted - {'weight', 'name'})}")
    for key, obj in objects.items():
        if key in accepted and key not in params:
            params[key] = obj
    return cls(weight=float(entry.get("weight", 1.0)), name=entry.get("name"), **params)


def _check_choice(param: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{param}={value!r} is not one of {choices}")


def _scaled_actions(inputs: CostInputs, actions: torch.Tensor) -> torch.Tensor:
    """Actions centred and divided by the half range of the bounds (identity without bounds)."""
    if inputs.action_low is None or inputs.action_high is None:
        return actions
    centre = (inputs.action_high + inputs.action_low) / 2
    half = ((inputs.action_high - inputs.action_low) / 2).clamp_min(1e-6)
    return (actions - centre) / half
