"""Append the agent's own experience (latents, commands, costs) to a rosbag2 MCAP bag.

The latent topic uses the project's ``jepa_interfaces/msg/LatentState``; its definition is read
from the installed ``.msg`` files and embedded in the bag, so ``ros2 bag info`` and rosbags readers
can decode it without this package. The bag is written under ``<path>.partial`` and renamed when
closed, so an interrupted run never leaves a bag that looks complete.
"""

from __future__ import annotations

import shutil
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
        self.partial = self.path.with_name(self.path.name + ".partial")
        if self.partial.exists():
            shutil.rmtree(self.partial)
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
        """Finish the bag and move it to its final name (replacing an older one)."""
        if self.writer is None:
            return
        self.writer.close()
        self.writer = None
        if self.count == 0:
            shutil.rmtree(self.partial, ignore_errors=True)
            return
        if self.path.exists():
            shutil.rmtree(self.path)
        self.partial.rename(self.path)
