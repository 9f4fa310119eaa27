"""The composed agent's in-process hand-off of latents (perception -> actor): used when both nodes share the
process, and each camera frame still yields exactly one command (the middleware's twin copy is dropped).
Real processes: the lockstep sim, and perception + actor + configurator composed in one."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from jepa_common.processes import wait_for

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "models" / "two_rooms"
PARAMS = REPO / "config" / "agent.yaml"

pytestmark = [pytest.mark.ros, pytest.mark.slow]

if not (BUNDLE / "manifest.json").exists():
    pytest.skip(f"the shipped bundle {BUNDLE} is missing", allow_module_level=True)


def test_one_command_per_frame_with_the_in_process_hand_off(ros_env, tmp_path) -> None:
    from geometry_msgs.msg import TwistStamped

    from jepa_common.processes import NodeProcesses
    from jepa_common.ros_common import reliable_qos
    from jepa_planner.composed import start_composed
    from jepa_planner.demo import NODES, DemoClient

    agent = ["perception", "actor", "configurator"]
    overrides = {name: {"bundle": str(BUNDLE)} for name in agent}
    overrides["sim"] = {"mode": "lockstep", "seed": 11}
    overrides["configurator"]["max_steps"] = 60
    procs = NodeProcesses(tmp_path, PARAMS, overrides)
    procs.start("sim", NODES["sim"])
    start_composed(procs, agent)
    client = DemoClient("two_rooms", {"goal_in_other_room": True})
    stamps: Counter = Counter()
    lock = threading.Lock()

    def on_command(msg: TwistStamped) -> None:
        with lock:
            stamps[(msg.header.stamp.sec, msg.header.stamp.nanosec)] += 1

    try:
        client.node.create_subscription(TwistStamped, "cmd_vel_stamped", on_command, reliable_qos(100))
        client.wait_ready(procs, 120)
        wait_for(lambda: client.node.count_publishers("cmd_vel_stamped") >= 1, 30, "the actor's commands", procs)
        rec = client.run_episode(11, time_limit=60, record=False)
        assert rec.steps > 10, rec
        assert procs.dead() == []
    finally:
        client.close()
        procs.stop()
    log = (Path(procs.log_dir) / "agent.log").read_text()
    assert "latents arrive by the in-process hand-off from perception" in log, log[-2000:]
    with lock:
        doubled = {k: n for k, n in stamps.items() if n > 1}
    # the zero commands of goal changes carry the clock's stamp, not a frame's: at most a couple may coincide
    assert sum(stamps.values()) >= rec.steps and len(doubled) <= 2, f"commands per frame stamp > 1: {doubled}"
