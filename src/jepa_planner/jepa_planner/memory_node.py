"""Memory node: short-term memory of the agent's episodes; records them to MCAP and trains the critic.

It pairs each latent with the command that followed it and the intrinsic cost reported by the
cost node, closes an episode when the goal is cleared or changes, appends each closed episode to a
rosbag2 MCAP file (latents as jepa_interfaces/LatentState, commands, costs), and every
``critic_every`` episodes fits the critic on the stored episodes, saves it and announces its path
on ``critic_updated`` (the cost node and actor reload it).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import Twist
from rclpy.node import Node
from std_msgs.msg import String

from jepa_interfaces.msg import CostReport, LatentState
from jepa_planner.memory import EpisodeMemory
from jepa_sim.ros_common import Param, declare_params, latched_qos, reliable_qos, run_node

PARAMS = {
    "record_dir": Param("", "directory for the episode MCAP bag and the critic ('' = keep in memory only)", read_only=True),
    "max_transitions": Param(100000, "transitions kept in memory", min=1, max=100_000_000),
    "critic_every": Param(5, "fit the critic after this many new episodes (0 = never)", min=0, max=100000),
    "critic_epochs": Param(100, "critic training epochs per update", min=1, max=100000),
    "dt": Param(0.1, "seconds per control step (Twist velocity x dt = action)", min=1e-4, max=10.0),
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
        self.writer = None
        if self.params["record_dir"]:
            from jepa_planner.episode_bag import EpisodeBagWriter

            Path(self.params["record_dir"]).mkdir(parents=True, exist_ok=True)
            self.writer = EpisodeBagWriter(Path(self.params["record_dir"]) / "episodes")
        self.critic_pub = self.create_publisher(String, "critic_updated", reliable_qos(1))
        self.create_subscription(LatentState, "latent", self.on_latent, reliable_qos(10))
        self.create_subscription(LatentState, "goal_latent", self.on_goal, latched_qos())
        self.create_subscription(Twist, "cmd_vel", self.on_twist, reliable_qos(10))
        self.create_subscription(CostReport, "cost", lambda m: setattr(self, "cost", float(m.intrinsic)), reliable_qos(10))

    def on_twist(self, msg: Twist) -> None:
        self.action = np.array([msg.linear.x, msg.linear.y], np.float32) * self.params["dt"]

    def on_latent(self, msg: LatentState) -> None:
        if self.goal is None:
            return
        z = np.asarray(msg.data, np.float32).reshape(tuple(msg.shape))
        if not np.isfinite(z).all():
            return
        with self.lock:
            self.memory.add(z, self.action, self.cost)
        if self.writer is not None:
            self.writer.write(msg, self.action, self.cost)

    def on_goal(self, msg: LatentState) -> None:
        """A new or cleared goal closes the running episode."""
        with self.lock:
            episode = self.memory.end_episode(goal=self.goal)
        if episode is not None:
            self.new_episodes += 1
            self.get_logger().info(f"episode stored: {len(episode)} steps, {len(self.memory)} transitions in memory")
            if self.params["critic_every"] and self.new_episodes >= self.params["critic_every"]:
                self.new_episodes = 0
                threading.Thread(target=self.update_critic, daemon=True).start()
        data = np.asarray(msg.data, np.float32)
        self.goal = data.reshape(tuple(msg.shape)) if data.size else None

    def update_critic(self) -> None:
        from jepa_planner.critic import Critic

        with self.lock:
            episodes = [e for e in self.memory.episodes if e.goal is not None]
            if not episodes:
                return
            shape = episodes[0].latents.shape[1:]
            data = self.memory.critic_dataset()
        critic = Critic(tuple(shape))
        losses = critic.fit(data, epochs=self.params["critic_epochs"])
        if self.params["record_dir"]:
            path = Path(self.params["record_dir"]) / "critic.pt"
            critic.save(path)
            self.critic_pub.publish(String(data=str(path)))
        self.get_logger().info(f"critic updated on {len(episodes)} episodes, final loss {losses[-1]:.4f}")

    def destroy_node(self) -> None:
        if self.writer is not None:
            self.writer.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(MemoryNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
