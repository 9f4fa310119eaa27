"""jepa_sim.replay: a bag written by rosbags' own Writer (no project code) is played by a separate process."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy")

from jepa_sim.replay import (
    Schedule,
    UnknownMessageTypeError,
    message_class,
    parse_remaps,
    plan_topics,
    recorded_qos,
)

START_NS = 1_700_000_000_000_000_000  # a realistic wall-clock epoch stamp
STEP_NS = 50_000_000
N_POINTS, N_CHATTER = 20, 8
CUSTOM_MSG = "int32 value\n"


def write_bag(path: Path) -> None:
    """Standard-type topics plus one custom type this Python cannot import, written with rosbags only."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg(CUSTOM_MSG, "my_pkg/msg/Thing"))
    point_t = store.types["geometry_msgs/msg/PointStamped"]
    header_t = store.types["std_msgs/msg/Header"]
    time_t = store.types["builtin_interfaces/msg/Time"]
    xyz_t = store.types["geometry_msgs/msg/Point"]
    string_t = store.types["std_msgs/msg/String"]
    thing_t = store.types["my_pkg/msg/Thing"]
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        points = writer.add_connection("/points", point_t.__msgtype__, typestore=store)
        chatter = writer.add_connection("/chatter", string_t.__msgtype__, typestore=store)
        static = writer.add_connection("/calib_static", string_t.__msgtype__, typestore=store)
        custom = writer.add_connection("/custom", thing_t.__msgtype__, typestore=store)
        writer.write(static, START_NS, store.serialize_cdr(string_t(data="calibration"), string_t.__msgtype__))
        for i in range(N_POINTS):
            t = START_NS + (i + 1) * STEP_NS
            sec, nsec = divmod(t - 123, 1_000_000_000)  # header stamp differs from log time on purpose
            msg = point_t(
                header=header_t(stamp=time_t(sec=sec, nanosec=nsec), frame_id="odom"), point=xyz_t(x=float(i), y=0.0, z=0.0)
            )
            writer.write(points, t, store.serialize_cdr(msg, point_t.__msgtype__))
            writer.write(custom, t, store.serialize_cdr(thing_t(value=i), thing_t.__msgtype__))
            if i < N_CHATTER:
                writer.write(chatter, t + 1, store.serialize_cdr(string_t(data=f"hello {i}"), string_t.__msgtype__))


def test_parse_remaps_and_bad_entries() -> None:
    assert parse_remaps(["/a:=/b", "c:=/d"]) == {"/a": "/b", "c": "/d"}
    with pytest.raises(ValueError, match="old:=new"):
        parse_remaps(["/a=/b"])


def test_message_class_resolves_standard_and_names_unknown() -> None:
    from sensor_msgs.msg import Image

    assert message_class("sensor_msgs/msg/Image", "/cam") is Image
    assert message_class("sensor_msgs/Image", "/cam") is Image  # ROS 1 style names too
    with pytest.raises(UnknownMessageTypeError, match=r"/weird.*my_pkg/msg/Thing"):
        message_class("my_pkg/msg/Thing", "/weird")


def test_qos_defaults_static_and_recorded(tmp_path: Path) -> None:
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    plain = recorded_qos(object(), "/odom")
    assert plain.reliability == ReliabilityPolicy.RELIABLE and plain.depth == 10
    assert plain.durability == DurabilityPolicy.VOLATILE
    assert recorded_qos(object(), "/tf_static").durability == DurabilityPolicy.TRANSIENT_LOCAL

    zero = QosTime(0, 0)
    best_effort = Qos(
        QosHistory.KEEP_LAST,
        5,
        QosReliability.BEST_EFFORT,
        QosDurability.TRANSIENT_LOCAL,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )

    from types import SimpleNamespace

    conn = SimpleNamespace(ext=SimpleNamespace(offered_qos_profiles=[best_effort]))  # shaped like rosbags' Connection
    qos = recorded_qos(conn, "/scan")
    assert qos.reliability == ReliabilityPolicy.BEST_EFFORT and qos.durability == DurabilityPolicy.TRANSIENT_LOCAL


def test_plan_topics_skips_unknown_type_and_checks_subset(tmp_path: Path) -> None:
    from rosbags.rosbag2 import Reader

    bag = tmp_path / "bag"
    write_bag(bag)
    with Reader(bag) as reader:
        plans, _, problems = plan_topics(reader, None, {"/chatter": "/talk"})
        assert [p.topic for p in plans] == ["/calib_static", "/chatter", "/points"]
        assert {p.topic: p.out_topic for p in plans}["/chatter"] == "/talk"
        assert len(problems) == 1 and "/custom" in problems[0] and "my_pkg/msg/Thing" in problems[0]
        with pytest.raises(ValueError, match="/nope"):
            plan_topics(reader, ["/nope"], {})


def test_schedule_scales_time() -> None:
    sched = Schedule(1_000_000_000, rate=2.0)
    assert sched.wall_of(3_000_000_000) == pytest.approx(sched.wall0 + 1.0)
    with pytest.raises(ValueError, match="rate"):
        Schedule(0, rate=0.0)


@pytest.mark.ros
@pytest.mark.slow
def test_replay_process_delivers_messages_stamps_and_clock(tmp_path: Path, ros_env: dict[str, str], rclpy_node) -> None:
    from geometry_msgs.msg import PointStamped
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from std_msgs.msg import String

    bag = tmp_path / "bag"
    write_bag(bag)
    got: dict[str, list] = {"points": [], "talk": [], "static": [], "clock": []}
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    rclpy_node.create_subscription(PointStamped, "/points", got["points"].append, reliable)
    rclpy_node.create_subscription(String, "/talk", got["talk"].append, reliable)
    rclpy_node.create_subscription(String, "/calib_static", got["static"].append, latched)
    rclpy_node.create_subscription(Clock, "/clock", got["clock"].append, reliable)

    log = tmp_path / "replay.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jepa_sim.replay",
                str(bag),
                "--rate",
                "4",
                "--remap",
                "/chatter:=/talk",
                "--wait-for-subscribers",
                "1",
                "--clock-hz",
                "50",
            ],
            env=ros_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            rc = proc.wait(timeout=40)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert rc == 0, text
    assert "/custom" in text and "my_pkg/msg/Thing" in text  # unknown type named, the rest played
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (len(got["points"]) < N_POINTS or len(got["talk"]) < N_CHATTER):
        time.sleep(0.05)

    assert [m.point.x for m in got["points"]] == [float(i) for i in range(N_POINTS)]
    stamps = [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in got["points"]]
    assert stamps == [START_NS + (i + 1) * STEP_NS - 123 for i in range(N_POINTS)]
    assert [m.data for m in got["talk"]] == [f"hello {i}" for i in range(N_CHATTER)]
    assert [m.data for m in got["static"]] == ["calibration"]
    clock = [c.clock.sec * 1_000_000_000 + c.clock.nanosec for c in got["clock"]]
    assert len(clock) >= N_POINTS
    assert all(b >= a for a, b in itertools.pairwise(clock)), "/clock went backwards"
    assert clock[-1] == START_NS + N_POINTS * STEP_NS  # the last message's log time
    assert clock[0] <= START_NS + STEP_NS
