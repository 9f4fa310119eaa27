"""The main job: the agent's nodes as separate processes against a built-in world, driven by ReachGoal.

Starts the sim (two-rooms by default, lockstep), perception, world model, actor, configurator, cost
and memory nodes with one params file (config/agent.yaml), then for each episode resets the world,
takes its goal image and sends it as a ReachGoal goal. Success is judged on the world's privileged
state, independently of the agent's own latent tolerance: the agent came within the world's success
radius during the task (the world's own success event, which ends a ``jepa-evaluate`` episode; the
final distance is reported too, as the robot may coast a step after the configurator stops it).
Prints the success rate with a 95% interval, steps, loop rates and latency (camera frame in ->
command out, measured across processes), and saves a GIF of one episode and a PNG of all
trajectories.

Supervision: every wait has a timeout; a node that dies ends the demo with its name, exit code and
the tail of its log; Ctrl-C (or SIGTERM) ends everything: each node runs in its own process group,
which gets SIGINT, then SIGKILL when it does not exit in time (a second Ctrl-C kills at once), so no
process is left behind. Paths in the params file are taken relative to the repository when they do
not exist relative to the working directory, so the demo runs from anywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jepa_common.paths import portable_path
from jepa_common.processes import NodeProcesses
from jepa_common.yaml_io import load_yaml_file, load_yaml_text
from jepa_planner.evaluate import wilson_interval
from jepa_planner.world_defaults import REPO, missing_bundle_hint, world_command_bounds, world_defaults

NODES = {
    "sim": "jepa_sim.sim_node",
    "perception": "jepa_perception.perception_node",
    "world_model": "jepa_world_model.world_model_node",
    "actor": "jepa_planner.actor_node",
    "configurator": "jepa_planner.configurator_node",
    "cost": "jepa_planner.cost_node",
    "memory": "jepa_planner.memory_node",
}


class DemoInterruptedError(Exception):
    """Ctrl-C / SIGTERM: the demo stops everything and exits."""


@dataclass
class EpisodeRecord:
    seed: int
    success: bool = False
    agent_reason: str = ""
    steps: int = 0
    final_distance_px: float = math.nan
    min_distance_px: float = math.nan
    start: list[float] = field(default_factory=list)
    goal: list[float] = field(default_factory=list)
    path: list[list[float]] = field(default_factory=list)
    elapsed_s: float = 0.0


class DemoClient:
    """rclpy client: resets the world, sends ReachGoal, watches images, commands, plans and status."""

    def __init__(self, world_name: str, world_args: dict[str, Any], goal_proprio: bool = False) -> None:
        import rclpy
        from geometry_msgs.msg import TwistStamped
        from rclpy.action import ActionClient
        from sensor_msgs.msg import Image, JointState
        from std_srvs.srv import Trigger

        from jepa_common.ros_common import (
            ExecutorThread,
            latched_qos,
            no_rclpy_signal_handlers,
            reliable_qos,
            sensor_qos,
            stamp_to_ns,
        )
        from jepa_interfaces.action import ReachGoal
        from jepa_interfaces.msg import AgentStatus, Plan
        from jepa_sim.worlds import make_world

        self.rclpy, self.ReachGoal, self.stamp_to_ns = rclpy, ReachGoal, stamp_to_ns
        # The demo handles SIGINT / SIGTERM itself (a flag the main thread polls, see run). rclpy's own handler
        # would also shut the context down from its signal thread while this client's executor thread waits on
        # it: the demo then died by SIGSEGV about 50 ms after a Ctrl-C, once in a fresh-clone CI run.
        rclpy.init(signal_handler_options=no_rclpy_signal_handlers())
        self.node = rclpy.create_node("demo_client")
        self.world = make_world(world_name, **world_args)  # for the map, the success test and the goal state
        self.goal_proprio = goal_proprio  # send the goal's proprio with the goal image (bundles that fuse it)
        self.lock = threading.Lock()
        self.image_wall: dict[int, tuple[float, float]] = {}  # image stamp -> (middleware receipt, callback time)
        self.frames: list[np.ndarray] = []
        self.record_frames = False
        self.state: np.ndarray | None = None
        self.goal_msg = None
        self.goal_seen = threading.Event()
        self.status = AgentStatus(latent_age=-1.0)  # -1 until the configurator reports the actor's
        self.latencies: list[float] = []  # image -> command, s, between middleware receipts here
        self.replan_latencies: list[float] = []  # image -> plan, likewise
        self.callback_latencies: list[float] = []  # the same between this client's callbacks
        self.callback_replan_latencies: list[float] = []
        self.plan_positions: list[np.ndarray] = []
        self.current_plan = np.zeros((0, 2))
        self.path: list[list[float]] = []
        self.states: list[np.ndarray] = []  # the true states of the task so far (the world's success test)
        self.check: Any = lambda: None  # raises to end a wait early (a node died, Ctrl-C); set by the demo
        n = self.node
        from rclpy.subscription import Subscription

        def with_info(callback: Any) -> Any:  # rclpy before Iron passes no MessageInfo: the wall clock stands in
            return callback if hasattr(Subscription, "CallbackType") else (lambda m: callback(m, None))

        n.create_subscription(Image, "camera/image_raw", with_info(self.on_image), sensor_qos(5))
        n.create_subscription(Image, "goal_image", self.on_goal_image, latched_qos())
        n.create_subscription(JointState, "true_state", self.on_state, reliable_qos(10))
        n.create_subscription(TwistStamped, "cmd_vel_stamped", with_info(self.on_command), reliable_qos(10))
        n.create_subscription(Plan, "plan", with_info(self.on_plan), reliable_qos(10))
        n.create_subscription(AgentStatus, "agent_status", lambda m: setattr(self, "status", m), reliable_qos(5))
        self.reset_client = n.create_client(Trigger, "sim/reset")
        self.action = ActionClient(n, ReachGoal, "reach_goal")
        # ExecutorThread: a context shut down while the executor builds a wait set ends the thread quietly (a
        # bare executor.spin printed an RCLError traceback on every such stop, when rclpy's Ctrl-C handler did it)
        spinner = ExecutorThread([n], threads=2)
        self.executor, self.thread = spinner.executor, spinner.thread
        self.thread.start()

    # ------------------------------------------------------------------ callbacks
    @staticmethod
    def received_s(info: Any) -> float:
        """When the middleware received a message in this process (its ``received_timestamp``, system clock), in s:
        latencies between two such times leave out this observer's own executor, which is not the agent's;
        the wall clock now where the middleware gives no time."""
        rx = info.get("received_timestamp", 0) if isinstance(info, dict) else 0
        return rx * 1e-9 if rx and rx > 0 else time.time()

    def on_image(self, msg: Any, info: Any) -> None:
        from jepa_common.ros_common import image_to_array

        ns = self.stamp_to_ns(msg.header.stamp)
        with self.lock:
            self.image_wall[ns] = (self.received_s(info), time.monotonic())
            if len(self.image_wall) > 2000:
                for key in sorted(self.image_wall)[:1000]:
                    del self.image_wall[key]
        if self.record_frames:  # each frame with the newest plan's predicted positions at that moment
            self.frames.append(image_to_array(msg))
            self.plan_positions.append(self.current_plan)

    def on_goal_image(self, msg: Any) -> None:
        self.goal_msg = msg
        self.goal_seen.set()

    def on_state(self, msg: Any) -> None:
        self.state = np.asarray(msg.position, np.float64)
        self.path.append(self.state[:2].tolist())
        self.states.append(self.state)

    def on_command(self, msg: Any, info: Any) -> None:
        """Latency: the command's stamp is its source image's; both were received here (one clock)."""
        self.record_latency(msg, info, self.latencies, self.callback_latencies)

    def on_plan(self, msg: Any, info: Any) -> None:
        self.record_latency(msg, info, self.replan_latencies, self.callback_replan_latencies)
        self.current_plan = np.array([[p.x, p.y] for p in msg.predicted_positions]).reshape(-1, 2)

    def record_latency(self, msg: Any, info: Any, received: list[float], callback: list[float]) -> None:
        """Time from the source image to ``msg`` (stamped like it): between middleware receipts, and between
        this client's callbacks (``callback``: what the figures were before they left the observer out)."""
        now, rx = time.monotonic(), self.received_s(info)
        ns = self.stamp_to_ns(msg.header.stamp)
        with self.lock:
            if ns in self.image_wall:
                image_rx, image_cb = self.image_wall[ns]
                received.append(rx - image_rx)
                callback.append(now - image_cb)

    # ------------------------------------------------------------------ driving
    def wait(self, done: Any, timeout: float, what: str) -> None:
        """Poll ``done()`` until true; TimeoutError after ``timeout`` s; ``self.check()`` may end it early."""
        deadline = time.monotonic() + timeout
        while not done():
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: no answer after {timeout:.0f} s")
            time.sleep(0.02)

    def call(self, client: Any, request: Any, timeout: float) -> Any:
        self.wait(client.service_is_ready, timeout, f"service {client.srv_name} not available")
        future = client.call_async(request)
        self.wait(future.done, timeout, f"service {client.srv_name}")
        return future.result()

    def wait_ready(self, procs: NodeProcesses, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # the last: latents reach the actor (discovery between the nodes can lag behind ours; a goal sent
        # before would only run on the actor's stale-input stops); the status says so about once a second
        for what, ready in (("ReachGoal action server", lambda: self.action.server_is_ready()),
                            ("sim reset service", lambda: self.reset_client.service_is_ready()),
                            ("latents at the actor (agent_status.latent_age)", lambda: 0.0 <= self.status.latent_age < 2.0)):
            while not ready():
                self.check()
                if procs.dead():
                    raise RuntimeError(f"node(s) exited during start-up: {procs.describe_dead()}; logs in {procs.log_dir}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{what} not up after {timeout} s; see the logs in {procs.log_dir}")
                time.sleep(0.1)

    def run_episode(self, seed: int, time_limit: float, record: bool) -> EpisodeRecord:
        from std_srvs.srv import Trigger

        self.goal_seen.clear()
        self.record_frames, self.frames, self.plan_positions = record, [], []
        self.path, self.states = [], []  # the reset publishes the start state first
        response = self.call(self.reset_client, Trigger.Request(), 10)
        if not response.success:
            raise RuntimeError(f"sim reset failed: {response.message}")
        self.wait(self.goal_seen.is_set, 10, "goal image after the reset")
        rec = EpisodeRecord(seed=seed)
        goal_state = self.world_goal_state(seed)
        rec.goal = goal_state[:2].tolist()
        start = time.monotonic()
        goal = self.ReachGoal.Goal(goal_type=self.ReachGoal.Goal.GOAL_IMAGE, goal_image=self.goal_msg, time_limit=time_limit)
        if self.goal_proprio:  # the world was just reset to this episode by world_goal_state
            goal.goal_proprio = np.asarray(self.world.goal_observation().proprio, np.float32).tolist()
        send = self.action.send_goal_async(goal)
        self.wait(send.done, 30, "ReachGoal goal response")
        handle = send.result()
        if not handle.accepted:
            rec.agent_reason = "rejected"
            return rec
        result_future = handle.get_result_async()
        try:  # the configurator ends a task at its time limit; the margin covers a slow machine, not a hang
            self.wait(result_future.done, time_limit + 30, "ReachGoal result")
        except BaseException:
            handle.cancel_goal_async()  # a task never outlives the demo (the actor's lease stops the robot anyway)
            raise
        result = result_future.result().result
        rec.elapsed_s = time.monotonic() - start
        rec.agent_reason, rec.steps = result.reason, int(result.steps)
        rec.path = list(self.path)
        if rec.path:
            rec.start = rec.path[0]
            distances = np.linalg.norm(np.asarray(rec.path)[:, :2] - goal_state[:2], axis=1)
            rec.final_distance_px, rec.min_distance_px = float(distances[-1]), float(distances.min())
            rec.success = any(self.world.state_success(goal_state, s) for s in list(self.states))
        return rec

    def world_goal_state(self, seed: int) -> np.ndarray:
        """The sim episode's privileged goal state: the same world reset with the same seed (deterministic)."""
        self.world.reset(seed=seed)
        return np.asarray(self.world.goal_state, np.float64)

    def close(self, destroy: bool = True) -> None:
        """Stop spinning (bounded); with ``destroy`` also destroy the node and shut the context down.

        A process that ends right after (the demo) passes ``destroy=False``: deleting middleware entities
        can block for seconds holding the GIL while peers are dying (see ``jepa_common.ros_common.before_exit``);
        the process's end frees them.
        """
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=5)  # no callback may still run on the node being destroyed
        if destroy:
            self.node.destroy_node()
            self.rclpy.try_shutdown()


def save_pictures(out: Path, world: Any, records: list[EpisodeRecord], frames: list[np.ndarray],
                  plans: list[np.ndarray]) -> list[str]:
    """PNG of every trajectory over the map; GIF of one episode with its planned path."""
    import imageio.v3 as iio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    saved = []
    from jepa_planner.evaluate import map_extent

    extent = map_extent(world)  # the map in the units of paths and plans (Push-T: arena px, not image px)
    size = abs(extent[1] - extent[0])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(world.render_map(), extent=extent)
    for r in records:
        if r.path:
            p = np.asarray(r.path, dtype=np.float64)
            jumps = np.flatnonzero(np.linalg.norm(np.diff(p, axis=0), axis=1) > 0.1 * size)  # resets, not motion
            p = np.insert(p, jumps + 1, np.nan, axis=0)
            ax.plot(p[:, 0], p[:, 1], "-", color="tab:green" if r.success else "tab:red", lw=1)
            ax.plot(*r.goal, "*", color="gold", ms=8)
    ok = sum(r.success for r in records)
    ax.set_title(f"{ok}/{len(records)} goals reached (green: success)")
    ax.set_axis_off()
    fig.savefig(out / "trajectories.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    saved.append(str(out / "trajectories.png"))
    if frames:
        scale = 4
        gif = []
        to_pixel = getattr(world, "world_to_pixel", None)
        for i, f in enumerate(frames):
            big = np.kron(f, np.ones((scale, scale, 1), np.uint8))
            if i < len(plans) and len(plans[i]):
                where = to_pixel(plans[i]) + 0.5 if to_pixel is not None else np.asarray(plans[i]) * f.shape[1] / size
                for x, y in where:
                    xi, yi = round(float(x) * scale), round(float(y) * scale)
                    if 1 <= xi < big.shape[1] - 1 and 1 <= yi < big.shape[0] - 1:
                        big[yi - 1 : yi + 2, xi - 1 : xi + 2] = (255, 255, 0)
            gif.append(big)
        iio.imwrite(out / "episode.gif", np.stack(gif), duration=80, loop=0)
        saved.append(str(out / "episode.gif"))
    return saved


def node_section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """A node's ros__parameters in a params file keyed ``name``, ``/name`` or ``/**/name``."""
    for key in (f"/**/{name}", f"/{name}", name):
        if key in params:
            return params[key].get("ros__parameters", {}) or {}
    return {}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Run the agent's nodes against a built-in world and send ReachGoal tasks.")
    p.add_argument("--bundle", default=None, help="model bundle directory (default: models/<world>)")
    p.add_argument("--world", default=None, help="built-in world (default: the sim section of --params, two_rooms)")
    p.add_argument(
        "--world-args", default=None,
        help="world options as a YAML mapping, e.g. '{goal_doors: 4}' (default: the params file's, or "
        "'{goal_doors: 4}' for --world multi_room)",
    )
    p.add_argument("--params", default=str(REPO / "config" / "agent.yaml"), help="params file shared by all nodes")
    p.add_argument("--episodes", type=int, default=10, help="ReachGoal tasks to run (each with a new world seed)")
    p.add_argument("--seed", type=int, default=1000, help="world seed of the first episode")
    p.add_argument("--profile", default="",
                   help="planner profile (default: flat_cem for push_t, hierarchical for point_maze, else the "
                   "configurator's default_profile)")
    p.add_argument("--time-limit", type=float, default=120.0, help="seconds per task")
    p.add_argument("--tolerance", type=float, default=None,
                   help="configurator goal tolerance, normalised latent distance (default: the params file's; "
                   "0 there: the bundle's own, see jepa-bundle info)")
    p.add_argument("--max-steps", type=int, default=None, help="control steps per task (default 200; 600 for multi_room and point_maze, 50 for push_t)")
    p.add_argument("--realtime", action="store_true", help="run the sim in realtime mode (default: lockstep)")
    p.add_argument("--out", default=str(REPO / "artifacts" / "demo"), help="directory for logs, JSON, PNG and GIF")
    p.add_argument("--startup-timeout", type=float, default=60.0, help="seconds to wait for the nodes to come up")
    p.add_argument("--composed", action="store_true",
                   help="run the agent's nodes in one process (jepa_planner.composed) beside the sim: lower latency")
    return p


def repo_relative_paths(section: dict[str, Any], keys: tuple[str, ...]) -> dict[str, str]:
    """Overrides for path parameters given relative to the repository that do not exist relative to the working
    directory (the shipped params file says ``config/goals.yaml``): absolute paths, so any directory works."""
    out = {}
    for key in keys:
        value = section.get(key)
        relative = isinstance(value, str) and value and not Path(value).is_absolute()
        if relative and not Path(value).exists() and (REPO / value).exists():
            out[key] = str(REPO / value)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``jepa-demo``: runs the demo, then ends the process at once with its exit code (the
    client's middleware entities are left to the process's end, see ``DemoClient.close``)."""
    from jepa_common.ros_common import exit_now

    exit_now(run(argv))
    return 0  # not reached


def run(argv: list[str] | None = None) -> int:
    """The demo (see the module docstring); returns the exit code."""
    args = build_parser().parse_args(argv)
    import yaml

    try:
        params = load_yaml_file(args.params) or {}
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the params file {args.params}: {exc}", file=sys.stderr)
        return 2
    sim_params = node_section(params, "sim")
    world_name = args.world or sim_params.get("world", "two_rooms")
    defaults = world_defaults(world_name)
    default_args = defaults.world_args if args.world else (
        sim_params.get("world_args") or (sim_params.get("world_options") or {}).get(world_name, ""))
    world_args_text = args.world_args if args.world_args is not None else default_args
    try:
        world_args = load_yaml_text(world_args_text or "{}", "--world-args") or {}
        if not isinstance(world_args, dict):
            raise ValueError(f"--world-args must be a YAML mapping, got {world_args_text!r}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:  # an optional world without its extra: the one line that names what to install, before any node starts
        command_bounds = world_command_bounds(world_name, world_args)
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (TypeError, ValueError) as exc:
        print(f"error: world {world_name!r} with {world_args}: {exc}", file=sys.stderr)
        return 2
    bundle = Path(args.bundle or REPO / "models" / world_name).resolve()
    from jepa_world_model.bundle import read_manifest

    try:
        uses_proprio = bool(read_manifest(bundle)["input"].get("uses_proprio", False))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}{'' if args.bundle else missing_bundle_hint(world_name, REPO)}", file=sys.stderr)
        return 2
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    common = {"bundle": str(bundle)}
    overrides = {name: dict(common) for name in NODES}
    overrides["sim"] = {
        "seed": args.seed - 1, "mode": "realtime" if args.realtime else "lockstep", "world": world_name,
        "world_args": yaml.safe_dump(world_args, default_flow_style=True).strip() if world_args else "",
    }
    overrides["actor"]["trigger"] = "timer" if args.realtime else "on_latent"
    overrides["actor"].update(command_bounds)
    overrides["configurator"]["max_steps"] = args.max_steps or defaults.max_steps
    if args.tolerance is not None:
        overrides["configurator"]["default_tolerance"] = args.tolerance
    args.profile = args.profile or defaults.profile
    if args.profile:
        overrides["configurator"]["default_profile"] = args.profile
        overrides["actor"]["profile"] = args.profile
    overrides["memory"] = {"record_dir": str(out / "memory")}
    if uses_proprio:  # the bundle fuses proprio: perception reads it, and goals carry the goal's (DemoClient)
        overrides["perception"]["use_proprio"] = True
    overrides["configurator"].update(repo_relative_paths(node_section(params, "configurator"), ("goals_file", "profiles_file")))
    for name in ("actor", "cost"):
        overrides[name].update(repo_relative_paths(node_section(params, name), ("profiles_file",)))
    procs = NodeProcesses(out / "logs", Path(args.params).resolve(), overrides)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():  # second Ctrl-C: no more waiting
            procs.kill_all()
            os._exit(130)
        stop.set()
        print(f"\n[demo] {signal.Signals(signum).name}: stopping the nodes (Ctrl-C again to kill them now)", file=sys.stderr)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def check() -> None:
        if stop.is_set():
            raise DemoInterruptedError()
        if procs.dead():
            raise RuntimeError(f"node died: {procs.describe_dead()}; logs in {out / 'logs'}")

    client = None
    records: list[EpisodeRecord] = []
    frames: list[np.ndarray] = []
    plans: list[np.ndarray] = []
    try:
        if args.composed:
            from jepa_planner.composed import start_composed

            procs.start("sim", NODES["sim"])
            start_composed(procs, [name for name in NODES if name != "sim"])
        else:
            for name, module in NODES.items():
                procs.start(name, module)
        client = DemoClient(world_name, world_args, goal_proprio=uses_proprio)
        client.check = check
        print(f"[demo] started {len(NODES)} node processes; waiting for them (logs: {out / 'logs'})")
        client.wait_ready(procs, args.startup_timeout)
        from tqdm import tqdm

        bar = tqdm(range(args.episodes), desc="ReachGoal", unit="task")
        for i in bar:
            if stop.is_set():
                break
            rec = client.run_episode(args.seed + i, args.time_limit, record=(i == 0))
            if i == 0:
                frames, plans = list(client.frames), list(client.plan_positions)
            records.append(rec)
            ok = sum(r.success for r in records)
            bar.set_postfix(success=f"{ok}/{len(records)}", steps=rec.steps, reason=rec.agent_reason)
            check()
        status = client.status
        lat = np.asarray(client.latencies) * 1000
        rep = np.asarray(client.replan_latencies) * 1000
    except DemoInterruptedError:
        print("[demo] interrupted: all node processes stopped", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError) as exc:
        print(f"[demo] error: {exc}", file=sys.stderr)
        return 1
    finally:
        if client is not None:
            client.close(destroy=False)  # the process ends soon (see main)
        procs.stop()
    n, ok = len(records), sum(r.success for r in records)
    lo, hi = wilson_interval(ok, n)
    summary = {
        "world": world_name,
        "bundle": portable_path(bundle),
        "profile": args.profile or node_section(params, "configurator").get("default_profile"),
        "mode": "realtime" if args.realtime else "lockstep",
        "episodes": n,
        "success_rate": ok / n if n else 0.0,
        "success_ci95": [lo, hi],
        "steps_median": float(np.median([r.steps for r in records if r.success])) if ok else None,
        "latency_ms_image_to_command": {"median": float(np.median(lat)) if lat.size else None,
                                        "p95": float(np.percentile(lat, 95)) if lat.size else None},
        "latency_ms_image_to_plan": {"median": float(np.median(rep)) if rep.size else None,
                                     "p95": float(np.percentile(rep, 95)) if rep.size else None},
        "loop_rates_hz": {"perception": status.perception_rate, "planning": status.planning_rate,
                          "command": status.command_rate},
        "episodes_detail": [r.__dict__ for r in records],
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    saved = save_pictures(out, client.world, records, frames, plans) if records else []
    print(f"[demo] success {ok}/{n} = {100 * ok / max(n, 1):.0f}% (95% CI {100 * lo:.0f}-{100 * hi:.0f}%)")
    if lat.size:
        print(f"[demo] latency camera frame -> command: median {np.median(lat):.1f} ms, p95 {np.percentile(lat, 95):.1f} ms "
              f"over {lat.size} commands")
    print(f"[demo] loop rates: perception {status.perception_rate:.1f} Hz, planning {status.planning_rate:.1f} Hz, "
          f"command {status.command_rate:.1f} Hz")
    print(f"[demo] wrote {out / 'demo.json'}" + (f", {', '.join(saved)}" if saved else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
