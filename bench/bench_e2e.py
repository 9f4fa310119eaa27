"""End-to-end latency: camera frame -> command over ROS 2 between processes vs the same planning in-process.

ROS: the demo's node processes (sim lockstep, perception, world model, actor, configurator, cost, memory)
run ReachGoal tasks; latency = time the stamped command arrives minus time its source image arrived,
both seen by one observer process. In-process: the same bundle, profile, world and seeds, one loop
(encode with onnxruntime as perception does, MPCController.step as the actor does). The ratio of the
medians is the cost of the node split (serialisation, DDS, executors); loop rates come from the nodes.

    .venv/bin/python bench/bench_e2e.py --episodes 3
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from jepa_sim.machine import machine_info

ROOT = Path(__file__).resolve().parents[1]


def in_process(bundle: str, profile_name: str, seeds: list[int], max_steps: int) -> dict:
    """Per-step latency of encode + controller.step, the actor's work without ROS."""
    from jepa_planner.controller import MPCController
    from jepa_planner.profiles import build_planner, load_profile
    from jepa_sim.worlds import make_world
    from jepa_world_model.bundle import load_bundle

    torch.set_num_threads(2)
    encoder = load_bundle(bundle, backend="onnx")  # perception's backend in config/agent.yaml
    model = load_bundle(bundle, backend="torch")  # the actor's
    profile = load_profile(profile_name)
    world = make_world("two_rooms", goal_in_other_room=True)
    latencies, replans, successes = [], [], 0
    for seed in seeds:
        obs = world.reset(seed=seed)
        planner = build_planner(profile, model, seed=0)
        ctl = MPCController(model, planner, replan_every=profile.replan_interval(model.frameskip))
        ctl.set_goal(encoder.encode(world.goal_observation().image[None])[0])
        for _ in range(max_steps):
            start = time.perf_counter()
            z = encoder.encode(obs.image[None])[0]
            step = ctl.step(z)
            elapsed = time.perf_counter() - start
            latencies.append(elapsed)
            if step.replanned:
                replans.append(elapsed)
            obs, info = world.step(step.action.astype(np.float64))
            if info.success:
                successes += 1
                break
    lat = np.asarray(latencies) * 1000
    rep = np.asarray(replans) * 1000
    return {
        "steps": int(lat.size),
        "latency_ms": {"median": float(np.median(lat)), "p95": float(np.percentile(lat, 95))},
        "replan_latency_ms": {"median": float(np.median(rep)), "p95": float(np.percentile(rep, 95))},
        "success": successes,
    }


def over_ros(bundle: str, profile_name: str, first_seed: int, episodes: int, max_steps: int) -> dict:
    from jepa_planner.demo import main as demo_main

    os.environ.setdefault("ROS_DOMAIN_ID", str(50 + os.getpid() % 40))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    with tempfile.TemporaryDirectory() as tmp:
        code = demo_main(["--bundle", bundle, "--episodes", str(episodes), "--seed", str(first_seed), "--profile", profile_name,
                          "--max-steps", str(max_steps), "--out", tmp])
        if code != 0:
            raise RuntimeError(f"the demo failed with exit code {code}")
        report = json.loads((Path(tmp) / "demo.json").read_text())
    return {
        "latency_ms": report["latency_ms_image_to_command"],
        "replan_latency_ms": report["latency_ms_image_to_plan"],
        "loop_rates_hz": report["loop_rates_hz"],
        "success": round(report["success_rate"] * report["episodes"]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default=str(ROOT / "models" / "two_rooms"))
    p.add_argument("--profile", default="flat_cem")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--max-steps", type=int, default=150)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "e2e.json"))
    args = p.parse_args()
    seeds = list(range(args.seed, args.seed + args.episodes))
    ros = over_ros(args.bundle, args.profile, args.seed, args.episodes, args.max_steps)
    local = in_process(args.bundle, args.profile, seeds, args.max_steps)
    result = {
        "machine": machine_info(),
        "profile": args.profile,
        "episodes": args.episodes,
        "ros": ros,
        "in_process": local,
        "ratio_median_latency_ros_over_in_process": ros["latency_ms"]["median"] / local["latency_ms"]["median"],
        "ratio_p95_latency_ros_over_in_process": ros["latency_ms"]["p95"] / local["latency_ms"]["p95"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"camera -> command over ROS: median {ros['latency_ms']['median']:.1f} ms, p95 {ros['latency_ms']['p95']:.1f} ms; "
          f"in-process: median {local['latency_ms']['median']:.1f} ms, p95 {local['latency_ms']['p95']:.1f} ms; "
          f"ratio {result['ratio_median_latency_ros_over_in_process']:.2f}x (median), "
          f"{result['ratio_p95_latency_ros_over_in_process']:.2f}x (p95); loop rates {ros['loop_rates_hz']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
