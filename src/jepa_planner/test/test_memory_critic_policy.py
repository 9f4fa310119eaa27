"""Short-term memory, the critic and the distilled Mode-1 policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_planner.critic import Critic
from jepa_planner.memory import EpisodeMemory, MemoryEpisode
from jepa_planner.planners.base import PlanResult, PlanStats
from jepa_planner.policy import DistilledPolicy, PolicyPlanner, collect_plans
from jepa_planner.testing import LinearWorldModel

torch.set_num_threads(1)


def test_memory_episodes_eviction_and_save_load(tmp_path):
    memory = EpisodeMemory(max_transitions=10, keep_images=True)
    for ep in range(4):
        for t in range(4):
            memory.add(
                torch.tensor([ep, t], dtype=torch.float32), np.zeros(2), cost=float(t), image=np.zeros((4, 4, 3), np.uint8)
            )
        memory.end_episode(goal=np.ones(2))
    assert len(memory.episodes) == 2 and len(memory) == 8  # oldest whole episodes dropped
    assert memory.episodes[0].latents[0, 0] == 2 and memory.episodes[0].images.shape == (4, 4, 4, 3)
    memory.save(tmp_path / "mem.npz")
    loaded = EpisodeMemory.load(tmp_path / "mem.npz")
    assert len(loaded) == 8 and np.array_equal(loaded.episodes[1].latents, memory.episodes[1].latents)
    z, g, y = loaded.sample(5, np.random.default_rng(0))
    assert z.shape == (5, 2) and g.shape == (5, 2) and y.shape == (5,)
    with pytest.raises(ValueError, match="NaN"):
        memory.add(np.array([np.nan, 0.0]), np.zeros(2), 0.0)
    with pytest.raises(FileNotFoundError):
        EpisodeMemory.load(tmp_path / "missing.npz")


def test_cost_to_go_is_the_discounted_sum():
    ep = MemoryEpisode(np.zeros((3, 1)), np.zeros((3, 1)), np.array([1.0, 2.0, 3.0], np.float32))
    assert np.allclose(ep.cost_to_go(0.5), [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3])


def test_critic_learns_a_known_cost_from_memory(tmp_path):
    rng = np.random.default_rng(0)
    memory = EpisodeMemory()
    for _ in range(60):
        goal = rng.uniform(-1, 1, 2)
        for z in rng.uniform(-1, 1, (10, 2)):
            memory.add(z, np.zeros(2), cost=float(((z - goal) ** 2).sum()))
        memory.end_episode(goal=goal)
    critic = Critic((2,), hidden=64)
    losses = critic.fit(memory, gamma=0.0, epochs=60, batch_size=64, lr=3e-3)
    assert losses[-1] < 0.2 * losses[0]
    z, g = torch.rand(200, 2) * 2 - 1, torch.rand(200, 2) * 2 - 1
    truth = (z - g).pow(2).sum(-1)
    with torch.no_grad():
        pred = critic(z, g)
    r2 = 1 - (pred - truth).pow(2).mean() / truth.var()
    assert r2 > 0.9, float(r2)
    critic.save(tmp_path / "critic.pt")
    with torch.no_grad():
        assert torch.allclose(Critic.load(tmp_path / "critic.pt")(z, g), pred)


class LinearFeedbackPlanner:
    """A known planner: a = K (goal - z), clipped to [-1, 1]."""

    name, level, horizon = "linear", 0, 2

    def __init__(self, gain: torch.Tensor) -> None:
        self.gain = gain

    def reset(self, seed=None) -> None:
        pass

    def plan(self, z_ctx, goal, **_):
        z = z_ctx.reshape(-1, 2)[-1]
        a = ((goal - z) @ self.gain.T).clamp(-1, 1)
        return PlanResult(a.expand(2, -1), z.expand(2, -1), 0.0, [], self.name, 0, PlanStats())


def test_policy_distillation_reproduces_a_known_linear_planner(tmp_path):
    gen = torch.Generator().manual_seed(0)
    gain = torch.tensor([[0.4, 0.1], [-0.2, 0.3]])
    planner = LinearFeedbackPlanner(gain)
    z, goal = torch.rand(400, 2, generator=gen) * 2 - 1, torch.rand(400, 2, generator=gen) * 2 - 1
    targets = collect_plans(planner, z, goal)
    assert targets.shape == (400, 1, 2)
    model = LinearWorldModel(dim=2, bound=1.0)
    policy = DistilledPolicy.for_model(model, hidden=64)
    losses = policy.fit(z, goal, targets, epochs=80, batch_size=64)
    assert losses[-1] < 0.05 * losses[0]
    zt, gt = torch.rand(100, 2) * 2 - 1, torch.rand(100, 2) * 2 - 1
    truth = torch.stack([planner.plan(a, b).actions[0] for a, b in zip(zt, gt)])
    acted = policy.act(zt, gt)
    assert (acted - truth).abs().mean() < 0.05
    assert (acted.abs() <= 1.0).all()
    assert policy.act(zt[0], gt[0]).shape == (2,)
    policy.save(tmp_path / "policy.pt")
    assert torch.allclose(DistilledPolicy.load(tmp_path / "policy.pt").act(zt, gt), acted)


def test_policy_ensemble_fits_each_member_and_round_trips(tmp_path):
    """An ensemble policy: every member learns the planner alone, the policy acts with their mean, and the
    checkpoint (also a single-net one from before the option) loads back to the same actions."""
    gen = torch.Generator().manual_seed(1)
    planner = LinearFeedbackPlanner(torch.tensor([[0.4, 0.1], [-0.2, 0.3]]))
    z, goal = torch.rand(400, 2, generator=gen) * 2 - 1, torch.rand(400, 2, generator=gen) * 2 - 1
    targets = collect_plans(planner, z, goal)
    model = LinearWorldModel(dim=2, bound=1.0)
    policy = DistilledPolicy.for_model(model, hidden=32, ensemble=3)
    policy.fit(z, goal, targets, epochs=80, batch_size=64)
    with torch.no_grad():
        members = policy.members(z, goal)[:, :, 0]
    assert members.shape == (3, 400, 2)
    for k in range(3):  # each member alone is a good fit (not only their mean)
        assert (members[k] - targets[:, 0]).abs().mean() < 0.05
    assert not torch.allclose(members[0], members[1])
    assert torch.allclose(policy(z, goal)[:, 0], members.mean(dim=0))
    policy.save(tmp_path / "ensemble.pt")
    loaded = DistilledPolicy.load(tmp_path / "ensemble.pt")
    assert loaded.config["ensemble"] == 3 and torch.allclose(loaded.act(z, goal), policy.act(z, goal))
    single = DistilledPolicy.for_model(model, hidden=32)
    blob = {"config": {k: v for k, v in single.config.items() if k != "ensemble"}, "state": single.state_dict()}
    torch.save(blob, tmp_path / "old.pt")
    assert torch.allclose(DistilledPolicy.load(tmp_path / "old.pt").act(z, goal), single.act(z, goal))
    with pytest.raises(ValueError, match="ensemble must be >= 1"):
        DistilledPolicy.for_model(model, ensemble=0)


def test_policy_proposals_and_policy_planner():
    model = LinearWorldModel(dim=2, bound=1.0)
    policy = DistilledPolicy.for_model(model, hidden=16)
    gen = torch.Generator().manual_seed(0)
    proposals = policy.propose(model, torch.zeros(1, 1, 2), torch.ones(2), horizon=4, num=6, noise_std=0.2, generator=gen)
    assert proposals.shape == (6, 4, 2) and (proposals.abs() <= 1.0).all()
    result = PolicyPlanner(model, policy, horizon=3).plan(torch.zeros(2), torch.ones(2))
    assert result.actions.shape == (3, 2) and result.latents.shape == (3, 2) and result.planner == "policy"
    assert torch.allclose(result.actions[0], policy.act(torch.zeros(2), torch.ones(2)))
    with pytest.raises(ValueError, match="goal latent has shape"):
        PolicyPlanner(model, policy).plan(torch.zeros(2), torch.ones(5))
    with pytest.raises(ValueError, match="action_dim"):
        PolicyPlanner(LinearWorldModel(dim=3, action_dim=3), policy)



def test_policy_planner_action_noise_is_bounded_seeded_and_optional():
    """Mode 1 with action noise: within the bounds, reproducible per seed, and off by default."""
    model = LinearWorldModel(dim=2, bound=1.0)
    policy = DistilledPolicy.for_model(model, hidden=16)
    z, g = torch.zeros(2), torch.ones(2)
    clean = policy.act(z, g)
    noisy = PolicyPlanner(model, policy, noise_std=1.5, seed=3)
    first = torch.stack([noisy.plan(z, g).actions[0] for _ in range(50)])
    assert (first.abs() <= 1.0).all() and first.std(dim=0).min() > 0.2
    noisy.reset(3)
    assert torch.equal(noisy.plan(z, g).actions[0], first[0])
    noisy.reset(4)
    assert not torch.equal(noisy.plan(z, g).actions[0], first[0])
    assert torch.equal(PolicyPlanner(model, policy).plan(z, g).actions[0], clean)
    with pytest.raises(ValueError, match="noise_std"):
        PolicyPlanner(model, policy, noise_std=-0.1)


def test_policy_planner_one_step_check_executes_the_candidate_predicted_nearest_the_goal():
    """check_samples K: of the policy's action and K - 1 noisy copies, the one whose predicted next latent is
    nearest the goal; so it is never predicted farther than the policy's own action, and points the right way."""
    model = LinearWorldModel(dim=2, bound=1.0)
    policy = DistilledPolicy.for_model(model, hidden=16)  # untrained: its own action points anywhere
    z, g = torch.zeros(2), torch.tensor([0.8, -0.6])
    std = model.latent_std

    def predicted_distance(action: torch.Tensor) -> float:
        with torch.no_grad():
            return float((((model.predict(z.reshape(1, 1, 2), action[None]) - g) / std) ** 2).mean())

    checked = PolicyPlanner(model, policy, noise_std=1.0, seed=0, check_samples=64)
    for _ in range(10):
        result = checked.plan(z, g)
        assert (result.actions.abs() <= 1.0).all() and result.stats.samples == 64
        assert predicted_distance(result.actions[0]) <= predicted_distance(policy.act(z, g)) + 1e-6
        assert float(result.actions[0] @ g) > 0  # toward the goal
    checked.reset(5)
    again = checked.plan(z, g).actions[0]
    checked.reset(5)
    assert torch.equal(checked.plan(z, g).actions[0], again)  # seeded like the noise alone
    with pytest.raises(ValueError, match="check_samples"):
        PolicyPlanner(model, policy, noise_std=0.5, check_samples=0)
    with pytest.raises(ValueError, match="noise_std > 0"):
        PolicyPlanner(model, policy, check_samples=8)


class _FixedPlanner:
    """Returns a fixed plan; optionally exposes a CEM-like final sampling mean."""

    def __init__(self, first: list[float], last_mean: list[float] | None = None) -> None:
        self.first = torch.tensor([first])
        self.last_mean = None if last_mean is None else torch.tensor([last_mean])
        self.resets: list[int | None] = []

    def reset(self, seed: int | None = None) -> None:
        self.resets.append(seed)

    def plan(self, ctx, goal):
        return PlanResult(self.first, torch.zeros(1, 2), 0.0, [], "fixed", 0, PlanStats())


def test_mean_labeller_averages_planners_and_can_keep_their_speed():
    from jepa_planner.distill import MeanLabeller

    # two raw actions of size 2 per model action; planners disagree on the second raw action's direction
    plans = {0: _FixedPlanner([2.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.5]), 1: _FixedPlanner([2.0, 0.0, 0.0, -1.0], [3.0, 0.0, 0.0, 0.5])}
    made: list[int] = []

    def make(seed: int):
        made.append(seed)
        return plans[len(made) - 1]

    best = MeanLabeller(make, seed=3, k=2, use_mean=False).plan(torch.zeros(1, 2), torch.zeros(2)).actions
    assert made == [3 * 64, 3 * 64 + 1]
    assert torch.allclose(best, torch.tensor([[2.0, 0.0, 0.0, 0.0]]))  # the mean of the best first actions
    made.clear()
    means = MeanLabeller(make, seed=3, k=2).plan(torch.zeros(1, 2), torch.zeros(2)).actions
    assert torch.allclose(means, torch.tensor([[2.0, 0.0, 0.0, 0.5]]))  # the mean of the final sampling means
    made.clear()
    labeller = MeanLabeller(make, seed=3, k=2, keep_speed=True, raw_dim=2)
    fast = labeller.plan(torch.zeros(1, 2), torch.zeros(2)).actions
    # direction of the means' mean, speed of the executed (best) actions: 2 and 1 per raw action
    assert torch.allclose(fast, torch.tensor([[2.0, 0.0, 0.0, 1.0]]))
    labeller.reset(5)
    assert plans[0].resets[-1] == 5 * 64 and plans[1].resets[-1] == 5 * 64 + 1
    with pytest.raises(ValueError, match="k must be >= 1"):
        MeanLabeller(make, seed=0, k=0)


def test_policy_with_goal_difference_input_saves_and_loads(tmp_path):
    model = LinearWorldModel(dim=2, bound=1.0)
    policy = DistilledPolicy.for_model(model, hidden=8, difference=True)
    assert policy.config["difference"] is True and policy.net.net[0].in_features == 6
    z, goal = torch.rand(5, 2), torch.rand(5, 2)
    policy.save(tmp_path / "policy.pt")
    loaded = DistilledPolicy.load(tmp_path / "policy.pt")
    assert loaded.net.difference and torch.allclose(loaded.act(z, goal), policy.act(z, goal))
    # a checkpoint from before the option (no "difference" in its config) loads without it
    old = DistilledPolicy.for_model(model, hidden=8)
    blob = {"config": {k: v for k, v in old.config.items() if k != "difference"}, "state": old.state_dict()}
    torch.save(blob, tmp_path / "old.pt")
    assert not DistilledPolicy.load(tmp_path / "old.pt").net.difference


def test_intrinsic_cost_is_the_squared_normalised_distance():
    from jepa_planner.experience import intrinsic_cost

    model = LinearWorldModel(dim=2, bound=1.0)
    model.latent_std = torch.tensor([2.0, 1.0])
    # ((2 / 2)^2 + (1 / 1)^2) / 2 = 1, the cost node's ``intrinsic`` for the same pair
    assert intrinsic_cost(model, torch.tensor([2.0, 1.0]), torch.zeros(2)) == pytest.approx(1.0)
