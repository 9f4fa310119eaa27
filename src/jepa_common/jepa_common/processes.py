"""Node processes for the demo, the benchmarks and the tests: one launcher, one way to stop.

Each process runs in its own session (process group), writes stdout and stderr to ``<log_dir>/<name>.log``
and is stopped with SIGINT to its group, then SIGKILL to the group if it hangs (so nothing it started
is left behind). ``ros2 launch`` files are the robot-side launcher; this is for running the suite
from Python without ROS tools.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO


class NodeProcesses:
    """Child processes by name.

    Args:
        log_dir: where ``<name>.log`` (and per-node override params files) go.
        params_file: the shared ROS params file for nodes started with :meth:`start` (None: none).
        overrides: per node name, parameters that win over ``params_file``.
        env: the children's environment (default: this process's at each start).
    """

    def __init__(
        self,
        log_dir: str | Path,
        params_file: str | Path | None = None,
        overrides: dict[str, dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.params_file = params_file
        self.overrides = overrides or {}
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: list[TextIO] = []

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        """Start ``argv`` registered as ``name``; the Popen gets a ``log_path`` attribute."""
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 - closed in stop()/close()
        self.logs.append(log)
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(self.env or os.environ),
                                start_new_session=True)
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.procs[name] = proc
        return proc

    def start(self, name: str, module: str, *extra: str) -> subprocess.Popen:
        """Start ``python -m module`` as ROS node ``name`` with the shared params file, then its overrides.

        Overrides go in a second params file keyed ``/**/<name>`` like the node's own section: a
        ``-p`` override would lose to that section (rclpy applies ``/**`` values, where ``-p`` lands,
        before node-specific sections).
        """
        import yaml

        args = [sys.executable, "-m", module, *extra, "--ros-args", "-r", f"__node:={name}"]
        if self.params_file is not None:
            args += ["--params-file", str(self.params_file)]
        overrides = self.overrides.get(name, {})
        if overrides:
            path = self.log_dir / f"{name}.overrides.yaml"
            path.write_text(yaml.safe_dump({f"/**/{name}": {"ros__parameters": overrides}}))
            args += ["--params-file", str(path)]
        return self.spawn(name, args)

    def run(self, module: str, *args: str, name: str | None = None) -> subprocess.Popen:
        """Start ``python -m module args...`` as given (no params added); named after the module by default."""
        name = name or module.rsplit(".", 1)[-1]
        if name in self.procs:
            name = f"{name}.{len(self.procs)}"
        return self.spawn(name, [sys.executable, "-m", module, *args])

    def dead(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def describe_dead(self) -> str:
        """'name (exit code N): last log line' for each dead process."""
        parts = []
        for name in self.dead():
            code = self.procs[name].returncode
            why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            try:
                lines = [ln for ln in (self.log_dir / f"{name}.log").read_text().splitlines() if ln.strip()]
            except OSError:
                lines = []
            parts.append(f"{name} ({why})" + (f": {lines[-1][:300]}" if lines else ""))
        return "; ".join(parts)

    @staticmethod
    def _signal_group(p: subprocess.Popen, sig: int) -> None:
        """Signal the process and anything it started (its own group); a child that shares our group
        (started without a new session, e.g. by a benchmark) gets the signal alone."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(p.pid) == p.pid:
                os.killpg(p.pid, sig)
            else:
                p.send_signal(sig)

    def kill_all(self) -> None:
        """SIGKILL every process group at once (second Ctrl-C, or a stop that timed out)."""
        for p in self.procs.values():
            self._signal_group(p, signal.SIGKILL)

    def stop(self, which: str | subprocess.Popen | None = None, timeout: float = 5.0) -> int | None:
        """SIGINT, wait up to ``timeout`` s, then SIGKILL the group(s); one process by name or Popen, or all.

        Returns the exit code of the one process stopped (None when stopping all); all: logs are closed.
        """
        if which is None:
            targets = list(self.procs.values())
        elif isinstance(which, str):
            targets = [self.procs[which]]
        else:
            targets = [which]
        for p in targets:
            if p.poll() is None:
                self._signal_group(p, signal.SIGINT)
        deadline = time.monotonic() + timeout
        for p in targets:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))
            if p.poll() is None:
                name = next((n for n, q in self.procs.items() if q is p), str(p.args))
                print(f"[processes] {name} did not stop within {timeout:.0f} s of SIGINT: killed", file=sys.stderr)
            self._signal_group(p, signal.SIGKILL)  # also whatever it left in its group
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        if which is None:
            self.close()
            return None
        return targets[0].returncode

    def close(self) -> None:
        """Stop whatever still runs and close the log files."""
        if any(p.poll() is None for p in self.procs.values()):
            self.stop()
            return
        for log in self.logs:
            log.close()
        self.logs.clear()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             watch: NodeProcesses | subprocess.Popen | None = None) -> None:
    """Poll ``predicate`` until it is true; AssertionError after ``timeout`` s, or at once when a watched
    process died (then the message carries its exit and last log line, so a test failure says why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if isinstance(watch, NodeProcesses) and watch.dead():
            raise AssertionError(f"{watch.describe_dead()} while waiting for {what}; logs in {watch.log_dir}")
        if isinstance(watch, subprocess.Popen) and watch.poll() is not None:
            log = getattr(watch, "log_path", None)
            tail = Path(log).read_text()[-2000:] if log else ""
            raise AssertionError(f"process exited with {watch.returncode} while waiting for {what}; log: {tail}")
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
