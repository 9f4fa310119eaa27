"""What a two-rooms latent holds when the door moves: linear probes on frames with seven door positions.

Seconds per bundle. Encodes random-momentum episodes of the two-rooms world with the door at seven heights
and fits ridge probes (80/20 split of the frames) from parts of the latent to the agent's position, to its
position relative to the door, and to the door's height. With a layout part (``encoder.layout_dim``) it tells
whether the door went where the model was built to carry it (the layout part) or into the agent part, and
whether the agent part codes y in the arena or relative to the door. ``door_shift_px``: how far the agent part
moves when only the door moves (the agent drawn at fixed places), in px of agent motion; near 0 is a clean split.

Usage:
    .venv/bin/python bench/layout_probe.py --bundle models/two_rooms runs/my_layout_bundle --out probe.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_sim.collect import collect_episodes
from jepa_sim.machine import machine_info
from jepa_sim.worlds import make_batch_world
from jepa_world_model.bundle import load_bundle
from jepa_world_model.models.world_model import LAYOUT_STD
from jepa_world_model.readout import encode_episodes, fit_ridge, r2_score

DOORS = (10.0, 18.0, 26.0, 32.0, 38.0, 46.0, 54.0)
PROBE_RIDGE = 1e-9  # relative to the number of frames, on standardised latents (fit_ridge)


def ridge_r2(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> list[float]:
    """Held-out R^2 per column of ``y`` of the readout's ridge fit (``fit_ridge``) of ``y`` on ``x``.

    Nearly least squares (``PROBE_RIDGE``): the readout's default regulariser hides what a layout part codes
    along directions of small spread (door R^2 0.86 -> 0.50 for one candidate), and this asks what is there.
    """
    y = y.reshape(len(y), -1)
    weights, bias = fit_ridge(x[train], y[train], PROBE_RIDGE)
    return [round(float(v), 3) for v in r2_score(x[test] @ weights.T + bias, y[test])]


def door_shift_px(model: Any, agent_dims: np.ndarray) -> float:
    """How far the agent part moves when only the door moves, in px of agent motion: the agent drawn at 40 fixed
    places in the left room (away from the wall) with each door of ``DOORS``; the mean distance of each place's
    agent part from its mean over doors, divided by the median move of 1 px to the right (normalised latents)."""
    rng = np.random.default_rng(0)
    pos = np.stack([rng.uniform(6, 24, 40), rng.uniform(8, 56, 40)], 1)
    std = model.latent_std.reshape(-1)[torch.from_numpy(agent_dims)]
    zs, px = [], []
    for door in DOORS:
        env = make_batch_world("two_rooms", len(pos), door_y=door)
        with torch.no_grad():
            z = model.encode(torch.from_numpy(env.render(pos)))[:, agent_dims] / std
            z1 = model.encode(torch.from_numpy(env.render(pos + np.array([1.0, 0.0]))))[:, agent_dims] / std
        zs.append(z)
        px.append((z1 - z).norm(dim=1).median().item())
    stack = torch.stack(zs)
    return float((stack - stack.mean(0)).norm(dim=2).mean().item() / np.median(px))


def probe_bundle(bundle: str, episodes: int, steps: int) -> dict[str, Any]:
    model = load_bundle(bundle, backend="torch")
    layout = model.latent_std.reshape(-1).numpy() >= LAYOUT_STD / 2
    zs, states, doors = [], [], []
    for i, door in enumerate(DOORS):
        eps = collect_episodes("two_rooms", episodes, steps, seed=500 + i, door_y=door)
        zs += encode_episodes(model, eps)
        states += [ep.state[:, :2] for ep in eps.episodes]
        doors += [np.full(len(ep), door) for ep in eps.episodes]
    z, pos, door = np.concatenate(zs), np.concatenate(states), np.concatenate(doors)
    order = np.random.default_rng(0).permutation(len(z))
    train, test = order[: len(z) * 4 // 5], order[len(z) * 4 // 5 :]
    agent = z[:, ~layout]
    relative = np.c_[pos[:, 0], pos[:, 1] - door]
    out: dict[str, Any] = {
        "bundle": bundle,
        "frames": len(z),
        "layout_dims": int(layout.sum()),
        "agent_to_xy": ridge_r2(agent, pos, train, test),
        "agent_to_x_and_y_minus_door": ridge_r2(agent, relative, train, test),
        "agent_to_door": ridge_r2(agent, door, train, test)[0],
        "latent_to_xy": ridge_r2(z, pos, train, test),
        "door_shift_px": door_shift_px(model, ~layout),
    }
    if layout.any():
        out["layout_to_door"] = ridge_r2(z[:, layout], door, train, test)[0]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", nargs="+", required=True, help="two-rooms bundle directories")
    parser.add_argument("--episodes", type=int, default=16, help="episodes per door position")
    parser.add_argument("--steps", type=int, default=60, help="raw steps per episode")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: print only)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for bundle in args.bundle:
        if not (Path(bundle) / "manifest.json").exists():
            print(f"layout_probe: {bundle} is not a bundle directory (no manifest.json)", file=sys.stderr)
            return 2
        rows.append(probe_bundle(bundle, args.episodes, args.steps))
        print(json.dumps(rows[-1]))
    if args.out is not None:
        report = {"command": shlex.join(["python", "bench/layout_probe.py", *(argv if argv is not None else sys.argv[1:])]),
                  "doors": list(DOORS), "machine": machine_info(torch_threads=args.threads), "bundles": rows}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
