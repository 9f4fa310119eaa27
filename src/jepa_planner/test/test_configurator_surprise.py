"""The configurator over real ROS 2 reacts to the world model's surprise alarm as the profile says.

``on_surprise: replan`` hands the goal to the actor again and keeps the task; ``on_surprise: stop``
ends the task with reason "surprise" and clears the goal (the robot stops); either way the alarm shows
in ``agent_status`` warnings.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from jepa_common.processes import wait_for

REPO = Path(__file__).resolve().parents[3]
BUNDLE = REPO / "models" / "two_rooms"

pytestmark = [pytest.mark.ros, pytest.mark.slow]

if not (BUNDLE / "manifest.json").exists():
    pytest.skip(f"the shipped bundle {BUNDLE} is missing", allow_module_level=True)


def profiles_file(tmp_path: Path) -> Path:
    level = {"level": 0, "type": "cem", "horizon": 2, "params": {"num_samples": 16, "num_elites": 4, "iterations": 1}}
    profiles = {name: {"kind": "flat", "on_surprise": action, "levels": [level]} for name, action in
                (("replanner", "replan"), ("stopper", "stop"), ("ignorer", "ignore"))}
    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump({"profiles": profiles}))
    return path


def test_replan_and_stop_on_surprise(ros_procs, rclpy_node, tmp_path: Path) -> None:
    from rclpy.action import ActionClient
    from std_msgs.msg import Bool

    from jepa_common.ros_common import latched_qos
    from jepa_interfaces.action import ReachGoal
    from jepa_interfaces.msg import AgentStatus, LatentState

    manifest = yaml.safe_load((BUNDLE / "manifest.json").read_text())
    shape = manifest["latent_shape"]
    proc = ros_procs.run("jepa_planner.configurator_node", "--ros-args", "-p", f"bundle:={BUNDLE}",
                           "-p", f"profiles_file:={profiles_file(tmp_path)}", "-p", "default_profile:=ignorer", "-p", "plan_subgoals:=false",
                           "-p", "default_time_limit:=120.0")
    node = rclpy_node
    goals: list[LatentState] = []
    statuses: list[AgentStatus] = []

    node.create_subscription(LatentState, "goal_latent", goals.append, latched_qos())
    node.create_subscription(AgentStatus, "agent_status", statuses.append, 10)
    latent_pub = node.create_publisher(LatentState, "latent", 10)
    alarm_pub = node.create_publisher(Bool, "surprise_alarm", 10)
    client = ActionClient(node, ReachGoal, "reach_goal")
    wait_for(lambda: client.server_is_ready() and alarm_pub.get_subscription_count() > 0
             and latent_pub.get_subscription_count() > 0, 60, "the configurator", proc)
    time.sleep(1.0)

    goal_z = np.asarray(manifest["latent_mean"], np.float32) + 3.0  # far from every latent published below
    stamp = [0]

    def publish_latent() -> None:
        stamp[0] += 100_000_000
        msg = LatentState(model_id=manifest["model_id"], shape=shape, data=np.asarray(manifest["latent_mean"], np.float32).tolist())
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp[0], 1_000_000_000)
        latent_pub.publish(msg)

    def send(profile: str):
        goal = ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_LATENT, profile=profile, tolerance=0.01)
        goal.goal_latent = LatentState(model_id=manifest["model_id"], shape=shape, data=goal_z.tolist())
        future = client.send_goal_async(goal)
        wait_for(future.done, 20, f"acceptance of the {profile} goal", proc)
        handle = future.result()
        assert handle.accepted
        return handle

    def with_latents(predicate, timeout: float, what: str) -> None:
        """Keep the task loop fed with latents while waiting."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            publish_latent()
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; log: {Path(proc.log_path).read_text()[-2000:]}")

    def goal_count() -> int:
        return sum(1 for g in goals if len(g.data))

    # replan: the goal is handed to the actor again and the task goes on
    handle = send("replanner")
    with_latents(lambda: goal_count() >= 1, 20, "the first goal latent")
    before = goal_count()
    alarm_pub.publish(Bool(data=True))
    with_latents(lambda: goal_count() > before, 20, "the goal handed over again (replan)")
    np.testing.assert_allclose(np.asarray(goals[-1].data), goal_z)
    result_future = handle.get_result_async()
    time.sleep(0.5)
    assert not result_future.done(), "a replan must not end the task"
    with_latents(lambda: any(any("surprise" in w for w in s.warnings) for s in statuses), 10, "the warning in agent_status")

    # stop: a new alarm (rising edge) during a stopper task ends it with reason "surprise"
    handle = send("stopper")  # preempts the replanner task
    wait_for(result_future.done, 20, "the preempted task's result")
    alarm_pub.publish(Bool(data=False))
    with_latents(lambda: goal_count() > before + 1, 20, "the stopper goal")
    result_future = handle.get_result_async()
    alarm_pub.publish(Bool(data=True))
    with_latents(result_future.done, 20, "the task to stop on surprise")
    result = result_future.result().result
    assert not result.success and result.reason == "surprise"
    wait_for(lambda: len(goals[-1].data) == 0, 10, "the goal cleared (robot stopped)")
