"""Record the agent's own experience (latents, commands, costs) as rosbag2 MCAP bags, one bag per episode.

The latent topic uses the project's ``jepa_interfaces/msg/LatentState``; its definition is read
from the installed ``.msg`` files and embedded in the bag, so ``ros2 bag info`` and rosbags readers
can decode it without this package. A bag is written under ``.partial/`` beside its final place,
closed, synced to disk and only then moved: a bag under its final name is complete and durable. Nothing is ever
deleted or overwritten: a name that exists is an error, and :class:`EpisodeRecorder` gives each
session its own directory, so a later run never touches an earlier one's bags (what a killed run
left in ``.partial/`` stays for a person to look at).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

LATENT_TYPE = "jepa_interfaces/msg/LatentState"


def interface_dir() -> Path:
    """Directory holding jepa_interfaces' msg/ files (installed share dir, else the source tree)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("jepa_interfaces"))
    except (ImportError, LookupError, ValueError):
        return Path(__file__).resolve().parents[2] / "jepa_interfaces"


def project_typestore() -> Any:
    """rosbags typestore with the standard ROS 2 types and jepa_interfaces' messages registered."""
    store = get_typestore(Stores.ROS2_KILTED)
    types: dict = {}
    for path in sorted((interface_dir() / "msg").glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"jepa_interfaces/msg/{path.stem}"))
    store.register(types)
    return store


class EpisodeBagWriter:
    """Writes LatentState messages (as received), the action and the cost per step."""

    def __init__(self, path: Path) -> None:
        from rclpy.serialization import serialize_message

        self._serialize = serialize_message
        self.path = Path(path)
        self.partial = self.path.parent / ".partial" / self.path.name  # the bag's files are named after its directory
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        for existing in (self.path, self.partial):
            if existing.exists():
                raise FileExistsError(f"{existing} exists: recorded data is never overwritten; choose another name")
        self.store = project_typestore()
        self.writer = Writer(self.partial, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.latent = self.writer.add_connection("latent", LATENT_TYPE, typestore=self.store)
        self.action = self.writer.add_connection("action", "std_msgs/msg/Float32MultiArray", typestore=self.store)
        self.cost = self.writer.add_connection("intrinsic_cost", "std_msgs/msg/Float32", typestore=self.store)
        self.count = 0
        self._last_ns = -1

    def write(self, latent_msg: Any, action: np.ndarray, cost: float) -> None:
        """One step; the bag's log time is the latent's stamp (kept strictly increasing)."""
        stamp = latent_msg.header.stamp
        t = max(int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec), self._last_ns + 1)
        self._last_ns = t
        self.writer.write(self.latent, t, bytes(self._serialize(latent_msg)))
        msgs = self.store.types
        act = msgs["std_msgs/msg/Float32MultiArray"](
            layout=msgs["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0), data=np.asarray(action, np.float32)
        )
        self.writer.write(self.action, t, self.store.serialize_cdr(act, "std_msgs/msg/Float32MultiArray"))
        self.writer.write(
            self.cost, t, self.store.serialize_cdr(msgs["std_msgs/msg/Float32"](data=float(cost)), "std_msgs/msg/Float32")
        )
        self.count += 1

    def close(self) -> None:
        """Finish the bag, sync it to disk and move it to its final name (an empty bag stays in ``.partial/``)."""
        if self.writer is None:
            return
        self.writer.close()
        self.writer = None
        if self.count == 0:
            return
        _fsync_tree(self.partial)
        if self.path.exists():
            raise FileExistsError(f"{self.path} appeared while recording: kept the new bag at {self.partial}")
        self.partial.rename(self.path)
        _fsync_dir(self.path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """fsync every file under ``path`` and the directory itself: the bag survives a crash or power loss."""
    for f in path.iterdir():
        if f.is_file():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(path)


class EpisodeRecorder:
    """One bag per closed episode under ``<root>/<session>/episode_NNNN``; each session gets a new directory.

    ``write_episode`` writes, closes and syncs the whole episode at once, so an episode is durable the
    moment it is recorded, and a crash loses at most the episode still open in memory.
    """

    def __init__(self, root: Path) -> None:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        base = f"session_{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}_{os.getpid()}"
        for i in range(1000):
            path = root / (base if i == 0 else f"{base}_{i}")
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"no free session directory under {root}")
        self.dir = path
        self.count = 0

    def write_episode(self, steps: list[tuple[Any, np.ndarray, float]]) -> Path | None:
        """Record one closed episode ((latent message, action, cost) per step); returns the bag path."""
        if not steps:
            return None
        self.count += 1
        writer = EpisodeBagWriter(self.dir / f"episode_{self.count:04d}")
        for latent_msg, action, cost in steps:
            writer.write(latent_msg, action, cost)
        writer.close()
        return writer.path
