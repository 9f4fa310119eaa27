"""World-model node: the ``rollout_latents`` service and the surprise signal.

Surprise (``jepa_world_model.surprise``, the definition offline evaluation and the benchmark share)
is the normalised distance between the latent the model predicted for now (from the latents and
commands of the last model step) and the latent perception observed, scored by the detector of the
bundle's calibration when it has one (the prediction horizon, a window of frames whose residuals are
summed, the whitening with the residual statistics of normal data). It rises when the world does
something the model did not expect (a push, a slip, a new obstacle, a teleport). When it exceeds the
alarm threshold (calibrated on normal data for a stated false-alarm rate: the bundle's
``surprise_calibration.json``, or the ``surprise_threshold`` parameter) the node publishes
``surprise_alarm`` (std_msgs/Bool, on every surprise value) and a text marker for rviz on
``surprise_marker``; the configurator turns the alarm into a status warning, a replan or a stop.

The planner does not call this service in its inner loop (it runs the same bundle in-process);
the service is for tools, other agents and inspection. Every input is validated (latent shape and
values, NaN or wrongly sized commands); a bad message costs a throttled warning, never the node.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from geometry_msgs.msg import Twist
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_msgs.msg import Bool, Float32, Float32MultiArray
from visualization_msgs.msg import Marker

from jepa_common.convert import twist_to_action
from jepa_common.ros_common import (
    PLANNER_GATE,
    OwnedEntities,
    Param,
    configure_failed,
    declare_params,
    finite_values,
    guarded,
    parse_latent,
    reliable_qos,
    run_node,
)
from jepa_interfaces.msg import LatentState
from jepa_interfaces.srv import RolloutLatents
from jepa_world_model.surprise import OnlineSurprise, SurpriseDetector, normalised_distance

PARAMS = {
    "bundle": Param("", "model bundle directory", read_only=True),
    "backend": Param("onnx", "inference backend", choices=("onnx", "torch"), read_only=True),
    "command_type": Param("twist", "the command topic to follow for surprise", choices=("twist", "action")),
    "dt": Param(0.1, "seconds per raw control step (Twist velocity x dt = action)", min=1e-4, max=10.0, dynamic=True),
    "max_candidates": Param(4096, "largest K accepted by rollout_latents", min=1, max=1_000_000, dynamic=True),
    "max_horizon": Param(64, "longest horizon accepted by rollout_latents", min=1, max=10_000, dynamic=True),
    "surprise_threshold": Param(
        0.0,
        "alarm when surprise exceeds this; 0 = the calibrated threshold of surprise_calibration (no file: no alarm)",
        min=0.0,
        max=1e6,
        read_only=True,
    ),
    "surprise_calibration": Param("", "surprise calibration JSON (default: <bundle>/surprise_calibration.json)", read_only=True),
    "marker_frame_id": Param("map", "frame of the rviz surprise marker", read_only=True),
    "autostart": Param(True, "configure and activate at start", read_only=True),
}


class WorldModelNode(LifecycleNode):
    """Serves rollouts of candidate action sequences and publishes ``surprise``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("world_model", **kwargs)
        self.params = declare_params(self, PARAMS)
        self.model = None
        self.pending_action = None
        self.online: OnlineSurprise | None = None  # the calibrated detector, fed frame by frame
        self.detector = SurpriseDetector()
        self.owned = OwnedEntities(self)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from jepa_world_model.bundle import load_bundle

        try:
            if not self.params["bundle"]:
                raise ValueError("parameter 'bundle' is empty: give the model bundle directory")
            self.model = load_bundle(self.params["bundle"], backend=self.params["backend"])
        except Exception as exc:
            self.model = None
            return configure_failed(self, exc)
        self.std = np.maximum(self.model.latent_std.detach().cpu().numpy(), 1e-6)
        self.frameskip = int(self.model.frameskip)
        self.pending_action = None
        own = self.owned.add
        self.surprise_pub = own(self.create_lifecycle_publisher(Float32, "surprise", reliable_qos(10)))
        own(self.create_subscription(LatentState, "latent", guarded(self, "latent", self.on_latent), reliable_qos(5)))
        if self.params["command_type"] == "twist":
            own(self.create_subscription(Twist, "cmd_vel", guarded(self, "cmd_vel", self.on_twist), reliable_qos(5)))
        else:
            own(self.create_subscription(Float32MultiArray, "action", guarded(self, "action", self.on_action), reliable_qos(5)))
        own(self.create_service(RolloutLatents, "rollout_latents", self.on_rollout))
        self.setup_surprise_alarm()
        self.online = OnlineSurprise(self.detector, self.model, torch.from_numpy(self.std), self.raw_action_dim())
        self.get_logger().info(f"world model ready: bundle {self.model.model_id} ({self.params['backend']})")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.owned.release()
        self.model, self.pending_action, self.online = None, None, None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.on_cleanup(state)

    # ---------------------------------------------------------------- surprise
    def raw_action_dim(self) -> int:
        """Values in one raw action: level 0's action size divided by the frameskip."""
        level0 = next(s for s in self.model.levels if s.level == 0)
        return int(level0.action_dim) // max(self.frameskip, 1)

    def on_twist(self, msg: Twist) -> None:
        finite_values(msg.linear.x, msg.linear.y, what="cmd_vel")
        self.pending_action = twist_to_action(msg, 2, self.params["dt"]).astype(np.float32)

    def on_action(self, msg: Float32MultiArray) -> None:
        action = np.asarray(msg.data, np.float32)
        if self.model is not None and action.size != self.raw_action_dim():
            raise ValueError(f"action has {action.size} values, expected {self.raw_action_dim()}")
        if not np.isfinite(action).all():
            raise ValueError("action contains NaN/inf")
        self.pending_action = action

    def on_latent(self, msg: LatentState) -> None:
        """Score the newest latent with the action applied since the previous one, then publish its surprise."""
        if self.model is None:
            return
        z = parse_latent(msg, tuple(self.model.latent_shape), self.model.model_id, "latent")
        action, self.pending_action = self.pending_action, None  # the command applied after the previous latent
        PLANNER_GATE.wait_idle()  # composed: the actor plans this latent first
        self.publish_surprise(z, action)

    def publish_surprise(self, z: np.ndarray, action: np.ndarray | None) -> None:
        """Surprise of the newest latent (the calibration's detector over the frames it looks back on), then the alarm."""
        value = self.online.push(z, action)
        if not np.isfinite(value) or not self.surprise_pub.is_activated:
            return
        self.surprise_pub.publish(Float32(data=value))
        self.publish_alarm(value)

    def setup_surprise_alarm(self) -> None:
        """Alarm threshold from the parameter or the bundle's calibration; publishers for the flag and the marker.

        A missing or mismatched calibration is a warning (surprise is still published, without an alarm),
        never a failed configure: the alarm is an aid, not something the robot needs to move."""
        from pathlib import Path

        from jepa_world_model.surprise import alarm_setting, calibration_path

        path = self.params["surprise_calibration"] or calibration_path(self.params["bundle"])
        alarm = alarm_setting(Path(path), getattr(self.model, "manifest", None), self.params["surprise_threshold"] or None,
                              "surprise_threshold")
        # the calibration's detector: surprise is then the (windowed, whitened) error its threshold was set for
        self.alarm_threshold, self.detector = alarm.threshold, alarm.detector
        self.alarm_on = False
        if alarm.threshold is None:
            self.get_logger().warning(f"surprise alarm off: {alarm.problem}")
        elif alarm.problem:
            self.get_logger().warning(f"surprise is the plain RMS error ({alarm.problem}); alarm above {alarm.threshold:.4g}")
        else:
            self.get_logger().info(f"surprise ({alarm.detector.describe()}) alarm above {alarm.threshold:.4g} ({alarm.source})")
        self.alarm_pub = self.owned.add(self.create_lifecycle_publisher(Bool, "surprise_alarm", reliable_qos(10)))
        self.marker_pub = self.owned.add(self.create_lifecycle_publisher(Marker, "surprise_marker", reliable_qos(1)))

    def publish_alarm(self, value: float) -> None:
        """The alarm flag for every surprise value; the rviz marker when the alarm turns on or off."""
        if self.alarm_threshold is None:
            return
        alarm = value > self.alarm_threshold
        self.alarm_pub.publish(Bool(data=alarm))
        if alarm != self.alarm_on:
            self.alarm_on = alarm
            marker = Marker()
            marker.header.frame_id = self.params["marker_frame_id"]
            marker.header.stamp = self.get_clock().now().to_msg()
            marker.ns, marker.id, marker.type = "surprise", 0, Marker.TEXT_VIEW_FACING
            marker.action = Marker.ADD if alarm else Marker.DELETE
            marker.scale.z = 4.0
            marker.color.r, marker.color.a = 1.0, 1.0
            marker.text = f"SURPRISE {value:.2f} > {self.alarm_threshold:.2f}"
            self.marker_pub.publish(marker)
            if alarm:
                self.get_logger().warning(f"surprise alarm: {value:.3f} > threshold {self.alarm_threshold:.3f}")

    # ---------------------------------------------------------------- rollout service
    def on_rollout(self, request: RolloutLatents.Request, response: RolloutLatents.Response) -> RolloutLatents.Response:
        try:
            latents, costs, note = self.rollout(request)
        except ValueError as exc:
            response.success, response.message = False, str(exc)
            return response
        except Exception as exc:  # a request must never cost the node
            response.success, response.message = False, f"rollout failed: {type(exc).__name__}: {exc}"
            return response
        response.success, response.message = True, note
        response.latents_shape = list(latents.shape)
        if request.return_latents:
            response.latents = latents.ravel()
        if costs is not None:
            response.costs = costs
        return response

    def rollout(self, request: RolloutLatents.Request) -> tuple[np.ndarray, np.ndarray | None, str]:
        if self.model is None:
            raise ValueError("world model node is not configured")
        shape = tuple(self.model.latent_shape)
        if not request.context:
            raise ValueError("context is empty: give at least one latent")
        ctx = []
        for i, lat in enumerate(request.context):
            if lat.model_id and lat.model_id != self.model.model_id:
                raise ValueError(f"context[{i}] comes from model '{lat.model_id}', this node serves '{self.model.model_id}'")
            data = np.asarray(lat.data, np.float32)
            if tuple(lat.shape) != shape or data.size != int(np.prod(shape)) or not np.isfinite(data).all():
                raise ValueError(f"context[{i}] must be a finite latent of shape {list(shape)}, got {list(lat.shape)}")
            ctx.append(data.reshape(shape))
        level = int(request.level)
        spec = next((s for s in self.model.levels if s.level == level), None)
        if spec is None:
            raise ValueError(f"level {level} is not in the bundle (levels {[s.level for s in self.model.levels]})")
        if len(request.action_shape) != 3:
            raise ValueError(f"action_shape must be [K, horizon, action_dim], got {list(request.action_shape)}")
        k, h, a = (int(x) for x in request.action_shape)
        acts = np.asarray(request.actions, np.float32)
        if a != spec.action_dim or acts.size != k * h * a:
            raise ValueError(f"actions must be K x H x {spec.action_dim} = {k * h * spec.action_dim} values, got shape "
                             f"{[k, h, a]} with {acts.size}")
        if not 1 <= k <= self.params["max_candidates"] or not 1 <= h <= self.params["max_horizon"]:
            raise ValueError(f"K={k}, H={h} outside the limits max_candidates={self.params['max_candidates']}, "
                             f"max_horizon={self.params['max_horizon']}")
        if not np.isfinite(acts).all():
            raise ValueError("actions contain NaN/inf")
        acts = acts.reshape(k, h, a)
        clipped = np.clip(acts, spec.action_low, spec.action_high)
        note = f"{int((clipped != acts).sum())} action values clipped to the bounds" if (clipped != acts).any() else ""
        z_ctx = torch.from_numpy(np.stack(ctx)[-self.model.context:])[None].expand(k, *([-1] * (len(shape) + 1)))
        with torch.no_grad():
            latents = self.model.rollout(z_ctx.contiguous(), torch.from_numpy(clipped), level=level).cpu().numpy()
        costs = None
        if request.return_costs:
            goal = np.asarray(request.goal.data, np.float32)
            if goal.size != int(np.prod(shape)) or not np.isfinite(goal).all():
                raise ValueError(f"return_costs needs a finite goal latent of shape {list(shape)}")
            costs = normalised_distance(latents[:, -1], goal.reshape(shape), self.std).astype(np.float32)
        return latents.astype(np.float32), costs, note


def main(args: list[str] | None = None) -> int:
    return run_node(WorldModelNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
