"""Shared pytest fixtures: ROS isolation for tests that start real rclpy processes."""

from __future__ import annotations

import itertools
import os
import random

import pytest

# One domain per test: a random base per pytest process, then consecutive ids, within 1..100
# (Fast DDS ports stay valid there). Discovery stays on loopback.
_DOMAINS = itertools.count(random.Random(os.getpid()).randrange(0, 100))


@pytest.fixture
def ros_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An environment for ROS child processes (and this one) on a test-private ROS_DOMAIN_ID.

    Children must get this dict as ``env=``: it keeps LD_LIBRARY_PATH and the ROS wheels'
    bootstrap marker consistent (see ROS2_FROM_PIP.md, pitfall 4).
    """
    domain = str(1 + next(_DOMAINS) % 100)
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    return dict(os.environ)
