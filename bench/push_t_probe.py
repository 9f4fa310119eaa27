"""What a Push-T latent holds: a linear probe per true-state target, agent and block apart.

The training runs' ``probe_r2`` averages over [agent x, agent y, block x, block y, block angle] with the angle as a
raw (wrapping) number, which hides where a latent falls short. Here, on scripted-pusher episodes no training used
(seed 777), a ridge probe fitted on three quarters of the frames and scored on the rest gives R^2 and RMSE for agent
x / y, block x / y (px) and the block angle as sin / cos; then a small MLP probe (two hidden layers of 256, 4000
Adam steps) for the block alone: what the latent holds at all, linear or not. DINO-WM's state test needs the block
within 20 px and pi/9: a latent whose readouts are farther off than that cannot be planned to it reliably, whatever
the planner.

    .venv/bin/python bench/push_t_probe.py --bundles models/push_t --out bench/results/push_t_probe.json

Needs the push_t extra (requirements/extras-pusht.txt).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_common.paths import portable_path
from jepa_sim.machine import write_result

TARGETS = ("agent_x", "agent_y", "block_x", "block_y", "block_sin", "block_cos")


def targets(states: np.ndarray) -> np.ndarray:
    """[agent x, agent y, block x, block y, sin angle, cos angle] from Push-T true states (N, 5)."""
    return np.column_stack([states[:, :4], np.sin(states[:, 4]), np.cos(states[:, 4])])


def mlp_probe(z_train: torch.Tensor, y_train: torch.Tensor, z_val: torch.Tensor, y_val: torch.Tensor,
              steps: int = 4000) -> dict[str, float]:
    """Block position RMSE (px) and median angle error (rad) of an MLP probe latent -> [block x, y, sin, cos]."""
    torch.manual_seed(0)
    mu, sd = z_train.mean(0), z_train.std(0).clamp_min(1e-6)
    scale = torch.tensor([100.0, 100.0, 1.0, 1.0], dtype=torch.float64)  # px to about unit range
    xt, xv = ((z_train - mu) / sd).float(), ((z_val - mu) / sd).float()
    yt = (y_train[:, 2:] / scale).float()
    net = torch.nn.Sequential(torch.nn.Linear(xt.shape[1], 256), torch.nn.GELU(), torch.nn.Linear(256, 256), torch.nn.GELU(),
                              torch.nn.Linear(256, 4))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(xt), (256,))
        loss = (net(xt[idx]) - yt[idx]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = net(xv).double() * scale
    yv = y_val[:, 2:]
    rmse = (pred[:, :2] - yv[:, :2]).pow(2).mean(0).sqrt()
    turn = torch.atan2(pred[:, 2], pred[:, 3]) - torch.atan2(yv[:, 2], yv[:, 3])
    angle = torch.atan2(torch.sin(turn), torch.cos(turn)).abs()
    return {"block_x_rmse_px": round(float(rmse[0]), 2), "block_y_rmse_px": round(float(rmse[1]), 2),
            "block_angle_median_error_rad": round(float(angle.median()), 4)}


def probe_bundle(bundle: str, episodes: Any) -> dict[str, Any]:
    """Per-target R^2 and RMSE of a linear probe from the bundle's latent (first 3/4 of frames fit, rest scored)."""
    from jepa_world_model.bundle import load_bundle
    from jepa_world_model.metrics import ridge_probe

    model = load_bundle(bundle)
    zs, ys = [], []
    for ep in episodes:
        with torch.no_grad():
            z = model.encode(torch.as_tensor(ep.frames), torch.as_tensor(ep.proprio, dtype=torch.float32))
        zs.append(torch.as_tensor(np.asarray(z)).reshape(len(ep.frames), -1))
        ys.append(torch.as_tensor(targets(ep.state)))
    z, y = torch.cat(zs), torch.cat(ys)
    n = len(z) * 3 // 4
    r2, rmse = ridge_probe(z[:n], y[:n], z[n:], y[n:])
    return {
        "bundle": portable_path(bundle),
        "model_id": model.model_id,
        "latent_dim": int(z.shape[1]),
        "r2": {t: round(float(v), 4) for t, v in zip(TARGETS, r2, strict=True)},
        "rmse": {t: round(float(v), 4) for t, v in zip(TARGETS, rmse, strict=True)},
        "mlp": mlp_probe(z[:n].double(), y[:n], z[n:].double(), y[n:]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundles", nargs="+", default=["models/push_t"], help="Push-T bundle directories")
    p.add_argument("--episodes", type=int, default=120, help="scripted-pusher episodes of 100 steps")
    p.add_argument("--seed", type=int, default=777, help="collection seed (no training recipe uses it)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="bench/results/push_t_probe.json")
    args = p.parse_args(argv)
    if args.episodes < 4:
        p.error("--episodes must be >= 4")
    for b in args.bundles:
        if not (Path(b) / "manifest.json").is_file():
            p.error(f"no bundle at {b} (a directory with manifest.json)")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    from jepa_sim.collect import collect_episodes

    try:
        data = collect_episodes("push_t", args.episodes, 100, policy="pusher", seed=args.seed)
    except ImportError as exc:
        print(f"push_t_probe: {exc}", file=sys.stderr)
        return 2
    rows = [probe_bundle(b, data.episodes) for b in args.bundles]
    for r in rows:
        print(f"{r['bundle']} ({r['model_id']}, {r['latent_dim']}-d): R^2 "
              + " ".join(f"{t} {r['r2'][t]:.3f}" for t in TARGETS)
              + f"; block RMSE {r['rmse']['block_x']:.1f} / {r['rmse']['block_y']:.1f} px; MLP probe: block RMSE "
              f"{r['mlp']['block_x_rmse_px']:.1f} / {r['mlp']['block_y_rmse_px']:.1f} px, angle median error "
              f"{r['mlp']['block_angle_median_error_rad']:.2f} rad")
    write_result(Path(args.out), "bench/push_t_probe.py", argv if argv is not None else sys.argv[1:],
                 time.perf_counter() - start, {"episodes": args.episodes, "seed": args.seed, "bundles": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
