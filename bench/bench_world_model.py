"""World-model inference speed, torch vs onnxruntime in one run, written to bench/results/world_model.json.

Measures on a model bundle (default models/two_rooms):
  * encoder: latency and images/s at batch 1 and batch 256;
  * predictor: one level-0 rollout of 300 candidates x horizon 8 (what one CEM iteration costs),
    and one level-1 rollout of 300 candidates x 4 macro-steps;
and reports onnxruntime/torch speed ratios.

Usage: .venv/bin/python bench/bench_world_model.py [--bundle models/two_rooms] [--threads 2] [--reps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from jepa_common.paths import portable_path
from jepa_sim.machine import machine_info
from jepa_world_model.bundle import load_bundle


def median_seconds(fn: Callable[[], object], reps: int, warmup: int = 3) -> float:
    """Median wall time of ``fn`` (median: the machine is shared, outliers are other people's jobs)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="models/two_rooms", help="model bundle directory")
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads")
    parser.add_argument("--reps", type=int, default=20, help="timed repetitions per measurement (median reported)")
    parser.add_argument("--candidates", type=int, default=300, help="planner candidates per rollout")
    parser.add_argument("--horizon", type=int, default=8, help="level-0 rollout steps")
    parser.add_argument("--out", default="bench/results/world_model.json", help="JSON result file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backends = {
        "torch": load_bundle(args.bundle, backend="torch"),
        "onnx": load_bundle(args.bundle, backend="onnx", providers=["CPUExecutionProvider"], onnx_threads=args.threads),
    }
    any_model = backends["torch"]
    h, w = any_model.image_size
    rng = np.random.default_rng(0)
    imgs = {b: rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8) for b in (1, 256)}
    z0 = any_model.encode(imgs[1]).expand(args.candidates, *any_model.latent_shape)
    ctx = z0[:, None].repeat(1, any_model.context, *([1] * len(any_model.latent_shape))).contiguous()
    lv0 = any_model.levels[0]
    low, high = torch.tensor(lv0.action_low), torch.tensor(lv0.action_high)
    acts0 = low + (high - low) * torch.rand(
        args.candidates, args.horizon, lv0.action_dim, generator=torch.Generator().manual_seed(0)
    )
    results: dict[str, dict[str, float]] = {}
    for name, model in backends.items():
        r: dict[str, float] = {}
        for b, batch in imgs.items():
            sec = median_seconds(lambda m=model, x=batch: m.encode(x), args.reps)
            r[f"encode_b{b}_ms"] = sec * 1e3
            r[f"encode_b{b}_images_per_s"] = b / sec
        sec = median_seconds(lambda m=model: m.rollout(ctx, acts0, level=0), args.reps)
        r["rollout_l0_ms"] = sec * 1e3
        r["rollout_l0_candidate_steps_per_s"] = args.candidates * args.horizon / sec
        if len(model.levels) > 1:
            lv1 = model.levels[1]
            macro = torch.rand(args.candidates, 4, lv1.action_dim, generator=torch.Generator().manual_seed(1)) * 2 - 1
            sec = median_seconds(lambda m=model, a=macro: m.rollout(ctx, a, level=1), args.reps)
            r["rollout_l1_x4_ms"] = sec * 1e3
        results[name] = r
    ratios = {
        f"onnx_speedup_{k.removesuffix('_ms')}": results["torch"][k] / results["onnx"][k]
        for k in results["torch"]
        if k.endswith("_ms")
    }
    report = {
        "bundle": portable_path(args.bundle),
        "model_id": any_model.model_id,
        "latent_shape": list(any_model.latent_shape),
        "candidates": args.candidates,
        "horizon": args.horizon,
        "machine": machine_info(threads_used=args.threads, load_average_1m=os.getloadavg()[0]),
        "results": results,
        "ratios": ratios,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for name, r in results.items():
        print(name, " ".join(f"{k}={v:.4g}" for k, v in r.items()))
    print("ratios (torch time / onnx time):", " ".join(f"{k}={v:.2f}" for k, v in ratios.items()))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
