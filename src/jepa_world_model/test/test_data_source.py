"""The config's data section really reaches the simulator and the bag reader."""

from __future__ import annotations

import pytest

from jepa_world_model.config import BagDataConfig, SimDataConfig
from jepa_world_model.data_source import load_episodes


def test_sim_source_has_world_bounds() -> None:
    eps, meta = load_episodes(SimDataConfig(world="two_rooms", episodes=2, steps=5, seed=1))
    assert len(eps) == 2 and eps.image_size == (64, 64)
    assert meta["world"] == "two_rooms" and len(meta["raw_action_low"]) == eps.action_dim


def test_sim_source_passes_world_kwargs() -> None:
    eps, _ = load_episodes(SimDataConfig(world="multi_room", world_kwargs={"rooms": "2x2"}, episodes=2, steps=4, seed=1))
    assert eps.metadata["world_kwargs"] == {"rooms": "2x2"}
    with pytest.raises(ValueError, match="rows x cols"):
        load_episodes(SimDataConfig(world="multi_room", world_kwargs={"rooms": "two"}, episodes=1, steps=3))


def test_sim_source_mixes_behaviour_policies() -> None:
    """``extra`` parts add episodes of other policies; each part is reproducible and recorded."""
    import numpy as np

    cfg = SimDataConfig(
        world="two_rooms",
        episodes=2,
        steps=6,
        seed=3,
        extra=[{"policy": "random", "episodes": 3}, {"policy": "random_momentum", "episodes": 1, "policy_kwargs": {"bounce": False}}],
    )
    eps, _ = load_episodes(cfg)
    assert len(eps) == 6 and len(eps.metadata["goals"]) == 6
    assert [part["policy"] for part in eps.metadata["parts"]] == ["random_momentum", "random", "random_momentum"]
    assert eps.metadata["parts"][2]["policy_kwargs"] == {"bounce": False}
    main_only, _ = load_episodes(SimDataConfig(world="two_rooms", episodes=2, steps=6, seed=3))
    for a, b in zip(main_only.episodes, eps.episodes[:2], strict=True):  # the main part is unchanged by extras
        np.testing.assert_array_equal(a.actions, b.actions)
    with pytest.raises(ValueError, match="unknown policy"):
        load_episodes(SimDataConfig(world="two_rooms", episodes=1, steps=3, extra=[{"policy": "teleport", "episodes": 1}]))


def test_bag_source_reads_recorded_episodes(tmp_path) -> None:
    from jepa_common.bag_format import write_episodes_bag
    from jepa_sim.collect import collect_metadata, iter_episodes

    bag = tmp_path / "bag"
    write_episodes_bag(
        bag, iter_episodes("two_rooms", 2, 10, seed=0), collect_metadata("two_rooms", "random_momentum", 0, 10, 2, {}, None)
    )
    eps, meta = load_episodes(BagDataConfig(paths=[str(bag)]))
    assert len(eps) == 2 and meta["source"] == "bags" and len(meta["raw_action_high"]) == eps.action_dim
    with pytest.raises(ValueError, match=r"data\.topics"):
        load_episodes(BagDataConfig(paths=[str(bag)], topics={"camera": "/x"}))
