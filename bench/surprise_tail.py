"""Where the normal tail of surprise comes from: which behaviour, and whether the agent was blocked.

The alarm threshold sits in the tail of surprise on normal data, so a violation is found in time only
when it stands out of that tail. This script scores held-out normal episodes of a bundle's world (the
calibration's policy mix, ``calibrate_surprise.normal_policies``) with the bundle's calibrated surprise
and breaks the frames above ``--level`` down by policy and by how far the agent really moved over the
model step against how far its commands asked (true state; 2-D point-mass worlds): a frame where the
agent stayed put although commanded is a wall contact the model mispredicted, which looks exactly
like a "freeze" violation.

    python bench/surprise_tail.py --bundle models/two_rooms --out bench/results/surprise_tail.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate_surprise import bundle_world, normal_episodes, normal_policies

from jepa_world_model.bundle import load_bundle, read_manifest
from jepa_world_model.surprise import calibration_path, encode_frames, read_calibration


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default="models/two_rooms")
    p.add_argument("--episodes", type=int, default=400, help="normal episodes, split evenly over the policies")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=9000, help="the held-out split of bench_surprise")
    p.add_argument("--level", type=float, default=3.0, help="surprise above which a frame counts as tail")
    p.add_argument("--out", default="")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    model = load_bundle(args.bundle, backend="onnx")
    cal = read_calibration(calibration_path(args.bundle), read_manifest(args.bundle, verify=False))
    world, kwargs = bundle_world(args.bundle)
    fs = int(model.frameskip)
    rows = []  # (policy index, surprise, moved px, commanded px)
    for i, ep in normal_episodes(world, kwargs, args.episodes, args.steps, args.seed):
        if ep.state is None or ep.state.shape[1] < 2:
            raise SystemExit(f"world {world} records no 2-D true state: this breakdown needs the agent's position")
        s = cal.detector().series(model, encode_frames(model, ep.frames, ep.proprio), ep.actions)  # the live surprise
        for t in np.flatnonzero(np.isfinite(s)):
            moved = float(np.linalg.norm(ep.state[t, :2] - ep.state[t - fs, :2]))
            commanded = float(np.linalg.norm(ep.actions[t - fs : t].sum(axis=0)))
            rows.append((i, float(s[t]), moved, commanded))
    r = np.asarray(rows)
    tail = r[r[:, 1] > args.level]
    blocked = (tail[:, 2] < 0.1 * tail[:, 3]) & (tail[:, 3] > 1.0)  # moved < 10% of a command of > 1 px
    names = [f"{pol}{'(' + ','.join(f'{k}={v}' for k, v in kw.items()) + ')' if kw else ''}" for pol, kw in normal_policies(world)]
    report = {
        "command": "python bench/surprise_tail.py " + shlex.join(sys.argv[1:] if argv is None else argv),
        "bundle": args.bundle, "model_id": model.model_id, "detector": cal.detector().describe(), "threshold": cal.threshold,
        "level": args.level,
        "frames": len(r), "tail_frames": len(tail),
        "tail_by_policy": {names[i]: int((tail[:, 0] == i).sum()) for i in range(len(names))},
        "tail_blocked_share": float(blocked.mean()) if len(tail) else None,
        "all_blocked_share": float(((r[:, 2] < 0.1 * r[:, 3]) & (r[:, 3] > 1.0)).mean()),
        "above_threshold": int((r[:, 1] > cal.threshold).sum()),
        "above_threshold_blocked": int(((r[:, 1] > cal.threshold) & (r[:, 2] < 0.1 * r[:, 3]) & (r[:, 3] > 1.0)).sum()),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
