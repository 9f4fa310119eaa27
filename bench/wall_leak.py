"""Does a two-rooms model stop at the wall where the door is not, and pass where it is? Per door height.

For each door height, the agent is placed beside the wall on either side (5 px from it, every 4 px of
height) and pushed straight at the wall at full speed for ``--steps`` model steps, open loop through the
model's predictor. Each predicted latent is read back as a position: the nearest, in normalised latent
distance (the layout part left out), of the model's own encodings of the agent drawn at every free cell of a
``--grid`` px grid with that door. A push away from the doorway that is predicted to end on the other side
of the wall is a *leak* (the simulator blocks it); a push level with the doorway predicted to stay on its
own side is a *block*. A model that plans through a door it reads from the image needs both near 0. The
third failure is the opposite of a leak: the agent touching the wall (away from the doorway) and driven
straight back from it for one model step moves the full step in the simulator; predicted to move less than
half of that, it is *held* at the wall (a predictor that learned "at a wall, no motion" whatever the
heading: the planner then sees no way off the wall and the agent hovers along it).

Why: closed-loop success with the door moved mixes the model with the planner (the oracle model with
`flat_cem_search` reaches 100% at every door, `bench/door_oracle.py`), and `bench/door_paths.py` compares
path costs; this reads directly whether the predictor's wall is where the image's wall is, in seconds.

Usage:
    python bench/wall_leak.py --bundles models/two_rooms runs/some_bundle --out bench/results/wall_leak.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jepa_planner.evaluate import bundle_world
from jepa_sim.machine import write_result
from jepa_sim.worlds import make_batch_world
from jepa_world_model.bundle import load_bundle
from jepa_world_model.models.world_model import LAYOUT_STD

DOORS = (10.0, 18.0, 26.0, 32.0, 38.0, 46.0, 54.0)
OFFSET_PX = 5  # start this far beside the wall
FACE_PX = 1  # the held-at-the-wall pushes start this close to the wall's face (px)
CLEARANCE_PX = 4  # pushes closer than this to the doorway's edge are neither leaks nor blocks


def wall_geometry(walls: np.ndarray) -> tuple[int, int, np.ndarray]:
    """First and last column of the dividing wall and the rows of its doorway, from a (H, W) wall mask."""
    inner = walls[1:-1, 1:-1]
    cols = np.flatnonzero(inner.mean(axis=0) > 0.5) + 1
    if cols.size == 0:
        raise ValueError("no dividing wall in this layout (two-rooms expected)")
    door_rows = np.flatnonzero(~walls[:, cols].any(axis=1)[1:-1]) + 1
    return int(cols[0]), int(cols[-1]), door_rows


def score_door(model: Any, door: float, steps: int, grid: int, std: torch.Tensor, keep: torch.Tensor) -> dict[str, Any]:
    """Leak and block rates of one door height; ``std`` / ``keep``: the normalisation and the agent dims."""
    env = make_batch_world("two_rooms", 1, door_y=door)
    env.reset([0])
    walls = env.render_map()[..., 0] == 255
    left, right, door_rows = wall_geometry(walls)
    size = walls.shape[0]
    cells = np.array([[x, y] for y in range(1, size - 1, grid) for x in range(1, size - 1, grid) if not walls[y, x]])
    starts, heading, at_door = [], [], []
    for x, sign in ((left - OFFSET_PX, 1.0), (right + OFFSET_PX, -1.0)):
        for y in range(4, size - 3, 4):
            gap = np.abs(door_rows - y).min()
            if gap == 0 or gap >= CLEARANCE_PX:  # level with the doorway, or clear of its edges
                starts.append((x, y))
                heading.append(sign)
                at_door.append(bool(gap == 0))
    speed = float(np.min(np.asarray(env.spec.action_high)))
    frameskip = int(getattr(model, "frameskip", 1) or 1)
    sign = torch.tensor(heading, dtype=torch.float32)[:, None]
    actions = (sign * torch.tensor([speed, 0.0] * frameskip)).unsqueeze(1).repeat(1, steps, 1)  # (N, steps, A)
    with torch.no_grad():
        table = torch.cat([model.encode(env.render((cells[i : i + 256] + 0.5) / env.scale)) for i in range(0, len(cells), 256)])
        z = model.encode(env.render((np.asarray(starts) + 0.5) / env.scale))
        z = model.rollout(z[:, None], actions)[:, -1]
    table = table.reshape(len(table), -1)[:, keep] / std[keep]
    read = cells[torch.cdist(z.reshape(len(z), -1)[:, keep] / std[keep], table).argmin(dim=1).numpy()]
    crossed = np.where(np.asarray(heading) > 0, read[:, 0] > right, read[:, 0] < left)
    at_door_mask = np.asarray(at_door)
    n_door, n_away = int(at_door_mask.sum()), int((~at_door_mask).sum())
    held = held_at_wall(model, env, door, (left, right), starts, heading, at_door_mask, cells, table, std, keep, speed, frameskip)
    return {
        "door_y": door,
        "leak_rate": int(crossed[~at_door_mask].sum()) / max(n_away, 1),
        "pushes_away_from_door": n_away,
        "block_rate": int((~crossed[at_door_mask]).sum()) / max(n_door, 1),
        "pushes_at_door": n_door,
        "held_rate": float(held.mean()) if held.size else 0.0,
        "pushes_off_the_wall": int(held.size),
    }


def held_at_wall(model: Any, env: Any, door: float, wall: tuple[int, int], starts: list, heading: list, at_door: np.ndarray,
                 cells: np.ndarray, table: torch.Tensor, std: torch.Tensor, keep: torch.Tensor, speed: float,
                 frameskip: int) -> np.ndarray:
    """Per push off the wall (the rows of the leak pushes clear of the doorway, started ``FACE_PX`` from the wall's
    face, its first and last column ``wall``, and driven straight back from it for one model step): predicted to move
    less than half the simulator's move."""
    left, right = wall
    sign = -np.asarray(heading)[~at_door]  # away from the wall
    ys = np.asarray(starts, dtype=np.float64)[~at_door, 1] + 0.5
    xs = np.where(sign < 0, left - FACE_PX, right + 1 + FACE_PX).astype(np.float64)
    if not len(xs):
        return np.zeros(0, dtype=bool)
    pos = np.stack([xs, ys], axis=1) / env.scale
    sim = make_batch_world("two_rooms", len(pos), door_y=door)
    sim.reset(list(range(len(pos))), starts=pos)
    action = np.stack([sign * speed, np.zeros_like(sign)], axis=1)
    for _ in range(frameskip):
        sim.step(action)
    moved = np.abs(sim.true_state()[:, 0] - pos[:, 0]) * env.scale
    with torch.no_grad():
        z = model.encode(env.render(pos))
        z = model.predict(z[:, None], torch.tensor(np.tile(action, frameskip), dtype=torch.float32), level=0)
    read = cells[torch.cdist(z.reshape(len(z), -1)[:, keep] / std[keep], table).argmin(dim=1).numpy()]
    predicted = np.abs(read[:, 0] + 0.5 - xs)
    return predicted < 0.5 * moved


def score_bundle(bundle: str, steps: int, grid: int, doors: list[float]) -> dict[str, Any]:
    model = load_bundle(bundle, backend="torch")
    std = torch.as_tensor(model.latent_std, dtype=torch.float32).reshape(-1)
    per_door = [score_door(model, d, steps, grid, std, std < LAYOUT_STD) for d in doors]
    return {
        "bundle": bundle,
        "model_id": getattr(model, "model_id", None),
        "steps": steps,
        "leak_rate": float(np.mean([r["leak_rate"] for r in per_door])),
        "block_rate": float(np.mean([r["block_rate"] for r in per_door])),
        "held_rate": float(np.mean([r["held_rate"] for r in per_door])),
        "per_door": per_door,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundles", nargs="+", default=["models/two_rooms"], help="two-rooms bundle directories")
    ap.add_argument("--doors", nargs="+", type=float, default=list(DOORS), help="door heights (px)")
    ap.add_argument("--steps", type=int, default=4, help="model steps of each push (enough to cross the wall)")
    ap.add_argument("--grid", type=int, default=2, help="px between the cells of the read-back table")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.grid < 1:
        ap.error(f"--steps and --grid must be >= 1, got {args.steps} and {args.grid}")
    for bundle in args.bundles:
        if not (Path(bundle) / "manifest.json").exists():
            print(f"wall_leak: {bundle} is not a bundle directory (no manifest.json)", file=sys.stderr)
            return 2
        try:
            world, _ = bundle_world(bundle)
        except ValueError as err:
            print(f"wall_leak: {err}", file=sys.stderr)
            return 2
        if world != "two_rooms":
            print(f"wall_leak: {bundle} was trained on {world!r}; this bench needs a two-rooms bundle", file=sys.stderr)
            return 2
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    results = [score_bundle(b, args.steps, args.grid, args.doors) for b in args.bundles]
    for r in results:
        print(f"{r['bundle']}: leaks through the wall {100 * r['leak_rate']:.0f}%, blocked at the door {100 * r['block_rate']:.0f}%, "
              f"held at the wall {100 * r['held_rate']:.0f}% (mean over doors; all should be near 0)")
        print("  door y:  " + "  ".join(f"{d['door_y']:>5.0f}" for d in r["per_door"]))
        print("  leak %:  " + "  ".join(f"{100 * d['leak_rate']:>5.0f}" for d in r["per_door"]))
        print("  block %: " + "  ".join(f"{100 * d['block_rate']:>5.0f}" for d in r["per_door"]))
        print("  held %:  " + "  ".join(f"{100 * d['held_rate']:>5.0f}" for d in r["per_door"]))
    if args.out:
        write_result(args.out, "bench/wall_leak.py", argv if argv is not None else sys.argv[1:], time.perf_counter() - t0, results)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
