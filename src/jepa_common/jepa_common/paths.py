"""Paths as results and manifests record them: never an absolute path of the machine that wrote them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def portable_path(path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> str:
    """``path`` relative to ``base`` (default: the working directory, normally the repository root) when
    inside it, else just its last component (a run or bundle name): committed files stay machine-free."""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    root = Path(base) if base is not None else Path.cwd()
    try:
        return p.resolve().relative_to(root.resolve()).as_posix() or "."
    except ValueError:
        return p.name


def portable_args(args: Any) -> dict[str, Any]:
    """``vars(args)`` of an argparse namespace with every path-like value made portable."""
    out = {}
    for k, v in vars(args).items():
        if isinstance(v, Path) or (isinstance(v, str) and os.path.isabs(v)):
            out[k] = portable_path(v)
        else:
            out[k] = v
    return out
