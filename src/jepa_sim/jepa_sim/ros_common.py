"""Small ROS helpers shared by every node of the suite: image conversion, QoS presets, declared parameters.

Image conversion is NumPy for the common 8-bit encodings; other encodings (16-bit, YUV, Bayer...)
go through the real ``cv_bridge`` when it is installed (a ROS 2 robot has ``ros-<distro>-cv-bridge``;
the PyPI ``cv-bridge`` is a ROS 1 port that breaks with NumPy 2). Both paths go through
:func:`image_to_array`, so nodes see one behaviour and one set of errors.

This module imports message types and rclpy parameter types only inside functions, so the core
libraries can import the pure helpers without a ROS install.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

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
    """A node parameter: default, help text, optional range or choices, read-only after start.

    Ranges are given to rclpy in the descriptor, so ``ros2 param set`` with an out-of-range value
    is refused by rclpy itself; choices are checked by :func:`declare_params`' callback.
    """

    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False


def declare_params(node: Any, params: dict[str, Param]) -> dict[str, Any]:
    """Declare ``params`` on ``node`` with typed descriptors; validate the start values.

    Returns the values as a dict. Raises ValueError naming the parameter when a start value is out
    of range or not one of the choices (the node should then refuse to configure). Later sets that
    violate a range or choice are rejected by a parameter callback with the same message.
    """
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult

    values: dict[str, Any] = {}
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
        node.declare_parameter(name, p.default, desc)
        values[name] = node.get_parameter(name).value
        problem = check_param(name, values[name], p)
        if problem:
            raise ValueError(problem)

    def on_set(changes: list) -> Any:
        for change in changes:
            spec = params.get(change.name)
            problem = spec and check_param(change.name, change.value, spec)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
    return values


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


def run_node(node_factory: Any, args: list[str] | None = None, *, threads: int = 2) -> int:
    """``main()`` of every node: init, build, autostart lifecycle nodes, spin, clean shutdown.

    A lifecycle node with parameter ``autostart`` true configures and activates itself (the
    robot launch files may instead leave that to a lifecycle manager). A failed configure is
    logged by the node and ends the process with exit code 1, so a launch file shows it at once
    instead of a node that looks alive but does nothing. Ctrl-C (SIGINT) exits with 0, at once
    after the node is destroyed (see :func:`exit_now`).
    """
    import signal

    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
    from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

    rclpy.init(args=args)
    node = None
    executor = None
    code = 0
    interrupted = False
    try:
        node = node_factory()
        if isinstance(node, LifecycleNode) and node.has_parameter("autostart") and node.get_parameter("autostart").value:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("configure failed; exiting (see the error above)")
                return 1
            if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                node.get_logger().fatal("activate failed; exiting")
                return 1
        executor = MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        executor.spin()
        interrupted = True  # spin() returns once the context is shut down (SIGINT/SIGTERM)
    except (KeyboardInterrupt, ExternalShutdownException):
        interrupted = True
    except ValueError as exc:  # invalid parameters at start: one clear line, no trace
        import sys

        print(f"[{getattr(node, 'get_name', lambda: 'node')()}] error: {exc}", file=sys.stderr)
        code = 2
    finally:
        # A second SIGINT (the terminal's and the launch service's both arrive) must not interrupt the cleanup.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if executor is not None:  # no new callbacks; one still running (a long plan) is not waited for
            executor.shutdown(timeout_sec=0, wait_for_threads=False)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # try_shutdown may have put the previous handler back
    if interrupted:
        exit_now(code)
    return code


def exit_now(code: int) -> None:
    """End the process at once after a clean node shutdown (Ctrl-C, launch's SIGINT).

    The interpreter's own teardown (joining executor worker threads still inside a long callback,
    finalising torch and onnxruntime) took seconds on a busy machine, past the launch's grace time;
    everything the node owns was closed by ``destroy_node`` before this.
    """
    import logging
    import os
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
