"""collect -> MCAP bag -> load_bags round trip, cache, episode splitting and bad-bag errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from jepa_common.bag_format import write_episodes_bag
from jepa_sim.collect import collect_episodes, collect_metadata, iter_episodes, main
from jepa_world_model.data.bags import BagError, BagTopics, default_topics, load_bags

EPISODES, STEPS, SEED = 3, 12, 4


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """One bag written by the CLI and the same episodes collected in memory."""
    out = tmp_path_factory.mktemp("bags") / "two_rooms_bag"
    assert (
        main(
            [
                "--episodes",
                str(EPISODES),
                "--steps",
                str(STEPS),
                "--seed",
                str(SEED),
                "--out",
                str(out),
                "--world-arg",
                "goal_in_other_room=true",
            ]
        )
        == 0
    )
    expected = collect_episodes("two_rooms", EPISODES, STEPS, "random_momentum", seed=SEED, goal_in_other_room=True)
    return out, expected


def assert_same(loaded, expected) -> None:
    assert [len(e) for e in loaded.episodes] == [len(e) for e in expected.episodes]
    for got, want in zip(loaded.episodes, expected.episodes):
        np.testing.assert_array_equal(got.frames, want.frames)
        np.testing.assert_array_equal(got.actions, want.actions)
        np.testing.assert_array_equal(got.proprio, want.proprio)
        np.testing.assert_array_equal(got.state, want.state)
        np.testing.assert_array_equal(got.stamps_ns, want.stamps_ns)


def test_round_trip_exact_values_and_metadata(recorded):
    bag, expected = recorded
    assert not list(bag.parent.glob(".*partial*"))  # the staging directory is gone
    loaded = load_bags([bag], default_topics("two_rooms"))
    assert_same(loaded, expected)
    meta = loaded.metadata
    assert meta["world"] == "two_rooms" and meta["seed"] == SEED and meta["policy"] == "random_momentum"
    assert (
        meta["recordings"][0]["world_kwargs"] == {"goal_in_other_room": True} and "--episodes" in meta["recordings"][0]["command"]
    )
    assert meta["skipped"] == []


def test_cache_second_load_is_memmap_and_equal(recorded, tmp_path):
    bag, expected = recorded
    first = load_bags([bag], default_topics(), cache_dir=tmp_path)
    second = load_bags([bag], default_topics(), cache_dir=tmp_path)
    assert isinstance(second.episodes[0].frames, np.memmap)
    assert_same(first, expected)
    assert_same(second, expected)
    assert len(list(tmp_path.iterdir())) == 1
    load_bags([bag], BagTopics(proprio_scale=(1, 1, 0.1, 0.1), action_scale=(0.1, 0.1)), cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2  # another config, another cache entry


def test_time_gap_split_and_proprio_diff_actions(recorded):
    bag, expected = recorded
    cfg = BagTopics(episode_topic=None, episode_gap_s=0.5, action_type="proprio_diff", state="/true_state")
    loaded = load_bags([bag], cfg)
    assert [len(e) for e in loaded.episodes] == [STEPS + 1] * EPISODES
    for got, want in zip(loaded.episodes, expected.episodes):
        np.testing.assert_allclose(got.actions[:-1], np.diff(want.proprio[:, :2], axis=0), atol=1e-5)
        assert (got.actions[-1] == 0).all()
    single = load_bags([bag], BagTopics(episode_topic=None, proprio_scale=(1, 1, 0.1, 0.1), action_scale=(0.1, 0.1)))
    assert len(single) == 1 and len(single.episodes[0]) == EPISODES * (STEPS + 1)


def test_missing_topic_names_bag_and_topic(recorded):
    bag, _ = recorded
    with pytest.raises(BagError, match=rf"{bag.name}.*/no_such_state"):
        load_bags([bag], BagTopics(state="/no_such_state"))


def test_truncated_and_corrupted_bags_name_the_file_and_skip_mode(recorded, tmp_path):
    bag, expected = recorded
    truncated = tmp_path / "truncated"
    shutil.copytree(bag, truncated)
    mcap = next(truncated.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    corrupted = tmp_path / "corrupted"
    shutil.copytree(bag, corrupted)
    mcap = next(corrupted.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    # record headers near the start (rosbags does not check chunk CRCs, so payload bytes are not tested)
    data[300:2000] = b"\xff" * 1700
    mcap.write_bytes(bytes(data))
    for bad in (truncated, corrupted):
        with pytest.raises(BagError, match=bad.name):
            load_bags([bad], default_topics())
    loaded = load_bags([truncated, bag, corrupted], default_topics(), on_error="skip")
    assert_same(loaded, expected)
    assert [s["path"] for s in loaded.metadata["skipped"]] == [str(truncated), str(corrupted)]
    with pytest.raises(BagError, match="does not exist"):
        load_bags([tmp_path / "nothing"])


def _write_custom_bag(path: Path, encoding: str, size: int) -> None:
    store = get_typestore(Stores.ROS2_KILTED)
    t = store.types
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=store)
        for k in range(3):
            stamp = t["builtin_interfaces/msg/Time"](sec=k + 1, nanosec=0)
            msg = t["sensor_msgs/msg/Image"](
                header=t["std_msgs/msg/Header"](stamp=stamp, frame_id="cam"),
                height=size,
                width=size,
                encoding=encoding,
                is_bigendian=0,
                step=size * 3,
                data=np.full(size * size * 3, k, np.uint8),
            )
            writer.write(conn, (k + 1) * 10**9, store.serialize_cdr(msg, conn.msgtype))


def test_bad_encoding_and_size_mismatch(tmp_path):
    image_only = BagTopics(proprio=None, action_type="none", episode_topic=None)
    _write_custom_bag(tmp_path / "yuv", "yuv422", 8)
    with pytest.raises(BagError, match=r"yuv.*/camera/image_raw.*encoding"):
        load_bags([tmp_path / "yuv"], image_only)
    _write_custom_bag(tmp_path / "small", "bgr8", 8)
    _write_custom_bag(tmp_path / "big", "rgb8", 16)
    small = load_bags([tmp_path / "small"], image_only)
    assert small.episodes[0].frames.shape == (3, 8, 8, 3) and small.episodes[0].proprio.shape == (3, 0)
    with pytest.raises(BagError, match="frames shape"):
        load_bags([tmp_path / "small", tmp_path / "big"], image_only)


def test_interrupted_write_leaves_no_bag(tmp_path):
    def failing():
        for k, item in enumerate(iter_episodes("two_rooms", 3, 5, "random", seed=0)):
            if k == 1:
                raise RuntimeError("simulated crash")
            yield item

    out = tmp_path / "crash"
    meta = collect_metadata("two_rooms", "random", 0, 5, 3, {}, None)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_episodes_bag(out, failing(), meta)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError):
        write_episodes_bag(tmp_path / "exists", iter_episodes("two_rooms", 1, 2, "random"), meta)
