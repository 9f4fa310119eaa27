"""Memory node: short-term memory of the agent's episodes; records them to MCAP and trains the critic.

It pairs each latent with the command that followed it and the intrinsic cost reported by the
cost node, closes an episode when the goal is cleared or changes, and records each closed episode
as its own rosbag2 MCAP bag (latents as jepa_interfaces/LatentState, commands, costs), written,
closed and synced when the episode closes: a killed memory node loses at most the open episode.
Each run records into a new session directory under ``record_dir``/episodes and never deletes or
overwrites earlier bags. Every ``critic_every`` episodes it fits the critic on the stored episodes,
saves it (atomically) and announces its path on ``critic_updated`` (the actor and the cost node hot-swap it):
``record_dir``/critic.pt, or without a ``record_dir`` a temporary directory of this node, removed when it stops.
Every input is validated (latent shape and values, NaN commands); a bad message costs a warning.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import Twist
from rclpy.node import Node
from std_msgs.msg import String

from jepa_common.convert import twist_to_action
from jepa_common.ros_common import (
    Param,
    background_thread,
    declare_params,
    finite_values,
    guarded,
    latched_qos,
    reliable_qos,
    run_node,
)
from jepa_interfaces.msg import CostReport, LatentState
from jepa_planner.memory import EpisodeMemory

CRITIC_FIT_TIMEOUT_S = 600.0  # a critic fit that runs longer is stopped (the old critic stays)

PARAMS = {
    "record_dir": Param("", "directory for the episode MCAP bags and the critic ('' = episodes in memory only, the "
                        "critic in a temporary directory removed when the node stops)", read_only=True),
    "max_transitions": Param(100000, "transitions kept in memory", min=1, max=100_000_000),
    "critic_every": Param(5, "fit the critic after this many new episodes (0 = never)", min=0, max=100000, dynamic=True),
    "critic_epochs": Param(100, "critic training epochs per update", min=1, max=100000, dynamic=True),
    "critic_hindsight": Param(4, "later-state goals per stored state when fitting the critic (0 = episode goals only)",
                              min=0, max=1000, dynamic=True),
    "dt": Param(0.1, "seconds per control step (Twist velocity x dt = action)", min=1e-4, max=10.0, dynamic=True),
}


class MemoryNode(Node):
    """Collects (latent, action, cost) episodes; writes them and keeps the critic up to date."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("memory", **kwargs)
        self.params = declare_params(self, PARAMS)
        self.memory = EpisodeMemory(self.params["max_transitions"])
        self.action = np.zeros(2, np.float32)
        self.cost = 0.0
        self.goal: np.ndarray | None = None
        self.new_episodes = 0
        self.lock = threading.Lock()
        self.critic_busy = threading.Lock()  # held while a critic fit runs
        self.critic_proc: Any = None  # the child process of a critic fit in progress (ended by before_exit)
        self.recorder = None
        self.open_steps: list[tuple[Any, np.ndarray, float]] = []  # the open episode's messages, recorded when it closes
        self.shape: tuple[int, ...] | None = None  # latent shape of this run (the first valid latent or goal sets it)
        self.scratch_dir: Path | None = None  # where critics go without a record_dir (made at the first fit)
        if self.params["record_dir"]:
            from jepa_planner.episode_bag import EpisodeRecorder

            self.recorder = EpisodeRecorder(Path(self.params["record_dir"]) / "episodes")
            self.get_logger().info(f"recording each episode as its own bag under {self.recorder.dir}")
        self.critic_pub = self.create_publisher(String, "critic_updated", reliable_qos(1))
        for msg_type, topic, callback, qos in (
            (LatentState, "latent", self.on_latent, reliable_qos(10)),
            (LatentState, "goal_latent", self.on_goal, latched_qos()),
            (Twist, "cmd_vel", self.on_twist, reliable_qos(10)),
            (CostReport, "cost", self.on_cost, reliable_qos(10)),
        ):
            self.create_subscription(msg_type, topic, guarded(self, topic, callback), qos)

    def on_twist(self, msg: Twist) -> None:
        finite_values(msg.linear.x, msg.linear.y, what="cmd_vel")
        self.action = twist_to_action(msg, 2, self.params["dt"]).astype(np.float32)

    def on_cost(self, msg: CostReport) -> None:
        finite_values(msg.intrinsic, what="cost intrinsic")
        self.cost = float(msg.intrinsic)

    def check_latent(self, msg: LatentState, topic: str) -> np.ndarray:
        """The latent as an array; ValueError when malformed or of another shape than this run's latents."""
        shape = tuple(int(s) for s in msg.shape)
        if self.shape is not None and shape != self.shape:
            raise ValueError(f"{topic} has shape {list(shape)}, this run's latents are {list(self.shape)}")
        from jepa_common.ros_common import parse_latent

        z = parse_latent(msg, shape, topic=topic)
        self.shape = shape
        return z

    def on_latent(self, msg: LatentState) -> None:
        if self.goal is None:
            return
        z = self.check_latent(msg, "latent")
        with self.lock:
            self.memory.add(z, self.action, self.cost)
            if self.recorder is not None:
                self.open_steps.append((msg, self.action.copy(), self.cost))

    def on_goal(self, msg: LatentState) -> None:
        """A new or cleared goal closes the running episode (recorded to its own bag at once)."""
        goal = self.check_latent(msg, "goal_latent") if len(msg.data) else None
        with self.lock:
            episode = self.memory.end_episode(goal=self.goal)
            steps, self.open_steps = self.open_steps, []
        if episode is not None:
            self.new_episodes += 1
            where = ""
            if self.recorder is not None:
                try:
                    where = f", recorded to {self.recorder.write_episode(steps)}"
                except OSError as exc:
                    self.get_logger().error(f"episode not recorded: {exc}")
            self.get_logger().info(f"episode stored: {len(episode)} steps, {len(self.memory)} transitions in memory{where}")
            due = self.params["critic_every"] and self.new_episodes >= self.params["critic_every"]
            if due and not self.critic_busy.locked():  # one fit at a time; a due one waits for the next episode
                self.new_episodes = 0
                threading.Thread(target=self.update_critic, name="critic-fit", daemon=True).start()
        self.goal = goal

    def update_critic(self) -> None:
        """Fit the critic on the stored episodes, in the background: one fit at a time, in a child process at
        the lowest CPU priority (``python -m jepa_planner.critic``), so that a fit takes neither the planner's
        GIL (the composed agent) nor its CPU (profiled in the composed process: a fit thread took 15% of the
        samples beside the actor's 21%, and 9% of the process's GIL time even when it stepped between plans)."""
        with self.critic_busy:
            background_thread()
            self.fit_critic()

    def fit_critic(self) -> None:
        import subprocess
        import tempfile

        from jepa_planner.critic import fit_process_args

        with self.lock:
            episodes = [e for e in self.memory.episodes if e.goal is not None]
            if not episodes:
                return
            k = int(self.params["critic_hindsight"])
            z, g, y = self.memory.hindsight_dataset(goals_per_state=k) if k > 0 else self.memory.critic_dataset()
        record = self.params["record_dir"]
        if not record and self.scratch_dir is None:
            self.scratch_dir = Path(tempfile.mkdtemp(prefix="jepa_memory_critic_"))
        out = Path(record) / "critic.pt" if record else self.scratch_dir / "critic.pt"
        with tempfile.TemporaryDirectory(prefix="jepa_critic_") as scratch:
            data = Path(scratch) / "data.npz"
            np.savez(data, latents=z.numpy(), goals=g.numpy(), targets=y.numpy())
            proc = subprocess.Popen(fit_process_args(data, out, self.params["critic_epochs"]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "OMP_NUM_THREADS": "1"})
            self.critic_proc = proc
            try:
                stdout, stderr = proc.communicate(timeout=CRITIC_FIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                self.get_logger().error(f"critic fit took more than {CRITIC_FIT_TIMEOUT_S:g} s; stopped, the old critic stays")
                return
            finally:
                self.critic_proc = None
        if proc.returncode != 0:
            last = (stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            self.get_logger().error(f"critic fit failed ({last}); the old critic stays")
            return
        self.critic_pub.publish(String(data=str(out)))  # before, without a record_dir the new critic was thrown away
        loss = stdout.split()[-1] if stdout.split() else "?"
        self.get_logger().info(f"critic updated on {len(episodes)} episodes, final loss {loss}, announced as {out}")

    def before_exit(self) -> None:
        """A stop (Ctrl-C, SIGTERM) records the open episode too, and ends a critic fit in progress."""
        proc = self.critic_proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        with self.lock:
            steps, self.open_steps = self.open_steps, []
        if self.recorder is not None and steps:
            try:
                self.recorder.write_episode(steps)
            except OSError as exc:
                self.get_logger().error(f"open episode not recorded: {exc}")
        if self.scratch_dir is not None:
            import shutil

            shutil.rmtree(self.scratch_dir, ignore_errors=True)
            self.scratch_dir = None

    def destroy_node(self) -> None:
        self.before_exit()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(MemoryNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
