"""The configurator over real ROS 2 judges "reached" with the bundle's own goal tolerance.

A bundle whose latent moves less per pixel (models/two_rooms: 0.025 per px against 0.056 for
models/two_rooms_fixed_door) carries a tighter ``goal.tolerance`` (0.006); with ``default_tolerance`` 0 (the params
file's) the configurator uses it, and a live ``default_tolerance`` overrides it. The latents are placed at
an exact normalised distance from the goal (every element ``d`` standard deviations away: RMS ``d``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from jepa_common.processes import wait_for
from jepa_world_model.bundle import read_manifest

REPO = Path(__file__).resolve().parents[3]
BUNDLE = REPO / "models" / "two_rooms"

pytestmark = [pytest.mark.ros, pytest.mark.slow]

if not (BUNDLE / "manifest.json").exists():
    pytest.skip(f"the shipped bundle {BUNDLE} is missing", allow_module_level=True)


def test_bundle_tolerance_applies_and_a_live_parameter_overrides_it(ros_procs, rclpy_node) -> None:
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.action import ActionClient

    from jepa_interfaces.action import ReachGoal
    from jepa_interfaces.msg import LatentState

    manifest = read_manifest(BUNDLE)
    assert manifest["goal"]["tolerance"] == pytest.approx(0.006)
    shape, std = manifest["latent_shape"], np.asarray(manifest["latent_std"], np.float32)
    goal_z = np.asarray(manifest["latent_mean"], np.float32)
    proc = ros_procs.run("jepa_planner.configurator_node", "--ros-args", "-p", f"bundle:={BUNDLE}",
                         "-p", "plan_subgoals:=false", "-p", "default_time_limit:=120.0")
    node = rclpy_node
    latent_pub = node.create_publisher(LatentState, "latent", 10)
    client = ActionClient(node, ReachGoal, "reach_goal")
    setter = node.create_client(SetParameters, "configurator/set_parameters")
    wait_for(lambda: client.server_is_ready() and latent_pub.get_subscription_count() > 0
             and setter.service_is_ready(), 60, "the configurator", proc)
    wait_for(lambda: "goal tolerance 0.006 (the bundle's)" in Path(proc.log_path).read_text(), 10,
             "the configurator to report the bundle's tolerance", proc)
    stamp = [0]

    def publish_at(distance: float) -> None:
        stamp[0] += 100_000_000
        z = goal_z + distance * std
        msg = LatentState(model_id=manifest["model_id"], shape=shape, data=z.tolist())
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp[0], 1_000_000_000)
        latent_pub.publish(msg)

    def run_goal(distance: float, seconds: float) -> bool:
        """Send a goal without its own tolerance, feed latents ``distance`` away: reached within ``seconds``?"""
        goal = ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_LATENT)
        goal.goal_latent = LatentState(model_id=manifest["model_id"], shape=shape, data=goal_z.tolist())
        future = client.send_goal_async(goal)
        wait_for(future.done, 20, "acceptance of the goal", proc)
        handle = future.result()
        assert handle.accepted
        result = handle.get_result_async()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not result.done():
            publish_at(distance)
            time.sleep(0.1)
        if not result.done():
            cancel = handle.cancel_goal_async()
            wait_for(lambda: cancel.done() and result.done(), 20, "the goal to end on cancel", proc)
            return False
        return bool(result.result().result.success)

    assert not run_goal(0.02, 3.0), "0.02 is outside the bundle's 0.006: not reached"
    assert run_goal(0.005, 20.0), "0.005 is inside the bundle's 0.006: reached"
    value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=0.03)
    reply = setter.call_async(SetParameters.Request(parameters=[Parameter(name="default_tolerance", value=value)]))
    wait_for(reply.done, 10, "the parameter change", proc)
    assert reply.result().results[0].successful
    assert run_goal(0.02, 20.0), "a live default_tolerance 0.03 overrides the bundle's: reached at 0.02"
