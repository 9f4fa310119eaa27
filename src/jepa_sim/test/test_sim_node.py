"""The sim node over real ROS 2 between two processes: realtime stream and lockstep determinism."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jepa_sim.worlds.two_rooms import TwoRooms

pytestmark = pytest.mark.ros


def wait_for(predicate, timeout: float, what: str, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"sim node exited with {proc.returncode} while waiting for {what}; log: {Path(proc.log_path).read_text()}"
            )
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.mark.slow
def test_realtime_streams_images_and_proprio_with_increasing_stamps(ros_procs, rclpy_node):
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image

    from jepa_sim.ros_common import latched_qos

    proc = ros_procs.start("jepa_sim.sim_node", "--ros-args", "-p", "mode:=realtime", "-p", "rate:=20.0", "-p", "seed:=1")
    images, odoms, goals = [], [], []
    rclpy_node.create_subscription(Image, "camera/image_raw", images.append, 50)
    rclpy_node.create_subscription(Odometry, "odom", odoms.append, 50)
    rclpy_node.create_subscription(Image, "goal_image", goals.append, latched_qos())
    wait_for(lambda: len(images) >= 5 and len(odoms) >= 5 and goals, 20, "images, odometry and the latched goal image", proc)
    img_stamps = [stamp_ns(m) for m in images[:5]]
    assert all(b > a for a, b in itertools.pairwise(img_stamps))
    odom_stamps = {stamp_ns(m) for m in odoms}
    assert set(img_stamps[:3]) <= odom_stamps  # image and proprio carry the same sim-time stamps
    assert images[0].encoding == "rgb8" and images[0].height == 64 and images[0].header.frame_id == "camera"
    world = TwoRooms()
    world.reset(seed=1)
    assert bytes(goals[0].data) == world.goal_observation().image.tobytes()


@pytest.mark.slow
def test_lockstep_n_commands_make_n_steps_matching_the_world(ros_procs, rclpy_node):
    from geometry_msgs.msg import Twist, Vector3
    from nav_msgs.msg import Odometry

    proc = ros_procs.start(
        "jepa_sim.sim_node",
        "--ros-args",
        "-p",
        "mode:=lockstep",
        "-p",
        "seed:=3",
        "-p",
        "world_args:='{goal_in_other_room: true}'",
    )
    odoms: list = []
    rclpy_node.create_subscription(Odometry, "odom", odoms.append, 50)
    pub = rclpy_node.create_publisher(Twist, "cmd_vel", 10)
    wait_for(
        lambda: pub.get_subscription_count() > 0 and rclpy_node.count_publishers("odom") > 0, 20, "the sim node's endpoints", proc
    )
    time.sleep(0.3)  # let the odom subscription match too
    odoms.clear()
    world = TwoRooms(goal_in_other_room=True)
    world.reset(seed=3)
    rng = np.random.default_rng(0)
    commands = rng.uniform(-20, 20, size=(6, 2))  # px/s; dt = 0.1 -> up to 2 px per step
    expected = []
    for k, (vx, vy) in enumerate(commands):
        pub.publish(Twist(linear=Vector3(x=float(vx), y=float(vy))))
        wait_for(lambda k=k: len(odoms) >= k + 1, 10, f"odometry after command {k}", proc)
        obs, _ = world.step(np.array([vx, vy]) * 0.1)
        expected.append(obs.proprio[:2])
    time.sleep(0.3)
    assert len(odoms) == len(commands)  # exactly one step per command
    got = np.array([[m.pose.pose.position.x, m.pose.pose.position.y] for m in odoms], dtype=np.float32)
    np.testing.assert_array_equal(got, np.array(expected))
    assert [stamp_ns(m) for m in odoms] == [round((k + 1) * 0.1 * 1e9) for k in range(len(commands))]

    # the goal image service returns the episode's goal image (same as the world's)
    from jepa_interfaces.srv import GetGoalImage

    client = rclpy_node.create_client(GetGoalImage, "sim/get_goal_image")
    assert client.wait_for_service(timeout_sec=10)
    future = client.call_async(GetGoalImage.Request())
    wait_for(future.done, 10, "the goal image service", proc)
    assert future.result().success
    assert bytes(future.result().image.data) == world.goal_observation().image.tobytes()


def test_bad_parameter_is_a_clear_error_at_start(ros_env):
    result = subprocess.run(
        [sys.executable, "-m", "jepa_sim.sim_node", "--ros-args", "-p", "mode:=warp"],
        env=ros_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "mode" in result.stderr + result.stdout and "warp" in result.stderr + result.stdout
