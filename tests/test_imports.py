"""Every module of the suite's packages and every benchmark script imports.

A name that moves (``costs.latent_distance`` went to ``jepa_common.convert``) breaks only the modules
that import it, and a benchmark run nobody repeats would find it weeks later; importing everything
finds it in the suite. Optional extras (Push-T, PointMaze) may be missing: their ImportError is allowed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["jepa_common", "jepa_sim", "jepa_world_model", "jepa_perception", "jepa_planner"]
OPTIONAL = ("gym_pusht", "pymunk", "pygame", "shapely", "cv2", "gymnasium_robotics", "mujoco")


def modules() -> list[str]:
    names = []
    for pkg in PACKAGES:
        root = REPO / "src" / pkg / pkg
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root.parent).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def import_or_optional(load) -> None:
    try:
        load()
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in OPTIONAL:
            pytest.skip(f"optional extra not installed: {exc.name}")
        raise


@pytest.mark.parametrize("name", modules())
def test_module_imports(name: str) -> None:
    import_or_optional(lambda: importlib.import_module(name))


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "bench").glob("*.py")))
def test_bench_script_imports(script: str) -> None:
    path = REPO / "bench" / script
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        import_or_optional(lambda: spec.loader.exec_module(module))
    finally:
        sys.modules.pop(spec.name, None)
    assert hasattr(module, "main"), f"bench/{script} has no main()"
