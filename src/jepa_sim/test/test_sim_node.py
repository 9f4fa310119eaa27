"""The sim node over real ROS 2 between two processes: realtime stream and lockstep determinism."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jepa_common.processes import wait_for
from jepa_sim.worlds.two_rooms import TwoRooms

pytestmark = pytest.mark.ros


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.mark.slow
def test_realtime_streams_images_and_proprio_with_increasing_stamps(ros_procs, rclpy_node):
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image

    from jepa_common.ros_common import latched_qos

    proc = ros_procs.run("jepa_sim.sim_node", "--ros-args", "-p", "mode:=realtime", "-p", "rate:=20.0", "-p", "seed:=1")
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

    from jepa_interfaces.srv import GetGoalImage

    # made before the sim starts: a server that has not yet discovered a client made just before its call
    # drops the answer (Fast DDS: "client will not receive response")
    client = rclpy_node.create_client(GetGoalImage, "sim/get_goal_image")
    proc = ros_procs.run(
        "jepa_sim.sim_node",
        "--ros-args",
        "-p",
        "mode:=lockstep",
        "-p",
        "seed:=3",
        "-p",
        "world_args:='{goal_in_other_room: true}'",
        "-p",
        "idle_republish_period:=0.0",  # exactly one observation per command, none repeated while idle
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


@pytest.mark.slow
def test_lockstep_repeats_its_observation_until_the_first_command(ros_procs, rclpy_node):
    """A subscriber that joins late (as under ros2 launch) still gets the observation the lockstep sim waits on."""
    from geometry_msgs.msg import Twist, Vector3
    from sensor_msgs.msg import Image
    from std_srvs.srv import Trigger

    republish = rclpy_node.create_client(Trigger, "sim/republish")  # made early, see the lockstep test above
    proc = ros_procs.run(
        "jepa_sim.sim_node", "--ros-args", "-p", "mode:=lockstep", "-p", "seed:=4", "-p", "idle_republish_period:=0.2"
    )
    time.sleep(1.0)  # the sim's first publication happens before this subscription exists
    images: list = []
    rclpy_node.create_subscription(Image, "camera/image_raw", images.append, 50)
    wait_for(lambda: len(images) >= 3, 20, "repeated observations", proc)
    assert {stamp_ns(m) for m in images} == {0}  # the same observation: time does not advance while idle
    world = TwoRooms()
    assert bytes(images[0].data) == world.reset(seed=4).image.tobytes()
    pub = rclpy_node.create_publisher(Twist, "cmd_vel", 10)
    wait_for(lambda: pub.get_subscription_count() > 0, 10, "the sim's command subscription", proc)
    pub.publish(Twist(linear=Vector3(x=5.0)))
    wait_for(lambda: any(stamp_ns(m) > 0 for m in images), 10, "the observation after the command", proc)
    time.sleep(1.0)
    after = [stamp_ns(m) for m in images if stamp_ns(m) > 0]
    assert after == [round(0.1 * 1e9)]  # one step, published once: no repeats once commands flow
    # ~/republish serves the current observation again on request
    assert republish.wait_for_service(timeout_sec=10)
    future = republish.call_async(Trigger.Request())
    wait_for(future.done, 10, "the republish service", proc)
    assert future.result().success
    wait_for(lambda: [stamp_ns(m) for m in images].count(round(0.1 * 1e9)) == 2, 10, "the re-published observation", proc)


SHIPPED_PARAMS = Path(__file__).resolve().parents[3] / "config" / "agent.yaml"


@pytest.mark.slow
@pytest.mark.parametrize("world", ["two_rooms", "multi_room", "point_maze", "push_t"])
def test_every_world_starts_from_the_shipped_params_file(ros_procs, rclpy_node, tmp_path, world):
    """world:=NAME with config/agent.yaml: the world's own options apply (not another world's), and it publishes."""
    import yaml
    from sensor_msgs.msg import Image

    from jepa_common.ros_common import latched_qos
    from jepa_sim.sim_node import build_world, node_section_params

    params = node_section_params(yaml.safe_load(SHIPPED_PARAMS.read_text()), "sim")
    try:
        expected = build_world({**params, "world": world})
    except ValueError as exc:
        if "not available" in str(exc):
            pytest.skip(f"{world}: optional extras not installed ({exc})")
        raise
    override = tmp_path / "world.yaml"  # what agent_sim.launch.py world:=NAME passes after the params file
    override.write_text(yaml.safe_dump({"/**/sim": {"ros__parameters": {"world": world}}}))
    proc = ros_procs.run(
        "jepa_sim.sim_node", "--ros-args", "--params-file", str(SHIPPED_PARAMS), "--params-file", str(override),
        name=f"sim_{world}",
    )
    images, goals = [], []
    rclpy_node.create_subscription(Image, "camera/image_raw", images.append, 10)
    rclpy_node.create_subscription(Image, "goal_image", goals.append, latched_qos())
    wait_for(lambda: images and goals, 60, f"{world}'s first observation and goal image", proc)
    side = expected.spec.image_size
    assert (images[0].height, images[0].width) == (side, side)
    assert proc.poll() is None


def test_world_options_follow_the_world_and_bad_ones_are_one_clear_error():
    from jepa_sim.sim_node import PARAMS, build_world, world_options

    params = {key: spec.default for key, spec in PARAMS.items()}
    params.update({"world_options.two_rooms": "{goal_in_other_room: true}", "world_options.multi_room": "{goal_doors: 4}"})
    assert world_options({**params, "world": "multi_room"}) == ("world_options.multi_room", "{goal_doors: 4}")
    assert world_options({**params, "world_args": "{door_y: 20}"}) == ("world_args", "{door_y: 20}")
    assert build_world({**params, "world": "multi_room"}).spec.name == "multi_room"
    with pytest.raises(ValueError, match=r"'world_args' = .* does not fit world 'multi_room'"):
        build_world({**params, "world": "multi_room", "world_args": "{goal_in_other_room: true}"})
    with pytest.raises(ValueError, match=r"'world_options\.two_rooms' must be a YAML mapping"):
        build_world({**params, "world_options.two_rooms": "[1, 2]"})
    with pytest.raises(ValueError, match=r"appears twice"):  # not silently the last of the two
        build_world({**params, "world_args": "{door_y: 20, door_y: 40}"})
