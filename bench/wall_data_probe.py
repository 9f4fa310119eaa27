"""Which data teaches a predictor the moved wall? Fresh predictors fitted on a frozen encoder's latents.

A model trained with the door drawn anew per episode has to predict, from the image, whether a push at the
dividing wall stops there or passes through the door. This separates what the encoder gives from what the
data gives: the bundle's encoder is frozen, its latents of simulated episodes (every door height) are the
data, and a fresh MLP (3 x 256, 12,000 steps of 256) is fitted to predict the agent part's one-step change
from the agent part, a layout input and the action. Layout inputs: ``none``; ``layout``, the encoder's own
layout part (standardised); ``oracle``, the true door height (an upper bound for any encoder). Data: ``base``,
the mix of ``config/train/two_rooms_door_anywhere.yaml``'s policies (random runs without bouncing, random,
shortest path with noise); ``probe``, the same plus ``door_probe`` episodes (``jepa_sim.policies``).

Score: the agent at x = 25, at 18 heights, pushed right at full speed for one model step, with the door at
12 heights; the predicted end (read back to px by a linear fit of the agent part on positions) against the
simulator's. Pushes the wall stops end near x = 31, those through the doorway near 37: a predictor that
reads the wall predicts those two apart; one that does not predicts one blurred end for both.

Usage:
    python bench/wall_data_probe.py --bundle runs/some_door_anywhere_bundle --out bench/results/wall_data_probe.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from jepa_sim.collect import collect_episodes
from jepa_sim.machine import write_result
from jepa_sim.worlds import make_batch_world
from jepa_sim.worlds.two_rooms import two_rooms_layout
from jepa_world_model.bundle import load_bundle
from jepa_world_model.models.world_model import LAYOUT_STD

BASE_MIX = (
    ("random_momentum", {"bounce": False}),
    ("random", {}),
    ("noisy_goal", {"noise": 0.5}),
    ("random_momentum", {"bounce": False}),
)
INPUTS = ("none", "layout", "oracle")
PUSH_START_X = 25.0


def encode_steps(model: Any, world_kwargs: dict, policy: str, seed: int, episodes: int, steps: int, kwargs: dict) -> tuple:
    """(z_t, z_{t+1}, model-step action) of ``episodes`` simulated episodes, one model step = frameskip raw steps."""
    fs = int(model.frameskip)
    eps = collect_episodes("two_rooms", episodes, steps, policy=policy, seed=seed, policy_kwargs=kwargs, **world_kwargs)
    n = steps // fs
    frames = torch.from_numpy(np.stack([e.frames[: n * fs + 1 : fs] for e in eps.episodes]))
    actions = torch.from_numpy(np.stack([e.actions[: n * fs].reshape(n, -1) for e in eps.episodes])).float()
    with torch.no_grad():
        z = model.encode(frames.reshape(-1, *frames.shape[2:])).reshape(episodes, n + 1, -1)
    return z[:, :-1].reshape(-1, z.shape[-1]), z[:, 1:].reshape(-1, z.shape[-1]), actions.reshape(-1, actions.shape[-1])


def build_data(model: Any, doors: int, probe_episodes: int) -> dict[str, torch.Tensor]:
    """Transitions of the base mix at ``doors`` door heights, then ``probe_episodes`` door_probe episodes."""
    parts: list[tuple] = []
    for i, door in enumerate(np.linspace(8, 56, doors)):
        for j, (policy, kwargs) in enumerate(BASE_MIX):
            z0, z1, a = encode_steps(model, {"door_y": float(door)}, policy, 7 * i + j, 16, 50, kwargs)
            parts.append((z0, z1, a, torch.full((len(z0), 1), float(door))))
    base = len(parts)
    rng = np.random.default_rng(1)
    for k in range(probe_episodes // 16):
        door = float(rng.uniform(5, 59))
        z0, z1, a = encode_steps(model, {"door_y": door}, "door_probe", 1000 + k, 16, 100, {})
        parts.append((z0, z1, a, torch.full((len(z0), 1), door)))
    cat = [torch.cat([p[i] for p in parts]) for i in range(4)]
    return {"z0": cat[0], "z1": cat[1], "act": cat[2], "door": cat[3], "base_transitions": sum(len(p[0]) for p in parts[:base])}


def fit(x: torch.Tensor, y: torch.Tensor, steps: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(),
                        nn.Linear(256, y.shape[1]))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        i = torch.randint(0, len(x), (256,))
        loss = ((net(x[i]) - y[i]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


def push_cases(model: Any, agent: torch.Tensor) -> tuple[list[tuple[float, torch.Tensor, np.ndarray]], np.ndarray]:
    """Per door height: (door, start latents, simulated end x) of the right pushes, and the px readout of the agent part."""
    env = make_batch_world("two_rooms", 400, door_y=32.0)
    env.reset(list(range(400)))
    rng = np.random.default_rng(0)
    pos = rng.uniform(3, 61, (400, 2))
    pos = pos[env.layout.is_free(pos, 1.0)]
    with torch.no_grad():
        za = model.encode(torch.from_numpy(env.render(pos)))[:, agent].numpy()
    coef, *_ = np.linalg.lstsq(np.c_[za, np.ones(len(za))], pos, rcond=None)
    ys = np.arange(6.0, 60.0, 3.0)
    step = float(np.min(np.asarray(env.spec.action_high)))
    cases = []
    for door in np.linspace(9, 55, 12):
        world = make_batch_world("two_rooms", len(ys), door_y=float(door))
        world.reset(list(range(len(ys))))
        start = np.stack([np.full(len(ys), PUSH_START_X), ys], 1)
        layout, end = two_rooms_layout(door_y=float(door)), start.copy()
        for _ in range(int(model.frameskip)):
            end, _ = layout.move(end, np.tile([[step, 0.0]], (len(ys), 1)))
        with torch.no_grad():
            z0 = model.encode(torch.from_numpy(world.render(start)))
        cases.append((float(door), z0, end[:, 0]))
    return cases, coef


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="a two-rooms bundle, best one trained with the door anywhere and a layout part")
    parser.add_argument("--doors", type=int, default=25, help="door heights of the base data (16 x 4 episodes of 50 steps each)")
    parser.add_argument("--probe-episodes", type=int, default=400, help="door_probe episodes (100 steps) added for the 'probe' data")
    parser.add_argument("--fit-steps", type=int, default=12000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/wall_data_probe.json"))
    args = parser.parse_args(argv)
    t0 = time.time()
    torch.set_num_threads(1)
    model = load_bundle(args.bundle, backend="torch")
    std = torch.as_tensor(model.manifest["latent_std"])
    agent, layout = std < LAYOUT_STD, std >= LAYOUT_STD
    inputs = INPUTS if layout.any() else tuple(k for k in INPUTS if k != "layout")
    if not layout.any():
        print(f"wall_data_probe: {args.bundle} has no layout part (model.encoder.layout_dim 0): fitting without it and with the oracle only")
    data = build_data(model, args.doors, args.probe_episodes)
    cases, coef = push_cases(model, agent)
    z_mean, z_std = (data["z0"][:, layout].mean(0), data["z0"][:, layout].std(0)) if layout.any() else (None, None)
    step = float(data["act"].abs().max())

    def layout_input(kind: str, z: torch.Tensor, door: torch.Tensor) -> torch.Tensor:
        if kind == "layout":
            return (z[:, layout] - z_mean) / z_std
        if kind == "oracle":
            return (door - 32.0) / 14.0
        return z[:, :0]

    results: list[dict[str, Any]] = []
    for data_name, n in (("base", data["base_transitions"]), ("probe", len(data["z0"]))):
        z0, z1, act, door = (data[k][:n] for k in ("z0", "z1", "act", "door"))
        for kind in inputs:
            x = torch.cat([z0[:, agent], layout_input(kind, z0, door), act / step], 1)
            net = fit(x, z1[:, agent] - z0[:, agent], args.fit_steps)
            pred_x, true_x = [], []
            for d, zc, end_x in cases:
                push = torch.tensor([[step, 0.0] * int(model.frameskip)] * len(zc))
                with torch.no_grad():
                    za = zc[:, agent] + net(torch.cat([zc[:, agent], layout_input(kind, zc, torch.full((len(zc), 1), d)), push / step], 1))
                pred_x.append(np.c_[za.numpy(), np.ones(len(za))] @ coef[:, 0])
                true_x.append(end_x)
            p, t = np.concatenate(pred_x), np.concatenate(true_x)
            stopped, passed = t < 32.0, t > 34.0
            row = {"data": data_name, "transitions": int(n), "layout_input": kind, "mae_px": round(float(np.abs(p - t).mean()), 2),
                   "stopped_pred_x": round(float(p[stopped].mean()), 1), "passed_pred_x": round(float(p[passed].mean()), 1),
                   "stopped_true_x": round(float(t[stopped].mean()), 1), "passed_true_x": round(float(t[passed].mean()), 1)}
            results.append(row)
            print(f"{data_name:5s} ({n} transitions) {kind:6s}: end error {row['mae_px']:.2f} px, stopped pushes end at "
                  f"{row['stopped_pred_x']} (true {row['stopped_true_x']}), passing at {row['passed_pred_x']} "
                  f"(true {row['passed_true_x']})", flush=True)
    write_result(args.out, "bench/wall_data_probe.py", sys.argv[1:] if argv is None else argv, time.time() - t0,
                 {"bundle": args.bundle, "model_id": model.manifest["model_id"], "rows": results})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
