"""How ``jepa-collect`` records episodes into a rosbag2 MCAP bag (standard message types only).

Topics (all stamps are sim time; ``spec.dt`` per step, strictly increasing over the bag):

=================  ============================  ==============================================
topic              type                          content
=================  ============================  ==============================================
/camera/image_raw  sensor_msgs/msg/Image         rgb8 frame, frame_id "camera"
/odom              nav_msgs/msg/Odometry         point-mass worlds: pose.position.{x,y} = px
                                                 position, twist.linear.{x,y} = last
                                                 displacement / dt (px/s)
/proprio           sensor_msgs/msg/JointState    other worlds: position = the proprio vector
/cmd               geometry_msgs/TwistStamped    2-D displacement worlds: linear.{x,y} =
                                                 displacement / dt, stamped at the frame it
                                                 follows (applied between that frame and the next)
/cmd_joint         sensor_msgs/msg/JointState    other worlds: velocity = the raw action vector
/true_state        sensor_msgs/msg/JointState    position = privileged true state (probes only)
/episode           std_msgs/msg/String           JSON {"episode", "seed", "goal", "source"} at
                                                 the first frame of each episode
/metadata          std_msgs/msg/String           JSON provenance (world, spec, policy, seed,
                                                 command), once at the start; also in the bag's
                                                 custom_data under "jepa.metadata"
=================  ============================  ==============================================

No action is written at the last frame of an episode (the padding row of ``Episode.actions``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from jepa_common.convert import action_to_twist_components
from jepa_common.episodes import Episode

IMAGE_TOPIC = "/camera/image_raw"
ODOM_TOPIC = "/odom"
PROPRIO_TOPIC = "/proprio"
TWIST_ACTION_TOPIC = "/cmd"
JOINT_ACTION_TOPIC = "/cmd_joint"
STATE_TOPIC = "/true_state"
EPISODE_TOPIC = "/episode"
METADATA_TOPIC = "/metadata"
CUSTOM_DATA_KEY = "jepa.metadata"
POINT_MASS_WORLDS = ("two_rooms", "multi_room")


def typestore() -> Any:
    """The message definitions written into bags (ROS 2 Kilted standard types)."""
    return get_typestore(Stores.ROS2_KILTED)


class _Messages:
    """Builds rosbags message objects for one typestore."""

    def __init__(self, store: Any) -> None:
        self.t = store.types
        self.store = store

    def header(self, stamp_ns: int, frame_id: str = "") -> Any:
        time = self.t["builtin_interfaces/msg/Time"](sec=int(stamp_ns // 1_000_000_000), nanosec=int(stamp_ns % 1_000_000_000))
        return self.t["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)

    def image(self, frame: np.ndarray, stamp_ns: int) -> Any:
        h, w = frame.shape[:2]
        return self.t["sensor_msgs/msg/Image"](
            header=self.header(stamp_ns, "camera"),
            height=h,
            width=w,
            encoding="rgb8",
            is_bigendian=0,
            step=w * 3,
            data=np.ascontiguousarray(frame).reshape(-1),
        )

    def vector3(self, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> Any:
        return self.t["geometry_msgs/msg/Vector3"](x=float(x), y=float(y), z=float(z))

    def odometry(self, proprio: np.ndarray, dt: float, stamp_ns: int) -> Any:
        t = self.t
        pose = t["geometry_msgs/msg/Pose"](
            position=t["geometry_msgs/msg/Point"](x=float(proprio[0]), y=float(proprio[1]), z=0.0),
            orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        )
        twist = t["geometry_msgs/msg/Twist"](
            linear=self.vector3(float(proprio[2]) / dt, float(proprio[3]) / dt), angular=self.vector3()
        )
        return t["nav_msgs/msg/Odometry"](
            header=self.header(stamp_ns, "map"),
            child_frame_id="base_link",
            pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
            twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)),
        )

    def joint_state(
        self, stamp_ns: int, names: list[str], position: np.ndarray | None = None, velocity: np.ndarray | None = None
    ) -> Any:
        empty = np.zeros(0)
        return self.t["sensor_msgs/msg/JointState"](
            header=self.header(stamp_ns),
            name=names,
            position=empty if position is None else np.asarray(position, dtype=np.float64),
            velocity=empty if velocity is None else np.asarray(velocity, dtype=np.float64),
            effort=empty,
        )

    def twist_stamped(self, action: np.ndarray, dt: float, stamp_ns: int) -> Any:
        parts = action_to_twist_components(np.asarray(action)[:2], dt)
        twist = self.t["geometry_msgs/msg/Twist"](
            linear=self.vector3(*parts["linear"]), angular=self.vector3(*parts["angular"])
        )
        return self.t["geometry_msgs/msg/TwistStamped"](header=self.header(stamp_ns, "map"), twist=twist)

    def string(self, text: str) -> Any:
        return self.t["std_msgs/msg/String"](data=text)


def write_episodes_bag(out: Path, episodes: Iterable[tuple[Episode, np.ndarray]], metadata: dict[str, Any]) -> int:
    """Write episodes to a new MCAP bag directory ``out``; returns the number of frames written.

    The bag is written under a temporary sibling name and renamed to ``out`` only when complete,
    so an interrupted run never leaves a bag that looks finished.

    Args:
        out: bag directory to create (must not exist).
        episodes: (episode, goal_state) pairs with ``stamps_ns`` set.
        metadata: provenance; needs "world" and "world_spec" (with "dt").
    """
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"output bag {out} already exists; choose another --out or delete it")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written as <parent>/.<name>.partial-<pid>/<name>, so the files inside already carry the final name.
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    tmp = staging / out.name
    store = typestore()
    msgs = _Messages(store)
    dt = float(metadata["world_spec"]["dt"])
    point_mass = metadata["world"] in POINT_MASS_WORLDS
    frames_written = 0
    writer = Writer(tmp, version=9, storage_plugin=StoragePlugin.MCAP)
    try:
        writer.open()
        meta_json = json.dumps(metadata, default=_jsonable)
        writer.set_custom_data(CUSTOM_DATA_KEY, meta_json)
        conns = {
            "image": writer.add_connection(IMAGE_TOPIC, "sensor_msgs/msg/Image", typestore=store),
            "proprio": writer.add_connection(ODOM_TOPIC, "nav_msgs/msg/Odometry", typestore=store)
            if point_mass
            else writer.add_connection(PROPRIO_TOPIC, "sensor_msgs/msg/JointState", typestore=store),
            "action": writer.add_connection(TWIST_ACTION_TOPIC, "geometry_msgs/msg/TwistStamped", typestore=store)
            if point_mass
            else writer.add_connection(JOINT_ACTION_TOPIC, "sensor_msgs/msg/JointState", typestore=store),
            "state": writer.add_connection(STATE_TOPIC, "sensor_msgs/msg/JointState", typestore=store),
            "episode": writer.add_connection(EPISODE_TOPIC, "std_msgs/msg/String", typestore=store),
            "metadata": writer.add_connection(METADATA_TOPIC, "std_msgs/msg/String", typestore=store),
        }

        def put(kind: str, msg: Any, stamp_ns: int) -> None:
            writer.write(conns[kind], int(stamp_ns), store.serialize_cdr(msg, conns[kind].msgtype))

        first = True
        for index, (ep, goal) in enumerate(episodes):
            stamps = ep.stamps_ns
            if stamps is None:
                raise ValueError(f"episode {ep.source or index} has no stamps_ns")
            if first:
                put("metadata", msgs.string(meta_json), stamps[0])
                first = False
            marker = {"episode": index, "source": ep.source, "goal": np.asarray(goal).tolist(), "frames": len(ep)}
            put("episode", msgs.string(json.dumps(marker)), stamps[0])
            state_names = [f"s{i}" for i in range(ep.state.shape[1])] if ep.state is not None else []
            if not point_mass:  # joint names, once per episode
                proprio_names = [f"p{i}" for i in range(ep.proprio.shape[1])]
                action_names = [f"a{i}" for i in range(ep.actions.shape[1])]
            for t in range(len(ep)):
                stamp = int(stamps[t])
                put("image", msgs.image(ep.frames[t], stamp), stamp)
                if point_mass:
                    put("proprio", msgs.odometry(ep.proprio[t], dt, stamp), stamp)
                else:
                    put("proprio", msgs.joint_state(stamp, proprio_names, position=ep.proprio[t]), stamp)
                if ep.state is not None:
                    put("state", msgs.joint_state(stamp, state_names, position=ep.state[t]), stamp)
                if t < len(ep) - 1:
                    if point_mass:
                        put("action", msgs.twist_stamped(ep.actions[t], dt, stamp), stamp)
                    else:
                        put("action", msgs.joint_state(stamp, action_names, velocity=ep.actions[t]), stamp)
            frames_written += len(ep)
        writer.close()
    except BaseException:
        with contextlib.suppress(Exception):
            writer.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.replace(tmp, out)
    staging.rmdir()
    return frames_written


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)
