"""Play a rosbag2 bag (MCAP or sqlite3) into live ROS 2 with /clock: ``ros2 bag play --clock`` without ROS tools.

The recorded CDR bytes are published as they are (``Publisher.publish(bytes)`` -> ``publish_raw``), so
messages, header stamps included, arrive bit for bit as recorded. Message classes come from the bag's
type names and must be importable in this Python (standard interfaces, or the project's own); a topic
whose type is not importable is reported by name and skipped while the other topics play.

/clock (rosgraph_msgs/Clock) carries the bag's log time, so nodes started with ``use_sim_time:=true`` run
on recorded time. Ordering at the subscriber: /clock reaches a message's log time ``--clock-lead``
seconds (wall) before the message is published, and never runs past the next message's log time. Two
publishers give no delivery order between them (and rclpy's time source subscribes best effort, so
there is no acknowledgement to wait for); the lead is what makes /clock arrive first, and a node on sim
time with a single-threaded executor (its time source subscribed before its own subscriptions) then
runs a message's callback with sim time at or past its log time. A multi-threaded executor, or one
backlogged by more than the lead, can still run a callback before the /clock that arrived first: such
nodes should take a message's time from its header stamp. On a ROS install the equivalent is
``ros2 bag play --clock <bag>``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLOCK_TOPIC = "/clock"
DEFAULT_DEPTH = 10
DEFAULT_CLOCK_LEAD_S = 0.05  # about a camera's transport delay: data arrives this late in sim time


class BagReadError(ValueError):
    """A bag that cannot be opened or read to the end (empty, truncated, corrupted); names the bag."""


class UnknownMessageTypeError(ValueError):
    """A bag topic whose message type is not importable here; names the topic and the type."""


@dataclass(frozen=True)
class TopicPlan:
    """One bag topic as it will be played.

    Attributes:
        topic: name in the bag.
        out_topic: name it is published under (after remapping).
        msgtype: ROS type name from the bag, e.g. ``sensor_msgs/msg/Image``.
        qos: rclpy QoSProfile (None until ROS is imported).
        count: messages of this topic in the bag.
    """

    topic: str
    out_topic: str
    msgtype: str
    qos: Any
    count: int


def parse_remaps(items: Sequence[str]) -> dict[str, str]:
    """['/a:=/b'] -> {'/a': '/b'}; a malformed entry is a ValueError naming it."""
    out: dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition(":=")
        if not sep or not old or not new:
            raise ValueError(f"--remap must look like old:=new, got {item!r}")
        out[old] = new
    return out


def message_class(msgtype: str, topic: str) -> type:
    """The rclpy message class of a bag type name (``pkg/msg/Name``, or ROS 1 style ``pkg/Name``).

    Raises:
        UnknownMessageTypeError: the interface package is not importable or lacks the type.
    """
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise UnknownMessageTypeError(f"topic {topic}: message type {msgtype!r} is not a ROS 2 type name (pkg/msg/Name)")
    pkg, kind, name = parts
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
        return getattr(module, name)
    except (ImportError, AttributeError) as exc:
        raise UnknownMessageTypeError(
            f"topic {topic}: message type {msgtype} is not available in this Python ({exc}); "
            f"install or build the interface package '{pkg}' (or leave the topic out with --topics)"
        ) from exc


def is_latched_topic(topic: str) -> bool:
    """/tf_static and other ``*_static`` topics are latched by convention (transient local)."""
    return topic.rstrip("/").endswith("_static")


def recorded_qos(connection: Any, topic: str) -> Any:
    """rclpy QoSProfile matching the offered QoS recorded in the bag, else reliable depth 10.

    Transient local is kept when the recorder saw it, and forced for ``*_static`` topics so late
    subscribers still get them (what ``ros2 bag play`` does for /tf_static).
    """
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    profiles = list(getattr(getattr(connection, "ext", None), "offered_qos_profiles", None) or [])
    reliability, durability, depth = ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE, DEFAULT_DEPTH
    if profiles:
        # Several publishers may have been recorded; the most permissive-for-subscribers choice wins:
        # reliable if any was reliable, transient local if any was.
        names = {p.reliability.name for p in profiles}
        reliability = ReliabilityPolicy.RELIABLE if "RELIABLE" in names else ReliabilityPolicy.BEST_EFFORT
        if any(p.durability.name == "TRANSIENT_LOCAL" for p in profiles):
            durability = DurabilityPolicy.TRANSIENT_LOCAL
        depth = max([int(p.depth) for p in profiles if int(p.depth) > 0] + [DEFAULT_DEPTH])
    if is_latched_topic(topic):
        durability, reliability = DurabilityPolicy.TRANSIENT_LOCAL, ReliabilityPolicy.RELIABLE
        depth = max(depth, 100)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability, durability=durability)


def open_reader(path: Path) -> Any:
    """An opened rosbags rosbag2 Reader; a clear error for a missing path or a ROS 1 bag."""
    from rosbags.rosbag2 import Reader

    if not path.exists():
        raise FileNotFoundError(f"bag {path} does not exist")
    if path.is_file() and path.suffix == ".bag":
        raise ValueError(f"{path} is a ROS 1 bag; convert it first (rosbags-convert --src {path}) and play the rosbag2 output")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises its own errors (and struct/OS errors) for broken files
        raise BagReadError(f"bag {path}: cannot open ({exc}); is it a complete rosbag2 bag (not empty or truncated)?") from None
    return reader


def plan_topics(
    reader: Any, topics: Sequence[str] | None, remaps: dict[str, str]
) -> tuple[list[TopicPlan], dict[int, Any], list[str]]:
    """Decide which bag topics play, under which names and QoS.

    Args:
        reader: an opened rosbags Reader.
        topics: subset to play (None: all); a name not in the bag is a ValueError.
        remaps: old -> new topic names.

    Returns:
        (plans, connections by id, problems): the playable topics, their connections, and one line per
        topic left out (unknown type, a recorded /clock) naming the topic and why.
    """
    by_topic: dict[str, list[Any]] = {}
    for conn in reader.connections:
        by_topic.setdefault(conn.topic, []).append(conn)
    if topics:
        missing = sorted(set(topics) - set(by_topic))
        if missing:
            raise ValueError(f"bag {reader.path}: topics {missing} are not in the bag; it has {sorted(by_topic)}")
        by_topic = {t: c for t, c in by_topic.items() if t in set(topics)}
    plans, conns, problems = [], {}, []
    for topic, connections in sorted(by_topic.items()):
        msgtype = connections[0].msgtype
        try:
            message_class(msgtype, topic)
        except UnknownMessageTypeError as exc:
            problems.append(f"{exc}; the other topics continue")
            continue
        if topic == CLOCK_TOPIC:
            problems.append(f"topic {CLOCK_TOPIC}: the recorded clock is not replayed; /clock is generated from the log time")
            continue
        qos = recorded_qos(connections[0], topic)
        count = sum(int(c.msgcount) for c in connections)
        plans.append(TopicPlan(topic, remaps.get(topic, topic), msgtype, qos, count))
        for conn in connections:
            conns[conn.id] = conn
    return plans, conns, problems


class Schedule:
    """Maps bag log time to wall time for a playback rate: wall = start + (t - t0) / rate."""

    def __init__(self, t0_ns: int, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"--rate must be > 0, got {rate}")
        self.t0_ns, self.rate = t0_ns, rate
        self.wall0 = time.monotonic()

    def wall_of(self, t_ns: int) -> float:
        return self.wall0 + (t_ns - self.t0_ns) * 1e-9 / self.rate

    def bag_now(self) -> int:
        return self.t0_ns + int((time.monotonic() - self.wall0) * self.rate * 1e9)


class BagPlayer:
    """Publishes one bag's messages with their recorded timing, and /clock from the log time.

    Args:
        node: rclpy node owning the publishers.
        bag: bag directory (or .mcap / .db3 file).
        rate: playback speed factor (2.0 = twice as fast).
        start_offset: seconds of the bag skipped at the start.
        topics: subset of topics to play (None: all playable).
        remaps: old -> new topic names.
        clock_hz: /clock rate in wall Hz (0: only ahead of each message).
        clock_lead: wall seconds between /clock reaching a message's log time and the message being
            published, so subscribers have sim time at the stamp when the message arrives.
    """

    def __init__(
        self,
        node: Any,
        bag: Path,
        rate: float = 1.0,
        start_offset: float = 0.0,
        topics: Sequence[str] | None = None,
        remaps: dict[str, str] | None = None,
        clock_hz: float = 40.0,
        clock_lead: float = DEFAULT_CLOCK_LEAD_S,
    ) -> None:
        from rosgraph_msgs.msg import Clock

        if rate <= 0:
            raise ValueError(f"--rate must be > 0, got {rate}")
        if start_offset < 0:
            raise ValueError(f"--start-offset must be >= 0 seconds, got {start_offset}")
        if clock_hz < 0:
            raise ValueError(f"--clock-hz must be >= 0, got {clock_hz}")
        if clock_lead < 0:
            raise ValueError(f"--clock-lead must be >= 0 seconds, got {clock_lead}")
        self.node, self.bag, self.rate, self.clock_hz, self.clock_lead = node, Path(bag), rate, clock_hz, clock_lead
        self.reader = open_reader(self.bag)
        self.plans, self.connections, self.problems = plan_topics(self.reader, topics, remaps or {})
        for problem in self.problems:
            node.get_logger().error(problem)
        if not self.plans:
            raise ValueError(f"bag {self.bag}: no playable topic; " + ("; ".join(self.problems) or "the bag has no messages"))
        self.t_start = int(self.reader.start_time) + round(start_offset * 1e9)
        self.publishers = {
            p.topic: node.create_publisher(message_class(p.msgtype, p.topic), p.out_topic, p.qos) for p in self.plans
        }
        self._clock_msg = Clock
        self.clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, 10)
        self.published = 0
        self.last_clock, self.last_clock_wall = -1, 0.0

    def describe(self) -> str:
        lines = [f"bag {self.bag}: {self.reader.message_count} messages, {self.reader.duration * 1e-9:.2f} s"]
        for p in self.plans:
            qos = f"{p.qos.reliability.name.lower()}, {p.qos.durability.name.lower()}, depth {p.qos.depth}"
            arrow = f" -> {p.out_topic}" if p.out_topic != p.topic else ""
            lines.append(f"  {p.topic}{arrow} [{p.msgtype}] {p.count} msgs ({qos})")
        return "\n".join(lines)

    def wait_for_subscribers(self, count: int, timeout: float) -> None:
        """Block until every played topic has at least ``count`` matched subscriptions.

        Raises:
            TimeoutError: naming the topics still short of subscribers after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            short = [p.out_topic for p in self.plans if self.publishers[p.topic].get_subscription_count() < count]
            if not short:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {timeout:.0f} s these topics still have fewer than {count} subscribers: {short}")
            time.sleep(0.05)

    def publish_clock(self, t_ns: int) -> None:
        """Publish /clock = ``t_ns`` unless it would not advance the clock."""
        if t_ns <= self.last_clock:
            return
        msg = self._clock_msg()
        msg.clock.sec, msg.clock.nanosec = divmod(int(t_ns), 1_000_000_000)
        self.clock_pub.publish(msg)
        self.last_clock, self.last_clock_wall = int(t_ns), time.monotonic()

    def _messages(self) -> Iterator[tuple[Any, int, bytes]]:
        conns = [c for c in self.reader.connections if c.id in self.connections]
        it = iter(self.reader.messages(connections=conns, start=self.t_start))
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except Exception as exc:  # a truncated or corrupted chunk shows up only while reading
                raise BagReadError(f"bag {self.bag}: reading failed ({exc}); the bag may be truncated or corrupted") from None
            yield item

    def play_once(self, should_stop: Any = lambda: False) -> int:
        """Play the bag from ``start_offset`` to the end; returns the messages published.

        Each message is published at its log time (scaled by the rate) and no earlier than ``clock_lead``
        after the /clock that reached its log time; /clock also ticks at ``clock_hz``, ``clock_lead`` ahead
        of the playback, capped at the next message's log time.
        """
        schedule = Schedule(self.t_start, self.rate)
        lead = self.clock_lead
        tick = 1.0 / self.clock_hz if self.clock_hz > 0 else None
        next_tick = schedule.wall0
        self.last_clock = -1
        self.publish_clock(self.t_start)
        pending: deque[list[Any]] = deque()  # [conn, t_ns, raw, wall time /clock reached t_ns or None]
        source = self._messages()
        exhausted = False
        published = 0
        while True:
            if should_stop():
                break
            now = time.monotonic()
            # read ahead every message whose /clock is due now, plus the next one
            while not exhausted and (not pending or schedule.wall_of(pending[-1][1]) - lead <= now):
                try:
                    conn, t_ns, raw = next(source)
                except StopIteration:
                    exhausted = True
                    break
                # already reached by /clock: count the lead from its latest publication (conservative)
                pending.append([conn, t_ns, raw, self.last_clock_wall if t_ns <= self.last_clock else None])
            if not pending:
                break
            # /clock: the newest log time due (lead ahead of its message), or a tick, never past the next message
            due_clock = [p[1] for p in pending if p[3] is None and schedule.wall_of(p[1]) - lead <= now]
            if due_clock:
                self.publish_clock(max(due_clock))
            elif tick is not None and now >= next_tick:
                self.publish_clock(min(schedule.bag_now() + int(lead * self.rate * 1e9), pending[0][1]))
            if tick is not None and now >= next_tick:
                next_tick = now + tick
            for p in pending:  # the lead counts from when that /clock went out, not from the start of this pass
                if p[3] is None and p[1] <= self.last_clock:
                    p[3] = self.last_clock_wall
            # publish what is due and has had its lead
            while pending and pending[0][3] is not None:
                conn, t_ns, raw, clocked = pending[0]
                if now < schedule.wall_of(t_ns) or now < clocked + lead:
                    break
                pending.popleft()
                self.publishers[conn.topic].publish(bytes(raw))
                published += 1
            if not pending and exhausted:
                break
            # sleep until the next thing to do
            wakes = [now + 0.1]
            if tick is not None:
                wakes.append(next_tick)
            if pending:
                head = pending[0]
                wakes.append(
                    schedule.wall_of(head[1]) - lead if head[3] is None else max(schedule.wall_of(head[1]), head[3] + lead)
                )
                nxt = next((p for p in pending if p[3] is None), None)
                if nxt is not None:
                    wakes.append(schedule.wall_of(nxt[1]) - lead)
            time.sleep(max(0.0, min(wakes) - time.monotonic()))
        self.published += published
        return published

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until reliable subscribers acknowledged everything, so exiting loses nothing in flight."""
        from rclpy.duration import Duration

        for pub in [*self.publishers.values(), self.clock_pub]:
            with contextlib.suppress(Exception):  # best-effort publishers cannot be acked; nothing to wait for
                pub.wait_for_all_acked(Duration(seconds=timeout))

    def close(self) -> None:
        self.reader.close()


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jepa-replay",
        description="Play a rosbag2 bag (MCAP/sqlite3) into ROS 2 with /clock from its log time, like `ros2 bag play --clock`. "
        "Recorded bytes are published unchanged. ROS arguments go after --ros-args.",
    )
    parser.add_argument("bag", help="bag directory (with metadata.yaml) or a single .mcap/.db3 file")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="playback speed factor: 2.0 plays twice as fast, 0.5 half as fast"
    )
    parser.add_argument(
        "--loop", action="store_true", help="start again from --start-offset after the last message, until Ctrl-C"
    )
    parser.add_argument("--start-offset", type=float, default=0.0, help="seconds of the bag to skip at the start")
    parser.add_argument("--topics", nargs="+", default=None, metavar="TOPIC", help="play only these bag topics (default: all)")
    parser.add_argument(
        "--remap", action="append", default=[], metavar="OLD:=NEW", help="publish bag topic OLD as NEW; repeatable"
    )
    parser.add_argument(
        "--clock-hz", type=float, default=40.0, help="/clock publish rate in wall Hz (0: only just before each message)"
    )
    parser.add_argument(
        "--clock-lead",
        type=float,
        default=DEFAULT_CLOCK_LEAD_S,
        help="wall seconds /clock reaches a message's log time before the message is published (so sim time has "
        "reached it when the message arrives)",
    )
    parser.add_argument(
        "--wait-for-subscribers",
        type=int,
        default=0,
        metavar="N",
        help="before playing, wait until every played topic has at least N subscribers (no message lost to discovery)",
    )
    parser.add_argument(
        "--wait-timeout", type=float, default=30.0, help="seconds --wait-for-subscribers waits before giving up with an error"
    )
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds to sleep before playing (after waiting for subscribers)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``jepa-replay``; returns 0 when the bag played, 1 on bad input."""
    import rclpy

    argv = list(sys.argv[1:] if argv is None else argv)
    # Our own --remap uses the old:=new spelling rcl would take as a (deprecated) ROS remap, so only
    # what follows --ros-args goes to rclpy.
    split = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    own_args, ros_args = argv[:split], argv[split:]
    args = build_arg_parser().parse_args(own_args)
    try:
        remaps = parse_remaps(args.remap)
    except ValueError as exc:
        print(f"jepa-replay: {exc}", file=sys.stderr)
        return 1
    rclpy.init(args=["jepa-replay", *ros_args])
    node = rclpy.create_node("bag_player")
    player = None
    try:
        player = BagPlayer(
            node, Path(args.bag), args.rate, args.start_offset, args.topics, remaps, args.clock_hz, args.clock_lead
        )
        print(player.describe(), flush=True)
        if args.wait_for_subscribers > 0:
            player.wait_for_subscribers(args.wait_for_subscribers, args.wait_timeout)
        if args.delay > 0:
            time.sleep(args.delay)
        start = time.monotonic()
        while rclpy.ok():
            player.play_once(should_stop=lambda: not rclpy.ok())
            if not args.loop:
                break
        player.flush()
        elapsed = time.monotonic() - start
        print(f"played {player.published} messages in {elapsed:.2f} s", flush=True)
        return 0
    except (ValueError, FileNotFoundError, TimeoutError) as exc:
        print(f"jepa-replay: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        if player is not None:
            player.close()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
