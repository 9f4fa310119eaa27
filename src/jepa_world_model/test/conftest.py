"""Fixtures of the world-model tests (the toy world itself lives in jepa_world_model.testing)."""

from __future__ import annotations

import pytest

from jepa_common.episodes import EpisodeSet
from jepa_world_model.testing import toy_episodes


@pytest.fixture(scope="session")
def toy_data() -> EpisodeSet:
    return toy_episodes(12, 30, seed=0)
