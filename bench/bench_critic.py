"""The critic's value: a myopic planner with and without the learned cost-to-go, same planner, same compute.

One command regenerates everything from the bundle (no critic file is shipped, so a retrained bundle only
needs a rerun):

1. Memory: ``--memory-driver`` (a scripted shortest-path driver with noise, like teleoperated
   demonstrations, or a planner profile) acts on training seeds; each episode is stored like the memory
   node stores it (latent, action, intrinsic cost of the state, goal latent).
2. Critic: fitted on the first n memory episodes for each n of ``--curve`` (the learning curve) and on all
   of them (the headline).
3. Evaluation on held-out seeds (disjoint from the memory seeds): ``--profile`` (the same profile with its
   critic term) with the critic and without one (the term then scores zero: same samples, same iterations); success with a Wilson 95%
   interval, planning time per replan and samples per replan.

    nice -n 5 .venv/bin/python bench/bench_critic.py --seed 0 --episodes 20 --max-steps 200 --out bench/results/critic.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]


def evaluate_condition(model, profile, world, seeds: list[int], max_steps: int, critic, weight: float | None = None) -> dict:
    """Success (Wilson interval), time and samples per replan of ``profile`` with ``critic`` on ``seeds``."""
    from jepa_planner.costs import CriticCost
    from jepa_planner.experience import drive_seeds
    from jepa_planner.profiles import build_planner

    def make_planner(seed: int):
        planner = build_planner(profile, model, seed=seed, critic=critic)
        if weight is not None:
            for term in planner.costs.terms:
                if isinstance(term, CriticCost):
                    term.weight = weight
        return planner

    run = drive_seeds(model, make_planner, world, seeds, max_steps, profile.replan_interval(model.frameskip))
    return {**run.success(), "plan_time_median_ms": run.time_ms(0.5), "plan_time_p95_ms": run.time_ms(0.95),
            "samples_per_replan": run.samples_per_decision()}


def fit_critic(model, episodes, epochs: int, seed: int, hindsight: int = 4):
    """A critic trained on ``episodes`` through EpisodeMemory, as the memory node trains it."""
    from jepa_planner.critic import Critic
    from jepa_planner.memory import EpisodeMemory

    memory = EpisodeMemory()
    for e in episodes:
        memory.add_episode(e)
    critic = Critic(tuple(model.latent_shape), latent_mean=model.latent_mean, latent_std=model.latent_std)
    critic.fit(memory, epochs=epochs, seed=seed, hindsight=hindsight)
    return critic.eval()


def main(argv: list[str] | None = None) -> int:
    from jepa_planner.experience import drive, drive_scripted
    from jepa_planner.profiles import build_planner, load_profile
    from jepa_sim.machine import machine_info
    from jepa_sim.worlds import make_world
    from jepa_world_model.bundle import load_bundle

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0, help="base seed: memory seeds and held-out seeds derive from it")
    p.add_argument("--episodes", type=int, default=60, help="held-out evaluation episodes per condition")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "critic.json"))
    p.add_argument("--bundle", default=str(ROOT / "models" / "multi_room"))
    p.add_argument("--world", default="multi_room")
    p.add_argument("--profile", default="flat_cem_short_critic", help="a profile with a 'critic' cost term")
    p.add_argument("--memory-driver", default="noisy_goal",
                   help="what drives the memory episodes: 'noisy_goal' (scripted shortest path plus noise, like a "
                        "teleoperated demonstration; cheap) or a planner profile name (the agent's own Mode 2)")
    p.add_argument("--memory-episodes", type=int, default=100)
    p.add_argument("--curve", default="25,50", help="memory sizes of the learning curve between 0 (the without_critic "
                   "result) and --memory-episodes (the with_critic result), each on the first --curve-episodes held-out seeds")
    p.add_argument("--curve-episodes", type=int, default=10, help="held-out episodes per learning-curve point")
    p.add_argument("--critic-epochs", type=int, default=300)
    p.add_argument("--hindsight", type=int, default=4, help="later-state goals per memory state (0: own goals only)")
    p.add_argument("--weight", type=float, default=None, help="critic term weight (default: the profile's)")
    p.add_argument("--max-steps", type=int, default=0, help="raw steps per episode (0: the world's)")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    try:
        model = load_bundle(args.bundle, backend="torch")
        profile = load_profile(args.profile)
        memory_profile = None if args.memory_driver == "noisy_goal" else load_profile(args.memory_driver)
        curve = sorted({int(x) for x in args.curve.split(",") if x.strip()})
    except (FileNotFoundError, ValueError) as exc:
        print(f"bench_critic: {exc}", file=sys.stderr)
        return 2
    if not any(t.type == "critic" for lv in profile.levels for t in lv.costs):
        print(f"bench_critic: profile {args.profile!r} has no 'critic' cost term; name one that has", file=sys.stderr)
        return 2
    kwargs = {"two_rooms": {"goal_in_other_room": True}, "multi_room": {"goal_far": True}}.get(args.world, {})
    world = make_world(args.world, **kwargs)
    args.max_steps = args.max_steps or world.spec.max_steps
    base = 1_000_000 * (args.seed + 1)
    memory_seeds = [base + i for i in range(args.memory_episodes)]
    heldout = [base + 500_000 + i for i in range(args.episodes)]

    start = time.perf_counter()
    episodes, memory_success = [], 0
    for s in tqdm(memory_seeds, desc=f"memory ({args.memory_driver})"):
        if memory_profile is None:
            log = drive_scripted(model, world, s, args.max_steps, "noisy_goal")
        else:
            log = drive(model, build_planner(memory_profile, model, seed=s), world, s, args.max_steps,
                        memory_profile.replan_interval(model.frameskip))
        episodes.append(log.memory)
        memory_success += log.success
    critic = fit_critic(model, episodes, args.critic_epochs, args.seed, args.hindsight)
    with_critic = evaluate_condition(model, profile, world, heldout, args.max_steps, critic, args.weight)
    without = evaluate_condition(model, profile, world, heldout, args.max_steps, None)
    print(f"without critic {100 * without['success_rate']:.0f}%, with critic {100 * with_critic['success_rate']:.0f}% "
          f"({args.episodes} held-out episodes)", flush=True)
    learning_curve = [{"memory_episodes": 0, **without}]
    for n in tqdm([n for n in curve if 0 < n < len(episodes)], desc="learning curve"):
        c = fit_critic(model, episodes[:n], args.critic_epochs, args.seed, args.hindsight) if n > 0 else None
        point = evaluate_condition(model, profile, world, heldout[: args.curve_episodes], args.max_steps, c, args.weight)
        learning_curve.append({"memory_episodes": n, **point})
        print(f"critic on {n} memory episodes: {100 * point['success_rate']:.0f}%", flush=True)
    learning_curve.append({"memory_episodes": len(episodes), **with_critic})
    result = {
        "command": "bench/bench_critic.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "bundle": Path(args.bundle).name,
        "world": args.world,
        "world_kwargs": kwargs,
        "profile": args.profile,
        "profile_levels": [lv.model_dump() for lv in profile.levels],
        "memory": {"driver": args.memory_driver, "episodes": len(episodes), "success_rate": memory_success / len(episodes),
                   "seeds": [memory_seeds[0], memory_seeds[-1]]},
        "heldout_seeds": [heldout[0], heldout[-1]],
        "without_critic": without,
        "with_critic": with_critic,
        "gain_points": 100 * (with_critic["success_rate"] - without["success_rate"]),
        "learning_curve": learning_curve,
        "elapsed_s": time.perf_counter() - start,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}: gain {result['gain_points']:+.0f} points")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
