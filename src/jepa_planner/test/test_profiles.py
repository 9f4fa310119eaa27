"""Planner profiles: the repository YAML loads, builds and rejects bad entries."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from jepa_planner.hierarchical import HierarchicalPlanner
from jepa_planner.planners import CEMPlanner, GradientPlanner, MPPIPlanner
from jepa_planner.policy import DistilledPolicy, PolicyPlanner
from jepa_planner.profiles import PolicySeededPlanner, build_planner, load_profile, load_profiles
from jepa_planner.testing import LinearWorldModel

torch.set_num_threads(1)


def test_repository_profiles_build_and_plan():
    model = LinearWorldModel(dim=2, bound=1.0, strides=(4,))
    profiles = load_profiles()
    assert {"flat_cem", "flat_mppi", "gradient", "hierarchical", "policy"} <= set(profiles)
    kinds = {"flat_cem": CEMPlanner, "flat_mppi": MPPIPlanner, "gradient": GradientPlanner, "hierarchical": HierarchicalPlanner}
    for name, cls in kinds.items():
        planner = build_planner(name, model)
        assert isinstance(planner, cls)
    policy = DistilledPolicy.for_model(model, hidden=8)
    assert isinstance(build_planner("policy", model, policy=policy), PolicyPlanner)
    with pytest.raises(ValueError, match="no policy"):
        build_planner("policy", model)
    flat = LinearWorldModel(dim=2)
    with pytest.raises(ValueError, match="missing"):
        build_planner("hierarchical", flat)


def test_seeding_from_the_policy():
    model = LinearWorldModel(dim=2, bound=1.0)
    profile = load_profile("flat_cem").model_copy(update={"seed_samples": 4})
    planner = build_planner(profile, model, policy=DistilledPolicy.for_model(model, hidden=8))
    assert isinstance(planner, PolicySeededPlanner)
    result = planner.plan(torch.zeros(2), torch.ones(2))
    level = profile.levels[0]
    assert result.stats.samples == level.params["iterations"] * (level.params["num_samples"] + 4)  # 4 policy proposals each


def test_warm_start_from_the_policy(monkeypatch):
    """seed_warm_start: the policy's decision is the first action of the sampler's initial mean, no samples taken."""
    from jepa_planner.profiles import PlannerProfile

    model = LinearWorldModel(dim=2, bound=1.0)
    policy = DistilledPolicy.for_model(model, hidden=8)
    profile = load_profile("flat_cem").model_copy(update={"seed_warm_start": True})
    planner = build_planner(profile, model, policy=policy)
    assert isinstance(planner, PolicySeededPlanner) and planner.num == 0
    seen = []
    inner = planner.planner
    original = inner._optimise
    monkeypatch.setattr(inner, "_optimise", lambda ctx, goal, init, *rest: seen.append(init) or original(ctx, goal, init, *rest))
    z, g = torch.zeros(2), torch.ones(2)
    result = planner.plan(z, g)
    assert torch.allclose(seen[0][0], policy.act(z, g))
    level = profile.levels[0]
    assert result.stats.samples == level.params["iterations"] * level.params["num_samples"]
    with pytest.raises(ValueError, match=r"warm_actions must be \(A,\) or \(K, A\) finite values with A = 2"):
        inner.plan(z, g, warm_actions=torch.tensor([float("nan"), 0.0]))
    with pytest.raises(ValueError, match="K <= horizon"):
        inner.plan(z, g, warm_actions=torch.zeros(inner.horizon + 1, 2))
    body = load_profile("hierarchical").model_dump() | {"seed_warm_start": True}
    with pytest.raises(ValueError, match="seed_warm_start needs a flat profile"):
        PlannerProfile.model_validate(body)


def test_rollout_warm_start_replaces_the_whole_initial_mean(monkeypatch):
    """seed_warm_start: rollout: the sampler starts from the policy's noise-free rollout over the horizon
    (not the previous plan shifted); true / false as written before are first / none; bad values are refused."""
    from jepa_planner.profiles import PlannerProfile, PolicySeededPlanner

    model = LinearWorldModel(dim=2, bound=1.0)
    policy = DistilledPolicy.for_model(model, hidden=8)
    profile = load_profile("flat_cem").model_copy(update={"seed_warm_start": "rollout"})
    planner = build_planner(profile, model, policy=policy)
    inner = planner.planner
    seen = []
    original = inner._optimise
    monkeypatch.setattr(inner, "_optimise", lambda ctx, goal, init, *rest: seen.append(init) or original(ctx, goal, init, *rest))
    z, g = torch.zeros(2), torch.ones(2)
    planner.plan(z, g)
    planner.plan(z, g)  # a previous plan exists now: the rollout still replaces all of it
    expected = inner.clip(policy.propose(model, z.reshape(1, 2), g, inner.horizon, 1, noise_std=0.0)[0])
    assert all(torch.allclose(init, expected) for init in seen)
    assert not torch.allclose(expected[1:], expected[0].expand_as(expected[1:]))  # a real rollout, not a repeat
    flat = load_profile("flat_cem").model_dump() | {"escalation": None, "approach": None}  # a seeded profile has no escalation or approach
    assert PlannerProfile.model_validate(flat | {"seed_warm_start": True}).seed_warm_start == "first"
    assert PlannerProfile.model_validate(flat | {"seed_warm_start": False}).seeded is False
    with pytest.raises(ValueError, match="seed_warm_start"):
        PlannerProfile.model_validate(flat | {"seed_warm_start": "sometimes"})
    with pytest.raises(ValueError, match="warm_start must be none, first or rollout"):
        PolicySeededPlanner(inner, policy, 0, warm_start="sometimes")
    with pytest.raises(ValueError, match="distilled for another bundle"):  # a policy of another latent size
        PolicySeededPlanner(inner, DistilledPolicy((3,), [-1.0, -1.0], [1.0, 1.0], hidden=4), 4)


def test_bad_profiles_raise_clear_errors(tmp_path: Path):
    def write(body) -> Path:
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump({"profiles": {"bad": body}}))
        return path

    with pytest.raises(ValueError, match="unknown cost type 'teleport'"):
        load_profiles(write({"levels": [{"costs": [{"type": "teleport"}]}]}))
    with pytest.raises(ValueError, match="unknown params"):
        load_profiles(write({"levels": [{"type": "cem", "params": {"num_smaples": 3}}]}))
    with pytest.raises(ValueError, match="exactly one level"):
        load_profiles(write({"kind": "flat", "levels": [{"level": 1}, {"level": 0}]}))
    with pytest.raises(ValueError, match="goal_tolerance is no longer a profile key"):
        load_profiles(write({"goal_tolerance": 0.1}))
    with pytest.raises(ValueError, match="unknown planner profile"):
        load_profile("nope")
    with pytest.raises(FileNotFoundError):
        load_profiles(tmp_path / "missing.yaml")
    twice = tmp_path / "twice.yaml"  # a key written twice by hand was silently the last one
    twice.write_text("profiles:\n  x:\n    stall_recovery: {}\n    kind: flat\n    stall_recovery: {}\n")
    with pytest.raises(ValueError, match=r"twice\.yaml.*'stall_recovery' appears twice \(lines 3 and 5\)"):
        load_profiles(twice)
