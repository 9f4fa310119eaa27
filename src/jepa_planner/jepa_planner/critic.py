"""Trainable critic: predicts the future intrinsic cost (discounted cost-to-go) from a latent and the goal latent.

Used as a terminal cost beyond the planning horizon (``CriticCost``); trained from ``EpisodeMemory``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from jepa_planner.memory import EpisodeMemory
from jepa_planner.mlp import LatentGoalMLP


class Critic(nn.Module):
    """MLP critic V(z, goal) -> predicted cost-to-go (B,).

    Args:
        latent_shape: shape of one latent; hidden / depth: MLP size.
        latent_mean / latent_std: latent normalisation (e.g. the model's statistics).
    """

    def __init__(
        self,
        latent_shape: tuple[int, ...],
        hidden: int = 128,
        depth: int = 2,
        latent_mean: torch.Tensor | None = None,
        latent_std: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = {"latent_shape": list(latent_shape), "hidden": hidden, "depth": depth}
        self.net = LatentGoalMLP(latent_shape, 1, hidden, depth, latent_mean, latent_std)
        self.register_buffer("target_scale", torch.ones(()))  # cost-to-go scale, so the net regresses O(1) values

    def forward(self, z: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        return self.net(z, goal)[..., 0] * self.target_scale

    def fit(
        self,
        data: EpisodeMemory | tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        *,
        gamma: float = 0.99,
        hindsight: int = 0,
        epochs: int = 200,
        batch_size: int = 256,
        lr: float = 3e-3,
        seed: int = 0,
        progress: bool = False,
    ) -> list[float]:
        """Regress the cost-to-go of stored episodes (or a given (latents, goals, targets) triple).

        Args:
            hindsight: extra later-state goals per stored state (``EpisodeMemory.hindsight_dataset``); 0 uses
                each episode's own goal only.

        Returns:
            Mean training loss (MSE in units of the target scale) per epoch.
        """
        if isinstance(data, EpisodeMemory):
            z, g, y = data.hindsight_dataset(gamma, hindsight, seed) if hindsight > 0 else data.critic_dataset(gamma)
        else:
            z, g, y = data
        if z.shape[0] == 0:
            raise ValueError("the critic got an empty training set")
        self.target_scale.fill_(float(y.abs().mean().clamp_min(1e-6)))
        target = y / self.target_scale
        gen = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=1e-4)
        losses = []
        for _ in tqdm(range(epochs), desc="critic", disable=not progress):
            order, total = torch.randperm(z.shape[0], generator=gen), 0.0
            for start in range(0, z.shape[0], batch_size):
                idx = order[start : start + batch_size]
                loss = (self.net(z[idx], g[idx])[..., 0] - target[idx]).pow(2).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * idx.numel()
            losses.append(total / z.shape[0])
        return losses

    def save(self, path: str | Path) -> None:
        torch.save({"config": self.config, "state": self.state_dict()}, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> Critic:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"critic checkpoint {path} does not exist")
        blob = torch.load(path, map_location="cpu", weights_only=True)
        cfg = blob["config"]
        critic = cls(tuple(cfg["latent_shape"]), cfg["hidden"], cfg["depth"])
        critic.load_state_dict(blob["state"])
        return critic.eval()


def load_critic_checked(path: str | Path, latent_shape: tuple[int, ...] | None = None) -> Critic:
    """Load a critic and check it fits ``latent_shape`` and gives finite values (hot swap: refuse bad files).

    Raises:
        FileNotFoundError / ValueError / RuntimeError with a message naming the file.
    """
    import warnings

    with warnings.catch_warnings():  # torch's warnings about a foreign file are not the one line callers log
        warnings.simplefilter("ignore")
        try:
            critic = Critic.load(Path(path))
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ValueError(f"{path} is not a critic checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from exc
    shape = tuple(critic.config["latent_shape"])
    if latent_shape is not None and shape != tuple(latent_shape):
        raise ValueError(f"critic {path} is for latents of shape {list(shape)}, the model's are {list(latent_shape)}")
    with torch.no_grad():
        probe = critic(torch.zeros(1, *shape), torch.zeros(1, *shape))
    if not torch.isfinite(probe).all():
        raise ValueError(f"critic {path} outputs NaN/inf")
    return critic


def swap_critic(planner: object, critic: object) -> int:
    """Point every ``critic`` cost term of a planner (all levels, wrappers included) at ``critic``.

    One attribute assignment per term, so a plan in progress scores with either the old or the new critic,
    never a mix within one term evaluation. Returns how many terms were swapped.
    """
    from jepa_planner.costs import CriticCost
    from jepa_planner.planners.base import planner_parts

    count = 0
    for p in planner_parts(planner):
        for term in getattr(getattr(p, "costs", None), "terms", []):
            if isinstance(term, CriticCost):
                term.critic = critic
                count += 1
    return count


def fit_file(data_path: str | Path, out_path: str | Path, epochs: int) -> float:
    """Fit a critic on a ``(latents, goals, targets)`` npz (as ``EpisodeMemory.critic_dataset`` gives them) and
    save it to ``out_path`` atomically; returns the final training loss. What the memory node runs in a child
    process (see :func:`main`)."""
    import os

    import numpy as np

    with np.load(Path(data_path), allow_pickle=False) as blob:
        z, g, y = (torch.from_numpy(np.asarray(blob[k], dtype=np.float32)) for k in ("latents", "goals", "targets"))
    if z.shape != g.shape or z.shape[0] != y.shape[0]:
        raise ValueError(f"{data_path}: latents {list(z.shape)}, goals {list(g.shape)} and targets {list(y.shape)} do not match")
    critic = Critic(tuple(z.shape[1:]))
    losses = critic.fit((z, g, y), epochs=epochs)
    out = Path(out_path)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    critic.save(tmp)
    os.replace(tmp, out)  # readers never see a half-written critic
    return losses[-1]


def fit_process_args(data_path: str | Path, out_path: str | Path, epochs: int) -> list[str]:
    """The command line of one fit in a child process (:func:`main`), with this interpreter."""
    import sys

    return [sys.executable, "-m", "jepa_planner.critic", str(data_path), str(out_path), "--epochs", str(epochs)]


def main(argv: list[str] | None = None) -> int:
    """``python -m jepa_planner.critic DATA.npz OUT.pt --epochs N``: one critic fit, at the lowest CPU priority.

    The memory node fits in this child process rather than in a thread: in the composed agent a fit thread
    held the GIL between plans, on the lockstep loop's critical path (py-spy --gil: 9% of the process's GIL
    time). A Ctrl-C in the terminal ends the fit at once, without a trace.
    """
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.nice(19)
    torch.set_num_threads(1)
    return fit_command(argv)


def fit_command(argv: list[str] | None = None) -> int:
    """The fit of :func:`main` without its process settings: prints ``final_loss <value>``; one line and exit
    code 2 on bad input."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Fit a critic on a saved (latents, goals, targets) npz.")
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        loss = fit_file(args.data, args.out, args.epochs)
    except (OSError, ValueError, KeyError) as exc:
        print(f"critic fit: {exc}", file=sys.stderr)
        return 2
    print(f"final_loss {loss:.6g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
