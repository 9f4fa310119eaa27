"""Which goal tolerance makes the node suite's "reached" mean "within a pixel"? A sweep over the real nodes.

The configurator ends a task as reached when the latent distance to the goal falls under the tolerance; the world's
success is the agent within its success radius (1 px on two-rooms). A tolerance too loose declares goals reached
pixels away (where the bundle's latent moves little per pixel); one too tight never lets the planner finish and
the task times out. For each tolerance and each world setting this runs ``jepa-demo`` (the seven node processes,
lockstep, the same tasks for every tolerance) and counts, per task: reached with the agent within the success radius
at some point of its path (``reached_within``), reached without that (``false_reach``, with the closest distance),
timed out (``timeout``), the world's own success whatever the agent said (``success``: within the radius at some
point), and the median steps. A bundle's ``goal.tolerance`` (``jepa-bundle set-tolerance``) is
chosen from this table.

Usage (about 1 min per 20 tasks on 2 cores):
    python bench/tolerance_sweep.py --bundle models/two_rooms --tolerances 0.002 0.003 0.004 0.006 0.01 \\
        --world-args "{goal_in_other_room: true}" "{goal_in_other_room: true, door_y: random}" --episodes 20 \\
        --out bench/results/tolerance_sweep_two_rooms.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jepa_sim.machine import write_result


def summarise(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of one demo run (its ``demo.json`` episodes)."""
    reached = [e for e in episodes if e["agent_reason"] == "reached"]
    return {
        "episodes": len(episodes),
        "success": sum(bool(e["success"]) for e in episodes),  # the world's test, whatever the agent said
        "reached_within": sum(bool(e["success"]) for e in reached),
        "false_reach": sum(not e["success"] for e in reached),
        "false_reach_closest_px": sorted(round(float(e["min_distance_px"]), 2) for e in reached if not e["success"]),
        "timeout": sum(e["agent_reason"] == "timeout" for e in episodes),
        "other": sorted({e["agent_reason"] for e in episodes} - {"reached", "timeout"}),
        "steps_median": statistics.median(int(e["steps"]) for e in episodes) if episodes else None,
    }


def run_demo(bundle: str, tolerance: float, world_args: str, episodes: int, seed: int, out: Path) -> dict[str, Any]:
    """One ``jepa-demo`` run; its summary, or the error that ended it."""
    cmd = [sys.executable, "-m", "jepa_planner.demo", "--bundle", bundle, "--tolerance", str(tolerance),
           "--world-args", world_args, "--episodes", str(episodes), "--seed", str(seed), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not (out / "demo.json").is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"jepa-demo exited with {proc.returncode}: {tail[0]}"}
    return summarise(json.loads((out / "demo.json").read_text())["episodes_detail"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default="models/two_rooms")
    p.add_argument("--tolerances", type=float, nargs="+", required=True)
    p.add_argument("--world-args", nargs="+", default=["{goal_in_other_room: true}"], help="one YAML mapping per setting")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=1000, help="world seed of the first task (the same tasks at every tolerance)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if any(not (t > 0) for t in args.tolerances) or args.episodes < 1:
        print("tolerance_sweep: tolerances must be > 0 and --episodes >= 1", file=sys.stderr)
        return 2
    t0, rows = time.monotonic(), []
    with tempfile.TemporaryDirectory() as tmp:
        for tolerance in args.tolerances:
            for i, world_args in enumerate(args.world_args):
                row = {"tolerance": tolerance, "world_args": world_args,
                       **run_demo(args.bundle, tolerance, world_args, args.episodes, args.seed, Path(tmp) / f"{tolerance}_{i}")}
                rows.append(row)
                print(json.dumps(row), flush=True)
    results = {"bundle": args.bundle, "first_seed": args.seed, "rows": rows}
    if args.out:
        write_result(args.out, "bench/tolerance_sweep.py", sys.argv[1:] if argv is None else argv, time.monotonic() - t0, results)
        print(f"tolerance_sweep: wrote {args.out}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
