"""In-memory (or memory-mapped) episodes: the one container between data sources and training.

Bag readers, simulators and tests all produce an ``EpisodeSet``; training windows
are cut from it by ``jepa_world_model.data.windows``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Episode:
    """One contiguous trajectory sampled at a fixed step.

    Attributes:
        frames: uint8 (T, H, W, 3) RGB camera frames (np.ndarray or np.memmap).
        actions: float32 (T, A); ``actions[t]`` is applied between frame t and t+1
            (the last row is padding and is never used as a transition).
        proprio: float32 (T, P) proprioception at each frame (P may be 0).
        state: float32 (T, S) privileged true state for probes, or None.
        stamps_ns: int64 (T,) frame timestamps in nanoseconds.
        source: where it came from (bag path, world name) for error messages.
    """

    frames: np.ndarray
    actions: np.ndarray
    proprio: np.ndarray
    state: np.ndarray | None = None
    stamps_ns: np.ndarray | None = None
    source: str = ""

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def validate(self) -> None:
        """Raise ValueError naming the source when arrays disagree in length or type."""
        t = len(self)
        for name in ("actions", "proprio", "state", "stamps_ns"):
            arr = getattr(self, name)
            if arr is not None and arr.shape[0] != t:
                raise ValueError(f"{self.source or 'episode'}: {name} has {arr.shape[0]} rows, frames have {t}")
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(f"{self.source or 'episode'}: frames must be uint8 (T,H,W,3), got {self.frames.dtype} {self.frames.shape}")


@dataclass
class EpisodeSet:
    """A list of episodes sharing image size, action and proprio dimensions, plus provenance."""

    episodes: list[Episode]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.episodes)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.episodes[0].frames.shape[1:3])  # type: ignore[return-value]

    @property
    def action_dim(self) -> int:
        return int(self.episodes[0].actions.shape[1])

    @property
    def proprio_dim(self) -> int:
        return int(self.episodes[0].proprio.shape[1])

    @property
    def num_frames(self) -> int:
        return sum(len(e) for e in self.episodes)
