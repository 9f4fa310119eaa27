"""The agent's nodes composed in one process, for latency: one Python, one DDS participant, no process hops.

    python -m jepa_planner.composed --ros-args --params-file config/agent.yaml -p bundle:=models/two_rooms
    ros2 launch jepa_planner agent_sim.launch.py composed:=true

Same node classes, names, parameters and topics as the separate processes (``agent.launch.py``);
the params file's per-node sections apply as they would there. What changes is scheduling: with
seven processes on a small machine every process has its own interpreter, torch thread pool and
executor, and a frame crosses three process boundaries before it becomes a command.

Each node spins its own executor on its own thread(s), so a slow callback of one node never queues
behind another node's; only the nodes that watch the loop share one (``SHARED_EXECUTOR``).
Torch's intra-op thread count is one value for the whole process (set from one thread, read back
the same in every other: measured with torch 2.13), so the process uses the largest budget of
``--threads`` (the actor's); the other nodes' batch-1 work is below torch's parallel grain size and
stays on its calling thread anyway. rclpy has no intra-process transport: messages
between the composed nodes go through the middleware, in one participant, except the latent on the
control path: perception hands it straight to the actor's own thread, and to the configurator's and
the cost node's quick latent callbacks (``jepa_common.ros_common.LOCAL_TOPICS``; perception's
``in_process_latents``), and publishes it for everyone else; the others' work on a latent waits until
the actor has handled it (``PLANNER_GATE``).

Lifecycle nodes with ``autostart`` true configure and activate themselves as with ``run_node``; a
node that fails to configure ends the process with exit code 1 (a launch file then shuts down).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

# node name -> (module, class): the agent's nodes in the order they are created.
NODES = {
    "perception": ("jepa_perception.perception_node", "PerceptionNode"),
    "world_model": ("jepa_world_model.world_model_node", "WorldModelNode"),
    "actor": ("jepa_planner.actor_node", "ActorNode"),
    "configurator": ("jepa_planner.configurator_node", "ConfiguratorNode"),
    "cost": ("jepa_planner.cost_node", "CostNode"),
    "memory": ("jepa_planner.memory_node", "MemoryNode"),
}

# Executor threads per node. The batch-1 nodes get one thread each (a single-threaded executor): with
# thread pools for them too, their wake-ups for every latent and command fought the actor for the GIL
# (measured on 2 busy cores: camera -> command median 40 ms and planner time x2-3, against 2-9 ms and
# x1 with these). The configurator waits on services inside callbacks and the actor takes latents,
# goals and its watchdog concurrently: they keep the pools their own processes give them.
# Torch intra-op threads per node: the actor's callbacks plan (the heavy part) and get half the cores; the
# others' torch work is batch 1 and stays on one thread. On a busy 2-core machine two OpenMP threads for
# the actor made a replan 5-30x slower (threads wait on each other whenever one is descheduled): 1 there.
EXECUTOR_THREADS = {"perception": 1, "world_model": 1, "actor": 3, "configurator": 4, "cost": 1, "memory": 1}
# Nodes that only watch the loop (their per-frame work is small and waits for the planner gate) share one
# single-threaded executor when each has one thread: every latent and command woke one executor loop per
# node, and each pass of rclpy's loop is Python that takes the GIL from the plan (py-spy --gil: the six
# loops held it 60% of the time the composed process held it). Measured with bench_e2e (2 rounds, critic
# fits off to isolate it): planning rate 0.73x -> 0.77x of in-process. Perception keeps its own: behind
# the world model's gate wait its frames were late (0.72x).
SHARED_EXECUTOR = ("world_model", "cost", "memory")
TORCH_THREADS = {"perception": 1, "world_model": 1, "actor": max(1, (os.cpu_count() or 2) // 2), "configurator": 1,
                 "cost": 1, "memory": 1}


def parse_budgets(items: list[str], defaults: dict[str, int]) -> dict[str, int]:
    """``["actor=2", "cost=1"]`` over ``defaults``; ValueError naming a bad item."""
    out = dict(defaults)
    for item in items:
        name, _, value = item.partition("=")
        if name not in defaults or not value.isdigit() or int(value) < 1:
            raise ValueError(f"'{item}' must be NODE=N with N >= 1 and NODE one of {sorted(defaults)}")
        out[name] = int(value)
    return out


def node_class(name: str) -> type:
    module, cls = NODES[name]
    return getattr(importlib.import_module(module), cls)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="The agent's nodes in one process (ROS arguments after --ros-args).")
    p.add_argument("--nodes", default=",".join(NODES), help=f"comma-separated nodes to compose (default: all of {list(NODES)})")
    p.add_argument("--threads", nargs="*", default=[], metavar="NODE=N",
                   help=f"torch intra-op threads per node; the process uses the largest (default {TORCH_THREADS})")
    p.add_argument("--executor-threads", nargs="*", default=[], metavar="NODE=N",
                   help=f"executor threads per node, 1 = single-threaded executor (default {EXECUTOR_THREADS})")
    return p


def executors_for(nodes: list[Any], threads: dict[str, int]) -> list[Any]:
    """An executor per node, except the single-threaded ``SHARED_EXECUTOR`` nodes, which share one."""
    from jepa_common.ros_common import ExecutorThread

    shared = [n for n in nodes if n.get_name() in SHARED_EXECUTOR and threads[n.get_name()] == 1]
    runners = [ExecutorThread([n], threads[n.get_name()]) for n in nodes if n not in shared or len(shared) < 2]
    if len(shared) >= 2:
        runners.append(ExecutorThread(shared, 1))
    return runners


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``composed_agent``: ``jepa_common.ros_common.run_nodes`` over the chosen nodes."""
    from rclpy.utilities import remove_ros_args

    from jepa_common.ros_common import run_nodes

    argv = sys.argv if argv is None else [sys.argv[0], *argv]
    args = build_parser().parse_args(remove_ros_args(argv)[1:])
    try:
        names = [n.strip() for n in args.nodes.split(",") if n.strip()]
        unknown = [n for n in names if n not in NODES]
        if unknown or not names:
            raise ValueError(f"--nodes {args.nodes!r}: unknown {unknown}; known: {list(NODES)}")
        budgets = parse_budgets(args.threads, TORCH_THREADS)
        executor_threads = parse_budgets(args.executor_threads, EXECUTOR_THREADS)
    except ValueError as exc:
        print(f"[composed] error: {exc}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(max(budgets[n] for n in names))  # one value per process (see the module docstring)
    return run_nodes(lambda: [node_class(name)() for name in names], lambda nodes: executors_for(nodes, executor_threads),
                     argv, name="composed")


def start_composed(procs: Any, names: list[str], threads: dict[str, int] | None = None, python: str = sys.executable) -> None:
    """Start ``names`` as one composed process in a ``jepa_common.processes.NodeProcesses`` (registered as 'agent').

    Per-node overrides go in one extra params file with a ``/**/<name>`` section per node, the
    keys of the shared params file's own sections, so they win over them as in separate processes.
    """
    import yaml

    sections = {f"/**/{n}": {"ros__parameters": procs.overrides[n]} for n in names if procs.overrides.get(n)}
    budgets = [f"{name}={n}" for name, n in (threads or {}).items()]
    args = [python, "-m", "jepa_planner.composed", "--nodes", ",".join(names), *(["--threads", *budgets] if budgets else []),
            "--ros-args", "--params-file", str(procs.params_file)]
    if sections:
        path = Path(procs.log_dir) / "agent.overrides.yaml"
        path.write_text(yaml.safe_dump(sections))
        args += ["--params-file", str(path)]
    procs.spawn("agent", args)


if __name__ == "__main__":
    raise SystemExit(main())
