"""Actor node (Mode 2 / Mode 1): latent MPC with the in-process world model, bounded commands, watchdog.

Inputs: ``latent`` (LatentState from perception), ``goal_latent`` (LatentState from the
configurator: the task goal; transient local), ``subgoal_latent`` (hierarchical profiles: the
subgoal the configurator planned with the upper levels; level 0 then plans toward it, and without
it the actor plans every level itself; empty = none), ``profile`` (std_msgs/String, transient
local: which planner profile to run).
Outputs: the command (``cmd_vel`` geometry_msgs/Twist, ``cmd_vel_stamped`` TwistStamped, or
``action`` std_msgs/Float32MultiArray, by parameter), ``plan`` (jepa_interfaces/Plan, stamped with
the image stamp of the latent it was planned from), ``plan_path`` (nav_msgs/Path) and
``candidates`` (MarkerArray: only built while someone subscribes), ``imagined`` (predicted frames
when the bundle has a decoder), ``actor/status`` (AgentStatus).

Safety: every command is clipped to the configured bounds (per-axis ``max_command`` and the L2
``max_command_norm``, both applied live when set); when the latent goes stale, there is no goal, or
planning fails, the node publishes a zero command and a warning instead of a stale or invalid one.
The actor holds a lease on its goal: the configurator refreshes it on ``goal_lease``
(std_msgs/Header stamped like the goal) while it supervises the task, and without a refresh for
``lease_timeout`` seconds the actor drops the goal and stops the robot (a dead configurator cannot
leave it driving). The watchdogs run on the steady clock, so they fire even when sim time stands still.
Every input is validated; a bad message costs a throttled warning, never the node.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import torch
from geometry_msgs.msg import Point, PoseStamped, Twist, TwistStamped
from nav_msgs.msg import Path as PathMsg
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_msgs.msg import Float32MultiArray, Header, String
from visualization_msgs.msg import Marker, MarkerArray

from jepa_common.convert import fill_twist
from jepa_common.ros_common import (
    PLANNER_GATE,
    LatestSlot,
    LocalSubscription,
    OwnedEntities,
    Param,
    array_to_image,
    configure_failed,
    declare_params,
    guarded,
    latched_qos,
    parse_latent,
    reliable_qos,
    run_node,
    stamp_to_ns,
    steady_clock,
    subscribe_local_first,
)
from jepa_interfaces.msg import AgentStatus, CostTerm, LatentState, Plan
from jepa_planner.controller import ControlStep, MPCController

PARAMS = {
    "bundle": Param("", "model bundle directory", read_only=True),
    "backend": Param(
        "torch",
        "world-model backend for planning (torch needed by the gradient planner)",
        choices=("torch", "onnx"),
        read_only=True,
    ),
    "profiles_file": Param("", "planner profiles YAML (default: the packaged config/planner_profiles.yaml)", read_only=True),
    "profile": Param("flat_cem_search", "planner profile used until the configurator publishes one on 'profile'"),
    "trigger": Param(
        "on_latent",
        "on_latent: one command per new latent (lockstep sims, deterministic); "
        "timer: commands at command_rate, planning in its own loop",
        choices=("on_latent", "timer"),
    ),
    "command_rate": Param(10.0, "command publishing rate in Hz (trigger=timer)", min=0.5, max=1000.0),
    "command_type": Param("twist", "command message", choices=("twist", "twist_stamped", "action")),
    "publish_stamped_copy": Param(True, "also publish each command as TwistStamped on 'cmd_vel_stamped' with the stamp of "
                                  "the camera image it was computed from (latency measurement, logging)", read_only=True),
    "dt": Param(0.1, "seconds per raw control step: a Twist carries action / dt", min=1e-4, max=10.0, dynamic=True),
    "max_command": Param(2.45, "per-axis bound of a raw action (action units)", min=0.0, max=1e6, dynamic=True),
    "max_command_norm": Param(2.45, "bound on the L2 norm of a raw action (0 = none)", min=0.0, max=1e6, dynamic=True),
    "stale_timeout": Param(1.0, "seconds without a new latent before the robot is stopped", min=0.01, max=60.0,
                           dynamic=True),
    "lease_timeout": Param(1.0, "seconds without a goal lease refresh from the configurator on 'goal_lease' before the "
                           "goal is dropped and the robot stopped (0 = no lease: goals stay until cleared)",
                           min=0.0, max=600.0, dynamic=True),
    "plan_time_budget": Param(0.0, "seconds per replan (0 = the profile's)", min=0.0, max=60.0, dynamic=True),
    "frame_id": Param("map", "frame of plan_path and candidates when the bundle's position readout names none", dynamic=True),
    "max_candidates_shown": Param(20, "candidate rollouts drawn in 'candidates'", min=0, max=1000, dynamic=True),
    "display_rate": Param(5.0, "maximum rate (Hz) of plan_path, candidates and imagined, built only while subscribed",
                          min=0.1, max=100.0, dynamic=True),
    "autostart": Param(True, "configure and activate at start", read_only=True),
}


class ActorNode(LifecycleNode):
    """Runs the MPC controller on incoming latents and publishes bounded commands."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("actor", **kwargs)
        self.params = declare_params(self, PARAMS)
        self.lock = threading.Lock()
        # Serialises "is this plan's goal still the goal? then send its command" against drop_goal's
        # zero command, so a plan that finishes after a stop can never be the last command sent.
        self.command_lock = threading.Lock()
        self.goal_epoch = 0  # incremented by drop_goal
        self.model = None
        self.controller: MPCController | None = None
        self.profile_name = self.params["profile"]
        self.profile_kind = ""  # the active profile's kind (flat, hierarchical, policy): policy is Mode 1
        self.goal_stamp: tuple[int, int] | None = None
        self.goal_time = 0.0
        self.lease_time = 0.0  # monotonic time of the last lease refresh for the current goal
        self.planning = False  # on_latent trigger: a plan is being computed in the latent callback
        self.owned = OwnedEntities(self)
        self.raw_dim = 0
        self.cmd_pub = None
        self.latest: tuple[torch.Tensor, Any, float] | None = None  # latent, header, monotonic receipt time
        self.last_planned_ns: int | None = None
        self.current_action = np.zeros(0, np.float32)
        self.warnings: list[str] = []
        self.plan_times: list[float] = []
        self.cmd_times: list[float] = []
        self.publishers_ready = False
        self.gate_actor = False  # registered with PLANNER_GATE (configured)
        self.local_latents: LatestSlot | None = None  # while latents come in-process (composed with perception)
        # What the executor's default callback group guarantees its callbacks (one at a time), extended to
        # the in-process latent thread: on_latent, on_goal, on_subgoal, on_profile and on_critic_updated.
        self.callbacks_lock = threading.RLock()
        self.critic = None  # the latest valid critic from 'critic_updated' (hot-swapped into the planner)

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from jepa_planner.profiles import load_profiles
        from jepa_world_model.bundle import load_bundle

        try:
            if not self.params["bundle"]:
                raise ValueError("parameter 'bundle' is empty: give the model bundle directory")
            self.model = load_bundle(self.params["bundle"], backend=self.params["backend"])
            self.profiles = load_profiles(self.params["profiles_file"] or None)
            self.controller = None
            self.use_profile(self.profile_name)
        except Exception as exc:
            self.model, self.controller = None, None
            return configure_failed(self, exc)
        self.raw_dim = self.controller.raw_dim
        self.current_action = np.zeros(self.raw_dim, np.float32)
        self.goal_stamp, self.latest, self.last_planned_ns = None, None, None
        own = self.owned.add
        kind = self.params["command_type"]
        if kind == "twist":
            self.cmd_pub = own(self.create_lifecycle_publisher(Twist, "cmd_vel", reliable_qos(1)))
        elif kind == "twist_stamped":
            self.cmd_pub = own(self.create_lifecycle_publisher(TwistStamped, "cmd_vel_stamped", reliable_qos(1)))
        else:
            self.cmd_pub = own(self.create_lifecycle_publisher(Float32MultiArray, "action", reliable_qos(1)))
        self.stamped_pub = None
        if kind != "twist_stamped" and self.params["publish_stamped_copy"]:
            self.stamped_pub = own(self.create_lifecycle_publisher(TwistStamped, "cmd_vel_stamped", reliable_qos(10)))
        self.plan_pub = own(self.create_lifecycle_publisher(Plan, "plan", reliable_qos(5)))
        self.path_pub = own(self.create_lifecycle_publisher(PathMsg, "plan_path", reliable_qos(1)))
        self.cand_pub = own(self.create_lifecycle_publisher(MarkerArray, "candidates", reliable_qos(1)))
        self.imagined_pub = own(self.create_lifecycle_publisher(type(array_to_image(np.zeros((1, 1, 3), np.uint8))), "imagined", reliable_qos(1)))
        self.status_pub = own(self.create_lifecycle_publisher(AgentStatus, "actor/status", reliable_qos(5)))
        slot = LatestSlot()
        latents = own(subscribe_local_first(self, LatentState, "latent", self.on_latent, reliable_qos(1), sink=slot.put))
        if isinstance(latents, LocalSubscription):
            # composed with perception: its latents come to this actor's own thread; no middleware hop and no
            # executor pass of this node beside the plan's start
            self.local_latents = slot
            self.owned.thread(self.local_latent_loop)
            self.get_logger().info(f"latents in-process from the perception node composed with this one ('{latents.topic_name}')")
        for msg_type, topic, callback, qos in (
            (LatentState, "goal_latent", self.on_goal, latched_qos()),
            (Header, "goal_lease", self.on_lease, reliable_qos(1)),
            (LatentState, "subgoal_latent", self.on_subgoal, reliable_qos(1)),
            (String, "profile", self.on_profile, latched_qos()),
            (String, "critic_updated", self.on_critic_updated, reliable_qos(1)),
        ):
            # the lease has its own group: planning runs inside on_latent (default group), and in a fast
            # lockstep loop the next latent is always ready when a plan ends, so a lease sharing that
            # group would never be taken and would expire under a healthy configurator
            group = MutuallyExclusiveCallbackGroup() if topic == "goal_lease" else None
            callback = self.one_at_a_time(callback) if group is None else callback
            own(self.create_subscription(msg_type, topic, guarded(self, topic, callback), qos, callback_group=group))
        steady = steady_clock()
        # the watchdog has its own group too: a goal lease that runs out stops the robot even during a long plan
        own(self.create_timer(0.05, self.watchdog, clock=steady, callback_group=MutuallyExclusiveCallbackGroup()))
        # the status timer has its own group: it reports (and proves the actor alive) while a long plan runs
        own(self.create_timer(1.0, self.publish_status, clock=steady, callback_group=MutuallyExclusiveCallbackGroup()))
        if self.params["trigger"] == "timer":
            own(self.create_timer(1.0 / self.params["command_rate"], self.on_command_timer, clock=steady))
            self.owned.thread(self.planning_loop)
        if not self.gate_actor:  # composed: the other nodes' work on a latent waits until this actor has handled it
            PLANNER_GATE.add_actor()
            self.gate_actor = True
        self.get_logger().info(
            f"actor ready: profile '{self.profile_name}', trigger {self.params['trigger']}, "
            f"commands on {self.params['command_type']}"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.publishers_ready = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.publish_command(np.zeros(self.raw_dim, np.float32), None)  # leave the robot stopped
        self.publishers_ready = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.publishers_ready and self.raw_dim:
            self.publish_command(np.zeros(self.raw_dim, np.float32), None)  # leave the robot stopped
        self.publishers_ready = False
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        """Destroy everything on_configure created (subscriptions, timers, publishers, the planning thread)."""
        self.owned.release()
        self.local_latents = None
        if self.gate_actor:
            PLANNER_GATE.remove_actor()
            self.gate_actor = False
        with self.lock:
            self.model, self.controller, self.latest, self.cmd_pub = None, None, None, None

    # ---------------------------------------------------------------- configuration
    def use_profile(self, name: str) -> None:
        from jepa_planner.profiles import build_planner

        if name not in self.profiles:
            raise KeyError(f"unknown planner profile '{name}'; known: {sorted(self.profiles)}")
        profile = self.profiles[name]
        planner = build_planner(profile, self.model, critic=self.critic)
        replan = profile.replan_interval(int(self.model.frameskip))
        goal = self.controller.goal if self.controller is not None else None
        self.controller = MPCController(self.model, planner, replan_every=replan)
        if goal is not None:
            self.controller.set_goal(goal)
        self.profile_name, self.profile_kind = name, profile.kind

    def on_critic_updated(self, msg: String) -> None:
        """Hot-swap a new critic into the planner's critic terms; a bad file keeps the current one (one warning)."""
        from jepa_planner.critic import load_critic_checked, swap_critic

        try:
            critic = load_critic_checked(msg.data, tuple(self.model.latent_shape))
        except Exception as exc:  # any file can arrive here: it must cost neither the node nor the current critic
            self.warn(f"critic '{msg.data}' not loaded, keeping the current one: {type(exc).__name__}: "
                      f"{(str(exc).strip().splitlines() or [''])[0][:200]}")
            return
        with self.lock:
            self.critic = critic
            swapped = swap_critic(self.controller.planner, critic) if self.controller is not None else 0
        self.get_logger().info(f"critic '{msg.data}' swapped into {swapped} cost term(s)")

    def on_profile(self, msg: String) -> None:
        if msg.data == self.profile_name or self.model is None:
            return
        with self.lock:
            try:
                self.use_profile(msg.data)
                self.get_logger().info(f"switched to planner profile '{msg.data}'")
            except (KeyError, ValueError) as exc:
                self.warn(f"profile '{msg.data}' rejected: {exc}")

    def on_goal(self, msg: LatentState) -> None:
        if self.model is None:
            return
        if len(msg.data) == 0:  # the configurator cleared the goal (task ended): stop
            self.drop_goal()
            return
        try:
            goal = self.latent_from_msg(msg, "goal_latent")
            with self.lock:
                self.controller.set_goal(goal)
                self.goal_stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
                self.goal_time = self.lease_time = time.monotonic()
            if self.params["trigger"] == "on_latent":
                self.control_once()  # lockstep worlds wait for a command: act on the latest latent now
        except ValueError as exc:
            self.warn(f"goal rejected, stopping: {exc}")
            self.drop_goal()

    def drop_goal(self) -> None:
        """No goal any more (cleared, rejected, lease expired): stop the robot at once, then forget the goal
        (which may wait for a plan in progress; that plan's command is not sent, see control_once)."""
        with self.command_lock:
            self.goal_epoch += 1
            self.current_action = np.zeros(self.raw_dim, np.float32)
            self.publish_command(self.current_action, None)  # once: in lockstep each command is a world step
        with self.lock:
            if self.controller is not None:
                self.controller.goal = None
            self.goal_stamp = None

    def before_exit(self) -> None:
        """Ctrl-C / SIGTERM: one last zero command, so the robot is left stopped, not on its last
        command until the base's own timeout; a plan still running sends nothing after it."""
        with self.command_lock:
            self.goal_epoch += 1
            if self.publishers_ready and self.raw_dim:
                self.publish_command(np.zeros(self.raw_dim, np.float32), None)
            self.publishers_ready = False  # nothing after it, in the moment before the process ends

    def on_lease(self, msg: Header) -> None:
        """The configurator still supervises the goal stamped ``msg.stamp``: extend the lease."""
        if self.goal_stamp is not None and (msg.stamp.sec, msg.stamp.nanosec) == self.goal_stamp:
            self.lease_time = time.monotonic()

    def lease_expired(self) -> bool:
        timeout = self.params["lease_timeout"]
        return timeout > 0 and time.monotonic() - max(self.lease_time, self.goal_time) > timeout

    def on_subgoal(self, msg: LatentState) -> None:
        """A subgoal from the configurator: level 0 of a hierarchical profile plans toward it (empty: plan all levels here)."""
        if self.model is None:
            return
        with self.lock:
            planner = self.controller.planner if self.controller is not None else None
            if not hasattr(planner, "set_external_subgoal"):
                return  # a flat profile has no use for subgoals
            if len(msg.data) == 0:
                planner.set_external_subgoal(None)
                return
            try:
                planner.set_external_subgoal(self.latent_from_msg(msg, "subgoal_latent"))
            except ValueError as exc:
                planner.set_external_subgoal(None)
                self.warn(f"subgoal rejected, planning every level here: {exc}")

    def latent_from_msg(self, msg: LatentState, topic: str) -> torch.Tensor:
        """LatentState -> tensor of the model's latent shape; ValueError naming the problem."""
        return torch.from_numpy(parse_latent(msg, tuple(self.model.latent_shape), self.model.model_id, topic))

    # ---------------------------------------------------------------- control
    def on_latent(self, msg: LatentState) -> None:
        try:
            with self.callbacks_lock:
                self.take_latent(msg)
        finally:
            PLANNER_GATE.frame_taken()  # composed: the other nodes may now work on this latent

    def one_at_a_time(self, callback: Any) -> Any:
        """``callback`` under ``callbacks_lock``: never beside on_latent, also when latents come in-process."""

        def exclusive(msg: Any) -> None:
            with self.callbacks_lock:
                callback(msg)

        return exclusive

    def local_latent_loop(self) -> None:
        """Composed with perception: each latent it hands over, as the 'latent' subscription would."""
        handle = guarded(self, "latent", self.on_latent)
        stop, slot = self.owned.stop, self.local_latents
        while not stop.is_set():
            msg = slot.take(0.1)
            if msg is not None and not stop.is_set():
                handle(msg)

    def take_latent(self, msg: LatentState) -> None:
        if self.model is None:
            return
        try:
            z = self.latent_from_msg(msg, "latent")
        except ValueError as exc:
            self.warn(f"latent rejected, stopping: {exc}")
            self.publish_command(np.zeros(self.raw_dim, np.float32), None)
            return
        self.latest = (z, msg.header, time.monotonic())
        if self.params["trigger"] == "on_latent":
            self.control_once()

    def control_once(self) -> None:
        """Plan (if due) for the newest latent and publish the resulting command."""
        if self.latest is None:
            return
        z, header, _ = self.latest
        epoch = self.goal_epoch
        with self.lock:
            if self.controller is None or self.controller.goal is None:
                return  # the watchdog reports and stops
            budget = self.params["plan_time_budget"] or None
            try:
                self.planning = True
                with PLANNER_GATE.planning():
                    step = self.controller.step(z, max_time=budget)
            except ValueError as exc:
                self.warn(f"planning refused, stopping: {exc}")
                self.publish_command(np.zeros(self.raw_dim, np.float32), header)
                return
            finally:
                self.planning = False
        self.last_planned_ns = stamp_to_ns(header.stamp)
        with self.command_lock:
            if self.lease_expired() or epoch != self.goal_epoch:  # stopped while planning: never send this plan
                return
            self.publish_command(step.action, header)
        if step.replanned:
            self.plan_times.append(time.monotonic())
            self.publish_plan(step, header)

    def planning_loop(self) -> None:
        """trigger=timer: plan whenever a new latent arrived; the command timer sends the result."""
        stop = self.owned.stop
        while not stop.is_set() and self.model is not None:
            latest = self.latest
            if latest is None or stamp_to_ns(latest[1].stamp) == self.last_planned_ns or not self.publishers_ready:
                time.sleep(0.002)
                continue
            z, header, _ = latest
            epoch = self.goal_epoch
            with self.lock:
                if self.controller is None or self.controller.goal is None:
                    time.sleep(0.01)
                    continue
                try:
                    with PLANNER_GATE.planning():
                        step = self.controller.step(z, max_time=self.params["plan_time_budget"] or None)
                except ValueError as exc:
                    self.warn(f"planning refused: {exc}")
                    self.current_action = np.zeros(self.raw_dim, np.float32)
                    continue
            self.last_planned_ns = stamp_to_ns(header.stamp)
            with self.command_lock:
                if epoch != self.goal_epoch:  # the goal was dropped while planning
                    continue
                self.current_action = step.action
            if step.replanned:
                self.plan_times.append(time.monotonic())
                self.publish_plan(step, header)

    def on_command_timer(self) -> None:
        with self.command_lock:  # never interleaved with drop_goal's zero command
            if self.inputs_ok():
                self.publish_command(self.current_action, self.latest[1] if self.latest else None)

    def inputs_ok(self) -> bool:
        if self.latest is None or time.monotonic() - self.latest[2] > self.params["stale_timeout"]:
            return False
        return self.controller is not None and self.controller.goal is not None and not self.lease_expired()

    def watchdog(self) -> None:
        """Stop the robot while there is a goal but no fresh latent (perception dead, camera stalled).

        Without a goal the robot was already stopped when the goal was cleared or rejected. The zero
        command also unblocks a lockstep simulator that is waiting for a command.
        """
        if not self.publishers_ready or self.model is None or self.controller is None or self.controller.goal is None:
            return
        if self.lease_expired():
            self.warn(f"goal lease expired: no refresh on 'goal_lease' for {time.monotonic() - self.lease_time:.1f} s "
                      f"(> lease_timeout {self.params['lease_timeout']} s; configurator gone?): goal dropped, stopping")
            self.drop_goal()
            return
        if self.planning:  # a slow plan is not a stale latent (in lockstep no latent comes before its command)
            return
        last = self.latest[2] if self.latest is not None else self.goal_time
        age = time.monotonic() - max(last, self.goal_time)
        if age > self.params["stale_timeout"]:
            what = "no latent since the goal arrived" if self.latest is None or self.latest[2] < self.goal_time else "latent stale"
            self.warn(f"{what} for {age:.1f} s (> stale_timeout {self.params['stale_timeout']} s): stopping")
            self.current_action = np.zeros(self.raw_dim, np.float32)
            self.publish_command(self.current_action, None)

    # ---------------------------------------------------------------- outputs
    def bounded(self, action: np.ndarray) -> np.ndarray:
        """Clip to the configured per-axis and norm bounds; NaN becomes zero (stop)."""
        a = np.nan_to_num(np.asarray(action, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        limit = self.params["max_command"]
        a = np.clip(a, -limit, limit)
        norm_max = self.params["max_command_norm"]
        norm = float(np.linalg.norm(a))
        if norm_max > 0 and norm > norm_max:
            a = a * (norm_max / norm)
        return a.astype(np.float32)

    def publish_command(self, action: np.ndarray, header: Any) -> None:
        if not self.publishers_ready or self.cmd_pub is None:
            return
        a = self.bounded(action)
        kind = self.params["command_type"]
        twist = fill_twist(Twist(), a, self.params["dt"])
        stamped = TwistStamped(twist=twist)
        if header is not None:
            stamped.header = header  # the stamp of the camera image this command was computed from
        else:
            stamped.header.stamp = self.get_clock().now().to_msg()
        if kind == "action":
            self.cmd_pub.publish(Float32MultiArray(data=a.tolist()))
        elif kind == "twist":
            self.cmd_pub.publish(twist)
        else:
            self.cmd_pub.publish(stamped)
        if self.stamped_pub is not None:
            self.stamped_pub.publish(stamped)
        self.cmd_times.append(time.monotonic())

    def positions(self, latents: torch.Tensor) -> np.ndarray | None:
        """(..., 2) positions of latents (..., *latent_shape) in the bundle readout's frame, or None when
        the bundle has no position readout (then plans are not drawn as paths)."""
        readout = getattr(self.model, "readout_position", None)
        if readout is None or not getattr(self.model, "has_position_readout", True):
            return None
        try:
            pos = np.asarray(readout(latents), np.float64)
        except (ValueError, RuntimeError) as exc:
            self.warn(f"position readout failed, plans not drawn: {exc}")
            return None
        return pos if pos.shape[-1:] == (2,) and np.isfinite(pos).all() else None

    def publish_plan(self, step: ControlStep, header: Any) -> None:
        """``plan`` with its predicted positions every replan; the displays (``plan_path``, ``candidates``,
        ``imagined``) only while someone subscribes, at most ``display_rate`` times a second (steady clock)."""
        plan = step.plan
        msg = Plan()
        msg.header.stamp = header.stamp
        msg.header.frame_id = getattr(self.model, "position_frame", None) or self.params["frame_id"]
        msg.planner, msg.level = plan.planner, int(plan.level)
        acts = plan.actions.detach().cpu().numpy().astype(np.float32)
        msg.action_shape = list(acts.shape)
        msg.actions = acts.ravel()
        msg.dt = float(self.params["dt"] * self.controller.frameskip)
        msg.total_cost = float(plan.cost)
        msg.terms = [CostTerm(name=t.name, weight=float(t.weight), value=float(t.value)) for t in plan.terms]
        msg.samples, msg.iterations = int(plan.stats.samples), int(plan.stats.iterations)
        msg.planning_time = float(plan.stats.time_s)
        pos = self.positions(plan.latents)
        if pos is not None:
            msg.predicted_positions = [Point(x=float(p[0]), y=float(p[1]), z=0.0) for p in pos]
        self.plan_pub.publish(msg)

        from jepa_planner.planners.base import set_candidates_kept

        want_candidates = self.cand_pub.get_subscription_count() > 0
        controller = self.controller
        if controller is not None:  # the planner keeps candidate rollouts only while they are shown
            set_candidates_kept(controller.planner, self.params["max_candidates_shown"] if want_candidates else 0)
        now = time.monotonic()
        rate = float(self.params["display_rate"])
        if now - getattr(self, "_last_display", -np.inf) < 1.0 / rate:
            return
        want_path = pos is not None and self.path_pub.get_subscription_count() > 0
        decode = getattr(self.model, "decode", None)
        want_imagined = (decode is not None and getattr(self.model, "has_decoder", False)
                         and self.imagined_pub.get_subscription_count() > 0)
        if not (want_path or want_candidates or want_imagined):
            return
        self._last_display = now
        latest = self.latest  # drawn paths start at the newest latent's position
        start = None if latest is None else self.positions(latest[0])
        start = None if start is None else start.reshape(-1, 2)[0]
        if want_path:
            path = PathMsg()
            path.header = msg.header
            for p in ([start] if start is not None else []) + list(pos):
                pose = PoseStamped()
                pose.header = msg.header
                pose.pose.position = Point(x=float(p[0]), y=float(p[1]), z=0.0)
                pose.pose.orientation.w = 1.0
                path.poses.append(pose)
            self.path_pub.publish(path)
        if want_candidates:
            self.publish_candidates(msg.header, plan, start)
        if want_imagined:
            frames = decode(plan.latents)  # (H, h, w, 3) uint8
            self.imagined_pub.publish(array_to_image(np.concatenate(list(frames), axis=1), header.stamp, "imagined"))

    def publish_candidates(self, header: Any, plan: Any, start: np.ndarray | None = None) -> None:
        """Draw the chosen plan (thick, green) and the planner's ``max_candidates_shown`` best candidate
        rollouts of its last iteration (thin, shaded from blue = better to grey = worse), all from the
        current position ``start``; the previous markers are deleted first so fewer candidates leave none behind."""
        shown = int(self.params["max_candidates_shown"])
        rollouts = [plan.latents]
        cand = getattr(plan.stats, "candidate_latents", None)
        if cand is not None and shown > 0:
            rollouts += list(cand[:shown])
        paths = self.positions(torch.stack([torch.as_tensor(r) for r in rollouts]))
        if paths is None:
            return
        markers = MarkerArray(markers=[Marker(header=header, ns="candidates", action=Marker.DELETEALL)])
        n = len(paths) - 1
        thin = 0.2 if getattr(self.model, "position_units", None) == "px" else 0.02  # px worlds vs metres
        for i, path in enumerate(paths):
            m = Marker(header=header, ns="candidates", id=i, type=Marker.LINE_STRIP, action=Marker.ADD)
            m.pose.orientation.w = 1.0
            points = ([start] if start is not None else []) + list(path)
            m.points = [Point(x=float(p[0]), y=float(p[1]), z=0.0) for p in points]
            if i == 0:
                m.scale.x = 3 * thin
                m.color.r, m.color.g, m.color.b, m.color.a = 0.1, 0.9, 0.1, 1.0
            else:
                shade = (i - 1) / max(n - 1, 1)
                m.scale.x = thin
                m.color.r, m.color.g, m.color.b, m.color.a = 0.3 + 0.4 * shade, 0.4 + 0.3 * shade, 0.95 - 0.25 * shade, 0.5
            markers.markers.append(m)
        self.cand_pub.publish(markers)

    def warn(self, text: str) -> None:
        self.get_logger().warning(text, throttle_duration_sec=2.0)
        self.warnings = [*self.warnings[-9:], text]

    @staticmethod
    def rate(times: list[float], window: float = 5.0) -> float:
        now = time.monotonic()
        recent = [t for t in times if now - t < window]
        times[:] = recent
        return (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0

    def publish_status(self) -> None:
        if not self.publishers_ready:
            return
        msg = AgentStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        has_goal = self.controller is not None and self.controller.goal is not None
        stale = self.latest is None or time.monotonic() - self.latest[2] > self.params["stale_timeout"]
        msg.mode = "stopped" if (stale or not has_goal) else ("mode1" if self.profile_kind == "policy" else "mode2")
        msg.profile = self.profile_name
        msg.distance_to_goal = -1.0
        msg.latent_age = -1.0 if self.latest is None else float(time.monotonic() - self.latest[2])
        msg.planning_rate = float(self.rate(self.plan_times))
        msg.command_rate = float(self.rate(self.cmd_times))
        msg.warnings = list(self.warnings)
        self.warnings = []
        self.status_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    return run_node(ActorNode, args, threads=3)


if __name__ == "__main__":
    raise SystemExit(main())
