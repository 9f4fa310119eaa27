"""The node suite over real OS processes with the shipped two-rooms bundle (lockstep sim).

ReachGoal reaches fixed-seed goals in the other room; cancel stops the robot; killing perception
makes the actor stop the robot within its watchdog time; bad inputs get a clear answer and a safe
state; out-of-range parameters are refused at set time.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from jepa_common.processes import wait_for

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "models" / "two_rooms"
PARAMS = REPO / "config" / "agent.yaml"

pytestmark = [pytest.mark.ros, pytest.mark.slow]

if not (BUNDLE / "manifest.json").exists():
    pytest.skip(f"the shipped bundle {BUNDLE} is missing", allow_module_level=True)


@pytest.fixture
def agent(ros_env, tmp_path):
    """sim (lockstep) + perception + actor + configurator as separate processes, and a demo client."""
    from jepa_common.processes import NodeProcesses
    from jepa_planner.demo import NODES, DemoClient

    overrides = {name: {"bundle": str(BUNDLE)} for name in ("perception", "actor", "configurator")}
    overrides["sim"] = {"mode": "lockstep", "seed": 99}
    overrides["configurator"]["max_steps"] = 200
    procs = NodeProcesses(tmp_path, PARAMS, overrides)
    for name in ("sim", "perception", "actor", "configurator"):
        procs.start(name, NODES[name])
    client = DemoClient("two_rooms", {"goal_in_other_room": True})
    try:
        client.wait_ready(procs, 60)
        yield procs, client
    finally:
        client.close()
        procs.stop()


def test_reach_goal_cancel_and_watchdog(agent) -> None:
    from geometry_msgs.msg import Twist
    from std_srvs.srv import Trigger

    from jepa_interfaces.action import ReachGoal

    procs, client = agent
    # 1. a ReachGoal task runs to an end with a reason (success on fixed seeds: see test_reach_goal_fixed_seeds)
    rec = client.run_episode(100, time_limit=90, record=False)
    assert rec.agent_reason in ("reached", "timeout") and rec.steps > 0

    # 2. cancel stops the robot: after the cancel, the last command is zero
    commands: list[Twist] = []
    client.node.create_subscription(Twist, "cmd_vel", commands.append, 50)
    # matched before the goal: the one zero command after the cancel is not repeated, and a lockstep
    # goal can be 7 steps old within 0.1 s of its acceptance
    wait_for(lambda: client.node.count_publishers("cmd_vel") >= 1, 10, "the actor's cmd_vel publisher")
    time.sleep(0.5)
    client.call(client.reset_client, Trigger.Request(), 10)
    client.goal_seen.clear()
    wait_for(lambda: client.goal_msg is not None, 10, "goal image")
    feedback: list = []
    send = client.action.send_goal_async(
        ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE, goal_image=client.goal_msg),
        feedback_callback=lambda f: feedback.append(f.feedback))
    wait_for(send.done, 10, "goal acceptance")
    handle = send.result()
    wait_for(lambda: len(feedback) >= 3, 30, "feedback")
    cancel = handle.cancel_goal_async()
    wait_for(cancel.done, 10, "cancel")
    result = handle.get_result_async()
    wait_for(result.done, 10, "cancelled result")
    assert result.result().result.reason == "canceled"
    wait_for(lambda: commands and commands[-1].linear.x == 0.0 and commands[-1].linear.y == 0.0, 5, "a zero command after cancel")

    # 3. killing perception: the actor stops the robot within its watchdog time (stale_timeout 1 s)
    client.call(client.reset_client, Trigger.Request(), 10)
    send = client.action.send_goal_async(ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE, goal_image=client.goal_msg))
    wait_for(send.done, 10, "second goal acceptance")
    n = len(commands)
    wait_for(lambda: len(commands) > n + 3, 30, "commands toward the second goal")
    os.kill(procs.procs["perception"].pid, signal.SIGKILL)
    killed_at = time.monotonic()
    zero_at: list[float] = []

    def zero_seen() -> bool:
        if commands and commands[-1].linear.x == 0.0 and commands[-1].linear.y == 0.0:
            zero_at.append(time.monotonic())
            return True
        return False

    wait_for(zero_seen, 5, "a zero command after perception died")
    assert zero_at[0] - killed_at < 3.0  # stale_timeout (1 s) + watchdog period + transport, with margin for a busy CI
    later = len(commands)
    time.sleep(1.5)
    assert all(c.linear.x == 0.0 and c.linear.y == 0.0 for c in commands[later:])  # it keeps the robot stopped


def test_bad_inputs_get_clear_answers_and_a_safe_state(agent) -> None:
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from sensor_msgs.msg import Image

    from jepa_interfaces.action import ReachGoal
    from jepa_interfaces.srv import EncodeImage

    procs, client = agent
    node = client.node
    encode = node.create_client(EncodeImage, "encode_image")
    # made now, long before its first call: a server that has not yet discovered a new client drops its answer
    setter = node.create_client(SetParameters, "actor/set_parameters")

    # wrong size, wrong encoding, truncated data: a clear message, no latent
    cases = {
        "model expects 64x64": Image(height=32, width=32, encoding="rgb8", step=96, data=bytes(32 * 96)),
        "unsupported image encoding": Image(height=64, width=64, encoding="32FC1", step=256, data=bytes(64 * 256)),
        "bytes, expected": Image(height=64, width=64, encoding="rgb8", step=192, data=bytes(100)),
    }
    for expected, img in cases.items():
        response = client.call(encode, EncodeImage.Request(image=img), 10)
        assert not response.success and expected in response.message, response.message

    # the same bad images on the camera topic: perception drops them and keeps running
    pub = node.create_publisher(Image, "camera/image_raw", 10)
    for img in cases.values():
        pub.publish(img)
    time.sleep(0.5)
    assert procs.dead() == []

    # a goal image of the wrong size and an unknown named goal: the task ends with a reason, nothing moves
    def send(goal: ReachGoal.Goal):
        fut = client.action.send_goal_async(goal)
        wait_for(fut.done, 10, "goal response")
        return fut.result()

    handle = send(ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE, goal_image=cases["model expects 64x64"]))
    result = handle.get_result_async()
    wait_for(result.done, 15, "result of a bad goal image")
    assert not result.result().result.success and "model expects 64x64" in result.result().result.reason
    assert not send(ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_NAMED, goal_name="no_such_goal")).accepted
    bad_latent = ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_LATENT)
    bad_latent.goal_latent.shape = [3]
    bad_latent.goal_latent.data = np.array([1.0, float("nan"), 0.0], np.float32)
    handle = send(bad_latent)
    result = handle.get_result_async()
    wait_for(result.done, 15, "result of a bad goal latent")
    assert "rejected" in result.result().result.reason

    # out-of-range parameters are refused at set time, valid ones accepted (setter made at the top)
    def set_param(name: str, value: float):
        param = Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value))
        return client.call(setter, SetParameters.Request(parameters=[param]), 10).results[0]

    assert not set_param("stale_timeout", -1.0).successful
    assert not set_param("max_command", float("nan")).successful
    assert set_param("stale_timeout", 2.0).successful
    assert procs.dead() == []


def test_node_refuses_to_start_on_a_missing_bundle(ros_env, tmp_path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "jepa_perception.perception_node", "--ros-args", "-p", f"bundle:={tmp_path / 'nope'}"],
        env=ros_env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1
    assert "model bundle directory not found" in out.stdout + out.stderr


# How close "reached" is on the shipped bundle: its latent cannot tell 1 px everywhere (models/two_rooms/README.md,
# "Goal tolerance and reach precision"), so about 1 task in 15 is declared reached 1-2 px out, outside the world's
# 1 px success radius, and 1 in 25 hovers within a pixel without coming under the tolerance until the step limit
# (bench/results/tolerance_sweep_two_rooms.json). The bound for a declared reach is one full control step.


def test_reach_goal_fixed_seeds(agent) -> None:
    """Fixed-seed goals in the other room are reached over ROS (lockstep sim, the shipped bundle): the robot came
    within the world's success radius, or the agent said reached with the robot within one control step of it."""
    from jepa_planner.world_defaults import world_command_bounds

    reach_precision_px = world_command_bounds("two_rooms", {})["max_command"]  # 2.45 px
    _procs, client = agent
    for seed in (100, 101, 102):
        rec = client.run_episode(seed, time_limit=90, record=False)
        declared_near = rec.agent_reason == "reached" and rec.min_distance_px < reach_precision_px
        assert rec.success or declared_near, (
            f"seed {seed}: {rec.agent_reason} after {rec.steps} steps, closest {rec.min_distance_px:.2f} px, "
            f"final {rec.final_distance_px:.2f} px from the goal")


def test_a_goal_with_the_search_profile_is_reached_and_its_plans_say_so(agent) -> None:
    """A ReachGoal naming ``flat_cem_search``: the actor plans with the latent search in front of CEM (its plans
    are published as ``search+cem``) and reaches the goal in the other room."""
    from std_srvs.srv import Trigger

    from jepa_interfaces.action import ReachGoal
    from jepa_interfaces.msg import Plan

    _procs, client = agent
    plans: list = []
    client.node.create_subscription(Plan, "plan", plans.append, 50)
    wait_for(lambda: client.node.count_publishers("plan") >= 1, 10, "the actor's plan publisher")
    client.call(client.reset_client, Trigger.Request(), 10)
    client.goal_seen.clear()
    wait_for(lambda: client.goal_msg is not None, 10, "goal image")
    # tolerance 0.01 rather than the bundle's 0.006: with it about 1 task in 20 hovers within a pixel of the goal
    # until the time limit, this one among them (models/two_rooms/README.md, "Goal tolerance"); this test is about
    # the search profile driving the robot there
    send = client.action.send_goal_async(
        ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE, goal_image=client.goal_msg, profile="flat_cem_search",
                       time_limit=60.0, tolerance=0.01)
    )
    wait_for(send.done, 10, "goal acceptance")
    result = send.result().get_result_async()
    wait_for(result.done, 90, "the search profile's result")
    assert result.result().result.reason == "reached", result.result().result
    assert "search+cem" in {p.planner for p in plans}, {p.planner for p in plans}


def test_configurator_hands_subgoals_for_hierarchical_profiles(agent) -> None:
    """A hierarchical task: the configurator plans the upper levels and publishes subgoal latents
    (stamped like the latents they were planned from) until the task ends, then clears them."""
    from std_srvs.srv import Trigger

    from jepa_interfaces.action import ReachGoal
    from jepa_interfaces.msg import LatentState

    _procs, client = agent
    subgoals: list = []
    latent_stamps: set = set()
    client.node.create_subscription(LatentState, "subgoal_latent", subgoals.append, 50)
    client.node.create_subscription(
        LatentState, "latent", lambda m: latent_stamps.add((m.header.stamp.sec, m.header.stamp.nanosec)), 50
    )
    client.call(client.reset_client, Trigger.Request(), 10)
    client.goal_seen.clear()
    wait_for(lambda: client.goal_msg is not None, 10, "goal image")
    send = client.action.send_goal_async(
        ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE, goal_image=client.goal_msg, profile="hierarchical")
    )
    wait_for(send.done, 10, "goal acceptance")
    handle = send.result()
    wait_for(lambda: len([s for s in subgoals if len(s.data)]) >= 3, 60, "three subgoals")
    handed = [s for s in subgoals if len(s.data)]
    shape = json.loads((BUNDLE / "manifest.json").read_text())["latent_shape"]
    assert all(list(s.shape) == shape and np.isfinite(np.asarray(s.data)).all() for s in handed)
    # each subgoal carries the stamp of a latent it was planned from. The test sees only some latents: its
    # subscription may match after the first ones went out, and perception publishes with depth 1, so under
    # load a latent the configurator got can be overwritten before this process takes it. Stamps made up by
    # the configurator (its own clock) would match none.
    stamps = [(s.header.stamp.sec, s.header.stamp.nanosec) for s in handed]
    wait_for(lambda: max(latent_stamps) >= max(stamps), 10, "the latents the subgoals were planned from")
    first_seen, last_seen = min(latent_stamps), max(latent_stamps)
    stamps = [t for t in stamps if t >= first_seen]
    matched = [t for t in stamps if t in latent_stamps]
    assert stamps and all(t <= last_seen for t in stamps)
    assert len(matched) >= max(1, round(0.75 * len(stamps))), f"{len(matched)} of {len(stamps)} subgoal stamps are latent stamps"
    cancel = handle.cancel_goal_async()
    wait_for(cancel.done, 10, "cancel")
    wait_for(lambda: len(subgoals[-1].data) == 0, 10, "the subgoal cleared at the end of the task")
