"""Load rosbag2 bags (MCAP or sqlite3, ours or any robot's) into an ``EpisodeSet``, with a data report.

Message types come from each bag's embedded definitions (rosbags ``AnyReader``), so any robot's bag
loads without its message packages. Header stamps are used when a message has a header, the bag's log
time otherwise (headerless ``Twist`` on ``/cmd_vel``).

How topics are aligned to the camera frames:

* **proprio / state** (measurements): the newest message at or before the frame, at most ``max_skew_s``
  old. Frames without one are dropped and counted: leading frames (the camera started before the
  odometry), trailing ones (it stopped after), and interior ones (a gap; the episode is split there so no
  transition spans the hole).
* **actions** (commands): zero-order hold. A command stays in force until the next one, up to
  ``action_timeout_s`` (a base controller's cmd_vel timeout); after that, and before the first command,
  the row is zero. Every zeroed row is counted by reason in the report.
* **resample_hz**: each kept frame is followed by the frame nearest to one period later, within half a
  period, so a camera at that rate keeps every frame under jitter; a period with no frame splits the episode.

Every frame of the bag is either kept or counted under a reason (``BagReport.dropped``).

Decoded arrays are cached in ``cache_dir`` (frames as a memory-mapped ``.npy``), keyed by the bag's
content (MCAP summary and sampled file blocks, sizes) and the topics config; an entry for the same bag
path with other content is removed when the new one is written.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from jepa_common.episodes import Episode, EpisodeSet
from jepa_common.ros_common import ImageError, image_to_array

CACHE_VERSION = 2
ACTION_TYPES = ("TwistStamped", "Twist", "Float32MultiArray", "JointState", "proprio_diff", "none")
COMMAND_TYPES = {
    "TwistStamped": "geometry_msgs/msg/TwistStamped",
    "Twist": "geometry_msgs/msg/Twist",
    "Float32MultiArray": "std_msgs/msg/Float32MultiArray",
    "JointState": "sensor_msgs/msg/JointState",
}
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
_DEFAULT_ACTION_FIELDS = {
    "TwistStamped": ("twist.linear.x", "twist.linear.y"),
    "Twist": ("linear.x", "linear.y"),
    "Float32MultiArray": ("data",),
    "JointState": ("velocity",),
}
# the robot counts as moving above these odometry speeds (report only)
MOVING_LINEAR_MPS = 0.02
MOVING_ANGULAR_RPS = 0.05
_MOTION_FIELDS = ("twist.twist.linear.x", "twist.twist.linear.y", "twist.twist.angular.z")
_STALE_TMP_S = 3600.0


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
        action: action (command) topic (ignored for "proprio_diff" and "none").
        action_type: TwistStamped, Twist, Float32MultiArray, JointState (checked against the recorded
            type), "proprio_diff" (the change of the proprio values ``action_proprio_indices`` to the next
            frame) or "none".
        action_fields: dotted paths; defaults by action_type (linear.x/y, data, velocity).
        action_scale: per-value multipliers.
        action_proprio_indices: proprio values differenced for "proprio_diff".
        state: optional privileged state topic (probes only); ``state_fields`` as for proprio.
        episode_topic: a message on it starts a new episode (its log time), or None.
        episode_gap_s: also split where consecutive frames are more than this apart, or None.
        resample_hz: keep frames at this rate (next frame nearest to one period after the last kept one,
            within half a period), or None for all.
        max_skew_s: how old the aligned proprio/state message may be relative to a frame.
        action_timeout_s: how long a command stays in force without a newer one (zero-order hold);
            older than this the action row is zero (counted), like a base controller's cmd_vel timeout.
        zero_action_before_first: frames before the first command get zeros (counted); else they are
            dropped (counted).
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
    action_timeout_s: float = 0.5
    zero_action_before_first: bool = True
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.action_type not in ACTION_TYPES:
            raise ValueError(f"BagTopics.action_type must be one of {ACTION_TYPES}, got {self.action_type!r}")
        if self.max_skew_s < 0 or (self.resample_hz is not None and self.resample_hz <= 0):
            raise ValueError(f"BagTopics: max_skew_s must be >= 0 and resample_hz > 0, got {self.max_skew_s}, {self.resample_hz}")
        if self.action_timeout_s <= 0:
            raise ValueError(f"BagTopics.action_timeout_s must be > 0 seconds, got {self.action_timeout_s}")

    def resolved_action_fields(self) -> tuple[str, ...]:
        return self.action_fields if self.action_fields is not None else _DEFAULT_ACTION_FIELDS.get(self.action_type, ())

    def key(self) -> str:
        """Stable text of the fields that change the decoded arrays (for cache keys)."""
        d = dataclasses.asdict(self)
        d.pop("extra")
        return json.dumps(d, sort_keys=True)

    def for_bag(self, path: str | Path) -> BagTopics:
        """The config of one bag (the same for every bag; see ``TopicsPerBag``)."""
        return self


@dataclass(frozen=True)
class TopicsPerBag:
    """A topics config per bag: the first glob that matches picks a bag's config.

    A glob with a ``/`` is matched against the bag's path as given, one without against its name.

    Lets bags recorded differently (JPEG and raw cameras, renamed topics) train together.
    """

    default: BagTopics
    rules: tuple[tuple[str, BagTopics], ...] = ()

    def for_bag(self, path: str | Path) -> BagTopics:
        text, name = str(path), Path(path).name
        for pattern, cfg in self.rules:
            if fnmatch.fnmatch(text if "/" in pattern else name, pattern):
                return cfg
        return self.default

    @property
    def image(self) -> str:
        return self.default.image

    def key(self) -> str:
        return json.dumps(
            {"default": json.loads(self.default.key()), "per_bag": {p: json.loads(c.key()) for p, c in self.rules}},
            sort_keys=True,
        )


def default_topics(world: str = "two_rooms", dt: float = 0.1) -> BagTopics:
    """Topic config for bags written by ``jepa-collect`` (see ``jepa_common.bag_format``)."""
    if world in ("two_rooms", "multi_room"):
        return BagTopics(proprio_scale=(1.0, 1.0, dt, dt), action_scale=(dt, dt), state="/true_state")
    return BagTopics(
        proprio="/proprio", proprio_fields=("position",), action="/cmd_joint", action_type="JointState", state="/true_state"
    )


DEFAULT_TOPICS: dict[str, BagTopics] = {
    name: default_topics(name) for name in ("two_rooms", "multi_room", "point_maze", "push_t")
}


def _topics_one(raw: dict[str, Any], base: BagTopics | None, where: str) -> BagTopics:
    raw = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    try:
        if "preset" in raw:
            base = default_topics(str(raw.pop("preset")), float(raw.pop("dt", 0.1)))
        if base is not None:
            return dataclasses.replace(base, **raw)
        return BagTopics(**raw)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}; valid keys are the fields of jepa_world_model.data.bags.BagTopics") from None
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def topics_from_mapping(raw: dict[str, Any] | None, where: str = "topics config") -> BagTopics | TopicsPerBag | None:
    """A topics config from its YAML mapping (None or {}: the built-in worlds' default).

    Keys are ``BagTopics`` fields; ``preset: <world>`` (with ``dt``) starts from a built-in world's topics;
    ``per_bag: {glob: {overrides}}`` gives bags whose name (or path, for a glob with a ``/``) matches the glob their own overrides of
    the rest of the mapping (first match wins).
    """
    if not raw:
        return None
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a mapping, got {type(raw).__name__}")
    raw = dict(raw)
    per_bag = raw.pop("per_bag", None)
    default = _topics_one(raw, None, where) if raw else default_topics()
    if per_bag is None:
        return default
    if not isinstance(per_bag, dict) or not all(isinstance(v, dict) for v in per_bag.values()):
        raise ValueError(
            f"{where}: per_bag must map a glob to a mapping of overrides, e.g. {{'*_jpeg*': {{image: /cam/compressed}}}}"
        )
    rules = tuple((str(g), _topics_one(v, default, f"{where}: per_bag[{g!r}]")) for g, v in per_bag.items())
    return TopicsPerBag(default, rules)


# ------------------------------------------------------------------------------------------ report
@dataclass
class BagReport:
    """What loading one bag kept, dropped and zeroed, and why; ``to_dict`` is what gets saved.

    Attributes:
        bag: bag path.
        frames_total: camera messages in the bag.
        frames_kept: frames in the episodes.
        dropped: frames not kept, by reason (kept + sum(dropped) == frames_total).
        episodes: episodes made; ``splits`` counts why episodes were split.
        topics: per role, the topic, its type, message count, rate (Hz), median and largest period (ms).
        actions: action rows by origin: from a command, zeroed (before the first command, command timed
            out), padding rows (an episode's last), zero rows while odometry shows motion.
        warnings: lines a person should read (e.g. many zero actions while moving).
    """

    bag: str
    frames_total: int = 0
    frames_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    episodes: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    topics: dict[str, dict[str, Any]] = field(default_factory=dict)
    actions: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def format_data_report(reports: list[dict[str, Any]]) -> str:
    """Human-readable lines of per-bag data reports (as in ``EpisodeSet.metadata['data_report']``)."""
    lines = []
    for r in reports:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(r["dropped"].items()) if v) or "none"
        lines.append(
            f"bag {r['bag']}: kept {r['frames_kept']}/{r['frames_total']} frames in {r['episodes']} episode(s); dropped: {dropped}"
        )
        by_topic = {t["topic"]: t for t in r["topics"].values() if t.get("rate_hz") is not None}
        rates = ", ".join(f"{topic} {t['rate_hz']:.1f} Hz" for topic, t in by_topic.items())
        if rates:
            lines.append(f"  rates: {rates}")
        a = r.get("actions") or {}
        if a.get("source") == "command":
            moving = a.get("zero_while_moving_fraction")
            lines.append(
                f"  actions: {a['from_command']} from the command in force, {a['zero_before_first_command']} zero before the "
                f"first command, {a['zero_command_timeout']} zero after the {a['timeout_s']} s command timeout, "
                f"{a['padding_rows']} padding; zero while moving: "
                + (f"{a['zero_while_moving']}/{a['moving_rows']} ({100 * moving:.1f}%)" if moving is not None else "no odometry")
            )
        elif a:
            lines.append(f"  actions: {a.get('source')}, {a.get('padding_rows', 0)} padding rows")
        lines.extend(f"  warning: {w}" for w in r.get("warnings", []))
    return "\n".join(lines)


def write_data_report(reports: list[dict[str, Any]], out_dir: str | Path) -> Path:
    """Write ``data_report.json`` (the per-bag reports) into ``out_dir``; returns its path."""
    out = Path(out_dir) / "data_report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"bags": reports}, indent=1))
    return out


# ------------------------------------------------------------------------------------------ public
def load_bags(
    paths: list[str | Path],
    config: BagTopics | TopicsPerBag | None = None,
    cache_dir: Path | None = None,
    on_error: Literal["raise", "skip"] = "raise",
) -> EpisodeSet:
    """Load bags into one EpisodeSet; ``metadata["data_report"]`` holds one ``BagReport`` dict per bag.

    Args:
        paths: rosbag2 bag directories (or single .mcap/.db3 files).
        config: topics and fields (one for all bags, or ``TopicsPerBag``); ``default_topics()`` when None.
        cache_dir: where decoded arrays are cached (frames memory-mapped); None decodes in memory.
        on_error: "raise" stops at the first bad bag; "skip" loads the others and lists the bad
            ones in ``metadata["skipped"]`` as {"path", "error"}.

    Raises:
        BagError: unreadable/truncated bag, missing topic, wrong type, bad image (names file and topic).
        ValueError: no bag path given, bad on_error, or every bag skipped.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not paths:
        raise ValueError("load_bags needs at least one bag path")
    config = config or default_topics()
    episodes: list[Episode] = []
    recordings: list[Any] = []
    reports: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for raw in paths:
        path = Path(raw)
        try:
            eps, recording, report = _load_one(path, config.for_bag(path), cache_dir)
        except BagError as err:
            if on_error == "raise":
                raise
            skipped.append({"path": str(path), "error": str(err)})
            continue
        episodes.extend(eps)
        recordings.append(recording)
        reports.append(report)
    if not episodes:
        raise BagError(f"no episodes loaded from {len(paths)} bag(s); skipped: {skipped}")
    _check_compatible(episodes)
    metadata: dict[str, Any] = {
        "sources": [str(p) for p in paths],
        "topics": json.loads(config.key()),
        "recordings": recordings,
        "skipped": skipped,
        "data_report": reports,
    }
    worlds = {r.get("world") for r in recordings if isinstance(r, dict)}
    if len(worlds) == 1 and None not in worlds:
        first = next(r for r in recordings if isinstance(r, dict))
        metadata.update(
            world=first["world"], world_spec=first.get("world_spec"), policy=first.get("policy"), seed=first.get("seed")
        )
    return EpisodeSet(episodes=episodes, metadata=metadata)


# ------------------------------------------------------------------------------------------ one bag
def _load_one(path: Path, config: BagTopics, cache_dir: Path | None) -> tuple[list[Episode], Any, dict[str, Any]]:
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    cache = _cache_path(path, config, cache_dir) if cache_dir is not None else None
    if cache is not None and (cache / "done").exists():
        return _read_cache(cache, path)
    arrays, recording, report = _decode(path, config)
    if cache is not None:
        _write_cache(cache, arrays, recording, report, path, config)
        return _read_cache(cache, path)
    return _split(arrays, str(path)), recording, report.to_dict()


def _open_reader(path: Path) -> Any:
    from rosbags.highlevel import AnyReader

    try:
        reader = AnyReader([path])
        reader.open()
    except Exception as err:
        raise BagError(f"bag {path}: cannot open ({type(err).__name__}: {err}); is it a complete rosbag2 bag?") from err
    return reader


def _topic_stats(topic: str, msgtype: str, log_ns: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"topic": topic, "type": msgtype, "messages": len(log_ns), "rate_hz": None}
    if len(log_ns) >= 2:
        t = np.sort(np.asarray(log_ns, dtype=np.int64))
        periods = np.diff(t)
        span = float(t[-1] - t[0])
        out.update(
            rate_hz=round((len(t) - 1) / (span * 1e-9), 3) if span > 0 else None,
            median_period_ms=round(float(np.median(periods)) / 1e6, 3),
            max_period_ms=round(float(periods.max()) / 1e6, 3),
        )
    return out


def _decode(path: Path, config: BagTopics) -> tuple[dict[str, np.ndarray], Any, BagReport]:
    """Read one bag into flat arrays over its kept frames, episode starts and the report."""
    reader = _open_reader(path)
    report = BagReport(bag=str(path))
    try:
        types = {c.topic: c.msgtype for c in reader.connections}
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
            if topic not in types:
                raise BagError(
                    f"bag {path}: topic {topic} ({role}) not found; the bag has: {', '.join(sorted(types)) or 'no topics'}"
                )
        _check_types(path, config, types)
        # odometry, when there is one, tells the report whether the robot was moving
        odom = config.proprio if config.proprio and types[config.proprio] == ODOMETRY_TYPE else None
        odom = odom or next((t for t, ty in sorted(types.items()) if ty == ODOMETRY_TYPE), None)
        roles_of: dict[str, list[str]] = {}
        for role, topic in wanted.items():
            roles_of.setdefault(topic, []).append(role)
        if odom:
            roles_of.setdefault(odom, []).append("motion")
        conns = [c for c in reader.connections if c.topic in roles_of or c.topic == "/metadata"]
        frames: list[np.ndarray] = []
        frame_stamps: list[int] = []
        series: dict[str, tuple[list[int], list[np.ndarray]]] = {r: ([], []) for r in ("proprio", "action", "state", "motion")}
        log_times: dict[str, list[int]] = {role: [] for role in [*wanted, "motion"]}
        episode_starts: list[int] = []
        recording: Any = None
        expected_hw: tuple[int, int] | None = None
        fields = {
            "proprio": config.proprio_fields,
            "action": config.resolved_action_fields(),
            "state": config.state_fields,
            "motion": _MOTION_FIELDS,
        }
        scales = {"proprio": config.proprio_scale, "action": config.action_scale, "state": None, "motion": None}
        try:
            for conn, log_ns, raw in reader.messages(connections=conns):
                if conn.topic == "/metadata" and conn.topic not in roles_of:
                    recording = _parse_json(reader.deserialize(raw, conn.msgtype).data)
                    continue
                roles = roles_of[conn.topic]
                for role in roles:
                    log_times[role].append(int(log_ns))
                if roles == ["episode"]:
                    episode_starts.append(int(log_ns))
                    continue
                try:
                    msg = reader.deserialize(raw, conn.msgtype)
                except Exception as err:
                    raise BagError(f"bag {path}: topic {conn.topic}: cannot decode a {conn.msgtype} message ({err})") from err
                stamp = _stamp_ns(msg, log_ns)
                for role in roles:
                    if role == "episode":
                        episode_starts.append(int(log_ns))
                    elif role == "image":
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
                        series[role][0].append(stamp)
                        series[role][1].append(_extract(msg, fields[role], scales[role], path, conn.topic))
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
    topic_of = {**wanted, **({"motion": odom} if odom else {})}
    report.topics = {role: _topic_stats(topic, types[topic], log_times[role]) for role, topic in topic_of.items()}
    arrays = _assemble(path, config, frames, np.asarray(frame_stamps, dtype=np.int64), series, episode_starts, report)
    return arrays, recording, report


def _check_types(path: Path, config: BagTopics, types: dict[str, str]) -> None:
    """The recorded types must be what the config says (an image type; the declared command type)."""
    if types[config.image] not in IMAGE_TYPES:
        raise BagError(
            f"bag {path}: topic {config.image} has message type {types[config.image]}, not one of {', '.join(IMAGE_TYPES)}; "
            "set 'image' in the topics config to the camera topic"
        )
    expected = COMMAND_TYPES.get(config.action_type)
    if expected and config.action and types[config.action] != expected:
        recorded = types[config.action]
        fix = next((name for name, ty in COMMAND_TYPES.items() if ty == recorded), None)
        hint = f"set action_type: {fix}" if fix else f"use one of {', '.join(COMMAND_TYPES)} or action_type: proprio_diff"
        raise BagError(
            f"bag {path}: topic {config.action} records {recorded} but action_type is {config.action_type} ({expected}); {hint}"
        )


# ------------------------------------------------------------------------------------------ alignment
def _sorted_series(path: Path, topic: str, data: tuple[list[int], list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    stamps_list, values = data
    if not values:
        raise BagError(f"bag {path}: topic {topic} has no messages")
    widths = {len(v) for v in values}
    if len(widths) != 1:
        raise BagError(f"bag {path}: topic {topic}: messages have different numbers of values {sorted(widths)}")
    stamps = np.asarray(stamps_list, dtype=np.int64)
    order = np.argsort(stamps, kind="stable")
    return stamps[order], np.stack(values)[order].astype(np.float32)


def _latest(stamps: np.ndarray, frame_stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of the newest message at or before each frame (clipped to 0), whether there is none, its age."""
    idx = np.searchsorted(stamps, frame_stamps, side="right") - 1
    before = idx < 0
    idx = np.maximum(idx, 0)
    return idx, before, frame_stamps - stamps[idx]


def _edge_reasons(valid: np.ndarray, name: str) -> np.ndarray:
    """Reason per invalid frame: leading, trailing or interior (a gap) run of frames lacking ``name``."""
    reasons = np.full(len(valid), "", dtype=object)
    good = np.flatnonzero(valid)
    if len(good) == 0:
        reasons[:] = f"no_{name}"
        return reasons
    bad = ~valid
    pos = np.arange(len(valid))
    reasons[bad & (pos < good[0])] = f"leading_no_{name}"
    reasons[bad & (pos > good[-1])] = f"trailing_no_{name}"
    reasons[bad & (pos > good[0]) & (pos < good[-1])] = f"gap_no_{name}"
    return reasons


def _assemble(
    path: Path,
    config: BagTopics,
    frames: list[np.ndarray],
    stamps: np.ndarray,
    series: dict[str, tuple[list[int], list[np.ndarray]]],
    episode_starts: list[int],
    report: BagReport,
) -> dict[str, np.ndarray]:
    order = np.argsort(stamps, kind="stable")
    stamps = stamps[order]
    n = len(stamps)
    report.frames_total = n
    reason = np.full(n, "", dtype=object)  # why a frame is dropped ("" = kept so far)
    hole = np.zeros(n, dtype=bool)  # dropped frames that leave a hole in time (split the episode there)
    dup = np.zeros(n, dtype=bool)
    dup[1:] = np.diff(stamps) == 0
    reason[dup] = "duplicate_stamp"

    skew_ns = round(config.max_skew_s * 1e9)
    tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for role, topic in (("proprio", config.proprio), ("state", config.state)):
        if not topic:
            continue
        tables[role] = _sorted_series(path, topic, series[role])
        _, before, age = _latest(tables[role][0], stamps)
        valid = ~before & (age <= skew_ns)
        why = _edge_reasons(valid, role)
        if (why == f"no_{role}").all():
            raise BagError(
                f"bag {path}: topic {topic} ({role}) has no message within max_skew_s {config.max_skew_s} s of any camera frame; "
                "are the clocks of the two topics the same (header stamps)?"
            )
        new = (reason == "") & (why != "")
        reason[new] = why[new]
        hole |= why != ""
    command = config.action_type in COMMAND_TYPES
    if command:
        tables["action"] = _sorted_series(path, config.action or "", series["action"])
        if not config.zero_action_before_first:
            new = (reason == "") & (stamps < tables["action"][0][0])
            reason[new] = "leading_no_command"

    # episode boundaries over all frames: markers and time gaps
    splits: Counter[str] = Counter()
    boundary = np.zeros(n, dtype=object)
    boundary[:] = ""
    if config.episode_topic and episode_starts:
        marker_idx = np.searchsorted(stamps, np.asarray(sorted(episode_starts)), side="left")
        boundary[marker_idx[(marker_idx < n) & (marker_idx > 0)]] = "marker"
    if config.episode_gap_s is not None:
        gap = np.zeros(n, dtype=bool)
        gap[1:] = np.diff(stamps) > int(config.episode_gap_s * 1e9)
        boundary[gap & (boundary == "")] = "time_gap"
    segments: list[list[int]] = []
    pending = "start"
    for i in range(n):
        if boundary[i]:
            pending = pending or str(boundary[i])
        if reason[i]:
            if hole[i] and segments and not pending:
                pending = "dropped_frames"
            continue
        if pending or not segments:
            if segments and pending != "start":
                splits[pending] += 1
            segments.append([])
            pending = ""
        segments[-1].append(i)
    if not segments:
        counts = Counter(str(r) for r in reason)
        raise BagError(f"bag {path}: no frame could be kept ({dict(counts)}); check the topics config and max_skew_s")

    if config.resample_hz:
        segments = _resample(path, stamps, segments, config.resample_hz, reason, splits)
    kept_segments = []
    for seg in segments:
        if len(seg) < 2:  # one frame is no transition
            reason[seg] = "episode_of_one_frame"
        else:
            kept_segments.append(seg)
    if not kept_segments:
        counts = Counter(str(r) for r in reason)
        raise BagError(f"bag {path}: no episode of two or more frames could be made ({dict(counts)})")
    kept = np.concatenate([np.asarray(s, dtype=np.int64) for s in kept_segments])
    starts = np.cumsum([0] + [len(s) for s in kept_segments[:-1]])
    report.dropped = dict(sorted(Counter(str(r) for r in reason if r).items()))
    report.frames_kept = len(kept)
    report.episodes = len(kept_segments)
    report.splits = dict(splits)
    assert report.frames_kept + sum(report.dropped.values()) == n  # every frame kept or counted

    k_stamps = stamps[kept]
    m = len(kept)
    out: dict[str, np.ndarray] = {
        "frames": np.stack([frames[order[i]] for i in kept]),
        "stamps_ns": k_stamps,
        "episode_starts": starts.astype(np.int64),
    }
    for role in ("proprio", "state"):
        if role in tables:
            idx, _, _ = _latest(tables[role][0], k_stamps)
            out[role] = tables[role][1][idx].copy()
    if config.proprio is None:
        out["proprio"] = np.zeros((m, 0), dtype=np.float32)
    ends = np.append(starts[1:] - 1, m - 1)
    if config.action_type == "proprio_diff":
        if config.proprio is None:
            raise BagError(f"bag {path}: action_type proprio_diff needs a proprio topic")
        pos = out["proprio"][:, list(config.action_proprio_indices)]
        act = np.zeros_like(pos)
        act[:-1] = pos[1:] - pos[:-1]
        act[ends] = 0.0  # padding row: no transition across episodes
        out["actions"] = act
        report.actions = {"source": "proprio_diff", "rows": m, "padding_rows": len(ends)}
    elif config.action_type == "none":
        out["actions"] = np.zeros((m, 0), dtype=np.float32)
        report.actions = {"source": "none", "rows": m}
    else:
        cmd_stamps, cmd_table = tables["action"]
        idx, before, age = _latest(cmd_stamps, k_stamps)
        timeout = ~before & (age > round(config.action_timeout_s * 1e9))
        act = cmd_table[idx].copy()
        act[before | timeout] = 0.0
        padding = np.zeros(m, dtype=bool)
        padding[ends] = True
        act[padding] = 0.0  # padding row: no action leads out of an episode's last frame
        out["actions"] = act
        report.actions = _action_report(config, act, before, timeout, padding, series.get("motion"), k_stamps, path)
        report.warnings.extend(_action_warnings(report.actions, config))
    return out


def _action_report(
    config: BagTopics,
    act: np.ndarray,
    before: np.ndarray,
    timeout: np.ndarray,
    padding: np.ndarray,
    motion: tuple[list[int], list[np.ndarray]] | None,
    stamps: np.ndarray,
    path: Path,
) -> dict[str, Any]:
    rows = ~padding
    zero = (act == 0).all(axis=1) & rows
    out: dict[str, Any] = {
        "source": "command",
        "topic": config.action,
        "timeout_s": config.action_timeout_s,
        "rows": len(act),
        "padding_rows": int(padding.sum()),
        "from_command": int((rows & ~before & ~timeout).sum()),
        "zero_before_first_command": int((rows & before).sum()),
        "zero_command_timeout": int((rows & timeout).sum()),
        "zero_commanded": int((zero & ~before & ~timeout).sum()),
        "zero_rows": int(zero.sum()),
        "moving_rows": None,
        "zero_while_moving": None,
        "zero_while_moving_fraction": None,
    }
    if motion is not None and motion[1]:
        m_stamps, m_table = _sorted_series(path, "odometry", motion)
        idx, none_yet, _ = _latest(m_stamps, stamps)
        vel = m_table[idx]
        moving = (np.hypot(vel[:, 0], vel[:, 1]) > MOVING_LINEAR_MPS) | (np.abs(vel[:, 2]) > MOVING_ANGULAR_RPS)
        moving &= ~none_yet & rows
        out["moving_rows"] = int(moving.sum())
        out["zero_while_moving"] = int((zero & moving).sum())
        out["zero_while_moving_fraction"] = round(out["zero_while_moving"] / out["moving_rows"], 4) if moving.any() else 0.0
    return out


def _action_warnings(a: dict[str, Any], config: BagTopics) -> list[str]:
    warnings = []
    rows = max(a["rows"] - a["padding_rows"], 1)
    zeroed = a["zero_before_first_command"] + a["zero_command_timeout"]
    if zeroed > 0.2 * rows:
        warnings.append(
            f"{zeroed} of {rows} action rows are zero because no command was in force (timeout {config.action_timeout_s} s); "
            f"check that {config.action} is the command the robot executed and its rate"
        )
    frac = a.get("zero_while_moving_fraction")
    if frac is not None and frac > 0.1:
        warnings.append(
            f"{100 * frac:.0f}% of the frames where odometry shows motion have a zero action: the actions may not "
            "explain the motion (wrong command topic, action_timeout_s too short, or a second command source)"
        )
    return warnings


def _resample(
    path: Path, stamps: np.ndarray, segments: list[list[int]], hz: float, reason: np.ndarray, splits: Counter[str]
) -> list[list[int]]:
    """Frames at ``hz`` within each segment: after each kept frame, the frame nearest one period later
    within half a period; none there (a camera gap) splits the segment. Unpicked frames get a reason."""
    period = 1e9 / hz
    tol = period / 2
    all_kept = np.concatenate([np.asarray(s) for s in segments])
    if len(all_kept) > 2:
        camera_period = float(np.median(np.diff(stamps[all_kept])))
        if camera_period > 1.5 * period:
            raise BagError(
                f"bag {path}: resample_hz {hz} is above the camera rate ({1e9 / camera_period:.1f} Hz); "
                "use the camera rate or less (or resample_hz: null for every frame)"
            )
    out: list[list[int]] = []
    for seg in segments:
        idx = np.asarray(seg, dtype=np.int64)
        st = stamps[idx].astype(np.float64)
        cur = [int(idx[0])]
        picked = set(cur)
        j = 0
        while True:
            target = st[j] + period
            lo = max(int(np.searchsorted(st, target - tol, side="left")), j + 1)
            hi = int(np.searchsorted(st, target + tol, side="left"))
            if lo >= len(st):
                break
            if lo < hi:
                j = lo + int(np.argmin(np.abs(st[lo:hi] - target)))
            else:  # no frame within half a period: a camera gap
                out.append(cur)
                splits["camera_gap"] += 1
                j = lo
                cur = []
            cur.append(int(idx[j]))
            picked.add(int(idx[j]))
        out.append(cur)
        for i in seg:
            if i not in picked:
                reason[i] = "resampled_out"
    return out


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
_BLOCK = 64 * 1024
_SAMPLED_BLOCKS = 32
_WHOLE_FILE_BYTES = 8 * 1024 * 1024


def _file_digest(f: Path) -> str:
    """Hash of a file's content: whole when small; else its MCAP summary (chunk index: times, sizes,
    CRCs) plus evenly spaced blocks, so a re-recorded bag of the same size and mtime differs."""
    h = hashlib.sha256()
    size = f.stat().st_size
    h.update(f"{f.name}:{size}".encode())
    with open(f, "rb") as fh:
        if size <= _WHOLE_FILE_BYTES:
            h.update(fh.read())
            return h.hexdigest()
        if f.suffix == ".mcap" and size > 40:
            fh.seek(size - 28)  # footer: summary_start u64, summary_offset_start u64, crc u32, magic 8 bytes
            summary_start = int.from_bytes(fh.read(8), "little")
            if 0 < summary_start < size:
                fh.seek(summary_start)
                h.update(fh.read(size - summary_start))
        for k in range(_SAMPLED_BLOCKS + 1):
            fh.seek(min(size - _BLOCK, k * (size - _BLOCK) // _SAMPLED_BLOCKS))
            h.update(fh.read(_BLOCK))
    return h.hexdigest()


def bag_fingerprint(path: Path) -> str:
    """Content hash of a bag (all its files), independent of where it lies and of its mtime."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        h.update(_file_digest(f).encode())
    return h.hexdigest()


def _cache_path(path: Path, config: BagTopics, cache_dir: Path) -> Path:
    key = json.dumps([CACHE_VERSION, bag_fingerprint(path), config.key()])
    return Path(cache_dir) / f"{path.name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def _clean_cache(cache: Path, source: str, config_key: str) -> None:
    """Remove entries for the same bag path and config whose content is stale, and abandoned temp dirs."""
    now = time.time()
    for entry in cache.parent.glob(f"{cache.name.rsplit('-', 1)[0]}-*"):
        if entry == cache or not entry.is_dir():
            continue
        if ".tmp-" in entry.name:
            if now - entry.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(entry, ignore_errors=True)
            continue
        try:
            info = json.loads((entry / "source.json").read_text())
        except (OSError, ValueError):
            info = None
        if info is None or (info.get("path") == source and info.get("config") == config_key):
            shutil.rmtree(entry, ignore_errors=True)


def _write_cache(
    cache: Path, arrays: dict[str, np.ndarray], recording: Any, report: BagReport, path: Path, config: BagTopics
) -> None:
    tmp = cache.with_name(cache.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, arr in arrays.items():
        np.save(tmp / f"{name}.npy", arr)
    (tmp / "recording.json").write_text(json.dumps(recording))
    (tmp / "report.json").write_text(json.dumps(report.to_dict()))
    source = str(path.resolve())
    (tmp / "source.json").write_text(json.dumps({"path": source, "config": config.key()}))
    (tmp / "done").write_text("ok")
    shutil.rmtree(cache, ignore_errors=True)
    os.replace(tmp, cache)
    _clean_cache(cache, source, config.key())


def _read_cache(cache: Path, path: Path) -> tuple[list[Episode], Any, dict[str, Any]]:
    arrays: dict[str, Any] = {}
    for f in cache.glob("*.npy"):
        arrays[f.stem] = np.load(f, mmap_mode="r" if f.stem == "frames" else None)
    recording = json.loads((cache / "recording.json").read_text())
    report = json.loads((cache / "report.json").read_text())
    report["bag"] = str(path)
    return _split(arrays, str(path)), recording, report


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
