"""Shared pytest fixtures: ROS isolation for tests that start real rclpy processes."""

from __future__ import annotations

import itertools
import os
import random
import signal
import threading

import pytest

# One domain per test: a random base per pytest process, then consecutive ids, within 1..100
# (Fast DDS ports stay valid there). Discovery stays on loopback.
_DOMAINS = itertools.count(random.Random(os.getpid()).randrange(0, 100))


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"pytest got signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (a CI job's timeout, ``kill``) ends the run as Ctrl-C does, so fixture teardown still stops the node
    processes the tests started: they run in sessions of their own and would otherwise outlive the run."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture
def ros_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment for ROS child processes (and this one) on a test-private ROS_DOMAIN_ID.

    Children must get this dict as ``env=``: it keeps LD_LIBRARY_PATH and the ROS wheels'
    bootstrap marker consistent (see docs/ros2_from_pip.md, pitfall 4).
    """
    domain = str(1 + next(_DOMAINS) % 100)
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    return dict(os.environ)


@pytest.fixture
def ros_procs(ros_env: dict[str, str], tmp_path):
    """Node processes on the test's private ROS domain (the demo's launcher; ``run(module, *args)``)."""
    from jepa_common.processes import NodeProcesses

    procs = NodeProcesses(tmp_path, env=ros_env)
    yield procs
    procs.close()


@pytest.fixture
def rclpy_node(ros_env: dict[str, str]):
    """An rclpy node in the test process (own context) with a background executor thread."""
    import threading

    rclpy = pytest.importorskip("rclpy")
    from jepa_common.ros_common import make_executor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("test_client", context=context)
    executor = make_executor(2, context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    thread.join(timeout=2)
