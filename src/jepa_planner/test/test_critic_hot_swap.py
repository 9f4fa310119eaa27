"""ROS: the actor and the cost node hot-swap a critic announced on 'critic_updated'; a bad file keeps the old one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from jepa_common.processes import wait_for

pytestmark = pytest.mark.ros

BUNDLE = Path(__file__).resolve().parents[3] / "models" / "two_rooms"


def test_actor_and_cost_node_swap_the_critic(ros_procs, rclpy_node, tmp_path) -> None:
    from std_msgs.msg import String

    from jepa_common.ros_common import reliable_qos
    from jepa_planner.critic import Critic
    from jepa_world_model.bundle import read_manifest

    args = ["--ros-args", "-p", f"bundle:={BUNDLE}", "-p", "profile:=flat_cem_short_critic"]
    actor = ros_procs.run("jepa_planner.actor_node", *args, name="actor")
    cost = ros_procs.run("jepa_planner.cost_node", *args, name="cost")
    pub = rclpy_node.create_publisher(String, "critic_updated", reliable_qos(1))
    wait_for(lambda: rclpy_node.count_subscribers("critic_updated") >= 2 or actor.poll() is not None or cost.poll() is not None,
             240, "the actor and the cost node on critic_updated")
    assert actor.poll() is None and cost.poll() is None, "a node died at start"
    time.sleep(1.0)  # discovery both ways

    good = tmp_path / "critic.pt"
    Critic(tuple(read_manifest(BUNDLE, verify=False)["latent_shape"]), hidden=8).save(good)
    actor_log, cost_log = Path(actor.log_path), Path(cost.log_path)
    pub.publish(String(data=str(good)))
    wait_for(lambda: "swapped into 1 cost term(s)" in actor_log.read_text(), 60, "the actor's swap")

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a critic")
    pub.publish(String(data=str(bad)))
    wait_for(lambda: "keeping the current one" in actor_log.read_text() and "keeping the current one" in cost_log.read_text(),
             60, "both nodes refusing the bad critic")
    warning_lines = [ln for ln in actor_log.read_text().splitlines() if "bad.pt" in ln]
    assert len(warning_lines) == 1 and "Traceback" not in actor_log.read_text(), actor_log.read_text()[-2000:]
    assert actor.poll() is None and cost.poll() is None
