"""NodeProcesses stops its children with SIGINT whether or not they run in a session of their own."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from jepa_common.processes import NodeProcesses

# A child that exits 0 on SIGINT (KeyboardInterrupt) and reports it. It installs its SIGINT handler itself,
# as the nodes do (ros_common.install_stop_signals): Python leaves SIGINT ignored when it starts with it
# ignored, which a non-interactive shell does to every job it puts in the background (`cmd &`).
CHILD = ("import signal, time\nsignal.signal(signal.SIGINT, signal.default_int_handler)\ntry:\n    time.sleep(60)\n"
         "except KeyboardInterrupt:\n    print('interrupted', flush=True)\n")


@pytest.mark.parametrize("own_session", [True, False])
def test_stop_interrupts_the_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_session: bool) -> None:
    if not own_session:  # as bench_e2e does: children stay in the caller's process group
        real = subprocess.Popen

        def popen(*args, **kwargs):
            kwargs["start_new_session"] = False
            return real(*args, **kwargs)

        monkeypatch.setattr(subprocess, "Popen", popen)
    procs = NodeProcesses(tmp_path)
    procs.spawn("child", [sys.executable, "-c", CHILD])
    time.sleep(1.0)  # let the interpreter install its SIGINT handler
    started = time.monotonic()
    code = procs.stop("child", timeout=10)
    assert code == 0 and time.monotonic() - started < 5
    assert "interrupted" in (tmp_path / "child.log").read_text()
    procs.close()
