"""The memory node fits the critic in a child process and announces it; the fit's command line works alone."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from jepa_common.processes import wait_for


def test_fit_file_cli_fits_saves_and_refuses_bad_input(tmp_path: Path, capsys) -> None:
    from jepa_planner.critic import fit_command, load_critic_checked

    rng = np.random.default_rng(0)
    z = rng.normal(size=(64, 4)).astype(np.float32)
    g = rng.normal(size=(64, 4)).astype(np.float32)
    np.savez(tmp_path / "data.npz", latents=z, goals=g, targets=np.square(z - g).sum(1).astype(np.float32))
    out = tmp_path / "critic.pt"
    assert fit_command([str(tmp_path / "data.npz"), str(out), "--epochs", "3"]) == 0
    assert capsys.readouterr().out.startswith("final_loss ")
    assert load_critic_checked(out, (4,)) is not None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left

    np.savez(tmp_path / "bad.npz", latents=z, goals=g[:10], targets=z[:, 0])
    assert fit_command([str(tmp_path / "bad.npz"), str(tmp_path / "x.pt"), "--epochs", "1"]) == 2
    assert "do not match" in capsys.readouterr().err
    assert fit_command([str(tmp_path / "missing.npz"), str(tmp_path / "x.pt")]) == 2
    assert "missing.npz" in capsys.readouterr().err


@pytest.mark.ros
@pytest.mark.parametrize("recorded", [True, False], ids=["record_dir", "no_record_dir"])
def test_memory_node_fits_the_critic_in_a_child_process(ros_procs, rclpy_node, tmp_path: Path, recorded: bool) -> None:
    """With a record_dir the critic is <record_dir>/critic.pt; without one it goes to a temporary directory of
    the node, still announced (it used to be fitted and thrown away), and removed when the node stops."""
    from geometry_msgs.msg import Twist
    from std_msgs.msg import String

    from jepa_common.ros_common import latched_qos, reliable_qos
    from jepa_interfaces.msg import LatentState
    from jepa_planner.critic import load_critic_checked

    record = tmp_path / "record"
    args = ["-p", f"record_dir:={record}"] if recorded else []
    proc = ros_procs.run("jepa_planner.memory_node", "--ros-args", *args, "-p", "critic_every:=1",
                         "-p", "critic_epochs:=5", name="memory")
    announced: list[str] = []
    rclpy_node.create_subscription(String, "critic_updated", lambda m: announced.append(m.data), reliable_qos(10))
    goal_pub = rclpy_node.create_publisher(LatentState, "goal_latent", latched_qos())
    latent_pub = rclpy_node.create_publisher(LatentState, "latent", reliable_qos(10))
    cmd_pub = rclpy_node.create_publisher(Twist, "cmd_vel", reliable_qos(10))
    wait_for(lambda: all(p.get_subscription_count() > 0 for p in (goal_pub, latent_pub, cmd_pub))
             and rclpy_node.count_publishers("critic_updated") > 0, 120, "the memory node", proc)
    time.sleep(1.0)  # discovery both ways

    def latent(x: float) -> LatentState:
        return LatentState(shape=[4], data=[x, 0.0, 0.0, 0.0])

    goal_pub.publish(latent(5.0))
    time.sleep(0.3)
    for i in range(12):
        twist = Twist()
        twist.linear.x = 1.0
        cmd_pub.publish(twist)
        latent_pub.publish(latent(i * 0.4))
        time.sleep(0.05)
    goal_pub.publish(latent(-5.0))  # closes the episode: a fit is due
    wait_for(lambda: announced, 120, "critic_updated", proc)
    critic = Path(announced[0])
    if recorded:
        assert announced == [str(record / "critic.pt")]
    else:
        assert critic.name == "critic.pt" and critic.parent.name.startswith("jepa_memory_critic_")
    assert load_critic_checked(critic, (4,)) is not None
    # the node announces before it logs the fit: wait for the line rather than read the log at once
    wait_for(lambda: "critic updated on 1 episodes, final loss" in Path(proc.log_path).read_text(), 10,
             "the fit's log line", proc)
    ros_procs.stop(proc)
    assert critic.exists() == recorded  # the temporary directory goes with the node
