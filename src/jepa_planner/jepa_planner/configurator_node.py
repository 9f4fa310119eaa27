"""Configurator node: the ReachGoal action server; sets goal and planner profile, judges success, reports status.

A goal arrives as an image (encoded by perception's ``encode_image`` service, so goal and
observations share one encoder), a latent (checked against the bundle), or a name from the goals
YAML (an image file or a latent ``.npy``). The configurator publishes the goal latent and the
profile (both transient local) for the actor, then follows the latent stream: success when the
normalised latent distance (RMS over dimensions of (z - g) / latent_std) drops below the
tolerance (the goal's; else ``default_tolerance``; else, when that is 0, the bundle's own ``goal.tolerance``,
since a latent's scale per pixel or metre is the bundle's); otherwise timeout, cancel, or preemption by a newer goal. On any end it clears the goal,
which stops the actor. ``agent_status`` merges the actor's status with the task's progress.

Supervision: while a goal runs, the configurator refreshes the actor's lease on it (``goal_lease``,
std_msgs/Header stamped like the goal, every ``lease_period`` s on the steady clock), so the robot
stops when the configurator dies. It aborts the goal with a reason when perception is silent (no
latent, no rate heartbeat) for ``perception_timeout`` s, the actor sends no status for
``actor_timeout`` s, or no latent arrives for ``stall_timeout`` s (camera stalled). A goal that preempts a
running one first stops the robot; an invalid one (unknown name, bad profile, non-finite tolerance or
time limit, an image perception refuses) ends the running goal and leaves the robot stopped.

The world model's ``surprise_alarm`` (std_msgs/Bool) shows in ``agent_status`` warnings; when it rises
during a task the profile's ``on_surprise`` option ignores it, replans (the goal is handed to the actor
again) or stops the task (reason "surprise").

For hierarchical profiles (with ``plan_subgoals``) the configurator plans the upper levels itself, once
per model step, and hands their first predicted latent to the actor on ``subgoal_latent`` (stamped
with the latent it was planned from); the actor then plans only level 0, toward it. The two
processes plan in parallel, and a person can watch the subgoals. The world model for this is loaded in
``configure`` (lifecycle), and only when the profiles file has a hierarchical profile.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_msgs.msg import Bool, Float32, Header, String

from jepa_common.ros_common import (
    PLANNER_GATE,
    OwnedEntities,
    Param,
    array_to_image,
    configure_failed,
    declare_params,
    guarded,
    latched_qos,
    reliable_qos,
    run_node,
    steady_clock,
    subscribe_local_first,
)
from jepa_common.yaml_io import load_yaml_file
from jepa_interfaces.action import ReachGoal
from jepa_interfaces.msg import AgentStatus, LatentState, Plan
from jepa_interfaces.srv import EncodeImage
from jepa_planner.supervision import REACHED, GoalSupervisor, resolve_tolerance

FALLBACK_TOLERANCE = 0.03  # default_tolerance 0 with a bundle that carries none (the two-rooms bundles' value)
ENCODE_RETRY_S = 2.0  # encode_image: send the request again after this long without a reply (see encode_image)

PARAMS = {
    "bundle": Param("", "model bundle directory (manifest: latent shape, statistics, model id)", read_only=True),
    "profiles_file": Param("", "planner profiles YAML (default: the packaged one)", read_only=True),
    "default_profile": Param("flat_cem_search", "profile used when a goal names none"),
    "goals_file": Param("", "named goals YAML: {name: {image: file.png} | {latent: file.npy}}", read_only=True),
    "default_tolerance": Param(0.0, "success when the normalised latent distance is below this; 0 = the bundle's "
                               f"goal tolerance (manifest goal.tolerance), else {FALLBACK_TOLERANCE}", min=0.0, max=1e3,
                               dynamic=True),
    "default_time_limit": Param(60.0, "seconds before a goal times out", min=0.1, max=86400.0, dynamic=True),
    "max_steps": Param(0, "control steps before a goal times out (0 = no step limit)", min=0, max=10_000_000,
                       dynamic=True),
    "encode_timeout": Param(10.0, "seconds to wait for perception's encode_image", min=0.1, max=600.0, dynamic=True),
    "lease_period": Param(0.25, "seconds between goal lease refreshes on 'goal_lease' (keep well under the actor's "
                          "lease_timeout)", min=0.01, max=60.0),
    "perception_timeout": Param(2.0, "abort a running goal after this many seconds without a latent or a "
                                "perception/rate heartbeat (2 Hz) from perception", min=0.1, max=600.0, dynamic=True),
    "stall_timeout": Param(15.0, "abort a running goal after this many seconds without a latent while perception "
                           "is alive (camera or simulator stalled)", min=0.5, max=3600.0, dynamic=True),
    "actor_timeout": Param(3.0, "abort a running goal after this many seconds without actor/status (1 Hz) or a plan",
                           min=0.5, max=600.0, dynamic=True),
    "actor_discovery_timeout": Param(10.0, "abort a running goal after this many seconds when the actor was never "
                                     "heard from (a just-started actor's status can take seconds to be discovered)",
                                     min=0.5, max=600.0, dynamic=True),
    "plan_subgoals": Param(
        True,
        "hierarchical profiles: plan the upper levels here and hand subgoals to the actor on 'subgoal_latent' "
        "(false: the actor plans every level itself)",
        read_only=True,
    ),
    "autostart": Param(True, "configure and activate at start", read_only=True),
}


class ConfiguratorNode(LifecycleNode):
    """ReachGoal server and task supervisor."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("configurator", **kwargs)
        self.params = declare_params(self, PARAMS)
        self.manifest = None
        self.bundle_tolerance: float | None = None  # the bundle's goal.tolerance (manifest), set in configure
        self.group = ReentrantCallbackGroup()
        self.latest: LatentState | None = None
        self.latent_event = threading.Event()
        self.plan_cost = 0.0
        self.actor_status = AgentStatus()
        self.perception_rate = 0.0
        self.active_goal_id: str = ""
        self.task_desc = ""
        self.distance = -1.0
        self.step = 0
        self.current_profile = self.params["default_profile"]
        self.goal_lock = threading.RLock()
        self.model = None  # the world model, when subgoals of hierarchical profiles are planned here
        self.owned = OwnedEntities(self)
        self.goal_stamp: Any = None  # stamp of the goal latent the lease is for (None: no goal handed out)
        self.end_reasons: dict[str, str] = {}  # goal id -> why it was ended from outside its loop
        self.latent_rx = self.perception_rx = self.actor_rx = 0.0  # monotonic receipt times (liveness)
        self.actor_status_rx = 0.0
        self.goal_pub = None

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from jepa_planner.profiles import load_profiles
        from jepa_world_model.bundle import read_manifest
        from jepa_world_model.manifest import goal_tolerance

        try:
            if not self.params["bundle"]:
                raise ValueError("parameter 'bundle' is empty: give the model bundle directory")
            self.manifest = read_manifest(self.params["bundle"])
            self.latent_shape = tuple(self.manifest["latent_shape"])
            self.latent_mean = np.asarray(self.manifest["latent_mean"], np.float32).reshape(self.latent_shape)
            self.latent_std = np.maximum(np.asarray(self.manifest["latent_std"], np.float32).reshape(self.latent_shape), 1e-6)
            self.bundle_tolerance = goal_tolerance(self.manifest)
            self.profiles = load_profiles(self.params["profiles_file"] or None)
            if self.params["default_profile"] not in self.profiles:
                raise ValueError(
                    f"default_profile '{self.params['default_profile']}' is not in the profiles: {sorted(self.profiles)}"
                )
            self.goals = self.load_goals(self.params["goals_file"])
            self.model = None
            if self.params["plan_subgoals"] and any(p.kind == "hierarchical" for p in self.profiles.values()):
                from jepa_world_model.bundle import load_bundle

                self.model = load_bundle(self.params["bundle"], backend="torch")
        except Exception as exc:
            self.manifest = None
            return configure_failed(self, exc)
        own, group = self.owned.add, self.group
        self.goal_pub = own(self.create_lifecycle_publisher(LatentState, "goal_latent", latched_qos()))
        self.lease_pub = own(self.create_lifecycle_publisher(Header, "goal_lease", reliable_qos(1)))
        self.subgoal_pub = own(self.create_lifecycle_publisher(LatentState, "subgoal_latent", reliable_qos(1)))
        self.profile_pub = own(self.create_lifecycle_publisher(String, "profile", latched_qos()))
        self.status_pub = own(self.create_lifecycle_publisher(AgentStatus, "agent_status", reliable_qos(5)))
        # composed with perception: on_latent (quick, thread-safe) runs on perception's thread, so that this node's
        # executor does not wake beside the actor's plan for every latent
        own(subscribe_local_first(self, LatentState, "latent", self.on_latent, reliable_qos(1), callback_group=group))
        for msg_type, topic, callback, qos in (
            (Plan, "plan", self.on_plan, reliable_qos(5)),
            (AgentStatus, "actor/status", self.on_actor_status, reliable_qos(5)),
            (Float32, "perception/rate", self.on_perception_rate, reliable_qos(1)),
        ):
            own(self.create_subscription(msg_type, topic, guarded(self, topic, callback), qos, callback_group=group))
        self.encode_client = own(self.create_client(EncodeImage, "encode_image", callback_group=group))
        self.action_server = own(ActionServer(
            self,
            ReachGoal,
            "reach_goal",
            execute_callback=self.execute,
            goal_callback=self.on_goal_request,
            cancel_callback=lambda _h: CancelResponse.ACCEPT,
            callback_group=group,
        ))
        steady = steady_clock()
        own(self.create_timer(1.0, self.publish_status, callback_group=group, clock=steady))
        own(self.create_timer(self.params["lease_period"], self.publish_lease, callback_group=group, clock=steady))
        self.watch_surprise()
        tol = resolve_tolerance(0.0, self.params["default_tolerance"], self.bundle_tolerance, FALLBACK_TOLERANCE)
        source = ("default_tolerance" if self.params["default_tolerance"] > 0 else
                  "the bundle's" if self.bundle_tolerance is not None else "fallback: the bundle carries none")
        self.get_logger().info(f"configurator ready: {len(self.goals)} named goals, {len(self.profiles)} profiles, "
                               f"default '{self.params['default_profile']}', goal tolerance {tol} ({source})")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.end_active_goal("preempted: the configurator was deactivated")
        return super().on_deactivate(state)

    def release(self) -> None:
        """End a running goal, then destroy what on_configure created (publishers, subscriptions, server, timers)."""
        self.end_active_goal("preempted: the configurator was cleaned up")
        with self.goal_lock:
            self.goal_pub, self.goal_stamp = None, None
        self.owned.release()
        self.manifest, self.model = None, None

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        self.profile_pub.publish(String(data=self.current_profile))
        return result

    # ---------------------------------------------------------------- inputs
    def load_goals(self, path: str) -> dict[str, dict]:
        if not path:
            return {}
        data = load_yaml_file(path) or {}
        goals = data.get("goals", data)
        base = Path(path).parent
        out = {}
        for name, entry in goals.items():
            if not isinstance(entry, dict) or not ({"image", "latent"} & set(entry)):
                raise ValueError(f"{path}: goal '{name}' needs an 'image' or a 'latent' file")
            out[name] = {k: str((base / v).resolve()) if k in ("image", "latent") else v for k, v in entry.items()}
        return out

    def on_latent(self, msg: LatentState) -> None:
        """Any latent proves perception alive; its contents are checked where it is used (execute)."""
        self.latent_rx = self.perception_rx = time.monotonic()
        self.latest = msg
        self.latent_event.set()

    def on_plan(self, msg: Plan) -> None:
        self.actor_rx = time.monotonic()  # a plan proves the actor alive, like its status
        if not np.isfinite(msg.total_cost):
            raise ValueError(f"plan total_cost is {msg.total_cost}")
        self.plan_cost = float(msg.total_cost)

    def on_actor_status(self, msg: AgentStatus) -> None:
        self.actor_rx = self.actor_status_rx = time.monotonic()
        self.actor_status = msg

    def on_perception_rate(self, msg: Float32) -> None:
        self.perception_rx = time.monotonic()  # perception's heartbeat, also while no image arrives
        if not np.isfinite(msg.data):
            raise ValueError(f"perception rate is {msg.data}")
        self.perception_rate = float(msg.data)

    def mode1_if_familiar(self, profile: str, z_goal: np.ndarray) -> str:
        """The profile's ``mode1_profile`` when the goal is familiar to its policy (profile option), else the profile."""
        from jepa_planner.profiles import choose_profile

        chosen, why = choose_profile(self.profiles, profile, z_goal, self.latent_std)
        if chosen != profile:
            self.get_logger().info(f"profile '{profile}' -> Mode 1 '{chosen}': {why}")
        return chosen

    # ---------------------------------------------------------------- goals
    def on_goal_request(self, goal: ReachGoal.Goal) -> GoalResponse:
        """Accept a well-formed goal; refuse any other and, as it was meant to replace a running goal, end that one
        too (the robot stops rather than keep driving toward a goal its operator wanted to leave)."""
        problem = self.goal_problem(goal)
        if problem is None:
            return GoalResponse.ACCEPT
        self.get_logger().warning(f"goal rejected: {problem}")
        self.end_active_goal(f"preempted by an invalid goal ({problem}); robot stopped")
        return GoalResponse.REJECT

    def goal_problem(self, goal: ReachGoal.Goal) -> str | None:
        """Why ``goal`` cannot be run, or None."""
        kinds = (ReachGoal.Goal.GOAL_IMAGE, ReachGoal.Goal.GOAL_LATENT, ReachGoal.Goal.GOAL_NAMED)
        if goal.goal_type not in kinds:
            return f"goal_type {goal.goal_type} is not 0 (image), 1 (latent) or 2 (named)"
        if goal.goal_type == ReachGoal.Goal.GOAL_NAMED and goal.goal_name not in self.goals:
            return f"unknown named goal '{goal.goal_name}'; known: {sorted(self.goals)}"
        if goal.profile and goal.profile not in self.profiles:
            return f"unknown profile '{goal.profile}'; known: {sorted(self.profiles)}"
        if not np.isfinite(np.asarray(goal.goal_proprio, np.float64)).all():
            return "goal_proprio contains NaN/inf: give the robot's proprio at the goal, or leave it empty"
        for name in ("tolerance", "time_limit"):
            if not np.isfinite(getattr(goal, name)):
                return f"{name} is {getattr(goal, name)}: give a finite value (<= 0 for the default)"
        return None

    def end_active_goal(self, reason: str) -> None:
        """End the running goal from outside its loop (its result gets ``reason``) and stop the robot."""
        with self.goal_lock:
            if not self.active_goal_id:
                return
            self.end_reasons[self.active_goal_id] = reason
            self.active_goal_id, self.task_desc, self.distance = "", "", -1.0
            self.publish_goal(None)

    def encode_image(self, image_msg: Any, proprio: Any = ()) -> np.ndarray:
        """Goal image (and the goal's proprio, for bundles that fuse it) -> latent through perception's
        encode_image service (one encoder for all).

        The request is sent again every ``ENCODE_RETRY_S`` until ``encode_timeout``: a perception that
        was just restarted is "available" (its server is in the graph) before its reply writer has
        matched this client, and the first reply is then lost (seen after a perception SIGKILL and
        restart in CI); encoding is a pure function, so a repeated request is harmless.
        """
        timeout = self.params["encode_timeout"]
        if not self.encode_client.wait_for_service(timeout_sec=timeout):
            raise RuntimeError("perception's encode_image service is not available")
        deadline, tries = time.monotonic() + timeout, 0
        while True:
            tries += 1
            done = threading.Event()
            future = self.encode_client.call_async(EncodeImage.Request(image=image_msg, proprio=list(proprio)))
            future.add_done_callback(lambda _f, done=done: done.set())
            if done.wait(max(0.0, min(ENCODE_RETRY_S, deadline - time.monotonic()))):
                break
            self.encode_client.remove_pending_request(future)  # a late reply to it is dropped
            if time.monotonic() >= deadline:
                raise RuntimeError(f"encode_image did not answer in time ({tries} requests in {timeout:g} s)")
            self.get_logger().warning(f"encode_image: no reply within {ENCODE_RETRY_S:g} s; sending the request again")
        response = future.result()
        if not response.success:
            raise ValueError(f"goal image rejected by perception: {response.message}")
        from jepa_common.ros_common import parse_latent

        return parse_latent(response.latent, self.latent_shape, self.manifest["model_id"], "encode_image response")

    def resolve_goal(self, goal: ReachGoal.Goal) -> tuple[np.ndarray, str]:
        """The goal as a latent of the bundle's shape, and a description; ValueError/RuntimeError otherwise."""
        if goal.goal_type == ReachGoal.Goal.GOAL_IMAGE:
            z, desc = self.encode_image(goal.goal_image, goal.goal_proprio), "image"
        elif goal.goal_type == ReachGoal.Goal.GOAL_LATENT:
            lat = goal.goal_latent
            if lat.model_id and lat.model_id != self.manifest["model_id"]:
                raise ValueError(f"goal latent comes from model '{lat.model_id}', this agent runs '{self.manifest['model_id']}'")
            z, desc = np.asarray(lat.data, np.float32), "latent"
            if z.size != int(np.prod(self.latent_shape)) or tuple(lat.shape) != self.latent_shape:
                raise ValueError(f"goal latent has shape {list(lat.shape)} ({z.size} values), expected {list(self.latent_shape)}")
            z = z.reshape(self.latent_shape)
        else:
            entry = self.goals[goal.goal_name]
            desc = f"named:{goal.goal_name}"
            if "latent" in entry:
                z = np.load(entry["latent"]).astype(np.float32).reshape(self.latent_shape)
            else:
                import imageio.v3 as iio

                z = self.encode_image(array_to_image(np.asarray(iio.imread(entry["image"]))[..., :3].astype(np.uint8)))
        if z.shape != self.latent_shape:
            raise ValueError(f"goal latent has shape {list(z.shape)}, expected {list(self.latent_shape)}")
        if not np.isfinite(z).all():
            raise ValueError("goal latent contains NaN/inf")
        return z, desc

    def latent_msg(self, z: np.ndarray | None, stamp: Any = None) -> LatentState:
        """A LatentState of this bundle (empty when ``z`` is None), stamped ``stamp`` or now."""
        msg = LatentState()
        msg.header.stamp = stamp if stamp is not None else self.get_clock().now().to_msg()
        msg.model_id = self.manifest["model_id"]
        if z is not None:
            msg.shape = list(z.shape)
            msg.data = z.ravel().astype(np.float32)
        return msg

    def publish_goal(self, z: np.ndarray | None) -> None:
        """Hand the goal to the actor; None (empty latent) clears it, which stops the robot. The lease follows."""
        with self.goal_lock:
            if self.goal_pub is None:
                return
            msg = self.latent_msg(z)
            self.goal_stamp = msg.header.stamp if z is not None else None
            self.goal_pub.publish(msg)
            self.publish_lease()

    def publish_lease(self) -> None:
        """Refresh the actor's lease on the goal handed out (steady timer): no refresh, no motion."""
        stamp = self.goal_stamp
        if stamp is not None and self.active_goal_id and self.lease_pub.is_activated:
            self.lease_pub.publish(Header(stamp=stamp, frame_id=self.active_goal_id))

    def subgoal_planner(self, profile_name: str) -> Any:
        """A fresh HierarchicalPlanner for a hierarchical profile when subgoals are planned here, else None."""
        if self.model is None or self.profiles[profile_name].kind != "hierarchical":
            return None
        from jepa_planner.profiles import build_planner

        return build_planner(self.profiles[profile_name], self.model)

    def follow_subgoals(self, planner: Any, history: deque, z: np.ndarray, z_goal: np.ndarray, stamp: Any) -> None:
        """Keep the latent history; once per model step plan the upper levels and publish the subgoal
        (stamped like the latent it was planned from). A refused input is logged, never fatal."""
        import torch

        from jepa_planner.controller import model_context

        history.append(torch.from_numpy(z))
        if self.step % self.model.frameskip:
            return
        ctx = model_context(history, int(self.model.frameskip), int(self.model.context))
        try:
            target, _ = planner.subgoal(ctx, torch.from_numpy(z_goal), shift=1)
        except ValueError as exc:
            self.get_logger().warning(f"subgoal planning failed: {exc}")
            return
        self.subgoal_pub.publish(self.latent_msg(target.detach().numpy(), stamp))

    def execute(self, handle: Any) -> ReachGoal.Result:
        goal = handle.request
        goal_id = uuid.UUID(bytes=bytes(handle.goal_id.uuid)).hex
        result = ReachGoal.Result()
        start = time.monotonic()
        with self.goal_lock:
            preempting = bool(self.active_goal_id)
            self.active_goal_id = goal_id  # a running older goal sees this and ends as preempted
            if preempting:
                self.publish_goal(None)  # stop while the new goal is resolved: it may turn out invalid
        try:
            z_goal, desc = self.resolve_goal(goal)
        except Exception as exc:  # any failure to resolve is this goal's, never the node's
            self.get_logger().error(f"goal {goal_id[:8]} failed: {exc}")
            with self.goal_lock:
                if self.active_goal_id == goal_id:
                    self.active_goal_id, self.task_desc, self.distance = "", "", -1.0
                    self.publish_goal(None)
            handle.abort()
            result.reason = f"rejected: {exc}"
            return result
        profile = self.mode1_if_familiar(goal.profile or self.params["default_profile"], z_goal)
        tolerance = resolve_tolerance(goal.tolerance, self.params["default_tolerance"], self.bundle_tolerance,
                                      FALLBACK_TOLERANCE)
        time_limit = goal.time_limit if goal.time_limit > 0 else self.params["default_time_limit"]
        with self.goal_lock:
            if self.active_goal_id != goal_id:  # preempted (or ended) while it was being resolved
                handle.abort()
                result.reason = self.end_reasons.pop(goal_id, "preempted")
                return result
            self.task_desc, self.current_profile, self.step = desc, profile, 0
            self.profile_pub.publish(String(data=profile))
            self.publish_goal(z_goal)
        supervised_since = time.monotonic()
        self.get_logger().info(
            f"goal {goal_id[:8]} ({desc}) with profile '{profile}', tolerance {tolerance}, time limit {time_limit} s"
        )
        try:
            planner = self.subgoal_planner(profile)
        except (ValueError, KeyError) as exc:
            self.get_logger().error(f"goal {goal_id[:8]}: cannot plan subgoals for profile '{profile}': {exc}")
            self.publish_goal(None)
            handle.abort()
            result.reason = f"rejected: {exc}"
            return result
        history: deque = deque(maxlen=1 if planner is None else (self.model.context - 1) * self.model.frameskip + 1)
        sup = GoalSupervisor(z_goal, self.latent_std, tolerance, time_limit, self.params["max_steps"], start)
        while True:
            if not self.context.ok():  # Ctrl-C: the node is going away; publishing now would only raise
                with contextlib.suppress(Exception):
                    handle.abort()
                result.reason = "shutdown"
                return result
            reason = sup.end_reason(
                preempted=self.end_reasons.pop(goal_id, "preempted") if self.active_goal_id != goal_id else None,
                cancel_requested=handle.is_cancel_requested,
                dead_input=self.dead_input(supervised_since),
            )
            if not reason and self.react_to_surprise(profile, z_goal, start):
                reason = "surprise"
            if reason:
                break
            self.latent_event.wait(0.1)
            self.latent_event.clear()
            latest = self.latest
            if latest is None:
                continue
            PLANNER_GATE.wait_idle()  # composed: the actor plans this latent first
            z = sup.observe(latest.data, (latest.header.stamp.sec, latest.header.stamp.nanosec))
            if z is None:
                continue
            if planner is not None:
                self.follow_subgoals(planner, history, z, z_goal, latest.header.stamp)
            reached = sup.advance()
            self.step, self.distance = sup.step, sup.distance
            handle.publish_feedback(ReachGoal.Feedback(step=self.step, distance_to_goal=sup.distance, plan_cost=self.plan_cost))
            if reached:
                reason = REACHED
                break
        with self.goal_lock:
            if self.active_goal_id == goal_id:
                self.publish_goal(None)  # stop the robot
                self.active_goal_id, self.task_desc, self.distance = "", "", -1.0
            if planner is not None and self.subgoal_pub.is_activated:
                self.subgoal_pub.publish(self.latent_msg(None))
        result.success = reason == REACHED
        result.reason = reason
        result.steps = sup.step
        result.final_distance = sup.final_distance
        result.elapsed = sup.elapsed()
        if reason == "reached":
            handle.succeed()
        elif reason == "canceled":
            handle.canceled()
        else:
            handle.abort()
        message = f"goal {goal_id[:8]} ended: {reason} after {self.step} steps, distance {result.final_distance:.3f}"
        # two call sites: rclpy refuses a second severity at one (ValueError), which had emptied the result
        if reason in ("reached", "canceled"):
            self.get_logger().info(message)
        else:
            self.get_logger().warning(message)
        return result

    def dead_input(self, since: float) -> str | None:
        """Why the running goal is unsupervisable (perception or actor silent too long), or None.

        Every silent input is named: when the actor dies in lockstep, perception can fall silent in the
        same check, and the reason must still say that the actor is gone.
        """
        now = time.monotonic()
        problems = []
        silent = now - max(since, self.actor_rx)
        if self.actor_rx == 0.0:  # never heard from: it may still be being discovered (all nodes started at once)
            if silent > self.params["actor_discovery_timeout"]:
                problems.append(f"no actor/status or plan ever received ({silent:.1f} s into the goal; > "
                                f"actor_discovery_timeout {self.params['actor_discovery_timeout']} s): actor not running; "
                                "goal aborted")
        elif silent > self.params["actor_timeout"]:
            problems.append(f"no actor/status for {silent:.1f} s (> actor_timeout {self.params['actor_timeout']} s): "
                            "actor dead; goal aborted")
        silent = now - max(since, self.perception_rx)
        if silent > self.params["perception_timeout"]:
            problems.append(f"perception silent for {silent:.1f} s (no latent, no heartbeat; > perception_timeout "
                            f"{self.params['perception_timeout']} s): perception dead; robot stopped")
        else:
            silent = now - max(since, self.latent_rx)
            if silent > self.params["stall_timeout"]:
                problems.append(f"no latent for {silent:.1f} s (> stall_timeout {self.params['stall_timeout']} s): "
                                "camera or simulator stalled; robot stopped")
        return "; ".join(problems) or None

    def publish_status(self) -> None:
        if self.manifest is None or self.goal_pub is None or not self.status_pub.is_activated:
            return
        msg = AgentStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.mode = self.actor_status.mode or "idle"
        if not self.active_goal_id:
            msg.mode = "idle"
        msg.task_id, msg.task, msg.profile = self.active_goal_id, self.task_desc, self.current_profile
        msg.distance_to_goal = float(self.distance)
        msg.perception_rate = self.perception_rate
        msg.planning_rate = self.actor_status.planning_rate
        msg.command_rate = self.actor_status.command_rate
        age = self.actor_status.latent_age
        # the actor's figure, aged by the time its status has been on the way and waiting here
        msg.latent_age = age + (time.monotonic() - self.actor_status_rx) if self.actor_status_rx and age >= 0 else -1.0
        msg.step = self.step
        msg.warnings = list(self.actor_status.warnings) + self.surprise_warnings()
        self.status_pub.publish(msg)

    # ---------------------------------------------------------------- surprise alarm
    SURPRISE_WARNING_S = 5.0  # a surprise warning stays in agent_status this long after the last alarm

    def watch_surprise(self) -> None:
        """Follow the world model's ``surprise_alarm``; rising edges are handled by the task loop."""
        self.surprise_last = -float("inf")  # monotonic time of the last alarm
        self.surprise_on = False
        self.surprise_rise = -float("inf")  # monotonic time of the last rising edge
        self.surprise_handled = -float("inf")  # the rising edge the task loop last acted on
        self.owned.add(self.create_subscription(Bool, "surprise_alarm", guarded(self, "surprise_alarm", self.on_surprise_alarm),
                                                reliable_qos(10), callback_group=self.group))

    def on_surprise_alarm(self, msg: Bool) -> None:
        if msg.data:
            self.surprise_last = time.monotonic()
            if not self.surprise_on:
                self.surprise_rise = self.surprise_last
        self.surprise_on = bool(msg.data)

    def react_to_surprise(self, profile: str, z_goal: np.ndarray, task_start: float) -> bool:
        """Apply the profile's ``on_surprise`` to an alarm that rose during this task (each once); True: stop the task."""
        if self.surprise_rise <= max(task_start, self.surprise_handled):
            return False
        self.surprise_handled = self.surprise_rise
        action = self.profiles[profile].on_surprise
        if action == "stop":
            self.get_logger().warning(f"surprise alarm: stopping the task (profile '{profile}': on_surprise: stop)")
            return True
        if action == "replan":
            self.get_logger().warning(f"surprise alarm: replanning (profile '{profile}': on_surprise: replan)")
            self.publish_goal(z_goal)
        return False

    def surprise_warnings(self) -> list[str]:
        """The status warning while an alarm is recent."""
        age = time.monotonic() - getattr(self, "surprise_last", -float("inf"))
        if age > self.SURPRISE_WARNING_S:
            return []
        return [f"surprise alarm {age:.1f} s ago: the world did something the world model did not predict"]


def main(args: list[str] | None = None) -> int:
    return run_node(ConfiguratorNode, args, threads=4)


if __name__ == "__main__":
    raise SystemExit(main())
