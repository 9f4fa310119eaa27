"""A pytest run stopped with SIGTERM takes the node processes its tests started down with it (conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

INNER = textwrap.dedent('''
    import os, sys, time
    from pathlib import Path
    import pytest
    from jepa_common.processes import NodeProcesses

    @pytest.fixture
    def procs(tmp_path):
        p = NodeProcesses(tmp_path)
        yield p
        p.close()

    def test_runs_until_stopped(procs):
        child = procs.spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(120)"])
        Path(os.environ["CHILD_PID_FILE"]).write_text(str(child.pid))
        time.sleep(120)
''')


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purpose
        return f.read().split()[2] != "Z"


def test_sigterm_to_pytest_stops_the_children_of_its_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    pid_file = tmp_path / "child.pid"
    env = {**os.environ, "CHILD_PID_FILE": str(pid_file), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider", str(tmp_path / "test_inner.py")],
                           cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.1)
    assert pid_file.exists(), run.communicate(timeout=10)[0][-2000:]
    child = int(pid_file.read_text())
    assert alive(child)
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert not alive(child), f"the fixture's child {child} outlived the stopped run:\n{out[-2000:]}"
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
