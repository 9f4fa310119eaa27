"""Small ROS helpers shared by every node of the suite: image conversion, QoS presets, declared parameters.

Image conversion is NumPy for the common 8-bit encodings; other encodings (16-bit, YUV, Bayer...)
go through the real ``cv_bridge`` when it is installed (a ROS 2 robot has ``ros-<distro>-cv-bridge``;
the PyPI ``cv-bridge`` is a ROS 1 port that breaks with NumPy 2). Both paths go through
:func:`image_to_array`, so nodes see one behaviour and one set of errors.

This module imports message types and rclpy parameter types only inside functions, so the core
libraries can import the pure helpers without a ROS install.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from jepa_common.convert import parse_latent as parse_latent
from jepa_common.convert import stamp_to_ns as stamp_to_ns
from jepa_common.yaml_io import load_yaml_file

SUPPORTED_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


class ImageError(ValueError):
    """An image message that cannot be used: its text says what is wrong and what was expected."""


def image_to_array(msg: Any, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """sensor_msgs/Image -> uint8 RGB array (H, W, 3), validated.

    Args:
        msg: a sensor_msgs/msg/Image (or anything with the same fields).
        expected_hw: (height, width) the consumer needs; a different size is an error, never a
            silent resize (a resized image would give a latent from a different distribution).

    Raises:
        ImageError: unsupported encoding, data length not matching height * step, or wrong size.
    """
    enc = msg.encoding.lower()
    if enc not in _CHANNELS:
        converted = _convert_with_cv_bridge(msg)
        if converted is not None:
            if expected_hw is not None and converted.shape[:2] != tuple(expected_hw):
                raise ImageError(f"image is {converted.shape[1]}x{converted.shape[0]}, the model expects "
                                 f"{expected_hw[1]}x{expected_hw[0]} (width x height)")
            return converted
        raise ImageError(f"unsupported image encoding '{msg.encoding}'; expected one of {', '.join(SUPPORTED_ENCODINGS)}")
    h, w, ch = int(msg.height), int(msg.width), _CHANNELS[enc]
    if h == 0 or w == 0:
        raise ImageError(f"empty image ({w}x{h})")
    step = int(msg.step) or w * ch
    if step < w * ch:
        raise ImageError(f"image step {step} is shorter than width*channels = {w * ch}")
    data = msg.data
    nbytes = len(data)
    if nbytes != step * h:
        raise ImageError(f"image data has {nbytes} bytes, expected height*step = {h}*{step} = {h * step}")
    if expected_hw is not None and (h, w) != tuple(expected_hw):
        raise ImageError(f"image is {w}x{h}, the model expects {expected_hw[1]}x{expected_hw[0]} (width x height)")
    buf = np.frombuffer(bytes(data) if not isinstance(data, (bytes, bytearray, memoryview)) else data, np.uint8)
    arr = buf.reshape(h, step)[:, : w * ch].reshape(h, w, ch)
    if enc == "mono8":
        return np.repeat(arr, 3, axis=2)
    if enc.startswith("bgr"):
        arr = arr[..., 2::-1]
    return np.ascontiguousarray(arr[..., :3])


def _convert_with_cv_bridge(msg: Any) -> np.ndarray | None:
    """Convert an exotic encoding to rgb8 with the ROS 2 cv_bridge, or None when it is absent/fails."""
    try:
        from cv_bridge import CvBridge  # only on a ROS 2 install
    except ImportError:
        return None
    try:
        arr = CvBridge().imgmsg_to_cv2(msg, desired_encoding="rgb8")
    except Exception:
        return None
    return np.ascontiguousarray(arr, dtype=np.uint8)


def array_to_image(arr: np.ndarray, stamp: Any = None, frame_id: str = "") -> Any:
    """uint8 RGB array (H, W, 3) -> sensor_msgs/Image rgb8 with the given stamp and frame."""
    from sensor_msgs.msg import Image

    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"expected a uint8 (H, W, 3) array, got {arr.dtype} {arr.shape}")
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(arr.shape[0]), int(arr.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = int(arr.shape[1]) * 3
    msg.data = np.ascontiguousarray(arr).tobytes()
    return msg


def sensor_qos(depth: int = 1) -> Any:
    """Sensor inputs: best effort, keep last ``depth`` (the newest frame is all that matters)."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)


def reliable_qos(depth: int = 10) -> Any:
    """Outputs (commands, plans, latents): reliable, keep last ``depth``."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def latched_qos() -> Any:
    """Transient local, depth 1: late joiners get the last value (goals, goal images, maps)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=1,
        reliability=ReliabilityPolicy.RELIABLE,
        history=HistoryPolicy.KEEP_LAST,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


@dataclass(frozen=True)
class Param:
    """A node parameter: default, help text, optional range or choices, and whether it may change at run time.

    Ranges are given to rclpy in the descriptor, so ``ros2 param set`` with an out-of-range value
    is refused by rclpy itself; choices are checked by :func:`declare_params`' callback.
    ``dynamic`` parameters are read live by the node (a set applies at once); every other one is
    static: a set at run time is refused with "read-only at run time: restart the node", so a
    value that reads back is always the value in use. ``read_only`` also marks the descriptor.
    """

    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    dynamic: bool = False


class LiveParams(Mapping):
    """The declared parameters of a node, read at each access: dynamic ones apply as soon as they are set."""

    def __init__(self, node: Any, names: list[str]) -> None:
        self._node, self._names = node, list(names)

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        return self._node.get_parameter(name).value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


_ROS_ARGS: list[str] | None = None  # the command line run_node started rclpy with (None: sys.argv)


def params_files(args: list[str] | None = None) -> list[str]:
    """The ``--params-file`` paths given after ``--ros-args`` on a node's command line."""
    import sys

    args = list(sys.argv if args is None else args)
    files, in_ros = [], False
    for i, arg in enumerate(args):
        if arg == "--ros-args":
            in_ros = True
        elif arg == "--":
            in_ros = False
        elif in_ros and arg == "--params-file" and i + 1 < len(args):
            files.append(args[i + 1])
    return files


def _section_regex(key: str) -> re.Pattern | None:
    """Regex of the node names a params-file section key applies to; None for a section that names no node
    (``/**``, ``/**/*``: shared by every node, so keys there may be for other nodes)."""
    parts = [p for p in (key if key.startswith("/") else "/" + key).split("/") if p]
    if not parts or parts[-1] in ("*", "**"):
        return None
    pattern = ""
    for part in parts:
        pattern += r"(/[^/]+)*" if part == "**" else r"/[^/]+" if part == "*" else "/" + re.escape(part)
    return re.compile(pattern)


def _flatten(prefix: str, body: dict) -> list[str]:
    keys = []
    for k, v in body.items():
        name = f"{prefix}{k}"
        keys += _flatten(name + ".", v) if isinstance(v, dict) else [name]
    return keys


def unknown_param_keys(fqn: str, declared: set[str], files: list[str]) -> list[str]:
    """One line per key that a params-file section of node ``fqn`` sets but the node does not declare,
    naming the closest declared key. Shared sections (``/**``) are skipped: they serve every node."""
    import difflib

    problems = []
    for path in files:
        try:
            doc = load_yaml_file(path) or {}
        except (OSError, ValueError) as exc:
            problems.append(f"params file '{path}' cannot be read: {exc}")
            continue
        for key, body in doc.items() if isinstance(doc, dict) else ():
            regex = _section_regex(str(key))
            if regex is None or not regex.fullmatch(fqn) or not isinstance(body, dict):
                continue
            for name in _flatten("", body.get("ros__parameters") or {}):
                if name not in declared:
                    close = difflib.get_close_matches(name, sorted(declared), n=1, cutoff=0.5)
                    hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(sorted(declared))}"
                    problems.append(f"unknown parameter '{name}' in section '{key}' of {path}{hint}")
    return problems


def declare_params(node: Any, params: dict[str, Param]) -> LiveParams:
    """Declare ``params`` on ``node`` with typed descriptors; validate the start values.

    Returns a live view of the values (see :class:`LiveParams`). Raises ValueError naming the node
    and the parameter when a start value is out of range or not one of the choices, or when a
    params-file section of this node sets a key it does not declare (with the closest valid key).
    An integer given for a double parameter is taken as that double. Later sets are refused for
    static parameters ("read-only at run time") and for values out of range or choices.
    """
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
    from rclpy.parameter import Parameter

    overrides = getattr(node, "_parameter_overrides", {})
    fqn = node.get_fully_qualified_name()
    for name, p in params.items():
        desc = ParameterDescriptor(description=p.description, read_only=p.read_only)
        if p.choices:
            desc.additional_constraints = f"one of: {', '.join(p.choices)}"
        if p.min is not None or p.max is not None:
            lo = p.min if p.min is not None else -1e300
            hi = p.max if p.max is not None else 1e300
            if isinstance(p.default, bool):
                pass
            elif isinstance(p.default, int):
                desc.integer_range = [IntegerRange(from_value=int(max(lo, -(2**62))), to_value=int(min(hi, 2**62)), step=0)]
            elif isinstance(p.default, float):
                desc.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        given = overrides.get(name)
        if isinstance(p.default, float) and given is not None and given.type_ == Parameter.Type.INTEGER:
            overrides[name] = Parameter(name, value=float(given.value))  # 2 for a double is 2.0, not an error
        try:
            node.declare_parameter(name, p.default, desc)
        except Exception as exc:  # wrong type in a params file: rclpy's exception, as one line
            raise ValueError(f"node {fqn}: parameter '{name}': {exc}") from None
        problem = check_param(name, node.get_parameter(name).value, p)
        if problem:
            raise ValueError(f"node {fqn}: {problem}")
    unknown = unknown_param_keys(fqn, set(node._parameters), params_files(_ROS_ARGS))
    if unknown:
        raise ValueError(f"node {fqn}: " + "; ".join(unknown))

    def on_set(changes: list) -> Any:
        for change in changes:
            spec = params.get(change.name)
            if spec is None:
                continue
            if not spec.dynamic:
                return SetParametersResult(
                    successful=False, reason=f"parameter '{change.name}' is read-only at run time: restart the node to change it"
                )
            problem = check_param(change.name, change.value, spec)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
    return LiveParams(node, list(params))


def check_param(name: str, value: Any, spec: Param) -> str | None:
    """The reason ``value`` is invalid for ``spec``, or None when it is fine."""
    if spec.choices and value not in spec.choices:
        return f"parameter '{name}' = {value!r} is not one of {list(spec.choices)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not np.isfinite(value):
            return f"parameter '{name}' = {value!r} must be finite"
        if spec.min is not None and value < spec.min:
            return f"parameter '{name}' = {value!r} is below its minimum {spec.min}"
        if spec.max is not None and value > spec.max:
            return f"parameter '{name}' = {value!r} is above its maximum {spec.max}"
    return None


def steady_clock() -> Any:
    """A steady (monotonic) clock for watchdog timers: they must fire even when sim time stands still."""
    from rclpy.clock import Clock, ClockType

    return Clock(clock_type=ClockType.STEADY_TIME)


def finite_values(*values: float, what: str) -> None:
    """ValueError naming ``what`` when any value is NaN or infinite."""
    if not all(np.isfinite(v) for v in values):
        raise ValueError(f"{what} contains NaN/inf: {list(values)}")


def one_line(exc: BaseException) -> str:
    """An exception as one short line (some libraries put whole paragraphs in their messages)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def guarded(node: Any, topic: str, callback: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap a subscription callback: a message it cannot use costs a throttled one-line warning, never the node.

    ValueError is the callbacks' way to refuse an input; any other exception is a bug met by a
    message, and is reported the same way (with its type) so that one message never kills a node.
    """
    logger = node.get_logger()

    def safe(msg: Any) -> None:
        try:
            callback(msg)
        except ValueError as exc:
            logger.warning(f"'{topic}': message dropped: {one_line(exc)}", throttle_duration_sec=2.0)
        except Exception as exc:  # the node must outlive any single message
            if not node.context.ok():
                return  # shutting down (Ctrl-C): publishers are gone, nothing to report
            logger.error(f"'{topic}': message dropped after {type(exc).__name__}: {one_line(exc)}", throttle_duration_sec=2.0)

    return safe


class OwnedEntities:
    """What a lifecycle node creates in ``on_configure``, destroyed together in ``on_cleanup``/``on_shutdown``,
    so that configure -> cleanup -> configure never doubles subscriptions, timers, services or threads."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.items: list = []
        self.stop = threading.Event()  # set on release: worker threads started in on_configure end on it

    def add(self, entity: Any) -> Any:
        self.items.append(entity)
        return entity

    def thread(self, target: Callable[[], None]) -> threading.Thread:
        """Start ``target`` in a daemon thread that is joined on release (``target`` watches ``self.stop``)."""
        thread = threading.Thread(target=target, daemon=True)
        self.items.append(thread)
        thread.start()
        return thread

    def release(self) -> None:
        from rclpy.client import Client
        from rclpy.publisher import Publisher
        from rclpy.service import Service
        from rclpy.subscription import Subscription
        from rclpy.timer import Timer

        self.stop.set()
        node = self.node
        for item in reversed(self.items):
            if isinstance(item, threading.Thread):
                if item is not threading.current_thread():
                    item.join(timeout=5.0)
            elif isinstance(item, Timer):
                item.cancel()
                node.destroy_timer(item)
            elif isinstance(item, Subscription):
                node.destroy_subscription(item)
            elif isinstance(item, Service):
                node.destroy_service(item)
            elif isinstance(item, Client):
                node.destroy_client(item)
            elif isinstance(item, Publisher):
                destroy = getattr(node, "destroy_lifecycle_publisher", node.destroy_publisher)
                destroy(item)
            elif hasattr(item, "destroy"):  # action servers
                item.destroy()
        self.items = []
        self.stop = threading.Event()


def configure_failed(node: Any, exc: BaseException) -> Any:
    """Log why a lifecycle transition failed (one line, the exception type for unexpected ones) and return FAILURE.

    The reason is kept on the node (``configure_error``) so that :func:`run_node` can repeat it when it exits.
    """
    from rclpy.lifecycle import TransitionCallbackReturn

    expected = (FileNotFoundError, ValueError, KeyError, RuntimeError, OSError)
    text = str(exc) if isinstance(exc, expected) else f"{type(exc).__name__}: {exc}"
    node.configure_error = text
    node.get_logger().error(f"cannot configure: {text}")
    return TransitionCallbackReturn.FAILURE


class PlannerGate:
    """Within one process, per-frame work of other nodes can wait while the actor plans.

    In the composed agent every node shares one interpreter: the world model's surprise, the cost
    node's plan evaluation and the configurator's goal check, run while the actor plans, took the GIL
    from the plan (planner time 25 ms composed against 21 ms alone; the memory node's critic fit, once
    gated here too, now runs in a child process).
    Those call :meth:`wait_idle` first; the actor plans inside :meth:`planning`. Separate processes each have their own gate that nobody
    closes, so there the wait returns at once. The wait is bounded: a long plan never stalls them.

    A frame goes to the actor first: every node that subscribes to a latent wakes on it at once, and
    the single-threaded executors of the others started their work before the actor's pool thread had
    taken the latent and closed the gate (traced in bench_e2e: the world model's surprise overlapped
    the start of half the plans). So, while an actor is in the process (:meth:`add_actor`), a latent
    published here (:meth:`frame_out`) also closes the gate until the actor has handled it
    (:meth:`frame_taken`) or ``FRAME_WAIT_S`` has passed (a frame the actor never got).
    """

    FRAME_WAIT_S = 0.05

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._planners = 0
        self._actors = 0
        self._frame_since: float | None = None  # monotonic time of a frame the actor has not handled yet

    @contextlib.contextmanager
    def planning(self) -> Iterator[None]:
        with self._cond:
            self._planners += 1
        try:
            yield
        finally:
            with self._cond:
                self._planners -= 1
                self._cond.notify_all()

    def add_actor(self) -> None:
        """An actor in this process takes frames first (call once per configured actor)."""
        with self._cond:
            self._actors += 1

    def remove_actor(self) -> None:
        with self._cond:
            self._actors = max(0, self._actors - 1)
            self._frame_since = None
            self._cond.notify_all()

    def frame_out(self) -> None:
        """A latent is being published in this process: others wait until an actor here has handled it."""
        with self._cond:
            if self._actors:
                self._frame_since = time.monotonic()

    def frame_taken(self) -> None:
        """The actor has handled the newest latent (planned and commanded, or stored it for its loop)."""
        with self._cond:
            self._frame_since = None
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 0.2) -> bool:
        """Wait until no plan runs and no frame waits for the actor in this process (at most ``timeout`` s);
        True when idle."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                frame_due = None if self._frame_since is None else self._frame_since + self.FRAME_WAIT_S
                if self._planners == 0 and (frame_due is None or now >= frame_due):
                    return True
                if now >= deadline:
                    return False
                until = deadline if self._planners or frame_due is None else min(deadline, frame_due)
                self._cond.wait(until - now)


PLANNER_GATE = PlannerGate()


class LocalTopics:
    """Hand-off of a topic's messages between nodes composed in one process: the latent, from
    perception to the actor (the control path) and to the configurator's and cost node's callbacks.

    rclpy has no intra-process transport: a latent went through the middleware and woke the actor's
    executor, whose loop (Python, holding the GIL) ran beside the start of the plan. A node that
    publishes a topic in this process :meth:`offer` s its resolved name; a consumer :meth:`attach` es
    a sink, which :meth:`deliver` calls on the publisher's thread (so a sink only stores the message
    and wakes its own thread: :class:`LatestSlot`). Messages still go out over the middleware too, for
    every other subscriber.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: dict[str, int] = {}
        self._sinks: dict[str, list[Callable[[Any], None]]] = {}

    def offer(self, topic: str) -> None:
        with self._lock:
            self._sources[topic] = self._sources.get(topic, 0) + 1

    def withdraw(self, topic: str) -> None:
        with self._lock:
            left = self._sources.get(topic, 0) - 1
            if left > 0:
                self._sources[topic] = left
            else:
                self._sources.pop(topic, None)

    def offered(self, topic: str) -> bool:
        with self._lock:
            return topic in self._sources

    def attach(self, topic: str, sink: Callable[[Any], None]) -> None:
        with self._lock:
            self._sinks.setdefault(topic, []).append(sink)

    def detach(self, topic: str, sink: Callable[[Any], None]) -> None:
        with self._lock:
            sinks = self._sinks.get(topic, [])
            if sink in sinks:
                sinks.remove(sink)

    def deliver(self, topic: str, msg: Any) -> None:
        with self._lock:
            sinks = list(self._sinks.get(topic, ()))
        for sink in sinks:
            sink(msg)


LOCAL_TOPICS = LocalTopics()


class LocalSubscription:
    """A subscriber served by :data:`LOCAL_TOPICS`; ``destroy`` detaches it (an :class:`OwnedEntities` item)."""

    def __init__(self, topic: str, sink: Callable[[Any], None]) -> None:
        self.topic_name, self.sink = topic, sink
        LOCAL_TOPICS.attach(topic, sink)

    def destroy(self) -> None:
        LOCAL_TOPICS.detach(self.topic_name, self.sink)


def subscribe_local_first(node: Any, msg_type: Any, topic: str, callback: Callable[[Any], None], qos: Any, *,
                          callback_group: Any = None, sink: Callable[[Any], None] | None = None) -> Any:
    """``topic`` straight from its publisher when that runs in this process (:data:`LOCAL_TOPICS`), else a
    middleware subscription to it. Locally, ``sink`` (default: ``callback``, guarded) is called on the
    publisher's thread, so it must be quick and thread-safe."""
    resolved = node.resolve_topic_name(topic)
    if LOCAL_TOPICS.offered(resolved):
        return LocalSubscription(resolved, sink or guarded(node, topic, callback))
    return node.create_subscription(msg_type, topic, guarded(node, topic, callback), qos, callback_group=callback_group)


class LatestSlot:
    """The newest message for one consumer thread (older ones are replaced, as with a keep-last-1 queue)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._msg: Any = None

    def put(self, msg: Any) -> None:
        with self._cond:
            self._msg = msg
            self._cond.notify()

    def take(self, timeout: float) -> Any:
        """The newest message, or None after ``timeout`` s without one."""
        with self._cond:
            self._cond.wait_for(lambda: self._msg is not None, timeout)
            msg, self._msg = self._msg, None
            return msg


def background_thread(nice: int = 19) -> None:
    """Give the calling thread the lowest CPU priority: for background work beside a control loop
    (the memory node's thread that prepares a critic fit and waits for it). On Linux a thread is its own scheduling entity, so ``setpriority``
    on its thread id lowers this thread only (elsewhere: no change). Torch's thread count is one value
    per process, so it is left alone here.
    """
    import os
    import sys

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):  # not permitted in some containers
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def make_executor(threads: int = 2, context: Any = None) -> Any:
    """A multi-threaded rclpy executor that queues each ready callback once.

    Why not plain ``MultiThreadedExecutor``: in the rclpy releases we run on (9.x here, older on
    robots), a callback that is ready but still waiting for a pool thread is yielded again on every
    pass of the executor loop and queued again. In a fast lockstep loop (a plan runs in one thread,
    the next latent is already there) the main thread then spins through thousands of passes a second
    holding the GIL, and the threads that should plan, refresh the goal lease or report status wait
    for it: plans took 1.6 s instead of tens of ms and healthy goal leases expired (found with py-spy;
    rclpy fixed the re-yield upstream in its 10.x line). Here a task already in the pool queue is not
    queued again, and the loop sleeps until a pool thread starts it (nothing else could run before:
    no thread is free); a coroutine that suspended (it left the queue) is resumed as rclpy does it.
    An earlier version polled every 0.5 ms instead: in the composed process the actor's and the
    configurator's loops then woke about 2,000 times a second while a plan held one thread and
    callbacks waiting for the planner's lock held the others, and the plan itself ran 10% slower for
    the GIL (py-spy: 38% of the actor loop's samples in that poll).
    """
    import rclpy.executors as executors
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.impl.implementation_singleton import rclpy_implementation

    RCLError = rclpy_implementation.RCLError  # noqa: N806 (an exception class)
    InvalidHandle = rclpy_implementation.InvalidHandle  # noqa: N806 (an exception class)

    # what rclpy's own loop treats as "nothing to run this time" (names differ a little across releases)
    done_waiting = tuple(getattr(executors, name) for name in (
        "ExternalShutdownException", "ShutdownException", "TimeoutException", "ConditionReachedException")
        if hasattr(executors, name))

    class QueueOnceExecutor(MultiThreadedExecutor):
        def __init__(self) -> None:
            super().__init__(num_threads=threads, context=context)
            self._queued: set[Any] = set()  # tasks handed to the pool that no thread has started yet
            self._started = threading.Condition()  # notified when a pool thread starts a queued task

        def _spin_once_impl(self, timeout_sec: Any = None, wait_condition: Callable[[], bool] = lambda: False) -> None:
            while True:
                try:
                    handler, _entity, _node = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
                except done_waiting:
                    return
                except (RCLError, InvalidHandle) as exc:
                    if isinstance(exc, RCLError) and "pointer is invalid" not in str(exc):
                        raise
                    # an entity destroyed by another thread (a lifecycle cleanup destroying an action server,
                    # or a publisher whose QoS event handler rclpy had already listed: InvalidHandle "destruction
                    # was requested") after rclpy listed it for this wait set: wait again without it instead of
                    # ending the executor (rclpy guards subscriptions, timers and services against this, not
                    # these; seen in CI as a configurator that died on cleanup, both ways)
                    continue
                with self._started:
                    if handler not in self._queued:
                        break
                    # already waiting for a pool thread: do not queue it again; wait until a thread starts
                    # it (the bound only guards against a missed notification)
                    self._started.wait_for(lambda h=handler: h not in self._queued, timeout=0.05)

            def run(task: Any = handler) -> None:
                with self._started:
                    self._queued.discard(task)
                    self._started.notify_all()
                task()

            with self._started:
                self._queued.add(handler)
            self._executor.submit(run)
            self._futures.append(handler)
            for future in self._futures[:]:
                if future.done():
                    self._futures.remove(future)
                    future.result()  # raise any exception of a finished callback, as rclpy does

    return QueueOnceExecutor()


class ExecutorThread:
    """An executor for one node, or a few that share it, spinning on its own thread (one thread:
    rclpy's single-threaded executor; more: :func:`make_executor`)."""

    def __init__(self, nodes: list[Any], threads: int) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.nodes = nodes
        self.executor = make_executor(threads) if threads > 1 else SingleThreadedExecutor()
        for node in nodes:
            self.executor.add_node(node)
        name = "+".join(node.get_name() for node in nodes)
        self.thread = threading.Thread(target=self.spin, name=f"spin-{name}", daemon=True)

    def spin(self) -> None:
        import rclpy
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass
        except Exception:
            if rclpy.ok():
                raise
            # the context went down while this executor was between two waits: a normal stop

    def shutdown(self) -> None:
        """No new callbacks; one still running (a long plan) is not waited for."""
        from rclpy.executors import MultiThreadedExecutor

        if isinstance(self.executor, MultiThreadedExecutor):
            self.executor.shutdown(timeout_sec=0, wait_for_threads=False)
        else:
            self.executor.shutdown(timeout_sec=0)


def autostart(node: Any) -> str | None:
    """Configure and activate a lifecycle node whose parameter ``autostart`` is true (the robot launch files
    may instead leave that to a lifecycle manager); None, or the line that says why it failed."""
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

    if not (isinstance(node, LifecycleNode) and node.has_parameter("autostart") and node.get_parameter("autostart").value):
        return None
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        why = getattr(node, "configure_error", "") or "on_configure raised an exception"
        return f"[{node.get_name()}] error: configure failed: {why}; exiting"
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        return f"[{node.get_name()}] error: activate failed; exiting"
    return None


def run_node(node_factory: Any, args: list[str] | None = None, *, threads: int = 2) -> int:
    """``main()`` of every node: :func:`run_nodes` with one node on an executor of ``threads`` threads."""
    return run_nodes(lambda: [node_factory()], lambda nodes: [ExecutorThread(nodes, threads)], args)


def run_nodes(
    build: Callable[[], list[Any]],
    executors: Callable[[list[Any]], list[ExecutorThread]],
    args: list[str] | None = None,
    name: str = "",
) -> int:
    """Init, build the nodes, autostart lifecycle nodes, spin, clean shutdown: every node's process and the
    composed one (``name`` labels its error lines; default: the first node's name).

    Lifecycle nodes with ``autostart`` true configure and activate themselves (:func:`autostart`), all
    built first so that the topics exist before any node acts. A failed configure ends the process
    with exit code 1 and one line saying why, so a launch file shows it at once instead of a node that
    looks alive but does nothing. Invalid parameters at start (wrong type, out of range, unknown key
    in the node's params-file section) end it with code 2 and one line; an executor that stops (a
    callback raised: its traceback is above) with code 1. Ctrl-C (SIGINT) or SIGTERM: each node's
    ``before_exit()`` runs while the middleware is still up (the actor's zero command), then the
    process exits with 0 at once (see :func:`before_exit`).
    """
    import sys

    import rclpy

    global _ROS_ARGS
    _ROS_ARGS = args
    rclpy.init(args=args, signal_handler_options=no_rclpy_signal_handlers())
    stop = install_stop_signals()
    exit_code = start_stop_deadline(stop)  # the process's exit code, also for the stop deadline
    nodes: list[Any] = []
    runners: list[ExecutorThread] = []
    interrupted = False

    def label() -> str:
        return name or (nodes[0].get_name() if nodes else "")

    try:
        nodes = build()
        for node in nodes:
            failed = autostart(node)
            if failed:
                print(failed, file=sys.stderr)
                exit_code[0] = 1
                return 1
        runners = executors(nodes)
        for runner in runners:
            runner.thread.start()
        if len(nodes) > 1:
            nodes[0].get_logger().info(f"composed {len(nodes)} nodes in one process: {[n.get_name() for n in nodes]}")
        while all(r.thread.is_alive() for r in runners) and not stop.wait(0.1):  # the main thread stays free for signals
            pass
        interrupted = stop.is_set()
        if not interrupted:
            dead = [n.get_name() for r in runners if not r.thread.is_alive() for n in r.nodes]
            print(f"[{label()}] error: the executor of {dead} stopped (see the error above); exiting", file=sys.stderr)
            exit_code[0] = 1
    except ValueError as exc:  # invalid parameters at start: one clear line, no trace
        print(f"[{label()}] error: {exc}" if label() else f"error: {exc}", file=sys.stderr)
        exit_code[0] = 2
    finally:
        interrupted = interrupted or stop.is_set()  # also a stop while the nodes were being built
        for runner in runners:
            runner.shutdown()
        if interrupted:
            before_exit(nodes)
        else:
            destroy_nodes(nodes)
            rclpy.try_shutdown()
    if interrupted:
        exit_now(exit_code[0])  # skip the interpreter's slow teardown
    return exit_code[0]


def no_rclpy_signal_handlers() -> Any:
    """rclpy's option for "install no signal handlers" (see :func:`install_stop_signals`)."""
    from rclpy.signals import SignalHandlerOptions

    return SignalHandlerOptions.NO


def install_stop_signals() -> threading.Event:
    """SIGINT and SIGTERM set the returned event, in place of rclpy's handlers.

    rclpy's own handlers shut the context down at once, so a node could no longer publish its last
    command. Here the main thread waits on the event (every node spins on other threads), the nodes
    say their last words with the middleware still up, and the process ends. A second signal (the
    terminal's and the launch service's SIGINT both arrive) changes nothing. The first one also arms a
    watchdog outside the interpreter (``STOP_BACKSTOP_S``), for a stop that hangs in C code holding the GIL,
    where :func:`_stop_deadline` cannot run (seen once in CI: a process silent 13 s after SIGINT).
    """
    import faulthandler
    import signal
    import sys

    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if not stop.is_set():
            # the backstop of the stop deadline: faulthandler's watchdog is a C thread, so it dumps the stacks
            # and ends the process even when a C call holds the GIL and no Python thread can run
            faulthandler.dump_traceback_later(STOP_BACKSTOP_S, exit=True, file=sys.stderr)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
    return stop


def before_exit(nodes: list[Any]) -> None:
    """On Ctrl-C / SIGTERM: run each node's ``before_exit()`` (what must not be lost: the actor's zero
    command, memory's open episode), and none of the middleware's own cleanup.

    Deleting the middleware entities one by one is left to the process's end on purpose. With every
    node of a launch stopping at once, Fast DDS 3.2 blocked in ``Publisher.destroy`` /
    ``Subscription.destroy`` for about 3 s in 1 of 10 stops, in several processes together, and it
    holds the GIL while it blocks, so no Python-level timeout can cut it short. Peers drop the
    process's participant when its lease ends, as after a crash, which every node already handles.
    """
    import sys

    for node in nodes:
        hook = getattr(node, "before_exit", None)
        if hook is None:
            continue
        try:
            hook()
        except Exception as exc:  # exiting anyway: one line each, the other nodes still go
            print(f"[{node.get_name()}] warning: while stopping: {exc}", file=sys.stderr)


def destroy_nodes(nodes: list[Any]) -> None:
    """Destroy ``nodes`` (a process ending on its own: an error at start, a dead executor)."""
    import sys

    for node in nodes:
        name = node.get_name()
        try:
            node.destroy_node()
        except Exception as exc:  # exiting anyway: one line each, the other nodes still go
            print(f"[{name}] warning: while shutting down: {exc}", file=sys.stderr)


STOP_DEADLINE_S = 2.5  # Ctrl-C to exit at most this long (the launch service escalates after 5 s)
STOP_BACKSTOP_S = 3.5  # ... and at most this long when the GIL is held (exit code 1, stacks on stderr)


def start_stop_deadline(stop: threading.Event) -> list[int]:
    """Arm :func:`_stop_deadline` for this process; returns the one-element list whose value it exits
    with, for the caller to set when it knows its exit code."""
    exit_code = [0]
    threading.Thread(target=_stop_deadline, args=(stop, STOP_DEADLINE_S, exit_code), daemon=True).start()
    return exit_code


def _stop_deadline(stop: threading.Event, seconds: float, exit_code: list[int]) -> None:
    """Once a stop was asked for, end the process if it is still there ``seconds`` later.

    A node that hangs on Ctrl-C (a ``before_exit`` that never returns, a callback holding a lock it
    needs) would hold the robot's launch until it is killed: the thread stacks go to the log so it
    says where, and the process exits with the code it was about to return (0 for a clean stop).
    """
    import faulthandler
    import sys

    stop.wait()
    time.sleep(seconds)
    print(f"warning: still running {seconds} s after shutdown began; thread stacks follow; exiting now", file=sys.stderr)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    exit_now(exit_code[0])


def exit_now(code: int) -> None:
    """End the process at once after a clean node shutdown (Ctrl-C, launch's SIGINT).

    The interpreter's own teardown (joining executor worker threads still inside a long callback,
    finalising torch and onnxruntime) took seconds on a busy machine, past the launch's grace time;
    what the node must save was saved by :func:`before_exit` before this.
    """
    import logging
    import os
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
