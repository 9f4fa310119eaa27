"""Closed-loop experience for learning: episodes recorded as memory (critic) and decisions labelled by Mode 2 (policy).

``drive`` runs one episode through the same ``MPCController`` as the actor node and the evaluation command,
and keeps, at every replan (one per model step by default): the latent, the executed model action, the
intrinsic cost of the state (normalised squared distance to the goal latent, the cost node's ``intrinsic``)
and, when a ``labeller`` planner is given, the labeller's first planned action for that same state (DAgger:
the states the acting planner visits, labelled by Mode 2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from jepa_common.convert import latent_distance
from jepa_planner.memory import MemoryEpisode


def intrinsic_cost(model, z: torch.Tensor, goal: torch.Tensor) -> float:
    """Normalised squared distance between one latent and the goal latent (what the critic learns to sum)."""
    std = model.latent_std if model.latent_std is not None else torch.ones_like(z)
    return latent_distance(z, goal, std) ** 2  # the cost node's ``intrinsic``


@dataclass
class EpisodeLog:
    """What one recorded episode gives the learners (states at replans, model-step spacing)."""

    success: bool
    steps: int
    memory: MemoryEpisode
    contexts: list[torch.Tensor] = field(default_factory=list)  # (C, *L) per replan
    labels: list[torch.Tensor] = field(default_factory=list)  # (A,) labeller's first action per replan
    plan_times: list[float] = field(default_factory=list)
    samples: int = 0  # candidate sequences the acting planner evaluated


def encode(model, obs) -> torch.Tensor:
    """The observation's latent (with proprio when the encoder fuses it)."""
    if getattr(model, "uses_proprio", False):
        return model.encode(obs.image[None], np.asarray(obs.proprio, np.float32)[None])[0]
    return model.encode(obs.image[None])[0]


def drive(model, planner, world, seed: int, max_steps: int, replan_every: int | None = None, labeller=None) -> EpisodeLog:
    """One closed-loop episode of ``planner`` on ``world`` (seeded), recorded for the critic and the policy.

    Args:
        labeller: a Mode-2 planner asked for its decision at every state the acting planner replans in
            (not executed); None labels each state with the acting planner's own decision.
    """
    from jepa_planner.controller import MPCController

    obs = world.reset(seed=seed)
    planner.reset(seed)
    if labeller is not None:
        labeller.reset(seed)
    ctl = MPCController(model, planner, replan_every=replan_every)
    with torch.no_grad():
        goal = encode(model, world.goal_observation())
    ctl.set_goal(goal)
    latents, actions, costs, contexts, labels, times = [], [], [], [], [], []
    samples, success, steps = 0, bool(world.is_success()), 0
    while not success and steps < max_steps:
        with torch.no_grad():
            z = encode(model, obs)
        start = time.perf_counter()
        step = ctl.step(z)
        if step.replanned:
            times.append(time.perf_counter() - start)
            samples += int(getattr(step.plan.stats, "samples", 0))
            ctx = ctl.context()
            latents.append(z.numpy())
            actions.append(step.plan.actions[0].detach().numpy())
            costs.append(intrinsic_cost(model, z, goal))
            contexts.append(ctx)
            label = labeller.plan(ctx, goal).actions[0] if labeller is not None else step.plan.actions[0]
            labels.append(label.detach().clone())
        obs, info = world.step(step.action.astype(np.float64))
        steps += 1
        success = bool(info.success)
    if success:  # the goal state itself: zero cost-to-go there
        with torch.no_grad():
            z = encode(model, obs)
        latents.append(z.numpy())
        actions.append(np.zeros_like(actions[-1]) if actions else np.zeros(model.levels[0].action_dim, np.float32))
        costs.append(intrinsic_cost(model, z, goal))
    memory = MemoryEpisode(
        np.stack(latents).astype(np.float32), np.stack(actions).astype(np.float32), np.asarray(costs, np.float32), goal.numpy()
    )
    return EpisodeLog(success, steps, memory, contexts, labels, times, samples)


@dataclass
class DriveSummary:
    """Closed-loop episodes of one condition: success with its Wilson interval, per-decision times and samples."""

    episodes: int
    successes: int
    times: list[float]
    samples: int

    def success(self) -> dict:
        from jepa_planner.evaluate import wilson_interval

        lo, hi = wilson_interval(self.successes, self.episodes)
        return {"episodes": self.episodes, "successes": self.successes,
                "success_rate": self.successes / self.episodes, "success_ci95": [lo, hi]}

    def time_ms(self, q: float) -> float | None:
        """The ``q`` quantile of the time per decision (replan), ms; None without decisions."""
        return 1000 * float(np.quantile(self.times, q)) if self.times else None

    def samples_per_decision(self) -> float:
        return self.samples / max(len(self.times), 1)


def drive_seeds(model, make_planner, world, seeds: list[int], max_steps: int, replan_every: int | None,
                desc: str | None = None) -> DriveSummary:
    """``drive`` one fresh planner (``make_planner(seed)``) per seed: the benchmarks' evaluation loop."""
    from tqdm import tqdm

    wins, times, samples = 0, [], 0
    for seed in tqdm(seeds, desc=desc, disable=desc is None):
        log = drive(model, make_planner(seed), world, seed, max_steps, replan_every)
        wins += log.success
        times += log.plan_times
        samples += log.samples
    return DriveSummary(len(seeds), wins, times, samples)


def drive_scripted(model, world, seed: int, max_steps: int, policy: str = "noisy_goal", **policy_kwargs) -> EpisodeLog:
    """One episode driven by a jepa_sim behaviour policy (e.g. ``noisy_goal``: the shortest path plus noise,
    like a teleoperated demonstration), recorded at model-step spacing like ``drive`` for the critic's memory."""
    from jepa_sim.policies import PolicyInput, make_policy

    obs = world.reset(seed=seed)
    driver = make_policy(policy, **policy_kwargs)
    driver.reset(world.batch, np.random.default_rng(seed))
    with torch.no_grad():
        goal = encode(model, world.goal_observation())
    fs = int(model.frameskip)
    latents, actions, costs, chunk = [], [], [], []
    success, steps, blocked = bool(world.is_success()), 0, False
    while not success and steps < max_steps:
        if steps % fs == 0:
            with torch.no_grad():
                z = encode(model, obs)
            latents.append(z.numpy())
            costs.append(intrinsic_cost(model, z, goal))
        inp = PolicyInput(np.asarray(obs.proprio, np.float64)[None], world.true_state()[None], world.goal_state[None],
                          np.array([blocked]))
        action = driver.act(inp)[0]
        obs, info = world.step(action)
        blocked = bool(info.extra.get("blocked", False))
        chunk.append(action.astype(np.float32))
        if len(chunk) == fs:
            actions.append(np.concatenate(chunk))
            chunk = []
        steps += 1
        success = bool(info.success)
    if success:
        with torch.no_grad():
            z = encode(model, obs)
        latents.append(z.numpy())
        costs.append(intrinsic_cost(model, z, goal))
    width = fs * world.spec.action_dim
    while len(actions) < len(latents):  # the last partial model step (and the goal state) get padded actions
        actions.append(np.zeros(width, np.float32))
    memory = MemoryEpisode(
        np.stack(latents).astype(np.float32), np.stack(actions[: len(latents)]).astype(np.float32),
        np.asarray(costs, np.float32), goal.numpy()
    )
    return EpisodeLog(success, steps, memory)
