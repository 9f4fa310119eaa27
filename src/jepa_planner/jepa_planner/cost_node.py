"""Cost node: evaluates the configured cost terms and the critic for the current state and plan.

For each plan from the actor it rolls the plan's actions out from the newest latent (the same
bundle, in-process), scores the rollout with the cost module of the current profile, and publishes
a CostReport (total, per-term weighted values, critic value, intrinsic cost of the state itself).
The critic is reloaded whenever the memory node announces a new one on ``critic_updated``.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_msgs.msg import String

from jepa_interfaces.msg import CostReport, CostTerm, LatentState, Plan
from jepa_planner.costs import CostInputs, CostModule, latent_distance
from jepa_sim.ros_common import Param, declare_params, latched_qos, reliable_qos, run_node

PARAMS = {
    "bundle": Param("", "model bundle directory", read_only=True),
    "profiles_file": Param("", "planner profiles YAML (default: the packaged one)", read_only=True),
    "profile": Param("flat_cem", "profile whose level-0 cost terms are evaluated until one arrives on 'profile'"),
    "critic_path": Param("", "critic checkpoint to load at start (optional)", read_only=True),
    "autostart": Param(True, "configure and activate at start", read_only=True),
}


class CostNode(LifecycleNode):
    """Publishes ``cost`` (CostReport) for each plan."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("cost", **kwargs)
        self.params = declare_params(self, PARAMS)
        self.model = None
        self.critic = None
        self.goal: torch.Tensor | None = None
        self.latest: LatentState | None = None
        self.lock = threading.Lock()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from jepa_planner.profiles import load_profiles
        from jepa_world_model.bundle import load_bundle

        try:
            self.model = load_bundle(self.params["bundle"], backend="torch")
            self.profiles = load_profiles(self.params["profiles_file"] or None)
            self.use_profile(self.params["profile"])
            if self.params["critic_path"]:
                self.load_critic(self.params["critic_path"])
        except (FileNotFoundError, ValueError, KeyError, RuntimeError) as exc:
            self.get_logger().error(f"cannot configure the cost node: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.pub = self.create_lifecycle_publisher(CostReport, "cost", reliable_qos(5))
        self.create_subscription(LatentState, "latent", lambda m: setattr(self, "latest", m), reliable_qos(1))
        self.create_subscription(LatentState, "goal_latent", self.on_goal, latched_qos())
        self.create_subscription(String, "profile", lambda m: self.use_profile(m.data, quiet=True), latched_qos())
        self.create_subscription(String, "critic_updated", lambda m: self.load_critic(m.data), reliable_qos(1))
        self.create_subscription(Plan, "plan", self.on_plan, reliable_qos(5))
        return TransitionCallbackReturn.SUCCESS

    def use_profile(self, name: str, quiet: bool = False) -> None:
        if name not in self.profiles:
            if quiet:
                self.get_logger().warning(f"unknown profile '{name}' on 'profile': keeping the current cost terms")
                return
            raise KeyError(f"unknown profile '{name}'; known: {sorted(self.profiles)}")
        level0 = [lv for lv in self.profiles[name].levels if lv.level == 0]
        config = [t.model_dump() for t in level0[0].costs] if level0 else [{"type": "goal_distance"}]
        with self.lock:
            self.costs = CostModule.from_config(config, critic=self.critic)

    def load_critic(self, path: str) -> None:
        from jepa_planner.critic import Critic

        try:
            self.critic = Critic.load(Path(path))
        except (FileNotFoundError, RuntimeError, KeyError) as exc:
            self.get_logger().warning(f"critic '{path}' not loaded: {exc}")

    def on_goal(self, msg: LatentState) -> None:
        data = np.asarray(msg.data, np.float32)
        ok = data.size == int(np.prod(self.model.latent_shape)) and np.isfinite(data).all()
        self.goal = torch.from_numpy(data.reshape(self.model.latent_shape)) if ok else None

    def on_plan(self, msg: Plan) -> None:
        latest, goal = self.latest, self.goal
        if latest is None or goal is None or msg.level != 0 or len(msg.action_shape) != 2:
            return
        z = np.asarray(latest.data, np.float32)
        if z.size != goal.numel() or not np.isfinite(z).all():
            return
        z = torch.from_numpy(z.reshape(self.model.latent_shape))
        actions = torch.from_numpy(np.asarray(msg.actions, np.float32).reshape(tuple(msg.action_shape)))[None]
        spec = next(s for s in self.model.levels if s.level == 0)
        if actions.shape[-1] != spec.action_dim:
            return
        with torch.no_grad(), self.lock:
            latents = self.model.rollout(z[None, None], actions)
            inputs = CostInputs(
                latents=latents,
                actions=actions,
                goal=goal,
                latent_mean=self.model.latent_mean,
                latent_std=self.model.latent_std,
                action_low=torch.tensor(spec.action_low),
                action_high=torch.tensor(spec.action_high),
            )
            breakdown = self.costs(inputs)
            norm = inputs.normalise
            intrinsic = float(latent_distance(norm(z)[None], norm(goal)[None], z.dim())[0])
            critic_value = float(self.critic(z[None], goal[None])[0]) if self.critic is not None else math.nan
        report = CostReport(header=latest.header, total=float(breakdown.total[0]), critic_value=critic_value, intrinsic=intrinsic)
        report.terms = [CostTerm(name=t.name, weight=float(t.weight), value=float(t.value)) for t in breakdown.summary(0)]
        self.pub.publish(report)


def main(args: list[str] | None = None) -> int:
    return run_node(CostNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
