"""End-to-end latency and planning rate, side by side in one run: in-process vs composed vs separate processes.

Three ways to run the same agent (bundle, profile, lockstep two-rooms world, seeds):
  in_process  one loop: encode with onnxruntime as perception does, MPCController.step as the actor does;
  composed    the sim process plus all agent nodes in one process (jepa_planner.composed);
  separate    the sim plus one process per agent node (the demo's default).
Over ROS, latency = time a command (or plan) arrives minus time its source image arrived, both seen
by one observer process (the demo client): the middleware's receive times there, so the observer's own
executor is left out (the times of the observer's callbacks give the ``observer_callback`` figures and
ratios beside them). Figures:
  camera -> command      per control step (most steps reuse the plan; replanning steps make the p95);
  planning rate          1 / median(camera frame -> new plan): how fast a frame becomes a plan,
                         transport and starvation included (in-process: 1 / median(encode + replan));
  plans per second       plans per second of task time (lockstep: also bounded by the per-step hops).
All processes share the bench's scheduling group (see one_scheduling_group). Every mode runs one
warm-up task first (not counted): first calls allocate and load lazily. Torch
threads are the same for the planner in every mode (``--torch-threads``; the other nodes get one each,
as agent.launch.py and the composed process give them).

    .venv/bin/python bench/bench_e2e.py --episodes 5 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_planner.profiles import profile_for_world
from jepa_sim.machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
WORLD_ARGS = {"goal_in_other_room": True}


def summary(values_s: list[float]) -> dict:
    ms = np.asarray(values_s) * 1000
    if ms.size == 0:
        return {"median": None, "p95": None, "n": 0}
    return {"median": float(np.median(ms)), "p95": float(np.percentile(ms, 95)), "n": int(ms.size)}


def in_process(bundle: str, profile_name: str, seeds: list[int], max_steps: int, warmup_seed: int, threads: int) -> dict:
    """Per-step latency of encode + controller.step, the actor's work without ROS."""
    from jepa_planner.controller import MPCController
    from jepa_planner.profiles import build_planner, load_profile
    from jepa_sim.worlds import make_world
    from jepa_world_model.bundle import load_bundle

    torch.set_num_threads(threads)
    encoder = load_bundle(bundle, backend="onnx")  # perception's backend in config/agent.yaml
    model = load_bundle(bundle, backend="torch")  # the actor's
    profile = load_profile(profile_name)
    world = make_world("two_rooms", **WORLD_ARGS)
    latencies, replans, successes, busy = [], [], 0, 0.0
    for seed in [warmup_seed, *seeds]:
        counted = seed != warmup_seed
        obs = world.reset(seed=seed)
        planner = build_planner(profile, model, seed=0)
        ctl = MPCController(model, planner, replan_every=profile.replan_interval(model.frameskip))
        ctl.set_goal(encoder.encode(world.goal_observation().image[None])[0])
        for _ in range(max_steps):
            start = time.perf_counter()
            z = encoder.encode(obs.image[None])[0]
            step = ctl.step(z)
            elapsed = time.perf_counter() - start
            obs, info = world.step(step.action.astype(np.float64))
            if counted:
                latencies.append(elapsed)
                busy += time.perf_counter() - start
                if step.replanned:
                    replans.append(elapsed)
            if info.success:
                successes += counted
                break
    replan = summary(replans)
    return {
        "steps": len(latencies),
        "latency_ms": summary(latencies),
        "replan_latency_ms": replan,
        "planning_rate_hz": 1000.0 / replan["median"],
        "plans_per_second": len(replans) / busy,
        "success": successes,
    }


@contextlib.contextmanager
def one_scheduling_group() -> Iterator[None]:
    """Node processes started meanwhile stay in this process's session.

    Linux's autogroup scheduling gives each session an equal CPU share against the machine's other
    work: the demo starts every node in a session of its own, so on a shared machine seven separate
    processes got seven shares and one composed process one. Here every mode runs in one group.
    """
    real = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen:
        kwargs["start_new_session"] = False
        return real(*args, **kwargs)

    subprocess.Popen = popen  # type: ignore[misc]
    try:
        yield
    finally:
        subprocess.Popen = real  # type: ignore[misc]


def over_ros(bundle: str, profile_name: str, seeds: list[int], max_steps: int, warmup_seed: int, composed: bool,
             threads: int) -> dict:
    """The demo's nodes (separate processes or composed) on ReachGoal tasks, measured by the demo client."""
    from jepa_common.processes import NodeProcesses
    from jepa_common.ros_common import reliable_qos
    from jepa_interfaces.msg import Plan
    from jepa_planner.composed import start_composed
    from jepa_planner.demo import NODES, DemoClient

    with tempfile.TemporaryDirectory() as tmp:
        overrides = {name: {"bundle": bundle} for name in NODES}
        # each reset takes the next seed: the warm-up task gets warmup_seed, then the counted seeds follow
        overrides["sim"] = {"seed": warmup_seed - 1, "mode": "lockstep", "world": "two_rooms", "world_args": "{goal_in_other_room: true}"}
        overrides["actor"].update(trigger="on_latent", profile=profile_name)
        overrides["configurator"].update(max_steps=max_steps, default_profile=profile_name)
        overrides["memory"] = {"record_dir": str(Path(tmp) / "memory")}
        procs = NodeProcesses(Path(tmp), ROOT / "config" / "agent.yaml", overrides)
        client = None
        try:
            with one_scheduling_group():
                if composed:
                    procs.start("sim", NODES["sim"])
                    start_composed(procs, [n for n in NODES if n != "sim"], threads={"actor": threads})
                else:
                    for name, module in NODES.items():  # the planner's torch budget, one thread for the others
                        os.environ["OMP_NUM_THREADS"] = str(threads) if name == "actor" else "1"
                        procs.start(name, module)
                    del os.environ["OMP_NUM_THREADS"]
            client = DemoClient("two_rooms", WORLD_ARGS)
            planning_times: list[float] = []
            client.node.create_subscription(Plan, "plan", lambda m: planning_times.append(m.planning_time), reliable_qos(10))
            client.wait_ready(procs, 180)
            client.run_episode(warmup_seed, time_limit=120, record=False)
            with client.lock:
                for kept in (client.latencies, client.replan_latencies, client.callback_latencies,
                             client.callback_replan_latencies):
                    kept.clear()
            planning_times.clear()
            records = [client.run_episode(seed, time_limit=120, record=False) for seed in seeds]
            if procs.dead():
                raise RuntimeError(f"node(s) {procs.dead()} died during the bench")
            status = client.status
            with client.lock:
                lat, rep = list(client.latencies), list(client.replan_latencies)
                cb_lat, cb_rep = list(client.callback_latencies), list(client.callback_replan_latencies)
        finally:
            if client is not None:
                client.close()
            procs.stop()
    replan, cb_replan = summary(rep), summary(cb_rep)
    task_time = sum(r.elapsed_s for r in records)
    return {
        "processes": 2 if composed else len(NODES),
        "latency_ms": summary(lat),
        "replan_latency_ms": replan,
        "planning_rate_hz": 1000.0 / replan["median"] if replan["median"] else None,
        "plans_per_second": len(rep) / task_time if task_time else None,
        "planner_time_ms": summary(planning_times),
        "observer_callback": {"latency_ms": summary(cb_lat), "replan_latency_ms": cb_replan,
                              "planning_rate_hz": 1000.0 / cb_replan["median"] if cb_replan["median"] else None},
        "loop_rates_hz_last_status": {"perception": status.perception_rate, "planning": status.planning_rate,
                                      "command": status.command_rate},
        "success": sum(r.success for r in records),
        "steps": [r.steps for r in records],
    }


def run_round(args: argparse.Namespace, modes: list[str], seeds: list[int], warmup: int) -> dict:
    """Every mode once, one after the other, on the same seeds; ratios to the in-process figures."""
    results: dict = {"load_average_1min_before": os.getloadavg()[0]}
    for mode in modes:
        start = time.monotonic()
        if mode == "in_process":
            results[mode] = in_process(args.bundle, args.profile, seeds, args.max_steps, warmup, args.torch_threads)
        else:
            results[mode] = over_ros(args.bundle, args.profile, seeds, args.max_steps, warmup, mode == "composed",
                                     args.torch_threads)
        results[mode]["wall_s"] = time.monotonic() - start
        results[mode]["load_average_1min_after"] = os.getloadavg()[0]
    base = results.get("in_process")
    for mode in ("composed", "separate"):
        if base and mode in results:
            r = results[mode]
            results[f"ratio_planning_rate_{mode}_over_in_process"] = r["planning_rate_hz"] / base["planning_rate_hz"]
            results[f"ratio_p95_latency_{mode}_over_in_process"] = r["latency_ms"]["p95"] / base["latency_ms"]["p95"]
            cb = r["observer_callback"]
            results[f"ratio_planning_rate_{mode}_over_in_process_observer_callback"] = cb["planning_rate_hz"] / base["planning_rate_hz"]
            results[f"ratio_p95_latency_{mode}_over_in_process_observer_callback"] = cb["latency_ms"]["p95"] / base["latency_ms"]["p95"]
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default=str(ROOT / "models" / "two_rooms"))
    p.add_argument("--profile", default=profile_for_world("two_rooms"), help="planner profile (default: two-rooms' own)")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="rounds of every mode; ratios are reported per round and as medians")
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--max-steps", type=int, default=150)
    p.add_argument("--torch-threads", type=int, default=1, help="torch threads of the planner in every mode")
    p.add_argument("--modes", default="in_process,composed,separate", help="comma-separated subset to run")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "e2e.json"))
    args = p.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(50 + os.getpid() % 40))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    seeds = list(range(args.seed, args.seed + args.episodes))
    modes = [m.strip() for m in args.modes.split(",")]
    unknown = set(modes) - {"in_process", "composed", "separate"}
    if unknown:
        raise SystemExit(f"--modes: unknown {sorted(unknown)}; use in_process, composed, separate")
    rounds = []
    for k in range(args.rounds):  # interleaved, so a change in the machine's load hits every mode alike
        rounds.append(run_round(args, modes, seeds, args.seed - 1))
        r = rounds[-1]
        print(f"round {k + 1}: load {r['load_average_1min_before']:.1f}")
        for mode in modes:
            m = r[mode]
            print(f"  {mode:>10}: camera -> command median {m['latency_ms']['median']:.1f} ms, p95 {m['latency_ms']['p95']:.1f} ms; "
                  f"camera -> plan median {m['replan_latency_ms']['median']:.1f} ms (planning rate {m['planning_rate_hz']:.1f} Hz); "
                  f"{m['plans_per_second']:.1f} plans/s; {m['success']}/{args.episodes} reached")
    ratios = {key: float(np.median([r[key] for r in rounds])) for key in rounds[0] if key.startswith("ratio_")}
    medians = {mode: {"camera_to_command_p95_ms": float(np.median([r[mode]["latency_ms"]["p95"] for r in rounds])),
                      "camera_to_command_median_ms": float(np.median([r[mode]["latency_ms"]["median"] for r in rounds])),
                      "planning_rate_hz": float(np.median([r[mode]["planning_rate_hz"] for r in rounds])),
                      "plans_per_second": float(np.median([r[mode]["plans_per_second"] for r in rounds]))}
               for mode in modes}
    result = {"machine": machine_info(), "profile": args.profile, "episodes": args.episodes, "rounds": args.rounds,
              "torch_threads": args.torch_threads, "median_over_rounds": {**medians, **ratios}, "per_round": rounds}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    for key, value in ratios.items():
        print(f"{key}: median {value:.2f} (rounds: {', '.join(f'{r[key]:.2f}' for r in rounds)})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
