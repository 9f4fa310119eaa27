"""Short-term memory: recent episodes of (latent, action, cost[, image]) for critic training and replay.

Episodes are kept whole (oldest dropped first once ``max_transitions`` is exceeded) so cost-to-go
targets can be computed over each episode's remaining steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class MemoryEpisode:
    """One finished episode: latents (T, *L), actions (T, A), costs (T,), goal (*L) or None, images (T, H, W, 3) or None."""

    latents: np.ndarray
    actions: np.ndarray
    costs: np.ndarray
    goal: np.ndarray | None = None
    images: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.latents.shape[0])

    def cost_to_go(self, gamma: float = 0.99) -> np.ndarray:
        """Discounted sum of this and the remaining costs at each step, (T,)."""
        out = np.zeros_like(self.costs, dtype=np.float32)
        running = 0.0
        for t in range(len(self) - 1, -1, -1):
            running = float(self.costs[t]) + gamma * running
            out[t] = running
        return out


class EpisodeMemory:
    """A bounded store of recent episodes.

    Args:
        max_transitions: total steps kept; the oldest whole episodes are dropped beyond it.
        keep_images: store images passed to ``add`` (memory hungry; off by default).
    """

    def __init__(self, max_transitions: int = 100_000, keep_images: bool = False) -> None:
        if max_transitions < 1:
            raise ValueError(f"max_transitions must be >= 1, got {max_transitions}")
        self.max_transitions, self.keep_images = int(max_transitions), keep_images
        self.episodes: list[MemoryEpisode] = []
        self._open: dict[str, list] | None = None

    def __len__(self) -> int:
        """Number of stored transitions (closed episodes only)."""
        return sum(len(e) for e in self.episodes)

    def add(self, latent, action, cost: float, image: np.ndarray | None = None) -> None:
        """Append one step to the open episode (one is started when none is open)."""
        if self._open is None:
            self._open = {"latents": [], "actions": [], "costs": [], "images": []}
        latent, action = _to_numpy(latent), _to_numpy(action)
        if not (np.isfinite(latent).all() and np.isfinite(action).all() and np.isfinite(cost)):
            raise ValueError("memory.add got NaN or inf in the latent, action or cost")
        if self._open["latents"] and latent.shape != self._open["latents"][0].shape:
            raise ValueError(f"latent shape {latent.shape} differs from this episode's {self._open['latents'][0].shape}")
        self._open["latents"].append(latent)
        self._open["actions"].append(action)
        self._open["costs"].append(float(cost))
        if self.keep_images and image is not None:
            self._open["images"].append(np.asarray(image, dtype=np.uint8))

    def end_episode(self, goal=None) -> MemoryEpisode | None:
        """Close the open episode (with its goal latent) and evict old episodes; returns it (None when empty)."""
        if self._open is None or not self._open["latents"]:
            self._open = None
            return None
        o = self._open
        images = np.stack(o["images"]) if o["images"] and len(o["images"]) == len(o["latents"]) else None
        episode = MemoryEpisode(
            np.stack(o["latents"]).astype(np.float32),
            np.stack(o["actions"]).astype(np.float32),
            np.asarray(o["costs"], dtype=np.float32),
            None if goal is None else _to_numpy(goal),
            images,
        )
        self._open = None
        self.add_episode(episode)
        return episode

    def add_episode(self, episode: MemoryEpisode) -> None:
        """Store a whole episode and evict the oldest ones beyond the size limit."""
        self.episodes.append(episode)
        while len(self.episodes) > 1 and len(self) > self.max_transitions:
            self.episodes.pop(0)

    def critic_dataset(self, gamma: float = 0.99) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(latents (N, *L), goals (N, *L), discounted cost-to-go (N,)) over all steps of episodes with a goal."""
        zs, goals, targets = [], [], []
        for e in self.episodes:
            if e.goal is None:
                continue
            zs.append(e.latents)
            goals.append(np.broadcast_to(e.goal, e.latents.shape))
            targets.append(e.cost_to_go(gamma))
        if not zs:
            raise ValueError("memory holds no episode with a goal latent; call end_episode(goal=...) when recording")
        return (
            torch.from_numpy(np.concatenate(zs)),
            torch.from_numpy(np.concatenate(goals).copy()),
            torch.from_numpy(np.concatenate(targets)),
        )

    def hindsight_dataset(
        self, gamma: float = 0.99, goals_per_state: int = 4, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Critic data with hindsight goals: each state paired with later states of its episode as goals.

        The target for (z_t, goal z_k), k >= t, is the discounted sum of d(z_j, z_k) for j = t..k, with d the
        mean squared difference of the stored latents (the intrinsic goal distance up to the latent
        normalisation, which the stored costs already carry for the episode's own goal). One episode thus
        teaches the cost-to-go toward every place it passed, not only toward its own goal, which is what
        lets a few dozen episodes cover the goals of new tasks. The episodes' own goals are included too.
        """
        z_own, g_own, y_own = self.critic_dataset(gamma)
        rng = np.random.default_rng(seed)
        zs, goals, targets = [z_own.numpy()], [g_own.numpy()], [y_own.numpy()]
        scale = self._cost_scale()
        for e in self.episodes:
            t_len = len(e)
            if t_len < 2:
                continue
            flat = e.latents.reshape(t_len, -1)
            for t in range(t_len):
                ks = rng.integers(t, t_len, size=goals_per_state)
                for k in ks:
                    d = ((flat[t : k + 1] - flat[k]) ** 2).mean(axis=1) * scale
                    zs.append(e.latents[t][None])
                    goals.append(e.latents[k][None])
                    targets.append(np.array([float((gamma ** np.arange(k - t + 1)) @ d)], np.float32))
        return (
            torch.from_numpy(np.concatenate(zs).astype(np.float32)),
            torch.from_numpy(np.concatenate(goals).astype(np.float32)),
            torch.from_numpy(np.concatenate(targets).astype(np.float32)),
        )

    def _cost_scale(self) -> float:
        """Ratio of the stored costs to the raw mean squared latent distance to the episode goal (the
        normalisation the intrinsic cost used), so relabelled targets are in the same units."""
        num, den = 0.0, 0.0
        for e in self.episodes:
            if e.goal is None:
                continue
            raw = ((e.latents.reshape(len(e), -1) - e.goal.reshape(1, -1)) ** 2).mean(axis=1)
            num, den = num + float(e.costs @ raw), den + float(raw @ raw)
        return num / den if den > 0 else 1.0

    def sample(self, batch_size: int, generator: np.random.Generator, gamma: float = 0.99):
        """A random batch (with replacement) of (latent, goal, cost-to-go) for critic training."""
        z, g, y = self.critic_dataset(gamma)
        idx = torch.from_numpy(generator.integers(0, z.shape[0], size=batch_size))
        return z[idx], g[idx], y[idx]

    def save(self, path: str | Path) -> None:
        """Write all closed episodes to one ``.npz`` file."""
        arrays: dict[str, np.ndarray] = {
            "num_episodes": np.array(len(self.episodes)),
            "max_transitions": np.array(self.max_transitions),
        }
        for i, e in enumerate(self.episodes):
            arrays[f"e{i}_latents"], arrays[f"e{i}_actions"], arrays[f"e{i}_costs"] = e.latents, e.actions, e.costs
            if e.goal is not None:
                arrays[f"e{i}_goal"] = e.goal
            if e.images is not None:
                arrays[f"e{i}_images"] = e.images
        np.savez_compressed(Path(path), **arrays)

    @classmethod
    def load(cls, path: str | Path, keep_images: bool = False) -> EpisodeMemory:
        """Read a file written by ``save``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"memory file {path} does not exist")
        with np.load(path) as data:
            if "num_episodes" not in data:
                raise ValueError(f"{path} is not an EpisodeMemory file (no 'num_episodes' entry)")
            memory = cls(int(data["max_transitions"]), keep_images)
            for i in range(int(data["num_episodes"])):
                parts = [data.get(f"e{i}_{k}") for k in ("latents", "actions", "costs", "goal", "images")]
                memory.episodes.append(MemoryEpisode(*parts))
        return memory


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().astype(np.float32)
    return np.asarray(x, dtype=np.float32)
