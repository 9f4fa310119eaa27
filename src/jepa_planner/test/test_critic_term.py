"""The critic as a planner cost term: profiles name it, planners use it, hot swaps replace it safely;
hindsight critic data; the policy's validation split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_planner.costs import CriticCost
from jepa_planner.critic import Critic, load_critic_checked, swap_critic
from jepa_planner.memory import EpisodeMemory, MemoryEpisode
from jepa_planner.policy import DistilledPolicy
from jepa_planner.profiles import PlannerProfile, PolicySeededPlanner, build_planner
from jepa_planner.testing import LinearWorldModel

torch.set_num_threads(1)


def _profile(critic_weight: float, path: str | None = None) -> PlannerProfile:
    critic_term = {"type": "critic", "weight": critic_weight, "params": {"path": path} if path else {}}
    return PlannerProfile.model_validate({
        "name": "t", "kind": "flat",
        "levels": [{"level": 0, "type": "cem", "horizon": 3,
                    "params": {"num_samples": 200, "num_elites": 20, "iterations": 4},
                    "costs": [{"type": "goal_distance", "weight": 1.0}, critic_term]}],
    })


class _PreferHighX:
    """A stand-in critic: predicted cost-to-go grows as x falls below 2 (a detour the horizon cannot see)."""

    def __call__(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.relu(2.0 - z[:, 0]) ** 2


def test_the_critic_term_steers_the_terminal_latent():
    model = LinearWorldModel()
    goal = torch.tensor([0.0, 2.0])
    without = build_planner(_profile(1.0), model, seed=0).plan(torch.zeros(2), goal)
    with_critic = build_planner(_profile(1.0), model, seed=0, critic=_PreferHighX()).plan(torch.zeros(2), goal)
    assert abs(float(without.latents[-1, 0])) < 0.5  # straight to the goal
    assert float(with_critic.latents[-1, 0]) > 1.5  # the critic's detour wins
    assert "critic" in {t.name for t in with_critic.terms}


def test_profile_names_a_critic_file_and_swaps_replace_it(tmp_path):
    model = LinearWorldModel()
    critic = Critic((2,), hidden=8)
    critic.save(tmp_path / "critic.pt")
    planner = build_planner(_profile(0.5, str(tmp_path / "critic.pt")), model)
    term = next(t for t in planner.costs.terms if isinstance(t, CriticCost))
    assert isinstance(term.critic, Critic) and term.weight == 0.5
    # a profile naming a critic that is not trained yet scores zero until one is swapped in
    later = build_planner(_profile(0.5, str(tmp_path / "not_yet.pt")), model)
    assert next(t for t in later.costs.terms if isinstance(t, CriticCost)).critic is None
    new = _PreferHighX()
    assert swap_critic(later, new) == 1
    assert next(t for t in later.costs.terms if isinstance(t, CriticCost)).critic is new
    # wrappers (Mode 1 seeding Mode 2) are searched too
    seeded = PolicySeededPlanner(build_planner(_profile(1.0), model), DistilledPolicy.for_model(model), 2)
    assert swap_critic(seeded, new) == 1


def test_bad_critic_files_are_refused_with_a_clear_error(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a critic checkpoint"):
        load_critic_checked(tmp_path / "junk.pt")
    Critic((3,), hidden=8).save(tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"shape \[3\]"):
        load_critic_checked(tmp_path / "other.pt", (2,))
    with pytest.raises(FileNotFoundError):
        load_critic_checked(tmp_path / "missing.pt", (2,))
    nan = Critic((2,), hidden=8)
    nan.target_scale.fill_(float("nan"))
    nan.save(tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="NaN"):
        load_critic_checked(tmp_path / "nan.pt", (2,))


def test_hindsight_targets_sum_the_distance_to_a_later_state():
    memory = EpisodeMemory()
    latents = np.array([[0.0], [1.0], [3.0]], np.float32)
    goal = np.array([3.0], np.float32)
    memory.add_episode(MemoryEpisode(latents, np.zeros((3, 1), np.float32), ((latents[:, 0] - 3) ** 2).astype(np.float32), goal))
    z, g, y = memory.hindsight_dataset(gamma=0.5, goals_per_state=8, seed=0)
    assert z.shape[0] == 3 + 3 * 8
    for zi, gi, yi in zip(z[3:], g[3:], y[3:], strict=True):  # relabelled pairs
        t, k = int(np.flatnonzero(latents[:, 0] == float(zi[0]))[0]), int(np.flatnonzero(latents[:, 0] == float(gi[0]))[0])
        expected = sum(0.5 ** (j - t) * (latents[j, 0] - latents[k, 0]) ** 2 for j in range(t, k + 1))
        assert abs(float(yi) - expected) < 1e-4


def test_critic_fit_with_hindsight_runs():
    rng = np.random.default_rng(0)
    memory = EpisodeMemory()
    for _ in range(5):
        path = np.cumsum(rng.normal(size=(8, 2)), axis=0).astype(np.float32)
        memory.add_episode(MemoryEpisode(path, np.zeros((8, 2), np.float32), ((path - path[-1]) ** 2).mean(1), path[-1]))
    losses = Critic((2,), hidden=16).fit(memory, hindsight=4, epochs=20)
    assert losses[-1] < losses[0]


def test_policy_fit_keeps_the_best_validation_epoch():
    model = LinearWorldModel()
    policy = DistilledPolicy.for_model(model, hidden=16)
    z, g = torch.rand(256, 2), torch.rand(256, 2)
    a = (g - z).clamp(-1, 1)
    val = (torch.rand(64, 2), torch.rand(64, 2))
    val = (*val, (val[1] - val[0]).clamp(-1, 1))
    policy.fit(z, g, a, epochs=30, val=val)
    assert len(policy.val_losses) == 30
    assert policy.validation_loss(*val) == pytest.approx(min(policy.val_losses), rel=1e-4)
    assert min(policy.val_losses) < policy.val_losses[0]


def test_familiar_goals_switch_to_mode1(tmp_path):
    from jepa_planner.profiles import choose_profile, load_profiles

    model = LinearWorldModel()
    policy = DistilledPolicy.for_model(model, hidden=8)
    policy.set_familiar_goals(torch.tensor([[1.0, 1.0], [1.0, 1.0], [-1.0, 0.0]]))
    assert policy.familiar_goals.shape == (2, 2)
    policy.save(tmp_path / "policy.pt")
    loaded = DistilledPolicy.load(tmp_path / "policy.pt")
    assert loaded.goal_distance(torch.tensor([1.0, 1.1])) == pytest.approx(0.1 / 2**0.5, rel=1e-4)
    (tmp_path / "p.yaml").write_text(
        "profiles:\n"
        "  plan:\n    kind: flat\n    mode1_profile: act\n    familiar_distance: 0.2\n"
        f"  act:\n    kind: policy\n    policy_path: {tmp_path / 'policy.pt'}\n    levels: [{{level: 0, horizon: 1}}]\n"
    )
    profiles = load_profiles(tmp_path / "p.yaml")
    assert choose_profile(profiles, "plan", np.array([1.0, 1.05]))[0] == "act"
    name, why = choose_profile(profiles, "plan", np.array([0.0, 3.0]))
    assert name == "plan" and "unfamiliar" in why
    (tmp_path / "bad.yaml").write_text("profiles:\n  plan:\n    kind: flat\n    mode1_profile: nope\n    familiar_distance: 0.2\n")
    with pytest.raises(ValueError, match="mode1_profile 'nope'"):
        load_profiles(tmp_path / "bad.yaml")


def test_policy_profile_noise_reaches_the_planner(tmp_path):
    """``policy_noise`` of a kind-policy profile is the built PolicyPlanner's noise; out of range is refused."""
    from jepa_planner.profiles import build_planner, load_profiles

    model = LinearWorldModel()
    DistilledPolicy.for_model(model, hidden=8).save(tmp_path / "policy.pt")
    (tmp_path / "p.yaml").write_text(
        f"profiles:\n  act:\n    kind: policy\n    policy_noise: 0.5\n    policy_path: {tmp_path / 'policy.pt'}\n"
        "    levels: [{level: 0, horizon: 1}]\n"
    )
    planner = build_planner(load_profiles(tmp_path / "p.yaml")["act"], model, seed=7)
    assert planner.noise_std == 0.5 and planner.check_samples == 1
    (tmp_path / "bad.yaml").write_text("profiles:\n  act:\n    kind: policy\n    policy_noise: -1\n")
    with pytest.raises(ValueError, match="policy_noise"):
        load_profiles(tmp_path / "bad.yaml")
    (tmp_path / "checked.yaml").write_text((tmp_path / "p.yaml").read_text() + "    policy_check_samples: 8\n")
    assert build_planner(load_profiles(tmp_path / "checked.yaml")["act"], model).check_samples == 8
    for bad in ("kind: flat\n    policy_check_samples: 8", "kind: policy\n    policy_check_samples: 8",
                "kind: policy\n    policy_noise: 0.5\n    policy_check_samples: 0"):
        (tmp_path / "bad.yaml").write_text(f"profiles:\n  act:\n    {bad}\n")
        with pytest.raises(ValueError, match="policy_check_samples"):
            load_profiles(tmp_path / "bad.yaml")
