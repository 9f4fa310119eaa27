"""The world-model node's surprise alarm over real ROS 2: silent on normal motion, raised on a teleport.

The test process plays the latents and commands of a matched pair (``jepa_sim.violations``) to a
world-model node in another process, with the shipped two-rooms bundle and its calibration. The
live surprise must equal the offline definition frame by frame, stay below the alarm on the possible
episode and raise ``surprise_alarm`` (and the rviz marker) within 2 model steps of the teleport.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from jepa_common.processes import wait_for

REPO = Path(__file__).resolve().parents[3]
BUNDLE = REPO / "models" / "two_rooms"

pytestmark = [pytest.mark.ros, pytest.mark.slow]

if not (BUNDLE / "surprise_calibration.json").exists():
    pytest.skip(f"{BUNDLE} has no surprise calibration", allow_module_level=True)


def pick_pair(model, threshold: float, detector):
    """The first teleport pair whose possible episode stays well under the threshold (normal motion)."""
    from jepa_sim.violations import make_pairs
    from jepa_world_model.surprise import encode_frames

    for pair in make_pairs("two_rooms", "teleport", 20, seed=3):
        z_p = encode_frames(model, pair.possible.frames)
        z_i = encode_frames(model, pair.impossible.frames)
        s_p = detector.series(model, z_p, pair.possible.actions)
        s_i = detector.series(model, z_i, pair.impossible.actions)
        if np.nanmax(s_p) < 0.8 * threshold and np.nanmax(s_i[pair.step : pair.step + 2 * model.frameskip]) > threshold:
            return pair, (z_p, s_p), (z_i, s_i)
    raise AssertionError("no suitable teleport pair among 20")


def test_alarm_on_teleport_not_on_normal_motion(ros_procs, rclpy_node) -> None:
    from geometry_msgs.msg import Twist
    from std_msgs.msg import Bool, Float32
    from visualization_msgs.msg import Marker

    from jepa_interfaces.msg import LatentState
    from jepa_world_model.bundle import load_bundle
    from jepa_world_model.surprise import calibration_path, read_calibration

    model = load_bundle(BUNDLE, backend="torch")
    cal = read_calibration(calibration_path(BUNDLE), model.manifest)
    pair, (z_p, s_p), (z_i, s_i) = pick_pair(model, cal.threshold, cal.detector())  # the definition the node publishes
    scored_from = cal.detector().frames_needed(model) - 1  # the first frame the node can score (context, horizon, window)
    dt = 0.1
    proc = ros_procs.run("jepa_world_model.world_model_node", "--ros-args", "-p", f"bundle:={BUNDLE}",
                           "-p", "backend:=onnx", "-p", f"dt:={dt}")
    node = rclpy_node
    surprise: list[float] = []
    alarms: list[bool] = []
    markers: list = []
    node.create_subscription(Float32, "surprise", lambda m: surprise.append(m.data), 100)
    node.create_subscription(Bool, "surprise_alarm", lambda m: alarms.append(m.data), 100)
    node.create_subscription(Marker, "surprise_marker", markers.append, 10)
    latent_pub = node.create_publisher(LatentState, "latent", 10)
    cmd_pub = node.create_publisher(Twist, "cmd_vel", 10)
    wait_for(lambda: latent_pub.get_subscription_count() > 0 and cmd_pub.get_subscription_count() > 0
             and node.count_publishers("surprise_alarm") > 0, 60, "the world-model node", proc)
    time.sleep(1.0)  # discovery settles both ways
    stamp = [0]

    def play(z, actions) -> tuple[int, int]:
        """Publish latent t, then command t (none after the last frame); wait for the node's answer."""
        first = len(surprise)
        for t in range(len(z)):
            msg = LatentState(model_id=model.model_id, shape=list(z.shape[1:]), data=z[t].numpy().ravel().tolist())
            stamp[0] += 100_000_000
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp[0], 1_000_000_000)
            expected = len(surprise) + (1 if t >= scored_from else 0)
            latent_pub.publish(msg)
            if t >= scored_from:
                wait_for(lambda e=expected: len(surprise) >= e, 20, f"surprise of frame {t}", proc)
            if t < len(z) - 1:
                twist = Twist()
                twist.linear.x, twist.linear.y = (float(v) / dt for v in actions[t])
                cmd_pub.publish(twist)
            time.sleep(0.2)  # the command reaches the node before the next latent, even on a busy machine
        return first, len(surprise)

    lo, hi = play(z_p, pair.possible.actions)
    # frame t >= scored_from is scored once the commands of the frames it looks back on arrived
    np.testing.assert_allclose(surprise[lo:hi], s_p[scored_from:], rtol=1e-3, atol=1e-3)
    assert alarms[lo:hi] and not any(alarms[lo:hi]), "alarm on normal motion"
    assert not markers

    lo, hi = play(z_i, pair.impossible.actions)
    np.testing.assert_allclose(surprise[lo:hi], s_i[scored_from:], rtol=1e-3, atol=1e-3)
    raised = [i + scored_from for i, a in enumerate(alarms[lo:hi]) if a]
    assert raised, "no alarm on a teleport"
    assert pair.step <= raised[0] <= pair.step + 2 * model.frameskip, (raised, pair.step)
    wait_for(lambda: any(m.action == Marker.ADD for m in markers), 10, "the rviz marker")
    assert "SURPRISE" in next(m for m in markers if m.action == Marker.ADD).text
