"""Planner profiles: named, validated planner set-ups loaded from YAML (config/planner_profiles.yaml).

A profile gives the planner per level (type, horizon, params, cost terms), top level first, the number of
model steps executed per replan, and tolerances. ``build_planner(profile, model)`` turns it into an object
with ``plan(z_ctx, goal, ...) -> PlanResult`` and ``reset()``.
"""

from __future__ import annotations

import inspect
import itertools
import os
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jepa_common import plugins
from jepa_common.yaml_io import load_yaml_file
from jepa_planner.controller import FinalApproach, HorizonEscalation, StallRecovery
from jepa_planner.costs import COST_TYPES, CostModule
from jepa_planner.hierarchical import HierarchicalPlanner
from jepa_planner.planners import PLANNER_TYPES, Planner
from jepa_planner.policy import DistilledPolicy, PolicyPlanner
from jepa_planner.search import LatentSearch, SearchGuidedPlanner
from jepa_world_model.protocol import WorldModel

# src/jepa_planner/jepa_planner/profiles.py -> repository root
_REPO_CONFIG = Path(__file__).resolve().parents[3] / "config"


class CostTermConfig(BaseModel):
    """One cost term: ``{type, weight, params, name}``."""

    model_config = ConfigDict(extra="forbid")
    type: str
    weight: float = 1.0
    params: dict[str, Any] = Field(default_factory=dict)
    name: str | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        valid = plugins.names(plugins.COST_TERMS, COST_TYPES)
        if value not in valid:
            raise ValueError(f"unknown cost type {value!r}; valid types: {sorted(valid)}")
        return value


class LevelConfig(BaseModel):
    """The planner of one model level."""

    model_config = ConfigDict(extra="forbid")
    level: int = Field(0, ge=0)
    type: str = Field("cem", description="a planner registered in entry point group jepa.planners (built-ins: cem, mppi, gradient)")
    horizon: int = Field(5, ge=1)
    max_time: float | None = Field(None, gt=0)
    warm_start: Literal["repeat", "prior", "none"] = "repeat"
    params: dict[str, Any] = Field(default_factory=dict)
    costs: list[CostTermConfig] = Field(default_factory=lambda: [CostTermConfig(type="goal_distance")])
    replan_every: int = Field(1, ge=1, description="upper levels: calls of the level below between replans")

    @field_validator("type")
    @classmethod
    def _known_planner(cls, value: str) -> str:
        valid = plugins.names(plugins.PLANNERS, PLANNER_TYPES)
        if value not in valid:
            raise ValueError(f"unknown planner type {value!r}; valid types: {valid} (register more under entry point group jepa.planners)")
        return value

    @model_validator(mode="after")
    def _known_params(self) -> LevelConfig:
        cls = plugins.load(plugins.PLANNERS, self.type, PLANNER_TYPES)
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "model", "costs", "kwargs"}
        accepted |= {"seed"}
        bad = set(self.params) - accepted
        if bad:
            raise ValueError(
                f"unknown params {sorted(bad)} for planner type {self.type!r}; valid: {sorted(accepted)} "
                "(horizon, level, max_time and warm_start are keys of the level itself)"
            )
        if not self.costs:
            raise ValueError("a level needs at least one cost term")
        return self


class StallRecoveryConfig(BaseModel):
    """``jepa_planner.controller.StallRecovery`` settings of a profile (``stall_recovery: {}`` for its defaults)."""

    model_config = ConfigDict(extra="forbid")
    window: int = Field(StallRecovery.window, ge=1, le=1000)
    min_move: float = Field(StallRecovery.min_move, ge=0)
    min_command: float = Field(StallRecovery.min_command, ge=0)
    min_goal_distance: float = Field(StallRecovery.min_goal_distance, ge=0)
    steps: int = Field(StallRecovery.steps, ge=1, le=1000)
    scale: float = Field(StallRecovery.scale, ge=0)


class EscalationConfig(BaseModel):
    """``jepa_planner.controller.HorizonEscalation`` settings of a flat profile (the long planner is its level 0
    with ``horizon`` instead of the level's own)."""

    model_config = ConfigDict(extra="forbid")
    horizon: int = Field(HorizonEscalation.horizon, ge=1, le=1000)
    window: int = Field(HorizonEscalation.window, ge=1, le=100000)
    min_progress: float = Field(HorizonEscalation.min_progress, ge=0)
    min_goal_distance: float = Field(HorizonEscalation.min_goal_distance, ge=0)
    steps: int = Field(HorizonEscalation.steps, ge=1, le=100000)


class ApproachConfig(BaseModel):
    """``jepa_planner.controller.FinalApproach`` settings of a flat or hierarchical profile (the short planner is
    its level 0 with ``horizon`` instead of the level's own)."""

    model_config = ConfigDict(extra="forbid")
    horizon: int = Field(FinalApproach.horizon, ge=1, le=1000)
    goal_distance: float = Field(FinalApproach.goal_distance, ge=0)


class SearchConfig(BaseModel):
    """``jepa_planner.search.LatentSearch`` settings of a flat profile (a search through the predictor hands its
    level-0 planner subgoals)."""

    model_config = ConfigDict(extra="forbid")
    depth: int = Field(LatentSearch.depth, ge=1, le=100)
    directions: int = Field(LatentSearch.directions, ge=2, le=64)
    max_nodes: int = Field(LatentSearch.max_nodes, ge=1, le=4096)
    radius: float = Field(LatentSearch.radius, gt=0, le=10)
    step_cost: float = Field(LatentSearch.step_cost, ge=0, le=10)
    lead: int = Field(LatentSearch.lead, ge=1, le=100)
    replan_every: int = Field(LatentSearch.replan_every, ge=1, le=100)
    blocked_radius: float = Field(LatentSearch.blocked_radius, ge=0, le=10)
    blocked_angle: float = Field(LatentSearch.blocked_angle, ge=0, le=180)


WarmStart = Literal["none", "first", "rollout"]  # how Mode 1 seeds a flat sampler's initial mean


def warm_start_name(value: Any) -> Any:
    """``true`` / ``false`` as written before the rollout warm start existed read as ``first`` / ``none``."""
    return ("first" if value else "none") if isinstance(value, bool) else value


class PlannerProfile(BaseModel):
    """A named planner set-up.

    Attributes:
        kind: ``flat`` (one level-0 planner), ``hierarchical`` (levels top first, ending at 0) or
            ``policy`` (the Mode-1 policy alone; ``policy_path`` names its checkpoint).
        levels: planners, top level first.
        execute_steps: model steps executed from each plan before replanning.
        replan_raw_steps: raw control steps between replans, overriding ``execute_steps`` (1 = replan at
            every camera frame: the tightest feedback, for models whose one-step error is near the
            success tolerance).
        subgoal_tolerance / direct_goal_distance / subgoal_index: hierarchical options (see HierarchicalPlanner).
        policy_path: checkpoint of a DistilledPolicy (kind policy, or to seed Mode 2: seed_samples > 0 or
            seed_warm_start).
        seed_samples: policy proposals added to each sampling iteration (Mode 1 seeding Mode 2).
        seed_warm_start: Mode 1 seeding Mode 2 without taking samples (flat planners; ``PolicySeededPlanner``):
            ``first`` (or ``true``) puts the policy's decision in place of the first action of the sampler's
            warm start, ``rollout`` replaces the whole warm start with the policy's rollout through the model
            over the horizon; ``none`` (or ``false``, the default) does neither.
        policy_noise: Gaussian noise on the policy's actions (fraction of the half range): acting alone
            (kind policy; default 0, deterministic), it lets Mode 1 leave the fixed points of a deterministic
            policy (``PolicyPlanner``); seeding (``seed_samples``), it spreads the proposals (default 0.1).
        policy_check_samples: kind policy only: K > 1 executes, of the policy's action and K - 1 noisy copies
            (``policy_noise``), the one the world model predicts nearest the goal one model step ahead
            (``PolicyPlanner(check_samples=)``; a one-step check, not Mode 1 alone).
        on_surprise: what the configurator does when the world model's surprise alarm rises during a task:
            ``ignore`` (a status warning only), ``replan`` (hand the goal to the actor again, which drops its
            plan and plans from the latest latent) or ``stop`` (end the task with reason "surprise", stopping the robot).
        stall_recovery: when set, the controller backs off and steps sideways when commands keep pushing but
            the latent does not move (``jepa_planner.controller.StallRecovery``; keys as there).
        escalation: flat profiles: when set, the controller plans with a longer horizon for a while when the
            goal distance stops falling (``jepa_planner.controller.HorizonEscalation``; keys as there).
        approach: flat and hierarchical profiles: when set, the controller plans with level 0 alone at a shorter
            horizon while the goal is near (``jepa_planner.controller.FinalApproach``; keys as there).
        search: flat profiles: when set, a breadth-first search through the predictor hands the level-0 planner
            subgoals round walls (``jepa_planner.search.LatentSearch``; keys as there).
        mode1_profile / familiar_distance: when a goal is familiar, i.e. within ``familiar_distance`` (RMS in
            latent_std units) of a goal the Mode-1 profile's policy was trained on, the configurator runs
            ``mode1_profile`` (a ``kind: policy`` profile) instead of this one (``choose_profile``).
    """

    model_config = ConfigDict(extra="forbid")
    name: str = ""
    description: str = ""
    kind: Literal["flat", "hierarchical", "policy"] = "flat"
    levels: list[LevelConfig] = Field(default_factory=lambda: [LevelConfig()])
    execute_steps: int = Field(1, ge=1)
    replan_raw_steps: int | None = Field(None, ge=1)
    subgoal_tolerance: float | None = Field(None, ge=0)
    direct_goal_distance: float | None = Field(None, ge=0)
    subgoal_index: int = Field(0, ge=0)
    policy_path: str | None = None
    seed_samples: int = Field(0, ge=0)
    seed_warm_start: WarmStart = "none"
    policy_noise: float | None = Field(None, ge=0, le=2)
    policy_check_samples: int = Field(1, ge=1, le=4096)
    on_surprise: Literal["ignore", "replan", "stop"] = "ignore"
    stall_recovery: StallRecoveryConfig | None = None
    escalation: EscalationConfig | None = None
    approach: ApproachConfig | None = None
    search: SearchConfig | None = None
    mode1_profile: str | None = None
    familiar_distance: float = Field(0.0, ge=0)

    @property
    def seeded(self) -> bool:
        """Whether Mode 1 seeds this profile's planner (proposals or a warm start)."""
        return self.seed_samples > 0 or self.seed_warm_start != "none"

    def replan_interval(self, frameskip: int) -> int:
        """Raw control steps between replans for a model with this ``frameskip``."""
        return int(self.replan_raw_steps or self.execute_steps * frameskip)

    @field_validator("seed_warm_start", mode="before")
    @classmethod
    def _warm_start_bool(cls, value: Any) -> Any:
        return warm_start_name(value)

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "goal_tolerance" in data:
            raise ValueError(
                "goal_tolerance is no longer a profile key (it was never used): a goal's tolerance is the ReachGoal "
                "goal's 'tolerance', else the configurator's 'default_tolerance' parameter; remove the key"
            )
        return data

    @model_validator(mode="after")
    def _consistent_levels(self) -> PlannerProfile:
        levels = [lv.level for lv in self.levels]
        if not levels or levels[-1] != 0:
            raise ValueError(f"the last (finest) level must be level 0, got levels {levels}")
        if self.kind in ("flat", "policy") and len(levels) != 1:
            raise ValueError(f"a {self.kind} profile has exactly one level (level 0), got {levels}")
        if self.kind == "hierarchical" and (len(levels) < 2 or any(a <= b for a, b in itertools.pairwise(levels))):
            raise ValueError(f"a hierarchical profile lists >= 2 levels, strictly decreasing, top first; got {levels}")
        if self.escalation is not None and (self.kind != "flat" or self.seeded):
            raise ValueError(f"escalation needs a flat profile not seeded by Mode 1 (this one is {self.kind}"
                             f"{', seeded' if self.seeded else ''}): the long planner is its level 0 alone")
        if self.escalation is not None and self.escalation.horizon <= self.levels[0].horizon:
            raise ValueError(f"escalation.horizon ({self.escalation.horizon}) must exceed the level's horizon "
                             f"({self.levels[0].horizon}): it is the longer look ahead")
        if self.approach is not None and (self.kind == "policy" or self.seeded):
            raise ValueError(f"approach needs a flat or hierarchical profile not seeded by Mode 1 (this one is {self.kind}"
                             f"{', seeded' if self.seeded else ''}): the short planner is its level 0 alone")
        if self.approach is not None and self.approach.horizon >= self.levels[-1].horizon:
            raise ValueError(f"approach.horizon ({self.approach.horizon}) must be below level 0's horizon "
                             f"({self.levels[-1].horizon}): it is the shorter look ahead")
        if self.search is not None and (self.kind != "flat" or self.seeded or self.escalation is not None):
            raise ValueError(f"search needs a flat profile without Mode-1 seeding or escalation (this one is {self.kind}"
                             f"{', seeded' if self.seeded else ''}{', with escalation' if self.escalation else ''}): "
                             "it steers the level-0 planner itself")
        if self.seed_warm_start != "none" and self.kind != "flat":
            raise ValueError(f"seed_warm_start needs a flat profile (this one is {self.kind}); use seed_samples to seed it")
        if self.policy_check_samples > 1 and (self.kind != "policy" or not self.policy_noise):
            raise ValueError(f"policy_check_samples > 1 needs kind: policy and policy_noise > 0 (the candidates are noisy "
                             f"copies of the policy's action); this profile is {self.kind} with policy_noise {self.policy_noise}")
        return self


# The profile each built-in world's benchmarks drive with: multi-room and PointMaze need the hierarchy
# (README: flat CEM fails beyond two doors / five cells); two-rooms' door-reading bundle needs the search round the
# wall (flat_cem stops at the wall when the door is far from the line to the goal: models/two_rooms/README.md);
# anything else plans flat.
WORLD_PROFILES = {"two_rooms": "flat_cem_search", "multi_room": "hierarchical", "point_maze": "hierarchical"}


def profile_for_world(world: str) -> str:
    """The benchmarks' planner profile for a built-in world (``flat_cem`` for any other)."""
    return WORLD_PROFILES.get(world, "flat_cem")


def default_profiles_path() -> Path:
    """Where the profiles live: ``$JEPA_CONFIG_DIR``, else the repository's config/ (source tree and
    editable installs), else jepa_planner's installed share/config (a colcon install on a robot)."""
    if "JEPA_CONFIG_DIR" in os.environ:
        return Path(os.environ["JEPA_CONFIG_DIR"]) / "planner_profiles.yaml"
    if (_REPO_CONFIG / "planner_profiles.yaml").is_file():
        return _REPO_CONFIG / "planner_profiles.yaml"
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("jepa_planner")) / "config" / "planner_profiles.yaml"
    except (ImportError, LookupError, ValueError):
        return _REPO_CONFIG / "planner_profiles.yaml"


def load_profiles(path: str | Path | None = None) -> dict[str, PlannerProfile]:
    """All profiles of a YAML file (top-level key ``profiles``), validated."""
    path = Path(path) if path is not None else default_profiles_path()
    if not path.is_file():
        raise FileNotFoundError(f"planner profiles file {path} does not exist")
    data = load_yaml_file(path) or {}
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise ValueError(f"{path}: expected a mapping with a 'profiles' mapping of name -> profile")
    out = {}
    for name, body in data["profiles"].items():
        try:
            out[name] = PlannerProfile.model_validate({**(body or {}), "name": name})
        except ValidationError as err:
            raise ValueError(f"{path}: profile {name!r} is invalid:\n{err}") from err
    _check_mode1_links(out, path)
    return out


def _check_mode1_links(profiles: dict[str, PlannerProfile], path: Path) -> None:
    for name, prof in profiles.items():
        target = prof.mode1_profile
        if target is not None and (target not in profiles or profiles[target].kind != "policy"):
            raise ValueError(f"{path}: profile {name!r} has mode1_profile {target!r}, which is not a 'kind: policy' profile "
                             f"of this file; policy profiles: {sorted(n for n, p in profiles.items() if p.kind == 'policy')}")


_FAMILIARITY_CACHE: dict[tuple[str, float], DistilledPolicy] = {}


def choose_profile(profiles: dict[str, PlannerProfile], name: str, goal, latent_std=None) -> tuple[str, str]:
    """The profile to run for ``goal``: ``name``, or its ``mode1_profile`` when the goal is familiar to that policy.

    Returns:
        (profile name, why): the reason is a short phrase for the log (familiarity distance or why not).
    """
    profile = profiles[name]
    target = profile.mode1_profile
    if target is None or profile.familiar_distance <= 0:
        return name, "no Mode-1 switch"
    path = profiles[target].policy_path
    if not path or not Path(path).is_file():
        return name, f"Mode-1 policy {path!r} not available"
    key = (str(path), Path(path).stat().st_mtime)
    if key not in _FAMILIARITY_CACHE:
        _FAMILIARITY_CACHE.clear()
        try:
            _FAMILIARITY_CACHE[key] = DistilledPolicy.load(path)
        except Exception as exc:  # a bad policy file keeps Mode 2
            return name, f"Mode-1 policy {path!r} unreadable ({type(exc).__name__})"
    distance = _FAMILIARITY_CACHE[key].goal_distance(torch.as_tensor(goal, dtype=torch.float32), latent_std)
    if distance <= profile.familiar_distance:
        return target, f"familiar goal (distance {distance:.3f} <= {profile.familiar_distance})"
    return name, f"unfamiliar goal (distance {distance:.3f} > {profile.familiar_distance})"


def load_profile(name: str, path: str | Path | None = None) -> PlannerProfile:
    """One named profile; an unknown name lists the available ones."""
    profiles = load_profiles(path)
    if name not in profiles:
        raise ValueError(f"unknown planner profile {name!r}; available: {sorted(profiles)}")
    return profiles[name]


def build_level_planner(cfg: LevelConfig, model: WorldModel, seed: int = 0, **cost_objects: Any) -> Planner:
    """One level's planner with its cost module (``cost_objects``: critic=..., readout=... for the terms)."""
    costs = CostModule.from_config([t.model_dump() for t in cfg.costs], **cost_objects)
    params = {"seed": seed, **cfg.params}
    return plugins.load(plugins.PLANNERS, cfg.type, PLANNER_TYPES)(
        model, costs, horizon=cfg.horizon, level=cfg.level, max_time=cfg.max_time, warm_start=cfg.warm_start, **params
    )


def build_planner(
    profile: PlannerProfile | str,
    model: WorldModel,
    *,
    seed: int = 0,
    policy: DistilledPolicy | None = None,
    profiles_path: str | Path | None = None,
    **cost_objects: Any,
):
    """A planner for ``model`` from a profile (or a profile name).

    Returns:
        ``Planner`` (flat), ``HierarchicalPlanner`` or ``PolicyPlanner``; all have ``plan`` and ``reset``.

    Raises:
        ValueError: the profile asks for a level the model lacks, or a policy that is not given.
    """
    if isinstance(profile, str):
        profile = load_profile(profile, profiles_path)
    model_levels = [s.level for s in model.levels]
    missing = [lv.level for lv in profile.levels if lv.level not in model_levels]
    if missing:
        raise ValueError(
            f"profile {profile.name!r} plans at levels {[lv.level for lv in profile.levels]} but the model "
            f"has levels {model_levels} (missing {missing}); use a flat profile or a hierarchical model"
        )
    if policy is None and profile.policy_path and (profile.kind == "policy" or profile.seeded):
        policy = DistilledPolicy.load(profile.policy_path)
    if profile.kind == "policy":
        if policy is None:
            raise ValueError(
                f"profile {profile.name!r} is Mode 1 (kind: policy) but no policy was given; set policy_path or pass policy="
            )
        return with_recovery(profile, PolicyPlanner(model, policy, horizon=profile.levels[0].horizon,
                                                    noise_std=profile.policy_noise or 0.0, seed=seed,
                                                    check_samples=profile.policy_check_samples))
    planners = [build_level_planner(lv, model, seed + i, **cost_objects) for i, lv in enumerate(profile.levels)]
    if profile.kind == "flat":
        planner = planners[0]
        if profile.escalation is not None:
            longer = profile.levels[0].model_copy(update={"horizon": profile.escalation.horizon})
            planner.escalation = HorizonEscalation(**profile.escalation.model_dump())
            planner.long_planner = build_level_planner(longer, model, seed + len(planners), **cost_objects)
        if profile.search is not None:
            planner = SearchGuidedPlanner(planner, LatentSearch(**profile.search.model_dump()))
    else:
        planner = HierarchicalPlanner(
            planners,
            [lv.replan_every for lv in profile.levels[:-1]],
            profile.subgoal_index,
            profile.subgoal_tolerance,
            profile.direct_goal_distance,
        )
    if profile.approach is not None:  # near the goal: level 0 alone, looking a little ahead
        shorter = profile.levels[-1].model_copy(update={"horizon": profile.approach.horizon})
        planner.approach = FinalApproach(**profile.approach.model_dump())
        planner.short_planner = build_level_planner(shorter, model, seed + len(planners) + 1, **cost_objects)
    if policy is not None and profile.seeded:
        noise = 0.1 if profile.policy_noise is None else profile.policy_noise
        planner = PolicySeededPlanner(planner, policy, profile.seed_samples, noise_std=noise, warm_start=profile.seed_warm_start)
    return with_recovery(profile, planner)


def with_recovery(profile: PlannerProfile, planner: Any) -> Any:
    """The planner, carrying the profile's stall recovery for the ``MPCController`` that drives it."""
    if profile.stall_recovery is not None:
        planner.stall_recovery = StallRecovery(**profile.stall_recovery.model_dump())
    return planner


class PolicySeededPlanner:
    """Wraps a planner so every ``plan`` call is seeded by the Mode-1 policy (Mode 1 seeding Mode 2).

    Two ways, which combine: ``num`` proposals (the policy's rollouts through the model, all but the first
    with ``noise_std`` action noise) join the candidates of every sampling iteration; ``warm_start`` seeds
    the samplers' initial mean (flat planners only): ``first`` puts the policy's decision in place of its
    first action, ``rollout`` replaces it with the policy's noise-free rollout over the horizon.
    ``bench/bench_policy.py`` measures them against the unseeded planner.
    """

    def __init__(self, planner, policy: DistilledPolicy, num: int, noise_std: float = 0.1,
                 warm_start: bool | WarmStart = "none") -> None:
        warm_start = warm_start_name(warm_start)
        if warm_start not in get_args(WarmStart):
            raise ValueError(f"warm_start must be none, first or rollout, got {warm_start!r}")
        if warm_start != "none" and isinstance(planner, HierarchicalPlanner):
            raise ValueError("a warm start from the Mode-1 policy needs a flat planner (the hierarchical one plans subgoals first)")
        if num < 0 or (num == 0 and warm_start == "none"):
            raise ValueError(f"Mode-1 seeding needs proposals (num >= 1) or warm_start, got num={num}")
        policy.check_fits(planner.model)
        self.planner, self.policy, self.num, self.noise_std, self.warm_start = planner, policy, num, noise_std, warm_start
        self.name, self.model = planner.name, planner.model
        self.generator = torch.Generator().manual_seed(0)

    @property
    def stall_recovery(self) -> StallRecovery | None:
        """The wrapped planner's: the controller reads the recovery off the planner it drives, and a wrapper
        must neither drop it nor keep a copy that goes stale."""
        return getattr(self.planner, "stall_recovery", None)

    @stall_recovery.setter
    def stall_recovery(self, value: StallRecovery | None) -> None:
        self.planner.stall_recovery = value

    def reset(self, seed: int | None = None) -> None:
        self.planner.reset(seed)
        if seed is not None:
            self.generator.manual_seed(seed)

    def plan(self, z_ctx, goal, **kwargs):
        low = self.planner.planners[-1] if isinstance(self.planner, HierarchicalPlanner) else self.planner
        ctx, g = low.validate(z_ctx, goal)
        if self.num:
            kwargs["proposals"] = self.policy.propose(self.model, ctx, g, low.horizon, self.num, self.noise_std, self.generator)
        if self.warm_start == "first":
            kwargs["warm_actions"] = self.policy.act(ctx[-1], g)
        elif self.warm_start == "rollout":
            kwargs["warm_actions"] = self.policy.propose(self.model, ctx, g, low.horizon, 1, noise_std=0.0)[0]
        return self.planner.plan(ctx, g, **kwargs)
