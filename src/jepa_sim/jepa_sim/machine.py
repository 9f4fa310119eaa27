"""What machine a figure was measured on: recorded with every benchmark and evaluation result."""

from __future__ import annotations

import importlib
import json
import os
import platform
import shlex
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(**extra: Any) -> dict[str, Any]:
    """CPU, core count, Python and the versions of the numeric libraries that are installed, plus ``extra``."""
    info: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
    for name in ("numpy", "torch", "onnxruntime"):
        try:
            info[name] = importlib.import_module(name).__version__
        except ImportError:
            continue
    if "torch" in info:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    info.update(extra)
    return info


def write_result(out: Path, script: str, argv: list[str], wall_s: float, results: Any) -> None:
    """A benchmark's JSON file: the command that reruns it, its wall time, this machine and its results."""
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"command": shlex.join(["python", script, *argv]), "wall_s": round(wall_s, 1), "machine": machine_info(),
              "results": results}
    out.write_text(json.dumps(record, indent=1))
