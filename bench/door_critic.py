"""A goal-conditioned temporal-distance critic for two-rooms with the door anywhere: fit, then check its landscape.

With the door away from the straight line, the wall is a local minimum of any straight-line goal distance, even the
exact one (``jepa-evaluate --model oracle --factor door_y=10``: 72.5%). A cost-to-go that knows the door would
remove it. This fits ``jepa_planner.critic.Critic`` V(z, goal) to the number of model steps between two frames of
one random-momentum episode (every episode's door random; both directions, the point mass moves both ways), the
goal a frame up to ``--max-lag`` model steps later or earlier (``--goal-episodes`` adds episodes of the scripted
goal-directed policy, whose lags are close to the shortest), by squared error (the mean lag) or, with
``--expectile`` tau < 0.5, by the lower expectile (towards the shortest lag seen); with ``--bootstrap`` the target
is min(lag, 1 + V'(next frame towards the goal, goal)) with V' a slowly following copy of the critic, so that
what other episodes show (a shorter way through the door) lowers it (temporal-difference stitching). Then, for three door heights
and three goals in the left room, it ranks the critic's values at a grid of positions in the right room against
the distance through the door and the straight-line distance (Spearman): a critic that knows the door follows the
first. Plan with it through a profile's ``{type: critic, weight: W, params: {path: OUT}}`` term
(``models/two_rooms_fixed_door/README.md``, "Door anywhere", session 24).

Usage:
    python bench/door_critic.py --bundle runs/layout_bundle --out runs/door_critic.pt --json runs/door_critic.json
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from jepa_planner.critic import Critic
from jepa_sim.collect import iter_episodes
from jepa_sim.machine import machine_info
from jepa_sim.worlds import make_world
from jepa_world_model.bundle import load_bundle

sys.path.insert(0, str(Path(__file__).resolve().parent))
from door_oracle import through_door_distance  # a sibling benchmark (bench/ on the path, as bench_surprise's users do)

DOORS = (10.0, 32.0, 54.0)
GOALS = ((12.0, 50.0), (12.0, 12.0), (20.0, 32.0))


def lag_pairs(n_episodes: int, frames: int, max_lag: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(episode, frame, goal frame, lag, next frame towards the goal) of ``n`` random pairs, the goal up to
    ``max_lag`` frames later or earlier (the next frame is the frame itself when it is the goal)."""
    episode = rng.integers(0, n_episodes, n)
    first = rng.integers(0, frames, n)
    offset = rng.integers(0, max_lag + 1, n) * rng.choice([-1, 1], n)
    other = np.clip(first + offset, 0, frames - 1)
    return episode, first, other, np.abs(other - first).astype(np.float32), first + np.sign(other - first)


def through_door(points: np.ndarray, door_y: float, goal: tuple[float, float]) -> np.ndarray:
    """Distance (px) from right-room ``points`` (n, 2) to a left-room ``goal`` via the door's centre
    (``door_oracle.through_door_distance`` with a point door)."""
    pts = torch.as_tensor(points, dtype=torch.float64)
    return through_door_distance(door_y, half_width=0.0)(pts, torch.tensor(goal, dtype=torch.float64).expand_as(pts)).numpy()


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (no ties expected: continuous values)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def fit(critic: Critic, z: torch.Tensor, g: torch.Tensor, y: torch.Tensor, epochs: int, expectile: float, seed: int,
        z_next: torch.Tensor | None = None, ema: float = 0.995) -> float:
    """Fit by squared error (``expectile`` 0) or by the asymmetric squared error of expectile tau, to the lag or, given
    ``z_next`` (bootstrap), to min(lag, 1 + V'(z_next, g)) with V' an exponential moving average of the critic;
    returns the last epoch's loss."""
    if expectile <= 0 and z_next is None:
        return critic.fit((z, g, y), epochs=epochs, batch_size=1024, lr=1e-3, seed=seed)[-1]
    tau = expectile if expectile > 0 else 0.5
    critic.target_scale.fill_(float(y.abs().mean().clamp_min(1e-6)))
    scale = critic.target_scale
    follower = copy.deepcopy(critic).eval() if z_next is not None else None
    optimiser = torch.optim.AdamW(critic.parameters(), lr=1e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in tqdm(range(epochs), desc="critic"):
        order, total = torch.randperm(z.shape[0], generator=gen), 0.0
        for start in range(0, z.shape[0], 1024):
            idx = order[start : start + 1024]
            target = y[idx]
            if follower is not None:
                with torch.no_grad():
                    step = torch.where(target > 0, 1.0 + follower(z_next[idx], g[idx]).clamp_min(0.0), torch.zeros_like(target))
                target = torch.minimum(target, step)
            u = target / scale - critic.net(z[idx], g[idx])[..., 0]
            loss = (torch.abs(tau - (u < 0).float()) * u * u).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * idx.numel()
            if follower is not None:
                with torch.no_grad():
                    for mine, theirs in zip(follower.parameters(), critic.parameters(), strict=True):
                        mine.mul_(ema).add_(theirs, alpha=1.0 - ema)
    return total / z.shape[0]


def predicted_latents(model: Any, z_all: np.ndarray, actions: np.ndarray, k: int) -> np.ndarray:
    """(episodes, frames, latent): frame i's latent as the model predicts it k model steps ahead from frame i - k with
    the recorded actions (frames before k keep their encoding)."""
    out = z_all.copy()
    with torch.no_grad():
        for i in range(k, z_all.shape[1]):
            ctx = torch.as_tensor(z_all[:, i - k])[:, None]
            out[:, i] = model.rollout(ctx, torch.as_tensor(actions[:, i - k : i], dtype=torch.float32))[:, -1].numpy()
    return out


def landscape(model: Any, critic: Critic) -> list[dict[str, Any]]:
    """Per door and goal: the critic's rank correlation with the distance through the door and the straight one."""
    grid = np.array([[x, y] for x in np.arange(40.0, 61.0, 4.0) for y in np.arange(4.0, 61.0, 4.0)])
    rows = []
    for door in DOORS:
        batch = make_world("two_rooms", door_y=door).batch
        for goal in GOALS:
            with torch.no_grad():
                z = model.encode(batch.render(grid))
                value = critic(z, model.encode(batch.render(np.array([goal]))).expand_as(z)).numpy()
            geodesic, straight = through_door(grid, door, goal), np.linalg.norm(grid - np.asarray(goal), axis=1)
            rows.append({"door_y": door, "goal": list(goal), "rho_through_door": rank_correlation(value, geodesic),
                         "rho_straight": rank_correlation(value, straight), "rho_between_the_two": rank_correlation(geodesic, straight)})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True, help="a two-rooms bundle (one that reads the door: encoder.layout_dim)")
    p.add_argument("--episodes", type=int, default=2000, help="random-momentum episodes, every door random")
    p.add_argument("--steps", type=int, default=200, help="raw steps per episode")
    p.add_argument("--goal-episodes", type=int, default=0,
                   help="more episodes of the scripted goal-directed policy (noisy_goal: the layout's shortest path plus "
                        "noise 0.5), goals in the other room: lags close to the shortest")
    p.add_argument("--max-lag", type=int, default=40, help="largest lag between a frame and its goal (model steps)")
    p.add_argument("--pairs", type=int, default=600000, help="training pairs (a tenth held out)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--expectile", type=float, default=0.0, help="0: squared error (mean lag); tau in (0, 0.5): lower expectile")
    p.add_argument("--bootstrap", action="store_true", help="target min(lag, 1 + V'(next frame, goal)): stitch episodes")
    p.add_argument("--latents", default=None, help="cache of the encoded episodes (.npy): read if it exists, else written")
    p.add_argument("--predicted", type=int, default=0,
                   help="K > 0: half the pairs start from the model's K-step prediction of the frame (from the frame K "
                        "model steps earlier and the recorded actions), what the planner scores (no --latents cache)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--seed", type=int, default=7, help="data and fit seed (training seeds, not the evaluation's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True, help="critic checkpoint to write")
    p.add_argument("--json", default=None, help="results JSON to write")
    args = p.parse_args(argv)
    if not (Path(args.bundle) / "manifest.json").is_file():
        print(f"door_critic: {args.bundle} has no manifest.json; pass a bundle directory", file=sys.stderr)
        return 2
    if not 0 <= args.expectile < 0.5 or min(args.episodes, args.steps, args.max_lag, args.pairs, args.epochs) < 1 or args.goal_episodes < 0:
        print("door_critic: counts must be >= 1 and --expectile in [0, 0.5)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    model = load_bundle(args.bundle, backend="torch")
    start = time.perf_counter()
    actions = []  # per episode (model steps, frameskip x raw action), for --predicted
    if args.latents and Path(args.latents).is_file() and not args.predicted:
        z_all = np.load(args.latents)  # (episodes, frames, latent), as written below
    else:
        latents = []
        episodes = iter_episodes("two_rooms", args.episodes, args.steps, "random_momentum", seed=args.seed, batch_size=16,
                                 door_y="random")
        if args.goal_episodes:
            goal_directed = iter_episodes("two_rooms", args.goal_episodes, args.steps, "noisy_goal", seed=args.seed + 1,
                                          batch_size=16, policy_kwargs={"noise": 0.5}, door_y="random",
                                          goal_in_other_room=True)
            episodes = itertools.chain(episodes, goal_directed)
        for episode, _goal in tqdm(episodes, total=args.episodes + args.goal_episodes, desc="episodes"):
            with torch.no_grad():
                latents.append(model.encode(episode.frames[:: model.frameskip]).numpy())
            steps = (len(latents[-1]) - 1) * model.frameskip
            actions.append(episode.actions[:steps].reshape(len(latents[-1]) - 1, -1))
        z_all = np.stack(latents)  # (episodes, frames, latent)
        if args.latents:
            np.save(args.latents, z_all)
    encode_s = time.perf_counter() - start
    e, i, j, lag, nxt = lag_pairs(z_all.shape[0], z_all.shape[1], args.max_lag, args.pairs, np.random.default_rng(args.seed))
    z, g, y = torch.as_tensor(z_all[e, i]), torch.as_tensor(z_all[e, j]), torch.as_tensor(lag)
    if args.predicted:
        predicted = predicted_latents(model, z_all, np.stack(actions), args.predicted)
        swap = torch.as_tensor((i >= args.predicted) & (np.random.default_rng(args.seed + 2).random(len(i)) < 0.5))
        z = torch.where(swap[:, None], torch.as_tensor(predicted[e, i]), z)
    z_next = torch.as_tensor(z_all[e, nxt]) if args.bootstrap else None
    flat = torch.as_tensor(z_all.reshape(-1, z_all.shape[-1]))
    # its own statistics: a layout part's latent_std in the manifest is a placeholder (LAYOUT_STD), not a spread
    critic = Critic(tuple(model.latent_shape), args.hidden, args.depth, flat.mean(0), flat.std(0).clamp_min(1e-3))
    hold = args.pairs // 10
    start = time.perf_counter()
    loss = fit(critic, z[hold:], g[hold:], y[hold:], args.epochs, args.expectile, args.seed,
               None if z_next is None else z_next[hold:])
    fit_s = time.perf_counter() - start
    critic.eval()
    with torch.no_grad():
        mae = float((critic(z[:hold], g[:hold]) - y[:hold]).abs().mean())
    critic.save(args.out)
    rows = landscape(model, critic)
    for r in rows:
        print(f"door {r['door_y']:4.0f} goal {r['goal']}: rho through the door {r['rho_through_door']:.2f}, straight "
              f"{r['rho_straight']:.2f} (the two {r['rho_between_the_two']:.2f})")
    print(f"critic {args.out}: held-out MAE {mae:.2f} model steps (mean lag {float(y[:hold].mean()):.2f}); "
          f"encode {encode_s:.0f} s, fit {fit_s:.0f} s")
    if args.json:
        result = {"command": "python bench/door_critic.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
                  "bundle": args.bundle, "args": vars(args), "final_loss": loss, "held_out_mae_model_steps": mae,
                  "held_out_mean_lag": float(y[:hold].mean()), "encode_s": encode_s, "fit_s": fit_s,
                  "landscape": rows, "machine": machine_info()}
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
