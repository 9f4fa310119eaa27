"""The setup script fails early and clearly when a prerequisite is missing, and is idempotent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _path_without(tmp_path: Path, missing: set[str]) -> str:
    """A PATH holding only links to the tools the setup script looks for, minus ``missing``."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ["python3", "cmake", "make", "c++", "g++", "cc", "gcc", "sha256sum", "cut", "cat", "find", "sort",
                 "xargs", "id", "date", "grep", "sed", "dirname", "nproc", "tail", "mkdir", "rm", "env", "bash"]:
        # the base interpreter, not a pyenv shim or the venv's (which need more of PATH)
        found = str(Path(sys.base_prefix) / "bin/python3") if tool == "python3" else shutil.which(tool)
        if found and tool not in missing:
            (bindir / tool).symlink_to(found)
    return str(bindir)


@pytest.mark.parametrize(("missing", "named"), [({"cmake"}, "cmake"), ({"c++", "g++"}, "g++")])
def test_missing_prerequisite_is_named_before_any_work(tmp_path: Path, missing: set[str], named: str) -> None:
    env = {"PATH": _path_without(tmp_path, missing), "JEPA_NO_APT": "1", "HOME": str(tmp_path)}
    out = subprocess.run(["bash", str(ROOT / "scripts/setup.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "missing prerequisites" in out.stderr and named in out.stderr
    assert "apt-get install" in out.stderr
    assert "CMake Error" not in out.stderr + out.stdout


def test_too_old_python_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "python3.9"
    fake.write_text("#!/bin/sh\nif [ \"$1\" = -c ]; then exit 1; fi\necho 'Python 3.9.0'\n")
    fake.chmod(0o755)
    env = {**os.environ, "JEPA_PYTHON": str(fake), "JEPA_NO_APT": "1"}
    out = subprocess.run(["bash", str(ROOT / "scripts/setup.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "3.11 or newer" in out.stderr


@pytest.mark.slow
def test_second_setup_run_changes_nothing() -> None:
    if not (ROOT / ".venv/.jepa-stamps/packages").exists():
        pytest.skip("needs a completed setup (scripts/setup.sh) in this checkout")
    for _ in range(2):  # the first run catches up with any change since the last setup; the second must do nothing
        out = subprocess.run(["bash", str(ROOT / "scripts/setup.sh")], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
    assert "building jepa_interfaces" not in out.stdout and "installing" not in out.stdout
