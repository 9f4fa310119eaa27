"""Image conversion and declared-parameter validation shared by all nodes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from jepa_common.ros_common import ImageError, Param, check_param, image_to_array


def fake_image(arr: np.ndarray, encoding: str, pad: int = 0) -> SimpleNamespace:
    h, w = arr.shape[:2]
    rows = arr.reshape(h, -1)
    if pad:
        rows = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1)
    return SimpleNamespace(encoding=encoding, height=h, width=w, step=rows.shape[1], data=rows.tobytes())


def test_encodings_convert_to_rgb() -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    assert np.array_equal(image_to_array(fake_image(rgb, "rgb8")), rgb)
    assert np.array_equal(image_to_array(fake_image(rgb[..., ::-1].copy(), "bgr8")), rgb)
    rgba = np.concatenate([rgb, np.full((4, 5, 1), 7, np.uint8)], axis=2)
    assert np.array_equal(image_to_array(fake_image(rgba, "rgba8")), rgb)
    mono = rgb[..., 0].copy()
    assert np.array_equal(image_to_array(fake_image(mono[..., None], "mono8")), np.repeat(mono[..., None], 3, 2))
    # row padding (step > width * channels) is dropped
    assert np.array_equal(image_to_array(fake_image(rgb, "rgb8", pad=3)), rgb)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: setattr(m, "encoding", "32FC1"), "unsupported image encoding"),
        (lambda m: setattr(m, "data", m.data[:-1]), "bytes, expected"),
        (lambda m: setattr(m, "height", 0), "empty image"),
    ],
)
def test_bad_images_are_named(mutate, message: str) -> None:
    msg = fake_image(np.zeros((4, 5, 3), np.uint8), "rgb8")
    mutate(msg)
    with pytest.raises(ImageError, match=message):
        image_to_array(msg)


def test_wrong_size_is_an_error_not_a_resize() -> None:
    with pytest.raises(ImageError, match="model expects 64x64"):
        image_to_array(fake_image(np.zeros((32, 32, 3), np.uint8), "rgb8"), expected_hw=(64, 64))


def test_check_param() -> None:
    spec = Param(1.0, "a rate", min=0.1, max=100.0)
    assert check_param("rate", 5.0, spec) is None
    assert "below its minimum" in check_param("rate", 0.0, spec)
    assert "must be finite" in check_param("rate", float("nan"), spec)
    assert "not one of" in check_param("backend", "tf", Param("torch", "b", choices=("torch", "onnx")))


@pytest.mark.ros
def test_declared_ranges_are_enforced_by_rclpy(ros_env) -> None:
    import rclpy

    from jepa_common.ros_common import declare_params

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node("param_test", context=ctx)
        values = declare_params(node, {"rate": Param(10.0, "Hz", min=0.1, max=100.0, dynamic=True),
                                       "mode": Param("torch", "b", choices=("torch", "onnx"), dynamic=True),
                                       "backend": Param("torch", "b", choices=("torch", "onnx"))})
        assert values == {"rate": 10.0, "mode": "torch", "backend": "torch"}
        bad = node.set_parameters([rclpy.parameter.Parameter("rate", value=1000.0)])[0]
        assert not bad.successful
        bad = node.set_parameters([rclpy.parameter.Parameter("mode", value="tf")])[0]
        assert not bad.successful and "not one of" in bad.reason
        ok = node.set_parameters([rclpy.parameter.Parameter("rate", value=20.0)])[0]
        assert ok.successful and node.get_parameter("rate").value == 20.0
        assert values["rate"] == 20.0  # the returned view is live: a dynamic set applies at once
        static = node.set_parameters([rclpy.parameter.Parameter("backend", value="onnx")])[0]
        assert not static.successful and "read-only at run time" in static.reason
        assert values["backend"] == "torch"
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def test_unknown_keys_in_a_node_section_are_named_with_the_closest_key(tmp_path) -> None:
    from jepa_common.ros_common import params_files, unknown_param_keys

    f = tmp_path / "p.yaml"
    f.write_text("/**:\n  ros__parameters: {bundle: x, anything: 1}\n"
                 "/**/actor:\n  ros__parameters: {max_comand: 1.0, dt: 0.1}\n"
                 "/other:\n  ros__parameters: {nonsense: 1}\n")
    argv = ["prog", "--ros-args", "-r", "__node:=actor", "--params-file", str(f)]
    assert params_files(argv) == [str(f)]
    problems = unknown_param_keys("/actor", {"max_command", "dt", "bundle"}, params_files(argv))
    assert len(problems) == 1 and "'max_comand'" in problems[0] and "did you mean 'max_command'" in problems[0]
    assert unknown_param_keys("/robot1/actor", {"max_command", "dt", "bundle"}, [str(f)])  # /**/ matches namespaces
    assert unknown_param_keys("/other", {"nonsense"}, [str(f)]) == []


def test_parse_latent_names_the_problem() -> None:
    from jepa_common.ros_common import parse_latent

    msg = SimpleNamespace(model_id="m", shape=[2, 2], data=np.arange(4, dtype=np.float32))
    assert parse_latent(msg, (2, 2), "m").shape == (2, 2)
    with pytest.raises(ValueError, match="shape"):
        parse_latent(msg, (4,))
    with pytest.raises(ValueError, match="from model"):
        parse_latent(msg, (2, 2), "other")
    msg.data = np.array([0, np.nan, 0, 0], np.float32)
    with pytest.raises(ValueError, match="NaN"):
        parse_latent(msg, (2, 2))
    msg.shape, msg.data = [2, 2], np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="3 values"):
        parse_latent(msg, (2, 2))


def test_planner_gate_holds_other_work_only_while_a_plan_runs() -> None:
    import threading

    from jepa_common.ros_common import PlannerGate

    gate = PlannerGate()
    assert gate.wait_idle(0.0)  # nobody plans: no wait (separate processes)
    order: list[str] = []

    def other_node() -> None:
        assert gate.wait_idle(5.0)
        order.append("other")

    with gate.planning():
        worker = threading.Thread(target=other_node)
        worker.start()
        assert not gate.wait_idle(0.05)  # bounded: a caller gets False, never a hang
        order.append("plan")
    worker.join(5.0)
    assert order == ["plan", "other"]
    assert gate.wait_idle(0.0)


def test_planner_gate_gives_a_published_frame_to_the_actor_first() -> None:
    import threading

    from jepa_common.ros_common import PlannerGate

    gate = PlannerGate()
    gate.frame_out()
    assert gate.wait_idle(0.0)  # no actor in this process (separate processes): a latent closes nothing

    gate.add_actor()
    gate.frame_out()
    assert not gate.wait_idle(0.01)  # the actor has not taken the frame yet
    order: list[str] = []

    def other_node() -> None:
        assert gate.wait_idle(5.0)
        order.append("other")

    worker = threading.Thread(target=other_node)
    worker.start()
    order.append("actor")
    gate.frame_taken()
    worker.join(5.0)
    assert order == ["actor", "other"]

    gate.frame_out()  # a frame the actor never gets holds the others at most FRAME_WAIT_S
    assert gate.wait_idle(gate.FRAME_WAIT_S + 1.0)
    gate.frame_out()
    gate.remove_actor()  # the actor went away (cleanup): nothing to wait for
    assert gate.wait_idle(0.0)
    gate.frame_out()
    assert gate.wait_idle(0.0)


def test_local_topics_count_publishers_and_hand_messages_to_attached_sinks() -> None:
    import jepa_common.ros_common as rc
    from jepa_common.ros_common import LatestSlot, LocalSubscription, LocalTopics

    topics = LocalTopics()
    got: list[int] = []
    assert not topics.offered("/latent")
    topics.offer("/latent")
    topics.offer("/latent")  # a second publisher of the same topic in this process
    topics.withdraw("/latent")
    assert topics.offered("/latent")
    topics.attach("/latent", got.append)
    topics.deliver("/latent", 1)
    topics.deliver("/other", 2)  # nobody attached there
    topics.detach("/latent", got.append)
    topics.deliver("/latent", 3)
    assert got == [1]
    topics.withdraw("/latent")
    assert not topics.offered("/latent")

    slot = LatestSlot()
    assert slot.take(0.0) is None
    slot.put("a")
    slot.put("b")  # keep-last-1: the newest replaces an untaken one
    assert slot.take(0.0) == "b" and slot.take(0.0) is None

    seen: list[str] = []
    sub = LocalSubscription("/x", seen.append)
    rc.LOCAL_TOPICS.deliver("/x", "m")
    sub.destroy()
    rc.LOCAL_TOPICS.deliver("/x", "n")
    assert seen == ["m"]


def test_subscribe_local_first_uses_the_in_process_publisher_when_there_is_one() -> None:
    import jepa_common.ros_common as rc

    class FakeNode:
        def __init__(self) -> None:
            self.subscriptions: list[str] = []

        def resolve_topic_name(self, topic: str) -> str:
            return f"/robot1/{topic}"

        def create_subscription(self, msg_type, topic, callback, qos, callback_group=None):
            self.subscriptions.append(topic)
            return "dds"

        def get_logger(self):
            return None

    node, got = FakeNode(), []
    assert rc.subscribe_local_first(node, object, "latent", got.append, 1) == "dds"  # nobody offers it here
    rc.LOCAL_TOPICS.offer("/robot1/latent")
    try:
        sub = rc.subscribe_local_first(node, object, "latent", got.append, 1, sink=got.append)
        assert isinstance(sub, rc.LocalSubscription) and sub.topic_name == "/robot1/latent"
        rc.LOCAL_TOPICS.deliver("/robot1/latent", "z")
        assert got == ["z"] and node.subscriptions == ["latent"]
        sub.destroy()
    finally:
        rc.LOCAL_TOPICS.withdraw("/robot1/latent")
