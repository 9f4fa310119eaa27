"""DAgger distillation of the Mode-1 policy from Mode-2 decisions, on the states the policy itself visits.

Round 0: Mode 2 drives; each replan's (latent, goal, first planned action) is a training example.
Round r >= 1: the current policy drives (Mode 1); Mode 2 labels every state it replans in (not executed);
the examples are aggregated and the policy refitted. Whole episodes are held out for validation (every
``val_every``-th episode), so the validation loss measures states of unseen episodes, and the weights of
the best validation epoch are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from jepa_planner.experience import drive
from jepa_planner.policy import DistilledPolicy, PolicyPlanner


@dataclass
class DaggerData:
    """Aggregated (latent, goal, label) examples, split by episode into train and validation."""

    train: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    episodes: int = 0

    def add_episode(self, log, goal: torch.Tensor, validation: bool) -> None:
        rows = [(ctx[-1], goal, label) for ctx, label in zip(log.contexts, log.labels, strict=True)]
        (self.val if validation else self.train).extend(rows)
        self.episodes += 1

    @staticmethod
    def stack(rows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(torch.stack([r[i] for r in rows]) for i in range(3))  # type: ignore[return-value]


@dataclass
class DaggerRound:
    """What one round added and how the refitted policy did."""

    round: int
    episodes: int
    driver_success_rate: float
    train_examples: int
    val_examples: int
    val_loss: float


def distil_dagger(
    model,
    make_expert: Callable[[int], object],
    world,
    seeds: list[int],
    *,
    rounds: int = 4,
    episodes_per_round: int = 10,
    max_steps: int = 200,
    replan_every: int | None = None,
    val_every: int = 5,
    epochs: int = 200,
    hidden: int = 256,
    depth: int = 3,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[DistilledPolicy, list[DaggerRound]]:
    """Distil a policy with ``rounds`` DAgger rounds after one round of Mode-2 demonstrations.

    Args:
        make_expert: seed -> a fresh Mode-2 planner (drives round 0, labels every round).
        seeds: episode seeds, consumed in order ((rounds + 1) x episodes_per_round needed).
        val_every: every ``val_every``-th episode goes to the validation split.
    """
    need = (rounds + 1) * episodes_per_round
    if len(seeds) < need:
        raise ValueError(f"distil_dagger needs {need} seeds ((rounds + 1) x episodes_per_round), got {len(seeds)}")
    data, history = DaggerData(), []
    policy: DistilledPolicy | None = None
    it = iter(seeds)
    for r in range(rounds + 1):
        wins = 0
        for _ in range(episodes_per_round):
            s = next(it)
            expert = make_expert(s)
            if policy is None:
                log = drive(model, expert, world, s, max_steps, replan_every)
            else:
                log = drive(model, PolicyPlanner(model, policy), world, s, max_steps, replan_every, labeller=expert)
            wins += log.success
            goal = torch.from_numpy(log.memory.goal)
            data.add_episode(log, goal, validation=(data.episodes % val_every == val_every - 1))
        policy = DistilledPolicy.for_model(model, hidden=hidden, depth=depth)
        train = DaggerData.stack(data.train)
        val = DaggerData.stack(data.val) if data.val else None
        policy.fit(*train, epochs=epochs, seed=seed + r, val=val)
        policy.set_familiar_goals(train[1])
        val_loss = min(policy.val_losses) if policy.val_losses else float("nan")
        history.append(DaggerRound(r, episodes_per_round, wins / episodes_per_round, len(data.train), len(data.val), val_loss))
        if progress is not None:
            driver = "Mode 2" if r == 0 else "Mode 1"
            progress(f"round {r} ({driver} drove, success {wins}/{episodes_per_round}): {len(data.train)} train / "
                     f"{len(data.val)} val examples, val loss {val_loss:.4f}")
    assert policy is not None
    return policy, history
