"""Mode 1 vs Mode 2: a policy distilled from the planner's closed-loop decisions, then run alone.

1. Mode 2 (a planner profile, MPCController) drives ``--train-episodes`` episodes; every replan's
   (latent, goal latent, first planned model action) is kept: the states Mode 2 actually visits.
2. A DistilledPolicy is fitted to those decisions (amortised inference).
3. Mode 1 (the policy alone, through the same controller) and Mode 2 run the same held-out seeds:
   success rate and time per decision, and their ratio, measured in one run.

    .venv/bin/python bench/bench_policy.py --train-episodes 20 --eval-episodes 10
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from jepa_common.paths import portable_path
from jepa_sim.machine import machine_info

ROOT = Path(__file__).resolve().parents[1]


def drive(model, planner, world, seed: int, max_steps: int, replan_every: int, record: list | None = None) -> tuple[bool, list[float]]:
    """One closed-loop episode; returns (success, decision times) and appends (z, goal, action) to ``record``."""
    from jepa_planner.controller import MPCController

    obs = world.reset(seed=seed)
    planner.reset(seed)
    ctl = MPCController(model, planner, replan_every=replan_every)
    goal = model.encode(world.goal_observation().image[None])[0]
    ctl.set_goal(goal)
    times = []
    for _ in range(max_steps):
        z = model.encode(obs.image[None])[0]
        start = time.perf_counter()
        step = ctl.step(z)
        if step.replanned:
            times.append(time.perf_counter() - start)
            if record is not None:
                record.append((z, goal, step.plan.actions[0].detach()))
        obs, info = world.step(step.action.astype(np.float64))
        if info.success:
            return True, times
    return False, times


def main() -> None:
    from jepa_planner.policy import DistilledPolicy, PolicyPlanner
    from jepa_planner.profiles import build_planner, load_profile
    from jepa_sim.worlds import make_world
    from jepa_world_model.bundle import load_bundle

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default=str(ROOT / "models" / "two_rooms"))
    p.add_argument("--profile", default="flat_cem")
    p.add_argument("--train-episodes", type=int, default=20)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--policy-out", default=str(ROOT / "artifacts" / "policy" / "two_rooms_policy.pt"))
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "policy.json"))
    args = p.parse_args()
    torch.set_num_threads(2)
    model = load_bundle(args.bundle, backend="torch")
    world = make_world("two_rooms", goal_in_other_room=True)
    profile = load_profile(args.profile)
    replan = profile.replan_interval(model.frameskip)

    record: list = []
    for i in tqdm(range(args.train_episodes), desc="Mode 2 demonstrations"):
        drive(model, build_planner(profile, model, seed=i), world, 10_000 + i, args.max_steps, replan, record)
    z = torch.stack([r[0] for r in record])
    g = torch.stack([r[1] for r in record])
    a = torch.stack([r[2] for r in record])
    policy = DistilledPolicy.for_model(model, hidden=256, depth=3)
    losses = policy.fit(z, g, a, epochs=300, progress=False)
    Path(args.policy_out).parent.mkdir(parents=True, exist_ok=True)
    policy.save(args.policy_out)

    results = {}
    for mode, make in (("mode1_policy", lambda s: PolicyPlanner(model, policy, horizon=1)),
                       ("mode2_planner", lambda s: build_planner(profile, model, seed=s))):
        ok, times = 0, []
        for s in tqdm(range(args.eval_episodes), desc=mode):
            success, t = drive(model, make(s), world, s, args.max_steps, replan)
            ok += success
            times += t
        results[mode] = {"success_rate": ok / args.eval_episodes, "decision_ms_median": 1000 * float(np.median(times)),
                         "decision_ms_p95": 1000 * float(np.percentile(times, 95))}
    result = {
        "machine": machine_info(),
        "bundle": portable_path(args.bundle), "profile": args.profile, "train_decisions": len(record), "fit_loss_final": losses[-1],
        **results,
        "speedup_mode1_over_mode2": results["mode2_planner"]["decision_ms_median"] / results["mode1_policy"]["decision_ms_median"],
        "eval_episodes": args.eval_episodes,
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"Mode 1 (distilled from {len(record)} Mode-2 decisions): success {100 * results['mode1_policy']['success_rate']:.0f}%, "
          f"{results['mode1_policy']['decision_ms_median']:.2f} ms/decision; Mode 2: success "
          f"{100 * results['mode2_planner']['success_rate']:.0f}%, {results['mode2_planner']['decision_ms_median']:.1f} ms/decision; "
          f"Mode 1 is {result['speedup_mode1_over_mode2']:.0f}x faster ({args.eval_episodes} held-out episodes)")


if __name__ == "__main__":
    main()
