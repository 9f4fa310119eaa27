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
                "--delay",  # /clock has no played-topic subscriber count to wait for: let discovery finish
                "0.5",
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
    assert len(clock) >= 5  # one /clock may cover several messages due within --clock-lead
    assert all(b >= a for a, b in itertools.pairwise(clock)), "/clock went backwards"
    assert clock[-1] == START_NS + N_POINTS * STEP_NS  # the last message's log time
    assert clock[0] <= START_NS + STEP_NS


def write_robot_bag(path: Path, seconds: float = 3.0) -> int:
    """Camera 30 Hz (header stamp == log time: the hardest case for /clock ordering), a 50 Hz stamped topic, Twist 10 Hz."""
    import numpy as np
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    t = store.types

    def header(stamp: int) -> object:
        sec, nsec = divmod(stamp, 1_000_000_000)
        return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id="f")

    msgs = []
    n_images = int(seconds * 30)
    for i in range(n_images):
        stamp = START_NS + int(i * 1e9 / 30)
        img = t["sensor_msgs/msg/Image"](
            header=header(stamp),
            height=32,
            width=32,
            encoding="rgb8",
            is_bigendian=0,
            step=96,
            data=np.zeros(32 * 32 * 3, np.uint8),
        )
        msgs.append((stamp, "image", img))
    for i in range(int(seconds * 50)):
        stamp = START_NS + int(i * 1e9 / 50) + 3_000_000
        point = t["geometry_msgs/msg/PointStamped"](header=header(stamp), point=t["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0))
        msgs.append((stamp, "odom", point))
    vec = t["geometry_msgs/msg/Vector3"]
    for i in range(int(seconds * 10)):
        twist = t["geometry_msgs/msg/Twist"](linear=vec(x=0.1, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=0.0))
        msgs.append((START_NS + int(i * 1e8) + 7_000_000, "cmd", twist))
    msgs.sort(key=lambda m: m[0])
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {
            "image": writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=store),
            "odom": writer.add_connection("/position", "geometry_msgs/msg/PointStamped", typestore=store),
            "cmd": writer.add_connection("/cmd_vel", "geometry_msgs/msg/Twist", typestore=store),
        }
        for stamp, kind, msg in msgs:
            writer.write(conns[kind], stamp, store.serialize_cdr(msg, conns[kind].msgtype))
    return n_images


class _RecordingNode:
    """Stands in for an rclpy node: publishers append (wall time, topic, /clock value or None) to ``log``."""

    def __init__(self) -> None:
        self.log: list[tuple[float, str, int | None]] = []

    def create_publisher(self, msg_type: type, topic: str, qos: object) -> object:
        log = self.log

        class Pub:
            def publish(self, msg: object) -> None:
                value = msg.clock.sec * 1_000_000_000 + msg.clock.nanosec if topic == "/clock" else None
                log.append((time.monotonic(), topic, value))

        return Pub()

    def get_logger(self) -> object:
        return type("Logger", (), {"error": lambda self, text: None})()


def test_player_orders_clock_before_each_message_by_the_lead(tmp_path: Path) -> None:
    """/clock reaches each message's log time at least ``clock_lead`` before it is published, never runs past
    the next message, and the messages keep their recorded spacing (scaled by the rate)."""
    from rosbags.rosbag2 import Reader

    from jepa_sim.replay import BagPlayer

    bag = tmp_path / "robot"
    write_robot_bag(bag, seconds=1.0)
    with Reader(bag) as reader:
        log_times = [t for _, t, _ in reader.messages()]
    node = _RecordingNode()
    lead = 0.03
    player = BagPlayer(node, bag, rate=2.0, clock_hz=40.0, clock_lead=lead)
    assert player.play_once() == len(log_times) == 30 + 50 + 10
    player.close()
    clock = -1
    sent = iter(sorted(log_times))
    walls = []
    for wall, topic, value in node.log:
        if topic == "/clock":
            assert value > clock  # strictly advancing
            clock = value
            continue
        t = next(sent)
        assert clock >= t, "a message was published before /clock reached its log time"
        reached = min(w for w, tp, v in node.log if tp == "/clock" and v is not None and v >= t)
        assert wall - reached >= lead - 1e-3
        walls.append((wall, t))
    clocks = [v for _, tp, v in node.log if tp == "/clock"]
    assert clocks[-1] == max(log_times)  # never past the last message
    span_wall = walls[-1][0] - walls[0][0]
    assert span_wall == pytest.approx((walls[-1][1] - walls[0][1]) / 1e9 / 2.0, abs=0.15)


@pytest.mark.ros
@pytest.mark.slow
def test_sim_time_has_reached_each_stamp_at_the_subscriber(tmp_path: Path, ros_env: dict[str, str]) -> None:
    """A use_sim_time node (plain single-threaded executor) sees sim time >= the image's stamp in its callback."""
    import threading

    import rclpy
    from geometry_msgs.msg import PointStamped, Twist
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    bag = tmp_path / "robot"
    n_images = write_robot_bag(bag)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("sim_time_probe", context=context, parameter_overrides=[Parameter("use_sim_time", value=True)])
    seen: list[tuple[int, int]] = []
    received: list[tuple[int, int]] = []  # (DDS receive time, stamp) of images
    clocks: list[tuple[int, int]] = []  # (DDS receive time, value) of /clock

    def on_image(msg: Image, info: dict) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        seen.append((node.get_clock().now().nanoseconds, stamp))
        received.append((info["received_timestamp"], stamp))

    def on_clock(msg: Clock, info: dict) -> None:
        clocks.append((info["received_timestamp"], msg.clock.sec * 1_000_000_000 + msg.clock.nanosec))

    node.create_subscription(Image, "/camera/image_raw", on_image, 100)
    node.create_subscription(Clock, "/clock", on_clock, QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        # every topic plays (their traffic competes with the images); only the camera is waited for
        wait = [sys.executable, "-m", "jepa_sim.replay", str(bag), "--wait-for-subscribers", "1", "--delay", "1.0"]
        cmd = [*wait, "--ros-args", "-r", "__node:=player"]
        node.create_subscription(Twist, "/cmd_vel", lambda _: None, 10)
        node.create_subscription(PointStamped, "/position", lambda _: None, 10)
        proc = subprocess.run(cmd, env=ros_env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(seen) < n_images:
            time.sleep(0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        thread.join(timeout=2)
    assert len(seen) == n_images
    early = [(now, stamp) for now, stamp in seen if now < stamp]
    assert not early, f"{len(early)} of {len(seen)} images arrived before sim time reached their stamp: {early[:3]}"
    # delivery order too: each image was received after a /clock at or past its stamp
    clocks.sort()
    for recv_ns, stamp in received:
        before = [value for t, value in clocks if t <= recv_ns]
        assert before and max(before) >= stamp, f"image {stamp} received before a /clock at its stamp"


@pytest.mark.ros
def test_replay_of_empty_or_truncated_bag_is_one_line(tmp_path: Path, ros_env: dict[str, str]) -> None:
    bag = tmp_path / "bag"
    write_bag(bag)
    mcap = next(bag.glob("*.mcap"))
    (tmp_path / "empty.mcap").write_bytes(b"")
    (tmp_path / "truncated.mcap").write_bytes(mcap.read_bytes()[: mcap.stat().st_size * 2 // 3])
    for bad in ("empty.mcap", "truncated.mcap"):
        proc = subprocess.run(
            [sys.executable, "-m", "jepa_sim.replay", str(tmp_path / bad)],
            env=ros_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"jepa-replay: bag {tmp_path / bad}"), proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
