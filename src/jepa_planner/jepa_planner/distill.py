"""DAgger distillation of the Mode-1 policy from Mode-2 decisions, on the states the policy itself visits.

Round 0: Mode 2 drives; each replan's (latent, goal, Mode-2 label) is a training example.
Round r >= 1: the current policy drives (Mode 1); Mode 2 labels every state it replans in (not executed);
the examples are aggregated and the policy refitted.

The label of a state is Mode 2's first action. A single sampling planner's best sequence is a noisy label
(its first action carries the sampling noise of one candidate), so ``MeanLabeller`` can average ``k``
independent planners and take each one's final sampling mean (CEM's refitted Gaussian) instead. Whole episodes are held out for validation (every
``val_every``-th episode), so the validation loss measures states of unseen episodes, and the weights of
the best validation epoch are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch

from jepa_planner.experience import drive
from jepa_planner.policy import DistilledPolicy, PolicyPlanner


class MeanLabeller:
    """Mode 2 as a labeller: its first action averaged over ``k`` independent planners.

    The mean of several decisions is a steadier label, but a shrunken one: near the goal the planners agree on
    the way but not on when to move (the cost only asks to arrive within the horizon), so their first actions
    cancel out and a policy fitted to the mean stops short of the goal. ``keep_speed`` keeps the direction of
    the mean and gives each raw action the mean speed of the decisions Mode 2 would execute.

    Args:
        make_planner: seed -> a fresh Mode-2 planner (each of the ``k`` gets its own seed).
        seed: the episode seed; k: planners averaged.
        use_mean: average the planners' final sampling means (``last_mean``, CEM) rather than their best
            sequences, when they have one.
        keep_speed: rescale each raw action of the label to the mean norm of the planners' best first actions.
        raw_dim: size of one raw action (the model action is ``frameskip`` raw actions).
    """

    def __init__(
        self,
        make_planner: Callable[[int], object],
        seed: int,
        k: int = 1,
        use_mean: bool = True,
        keep_speed: bool = False,
        raw_dim: int | None = None,
    ) -> None:
        if k < 1:
            raise ValueError(f"labeller k must be >= 1, got {k}")
        self.planners = [make_planner(seed * 64 + i) for i in range(k)]
        self.use_mean, self.keep_speed, self.raw_dim = use_mean, keep_speed, raw_dim

    def reset(self, seed: int | None = None) -> None:
        for i, planner in enumerate(self.planners):
            planner.reset(None if seed is None else seed * 64 + i)

    def plan(self, ctx: torch.Tensor, goal: torch.Tensor) -> SimpleNamespace:
        """``.actions`` (1, A): the label as a one-step plan (the only field ``drive`` reads from a labeller)."""
        firsts, executed = [], []
        for planner in self.planners:
            result = planner.plan(ctx, goal)
            inner = getattr(planner, "planner", planner)  # a wrapper (e.g. seeded by proposals) around the sampler
            mean = getattr(inner, "last_mean", None) if self.use_mean else None
            firsts.append(mean[0] if mean is not None else result.actions[0])
            executed.append(result.actions[0])
        label = torch.stack(firsts).mean(dim=0)
        if self.keep_speed:
            raw = self.raw_dim or label.numel()
            direction = label.reshape(-1, raw)
            speed = torch.stack(executed).reshape(len(executed), -1, raw).norm(dim=-1).mean(dim=0, keepdim=True).T
            label = (direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-6) * speed).reshape(label.shape)
        return SimpleNamespace(actions=label.unsqueeze(0))


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
    difference: bool = False,
    ensemble: int = 1,
    label_k: int = 0,
    label_mean: bool = True,
    label_keep_speed: bool = False,
    driver_noise: float = 0.0,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[DistilledPolicy, list[DaggerRound]]:
    """Distil a policy with ``rounds`` DAgger rounds after one round of Mode-2 demonstrations.

    Args:
        make_expert: seed -> a fresh Mode-2 planner (drives round 0, labels every round).
        seeds: episode seeds, consumed in order ((rounds + 1) x episodes_per_round needed).
        val_every: every ``val_every``-th episode goes to the validation split.
        difference: the policy also sees (goal - latent) (``DistilledPolicy``).
        ensemble: MLPs averaged in the policy (``DistilledPolicy``).
        label_k: 0 labels with the expert's own first action (round 0: the one it executes); k >= 1 with a
            ``MeanLabeller`` of k planners (``label_mean``: their final sampling means; ``label_keep_speed``:
            at the speed of the executed decisions) in every round.
        driver_noise: the action noise of the policy while it drives (``PolicyPlanner.noise_std``): train on
            the states the policy visits as it will be run.
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
            labeller = (MeanLabeller(make_expert, s, label_k, label_mean, label_keep_speed, world.spec.action_dim)
                        if label_k else None)
            if policy is None:
                log = drive(model, expert, world, s, max_steps, replan_every, labeller=labeller)
            else:
                log = drive(model, PolicyPlanner(model, policy, noise_std=driver_noise, seed=s), world, s, max_steps, replan_every,
                            labeller=labeller or expert)
            wins += log.success
            goal = torch.from_numpy(log.memory.goal)
            data.add_episode(log, goal, validation=(data.episodes % val_every == val_every - 1))
        policy = DistilledPolicy.for_model(model, hidden=hidden, depth=depth, difference=difference, ensemble=ensemble)
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
