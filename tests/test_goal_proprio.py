"""A bundle that fuses proprioception takes image goals with the goal's proprio (ReachGoal.goal_proprio), over real
processes (perception + configurator): without it the task is refused with the reason, a NaN is refused at once,
and with it the goal latent equals the bundle's own encoding of image and proprio."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "config" / "agent.yaml"


@pytest.fixture(scope="module")
def proprio_bundle(tmp_path_factory) -> Path:
    """A tiny toy bundle whose encoder fuses proprio (trained for two steps: only the interfaces matter here)."""
    from jepa_world_model.bundle import export_bundle
    from jepa_world_model.testing import TOY_META, toy_config, toy_episodes
    from jepa_world_model.train import Trainer

    tmp = tmp_path_factory.mktemp("proprio_bundle")
    cfg = toy_config(**{"train.epochs": 1, "train.steps_per_epoch": 2, "decoder.enabled": False,
                        "model.encoder.use_proprio": True})
    Trainer(cfg, tmp / "run", toy_episodes(12, 30, seed=0), TOY_META).fit()
    export_bundle(tmp / "run", tmp / "model")
    return tmp / "model"


def test_image_goals_carry_the_goal_proprio(ros_env, tmp_path, rclpy_node, proprio_bundle) -> None:
    from rclpy.action import ActionClient

    from jepa_common.processes import NodeProcesses
    from jepa_common.ros_common import array_to_image, latched_qos
    from jepa_interfaces.action import ReachGoal
    from jepa_interfaces.msg import LatentState
    from jepa_planner.demo import NODES
    from jepa_world_model.bundle import load_bundle
    from jepa_world_model.testing import TOY_SIZE

    model = load_bundle(proprio_bundle, backend="onnx")
    image = (np.random.default_rng(0).random((TOY_SIZE, TOY_SIZE, 3)) * 255).astype(np.uint8)
    proprio = np.arange(1, model.proprio_dim + 1, dtype=np.float32)
    expected = model.encode(image[None], proprio[None])[0].numpy()

    overrides = {"perception": {"bundle": str(proprio_bundle), "use_proprio": True},
                 "configurator": {"bundle": str(proprio_bundle)}}
    procs = NodeProcesses(tmp_path, PARAMS, overrides, env=ros_env)
    latents: list = []
    rclpy_node.create_subscription(LatentState, "goal_latent", latents.append, latched_qos())
    action = ActionClient(rclpy_node, ReachGoal, "reach_goal")
    try:
        for name in ("perception", "configurator"):
            procs.start(name, NODES[name])
        deadline = time.monotonic() + 60
        while not action.server_is_ready():
            assert procs.dead() == [], procs.describe_dead()
            assert time.monotonic() < deadline, "configurator's reach_goal not up"
            time.sleep(0.1)

        def send(**fields):
            fut = action.send_goal_async(ReachGoal.Goal(goal_type=ReachGoal.Goal.GOAL_IMAGE, goal_image=array_to_image(image),
                                                        time_limit=30.0, **fields))
            end = time.monotonic() + 30
            while not fut.done():
                assert time.monotonic() < end, "no goal response"
                time.sleep(0.05)
            return fut.result()

        def result_of(handle):
            fut = handle.get_result_async()
            end = time.monotonic() + 30
            while not fut.done():
                assert time.monotonic() < end, "no result"
                time.sleep(0.05)
            return fut.result().result

        outcome = result_of(send())  # no goal proprio: refused with the reason, nothing to drive to
        assert not outcome.success and "proprio" in outcome.reason, outcome.reason
        assert not send(goal_proprio=[float("nan")] * model.proprio_dim).accepted

        handle = send(goal_proprio=proprio.tolist())
        assert handle.accepted
        end = time.monotonic() + 30
        while not any(len(m.data) for m in latents):
            assert time.monotonic() < end, "no goal latent published"
            time.sleep(0.05)
        got = np.asarray(next(m for m in latents if len(m.data)).data, np.float32)
        np.testing.assert_allclose(got, expected.ravel(), atol=1e-4)
        handle.cancel_goal_async()
        assert procs.dead() == []
    finally:
        action.destroy()
        procs.stop()
