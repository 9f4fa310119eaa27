"""Bags with a real robot's timing, written by the rosbags Writer (no project code), through ``load_bags``.

The robot: camera at 30 Hz with jitter and transport delay (header stamp = capture time, log time later),
headerless ``geometry_msgs/Twist`` on ``/cmd_vel`` at 10 Hz, ``nav_msgs/Odometry`` at 50 Hz, best-effort
QoS on the camera, the camera starting before the odometry and stopping after it, and a pause in teleop
longer than the command timeout.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from jepa_world_model.data.bags import (
    BagError,
    BagTopics,
    TopicsPerBag,
    format_data_report,
    load_bags,
    topics_from_mapping,
    write_data_report,
)

T0 = 1_700_000_000_000_000_000
SIZE = 16
DOCS = Path(__file__).resolve().parents[3] / "docs" / "own_robot_data.md"


@dataclass
class RobotLog:
    """What the generator wrote: ground truth for the assertions."""

    frame_stamps: list[int] = field(default_factory=list)  # capture times (header stamps)
    cmd_log: list[int] = field(default_factory=list)  # log times of the headerless commands
    cmd_values: list[tuple[float, float]] = field(default_factory=list)  # (linear.x, angular.z)
    odom_first: int = 0
    odom_last: int = 0

    def command_in_force(self, stamp: int, timeout_s: float = 0.5) -> tuple[float, float]:
        """Zero-order hold of the commands at ``stamp``, zero before the first and after ``timeout_s``."""
        k = int(np.searchsorted(np.asarray(self.cmd_log), stamp, side="right")) - 1
        if k < 0 or stamp - self.cmd_log[k] > timeout_s * 1e9:
            return (0.0, 0.0)
        return self.cmd_values[k]


def best_effort() -> Qos:
    zero = QosTime(0, 0)
    return Qos(
        QosHistory.KEEP_LAST,
        5,
        QosReliability.BEST_EFFORT,
        QosDurability.VOLATILE,
        zero,
        zero,
        QosLiveliness.AUTOMATIC,
        zero,
        False,
    )


def write_robot_bag(
    path: Path,
    seconds: float = 20.0,
    camera_hz: float = 30.0,
    seed: int = 0,
    storage: StoragePlugin = StoragePlugin.MCAP,
    pause: tuple[float, float] | None = (9.0, 11.0),
    jpeg: bool = False,
    dropped_frames: tuple[int, ...] = (),
    image_topic: str = "/camera/image_raw",
    pixel_offset: int = 0,
    cmd_type: str = "geometry_msgs/msg/Twist",
) -> RobotLog:
    """A robot recording; ``pause`` = (start, end) seconds of no command (teleop released)."""
    rng = np.random.default_rng(seed)
    store = get_typestore(Stores.ROS2_KILTED)
    t = store.types
    log = RobotLog()
    msgs: list[tuple[int, str, object]] = []

    def header(stamp: int, frame: str) -> object:
        sec, nsec = divmod(stamp, 1_000_000_000)
        return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id=frame)

    # commands: 10 Hz from 0.5 s, a new random velocity every second, some zero, none during the pause
    k = 0
    value = (0.0, 0.0)
    while True:
        t_s = 0.5 + 0.1 * k + rng.uniform(-0.005, 0.005)
        if t_s > seconds - 0.5:
            break
        if k % 10 == 0:
            value = (
                (0.0, 0.0)
                if rng.random() < 0.15
                else (round(float(rng.uniform(-0.5, 0.5)), 3), round(float(rng.uniform(-1, 1)), 3))
            )
        k += 1
        if pause and pause[0] <= t_s < pause[1]:
            continue
        stamp = T0 + int(t_s * 1e9)
        log.cmd_log.append(stamp)
        log.cmd_values.append(value)
        vec = t["geometry_msgs/msg/Vector3"]
        twist = t["geometry_msgs/msg/Twist"](linear=vec(x=value[0], y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=value[1]))
        if cmd_type.endswith("TwistStamped"):
            twist = t["geometry_msgs/msg/TwistStamped"](header=header(stamp, "base_link"), twist=twist)
        msgs.append((stamp, "cmd", twist))

    # odometry: 50 Hz from 0.2 s to seconds - 0.3, velocity = command in force 60 ms earlier (controller lag)
    x = yaw = 0.0
    n_odom = int((seconds - 0.5) * 50)
    for i in range(n_odom):
        stamp = T0 + int((0.2 + i / 50) * 1e9)
        v, w = log.command_in_force(stamp - 60_000_000)
        x += v * 0.02 * np.cos(yaw)
        yaw += w * 0.02
        pose = t["geometry_msgs/msg/PoseWithCovariance"](
            pose=t["geometry_msgs/msg/Pose"](
                position=t["geometry_msgs/msg/Point"](x=x, y=0.0, z=0.0),
                orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=np.sin(yaw / 2), w=np.cos(yaw / 2)),
            ),
            covariance=np.zeros(36),
        )
        vec = t["geometry_msgs/msg/Vector3"]
        tw = t["geometry_msgs/msg/TwistWithCovariance"](
            twist=t["geometry_msgs/msg/Twist"](linear=vec(x=v, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0, z=w)),
            covariance=np.zeros(36),
        )
        odom = t["nav_msgs/msg/Odometry"](header=header(stamp, "odom"), child_frame_id="base_link", pose=pose, twist=tw)
        msgs.append((stamp + 2_000_000, "odom", odom))
        log.odom_first = log.odom_first or stamp
        log.odom_last = stamp

    # camera: from 0 s to the end, jittered capture, 15-45 ms transport delay to the recorder
    n_frames = int(seconds * camera_hz)
    for i in range(n_frames):
        if i in dropped_frames:
            continue
        capture = T0 + int((i / camera_hz + rng.normal(0, 0.002)) * 1e9)
        capture = max(capture, T0 + (log.frame_stamps[-1] - T0 + 1_000_000 if log.frame_stamps else 0))
        log.frame_stamps.append(capture)
        pixels = np.full((SIZE, SIZE, 3), (i * 7 + pixel_offset) % 256, np.uint8)
        if jpeg:
            import imageio.v3 as iio

            buf = io.BytesIO()
            iio.imwrite(buf, pixels, extension=".jpg")
            img = t["sensor_msgs/msg/CompressedImage"](
                header=header(capture, "cam"), format="jpeg", data=np.frombuffer(buf.getvalue(), np.uint8)
            )
        else:
            img = t["sensor_msgs/msg/Image"](
                header=header(capture, "cam"),
                height=SIZE,
                width=SIZE,
                encoding="rgb8",
                is_bigendian=0,
                step=SIZE * 3,
                data=pixels.reshape(-1),
            )
        msgs.append((capture + int(rng.uniform(0.015, 0.045) * 1e9), "image", img))

    msgs.sort(key=lambda m: m[0])
    image_type = "sensor_msgs/msg/CompressedImage" if jpeg else "sensor_msgs/msg/Image"
    with Writer(path, version=9, storage_plugin=storage) as writer:
        conns = {
            "image": writer.add_connection(image_topic, image_type, typestore=store, offered_qos_profiles=[best_effort()]),
            "odom": writer.add_connection("/odom", "nav_msgs/msg/Odometry", typestore=store),
            "cmd": writer.add_connection("/cmd_vel", cmd_type, typestore=store),
        }
        for log_ns, kind, msg in msgs:
            writer.write(conns[kind], log_ns, store.serialize_cdr(msg, conns[kind].msgtype))
    return log


def documented_topics() -> BagTopics:
    """The settings docs/own_robot_data.md recommends for this robot (read from the doc itself)."""
    text = DOCS.read_text()
    block = text.split("```yaml\n# robot_topics.yaml\n", 1)[1].split("```", 1)[0]
    cfg = topics_from_mapping(yaml.safe_load(block), "docs robot_topics.yaml")
    assert isinstance(cfg, BagTopics)
    return cfg


def test_shipped_own_robot_config_has_the_documented_topics() -> None:
    shipped = yaml.safe_load((DOCS.parents[1] / "config" / "train" / "own_robot.yaml").read_text())
    assert topics_from_mapping(shipped["data"]["topics"]) == documented_topics()


@pytest.fixture(scope="module")
def robot_bag(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RobotLog]:
    path = tmp_path_factory.mktemp("robot") / "run_01"
    return path, write_robot_bag(path)


def test_documented_settings_give_the_command_in_force_and_count_every_frame(robot_bag) -> None:
    path, log = robot_bag
    cfg = documented_topics()
    assert cfg.action_type == "Twist" and cfg.resample_hz == 10.0
    eps = load_bags([path], cfg)
    report = eps.metadata["data_report"][0]
    # no frame dropped without being counted
    assert report["frames_total"] == len(log.frame_stamps)
    assert report["frames_kept"] + sum(report["dropped"].values()) == report["frames_total"]
    assert report["frames_kept"] == eps.num_frames
    # the camera started 0.2 s before the odometry and ran 0.3 s after it: those frames are dropped, not the bag
    leading = sum(s < log.odom_first for s in log.frame_stamps)
    trailing = sum(s > log.odom_last + cfg.max_skew_s * 1e9 for s in log.frame_stamps)
    assert report["dropped"]["leading_no_proprio"] == leading > 0
    assert report["dropped"]["trailing_no_proprio"] == trailing > 0
    # 30 Hz -> 10 Hz: about a third kept, every step within half a period of 0.1 s
    assert report["dropped"]["resampled_out"] > 0
    stamps = np.concatenate([e.stamps_ns for e in eps.episodes])
    for ep in eps.episodes:
        steps = np.diff(ep.stamps_ns) / 1e9
        assert ((steps > 0.05) & (steps < 0.15)).all()
    assert abs(len(stamps) - (log.odom_last - log.odom_first) / 1e8) < 3
    # the action at >= 99% of kept frames equals the command in force there (scaled per the docs)
    scale = np.asarray(cfg.action_scale)
    actions = np.concatenate([e.actions for e in eps.episodes])
    truth = np.asarray([log.command_in_force(int(s), cfg.action_timeout_s) for s in stamps]) * scale
    match = np.isclose(actions, truth, atol=1e-6).all(axis=1)
    assert match.mean() >= 0.99, f"only {match.mean():.3f} of kept frames carry the command in force"
    padding = np.zeros(len(stamps), bool)
    padding[np.cumsum([len(e) for e in eps.episodes]) - 1] = True
    assert match[~padding].all()
    # nothing silently zeroed: every zero row is the command in force being zero, counted, or padding
    a = report["actions"]
    zero = (actions == 0).all(axis=1)
    assert zero.sum() == a["zero_rows"] + a["padding_rows"] - (zero[padding] == 0).sum()
    assert a["zero_rows"] == a["zero_commanded"] + a["zero_before_first_command"] + a["zero_command_timeout"]
    in_pause = [(s - T0) / 1e9 for s in stamps if 9.5 < (s - T0) / 1e9 < 11.0]
    assert a["zero_command_timeout"] >= len(in_pause) - 2 > 0  # the teleop pause beyond 0.5 s
    assert a["from_command"] + a["zero_before_first_command"] + a["zero_command_timeout"] + a["padding_rows"] == len(stamps)
    # the odometry says whether zero actions happen while moving: only the controller's lag makes a few
    assert a["moving_rows"] > 50 and a["zero_while_moving_fraction"] < 0.05
    rates = {r["topic"]: r["rate_hz"] for r in report["topics"].values()}
    assert rates["/camera/image_raw"] == pytest.approx(30, rel=0.03)
    assert rates["/odom"] == pytest.approx(50, rel=0.01)
    assert rates["/cmd_vel"] == pytest.approx(10, rel=0.15)  # the pause lowers the average
    text = format_data_report(eps.metadata["data_report"])
    assert "leading_no_proprio" in text and "/cmd_vel" in text and "zero while moving" in text


def test_old_skew_window_would_have_zeroed_most_actions(robot_bag) -> None:
    """The failure of the issue, measured on this bag: with a 50 ms window most rows would be zero."""
    path, log = robot_bag
    eps = load_bags([path], documented_topics())
    stamps = np.concatenate([e.stamps_ns for e in eps.episodes])
    logs = np.asarray(log.cmd_log)
    idx = np.searchsorted(logs, stamps, side="right") - 1
    fresh = (idx >= 0) & (stamps - logs[np.maximum(idx, 0)] <= 50_000_000)
    assert fresh.mean() < 0.7  # what a skew window keeps
    actions = np.concatenate([e.actions[:-1] for e in eps.episodes])
    assert (actions != 0).any(axis=1).mean() > 0.6  # what zero-order hold keeps


def test_a_too_short_command_timeout_is_counted_and_warned(robot_bag) -> None:
    """The issue's failure (a 50 ms window on 10 Hz commands) no longer passes silently: counted, warned."""
    import dataclasses

    path, _ = robot_bag
    cfg = dataclasses.replace(documented_topics(), action_timeout_s=0.05)
    report = load_bags([path], cfg).metadata["data_report"][0]
    a = report["actions"]
    assert a["zero_command_timeout"] > 0.3 * a["rows"] and a["zero_while_moving_fraction"] > 0.3
    assert any("zero because no command was in force" in w for w in report["warnings"])
    assert any("odometry shows motion have a zero action" in w for w in report["warnings"])
    assert "warning:" in format_data_report([report])


def test_sqlite3_bag_and_twist_stamped_mismatch(tmp_path: Path) -> None:
    log = write_robot_bag(tmp_path / "sql", seconds=6.0, storage=StoragePlugin.SQLITE3, pause=None)
    eps = load_bags([tmp_path / "sql"], documented_topics())
    assert eps.metadata["data_report"][0]["frames_total"] == len(log.frame_stamps)
    with pytest.raises(
        BagError, match=r"/cmd_vel records geometry_msgs/msg/Twist but action_type is TwistStamped.*action_type: Twist"
    ):
        load_bags([tmp_path / "sql"], BagTopics(action="/cmd_vel", episode_topic=None))
    write_robot_bag(tmp_path / "stamped", seconds=3.0, pause=None, cmd_type="geometry_msgs/msg/TwistStamped")
    with pytest.raises(BagError, match=r"records geometry_msgs/msg/TwistStamped but action_type is Twist\b"):
        load_bags([tmp_path / "stamped"], documented_topics())


@pytest.mark.parametrize("jitter_bag", [10.0, 30.0])
def test_resample_at_the_camera_rate_keeps_every_frame(tmp_path: Path, jitter_bag: float) -> None:
    """resample_hz equal to the camera rate keeps all frames under jitter; a lost frame splits, counted."""
    log = write_robot_bag(tmp_path / "cam", seconds=8.0, camera_hz=jitter_bag, pause=None)
    cfg = BagTopics(image="/camera/image_raw", action="/cmd_vel", action_type="Twist", episode_topic=None, resample_hz=jitter_bag)
    eps = load_bags([tmp_path / "cam"], cfg)
    report = eps.metadata["data_report"][0]
    edge = report["dropped"].get("leading_no_proprio", 0) + report["dropped"].get("trailing_no_proprio", 0)
    assert "resampled_out" not in report["dropped"]
    assert report["frames_kept"] == len(log.frame_stamps) - edge and len(eps) == 1
    write_robot_bag(tmp_path / "lossy", seconds=8.0, camera_hz=jitter_bag, pause=None, dropped_frames=(40,))
    lossy = load_bags([tmp_path / "lossy"], cfg)
    r = lossy.metadata["data_report"][0]
    assert len(lossy) == 2 and r["splits"] == {"camera_gap": 1} and "resampled_out" not in r["dropped"]
    for ep in lossy.episodes:
        assert (np.diff(ep.stamps_ns) < 1.5e9 / jitter_bag).all()
    with pytest.raises(BagError, match="above the camera rate"):
        load_bags(
            [tmp_path / "cam"], BagTopics(action="/cmd_vel", action_type="Twist", episode_topic=None, resample_hz=3 * jitter_bag)
        )


def test_zero_action_before_first_false_drops_and_counts(tmp_path: Path) -> None:
    log = write_robot_bag(tmp_path / "b", seconds=4.0, pause=None)
    cfg = BagTopics(action="/cmd_vel", action_type="Twist", episode_topic=None, zero_action_before_first=False)
    report = load_bags([tmp_path / "b"], cfg).metadata["data_report"][0]
    before = sum(log.odom_first <= s < log.cmd_log[0] for s in log.frame_stamps)
    assert report["dropped"]["leading_no_command"] == before > 0
    assert report["actions"]["zero_before_first_command"] == 0


def test_cache_is_keyed_by_content_and_cleans_stale_entries(tmp_path: Path) -> None:
    """A re-recorded bag of the same size and mtime at the same path is decoded again, not served stale."""
    cache = tmp_path / "cache"
    bag = tmp_path / "run"
    write_robot_bag(bag, seconds=3.0, pause=None, pixel_offset=0)
    cfg = BagTopics(action="/cmd_vel", action_type="Twist", episode_topic=None)
    first = load_bags([bag], cfg, cache_dir=cache)
    files = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in bag.iterdir()}
    again = load_bags([bag], cfg, cache_dir=cache)
    assert isinstance(again.episodes[0].frames, np.memmap)
    assert again.metadata["data_report"] == first.metadata["data_report"]
    import shutil

    shutil.rmtree(bag)
    write_robot_bag(bag, seconds=3.0, pause=None, pixel_offset=100)
    for p in bag.iterdir():
        size, mtime = files[p.name]
        assert p.stat().st_size == size  # same size: the old key (path, size, mtime) could not tell them apart
        os.utime(p, ns=(mtime, mtime))
    second = load_bags([bag], cfg, cache_dir=cache)
    assert int(second.episodes[0].frames[0, 0, 0, 0]) == int(first.episodes[0].frames[0, 0, 0, 0]) + 100
    assert len([p for p in cache.iterdir()]) == 1  # the stale entry is gone
    load_bags([bag], BagTopics(action="/cmd_vel", action_type="Twist", episode_topic=None, resample_hz=10), cache_dir=cache)
    assert len(list(cache.iterdir())) == 2  # another config, another entry


def test_per_bag_topics_train_jpeg_and_raw_together(tmp_path: Path) -> None:
    write_robot_bag(tmp_path / "raw_run", seconds=3.0, pause=None)
    write_robot_bag(tmp_path / "jpeg_run", seconds=3.0, pause=None, jpeg=True, image_topic="/camera/image_raw/compressed")
    mapping = {
        "image": "/camera/image_raw",
        "action": "/cmd_vel",
        "action_type": "Twist",
        "action_fields": ["linear.x", "angular.z"],
        "episode_topic": None,
        "per_bag": {"*jpeg*": {"image": "/camera/image_raw/compressed"}},
    }
    cfg = topics_from_mapping(mapping)
    assert isinstance(cfg, TopicsPerBag) and cfg.for_bag(tmp_path / "jpeg_run").image == "/camera/image_raw/compressed"
    assert cfg.for_bag(tmp_path / "raw_run").action_fields == ("linear.x", "angular.z")
    eps = load_bags([tmp_path / "raw_run", tmp_path / "jpeg_run"], cfg)
    assert [r["topics"]["image"]["topic"] for r in eps.metadata["data_report"]] == [
        "/camera/image_raw",
        "/camera/image_raw/compressed",
    ]
    assert eps.image_size == (SIZE, SIZE)
    with pytest.raises(BagError, match=r"/camera/image_raw.*not found"):
        load_bags([tmp_path / "jpeg_run"], cfg.default)
    with pytest.raises(ValueError, match=r"per_bag\['\*jpeg\*'\].*imagee"):
        topics_from_mapping({**mapping, "per_bag": {"*jpeg*": {"imagee": "/x"}}})
    out = write_data_report(eps.metadata["data_report"], tmp_path / "report")
    assert out.name == "data_report.json" and "jpeg_run" in out.read_text()


def test_data_source_uses_per_bag_topics_and_keeps_the_report(tmp_path: Path) -> None:
    from jepa_world_model.config import BagDataConfig
    from jepa_world_model.data_source import load_episodes

    write_robot_bag(tmp_path / "a_jpeg", seconds=3.0, pause=None, jpeg=True)
    write_robot_bag(tmp_path / "b", seconds=3.0, pause=None)
    topics = {"action": "/cmd_vel", "action_type": "Twist", "episode_topic": None, "per_bag": {"*_jpeg": {"resample_hz": 10}}}
    eps, meta = load_episodes(BagDataConfig(paths=[str(tmp_path / "a_jpeg"), str(tmp_path / "b")], topics=topics))
    reports = eps.metadata["data_report"]
    assert len(reports) == 2 and "resampled_out" in reports[0]["dropped"] and "resampled_out" not in reports[1]["dropped"]
    assert meta["source"] == "bags"


def test_training_prints_and_saves_the_data_report(tmp_path: Path, capsys) -> None:
    """``jepa-train`` on robot bags (documented settings) writes data_report.json into the run and prints it."""
    from jepa_world_model import train as train_mod
    from jepa_world_model.testing import toy_config

    bags = []
    for k in range(4):
        bags.append(str(tmp_path / f"run_{k}"))
        write_robot_bag(Path(bags[-1]), seconds=6.0, seed=k, pause=None)
    block = DOCS.read_text().split("```yaml\n# robot_topics.yaml\n", 1)[1].split("```", 1)[0]
    data = {"source": "bags", "paths": bags, "topics": yaml.safe_load(block), "val_fraction": 0.25}
    cfg = toy_config(**{"data": data, "train.epochs": 1, "train.steps_per_epoch": 1, "decoder.enabled": False})
    config = tmp_path / "robot.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    assert train_mod.main(["--config", str(config), "--out", str(tmp_path / "run")]) == 0
    saved = json.loads((tmp_path / "run" / "data_report.json").read_text())["bags"]
    assert [r["bag"] for r in saved] == bags and all(r["dropped"]["leading_no_proprio"] > 0 for r in saved)
    out = capsys.readouterr().out
    assert all(f"bag {b}: kept" in out for b in bags) and "zero while moving" in out
