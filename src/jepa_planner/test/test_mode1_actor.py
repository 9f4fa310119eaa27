"""ROS: the actor runs Mode 1 (a ``kind: policy`` profile) as an engineer would configure it: commands
within the bounds while latents arrive, a zero command when they stop; a corrupted or foreign policy file
is refused at configure with one line naming it (no traceback)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from jepa_common.processes import wait_for

pytestmark = pytest.mark.ros

BUNDLE = Path(__file__).resolve().parents[3] / "models" / "two_rooms"

if not (BUNDLE / "manifest.json").exists():
    pytest.skip(f"the shipped bundle {BUNDLE} is missing", allow_module_level=True)


def mode1_profiles(tmp_path: Path, policy_path: Path) -> Path:
    body = {"profiles": {"mode1": {"kind": "policy", "policy_noise": 0.4, "stall_recovery": {},
                                   "policy_path": str(policy_path), "levels": [{"level": 0, "horizon": 1}]}}}
    path = tmp_path / f"profiles_{policy_path.stem}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_actor_drives_with_mode1_and_refuses_bad_policy_files(ros_procs, rclpy_node, tmp_path: Path) -> None:
    from geometry_msgs.msg import Twist
    from std_msgs.msg import Header

    from jepa_common.ros_common import latched_qos, reliable_qos
    from jepa_interfaces.msg import LatentState
    from jepa_planner.policy import DistilledPolicy
    from jepa_world_model.bundle import load_bundle

    model = load_bundle(BUNDLE, backend="torch")
    good = tmp_path / "policy.pt"
    DistilledPolicy.for_model(model, hidden=16).save(good)
    corrupted = tmp_path / "corrupted.pt"
    corrupted.write_bytes(good.read_bytes()[:100])
    foreign = tmp_path / "foreign.pt"  # distilled for a bundle with another latent
    DistilledPolicy((3,), [-2.45] * 10, [2.45] * 10, hidden=8).save(foreign)

    node = rclpy_node
    commands: list[tuple[float, float, float]] = []
    node.create_subscription(Twist, "cmd_vel", lambda m: commands.append((time.monotonic(), m.linear.x, m.linear.y)), 100)
    goal_pub = node.create_publisher(LatentState, "goal_latent", latched_qos())
    lease_pub = node.create_publisher(Header, "goal_lease", reliable_qos(1))
    latent_pub = node.create_publisher(LatentState, "latent", reliable_qos(10))

    actor = ros_procs.run("jepa_planner.actor_node", "--ros-args", "-p", f"bundle:={BUNDLE}",
                          "-p", f"profiles_file:={mode1_profiles(tmp_path, good)}", "-p", "profile:=mode1", name="actor")
    wait_for(lambda: latent_pub.get_subscription_count() > 0 and goal_pub.get_subscription_count() > 0, 240,
             "the Mode-1 actor", actor)
    time.sleep(1.0)
    shape, model_id = list(model.latent_shape), model.model_id
    rng = np.random.default_rng(0)
    mean = np.asarray(model.latent_mean, np.float32).reshape(-1)
    std = np.asarray(model.latent_std, np.float32).reshape(-1)

    def latent(z: np.ndarray, stamp_ns: int) -> LatentState:
        msg = LatentState(model_id=model_id, shape=shape, data=z.astype(np.float32).tolist())
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        return msg

    goal = latent(mean + 2 * std, 1)
    goal_pub.publish(goal)
    start = time.monotonic()
    stamp = 2
    while time.monotonic() - start < 6.0:  # feed latents and keep the lease, as perception and the configurator do
        stamp += 100_000_000
        latent_pub.publish(latent(mean + std * rng.normal(size=mean.size).astype(np.float32), stamp))
        lease_pub.publish(Header(stamp=goal.header.stamp))
        time.sleep(0.1)
    fed_until = time.monotonic()
    moving = [c for c in commands if (c[1], c[2]) != (0.0, 0.0)]
    assert len(moving) >= 10, f"Mode 1 sent {len(moving)} non-zero commands in 6 s; log: {Path(actor.log_path).read_text()[-2000:]}"
    bound = 2.45 / 0.1 + 1e-3  # max_command_norm / dt: a Twist carries action / dt
    assert all(np.hypot(x, y) <= bound for _, x, y in commands)
    wait_for(lambda: any(t > fed_until for t, _, _ in commands) and commands[-1][1:] == (0.0, 0.0), 5,
             "a zero command once the latents stop (stale_timeout 1 s)", actor)
    assert actor.poll() is None and "Traceback" not in Path(actor.log_path).read_text()

    for bad, words in ((corrupted, "cannot be read"), (foreign, "distilled for another bundle")):
        proc = ros_procs.run("jepa_planner.actor_node", "--ros-args", "-p", f"bundle:={BUNDLE}",
                             "-p", f"profiles_file:={mode1_profiles(tmp_path, bad)}", "-p", "profile:=mode1",
                             "-r", f"__node:=actor_{bad.stem}", name=f"actor_{bad.stem}")
        log = Path(proc.log_path)
        wait_for(lambda log=log: "cannot configure" in log.read_text(), 240, f"the actor refusing {bad.name}", proc)
        line = next(ln for ln in log.read_text().splitlines() if "cannot configure" in ln)
        assert bad.name in line and words in line, line
        assert "Traceback" not in log.read_text()
