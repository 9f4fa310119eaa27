"""Interleaved A/B of end-to-end planning rate: configurations take turns, one ``bench_e2e.py`` round each.

A change that seems to cost the composed agent its planning rate can be the machine: on this shared 2-core
machine the same command moves 0.05-0.3 in ratio between runs minutes apart, so configurations measured one
after the other (all rounds of A, then all of B) compare the hour, not the change. Here every round runs each
variant once, in turn, and the figures are the per-variant medians over rounds of the ratios ``bench_e2e.py``
measures within its own round (composed or separate over in-process, same seeds).

A variant is ``NAME`` or ``NAME:key=value,key=value`` with keys
  bundle   the model bundle (default models/two_rooms);
  drop     a key removed from the benchmarked profile, e.g. ``escalation`` (repeat with ``+``: ``drop=a+b``);
the profile is ``--profile`` from config/planner_profiles.yaml, changed only by ``drop`` (written to a scratch
``JEPA_CONFIG_DIR``).

    .venv/bin/python bench/bench_e2e_ab.py --rounds 5 --variant shipped \\
        --variant no_escalation:drop=escalation --variant previous:bundle=runs/prev,drop=escalation
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from jepa_sim.machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
VARIANT_KEYS = ("bundle", "drop")


def parse_variant(text: str) -> dict[str, Any]:
    """``NAME[:key=value,...]`` -> {"name", "bundle", "drop"}; unknown keys are refused with the valid ones."""
    name, _, rest = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"variant {text!r} has no name (NAME[:key=value,...])")
    variant: dict[str, Any] = {"name": name, "bundle": "models/two_rooms", "drop": []}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in VARIANT_KEYS:
            raise argparse.ArgumentTypeError(f"variant {text!r}: {item!r} is not one of {', '.join(k + '=...' for k in VARIANT_KEYS)}")
        variant[key] = value.split("+") if key == "drop" else value
    return variant


def profiles_without(profile: str, drop: list[str], config_dir: Path) -> None:
    """Write config/planner_profiles.yaml to ``config_dir`` with ``drop`` removed from ``profile``."""
    data = yaml.safe_load((ROOT / "config" / "planner_profiles.yaml").read_text())
    entry = data["profiles"][profile]
    missing = [k for k in drop if k not in entry]
    if missing:
        raise SystemExit(f"profile {profile!r} has no {missing} to drop; its keys: {sorted(entry)}")
    for key in drop:
        del entry[key]
    (config_dir / "planner_profiles.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def one_round(variant: dict[str, Any], args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """One ``bench_e2e.py`` round of ``variant``; its per-round JSON entry."""
    env = dict(os.environ)
    if variant["drop"]:
        config_dir = scratch / variant["name"]
        config_dir.mkdir(exist_ok=True)
        profiles_without(args.profile, variant["drop"], config_dir)
        env["JEPA_CONFIG_DIR"] = str(config_dir)
    out = scratch / f"{variant['name']}.json"
    cmd = [sys.executable, str(ROOT / "bench" / "bench_e2e.py"), "--bundle", str(ROOT / variant["bundle"]),
           "--profile", args.profile, "--episodes", str(args.episodes), "--rounds", "1", "--modes", args.modes,
           "--seed", str(args.seed), "--out", str(out)]
    subprocess.run(cmd, env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())["per_round"][0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", type=parse_variant, action="append", required=True, help="NAME[:bundle=DIR,drop=KEY]")
    p.add_argument("--profile", default="flat_cem")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--modes", default="in_process,composed", help="bench_e2e.py modes (in_process is the ratios' base)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "e2e_ab.json"))
    args = p.parse_args()
    names = [v["name"] for v in args.variant]
    if len(set(names)) != len(names):
        raise SystemExit(f"--variant names must differ, got {names}")
    if "in_process" not in args.modes.split(","):
        raise SystemExit("--modes must include in_process: the ratios are to it")
    rounds: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            for variant in args.variant:
                r = one_round(variant, args, Path(tmp))
                rounds[variant["name"]].append(r)
                ratios = "  ".join(f"{key.removeprefix('ratio_')} {value:.2f}" for key, value in r.items()
                                   if key.startswith("ratio_") and not key.endswith("observer_callback"))
                print(f"round {k + 1} {variant['name']:>16}: load {r['load_average_1min_before']:.1f}  {ratios}", flush=True)
    summary = {}
    for name, rs in rounds.items():
        keys = [key for key in rs[0] if key.startswith("ratio_")]
        summary[name] = {key: {"median": float(np.median([r[key] for r in rs])), "rounds": [r[key] for r in rs]} for key in keys}
        summary[name]["in_process_replan_median_ms"] = float(np.median([r["in_process"]["replan_latency_ms"]["median"] for r in rs]))
    result = {"machine": machine_info(), "profile": args.profile, "episodes": args.episodes, "rounds": args.rounds,
              "seed": args.seed, "modes": args.modes, "variants": args.variant, "summary": summary, "per_round": rounds}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    for name, s in summary.items():
        print(f"{name:>16}: " + "  ".join(f"{key.removeprefix('ratio_')} {v['median']:.2f}" for key, v in s.items()
                                           if isinstance(v, dict) and not key.endswith("observer_callback")))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
