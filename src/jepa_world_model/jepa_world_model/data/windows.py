"""Training windows cut from episodes, and train/validation splits by episode.

A window is ``context + horizon`` frames taken every ``frameskip`` raw steps inside one episode.
The action between two sampled frames is the concatenation (time order) of the ``frameskip`` raw
actions applied between them, so one model step covers ``frameskip`` control steps (the
convention of ``jepa_world_model.protocol``). Items are produced by index arithmetic only, so
episodes backed by ``np.memmap`` are read lazily.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from jepa_common.episodes import EpisodeSet


def split_episodes(eps: EpisodeSet, val_fraction: float = 0.1, seed: int = 0) -> tuple[EpisodeSet, EpisodeSet]:
    """Split whole episodes into (train, val); no episode is shared between them.

    Args:
        eps: the episodes.
        val_fraction: fraction of episodes for validation; at least one episode goes to each side
            when there are two or more and the fraction is > 0.
        seed: shuffles which episodes go where.

    Returns:
        (train, val) EpisodeSets; metadata copies ``eps.metadata`` plus "split" and "episode_indices".
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(eps)
    if n == 0:
        raise ValueError("cannot split an empty EpisodeSet")
    order = np.random.default_rng(seed).permutation(n)
    n_val = round(val_fraction * n)
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    val_idx, train_idx = sorted(order[:n_val].tolist()), sorted(order[n_val:].tolist())

    def subset(indices: list[int], split: str) -> EpisodeSet:
        meta = dict(eps.metadata)
        meta.update(split=split, episode_indices=indices)
        return EpisodeSet(episodes=[eps.episodes[i] for i in indices], metadata=meta)

    return subset(train_idx, "train"), subset(val_idx, "val")


class WindowDataset(Dataset):
    """Fixed-length windows over an EpisodeSet.

    Args:
        episodes: the source episodes (arrays or memmaps).
        context: frames of context.
        horizon: frames to predict after the context.
        frameskip: raw steps between two sampled frames.
        stride: raw steps between the starts of consecutive windows in an episode.

    Item ``i`` is a dict of tensors: "frames" uint8 (T, H, W, 3) with T = context + horizon,
    "actions" float32 (T-1, A*frameskip), "proprio" float32 (T, P), and "state" float32 (T, S)
    when the episodes have state.
    """

    def __init__(self, episodes: EpisodeSet, context: int, horizon: int, frameskip: int = 1, stride: int = 1) -> None:
        if context < 1 or horizon < 0 or frameskip < 1 or stride < 1:
            raise ValueError(
                f"need context >= 1, horizon >= 0, frameskip >= 1, stride >= 1; got {context}, {horizon}, {frameskip}, {stride}"
            )
        if len(episodes) == 0:
            raise ValueError("WindowDataset needs at least one episode")
        self.episodes = episodes.episodes
        self.context, self.horizon, self.frameskip, self.stride = context, horizon, frameskip, stride
        self.num_frames = context + horizon
        self.span = (self.num_frames - 1) * frameskip + 1  # raw frames one window covers
        self.has_state = all(e.state is not None for e in self.episodes)
        counts = []
        for e in self.episodes:
            e.validate()
            counts.append(0 if len(e) < self.span else (len(e) - self.span) // stride + 1)
        self._episode_ids = np.flatnonzero(np.asarray(counts) > 0)
        self._cum = np.cumsum(np.asarray(counts)[self._episode_ids])
        if len(self._episode_ids) == 0:
            longest = max(len(e) for e in self.episodes)
            raise ValueError(
                f"no episode is long enough for a window of {self.num_frames} frames with frameskip {frameskip} "
                f"({self.span} raw frames); the longest has {longest}. Lower context/horizon/frameskip or record longer episodes."
            )

    def __len__(self) -> int:
        return int(self._cum[-1])

    def window_starts(self) -> list[tuple[int, np.ndarray]]:
        """(episode index, first raw frame of each of its windows) for every episode with windows, in index order."""
        before = np.concatenate([[0], self._cum[:-1]])
        return [(int(k), np.arange(n) * self.stride) for k, n in zip(self._episode_ids, self._cum - before, strict=True)]

    def locate(self, index: int) -> tuple[int, int]:
        """(episode index, first raw frame) of window ``index``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"window index {index} out of range for {len(self)} windows")
        index %= len(self)
        k = int(np.searchsorted(self._cum, index, side="right"))
        before = int(self._cum[k - 1]) if k > 0 else 0
        return int(self._episode_ids[k]), (index - before) * self.stride

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ep_index, start = self.locate(index)
        ep = self.episodes[ep_index]
        stop = start + self.span
        skip = self.frameskip
        raw_actions = np.array(ep.actions[start : stop - 1], dtype=np.float32)
        item = {
            "frames": torch.from_numpy(np.array(ep.frames[start:stop:skip], dtype=np.uint8)),
            "actions": torch.from_numpy(raw_actions.reshape(self.num_frames - 1, skip * raw_actions.shape[1])),
            "proprio": torch.from_numpy(np.asarray(ep.proprio[start:stop:skip], dtype=np.float32).copy()),
        }
        if self.has_state:
            item["state"] = torch.from_numpy(np.asarray(ep.state[start:stop:skip], dtype=np.float32).copy())
        return item


def contact_steps(episodes: EpisodeSet, threshold: float = 0.5) -> list[np.ndarray]:
    """Per episode, a bool per raw step: True where the proprioception did not follow the command.

    A linear dynamics model ``p[t+1] ~ A p[t] + B a[t] + c`` is fitted by least squares to every transition
    of ``episodes``; a step is a contact (a wall stopped the agent, an object pushed back, a wheel slipped) when
    its residual norm exceeds ``threshold`` times the RMS norm of the proprio change ``p[t+1] - p[t]``.
    Why: free motion is most of any robot's data, so a predictor can score well while ignoring the rare steps
    where the world refuses the command; finding them needs no simulator, only the recorded proprio and actions.
    The fit is repeated twice on the steps not flagged (contacts bend a plain least-squares fit). The last step of an
    episode (padding) is never a contact. ValueError when there is no proprioception.
    """
    if episodes.proprio_dim == 0:
        raise ValueError("contact windows need proprioception (P > 0) to compare with the commands; these episodes have none")
    xs, ys = [], []
    for e in episodes.episodes:
        p = np.asarray(e.proprio, dtype=np.float64)
        a = np.asarray(e.actions, dtype=np.float64)
        xs.append(np.concatenate([p[:-1], a[:-1], np.ones((len(p) - 1, 1))], axis=1))
        ys.append(p[1:])
    x, y = np.concatenate(xs), np.concatenate(ys)
    scale = float(np.sqrt(np.mean(np.sum((y - x[:, : y.shape[1]]) ** 2, axis=1)))) or 1.0
    contact = np.zeros(len(x), bool)
    for _ in range(3):  # refit on the steps not flagged: the contacts themselves bend a plain least-squares fit
        coef, *_ = np.linalg.lstsq(x[~contact], y[~contact], rcond=None)
        contact = np.linalg.norm(y - x @ coef, axis=1) > threshold * scale
    bounds = np.cumsum([0, *(len(xe) for xe in xs)])
    return [np.concatenate([contact[a:b], [False]]) for a, b in itertools.pairwise(bounds)]


def contact_windows(dataset: WindowDataset, threshold: float = 0.5) -> np.ndarray:
    """A bool per window of ``dataset`` (in index order): True when any of its transitions is a contact
    (``contact_steps``)."""
    steps = contact_steps(EpisodeSet(episodes=dataset.episodes), threshold)
    flags = []
    for k, starts in dataset.window_starts():
        csum = np.concatenate([[0], np.cumsum(steps[k])])
        flags.append(csum[starts + dataset.span - 1] > csum[starts])
    return np.concatenate(flags)


class ContactSampler(Sampler[int]):
    """``num_samples`` window indices per epoch: a ``fraction`` of them drawn (with replacement) from the flagged
    windows, the rest uniformly from all; seeded by (seed, epoch, rank) so a resumed run draws the same."""

    def __init__(self, flags: np.ndarray, fraction: float, num_samples: int, seed: int = 0, rank: int = 0) -> None:
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"contact fraction must be in [0, 1), got {fraction}")
        self.flagged = np.flatnonzero(flags)
        if fraction > 0 and len(self.flagged) == 0:
            raise ValueError("no contact windows to oversample: lower train.contact_threshold or set train.contact_oversample 0")
        self.n_all, self.fraction, self.num_samples, self.seed, self.rank, self.epoch = len(flags), fraction, num_samples, seed, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch, self.rank])
        idx = rng.integers(0, self.n_all, self.num_samples)
        pick = rng.random(self.num_samples) < self.fraction
        idx[pick] = self.flagged[rng.integers(0, len(self.flagged), int(pick.sum()))]
        return iter(idx.tolist())
