"""ROS 2 node serving a built-in world: camera, proprio, /clock and goal image out, commands in.

Publishes (stamps = sim time, ``spec.dt`` per step, never reset):
    ``camera/image_raw`` sensor_msgs/Image rgb8 (frame_id = parameter ``frame_id``),
    ``odom`` nav_msgs/Odometry for point-mass worlds (pose = px position, twist = px/s) or
    ``proprio`` sensor_msgs/JointState (position = proprio vector) for others,
    ``/clock`` rosgraph_msgs/Clock, ``true_state`` sensor_msgs/JointState (if ``publish_state``),
    ``goal_image`` sensor_msgs/Image, transient-local (latched), after every reset.
Subscribes: ``cmd_vel`` geometry_msgs/Twist (``command_type`` twist: displacement = linear * dt)
or ``action`` std_msgs/Float32MultiArray (``command_type`` action: the raw action).
Services: ``~/reset`` std_srvs/Trigger (next seed), ``~/get_goal_image`` jepa_interfaces/GetGoalImage
(the current episode's goal image; the same image is also on the latched ``goal_image`` topic).

Modes: ``realtime`` steps at ``rate`` Hz with the latest command (zero once it is older than
``command_timeout`` s); ``lockstep`` makes exactly one step per received command and then
publishes the new observation (deterministic evaluation).

A lockstep world waits for a command after each observation, so an observation lost on the way
(a subscriber that was not active yet, as when ``ros2 launch`` starts every node at once, or a
best-effort drop) would stall it for good. Until the first command after a start or reset, the
sim therefore re-publishes the current observation (same stamp, same ``/clock``: time does not
advance) every ``idle_republish_period`` s of the steady clock; the same observation is also
served on request by ``~/republish``. Once commands flow, each observation is published once.

World options: ``world_args`` (a YAML mapping) when non-empty, else ``world_options.<world>``, so
one params file carries the options of every world and ``world:=NAME`` picks the matching set.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float32MultiArray
from std_srvs.srv import Trigger

from jepa_common.convert import twist_to_action
from jepa_common.ros_common import Param, array_to_image, declare_params, latched_qos, reliable_qos, run_node
from jepa_common.yaml_io import load_yaml_text
from jepa_interfaces.srv import GetGoalImage
from jepa_sim.worlds import World, make_world, world_names
from jepa_sim.worlds.point_mass import PointMassWorld

PARAMS = {
    "world": Param("two_rooms", "world registry name", choices=tuple(world_names()), read_only=True),
    "world_args": Param(
        "",
        "world constructor options as a YAML mapping, e.g. '{goal_in_other_room: true}' (empty: world_options.<world>)",
        read_only=True,
    ),
    **{
        f"world_options.{name}": Param("", f"options of world {name} (YAML mapping) when world_args is empty", read_only=True)
        for name in world_names()
    },
    "seed": Param(0, "seed of the first episode; each ~/reset uses the next", min=0),
    "image_size": Param(0, "camera image side in px (0 = the world's default)", min=0, max=2048, read_only=True),
    "rate": Param(10.0, "realtime mode: steps per second (wall clock)", min=0.1, max=1000.0, read_only=True),
    "mode": Param(
        "realtime", "realtime: step at rate Hz; lockstep: one step per command", choices=("realtime", "lockstep"), read_only=True
    ),
    "command_type": Param(
        "twist",
        "twist: geometry_msgs/Twist on cmd_vel; action: std_msgs/Float32MultiArray on action",
        choices=("twist", "action"),
        read_only=True,
    ),
    "command_timeout": Param(0.5, "realtime mode: a command older than this (s) counts as zero", min=0.0, max=60.0),
    "frame_id": Param("camera", "frame_id of the camera images"),
    "publish_state": Param(True, "publish the privileged true state on true_state (probes and evaluation only)"),
    "idle_republish_period": Param(
        1.0,
        "lockstep: re-publish the current observation every this many s (steady clock) until a command arrives (0 = never)",
        min=0.0,
        max=60.0,
        read_only=True,
    ),
}


def parse_world_args(text: str) -> dict[str, Any]:
    """The ``world_args`` parameter (YAML mapping text) as a dict; ValueError naming it when malformed."""
    if not text.strip():
        return {}
    value = load_yaml_text(text, "parameter 'world_args' (YAML mapping)")
    if not isinstance(value, dict):
        raise ValueError(f"parameter 'world_args' must be a YAML mapping like '{{door_y: 20}}', got {text!r}")
    return value


def world_options(params: dict[str, Any]) -> tuple[str, str]:
    """(parameter name, YAML text) of the options for ``params['world']``: world_args, else world_options.<world>."""
    if params["world_args"].strip():
        return "world_args", params["world_args"]
    name = f"world_options.{params['world']}"
    return name, params.get(name, "")


def flatten_params(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params-file values as ROS parameter names: {world_options: {a: x}} -> {'world_options.a': x}."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(flatten_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def node_section_params(doc: dict[str, Any], name: str = "sim") -> dict[str, Any]:
    """What node ``name`` reads from a params file: PARAMS defaults, then ``/**``, then its own section."""
    values = {key: spec.default for key, spec in PARAMS.items()}
    for key in ("/**", name, f"/{name}", f"/**/{name}"):
        section = (doc.get(key) or {}).get("ros__parameters") or {}
        values.update({k: v for k, v in flatten_params(section).items() if k in PARAMS})
    return values


def build_world(params: dict[str, Any]) -> World:
    """The world the parameters ask for; ValueError with one clear line when it cannot be built."""
    source, text = world_options(params)
    try:
        kwargs = parse_world_args(text)
    except ValueError as exc:
        raise ValueError(str(exc).replace("'world_args'", f"'{source}'")) from exc
    if params["image_size"]:
        kwargs["image_size"] = params["image_size"]
    try:
        return make_world(params["world"], **kwargs)
    except ImportError as exc:  # an optional world whose extras are not installed
        raise ValueError(f"world '{params['world']}' is not available: {exc}") from exc
    except (TypeError, ValueError) as exc:  # options the world does not take
        raise ValueError(f"parameter '{source}' = {text!r} does not fit world '{params['world']}': {exc}") from exc


class SimNode(Node):
    """Thin ROS wrapper over one ``World``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("sim", **kwargs)
        self.params = declare_params(self, PARAMS)
        self.world: World = build_world(self.params)
        self.spec = self.world.spec
        self.point_mass = isinstance(self.world, PointMassWorld)
        self.lock = threading.Lock()
        self.steps = 0
        self.seed = int(self.params["seed"])
        self.last_command = np.zeros(self.spec.action_dim)
        self.last_command_time = -np.inf
        self.current: tuple[np.ndarray, np.ndarray, Any] | None = None  # the last published observation
        self.awaiting_first_command = True  # lockstep: re-publish until a command arrives

        out_qos = reliable_qos(10)
        self.image_pub = self.create_publisher(Image, "camera/image_raw", out_qos)
        if self.point_mass:
            self.proprio_pub = self.create_publisher(Odometry, "odom", out_qos)
        else:
            self.proprio_pub = self.create_publisher(JointState, "proprio", out_qos)
        self.state_pub = self.create_publisher(JointState, "true_state", out_qos) if self.params["publish_state"] else None
        self.clock_pub = self.create_publisher(Clock, "/clock", out_qos)
        self.goal_pub = self.create_publisher(Image, "goal_image", latched_qos())
        if self.params["command_type"] == "twist":
            self.create_subscription(Twist, "cmd_vel", self.on_twist, reliable_qos(10))
        else:
            self.create_subscription(Float32MultiArray, "action", self.on_array, reliable_qos(10))
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.goal_msg: Image | None = None
        self.create_service(GetGoalImage, "~/get_goal_image", self.on_get_goal_image)
        self.create_service(Trigger, "~/republish", self.on_republish)
        if self.params["mode"] == "realtime":
            self.create_timer(1.0 / self.params["rate"], self.on_timer)
        elif self.params["idle_republish_period"] > 0:
            # Steady clock: independent of /clock (which this node drives) and of the wall clock jumping.
            self.create_timer(
                self.params["idle_republish_period"], self.on_idle_timer, clock=RosClock(clock_type=ClockType.STEADY_TIME)
            )
        with self.lock:
            self.reset_world(self.seed)
        self.get_logger().info(
            f"world {self.spec.name} ({self.spec.image_size} px), mode {self.params['mode']}, seed {self.seed}"
        )

    # ------------------------------------------------------------------ commands
    def on_twist(self, msg: Twist) -> None:
        try:
            action = twist_to_action(msg, self.spec.action_dim, self.spec.dt)
        except ValueError as exc:
            self.get_logger().error(f"cmd_vel ignored: {exc}")
            return
        self.on_action(action)

    def on_array(self, msg: Float32MultiArray) -> None:
        data = np.asarray(msg.data, dtype=np.float64)
        if data.shape != (self.spec.action_dim,):
            self.get_logger().error(
                f"action has {data.size} values, world {self.spec.name} needs {self.spec.action_dim}; ignored"
            )
            return
        self.on_action(data)

    def on_action(self, action: np.ndarray) -> None:
        if not np.isfinite(action).all():
            self.get_logger().error(f"non-finite command {action.tolist()} ignored")
            return
        if self.params["mode"] == "lockstep":
            with self.lock:
                self.awaiting_first_command = False
                self.step_world(action)
        else:
            self.last_command, self.last_command_time = action, time.monotonic()

    def on_timer(self) -> None:
        fresh = time.monotonic() - self.last_command_time <= self.get_parameter("command_timeout").value
        with self.lock:
            self.step_world(self.last_command if fresh else np.zeros(self.spec.action_dim))

    def on_idle_timer(self) -> None:
        """Lockstep: re-publish the current observation while no command has arrived since start/reset."""
        with self.lock:
            if self.awaiting_first_command and self.current is not None:
                self.publish(*self.current)

    def on_republish(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Publish the current observation again (same stamp): for a subscriber that missed it."""
        with self.lock:
            if self.current is None:
                response.success, response.message = False, "no episode has started yet"
                return response
            self.publish(*self.current)
        response.success, response.message = True, f"re-published the observation of step {self.steps}"
        return response

    def on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self.lock:
            self.awaiting_first_command = True
            self.seed += 1
            self.reset_world(self.seed)
        response.success, response.message = True, f"reset with seed {self.seed}"
        return response

    def on_get_goal_image(self, request: GetGoalImage.Request, response: GetGoalImage.Response) -> GetGoalImage.Response:
        with self.lock:
            goal = self.goal_msg
        if goal is None:
            response.success, response.message = False, "no episode has started yet"
        else:
            response.success, response.image = True, goal
        return response

    # ------------------------------------------------------------------ world
    def reset_world(self, seed: int) -> None:
        obs = self.world.reset(seed=seed)
        stamp = self.sim_stamp()
        self.goal_msg = array_to_image(self.world.goal_observation().image, stamp, self.params["frame_id"])
        self.goal_pub.publish(self.goal_msg)
        self.publish(obs.image, obs.proprio, stamp)

    def step_world(self, action: np.ndarray) -> None:
        obs, _ = self.world.step(action)
        self.steps += 1
        self.publish(obs.image, obs.proprio, self.sim_stamp())

    def sim_stamp(self) -> Any:
        ns = round(self.steps * self.spec.dt * 1e9)
        from builtin_interfaces.msg import Time

        return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    def publish(self, image: np.ndarray, proprio: np.ndarray, stamp: Any) -> None:
        self.current = (image, proprio, stamp)
        self.clock_pub.publish(Clock(clock=stamp))
        self.image_pub.publish(array_to_image(image, stamp, self.get_parameter("frame_id").value))
        if self.point_mass:
            odom = Odometry()
            odom.header.stamp, odom.header.frame_id, odom.child_frame_id = stamp, "map", "base_link"
            odom.pose.pose.position.x, odom.pose.pose.position.y = float(proprio[0]), float(proprio[1])
            odom.pose.pose.orientation.w = 1.0
            odom.twist.twist.linear.x = float(proprio[2]) / self.spec.dt
            odom.twist.twist.linear.y = float(proprio[3]) / self.spec.dt
            self.proprio_pub.publish(odom)
        else:
            self.proprio_pub.publish(self._joint_state(stamp, "p", proprio))
        if self.state_pub is not None:
            self.state_pub.publish(self._joint_state(stamp, "s", self.world.true_state()))

    @staticmethod
    def _joint_state(stamp: Any, prefix: str, values: np.ndarray) -> JointState:
        msg = JointState()
        msg.header.stamp = stamp
        msg.name = [f"{prefix}{i}" for i in range(len(values))]
        msg.position = [float(v) for v in values]
        return msg


def main(args: list[str] | None = None) -> int:
    """Entry point of ``jepa-sim-node``."""
    return run_node(SimNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
