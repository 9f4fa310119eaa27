"""Training step time with and without flushing subnormal floats, from a trained model's weights.

CPU training slowed down after a few hundred steps (two-rooms door-anywhere recipe: 3.5 -> 1.6 steps/s): the
gradients of a trained model hold subnormal floats, which x86 CPUs compute far more slowly. ``Trainer`` now
flushes them to zero (``torch.set_flush_denormal``). This rebuilds a bundle's training setup on a small data set,
loads its trained weights (the regime where the slowdown shows) and times the same steps both ways, in one run.

Usage:
    python bench/bench_train_step.py --bundle models/two_rooms --out bench/results/train_step.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from jepa_sim.machine import write_result
from jepa_world_model.bundle import safe_torch_load
from jepa_world_model.config import ExperimentConfig
from jepa_world_model.train import Trainer


def time_steps(bundle: Path, flush: bool, steps: int, episodes: int, out: Path) -> tuple[float, float]:
    """(seconds for ``steps`` training steps, mean loss) from the bundle's weights, subnormals flushed or not."""
    state = safe_torch_load(bundle / "model.pt")
    cfg = state["config"]
    cfg["data"].update(episodes=episodes, extra=[])
    cfg["train"].update(steps_per_epoch=steps, epochs=1)
    cfg["decoder"]["enabled"] = False
    trainer = Trainer(ExperimentConfig.model_validate(cfg), out)
    weights = {k: v for k, v in state["model"].items() if not k.startswith("decoder.")}
    trainer.model.load_state_dict(weights)  # every weight but the decoder's (disabled here)
    torch.set_flush_denormal(flush)  # after Trainer(), which turns flushing on
    t0 = time.perf_counter()
    logs = trainer.train_epoch(1)
    return time.perf_counter() - t0, float(logs["train_loss"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=Path("models/two_rooms"))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--episodes", type=int, default=40, help="episodes of the bundle's world to train on")
    parser.add_argument("--out", type=Path, default=Path("bench/results/train_step.json"))
    args = parser.parse_args(argv)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        slow, loss_slow = time_steps(args.bundle, False, args.steps, args.episodes, Path(tmp) / "a")
        fast, loss_fast = time_steps(args.bundle, True, args.steps, args.episodes, Path(tmp) / "b")
    results = {"bundle": str(args.bundle), "steps": args.steps, "seconds_subnormals_kept": round(slow, 2),
               "seconds_flushed": round(fast, 2), "speedup": round(slow / fast, 2),
               "mean_loss_kept": round(loss_slow, 5), "mean_loss_flushed": round(loss_fast, 5)}
    print(f"{args.steps} training steps from {args.bundle}: subnormals kept {slow:.1f} s, flushed {fast:.1f} s "
          f"({slow / fast:.2f}x); mean loss {loss_slow:.5f} / {loss_fast:.5f}")
    write_result(args.out, "bench/bench_train_step.py", sys.argv[1:] if argv is None else argv, time.time() - t0, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
