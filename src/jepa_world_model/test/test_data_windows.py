"""WindowDataset and split_episodes on synthetic episodes with known values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_common.episodes import Episode, EpisodeSet
from jepa_world_model.data.windows import ContactSampler, WindowDataset, contact_steps, contact_windows, split_episodes


def make_episode(length: int, offset: int, with_state: bool = True) -> Episode:
    """Frames/actions/proprio encode (episode offset + time) so windows can be checked exactly."""
    t = np.arange(length)
    frames = np.zeros((length, 4, 4, 3), dtype=np.uint8)
    frames[:, 0, 0, 0] = offset + t
    actions = np.stack([offset + t, -(offset + t)], axis=1).astype(np.float32)
    proprio = (offset + t)[:, None].astype(np.float32) * np.ones((1, 3), np.float32)
    state = (offset + t)[:, None].astype(np.float32) if with_state else None
    return Episode(frames=frames, actions=actions, proprio=proprio, state=state, source=f"ep{offset}")


def test_window_shapes_stacking_and_frameskip_values():
    eps = EpisodeSet([make_episode(20, 0), make_episode(9, 100), make_episode(30, 200)])
    ds = WindowDataset(eps, context=2, horizon=3, frameskip=2)  # span = 4*2+1 = 9 raw frames
    assert len(ds) == (20 - 9 + 1) + (9 - 9 + 1) + (30 - 9 + 1)
    item = ds[0]
    assert item["frames"].shape == (5, 4, 4, 3) and item["frames"].dtype == torch.uint8
    assert item["actions"].shape == (4, 4) and item["actions"].dtype == torch.float32
    assert item["proprio"].shape == (5, 3) and item["state"].shape == (5, 1)
    assert item["frames"][:, 0, 0, 0].tolist() == [0, 2, 4, 6, 8]
    # row j concatenates the raw actions at times 2j and 2j+1
    assert item["actions"].tolist() == [[0, 0, 1, -1], [2, -2, 3, -3], [4, -4, 5, -5], [6, -6, 7, -7]]
    # the one window of the 9-frame episode, then the first of the third
    assert ds[12]["frames"][:, 0, 0, 0].tolist() == [100, 102, 104, 106, 108]
    assert ds[13]["proprio"][:, 0].tolist() == [200, 202, 204, 206, 208]
    assert ds[len(ds) - 1]["state"][:, 0].tolist() == [221, 223, 225, 227, 229]


def test_windows_never_cross_episodes_and_skip_short_ones():
    eps = EpisodeSet([make_episode(6, 0), make_episode(3, 50), make_episode(7, 100)])
    ds = WindowDataset(eps, context=3, horizon=2)
    seen = []
    for i in range(len(ds)):
        values = ds[i]["frames"][:, 0, 0, 0].numpy()
        assert (np.diff(values) == 1).all()
        seen.append(int(values[0]))
    assert seen == [0, 1, 100, 101, 102]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_no_state_and_too_short_error():
    eps = EpisodeSet([make_episode(5, 0, with_state=False)])
    assert "state" not in WindowDataset(eps, context=1, horizon=1)[0]
    with pytest.raises(ValueError, match="longest has 5"):
        WindowDataset(eps, context=3, horizon=3)


def test_memmap_episodes(tmp_path):
    ep = make_episode(12, 0)
    path = tmp_path / "frames.npy"
    np.save(path, ep.frames)
    ep.frames = np.load(path, mmap_mode="r")
    ds = WindowDataset(EpisodeSet([ep]), context=2, horizon=2, frameskip=3, stride=2)
    assert len(ds) == 2  # span 10: starts 0, 2
    assert ds[1]["frames"][:, 0, 0, 0].tolist() == [2, 5, 8, 11]


def test_split_by_episode():
    eps = EpisodeSet([make_episode(4, 10 * i) for i in range(10)], metadata={"world": "x"})
    train, val = split_episodes(eps, val_fraction=0.2, seed=1)
    assert len(train) == 8 and len(val) == 2
    ids = sorted(train.metadata["episode_indices"] + val.metadata["episode_indices"])
    assert ids == list(range(10)) and train.metadata["world"] == "x" and val.metadata["split"] == "val"
    assert {e.source for e in train.episodes}.isdisjoint({e.source for e in val.episodes})
    assert split_episodes(eps, 0.2, seed=1)[1].metadata["episode_indices"] == val.metadata["episode_indices"]
    assert len(split_episodes(EpisodeSet([make_episode(4, 0), make_episode(4, 1)]), 0.01)[1]) == 1
    with pytest.raises(ValueError, match="val_fraction"):
        split_episodes(eps, 1.0)


def wall_episode(actions: list[float], wall: float = 3.0) -> Episode:
    """A 1-d point mass, proprio [position, velocity], stopped by a wall at ``wall``: contacts are known."""
    acts = np.asarray([*actions, 0.0], np.float32)[:, None]
    pos = [0.0]
    for a in actions:
        pos.append(min(pos[-1] + a, wall))
    pos_arr = np.asarray(pos, np.float32)
    vel = np.concatenate([[0.0], np.diff(pos_arr)]).astype(np.float32)
    frames = np.zeros((len(pos), 2, 2, 3), np.uint8)
    return Episode(frames=frames, actions=acts, proprio=np.stack([pos_arr, vel], 1), source="wall")


def test_contact_steps_are_the_steps_the_wall_refused_and_windows_contain_them():
    # free steps (including backing off the wall) fit linear dynamics exactly; 1.0 commanded from 2.75 moves
    # only 0.25 and pushes from the wall move nothing
    ep = wall_episode([1.0, 1.0, 0.75, 1.0, 1.0, -1.0, -1.0, 1.0, 0.5, -0.5, 1.0, 1.0])
    free = wall_episode([0.5, -0.5] * 6)
    steps = contact_steps(EpisodeSet([ep, free]), threshold=0.5)
    assert steps[0].tolist() == [False, False, False, True, True, False, False, False, False, False, False, True, False]
    assert not steps[1].any() and len(steps[1]) == len(free)
    ds = WindowDataset(EpisodeSet([ep, free]), context=1, horizon=1, frameskip=2)  # windows cover raw steps s, s+1
    assert contact_windows(ds, 0.5).tolist() == [False, False, True, True, True, False, False, False, False, False, True] + [False] * 11
    with pytest.raises(ValueError, match="proprioception"):
        contact_steps(EpisodeSet([Episode(frames=ep.frames, actions=ep.actions, proprio=np.zeros((13, 0), np.float32))]))


def test_contact_sampler_draws_its_fraction_from_the_flagged_windows_reproducibly():
    flags = np.zeros(1000, bool)
    flags[[3, 500, 998]] = True
    sampler = ContactSampler(flags, 0.5, 4000, seed=1)
    drawn = np.asarray(list(sampler))
    assert len(drawn) == len(sampler) == 4000 and drawn.min() >= 0 and drawn.max() < 1000
    assert 0.45 < flags[drawn].mean() < 0.55  # half drawn from the flags, plus the uniform draws' rare hits
    assert list(sampler) == drawn.tolist()
    sampler.set_epoch(1)
    assert list(sampler) != drawn.tolist()
    assert not flags[list(ContactSampler(flags, 0.0, 500))].all()
    with pytest.raises(ValueError, match="no contact windows"):
        ContactSampler(np.zeros(10, bool), 0.3, 10)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ContactSampler(flags, 1.0, 10)


def test_window_starts_list_every_window_in_index_order():
    ds = WindowDataset(EpisodeSet([make_episode(20, 0), make_episode(5, 100), make_episode(30, 200)]), 2, 3, frameskip=2, stride=3)
    flat = [(k, int(s)) for k, starts in ds.window_starts() for s in starts]
    assert flat == [ds.locate(i) for i in range(len(ds))] and {k for k, _ in flat} == {0, 2}  # episode 1 is too short
