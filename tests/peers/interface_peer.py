"""Test peer for the interface smoke test: serves every jepa_interfaces type from its own OS process.

It publishes LatentState on ``latent``, serves ``encode_image`` (mean colour as a 3-d latent),
``rollout_latents`` (a known linear model z' = z + a) and a ``reach_goal`` action that counts
towards ``goal_name``'s length with feedback and honours cancel. Known arithmetic lets the
test check every field that crossed the process boundary.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from jepa_interfaces.action import ReachGoal
from jepa_interfaces.msg import LatentState
from jepa_interfaces.srv import EncodeImage, RolloutLatents


class InterfacePeer(Node):
    """Serves each interface with deterministic, checkable answers."""

    def __init__(self) -> None:
        super().__init__("interface_peer")
        group = ReentrantCallbackGroup()
        self.latent_pub = self.create_publisher(LatentState, "latent", 10)
        self.count = 0
        self.create_timer(0.05, self.publish_latent, callback_group=group)
        self.create_service(EncodeImage, "encode_image", self.encode, callback_group=group)
        self.create_service(RolloutLatents, "rollout_latents", self.rollout, callback_group=group)
        self.action_server = ActionServer(
            self, ReachGoal, "reach_goal", execute_callback=self.execute,
            goal_callback=self.on_goal, cancel_callback=lambda _g: CancelResponse.ACCEPT, callback_group=group,
        )

    def publish_latent(self) -> None:
        msg = LatentState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = "camera"
        msg.model_id = "peer"
        msg.shape = [2, 3]
        msg.data = np.arange(6, dtype=np.float32) + self.count
        self.count += 1
        self.latent_pub.publish(msg)

    def encode(self, request: EncodeImage.Request, response: EncodeImage.Response) -> EncodeImage.Response:
        img = request.image
        if img.encoding != "rgb8" or len(img.data) != img.height * img.width * 3:
            response.success = False
            response.message = f"expected rgb8 {img.width}x{img.height}, got {img.encoding} with {len(img.data)} bytes"
            return response
        pixels = np.frombuffer(bytes(img.data), np.uint8).reshape(img.height, img.width, 3)
        response.latent.header = img.header
        response.latent.model_id = "peer"
        response.latent.shape = [3]
        response.latent.data = pixels.reshape(-1, 3).mean(0).astype(np.float32)
        response.latent.proprio = request.proprio
        response.success = True
        return response

    def rollout(self, request: RolloutLatents.Request, response: RolloutLatents.Response) -> RolloutLatents.Response:
        k, h, a = request.action_shape
        actions = np.asarray(request.actions, np.float32).reshape(k, h, a)
        z0 = np.asarray(request.context[-1].data, np.float32)
        latents = z0 + np.cumsum(actions, axis=1)  # z_{t+1} = z_t + a_t
        response.latents_shape = [k, h, a]
        if request.return_latents:
            response.latents = latents.ravel()
        if request.return_costs:
            goal = np.asarray(request.goal.data, np.float32)
            response.costs = np.linalg.norm(latents[:, -1] - goal, axis=-1).astype(np.float32)
        response.success = True
        return response

    def on_goal(self, goal: ReachGoal.Goal) -> GoalResponse:
        ok = goal.goal_type == ReachGoal.Goal.GOAL_NAMED and bool(goal.goal_name)
        return GoalResponse.ACCEPT if ok else GoalResponse.REJECT

    def execute(self, handle) -> ReachGoal.Result:
        steps = len(handle.request.goal_name)
        start = time.monotonic()
        result = ReachGoal.Result()
        for step in range(1, steps + 1):
            if handle.is_cancel_requested:
                handle.canceled()
                result.reason = "canceled"
                result.steps = step - 1
                return result
            feedback = ReachGoal.Feedback(step=step, distance_to_goal=float(steps - step), plan_cost=0.5 * step)
            handle.publish_feedback(feedback)
            time.sleep(0.1)
        handle.succeed()
        result.success = True
        result.reason = "reached"
        result.steps = steps
        result.final_distance = 0.0
        result.elapsed = time.monotonic() - start
        return result


def main() -> None:
    rclpy.init()
    node = InterfacePeer()
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    stop = threading.Event()
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
