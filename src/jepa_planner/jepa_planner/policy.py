"""Mode-1 policy: an MLP distilled from Mode-2 plans (amortised inference), acting alone or seeding the planner."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from jepa_planner.mlp import LatentGoalMLP
from jepa_planner.planners.base import Planner, PlanResult, PlanStats, level_spec
from jepa_world_model.protocol import WorldModel
from jepa_world_model.surprise import model_std


class DistilledPolicy(nn.Module):
    """(latent, goal latent) -> the first ``num_actions`` actions of a plan, within the level's bounds.

    Args:
        latent_shape: shape of one latent.
        action_low / action_high: bounds of one action (the level's LevelSpec).
        num_actions: actions predicted per call (the first few of a plan).
        hidden / depth: MLP size; latent_mean / latent_std: latent normalisation.
        difference: also feed the normalised (goal - latent) (see ``LatentGoalMLP``).
        ensemble: MLPs (different initialisations, each fitted to the labels on the same batches) whose
            outputs are averaged, meant to vary less from fit to fit than one (on two-rooms, two DAgger runs
            each: 93 / 86% with 5 against 95 / 84% with 1; see the README's benchmark table).
    """

    def __init__(
        self,
        latent_shape: tuple[int, ...],
        action_low: Sequence[float],
        action_high: Sequence[float],
        num_actions: int = 1,
        hidden: int = 128,
        depth: int = 2,
        latent_mean: torch.Tensor | None = None,
        latent_std: torch.Tensor | None = None,
        difference: bool = False,
        ensemble: int = 1,
    ) -> None:
        super().__init__()
        if num_actions < 1 or ensemble < 1:
            raise ValueError(f"num_actions and ensemble must be >= 1, got {num_actions} and {ensemble}")
        self.config = {
            "latent_shape": list(latent_shape),
            "action_low": list(action_low),
            "action_high": list(action_high),
            "num_actions": num_actions,
            "hidden": hidden,
            "depth": depth,
            "difference": bool(difference),
            "ensemble": int(ensemble),
        }
        low, high = torch.tensor(action_low, dtype=torch.float32), torch.tensor(action_high, dtype=torch.float32)
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        self.action_dim, self.num_actions = low.numel(), num_actions
        def member() -> LatentGoalMLP:
            return LatentGoalMLP(
                latent_shape, num_actions * self.action_dim, hidden, depth, latent_mean, latent_std, difference=difference
            )

        self.net = member()  # the first member keeps its name: single-net checkpoints load as before
        self.others = nn.ModuleList([member() for _ in range(ensemble - 1)])
        self.source = ""  # the checkpoint it was loaded from (error messages)
        # goal latents the policy was trained on: a goal near one of them is "familiar" (Mode 1 may act alone)
        self.register_buffer("familiar_goals", torch.zeros(0, *latent_shape))

    @classmethod
    def for_model(cls, model: WorldModel, level: int = 0, **kwargs) -> DistilledPolicy:
        """A policy sized for ``model``'s latent and level bounds."""
        spec = level_spec(model, level)
        return cls(
            tuple(model.latent_shape),
            spec.action_low,
            spec.action_high,
            latent_mean=model.latent_mean,
            latent_std=model.latent_std,
            **kwargs,
        )

    def members(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Each ensemble member's unclipped actions (K, B, num_actions, A)."""
        centre, half = (self.high + self.low) / 2, ((self.high - self.low) / 2).clamp_min(1e-6)
        out = torch.stack([m(z, goal) for m in (self.net, *self.others)])
        return centre + half * out.reshape(out.shape[0], z.shape[0], self.num_actions, self.action_dim)

    def forward(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """Unclipped actions (B, num_actions, A): the members' mean (each regresses half-range units around the centre)."""
        return self.members(z, goal).mean(dim=0)

    @torch.no_grad()
    def act(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """The first action for one latent (*L) -> (A,) or a batch (B, *L) -> (B, A), clipped to the bounds."""
        single = z.dim() == len(self.net.latent_shape)
        zb = z.unsqueeze(0) if single else z
        gb = goal.unsqueeze(0) if goal.dim() == len(self.net.latent_shape) else goal
        a = self.clip(self(zb, gb.expand_as(zb))[:, 0])
        return a[0] if single else a

    def clip(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(actions, self.high), self.low)

    def jitter(self, actions: torch.Tensor, std: float, generator: torch.Generator | None = None,
               keep_first: bool = False) -> torch.Tensor:
        """``actions`` plus Gaussian noise of ``std`` half ranges, clipped (row 0 untouched with ``keep_first``)."""
        noise = torch.randn(actions.shape, generator=generator) * std * (self.high - self.low) / 2
        if keep_first:
            noise[0] = 0.0
        return self.clip(actions + noise)

    def check_fits(self, model: WorldModel) -> None:
        """ValueError (naming the checkpoint it was loaded from) unless the policy reads ``model``'s latents."""
        if tuple(self.net.latent_shape) != tuple(model.latent_shape):
            source = f" {self.source}" if self.source else ""
            raise ValueError(f"policy{source} has latent shape {list(self.net.latent_shape)}, the model "
                             f"{list(model.latent_shape)}: it was distilled for another bundle")

    def set_familiar_goals(self, goals: torch.Tensor) -> None:
        """Remember the (distinct) goal latents of the training data, for ``goal_distance``."""
        goals = torch.as_tensor(goals, dtype=torch.float32).reshape(-1, *self.net.latent_shape)
        self.familiar_goals = torch.unique(goals, dim=0) if goals.shape[0] else goals

    @torch.no_grad()
    def goal_distance(self, goal: torch.Tensor, latent_std: torch.Tensor | None = None) -> float:
        """RMS distance (in units of ``latent_std``) from ``goal`` to the nearest training goal; inf when none is known."""
        if self.familiar_goals.shape[0] == 0:
            return float("inf")
        std = torch.ones(()) if latent_std is None else torch.as_tensor(latent_std, dtype=torch.float32).clamp_min(1e-6)
        diff = (self.familiar_goals - torch.as_tensor(goal, dtype=torch.float32)) / std
        return float(diff.pow(2).flatten(1).mean(dim=1).sqrt().min())

    def fit(
        self,
        latents: torch.Tensor,
        goals: torch.Tensor,
        actions: torch.Tensor,
        *,
        epochs: int = 200,
        batch_size: int = 256,
        lr: float = 3e-3,
        seed: int = 0,
        progress: bool = False,
        val: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> list[float]:
        """Regress planned actions (N, A) or (N, >= num_actions, A) from (latents, goals); returns loss per epoch.

        Args:
            val: held-out (latents, goals, actions) (e.g. whole episodes kept out of training): the weights of
                the epoch with the lowest validation loss are kept, and ``self.val_losses`` records the curve.
        """
        if actions.dim() == 2:
            actions = actions.unsqueeze(1)
        if actions.shape[1] < self.num_actions or actions.shape[2] != self.action_dim:
            raise ValueError(f"actions have shape {tuple(actions.shape)}; need (N, >= {self.num_actions}, {self.action_dim})")
        if not latents.shape[0] == goals.shape[0] == actions.shape[0]:
            raise ValueError(
                f"latents, goals and actions disagree in length: {latents.shape[0]}, {goals.shape[0]}, {actions.shape[0]}"
            )
        half = ((self.high - self.low) / 2).clamp_min(1e-6)
        target = actions[:, : self.num_actions]
        gen = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=1e-4)
        losses: list[float] = []
        self.val_losses: list[float] = []
        best: tuple[float, dict] | None = None
        for _ in tqdm(range(epochs), desc="policy", disable=not progress):
            self.train()
            order, total = torch.randperm(latents.shape[0], generator=gen), 0.0
            for start in range(0, latents.shape[0], batch_size):
                idx = order[start : start + batch_size]
                loss = ((self.members(latents[idx], goals[idx]) - target[idx]) / half).pow(2).mean()  # each member fits alone
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * idx.numel()
            losses.append(total / latents.shape[0])
            if val is not None:
                v = self.validation_loss(*val)
                self.val_losses.append(v)
                if best is None or v < best[0]:
                    best = (v, {k: t.clone() for k, t in self.state_dict().items()})
        if best is not None:
            self.load_state_dict(best[1])
        self.eval()
        return losses

    @torch.no_grad()
    def validation_loss(self, latents: torch.Tensor, goals: torch.Tensor, actions: torch.Tensor) -> float:
        """Mean squared error (half-range units) of the first ``num_actions`` actions on held-out data."""
        if actions.dim() == 2:
            actions = actions.unsqueeze(1)
        half = ((self.high - self.low) / 2).clamp_min(1e-6)
        return float(((self(latents, goals) - actions[:, : self.num_actions]) / half).pow(2).mean())

    @torch.no_grad()
    def propose(
        self,
        model: WorldModel,
        z_ctx: torch.Tensor,
        goal: torch.Tensor,
        horizon: int,
        num: int,
        noise_std: float = 0.1,
        generator: torch.Generator | None = None,
        level: int = 0,
    ) -> torch.Tensor:
        """Candidate sequences (num, H, A) by running the policy through the model (to seed a planner).

        Args:
            z_ctx: (1, C, *L) or (C, *L) context; noise_std: Gaussian noise (fraction of the half range)
                added to all but the first candidate.
        """
        ctx = z_ctx if z_ctx.dim() == len(self.net.latent_shape) + 2 else z_ctx.unsqueeze(0)
        ctx = ctx[:, -model.context :].expand(num, *ctx.shape[1:])
        out = []
        for t in range(horizon):
            a = self(ctx[:, -1], goal.expand_as(ctx[:, -1]))[:, 0]
            a = self.jitter(a, noise_std, generator, keep_first=True)
            out.append(a)
            if t < horizon - 1:
                z_next = model.predict(ctx, a, level=level)
                ctx = torch.cat([ctx, z_next.unsqueeze(1)], dim=1)[:, -model.context :]
        return torch.stack(out, dim=1)

    def save(self, path: str | Path) -> None:
        torch.save({"config": self.config, "state": self.state_dict()}, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> DistilledPolicy:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"policy checkpoint {path} does not exist")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            cfg = blob["config"]
        except Exception as exc:  # truncated, not a checkpoint, or a pickle that asks for code: one clear line
            raise ValueError(f"policy checkpoint {path} cannot be read ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]}); train one with bench/bench_policy.py --policy-out") from exc
        policy = cls(
            tuple(cfg["latent_shape"]), cfg["action_low"], cfg["action_high"], cfg["num_actions"], cfg["hidden"], cfg["depth"],
            difference=bool(cfg.get("difference", False)),  # checkpoints from before the option: without
            ensemble=int(cfg.get("ensemble", 1)),
        )
        state = dict(blob["state"])
        familiar = state.pop("familiar_goals", None)
        policy.load_state_dict(state, strict=False)
        missing = set(policy.state_dict()) - set(state) - {"familiar_goals"}
        if missing:
            raise ValueError(f"policy checkpoint {path} lacks {sorted(missing)}")
        if familiar is not None:
            policy.familiar_goals = familiar
        policy.source = str(path)
        return policy.eval()


def collect_plans(
    planner: Planner, contexts: torch.Tensor, goals: torch.Tensor, num_actions: int = 1, progress: bool = False
) -> torch.Tensor:
    """Distillation targets: the first ``num_actions`` planned actions for each (context, goal) pair.

    Args:
        contexts: (N, C, *L) or (N, *L) states; goals: (N, *L).

    Returns:
        (N, num_actions, A) planned actions.
    """
    out = []
    for i in tqdm(range(contexts.shape[0]), desc="distill", disable=not progress):
        planner.reset()
        out.append(planner.plan(contexts[i], goals[i]).actions[:num_actions])
    return torch.stack(out)


class PolicyPlanner:
    """Mode 1 behind the planner API: the policy acts, the model only predicts where the actions lead (for display).

    Args:
        noise_std: Gaussian noise added to the policy's actions (fraction of the half range, then clipped),
            seeded by ``reset(seed)``. A deterministic policy has fixed points a few pixels short of the goal or
            against a wall (where its labels, Mode 2's mean decisions, nearly cancel); Mode 2 leaves them by
            sampling, and so does a stochastic Mode 1 (``bench/bench_policy.py`` measures both).
        check_samples: K > 1 adds a one-step check: the policy's action and K - 1 noisy copies of it
            (``noise_std``) go through one model step, and the one predicted nearest the goal (RMS distance
            in latent std) is executed. Not Mode 1 alone any more (it uses the world model once per decision,
            K predictions in one batch) but far from Mode 2's search; the noise then explores without
            stepping away from the goal on the last pixels, where the noisy policy alone loses its episodes.
    """

    name = "policy"

    def __init__(
        self, model: WorldModel, policy: DistilledPolicy, horizon: int = 1, level: int = 0, noise_std: float = 0.0, seed: int = 0,
        check_samples: int = 1,
    ) -> None:
        if not noise_std >= 0:
            raise ValueError(f"policy noise_std must be >= 0, got {noise_std}")
        if not (isinstance(check_samples, int) and check_samples >= 1):
            raise ValueError(f"policy check_samples must be an integer >= 1, got {check_samples!r}")
        if check_samples > 1 and noise_std == 0:
            raise ValueError("policy check_samples > 1 needs noise_std > 0 (the candidates are noisy copies of the policy's action)")
        self.model, self.policy, self.horizon, self.level = model, policy, int(horizon), level
        self.noise_std, self.check_samples = float(noise_std), check_samples
        self.generator = torch.Generator().manual_seed(seed)
        self.spec = level_spec(model, level)
        if policy.action_dim != self.spec.action_dim:
            raise ValueError(
                f"policy action_dim {policy.action_dim} differs from the model's level {level} action_dim {self.spec.action_dim}"
            )
        policy.check_fits(model)

    def reset(self, seed: int | None = None) -> None:
        """The policy is stateless; ``seed`` reseeds its action noise."""
        if seed is not None:
            self.generator.manual_seed(seed)

    def plan(self, z_ctx: torch.Tensor, goal: torch.Tensor, **_: object) -> PlanResult:
        start = time.perf_counter()
        ctx, goal = Planner.validate(self, z_ctx, goal)  # same input checks as the planners
        actions = self.policy.propose(self.model, ctx, goal, self.horizon, 1, noise_std=0.0, level=self.level)
        if self.check_samples > 1:
            actions = self.checked(ctx, goal, actions)
        elif self.noise_std > 0:
            actions = self.policy.jitter(actions, self.noise_std, self.generator)
        with torch.no_grad():
            latents = self.model.rollout(ctx, actions, level=self.level)
        stats = PlanStats(iterations=1, samples=self.check_samples, model_steps=self.horizon + (self.check_samples > 1),
                          time_s=time.perf_counter() - start)
        return PlanResult(actions[0], latents[0], float("nan"), [], self.name, self.level, stats)

    @torch.no_grad()
    def checked(self, ctx: torch.Tensor, goal: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(1, H, A) policy actions -> the (1, H, A) candidate whose first step the model predicts nearest ``goal``."""
        k = self.check_samples
        candidates = self.policy.jitter(actions.expand(k, *actions.shape[1:]), self.noise_std, self.generator, keep_first=True)
        context = ctx[:, -self.model.context :].expand(k, *ctx.shape[1:])
        predicted = self.model.predict(context, candidates[:, 0], level=self.level)
        distance = ((predicted - goal) / model_std(self.model)).pow(2).flatten(1).mean(dim=1)
        return candidates[int(distance.argmin())].unsqueeze(0)
