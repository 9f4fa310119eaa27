"""Offline evaluation throughput on CPU (frames/s), written to bench/results/offline_eval.json.

Measures in one run, on one two-rooms bag recorded by ``jepa-collect``: reading the bag into episodes,
and the whole open-loop evaluation (encode every frame, every window's H-step rollout, surprise per
frame, collapse statistics) with the torch backend and, for a bundle, the ONNX backend (ratio given).
The model is the bundle given with --bundle (default models/two_rooms when it exists); without one the
two-rooms architecture from config/train/two_rooms.yaml with untrained weights (same cost per frame).

Usage: .venv/bin/python bench/bench_offline_eval.py [--episodes 10] [--steps 100] [--horizon 8] [--bundle DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from jepa_sim.machine import machine_info
from jepa_world_model.offline_eval import evaluate_episodes, load_bag_episodes
from jepa_world_model.protocol import LevelSpec, sliding_rollout

ROOT = Path(__file__).resolve().parent.parent




class UntrainedTwoRooms:
    """The two-rooms JEPAWorldModel (random weights) behind the WorldModel protocol, for when no bundle exists."""

    def __init__(self) -> None:
        from jepa_world_model.config import load_config
        from jepa_world_model.models.world_model import DataDims, JEPAWorldModel

        cfg = load_config(ROOT / "config" / "train" / "two_rooms.yaml")
        self.net = JEPAWorldModel(cfg, DataDims(image_size=64, raw_action_dim=2, proprio_dim=4)).eval()
        self.latent_shape = tuple(self.net.latent_shape)
        self.context, self.frameskip = self.net.context, self.net.frameskip
        a = self.net.level_action_dims[0]
        self.levels = [LevelSpec(0, 1, a, (-2.45,) * a, (2.45,) * a)]
        self.latent_mean = torch.zeros(self.latent_shape)
        self.latent_std = torch.ones(self.latent_shape)

    @torch.no_grad()
    def encode(self, images):
        return self.net.encode(torch.as_tensor(np.asarray(images)))

    @torch.no_grad()
    def predict(self, z_ctx, action, level=0):
        return self.net.predict(z_ctx, action, level)

    def rollout(self, z_ctx, actions, level=0):
        return sliding_rollout(self, z_ctx, actions, level)

    def encode_macro(self, actions, level=1):
        return self.net.encode_macro(actions, level)


def timed_eval(model, eps, horizon: int, repeats: int) -> dict[str, float]:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        report = evaluate_episodes(model, eps, horizon=horizon)
        best = min(best, time.perf_counter() - start)
    windows = sum(e.windows for e in report.episodes)
    return {
        "seconds": round(best, 4),
        "frames_per_s": round(eps.num_frames / best, 1),
        "windows_per_s": round(windows / best, 1),
        "windows": windows,
        "error_h1": report.horizon_error[0],
        f"error_h{horizon}": report.horizon_error[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="episodes recorded into the bag")
    parser.add_argument("--steps", type=int, default=100, help="actions per episode")
    parser.add_argument("--horizon", type=int, default=8, help="open-loop horizon in model steps")
    parser.add_argument(
        "--bundle", default=None, help="model bundle (default: models/two_rooms if present, else untrained architecture)"
    )
    parser.add_argument("--repeats", type=int, default=2, help="evaluation repeats; the best time is reported")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from jepa_sim.collect import main as collect_main

    bundle = Path(args.bundle) if args.bundle else ROOT / "models" / "two_rooms"
    results: dict[str, object] = {
        "machine": machine_info(),
        "episodes": args.episodes,
        "steps": args.steps,
        "horizon": args.horizon,
    }
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "two_rooms"
        collect_main(["--world", "two_rooms", "--episodes", str(args.episodes), "--steps", str(args.steps), "--out", str(bag)])
        start = time.perf_counter()
        eps, skipped = load_bag_episodes([bag])
        load_s = time.perf_counter() - start
        assert not skipped, skipped
        results["frames"] = eps.num_frames
        results["bag_read"] = {"seconds": round(load_s, 4), "frames_per_s": round(eps.num_frames / load_s, 1)}
        backends: dict[str, dict[str, float]] = {}
        if (bundle / "manifest.json").is_file():
            from jepa_world_model.bundle import load_bundle

            results["model"] = f"bundle {bundle}"
            for backend in ("torch", "onnx"):
                backends[backend] = timed_eval(load_bundle(bundle, backend=backend), eps, args.horizon, args.repeats)
            results["onnx_vs_torch_speedup"] = round(backends["onnx"]["frames_per_s"] / backends["torch"]["frames_per_s"], 3)
        else:
            results["model"] = "config/train/two_rooms.yaml architecture, untrained weights (no bundle found)"
            backends["torch"] = timed_eval(UntrainedTwoRooms(), eps, args.horizon, args.repeats)
        results["evaluation"] = backends
        torch_fps = backends["torch"]["frames_per_s"]
        results["eval_vs_bag_read_ratio"] = round(torch_fps / results["bag_read"]["frames_per_s"], 3)
    out = ROOT / "bench" / "results" / "offline_eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"model: {results['model']}")
    print(f"bag read: {results['bag_read']['frames_per_s']:.0f} frames/s ({eps.num_frames} frames)")
    for name, r in backends.items():
        print(
            f"offline eval [{name}]: {r['frames_per_s']:.0f} frames/s, {r['windows_per_s']:.0f} windows/s (horizon {args.horizon})"
        )
    if "onnx_vs_torch_speedup" in results:
        print(f"onnx / torch: {results['onnx_vs_torch_speedup']:.2f}x")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
