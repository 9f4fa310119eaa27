"""Cost node: evaluates the configured cost terms and the critic for the current state and plan.

For each plan from the actor it rolls the plan's actions out from the newest latent (the same
bundle, in-process), scores the rollout with the cost module of the current profile, and publishes
a CostReport (total, per-term weighted values, critic value, intrinsic cost of the state itself).
The critic is reloaded whenever the memory node announces a new one on ``critic_updated``.
Every input is validated (latent shapes, NaN, plan sizes, a critic file that is not a critic of this
bundle's latent shape): a bad message costs a throttled warning and the node keeps its last good state.
"""

from __future__ import annotations

import math
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_msgs.msg import String

from jepa_common.convert import latent_distance
from jepa_common.ros_common import (
    PLANNER_GATE,
    OwnedEntities,
    Param,
    configure_failed,
    declare_params,
    guarded,
    latched_qos,
    one_line,
    parse_latent,
    reliable_qos,
    run_node,
    subscribe_local_first,
)
from jepa_interfaces.msg import CostReport, CostTerm, LatentState, Plan
from jepa_planner.costs import CostInputs, CostModule

PARAMS = {
    "bundle": Param("", "model bundle directory", read_only=True),
    "profiles_file": Param("", "planner profiles YAML (default: the packaged one)", read_only=True),
    "profile": Param("flat_cem_search", "profile whose level-0 cost terms are evaluated until one arrives on 'profile'"),
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
        self.owned = OwnedEntities(self)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from jepa_planner.profiles import load_profiles
        from jepa_world_model.bundle import load_bundle

        try:
            if not self.params["bundle"]:
                raise ValueError("parameter 'bundle' is empty: give the model bundle directory")
            self.model = load_bundle(self.params["bundle"], backend="torch")
            self.profiles = load_profiles(self.params["profiles_file"] or None)
            self.critic, self.goal, self.latest = None, None, None
            self.use_profile(self.params["profile"])
            if self.params["critic_path"]:
                self.load_critic(self.params["critic_path"])
        except Exception as exc:
            self.model = None
            return configure_failed(self, exc)
        self.pub = self.owned.add(self.create_lifecycle_publisher(CostReport, "cost", reliable_qos(5)))
        # composed with perception: on_latent (a check and a store) runs on perception's thread (no executor pass)
        self.owned.add(subscribe_local_first(self, LatentState, "latent", self.on_latent, reliable_qos(1)))
        for msg_type, topic, callback, qos in (
            (LatentState, "goal_latent", self.on_goal, latched_qos()),
            (String, "profile", self.on_profile, latched_qos()),
            (String, "critic_updated", lambda m: self.load_critic(m.data), reliable_qos(1)),
            (Plan, "plan", self.on_plan, reliable_qos(5)),
        ):
            self.owned.add(self.create_subscription(msg_type, topic, guarded(self, topic, callback), qos))
        self.get_logger().info(f"cost node ready: profile '{self.current_profile}'")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.owned.release()
        self.model, self.critic, self.goal, self.latest = None, None, None, None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.on_cleanup(state)

    def use_profile(self, name: str, quiet: bool = False) -> None:
        if self.model is None:
            return
        if name not in self.profiles:
            if quiet:
                self.get_logger().warning(f"unknown profile '{name}' on 'profile': keeping the current cost terms")
                return
            raise KeyError(f"unknown profile '{name}'; known: {sorted(self.profiles)}")
        level0 = [lv for lv in self.profiles[name].levels if lv.level == 0]
        config = [t.model_dump() for t in level0[0].costs] if level0 else [{"type": "goal_distance"}]
        self.costs = CostModule.from_config(config, critic=self.critic)
        self.current_profile = name

    def on_profile(self, msg: String) -> None:
        """The configurator names the profile with every goal: rebuild the cost terms only when it changes
        (a rebuild looks the terms up among the installed plugins, about 3 ms of GIL each: in the composed
        agent that landed on the first plans of every task)."""
        if msg.data != self.current_profile:
            self.use_profile(msg.data, quiet=True)

    def load_critic(self, path: str) -> None:
        """Load a critic checkpoint; anything that is not a critic for this bundle's latents is refused (warning)."""
        from jepa_planner.critic import Critic

        try:
            with warnings.catch_warnings():  # torch's warnings about a foreign file are not the one line we log
                warnings.simplefilter("ignore")
                critic = Critic.load(Path(path))
            shape = tuple(critic.config["latent_shape"])
            if self.model is not None and shape != tuple(self.model.latent_shape):
                raise ValueError(f"it is for latents of shape {list(shape)}, the bundle's are {list(self.model.latent_shape)}")
        except Exception as exc:  # any file can arrive here: a bad one must not cost the node or the current critic
            self.get_logger().warning(f"critic '{path}' not loaded, keeping the current one: {type(exc).__name__}: "
                                      f"{one_line(exc)}",
                                      throttle_duration_sec=2.0)
            return
        with self.lock:
            self.critic = critic
            if hasattr(self, "costs"):
                self.use_profile(self.current_profile, quiet=True)

    def on_latent(self, msg: LatentState) -> None:
        parse_latent(msg, tuple(self.model.latent_shape), self.model.model_id, "latent")  # ValueError: dropped
        self.latest = msg

    def on_goal(self, msg: LatentState) -> None:
        if len(msg.data) == 0:
            self.goal = None  # goal cleared
            return
        self.goal = None
        self.goal = torch.from_numpy(parse_latent(msg, tuple(self.model.latent_shape), self.model.model_id, "goal_latent"))

    def on_plan(self, msg: Plan) -> None:
        latest, goal = self.latest, self.goal
        if latest is None or goal is None or msg.level != 0:
            return
        PLANNER_GATE.wait_idle()  # composed: never beside the actor's next plan
        spec = next(s for s in self.model.levels if s.level == 0)
        shape = tuple(int(x) for x in msg.action_shape)
        acts = np.asarray(msg.actions, np.float32)
        if len(shape) != 2 or shape[1] != spec.action_dim or shape[0] < 1 or acts.size != shape[0] * shape[1]:
            raise ValueError(f"plan actions have shape {list(shape)} with {acts.size} values, expected [H, {spec.action_dim}]")
        if not np.isfinite(acts).all():
            raise ValueError("plan actions contain NaN/inf")
        z = torch.from_numpy(parse_latent(latest, tuple(self.model.latent_shape)))
        actions = torch.from_numpy(acts.reshape(shape))[None]
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
            # intrinsic cost = squared normalised distance (the unit of the goal_distance cost term)
            std = self.model.latent_std if self.model.latent_std is not None else torch.ones_like(z)
            intrinsic = latent_distance(z, goal, std) ** 2
            critic_value = float(self.critic(z[None], goal[None])[0]) if self.critic is not None else math.nan
        report = CostReport(header=latest.header, total=float(breakdown.total[0]), critic_value=critic_value, intrinsic=intrinsic)
        report.terms = [CostTerm(name=t.name, weight=float(t.weight), value=float(t.value)) for t in breakdown.summary(0)]
        self.pub.publish(report)


def main(args: list[str] | None = None) -> int:
    return run_node(CostNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
