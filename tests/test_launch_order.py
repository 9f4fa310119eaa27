"""The agent started the way ``ros2 launch`` starts it: every node at once, in any order, on sim time.

``ros2 launch jepa_planner agent_sim.launch.py`` forks all nodes together, so the sim's first
observation goes out while perception is still loading its model, and the agent's nodes follow
``/clock``, which only the lockstep sim advances. The first ReachGoal must still be reached, without
a reset of the world first (the demo resets before each task; an operator does not).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "models" / "two_rooms"
PARAMS = REPO / "config" / "agent.yaml"
AGENT = ("perception", "world_model", "actor", "configurator", "cost", "memory")

pytestmark = [pytest.mark.ros, pytest.mark.slow]

if not (BUNDLE / "manifest.json").exists():
    pytest.skip(f"the shipped bundle {BUNDLE} is missing", allow_module_level=True)


def wait_for(predicate, timeout: float, what: str, procs=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if procs is not None and procs.dead():
            raise AssertionError(f"node(s) {procs.dead()} exited while waiting for {what}; logs in {procs.log_dir}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.parametrize("order", ["sim_first", "sim_last"])
def test_first_goal_is_reached_when_all_nodes_start_at_once(ros_env, tmp_path, order: str) -> None:
    from jepa_interfaces.action import ReachGoal
    from jepa_planner.demo import NODES, DemoClient, NodeProcesses

    # As agent_sim.launch.py: the shipped params file, the bundle, the agent on sim time, the sim on the wall clock.
    overrides = {name: {"bundle": str(BUNDLE), "use_sim_time": True} for name in AGENT}
    overrides["sim"] = {"use_sim_time": False, "seed": 100}
    overrides["memory"]["record_dir"] = str(tmp_path / "memory")
    procs = NodeProcesses(tmp_path, PARAMS, overrides)
    names = list(NODES) if order == "sim_first" else list(reversed(NODES))
    for name in names:  # no waiting between starts, like the launch service
        procs.start(name, NODES[name])
    client = DemoClient("two_rooms", {"goal_in_other_room": True})
    try:
        client.wait_ready(procs, 120)
        wait_for(lambda: client.goal_msg is not None, 30, "the sim's latched goal image", procs)
        goal_state = client.world_goal_state(100)
        send = client.action.send_goal_async(
            ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE, goal_image=client.goal_msg, time_limit=150.0)
        )
        wait_for(send.done, 30, "goal acceptance", procs)
        handle = send.result()
        assert handle.accepted
        result = handle.get_result_async()
        wait_for(result.done, 180, "the first goal's result", procs)
        outcome = result.result().result
        assert outcome.steps > 0, f"the first goal ended after 0 steps: {outcome.reason}"
        path = np.asarray(client.path, np.float64)
        closest = float(np.linalg.norm(path[:, :2] - goal_state[:2], axis=1).min())
        assert closest < client.success_radius(), (
            f"first goal not reached ({outcome.reason} after {outcome.steps} steps; closest {closest:.2f} px)"
        )
        assert procs.dead() == []
    finally:
        client.close()
        procs.stop()
