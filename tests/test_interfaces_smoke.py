"""Foundation smoke test: every jepa_interfaces type crosses between two real OS processes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from jepa_common.processes import wait_for

pytestmark = pytest.mark.ros


def call(client, request, timeout: float = 10.0):
    assert client.wait_for_service(timeout_sec=timeout), f"service {client.srv_name} not available"
    future = client.call_async(request)
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    assert done.wait(timeout), f"no response from {client.srv_name}"
    return future.result()


def test_imports_without_sourcing() -> None:
    import jepa_interfaces.action as action
    import jepa_interfaces.msg as msg
    import jepa_interfaces.srv as srv

    assert {"LatentState", "Plan", "CostTerm", "AgentStatus"} <= set(dir(msg))
    assert {"EncodeImage", "RolloutLatents"} <= set(dir(srv))
    assert "ReachGoal" in dir(action)
    plan = msg.Plan(action_shape=[2, 2], actions=np.zeros(4, np.float32), level=1)
    plan.terms.append(msg.CostTerm(name="goal_distance", weight=1.0, value=0.25))
    assert plan.terms[0].value == pytest.approx(0.25)


def test_two_processes_exchange_every_interface(ros_procs, rclpy_node) -> None:
    from rclpy.action import ActionClient
    from sensor_msgs.msg import Image

    from jepa_interfaces.action import ReachGoal
    from jepa_interfaces.msg import LatentState
    from jepa_interfaces.srv import EncodeImage, RolloutLatents

    node = rclpy_node
    # service clients made before the peer starts, so that it has discovered them by their first call (a server
    # that has not yet seen a client drops its answer: Fast DDS "client will not receive response")
    # (the action client too: its goal acceptance is a service reply, once lost to that race in a CI run)
    encode = node.create_client(EncodeImage, "encode_image")
    rollout = node.create_client(RolloutLatents, "rollout_latents")
    client = ActionClient(node, ReachGoal, "reach_goal")
    peer = ros_procs.run("tests.peers.interface_peer")

    # Topic: LatentState with shape and float32 data.
    latents: list[LatentState] = []
    node.create_subscription(LatentState, "latent", latents.append, 10)
    wait_for(lambda: len(latents) >= 3, 20, "latent messages from the peer process")
    last = latents[-1]
    assert list(last.shape) == [2, 3] and last.model_id == "peer"
    data = np.asarray(last.data, np.float32)
    assert np.allclose(data - data[0], np.arange(6))

    # Service: EncodeImage (mean colour of a known image, stamp copied).
    img = Image(height=4, width=5, encoding="rgb8", step=15)
    pixels = np.zeros((4, 5, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 10, 20, 30
    img.data = pixels.tobytes()
    img.header.stamp.sec = 42
    enc = call(encode, EncodeImage.Request(image=img, proprio=[1.0, 2.0]))
    assert enc.success, enc.message
    assert np.allclose(enc.latent.data, [10, 20, 30]) and enc.latent.header.stamp.sec == 42
    assert np.allclose(enc.latent.proprio, [1, 2])
    bad = img
    bad.data = bad.data[:-1]
    assert not call(encode, EncodeImage.Request(image=bad)).success

    # Service: RolloutLatents through the peer's known linear model z' = z + a.
    actions = np.random.default_rng(0).normal(size=(4, 3, 3)).astype(np.float32)
    z0 = LatentState(shape=[3], data=np.array([1, 2, 3], np.float32))
    goal = LatentState(shape=[3], data=np.zeros(3, np.float32))
    req = RolloutLatents.Request(context=[z0], action_shape=[4, 3, 3], actions=actions.ravel(), return_latents=True,
                                 return_costs=True, goal=goal)
    roll = call(rollout, req)
    expected = np.array([1, 2, 3], np.float32) + np.cumsum(actions, axis=1)
    assert roll.success and list(roll.latents_shape) == [4, 3, 3]
    assert np.allclose(np.asarray(roll.latents).reshape(4, 3, 3), expected, atol=1e-5)
    assert np.allclose(roll.costs, np.linalg.norm(expected[:, -1], axis=-1), atol=1e-5)

    # Action: ReachGoal with feedback and result, then a second goal cancelled mid-way.
    assert client.wait_for_server(timeout_sec=10)
    feedback: list = []

    def send(name: str):
        goal_msg = ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_NAMED, goal_name=name)
        fut = client.send_goal_async(goal_msg, feedback_callback=lambda f: feedback.append(f.feedback))
        wait_for(fut.done, 10, "goal acceptance")
        return fut.result()

    handle = send("abcd")
    assert handle.accepted
    res_future = handle.get_result_async()
    wait_for(res_future.done, 15, "ReachGoal result")
    result = res_future.result().result
    assert result.success and result.reason == "reached" and result.steps == 4
    assert [f.step for f in feedback][-1] == 4

    handle = send("a" * 100)
    wait_for(lambda: len(feedback) >= 6, 10, "feedback of the second goal")
    cancel = handle.cancel_goal_async()
    wait_for(cancel.done, 10, "cancel response")
    res_future = handle.get_result_async()
    wait_for(res_future.done, 10, "result of the cancelled goal")
    assert res_future.result().result.reason == "canceled"
    assert res_future.result().result.steps < 100

    # A malformed goal is rejected, not executed.
    rejected = client.send_goal_async(ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE))
    wait_for(rejected.done, 10, "rejection")
    assert not rejected.result().accepted

    assert peer.poll() is None, f"peer died: see {peer.log_path}"
    assert ros_procs.stop(peer) in (0, -2, 130), f"peer did not stop cleanly: see {peer.log_path}"
