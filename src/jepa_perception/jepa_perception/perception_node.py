"""Perception node: camera image (+ proprioception) -> LatentState, with the bundle's encoder.

Managed (lifecycle) node: the bundle is loaded in ``on_configure``, latents are published only
while active. Input images use sensor QoS (best effort, depth 1: only the newest frame matters);
each latent carries the stamp and frame of the image it came from, so downstream nodes can
measure latency and detect stale input. ``perception/rate`` is also published twice a second on the
steady clock while active, images or not: the configurator tells a dead perception node from an
idle one. Bad images (encoding, size, length) and bad proprioception (NaN, wrong size) are dropped
with a throttled warning naming what was wrong; the node keeps running.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32

from jepa_common.ros_common import (
    LOCAL_TOPICS,
    PLANNER_GATE,
    OwnedEntities,
    Param,
    configure_failed,
    declare_params,
    guarded,
    image_to_array,
    reliable_qos,
    run_node,
    sensor_qos,
    steady_clock,
)
from jepa_interfaces.msg import LatentState
from jepa_interfaces.srv import EncodeImage

# The configurator's perception_timeout (default 2 s) must see several of these even on a loaded machine: at
# 1 Hz one late heartbeat, with frames stopped (lockstep sim, actor gone), read as a dead perception.
HEARTBEAT_PERIOD_S = 0.5

PARAMS = {
    "bundle": Param("", "model bundle directory (manifest.json, encoder.onnx, model.pt)", read_only=True),
    "backend": Param("onnx", "inference backend for the encoder", choices=("onnx", "torch"), read_only=True),
    "providers": Param("auto", "onnxruntime providers, comma-separated (tensorrt,cuda,cpu) or auto", read_only=True),
    "use_proprio": Param(False, "read proprioception (JointState on 'proprio') and copy it into the latent"),
    "max_rate": Param(0.0, "maximum latent rate in Hz (0 = every image)", min=0.0, max=1000.0, dynamic=True),
    "in_process_latents": Param(True, "hand latents directly to the nodes composed in this process that subscribe to "
                                "'latent' after this one is configured (they then take no latents from other "
                                "processes); every latent is published on 'latent' as well", read_only=True),
    "autostart": Param(True, "configure and activate at start (no lifecycle manager needed)", read_only=True),
}


class PerceptionNode(LifecycleNode):
    """Encodes camera frames into latents (topic ``latent``) and serves ``encode_image``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("perception", **kwargs)
        self.params = declare_params(self, PARAMS)
        self.model = None
        self.latent_pub = None
        self.rate_pub = None
        self.proprio: np.ndarray = np.zeros(0, np.float32)
        self._last_out = 0.0
        self._times: deque[float] = deque()  # monotonic times of the latents of the last 2 s
        self.owned = OwnedEntities(self)
        self.latent_topic = ""  # resolved name of 'latent' while configured (offered to actors in this process)

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from jepa_world_model.bundle import load_bundle

        path = self.params["bundle"]
        if not path:
            self.get_logger().error("parameter 'bundle' is empty: give the model bundle directory (e.g. models/two_rooms)")
            return TransitionCallbackReturn.FAILURE
        providers = None if self.params["providers"] == "auto" else [p.strip() for p in self.params["providers"].split(",")]
        try:
            self.model = load_bundle(path, backend=self.params["backend"], providers=providers)
        except Exception as exc:
            self.model = None
            return configure_failed(self, exc)
        if getattr(self.model, "uses_proprio", False) and not self.params["use_proprio"]:
            self.get_logger().error(f"bundle '{path}' fuses proprioception into the latent: set use_proprio true and "
                                    "publish sensor_msgs/JointState on 'proprio'")
            self.model = None
            return TransitionCallbackReturn.FAILURE
        self.image_hw = tuple(self.model.image_size)
        own = self.owned.add
        self.latent_pub = own(self.create_lifecycle_publisher(LatentState, "latent", reliable_qos(1)))
        if self.params["in_process_latents"]:  # composed: the nodes in this process take latents directly
            self.latent_topic = self.latent_pub.topic_name
            LOCAL_TOPICS.offer(self.latent_topic)
        self.rate_pub = own(self.create_lifecycle_publisher(Float32, "perception/rate", reliable_qos(1)))
        own(self.create_subscription(Image, "camera/image_raw", guarded(self, "camera/image_raw", self.on_image),
                                     sensor_qos()))
        if self.params["use_proprio"]:
            own(self.create_subscription(JointState, "proprio", guarded(self, "proprio", self.on_proprio), sensor_qos()))
        own(self.create_service(EncodeImage, "encode_image", self.on_encode))
        own(self.create_timer(HEARTBEAT_PERIOD_S, self.publish_rate, clock=steady_clock()))
        self.get_logger().info(f"loaded bundle {self.model.model_id} ({self.params['backend']}), "
                               f"input {self.image_hw[1]}x{self.image_hw[0]}, latent {list(self.model.latent_shape)}")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.owned.release()
        if self.latent_topic:
            LOCAL_TOPICS.withdraw(self.latent_topic)
        self.model, self.latent_pub, self.rate_pub, self.latent_topic = None, None, None, ""
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.on_cleanup(state)

    def publish_rate(self) -> None:
        """Heartbeat: the latent rate over the last 2 s (0 when idle), every ``HEARTBEAT_PERIOD_S``."""
        if self.rate_pub is None or not self.rate_pub.is_activated:
            return
        now = time.monotonic()
        times = [t for t in self._times if now - t < 2.0]
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
        self.rate_pub.publish(Float32(data=float(rate)))

    # ---------------------------------------------------------------- callbacks
    def on_proprio(self, msg: JointState) -> None:
        values = np.asarray(list(msg.position) + list(msg.velocity), np.float32)
        want = getattr(self.model, "proprio_dim", None) if getattr(self.model, "uses_proprio", False) else None
        if want is not None and values.size != want:
            raise ValueError(f"proprio has {values.size} values (position + velocity), the bundle fuses {want}")
        if not np.isfinite(values).all():
            self.get_logger().warning("proprio contains NaN/inf: ignored, keeping the last valid value",
                                   throttle_duration_sec=5.0)
            return
        self.proprio = values

    def encode_message(self, msg: Image, proprio: np.ndarray | None = None) -> np.ndarray:
        """Image message -> latent array; raises ImageError/ValueError on bad input.

        For bundles that fuse proprio: camera images (``proprio`` None) use the latest on the topic; service
        requests (goal images) must bring their own, since the robot's current proprio is not the goal's.
        """
        image = image_to_array(msg, expected_hw=self.image_hw)
        latest = self.proprio if proprio is None else np.zeros(0, np.float32)
        p = fused_proprio(self.model, proprio, latest)
        return self.model.encode(image[None], p).detach().cpu().numpy()[0].astype(np.float32)

    def to_latent_msg(self, z: np.ndarray, header: Any) -> LatentState:
        out = LatentState()
        out.header = header
        out.model_id = self.model.model_id
        out.shape = list(z.shape)
        out.data = z.ravel()
        out.proprio = self.proprio
        return out

    def on_image(self, msg: Image) -> None:
        if self.model is None or self.latent_pub is None or not self.latent_pub.is_activated:
            return
        now = time.monotonic()
        if self.params["max_rate"] > 0 and now - self._last_out < 1.0 / self.params["max_rate"]:
            return
        try:
            z = self.encode_message(msg)
        except ValueError as exc:  # ImageError is a ValueError
            self.get_logger().warning(f"dropped image on {self.resolve_topic_name('camera/image_raw')}: {exc}",
                                   throttle_duration_sec=5.0)
            return
        if not np.isfinite(z).all():
            self.get_logger().error("encoder produced NaN/inf: latent not published", throttle_duration_sec=5.0)
            return
        out = self.to_latent_msg(z, msg.header)
        PLANNER_GATE.frame_out()  # composed: the actor takes this latent before the other nodes work on it
        if self.latent_topic:
            LOCAL_TOPICS.deliver(self.latent_topic, out)
        self.latent_pub.publish(out)
        self._last_out = now
        self._times.append(now)  # the rate goes out with the heartbeat (one message per frame woke its subscribers)
        while now - self._times[0] > 2.0:
            self._times.popleft()

    def on_encode(self, request: EncodeImage.Request, response: EncodeImage.Response) -> EncodeImage.Response:
        if self.model is None:
            response.success, response.message = False, "perception node is not configured (no bundle loaded)"
            return response
        try:
            z = self.encode_message(request.image, np.asarray(request.proprio, np.float32))
        except ValueError as exc:
            response.success, response.message = False, f"bad goal/query image: {exc}"
            return response
        except Exception as exc:  # a request must never cost the node
            response.success, response.message = False, f"encoding failed: {type(exc).__name__}: {exc}"
            return response
        if not np.isfinite(z).all():
            response.success, response.message = False, "encoder produced NaN/inf for this image"
            return response
        response.latent = self.to_latent_msg(z, request.image.header)
        response.latent.proprio = np.asarray(request.proprio, np.float32)
        response.success = True
        return response


def fused_proprio(model: Any, given: np.ndarray | None, latest: np.ndarray) -> np.ndarray | None:
    """The (1, P) proprio to encode with for a bundle that fuses it (``given`` when non-empty, else ``latest``),
    None for image-only bundles; ValueError when there is none of the bundle's size."""
    if not getattr(model, "uses_proprio", False):
        return None
    p = latest if given is None or len(given) == 0 else np.asarray(given, np.float32).reshape(-1)
    if p.shape != (model.proprio_dim,):
        raise ValueError(f"the bundle fuses {model.proprio_dim} proprio values, have {p.shape[0]} "
                         "(give them with the EncodeImage request, or publish them on 'proprio' for camera images)")
    if not np.isfinite(p).all():
        raise ValueError("proprio contains NaN/inf")
    return p[None].astype(np.float32)


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
