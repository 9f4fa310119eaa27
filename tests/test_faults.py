"""Fault injection over real ROS processes: the robot stops on every critical-path failure, no single message
kills a node, parameters apply live or are refused, lifecycle nodes cycle, and the memory node loses no episode.

Timings are measured and printed, never asserted tightly (a loaded CI machine is slow); the bounds
below only catch "never" (bench/bench_faults.py records the figures).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jepa_common.processes import wait_for
from jepa_planner.demo import NODES

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "models" / "two_rooms"
PARAMS = REPO / "config" / "agent.yaml"

pytestmark = [pytest.mark.ros, pytest.mark.slow]

if not (BUNDLE / "manifest.json").exists():
    pytest.skip(f"the shipped bundle {BUNDLE} is missing", allow_module_level=True)

MANIFEST = json.loads((BUNDLE / "manifest.json").read_text())
LATENT_SHAPE = tuple(MANIFEST["latent_shape"])


def start_nodes(tmp_path: Path, names: list[str], extra: dict | None = None):
    """The named nodes as processes with the shipped params file and bundle; returns NodeProcesses."""
    from jepa_common.processes import NodeProcesses

    overrides = {name: {"bundle": str(BUNDLE)} for name in names if name not in ("sim", "memory")}
    overrides["sim"] = {"mode": "lockstep", "seed": 99}
    overrides.setdefault("configurator", {})["max_steps"] = 100000
    overrides["configurator"]["default_time_limit"] = 600.0
    for name, values in (extra or {}).items():
        overrides.setdefault(name, {}).update(values)
    procs = NodeProcesses(tmp_path, PARAMS, overrides)
    for name in names:
        procs.start(name, NODES[name])
    return procs


class Commands:
    """cmd_vel as (receipt time, vx, vy)."""

    def __init__(self, node) -> None:
        from geometry_msgs.msg import Twist

        self.items: list[tuple[float, float, float]] = []
        node.create_subscription(Twist, "cmd_vel", lambda m: self.items.append((time.monotonic(), m.linear.x, m.linear.y)), 100)

    def last_is_zero(self) -> bool:
        return bool(self.items) and self.items[-1][1:] == (0.0, 0.0)

    def nonzero_after(self, t: float) -> int:
        return sum(1 for ts, x, y in self.items if ts > t and (x, y) != (0.0, 0.0))

    def zero_after(self, t: float, timeout: float) -> float:
        """Seconds from ``t`` to the first zero command after it (the robot stopped)."""
        found: list[float] = []

        def seen() -> bool:
            found[:] = [ts for ts, x, y in self.items if ts >= t and (x, y) == (0.0, 0.0)][:1]
            return bool(found)

        wait_for(seen, timeout, "a zero command")
        return found[0] - t


@pytest.fixture
def agent(ros_env, tmp_path):
    """sim (lockstep) + perception + actor + configurator, and a demo client."""
    from jepa_planner.demo import DemoClient

    procs = start_nodes(tmp_path, ["sim", "perception", "actor", "configurator"])
    client = DemoClient("two_rooms", {"goal_in_other_room": True})
    try:
        client.wait_ready(procs, 120)
        for name, line in (("actor", "actor ready"), ("perception", "loaded bundle")):  # the action server may be up first
            wait_for(lambda n=name, t=line: t in (tmp_path / f"{n}.log").read_text(), 120, f"{name} ready")
        wait_for(lambda: client.node.count_publishers("cmd_vel") >= 1, 60, "the actor's cmd_vel")
        time.sleep(1.0)  # the test's own subscriptions match
        yield procs, client
    finally:
        client.close()
        procs.stop()


def send_goal(client, goal, timeout: float = 20.0):
    fut = client.action.send_goal_async(goal)
    wait_for(fut.done, timeout, "goal response")
    return fut.result()


def start_valid_goal(client, commands: Commands):
    """Reset the world, send its goal image and wait until the robot moves; returns the goal handle. The goal's
    tolerance is too tight to ever be met (1e-6), so the task runs until the fault under test ends it: a goal near its
    start can otherwise be reached within the half second a fault takes."""
    from std_srvs.srv import Trigger

    from jepa_interfaces.action import ReachGoal

    client.goal_seen.clear()
    client.call(client.reset_client, Trigger.Request(), 20)
    wait_for(client.goal_seen.is_set, 20, "goal image")
    handle = send_goal(client, ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE, goal_image=client.goal_msg, tolerance=1e-6))
    assert handle.accepted
    t0 = time.monotonic()
    wait_for(lambda: commands.nonzero_after(t0) >= 3, 60, "the robot driving toward the goal")
    return handle


def result_of(handle, timeout: float = 20.0):
    fut = handle.get_result_async()
    wait_for(fut.done, timeout, "goal result")
    return fut.result().result


def parameter_setter(client, node_name: str):
    """The test's one SetParameters client for a node, made on first use and kept.

    Make it well before its first call: a client made just before a call can see the server before the server
    has discovered it, and Fast DDS then drops the response ("client will not receive response").
    """
    from rcl_interfaces.srv import SetParameters

    setters = client.__dict__.setdefault("_test_setters", {})
    if node_name not in setters:
        setters[node_name] = client.node.create_client(SetParameters, f"{node_name}/set_parameters")
    return setters[node_name]


def set_param(client, node_name: str, name: str, value):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    setter = parameter_setter(client, node_name)
    if isinstance(value, float):
        pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
    else:
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    return client.call(setter, SetParameters.Request(parameters=[Parameter(name=name, value=pv)]), 20).results[0]


def test_invalid_preempts_stop_the_robot_and_params_apply_live(agent) -> None:
    from sensor_msgs.msg import Image

    from jepa_interfaces.action import ReachGoal
    from jepa_interfaces.msg import AgentStatus

    procs, client = agent
    parameter_setter(client, "actor")  # discovered by the actor long before its first call
    commands = Commands(client.node)
    statuses: list = []
    client.node.create_subscription(AgentStatus, "actor/status", statuses.append, 10)

    # parameters: a dynamic one applies to the very next commands, a static one is refused with a reason
    handle = start_valid_goal(client, commands)
    assert set_param(client, "actor", "max_command", 0.2).successful
    t_set = time.monotonic()
    wait_for(lambda: commands.nonzero_after(t_set + 0.5) >= 3, 30, "commands after the set")
    late = [(x, y) for ts, x, y in commands.items if ts > t_set + 0.5]
    assert max(max(abs(x), abs(y)) for x, y in late) <= 0.2 / 0.1 + 1e-4  # max_command / dt, per axis
    refused = set_param(client, "actor", "trigger", "timer")
    assert not refused.successful and "read-only at run time" in refused.reason
    assert set_param(client, "actor", "max_command", 2.45).successful

    invalid = {
        "unknown name": ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_NAMED, goal_name="no_such_goal"),
        "tolerance=+inf": ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE, goal_image=client.goal_msg,
                                         tolerance=float("inf")),
        "bad image": ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE,
                                    goal_image=Image(height=32, width=32, encoding="rgb8", step=96, data=bytes(32 * 96))),
    }
    for i, (what, goal) in enumerate(invalid.items()):
        if i:
            handle = start_valid_goal(client, commands)
        t0 = time.monotonic()
        new = send_goal(client, goal)
        if new.accepted:  # a bad image is found invalid only when perception encodes it
            assert "rejected" in result_of(new).reason
        old = result_of(handle)
        assert not old.success and old.reason.startswith("preempted"), (what, old.reason)
        stop_s = commands.zero_after(t0, 10)
        time.sleep(1.5)
        assert commands.last_is_zero() and commands.nonzero_after(t0 + stop_s + 0.3) == 0, what
        wait_for(lambda: statuses and statuses[-1].mode != "mode2", 5, "actor status no longer mode2")
        print(f"invalid preempt ({what}): zero command after {stop_s:.2f} s; old goal: {old.reason}")

    # SIGKILL of the configurator mid-goal: the goal lease runs out, the actor stops the robot
    start_valid_goal(client, commands)
    os.kill(procs.procs["configurator"].pid, signal.SIGKILL)
    t0 = time.monotonic()
    stop_s = commands.zero_after(t0, 10)
    time.sleep(2.0)
    assert commands.last_is_zero() and commands.nonzero_after(t0 + stop_s + 0.3) == 0
    print(f"configurator SIGKILL: zero command after {stop_s:.2f} s")
    assert procs.dead() == ["configurator"]


def test_dead_perception_or_actor_aborts_the_goal(agent) -> None:
    procs, client = agent
    commands = Commands(client.node)
    handle = start_valid_goal(client, commands)
    os.kill(procs.procs["perception"].pid, signal.SIGKILL)
    t0 = time.monotonic()
    stop_s = commands.zero_after(t0, 10)
    result = result_of(handle, 20)
    abort_s = time.monotonic() - t0
    assert "perception" in result.reason and not result.success, result.reason
    print(f"perception SIGKILL: zero command after {stop_s:.2f} s, goal ended after <= {abort_s:.2f} s: {result.reason}")

    procs.start("perception", NODES["perception"])  # back up, then the actor dies mid-goal
    log = procs.log_dir / "perception.log"
    wait_for(lambda: "loaded bundle" in log.read_text(), 180, "perception back")
    time.sleep(2.0)  # discovery of the new process
    handle = start_valid_goal(client, commands)
    os.kill(procs.procs["actor"].pid, signal.SIGKILL)
    t0 = time.monotonic()
    result = result_of(handle, 30)
    assert "actor" in result.reason and not result.success, result.reason
    print(f"actor SIGKILL: goal ended after <= {time.monotonic() - t0:.2f} s: {result.reason}")

    # Ctrl-C of the actor mid-goal (an operator stopping it): its last command is a zero one, it exits with 0
    procs.start("actor", NODES["actor"])
    log = procs.log_dir / "actor.log"
    wait_for(lambda: "actor ready" in log.read_text(), 180, "actor back")
    time.sleep(2.0)  # discovery of the new process
    handle = start_valid_goal(client, commands)
    procs.procs["actor"].send_signal(signal.SIGINT)
    t0 = time.monotonic()
    assert procs.procs["actor"].wait(10) == 0, log.read_text()[-2000:]
    time.sleep(0.5)  # the last command's delivery
    assert commands.last_is_zero() and commands.nonzero_after(time.monotonic() - 0.5) == 0
    result = result_of(handle, 30)
    assert "actor" in result.reason and not result.success, result.reason
    print(f"actor Ctrl-C: exit 0 after {time.monotonic() - t0:.2f} s, last command zero; goal: {result.reason}")


def test_no_single_message_kills_a_node(ros_env, tmp_path, rclpy_node) -> None:
    """Malformed messages on every input of every node; afterwards every node is alive and still works."""
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float32, Header, String

    from jepa_interfaces.msg import AgentStatus, CostReport, LatentState, Plan
    from jepa_interfaces.srv import EncodeImage, RolloutLatents

    names = ["perception", "world_model", "actor", "configurator", "cost", "memory"]
    procs = start_nodes(tmp_path, names, {"memory": {"record_dir": str(tmp_path / "rec")}})
    try:
        node = rclpy_node
        rollout = node.create_client(RolloutLatents, "rollout_latents")
        encode = node.create_client(EncodeImage, "encode_image")
        for client in (rollout, encode):
            wait_for(lambda c=client: c.service_is_ready() or procs.dead(), 180, f"{client.srv_name}")
        wait_for(lambda: node.count_subscribers("plan") >= 2 and node.count_subscribers("goal_latent") >= 3
                 and node.count_subscribers("critic_updated") >= 1, 120, "all subscribers")
        assert procs.dead() == []

        def latent(shape, data, model_id=""):
            msg = LatentState(model_id=model_id, shape=list(shape))
            msg.data = np.asarray(data, np.float32)
            return msg

        n = int(np.prod(LATENT_SHAPE))
        good = latent(LATENT_SHAPE, np.zeros(n))
        bad_latents = [
            latent([3], [1.0, 2.0, 3.0]),
            latent(LATENT_SHAPE, np.full(n, np.nan)),
            latent(LATENT_SHAPE, np.zeros(n - 1)),
            latent([1_000_000], np.zeros(4)),
            latent([], np.zeros(n)),
            latent(LATENT_SHAPE, np.zeros(n), model_id="another_model"),
            latent([0, 5], np.zeros(n)),
            latent([65536, 65536], np.zeros(n)),
        ]
        not_a_critic = tmp_path / "not_a_critic.pt"
        not_a_critic.write_bytes(b"\x80\x04garbage that is not a checkpoint")
        plan_bad = []
        for shape, values in (([4, 2], np.zeros(5)), ([4, 3], np.zeros(12)), ([], np.zeros(2)), ([4, 2], np.full(8, np.nan)),
                              ([0, 2], np.zeros(0))):
            p = Plan(level=0, action_shape=shape, total_cost=float("nan"))
            p.actions = np.asarray(values, np.float32)
            plan_bad.append(p)
        cases: dict[tuple[type, str], list] = {
            (LatentState, "latent"): bad_latents,
            (LatentState, "goal_latent"): [*bad_latents, good],
            (LatentState, "subgoal_latent"): bad_latents,
            (Header, "goal_lease"): [Header(frame_id="x" * 1000)],
            (String, "profile"): [String(data="no_such_profile"), String(data="")],
            (String, "critic_updated"): [String(data=str(not_a_critic)), String(data=str(BUNDLE / "manifest.json")),
                                          String(data=str(BUNDLE / "model.pt")), String(data="/nonexistent/critic.pt"),
                                          String(data="")],
            (Twist, "cmd_vel"): [Twist(), Twist()],
            (CostReport, "cost"): [CostReport(intrinsic=float("nan"), total=float("inf"))],
            (Plan, "plan"): plan_bad,
            (AgentStatus, "actor/status"): [AgentStatus(planning_rate=float("nan"), mode="x" * 10000)],
            (Float32, "perception/rate"): [Float32(data=float("nan"))],
            (Image, "camera/image_raw"): [Image(height=64, width=64, encoding="rgb8", step=192, data=bytes(10)),
                                          Image(height=100000, width=100000, encoding="rgb8", step=1, data=bytes(3)),
                                          Image(height=64, width=64, encoding="weird", step=192, data=bytes(64 * 192))],
        }
        nan_twist = cases[(Twist, "cmd_vel")]
        nan_twist[0].linear.x = float("nan")
        nan_twist[1].linear.y = float("inf")
        from jepa_common.ros_common import latched_qos, reliable_qos, sensor_qos

        pubs = {}
        for (msg_type, topic) in cases:
            qos = (latched_qos() if topic in ("goal_latent", "profile") else sensor_qos() if topic == "camera/image_raw"
                   else reliable_qos(50))
            pubs[topic] = node.create_publisher(msg_type, topic, qos)
        wait_for(lambda: all(p.get_subscription_count() >= 1 for p in pubs.values()), 60,
                 "subscribers on every input")
        # a valid goal and latent first, so that the checks behind them (plans, costs, surprise) are reached
        pubs["goal_latent"].publish(good)
        for _ in range(3):
            pubs["latent"].publish(good)
            time.sleep(0.1)
        sent = 0
        for _round in range(2):
            for (_t, topic), messages in cases.items():
                for msg in messages:
                    pubs[topic].publish(msg)
                    sent += 1
                    time.sleep(0.01)
        time.sleep(2.0)
        assert procs.dead() == [], f"killed by a message: {procs.dead()}"
        # every node still works
        req = EncodeImage.Request(image=Image(height=64, width=64, encoding="rgb8", step=192, data=bytes(64 * 192)))
        assert _call(encode, req).success
        roll = RolloutLatents.Request(context=[good], action_shape=[1, 2, 4], level=0, return_latents=True)
        roll.actions = np.zeros(8, np.float32)
        answer = _call(rollout, roll)
        assert answer.success or "action" in answer.message
        bad_roll = RolloutLatents.Request(context=[latent([3], [1, 2, 3])], action_shape=[1, 1, 2])
        assert not _call(rollout, bad_roll).success
        assert procs.dead() == []
        logs = {name: (tmp_path / f"{name}.log").read_text() for name in names}
        for name, text in logs.items():
            assert "Traceback" not in text, f"{name} logged a traceback:\n{text[-3000:]}"
        assert "message dropped" in logs["memory"] and "message dropped" in logs["world_model"]
        assert "not loaded" in logs["cost"]
        print(f"{sent} malformed messages on {len(cases)} topics: no node died")
    finally:
        procs.stop()


def _call(client, request, timeout: float = 30.0):
    import threading

    assert client.wait_for_service(timeout_sec=timeout)
    done = threading.Event()
    fut = client.call_async(request)
    fut.add_done_callback(lambda _f: done.set())
    assert done.wait(timeout), f"{client.srv_name} did not answer"
    return fut.result()


def test_params_file_unknown_key_and_int_for_double(ros_env, tmp_path) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    bundle: nowhere\n/**/actor:\n  ros__parameters:\n    max_comand: 1.0\n")
    out = subprocess.run([sys.executable, "-m", NODES["actor"], "--ros-args", "--params-file", str(bad)],
                         env=ros_env, capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert "/actor" in text and "'max_comand'" in text and "did you mean 'max_command'" in text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text

    ints = tmp_path / "ints.yaml"  # an int for a double is accepted; the missing bundle is then the one clear error
    ints.write_text(f"/**/actor:\n  ros__parameters:\n    stale_timeout: 2\n    max_command: 1\n    bundle: {tmp_path / 'nope'}\n")
    out = subprocess.run([sys.executable, "-m", NODES["actor"], "--ros-args", "--params-file", str(ints)],
                         env=ros_env, capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "stale_timeout" not in text and "not found" in text and "Traceback" not in text
    assert "see the error above" not in text


def _log_tail(tmp_path: Path, name: str, chars: int = 3000) -> str:
    """The last ``chars`` characters of a node process's log (what a CI failure report needs)."""
    path = tmp_path / f"{name}.log"
    return path.read_text(errors="replace")[-chars:] if path.exists() else f"({path.name} was not written)"


def _change_state_clients(node, names: list[str]) -> dict:
    """One ChangeState client per node, made before the nodes start.

    A service answers a request only once it has discovered the client's response reader; a client made just
    before its call can be ready (it sees the server) before the server sees it, and Fast DDS then drops the
    response ("failed to send response (timeout): client will not receive response"). Made early and kept,
    every client is discovered long before its first call.
    """
    from lifecycle_msgs.srv import ChangeState

    return {name: node.create_client(ChangeState, f"{name}/change_state") for name in names}


def _change_state(client, transition: int) -> bool:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    return _call(client, ChangeState.Request(transition=Transition(id=transition)), 120).success


def test_lifecycle_nodes_cycle_without_doubling(ros_env, tmp_path, rclpy_node) -> None:
    """deactivate -> cleanup -> configure -> activate, twice, for every lifecycle node: same subscriptions,
    publishers and timer rates afterwards, and the node still works."""
    from lifecycle_msgs.msg import Transition

    from jepa_interfaces.msg import AgentStatus
    from jepa_interfaces.srv import EncodeImage, RolloutLatents

    names = ["perception", "world_model", "actor", "configurator", "cost"]
    node = rclpy_node
    lifecycle = _change_state_clients(node, names)
    procs = start_nodes(tmp_path, names)
    try:
        encode = node.create_client(EncodeImage, "encode_image")
        rollout = node.create_client(RolloutLatents, "rollout_latents")
        wait_for(lambda: encode.service_is_ready() and rollout.service_is_ready(), 180, "services")
        wait_for(lambda: node.count_subscribers("latent") >= 4, 120, "latent subscribers")
        # every endpoint of the census up before the first one (the cost node's 'plan' subscription came up
        # after it once, on a loaded machine, and read as an extra subscription after cycling)
        wait_for(lambda: node.count_subscribers("plan") >= 2 and node.count_subscribers("goal_latent") >= 2
                 and node.count_subscribers("actor/status") >= 1 and node.count_subscribers("goal_lease") >= 1,
                 120, "all subscribers of the census")

        def census() -> dict:
            topics = ("latent", "goal_latent", "plan", "cmd_vel", "actor/status", "goal_lease", "agent_status")
            subs = {t: sorted(i.node_name for i in node.get_subscriptions_info_by_topic(t)) for t in topics}
            pubs = {t: sorted(i.node_name for i in node.get_publishers_info_by_topic(t)) for t in topics}
            return {"subs": subs, "pubs": pubs}

        def settled_census() -> dict:
            """The census once discovery has named every endpoint's node (it reports '_NODE_NAME_UNKNOWN_' before)."""
            wait_for(lambda: "_NODE_NAME_UNKNOWN_" not in json.dumps(census()), 60, "node names of every endpoint")
            return census()

        before = settled_census()
        sequence = (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_CLEANUP,
                    Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE)
        for _cycle in range(2):
            for name in names:
                for transition in sequence:
                    try:
                        ok = _change_state(lifecycle[name], transition)
                    except AssertionError as exc:  # no answer: keep the node's own account for the report
                        raise AssertionError(f"{exc}; the end of {name}.log:\n{_log_tail(tmp_path, name)}") from None
                    assert ok, f"{name}: transition {transition} failed; the end of {name}.log:\n{_log_tail(tmp_path, name)}"
        time.sleep(1.0)
        after = settled_census()
        assert after == before, f"entities changed after cycling:\nbefore {before}\nafter  {after}"
        statuses: list[float] = []
        node.create_subscription(AgentStatus, "actor/status", lambda _m: statuses.append(time.monotonic()), 50)
        time.sleep(4.5)
        assert 2 <= len(statuses) <= 6, f"{len(statuses)} actor/status messages in 4.5 s: its 1 Hz timer doubled or died"
        image = EncodeImage.Request()
        image.image.height, image.image.width, image.image.encoding, image.image.step = 64, 64, "rgb8", 192
        image.image.data = bytes(64 * 192)
        assert _call(encode, image).success
        assert procs.dead() == []
        for name in names:  # shutdown from active releases everything too
            assert _change_state(lifecycle[name], Transition.TRANSITION_ACTIVE_SHUTDOWN)
        time.sleep(0.5)
        assert procs.dead() == []
        for name in names:
            assert "Traceback" not in (tmp_path / f"{name}.log").read_text()
    finally:
        procs.stop()


def test_memory_episodes_survive_sigkill(ros_env, tmp_path, rclpy_node) -> None:
    """Each closed episode is its own readable bag at once; a SIGKILL loses only the open episode; a second
    session records beside the first and never touches its bags."""
    from geometry_msgs.msg import Twist
    from rcl_interfaces.srv import ListParameters
    from rosbags.highlevel import AnyReader

    from jepa_common.ros_common import latched_qos, reliable_qos
    from jepa_interfaces.msg import LatentState
    from jepa_planner.episode_bag import project_typestore

    record = tmp_path / "rec"
    node = rclpy_node
    goal_pub = node.create_publisher(LatentState, "goal_latent", latched_qos())
    latent_pub = node.create_publisher(LatentState, "latent", reliable_qos(50))
    cmd_pub = node.create_publisher(Twist, "cmd_vel", reliable_qos(50))
    stamp = [0]

    def latent(value: float) -> LatentState:
        stamp[0] += 1
        msg = LatentState(shape=[4])
        msg.header.stamp.sec = stamp[0]
        msg.data = np.full(4, value, np.float32)
        return msg

    publishers = (goal_pub, latent_pub, cmd_pub)
    list_params = node.create_client(ListParameters, "memory/list_parameters")

    def spinning() -> bool:
        """The memory node answers a service: its executor runs. Its subscriptions exist (and match) from
        configure on, before it spins; a goal sent then waits in a depth-1 queue and the next one replaces it."""
        future = list_params.call_async(ListParameters.Request())
        deadline = time.monotonic() + 2.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        return future.done()

    def session(kill: bool) -> None:
        # wait until each of our publishers has matched the new node's reader (a killed predecessor stays
        # matched for a while) and the new node spins
        before = [pub.get_subscription_count() for pub in publishers]
        procs = start_nodes(tmp_path, ["memory"], {"memory": {"record_dir": str(record), "critic_every": 0}})
        try:
            wait_for(lambda: all(pub.get_subscription_count() > n for pub, n in zip(publishers, before, strict=True)),
                     90, "our publishers matching the new memory node's subscriptions")
            wait_for(spinning, 60, "the new memory node to answer a service (its executor spins)")
            time.sleep(0.5)
            for episode, steps in ((1, 5), (2, 3)):
                goal_pub.publish(latent(100.0 + episode))
                time.sleep(0.3)
                for i in range(steps):
                    twist = Twist()
                    twist.linear.x = float("nan") if i == 1 else 1.0  # a NaN command is dropped, not fatal
                    cmd_pub.publish(twist)
                    latent_pub.publish(latent(float(i)))
                    time.sleep(0.05)
                time.sleep(0.3)
            goal_pub.publish(latent(200.0))  # closes episode 2
            time.sleep(0.5)
            latent_pub.publish(latent(9.0))  # the open episode 3: lost on SIGKILL, that is all
            time.sleep(1.0)
            assert procs.dead() == []
            if kill:
                os.kill(procs.procs["memory"].pid, signal.SIGKILL)
                procs.procs["memory"].wait(10)
        finally:
            procs.stop()

    def read(bag: Path) -> int:
        with AnyReader([bag], default_typestore=project_typestore()) as reader:
            conns = [c for c in reader.connections if c.topic == "latent"]
            return sum(1 for _ in reader.messages(connections=conns))

    session(kill=True)
    sessions = sorted((record / "episodes").iterdir())
    assert len(sessions) == 1
    bags = sorted(p for p in sessions[0].iterdir() if not p.name.startswith("."))
    assert [b.name for b in bags] == ["episode_0001", "episode_0002"]
    assert [read(b) for b in bags] == [5, 3]
    first = {p: p.read_bytes() for p in sessions[0].rglob("*") if p.is_file()}

    session(kill=False)
    sessions = sorted((record / "episodes").iterdir())
    assert len(sessions) == 2, "a second session records into its own directory"
    assert {p: p.read_bytes() for p in sessions[0].rglob("*") if p.is_file()} == first, "earlier bags changed"
    second = sorted(p.name for p in sessions[1].iterdir() if not p.name.startswith("."))
    assert second == ["episode_0001", "episode_0002", "episode_0003"], second  # a clean stop records the open one too


def _pids_with(text: str) -> dict[int, str]:
    """Live processes whose command line contains ``text`` (pid -> command line)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = next((ln for ln in (entry / "status").read_text().splitlines() if ln.startswith("State:")), "")
            except OSError:
                continue
            if text in cmd and "zombie" not in state:
                out[int(entry.name)] = cmd
    return out


@pytest.mark.parametrize("fault", ["node dies", "ctrl-c"])
def test_demo_ends_cleanly_on_a_dead_node_or_ctrl_c(ros_env, tmp_path, fault: str) -> None:
    """The demo, started from another directory: a node killed mid-task ends it with the node's name; Ctrl-C ends it;
    either way no node process is left behind."""
    out = tmp_path / "demo out"
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    demo_log = tmp_path / "demo.log"
    with open(demo_log, "w") as sink:
        demo = subprocess.Popen([sys.executable, "-m", "jepa_planner.demo", "--episodes", "20", "--out", str(out),
                                 "--startup-timeout", "240"], cwd=cwd, env=ros_env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        log = out / "logs" / "configurator.log"
        wait_for(lambda: (log.exists() and "goal " in log.read_text()) or demo.poll() is not None, 300, "a task running")
        assert demo.poll() is None, demo_log.read_text()
        assert len(set(_pids_with(str(out))) - {demo.pid}) == len(NODES)
        t0 = time.monotonic()
        if fault == "node dies":
            actor = next(pid for pid, cmd in _pids_with(str(out)).items() if "jepa_planner.actor_node" in cmd)
            os.kill(actor, signal.SIGKILL)
        else:
            demo.send_signal(signal.SIGINT)
        demo.wait(timeout=90)
        text = demo_log.read_text()
        print(f"demo ({fault}): ended after {time.monotonic() - t0:.1f} s with code {demo.returncode}")
        if fault == "node dies":
            assert demo.returncode == 1 and "node died: actor (killed by signal 9)" in text, text[-2000:]
        else:
            assert demo.returncode == 130 and "interrupted" in text, text[-2000:]
        assert "Traceback" not in text, text[-3000:]
        wait_for(lambda: not _pids_with(str(out)), 15, "no node process left")
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in _pids_with(str(out)):
            os.kill(pid, signal.SIGKILL)


def test_a_lost_encode_reply_is_asked_again(ros_env, tmp_path, rclpy_node) -> None:
    """A perception restarted a moment ago can be in the graph before its reply reaches the configurator (seen
    in CI after a perception SIGKILL): the configurator asks again instead of failing the goal."""
    from rclpy.action import ActionClient
    from rclpy.callback_groups import ReentrantCallbackGroup
    from sensor_msgs.msg import Image

    from jepa_interfaces.action import ReachGoal
    from jepa_interfaces.srv import EncodeImage

    requests: list[float] = []

    def encode(request, response):
        requests.append(time.monotonic())
        if len(requests) == 1:
            time.sleep(3.0)  # this reply arrives after the configurator gave up on it (like a lost one)
        response.success = True
        response.latent.shape = list(LATENT_SHAPE)
        response.latent.data = [0.0] * int(np.prod(LATENT_SHAPE))
        return response

    rclpy_node.create_service(EncodeImage, "encode_image", encode, callback_group=ReentrantCallbackGroup())
    procs = start_nodes(tmp_path, ["configurator"])
    try:
        action = ActionClient(rclpy_node, ReachGoal, "reach_goal")
        wait_for(lambda: action.wait_for_server(timeout_sec=0.5), 120, "the configurator's action server", procs)
        image = Image(height=64, width=64, encoding="rgb8", step=192, data=bytes(64 * 192))
        fut = action.send_goal_async(ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE, goal_image=image, time_limit=30.0))
        wait_for(fut.done, 20, "goal response", procs)
        assert fut.result().accepted
        log = procs.log_dir / "configurator.log"
        wait_for(lambda: "(image) with profile" in log.read_text(), 20, "the goal running", procs)
        text = log.read_text()
        assert len(requests) == 2 and "encode_image: no reply within 2 s; sending the request again" in text, text
        assert "did not answer" not in text
        cancel = fut.result().cancel_goal_async()
        wait_for(cancel.done, 20, "the cancel", procs)
        result = fut.result().get_result_async()
        wait_for(result.done, 20, "the canceled goal's result", procs)
        assert result.result().result.reason == "canceled"

        # the next goal ends with an error (no perception latents): its result still carries the reason (a goal
        # ending at another log severity than the one before it used to raise in the configurator and come
        # back empty)
        fut = action.send_goal_async(ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE, goal_image=image, time_limit=30.0))
        wait_for(fut.done, 20, "goal response", procs)
        result = fut.result().get_result_async()
        wait_for(result.done, 30, "the failing goal's result", procs)
        reason = result.result().result.reason
        assert "perception" in reason, (reason, log.read_text())
        assert "Error raised in execute callback" not in log.read_text()
    finally:
        procs.stop()


def test_a_malformed_latent_handed_over_in_process_stops_the_robot(ros_env, rclpy_node) -> None:
    """Composed with perception, the actor takes latents from a hand-off in its process instead of the
    middleware (``LOCAL_TOPICS``): a malformed one there is refused as on the topic (zero command, the node
    keeps running and accepts the next good latent)."""
    import threading

    from geometry_msgs.msg import Twist
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter

    from jepa_common.ros_common import LOCAL_TOPICS, make_executor
    from jepa_interfaces.msg import LatentState
    from jepa_planner.actor_node import ActorNode

    def latent(shape, data, model_id: str = "") -> LatentState:
        msg = LatentState(model_id=model_id, shape=list(shape))
        msg.data = np.asarray(data, np.float32)
        return msg

    node = rclpy_node
    topic = node.resolve_topic_name("latent")
    LOCAL_TOPICS.offer(topic)  # as a perception node in this process would
    actor = executor = None
    try:
        actor = ActorNode(context=node.context, parameter_overrides=[Parameter("bundle", value=str(BUNDLE))])
        executor = make_executor(2, context=node.context)
        executor.add_node(actor)
        threading.Thread(target=executor.spin, daemon=True).start()
        commands: list[tuple[float, float]] = []
        node.create_subscription(Twist, "cmd_vel", lambda m: commands.append((m.linear.x, m.linear.y)), 50)
        assert actor.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert actor.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert actor.local_latents is not None, "the actor subscribed over the middleware, not in-process"
        wait_for(lambda: node.count_publishers("cmd_vel") >= 1, 30, "the actor's cmd_vel")
        time.sleep(0.5)  # matched on both sides
        n = int(np.prod(LATENT_SHAPE))
        bad = [latent([3], [1.0, 2.0, 3.0]), latent(LATENT_SHAPE, np.full(n, np.nan)),
               latent(LATENT_SHAPE, np.zeros(n), model_id="another_model")]
        for i, msg in enumerate(bad, 1):
            before = len(commands)
            LOCAL_TOPICS.deliver(topic, msg)
            wait_for(lambda b=before: len(commands) > b, 10, f"the stop command for malformed latent {i}")
            assert commands[-1] == (0.0, 0.0)
            assert actor.latest is None  # not taken as the current state
        LOCAL_TOPICS.deliver(topic, latent(LATENT_SHAPE, np.zeros(n), model_id=MANIFEST["model_id"]))
        wait_for(lambda: actor.latest is not None, 10, "the good latent after the malformed ones")
    finally:
        LOCAL_TOPICS.withdraw(topic)
        if actor is not None:
            if executor is not None:
                executor.shutdown()
            actor.destroy_node()
