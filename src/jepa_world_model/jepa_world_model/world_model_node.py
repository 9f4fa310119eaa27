"""World-model node: the ``rollout_latents`` service and the surprise signal.

Surprise is the normalised distance between the latent the model predicted for now (from the
latents and commands of the last model step) and the latent perception observed. It rises when
the world does something the model did not expect (a push, a slip, a new obstacle), which a
person can watch in a plot and other nodes can use (e.g. to slow down or to log data).

The planner does not call this service in its inner loop (it runs the same bundle in-process);
the service is for tools, other agents and inspection. Every input is validated (latent shape and
values, NaN or wrongly sized commands); a bad message costs a throttled warning, never the node.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch
from geometry_msgs.msg import Twist
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_msgs.msg import Float32, Float32MultiArray

from jepa_common.convert import latent_distances, twist_to_action
from jepa_common.ros_common import (
    OwnedEntities,
    Param,
    configure_failed,
    declare_params,
    finite_values,
    guarded,
    parse_latent,
    reliable_qos,
    run_node,
    stamp_to_ns,
)
from jepa_interfaces.msg import LatentState
from jepa_interfaces.srv import RolloutLatents

PARAMS = {
    "bundle": Param("", "model bundle directory", read_only=True),
    "backend": Param("onnx", "inference backend", choices=("onnx", "torch"), read_only=True),
    "command_type": Param("twist", "the command topic to follow for surprise", choices=("twist", "action")),
    "dt": Param(0.1, "seconds per raw control step (Twist velocity x dt = action)", min=1e-4, max=10.0, dynamic=True),
    "max_candidates": Param(4096, "largest K accepted by rollout_latents", min=1, max=1_000_000, dynamic=True),
    "max_horizon": Param(64, "longest horizon accepted by rollout_latents", min=1, max=10_000, dynamic=True),
    "autostart": Param(True, "configure and activate at start", read_only=True),
}


def normalised_distance(a: np.ndarray, b: np.ndarray, std: np.ndarray) -> np.ndarray:
    """RMS over latent dimensions of (a - b) / std (the unit used for tolerances and surprise)."""
    return latent_distances(a, b, std)


class WorldModelNode(LifecycleNode):
    """Serves rollouts of candidate action sequences and publishes ``surprise``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("world_model", **kwargs)
        self.params = declare_params(self, PARAMS)
        self.model = None
        self.pending_action = None
        self.history: deque = deque()
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
        self.history = deque(maxlen=(self.model.context - 1) * self.frameskip + self.frameskip + 1)
        self.pending_action = None
        own = self.owned.add
        self.surprise_pub = own(self.create_lifecycle_publisher(Float32, "surprise", reliable_qos(10)))
        own(self.create_subscription(LatentState, "latent", guarded(self, "latent", self.on_latent), reliable_qos(5)))
        if self.params["command_type"] == "twist":
            own(self.create_subscription(Twist, "cmd_vel", guarded(self, "cmd_vel", self.on_twist), reliable_qos(5)))
        else:
            own(self.create_subscription(Float32MultiArray, "action", guarded(self, "action", self.on_action), reliable_qos(5)))
        own(self.create_service(RolloutLatents, "rollout_latents", self.on_rollout))
        self.get_logger().info(f"world model ready: bundle {self.model.model_id} ({self.params['backend']})")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.owned.release()
        self.model, self.pending_action = None, None
        self.history = deque()
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
        """Store (latent, action applied after it); when a model step is complete, compare prediction and observation."""
        if self.model is None:
            return
        z = parse_latent(msg, tuple(self.model.latent_shape), self.model.model_id, "latent")
        if self.history and self.pending_action is not None:
            self.history[-1]["action"] = self.pending_action  # the command applied after the previous latent
        self.pending_action = None
        self.history.append({"z": z, "action": None, "stamp": stamp_to_ns(msg.header.stamp)})
        self.publish_surprise()

    def publish_surprise(self) -> None:
        fs, steps = self.frameskip, list(self.history)
        if len(steps) < fs + 1 or not self.surprise_pub.is_activated:
            return
        window = steps[-(fs + 1):]
        if any(s["action"] is None for s in window[:-1]):
            return
        raw = np.concatenate([s["action"] for s in window[:-1]])
        level0 = next(s for s in self.model.levels if s.level == 0)
        if raw.size != level0.action_dim:
            return
        ctx_steps = steps[: -fs][::-1][::fs][: self.model.context][::-1]
        ctx = torch.from_numpy(np.stack([s["z"] for s in ctx_steps]))[None]
        with torch.no_grad():
            pred = self.model.predict(ctx, torch.from_numpy(raw)[None]).cpu().numpy()[0]
        self.surprise_pub.publish(Float32(data=float(normalised_distance(pred, window[-1]["z"], self.std))))

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
