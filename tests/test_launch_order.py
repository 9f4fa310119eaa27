"""The agent started the way ``ros2 launch`` starts it: every node at once, in any order, on sim time.

``ros2 launch jepa_planner agent_sim.launch.py`` forks all nodes together, so the sim's first
observation goes out while perception is still loading its model, and the agent's nodes follow
``/clock``, which only the lockstep sim advances. The first ReachGoal must still be reached, without
a reset of the world first (the demo resets before each task; an operator does not). Ctrl-C
during a task (SIGINT to every process, as the launch service and the terminal send it) ends every
process with exit code 0 within 3 s, the launch's grace time being 5 s.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest

from jepa_common.processes import wait_for

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "models" / "two_rooms"
PARAMS = REPO / "config" / "agent.yaml"
AGENT = ("perception", "world_model", "actor", "configurator", "cost", "memory")

pytestmark = [pytest.mark.ros, pytest.mark.slow]

if not (BUNDLE / "manifest.json").exists():
    pytest.skip(f"the shipped bundle {BUNDLE} is missing", allow_module_level=True)


def stop_all_within(procs, seconds: float) -> dict[str, tuple[float, int | None]]:
    """SIGINT to every process at once; each one's exit time (s) and code."""
    start = time.monotonic()
    for proc in procs.procs.values():
        proc.send_signal(signal.SIGINT)
    exits: dict[str, tuple[float, int | None]] = {}
    while len(exits) < len(procs.procs) and time.monotonic() - start < seconds + 10:
        for name, proc in procs.procs.items():
            if name not in exits and proc.poll() is not None:
                exits[name] = (time.monotonic() - start, proc.returncode)
        time.sleep(0.01)
    return exits


@pytest.mark.parametrize("order", ["sim_first", "sim_last", "composed"])
def test_first_goal_is_reached_when_all_nodes_start_at_once(ros_env, tmp_path, order: str) -> None:
    from jepa_common.processes import NodeProcesses
    from jepa_interfaces.action import ReachGoal
    from jepa_planner.composed import start_composed
    from jepa_planner.demo import NODES, DemoClient

    # As agent_sim.launch.py: the shipped params file, the bundle, the agent on sim time, the sim on the wall clock.
    overrides = {name: {"bundle": str(BUNDLE), "use_sim_time": True} for name in AGENT}
    del overrides["memory"]["bundle"]  # memory has no bundle parameter (unknown parameters are refused)
    overrides["sim"] = {"use_sim_time": False, "seed": 100}
    overrides["memory"] = {"use_sim_time": True, "record_dir": str(tmp_path / "memory")}  # memory loads no bundle
    procs = NodeProcesses(tmp_path, PARAMS, overrides)
    if order == "composed":  # the sim and one process with every agent node (composed:=true)
        start_composed(procs, list(AGENT))
        procs.start("sim", NODES["sim"])
    else:
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
        assert any(client.world.state_success(goal_state, s) for s in client.states), (
            f"first goal not reached ({outcome.reason} after {outcome.steps} steps; closest {closest:.2f} px)"
        )
        assert procs.dead() == []
        if order == "composed":  # the actor took perception's latents in-process (LOCAL_TOPICS), not over DDS
            assert "latents in-process" in (tmp_path / "agent.log").read_text()

        # Ctrl-C during the next task (a new episode: a goal elsewhere): every process ends cleanly within 3 s
        from std_srvs.srv import Trigger

        client.goal_seen.clear()
        assert client.call(client.reset_client, Trigger.Request(), 30).success
        assert client.goal_seen.wait(30), "no goal image after the reset"
        send = client.action.send_goal_async(
            ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE, goal_image=client.goal_msg, time_limit=150.0)
        )
        wait_for(send.done, 30, "second goal acceptance", procs)
        time.sleep(2.0)
        exits = stop_all_within(procs, 3.0)
        print(f"Ctrl-C: exit (s, code) per process: {exits}")
        slow = {name: exit for name, exit in exits.items() if exit[0] > 3.0 or exit[1] != 0}
        assert len(exits) == len(procs.procs) and not slow, f"exit (s, code) per process: {exits}"
    finally:
        client.close()
        procs.stop()
