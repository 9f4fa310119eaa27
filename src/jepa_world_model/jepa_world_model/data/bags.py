"""Load rosbag2 bags (MCAP or sqlite3, ours or any robot's) into an ``EpisodeSet``.

Message types come from each bag's embedded definitions (rosbags ``AnyReader``), so any robot's
bag loads without its message packages. Every topic is aligned to the camera frames by the
nearest earlier (or equal) stamp, within ``max_skew_s``. Header stamps are used when a message
has a header, the bag's log time otherwise.

Decoded arrays are cached in ``cache_dir`` (frames as a memory-mapped ``.npy``), keyed by the
bag's files (path, size, mtime) and the topic config, so a second load is fast and lazy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from jepa_sim.ros_common import ImageError, image_to_array
from jepa_world_model.data.episodes import Episode, EpisodeSet

CACHE_VERSION = 1
ACTION_TYPES = ("TwistStamped", "Twist", "Float32MultiArray", "JointState", "proprio_diff", "none")
_DEFAULT_ACTION_FIELDS = {
    "TwistStamped": ("twist.linear.x", "twist.linear.y"),
    "Twist": ("linear.x", "linear.y"),
    "Float32MultiArray": ("data",),
    "JointState": ("velocity",),
}


class BagError(ValueError):
    """A bag that cannot be loaded; the message names the bag file and, when known, the topic."""


@dataclass(frozen=True)
class BagTopics:
    """Which topics and fields of a bag make an episode.

    Attributes:
        image: sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) or sensor_msgs/CompressedImage topic.
        proprio: proprioception topic, or None for none (P = 0).
        proprio_fields: dotted field paths read from it; a path ending on an array adds all its values.
        proprio_scale: per-value multipliers (e.g. dt to turn a velocity into a per-step displacement).
        action: action topic (ignored for "proprio_diff" and "none").
        action_type: TwistStamped, Twist, Float32MultiArray, JointState, "proprio_diff" (the change of
            the proprio values ``action_proprio_indices`` to the next frame) or "none".
        action_fields: dotted paths; defaults by action_type (linear.x/y, data, velocity).
        action_scale: per-value multipliers.
        action_proprio_indices: proprio values differenced for "proprio_diff".
        state: optional privileged state topic (probes only); ``state_fields`` as for proprio.
        episode_topic: a message on it starts a new episode (its log time), or None.
        episode_gap_s: also split where consecutive frames are more than this apart, or None.
        resample_hz: keep frames on a grid of this rate (nearest earlier frame), or None for all.
        max_skew_s: how old the aligned message may be relative to a frame.
        zero_action_before_first: frames before the first action message get zeros (else an error).
    """

    image: str = "/camera/image_raw"
    proprio: str | None = "/odom"
    proprio_fields: tuple[str, ...] = (
        "pose.pose.position.x",
        "pose.pose.position.y",
        "twist.twist.linear.x",
        "twist.twist.linear.y",
    )
    proprio_scale: tuple[float, ...] | None = None
    action: str | None = "/cmd"
    action_type: str = "TwistStamped"
    action_fields: tuple[str, ...] | None = None
    action_scale: tuple[float, ...] | None = None
    action_proprio_indices: tuple[int, ...] = (0, 1)
    state: str | None = None
    state_fields: tuple[str, ...] = ("position",)
    episode_topic: str | None = "/episode"
    episode_gap_s: float | None = None
    resample_hz: float | None = None
    max_skew_s: float = 0.05
    zero_action_before_first: bool = True
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.action_type not in ACTION_TYPES:
            raise ValueError(f"BagTopics.action_type must be one of {ACTION_TYPES}, got {self.action_type!r}")
        if self.max_skew_s < 0 or (self.resample_hz is not None and self.resample_hz <= 0):
            raise ValueError(f"BagTopics: max_skew_s must be >= 0 and resample_hz > 0, got {self.max_skew_s}, {self.resample_hz}")

    def resolved_action_fields(self) -> tuple[str, ...]:
        return self.action_fields if self.action_fields is not None else _DEFAULT_ACTION_FIELDS.get(self.action_type, ())

    def key(self) -> str:
        """Stable text of the fields that change the decoded arrays (for cache keys)."""
        d = dataclasses.asdict(self)
        d.pop("extra")
        return json.dumps(d, sort_keys=True)


def default_topics(world: str = "two_rooms", dt: float = 0.1) -> BagTopics:
    """Topic config for bags written by ``jepa-collect`` (see ``jepa_sim.bag_format``)."""
    if world in ("two_rooms", "multi_room"):
        return BagTopics(proprio_scale=(1.0, 1.0, dt, dt), action_scale=(dt, dt), state="/true_state")
    return BagTopics(
        proprio="/proprio", proprio_fields=("position",), action="/cmd_joint", action_type="JointState", state="/true_state"
    )


DEFAULT_TOPICS: dict[str, BagTopics] = {
    name: default_topics(name) for name in ("two_rooms", "multi_room", "point_maze", "push_t")
}


# ------------------------------------------------------------------------------------------ public
def load_bags(
    paths: list[str | Path],
    config: BagTopics | None = None,
    cache_dir: Path | None = None,
    on_error: Literal["raise", "skip"] = "raise",
) -> EpisodeSet:
    """Load bags into one EpisodeSet.

    Args:
        paths: rosbag2 bag directories (or single .mcap/.db3 files).
        config: topics and fields; ``default_topics()`` (our two-rooms bags) when None.
        cache_dir: where decoded arrays are cached (frames memory-mapped); None decodes in memory.
        on_error: "raise" stops at the first bad bag; "skip" loads the others and lists the bad
            ones in ``metadata["skipped"]`` as {"path", "error"}.

    Raises:
        BagError: unreadable/truncated bag, missing topic, bad image or misaligned topics (names file and topic).
        ValueError: no bag path given, bad on_error, or every bag skipped.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not paths:
        raise ValueError("load_bags needs at least one bag path")
    config = config or default_topics()
    episodes: list[Episode] = []
    recordings: list[Any] = []
    skipped: list[dict[str, str]] = []
    for raw in paths:
        path = Path(raw)
        try:
            eps, recording = _load_one(path, config, cache_dir)
        except BagError as err:
            if on_error == "raise":
                raise
            skipped.append({"path": str(path), "error": str(err)})
            continue
        episodes.extend(eps)
        recordings.append(recording)
    if not episodes:
        raise BagError(f"no episodes loaded from {len(paths)} bag(s); skipped: {skipped}")
    _check_compatible(episodes)
    metadata: dict[str, Any] = {
        "sources": [str(p) for p in paths],
        "topics": json.loads(config.key()),
        "recordings": recordings,
        "skipped": skipped,
    }
    worlds = {r.get("world") for r in recordings if isinstance(r, dict)}
    if len(worlds) == 1 and None not in worlds:
        first = next(r for r in recordings if isinstance(r, dict))
        metadata.update(
            world=first["world"], world_spec=first.get("world_spec"), policy=first.get("policy"), seed=first.get("seed")
        )
    return EpisodeSet(episodes=episodes, metadata=metadata)


# ------------------------------------------------------------------------------------------ one bag
def _load_one(path: Path, config: BagTopics, cache_dir: Path | None) -> tuple[list[Episode], Any]:
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    cache = _cache_path(path, config, cache_dir) if cache_dir is not None else None
    if cache is not None and (cache / "done").exists():
        return _read_cache(cache, path)
    arrays, recording = _decode(path, config, cache)
    if cache is not None:
        _write_cache(cache, arrays, recording)
        return _read_cache(cache, path)
    return _split(arrays, str(path)), recording


def _bag_fingerprint(path: Path) -> list[tuple[str, int, int]]:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]


def _cache_path(path: Path, config: BagTopics, cache_dir: Path) -> Path:
    key = json.dumps([CACHE_VERSION, _bag_fingerprint(path), config.key()])
    return Path(cache_dir) / f"{path.name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def _open_reader(path: Path) -> Any:
    from rosbags.highlevel import AnyReader

    try:
        reader = AnyReader([path])
        reader.open()
    except Exception as err:
        raise BagError(f"bag {path}: cannot open ({type(err).__name__}: {err}); is it a complete rosbag2 bag?") from err
    return reader


def _decode(path: Path, config: BagTopics, cache: Path | None) -> tuple[dict[str, np.ndarray], Any]:
    """Read one bag into flat arrays over its frames plus episode starts."""
    reader = _open_reader(path)
    try:
        topics = {c.topic: c for c in reader.connections}
        wanted = {"image": config.image}
        if config.proprio:
            wanted["proprio"] = config.proprio
        if config.action_type not in ("proprio_diff", "none"):
            if not config.action:
                raise BagError(f"bag {path}: action_type {config.action_type} needs an action topic")
            wanted["action"] = config.action
        if config.state:
            wanted["state"] = config.state
        if config.episode_topic:
            wanted["episode"] = config.episode_topic
        for role, topic in wanted.items():
            if topic not in topics:
                raise BagError(
                    f"bag {path}: topic {topic} ({role}) not found; the bag has: {', '.join(sorted(topics)) or 'no topics'}"
                )
        conns = [c for c in reader.connections if c.topic in wanted.values() or c.topic == "/metadata"]
        role_of = {topic: role for role, topic in wanted.items()}
        frames: list[np.ndarray] = []
        frame_stamps: list[int] = []
        series: dict[str, tuple[list[int], list[np.ndarray]]] = {r: ([], []) for r in ("proprio", "action", "state")}
        episode_starts: list[int] = []
        recording: Any = None
        expected_hw: tuple[int, int] | None = None
        try:
            for conn, log_ns, raw in reader.messages(connections=conns):
                if conn.topic == "/metadata" and conn.topic not in role_of:
                    recording = _parse_json(reader.deserialize(raw, conn.msgtype).data)
                    continue
                role = role_of[conn.topic]
                if role == "episode":
                    episode_starts.append(int(log_ns))
                    continue
                try:
                    msg = reader.deserialize(raw, conn.msgtype)
                except Exception as err:
                    raise BagError(f"bag {path}: topic {conn.topic}: cannot decode a {conn.msgtype} message ({err})") from err
                stamp = _stamp_ns(msg, log_ns)
                if role == "image":
                    img = _image_to_rgb(msg, conn.msgtype, path, conn.topic)
                    if expected_hw is None:
                        expected_hw = img.shape[:2]
                    elif img.shape[:2] != expected_hw:
                        raise BagError(
                            f"bag {path}: topic {conn.topic}: image size {img.shape[1]}x{img.shape[0]} "
                            f"differs from the first one {expected_hw[1]}x{expected_hw[0]}"
                        )
                    frames.append(img)
                    frame_stamps.append(stamp)
                else:
                    fields = {
                        "proprio": config.proprio_fields,
                        "action": config.resolved_action_fields(),
                        "state": config.state_fields,
                    }[role]
                    scale = {"proprio": config.proprio_scale, "action": config.action_scale, "state": None}[role]
                    series[role][0].append(stamp)
                    series[role][1].append(_extract(msg, fields, scale, path, conn.topic))
        except BagError:
            raise
        except Exception as err:
            raise BagError(
                f"bag {path}: reading failed ({type(err).__name__}: {err}); the bag may be truncated or corrupted"
            ) from err
        if recording is None:
            recording = _custom_metadata(reader)
    finally:
        reader.close()
    if not frames:
        raise BagError(f"bag {path}: topic {config.image} has no messages")
    return _assemble(path, config, frames, np.asarray(frame_stamps, dtype=np.int64), series, episode_starts), recording


def _assemble(
    path: Path,
    config: BagTopics,
    frames: list[np.ndarray],
    stamps: np.ndarray,
    series: dict[str, tuple[list[int], list[np.ndarray]]],
    episode_starts: list[int],
) -> dict[str, np.ndarray]:
    order = np.argsort(stamps, kind="stable")
    stamps = stamps[order]
    if config.resample_hz:
        keep = _resample(stamps, episode_starts, config)
        order, stamps = order[keep], stamps[keep]
    n = len(stamps)
    out: dict[str, np.ndarray] = {"frames": np.stack([frames[i] for i in order]), "stamps_ns": stamps}
    skew_ns = int(config.max_skew_s * 1e9)
    # episode boundaries: markers, time gaps, or one episode
    boundary = np.zeros(n, dtype=bool)
    boundary[0] = True
    if config.episode_topic and episode_starts:
        marker_idx = np.searchsorted(stamps, np.asarray(sorted(episode_starts)), side="left")
        boundary[marker_idx[marker_idx < n]] = True
    if config.episode_gap_s is not None:
        boundary[1:] |= np.diff(stamps) > int(config.episode_gap_s * 1e9)
    out["episode_starts"] = np.flatnonzero(boundary)
    for role, topic in (("proprio", config.proprio), ("state", config.state)):
        if topic:
            out[role] = _align(path, topic, series[role], stamps, skew_ns, allow_before_first=False)
    if config.proprio is None:
        out["proprio"] = np.zeros((n, 0), dtype=np.float32)
    if config.action_type == "proprio_diff":
        if config.proprio is None:
            raise BagError(f"bag {path}: action_type proprio_diff needs a proprio topic")
        pos = out["proprio"][:, list(config.action_proprio_indices)]
        act = np.zeros_like(pos)
        act[:-1] = pos[1:] - pos[:-1]
        act[np.flatnonzero(boundary)[1:] - 1] = 0.0  # no transition across episodes
        act[-1] = 0.0
        out["actions"] = act
    elif config.action_type == "none":
        out["actions"] = np.zeros((n, 0), dtype=np.float32)
    else:
        out["actions"] = _align(
            path, config.action or "", series["action"], stamps, skew_ns, allow_before_first=config.zero_action_before_first
        )
        ends = np.append(np.flatnonzero(boundary)[1:] - 1, n - 1)
        out["actions"][ends] = 0.0  # padding row: no action leads out of an episode's last frame
    return out


def _align(
    path: Path,
    topic: str,
    data: tuple[list[int], list[np.ndarray]],
    frame_stamps: np.ndarray,
    skew_ns: int,
    allow_before_first: bool,
) -> np.ndarray:
    stamps_list, values = data
    if not values:
        raise BagError(f"bag {path}: topic {topic} has no messages")
    widths = {len(v) for v in values}
    if len(widths) != 1:
        raise BagError(f"bag {path}: topic {topic}: messages have different numbers of values {sorted(widths)}")
    stamps = np.asarray(stamps_list, dtype=np.int64)
    order = np.argsort(stamps, kind="stable")
    stamps, table = stamps[order], np.stack(values)[order].astype(np.float32)
    idx = np.searchsorted(stamps, frame_stamps, side="right") - 1
    before = idx < 0
    out = table[np.maximum(idx, 0)].copy()
    age = frame_stamps - stamps[np.maximum(idx, 0)]
    if before.any():
        if not allow_before_first:
            t = frame_stamps[np.flatnonzero(before)[0]] / 1e9
            raise BagError(f"bag {path}: topic {topic} has no message at or before the frame at t={t:.3f} s")
        out[before] = 0.0
    too_old = ~before & (age > skew_ns)
    if too_old.any() and not allow_before_first:
        i = np.flatnonzero(too_old)[0]
        raise BagError(
            f"bag {path}: topic {topic}: newest message before the frame at t={frame_stamps[i] / 1e9:.3f} s "
            f"is {age[i] / 1e6:.1f} ms old (max_skew_s {skew_ns / 1e9})"
        )
    if too_old.any():
        out[too_old] = 0.0  # no recent command: the robot was idle
    return out


def _resample(stamps: np.ndarray, episode_starts: list[int], config: BagTopics) -> np.ndarray:
    """Indices of frames nearest-earlier to a ``resample_hz`` grid restarted at each episode."""
    period = round(1e9 / config.resample_hz)
    starts = sorted({int(stamps[0]), *(s for s in episode_starts if s >= stamps[0])})
    keep: list[int] = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else int(stamps[-1]) + 1
        lo = int(np.searchsorted(stamps, start, side="left"))
        if lo >= len(stamps) or stamps[lo] >= end:
            continue
        grid = np.arange(int(stamps[lo]), end, period, dtype=np.int64)
        idx = np.searchsorted(stamps, grid, side="right") - 1
        keep.extend(sorted(set(int(i) for i in idx if i >= lo)))
    return np.asarray(keep, dtype=np.int64)


def _split(arrays: dict[str, Any], source: str) -> list[Episode]:
    starts = [*list(arrays["episode_starts"]), len(arrays["stamps_ns"])]
    eps = []
    for k in range(len(starts) - 1):
        a, b = int(starts[k]), int(starts[k + 1])
        ep = Episode(
            frames=arrays["frames"][a:b],
            actions=arrays["actions"][a:b],
            proprio=arrays["proprio"][a:b],
            state=arrays["state"][a:b] if "state" in arrays else None,
            stamps_ns=arrays["stamps_ns"][a:b],
            source=f"{source}#{k}",
        )
        ep.validate()
        eps.append(ep)
    return eps


def _check_compatible(episodes: list[Episode]) -> None:
    first = episodes[0]
    for ep in episodes[1:]:
        for name in ("frames", "actions", "proprio"):
            if getattr(ep, name).shape[1:] != getattr(first, name).shape[1:]:
                raise BagError(
                    f"{ep.source}: {name} shape {getattr(ep, name).shape[1:]} differs from {first.source}'s {getattr(first, name).shape[1:]}"
                )


# ------------------------------------------------------------------------------------------ cache
def _write_cache(cache: Path, arrays: dict[str, np.ndarray], recording: Any) -> None:
    tmp = cache.with_name(cache.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, arr in arrays.items():
        np.save(tmp / f"{name}.npy", arr)
    (tmp / "recording.json").write_text(json.dumps(recording))
    (tmp / "done").write_text("ok")
    shutil.rmtree(cache, ignore_errors=True)
    os.replace(tmp, cache)


def _read_cache(cache: Path, path: Path) -> tuple[list[Episode], Any]:
    arrays: dict[str, Any] = {}
    for f in cache.glob("*.npy"):
        arrays[f.stem] = np.load(f, mmap_mode="r" if f.stem == "frames" else None)
    recording = json.loads((cache / "recording.json").read_text())
    return _split(arrays, str(path)), recording


# ------------------------------------------------------------------------------------------ messages
def _stamp_ns(msg: Any, log_ns: int) -> int:
    header = getattr(msg, "header", None)
    if header is not None and (header.stamp.sec or header.stamp.nanosec):
        return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    return int(log_ns)


def _extract(msg: Any, fields: tuple[str, ...], scale: tuple[float, ...] | None, path: Path, topic: str) -> np.ndarray:
    values: list[float] = []
    for dotted in fields:
        obj = msg
        for part in dotted.split("."):
            if not hasattr(obj, part):
                raise BagError(f"bag {path}: topic {topic}: field {dotted!r} not in {type(msg).__name__} (at {part!r})")
            obj = getattr(obj, part)
        values.extend(np.asarray(obj, dtype=np.float64).reshape(-1).tolist())
    vec = np.asarray(values, dtype=np.float64)
    if scale is not None:
        if len(scale) != len(vec):
            raise BagError(f"bag {path}: topic {topic}: {len(scale)} scale values for {len(vec)} field values")
        vec = vec * np.asarray(scale)
    return vec


def _image_to_rgb(msg: Any, msgtype: str, path: Path, topic: str) -> np.ndarray:
    if msgtype.endswith("CompressedImage"):
        import imageio.v3 as iio

        try:
            arr = np.asarray(iio.imread(bytes(msg.data)))
        except Exception as err:
            raise BagError(f"bag {path}: topic {topic}: cannot decode compressed image ({msg.format}): {err}") from err
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        return np.ascontiguousarray(arr[..., :3], dtype=np.uint8)
    if not msgtype.endswith("/Image"):
        raise BagError(f"bag {path}: topic {topic}: type {msgtype} is not sensor_msgs/msg/Image or CompressedImage")
    try:
        return image_to_array(msg)
    except ImageError as err:
        raise BagError(f"bag {path}: topic {topic}: {err}") from err


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {"text": text}


def _custom_metadata(reader: Any) -> Any:
    for r in getattr(reader, "readers", []):
        custom = (
            getattr(getattr(r, "metadata", None), "get", lambda *_: None)("custom_data")
            if isinstance(getattr(r, "metadata", None), dict)
            else None
        )
        if custom and "jepa.metadata" in custom:
            return _parse_json(custom["jepa.metadata"])
    return None
