"""Which proprio the perception node encodes with, for bundles that fuse it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from jepa_perception.perception_node import fused_proprio

FUSING = SimpleNamespace(uses_proprio=True, proprio_dim=4)


def test_image_only_bundles_get_no_proprio() -> None:
    assert fused_proprio(SimpleNamespace(uses_proprio=False), np.ones(4), np.ones(4)) is None


def test_request_proprio_wins_over_the_latest_on_the_topic() -> None:
    latest = np.zeros(4, np.float32)
    np.testing.assert_array_equal(fused_proprio(FUSING, np.arange(4.0), latest), np.arange(4.0)[None])
    np.testing.assert_array_equal(fused_proprio(FUSING, np.zeros(0), latest + 2), np.full((1, 4), 2.0))


@pytest.mark.parametrize(("given", "latest", "match"), [
    (None, np.zeros(0, np.float32), "have 0"),
    (np.ones(3), np.zeros(4), "have 3"),
    (np.array([1.0, np.nan, 0.0, 0.0]), np.zeros(4), "NaN"),
])
def test_missing_wrong_size_or_nan_proprio_is_refused(given, latest, match) -> None:
    with pytest.raises(ValueError, match=match):
        fused_proprio(FUSING, given, latest)
