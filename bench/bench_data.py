"""Data pipeline throughput, written to bench/results/data.json.

Measures in one run: collection into an MCAP bag (frames/s), decoding the bag (frames/s),
and WindowDataset items/s from the memory-mapped cache vs from arrays decoded from the bag.

Usage: .venv/bin/python bench/bench_data.py [--episodes 64] [--steps 100]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from jepa_common.bag_format import write_episodes_bag
from jepa_sim.collect import collect_metadata, iter_episodes
from jepa_sim.machine import machine_info
from jepa_world_model.data.bags import default_topics, load_bags
from jepa_world_model.data.windows import WindowDataset


def windows_per_s(eps, n_items: int) -> float:
    ds = WindowDataset(eps, context=3, horizon=5, frameskip=5)
    idx = np.random.default_rng(0).integers(0, len(ds), size=n_items)
    start = time.perf_counter()
    for i in idx:
        ds[int(i)]
    return n_items / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=64, help="episodes recorded")
    parser.add_argument("--steps", type=int, default=100, help="steps per episode")
    parser.add_argument("--items", type=int, default=2000, help="windows fetched per loader measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "bag"
        meta = collect_metadata("two_rooms", "random_momentum", 0, args.steps, args.episodes, {}, None)
        start = time.perf_counter()
        frames = write_episodes_bag(bag, iter_episodes("two_rooms", args.episodes, args.steps, seed=0), meta)
        collect_fps = frames / (time.perf_counter() - start)
        start = time.perf_counter()
        decoded = load_bags([bag], default_topics())
        decode_fps = frames / (time.perf_counter() - start)
        load_bags([bag], default_topics(), cache_dir=Path(tmp) / "cache")
        start = time.perf_counter()
        cached = load_bags([bag], default_topics(), cache_dir=Path(tmp) / "cache")
        cached_open_s = time.perf_counter() - start
        from_arrays = windows_per_s(decoded, args.items)
        from_cache = windows_per_s(cached, args.items)
    results = {
        "machine": machine_info(),
        "episodes": args.episodes,
        "frames": frames,
        "collect_to_mcap_frames_per_s": round(collect_fps, 1),
        "bag_decode_frames_per_s": round(decode_fps, 1),
        "cached_load_s": round(cached_open_s, 4),
        "cache_vs_decode_load_speedup": round((frames / decode_fps) / cached_open_s, 1),
        "windows_per_s_memmap_cache": round(from_cache, 1),
        "windows_per_s_in_memory": round(from_arrays, 1),
        "window": {"context": 3, "horizon": 5, "frameskip": 5},
    }
    for k, v in results.items():
        if k != "machine":
            print(f"{k:34s} {v}")
    out = Path(__file__).parent / "results" / "data.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
