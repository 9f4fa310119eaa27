"""Plan displays over real ROS processes: during a goal the actor fills ``Plan.predicted_positions`` and
publishes ``plan_path`` and ``candidates`` (the N best candidate rollouts) in the odometry frame, at a
bounded rate; and a bad bundle makes every bundle-loading node log the one line that says why.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from jepa_common.processes import wait_for
from jepa_planner.demo import NODES as DEMO_NODES

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "models" / "two_rooms"
PARAMS = REPO / "config" / "agent.yaml"
SHOWN = 4
DISPLAY_RATE = 2.0

pytestmark = [pytest.mark.ros, pytest.mark.slow]

if not (BUNDLE / "manifest.json").exists():
    pytest.skip(f"the shipped bundle {BUNDLE} is missing", allow_module_level=True)


def test_plan_path_candidates_and_predicted_positions_during_a_goal(ros_env, tmp_path) -> None:
    from nav_msgs.msg import Odometry
    from nav_msgs.msg import Path as PathMsg
    from visualization_msgs.msg import Marker, MarkerArray

    from jepa_common.processes import NodeProcesses
    from jepa_interfaces.msg import Plan
    from jepa_planner.demo import DemoClient

    overrides = {name: {"bundle": str(BUNDLE)} for name in ("perception", "actor", "configurator")}
    overrides["actor"].update(max_candidates_shown=SHOWN, display_rate=DISPLAY_RATE)
    overrides["sim"] = {"mode": "lockstep", "seed": 7}
    overrides["configurator"]["max_steps"] = 120
    procs = NodeProcesses(tmp_path, PARAMS, overrides)
    for name in ("sim", "perception", "actor", "configurator"):
        procs.start(name, DEMO_NODES[name])
    client = DemoClient("two_rooms", {"goal_in_other_room": True})
    got: dict[str, list] = {"plan": [], "plan_path": [], "candidates": [], "odom": []}
    lock = threading.Lock()

    def keep(key: str):
        def cb(msg) -> None:
            with lock:
                got[key].append(msg)
        return cb

    try:
        node = client.node
        node.create_subscription(Plan, "plan", keep("plan"), 50)
        node.create_subscription(PathMsg, "plan_path", keep("plan_path"), 50)
        node.create_subscription(MarkerArray, "candidates", keep("candidates"), 50)
        node.create_subscription(Odometry, "odom", keep("odom"), 50)
        client.wait_ready(procs, 90)
        # our subscriptions match the actor's publishers before the goal (a lockstep goal can be over in 1 s)
        wait_for(lambda: all(node.count_publishers(t) >= 1 for t in ("plan", "plan_path", "candidates")), 60,
                 "the actor's plan displays", procs)
        time.sleep(1.0)
        start = time.monotonic()
        # a lockstep goal can be over in under a second (fewer than 2 displays at display_rate): run further
        # episodes until the displays seen include at least 3 candidates messages
        for episode in range(4):
            rec = client.run_episode(7 + episode, time_limit=90, record=False)
            assert rec.steps > 0, rec
            time.sleep(1.0)  # the last displays in flight
            with lock:
                if len(got["candidates"]) >= 3:
                    break
        elapsed = time.monotonic() - start
    finally:
        client.close()
        procs.stop()
    with lock:
        plans, paths, cands, odom = (list(got[k]) for k in ("plan", "plan_path", "candidates", "odom"))

    # Plan.predicted_positions: one position per planned step, in the odometry frame, inside the world
    assert plans, "no plan messages"
    for p in plans:
        assert p.header.frame_id == "map" and len(p.predicted_positions) == p.action_shape[0]
    pts = np.array([[q.x, q.y] for p in plans for q in p.predicted_positions])
    assert np.isfinite(pts).all() and pts.min() > -10 and pts.max() < 74  # px of the 64 px world (+ readout error)

    # plan_path: the path starts near where odometry says the robot is (same frame and units)
    assert paths, "no plan_path messages"
    assert all(p.header.frame_id == odom[0].header.frame_id == "map" for p in paths)
    assert all(len(p.poses) >= 2 for p in paths)
    odo = np.array([[o.pose.pose.position.x, o.pose.pose.position.y] for o in odom])
    starts = np.array([[p.poses[0].pose.position.x, p.poses[0].pose.position.y] for p in paths])
    nearest = np.min(np.linalg.norm(starts[:, None] - odo[None], axis=-1), axis=1)
    print(f"plans {len(plans)}, plan_path {len(paths)}, candidates {len(cands)} in {elapsed:.1f} s; "
          f"path start to nearest odometry: median {np.median(nearest):.2f} px, max {nearest.max():.2f} px")
    assert np.median(nearest) < 6.0, nearest  # px: the readout's held-out RMSE is about 2-3 px

    # candidates: previous markers cleared, then the plan and exactly max_candidates_shown rollouts (the
    # planner keeps candidates from the first replan after someone subscribed: the first may show the plan only)
    assert len(cands) >= 2, "fewer than 2 candidates messages"
    for i, arr in enumerate(cands):
        assert arr.markers[0].action == Marker.DELETEALL
        strips = [m for m in arr.markers[1:] if m.type == Marker.LINE_STRIP]
        assert len(strips) in ((1, 1 + SHOWN) if i == 0 else (1 + SHOWN,)), (i, len(strips))
        assert all(len(m.points) >= 2 and m.header.frame_id == "map" for m in strips)

    # bounded rate: every replan publishes a plan, the displays at most display_rate per second
    assert len(paths) < len(plans), (len(paths), len(plans))
    assert len(paths) <= elapsed * DISPLAY_RATE + 1 and len(cands) <= elapsed * DISPLAY_RATE + 1


# the nodes that load a bundle (perception: onnx backend in config/agent.yaml; actor: torch)
BUNDLE_NODES = {name: DEMO_NODES[name] for name in ("perception", "actor", "configurator", "world_model", "cost")}
CASES = [(n, "no levels") for n in BUNDLE_NODES] + [("perception", "pickle"), ("actor", "pickle")]


class Payload:
    """Unpickling this creates ``marker``: what a crafted model.pt would do with arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("node_name, tamper", CASES)
def test_bad_bundle_is_one_logged_line(ros_env, tmp_path, node_name: str, tamper: str) -> None:
    """A tampered bundle: the node exits non-zero after logging one line that names what is wrong; a
    malicious checkpoint (checksum fixed up as an attacker would) is refused without running its code."""
    import torch

    from jepa_common.processes import NodeProcesses
    from jepa_world_model.bundle import sha256_of

    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLE, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    marker = tmp_path / "pwned"
    if tamper == "no levels":
        del manifest["levels"]
        expected = "field 'levels' is missing"
    else:
        state = torch.load(bundle / "model.pt", weights_only=True)
        state["meta"] = Payload(marker)
        torch.save(state, bundle / "model.pt")
        manifest["checksums"]["model.pt"] = sha256_of(bundle / "model.pt")
        expected = "refusing to unpickle"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    procs = NodeProcesses(tmp_path, PARAMS, {node_name: {"bundle": str(bundle)}})
    procs.start(node_name, BUNDLE_NODES[node_name])
    try:
        proc = procs.procs[node_name]
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is not None, f"{node_name} kept running with a bad bundle"
        assert proc.returncode != 0
    finally:
        procs.stop()
    log = (tmp_path / f"{node_name}.log").read_text()
    # one logged line names the problem; run_node's exit notice ("error: configure failed: <same reason>;
    # exiting") repeats it by design, for launch output where the log line may scroll away
    lines = [ln for ln in log.splitlines() if expected in ln and "error: configure failed:" not in ln]
    assert len(lines) == 1, log
    assert any("error: configure failed:" in ln and expected in ln for ln in log.splitlines()), log
    assert "Traceback" not in log and not marker.exists(), log
