"""The one Twist <-> action convention and the one latent distance."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from jepa_common.convert import action_to_twist_components, fill_twist, latent_distance, latent_distances, twist_to_action


def _twist() -> SimpleNamespace:
    return SimpleNamespace(linear=SimpleNamespace(x=0.0, y=0.0, z=0.0), angular=SimpleNamespace(x=0.0, y=0.0, z=0.0))


def test_round_trip_planar_and_yaw() -> None:
    a = np.array([0.3, -0.2, 0.05])
    t = fill_twist(_twist(), a, dt=0.1)
    assert (t.linear.x, t.linear.y, t.angular.z) == pytest.approx((3.0, -2.0, 0.5))
    assert t.linear.z == 0.0
    np.testing.assert_allclose(twist_to_action(t, 3, 0.1), a)
    np.testing.assert_allclose(twist_to_action(t, 2, 0.1), a[:2])


def test_components_and_errors() -> None:
    parts = action_to_twist_components(np.array([0.1, 0.2]), 0.5)
    assert parts == {"linear": (0.2, 0.4, 0.0), "angular": (0.0, 0.0, 0.0)}
    with pytest.raises(ValueError, match="at most 6"):
        action_to_twist_components(np.zeros(7), 0.1)
    t = _twist()
    t.linear.y = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        twist_to_action(t, 2, 0.1)


def test_latent_distance_is_rms_for_numpy_and_torch() -> None:
    a, b, std = np.array([1.0, 3.0]), np.array([0.0, 0.0]), np.array([1.0, 1.0])
    assert latent_distance(a, b, std) == pytest.approx(np.sqrt((1 + 9) / 2))
    assert latent_distance(torch.tensor(a), torch.tensor(b), torch.tensor(std) * 2) == pytest.approx(np.sqrt(10 / 2) / 2)
    assert np.isfinite(latent_distance(a, b, np.zeros(2)))  # std floored


def test_batched_distances_match_single() -> None:
    rng = np.random.default_rng(0)
    a, b, std = rng.normal(size=(5, 2, 3)), rng.normal(size=(2, 3)), rng.uniform(0.5, 2, size=(2, 3))
    batch = latent_distances(a, b, std)
    assert batch.shape == (5,)
    np.testing.assert_allclose(batch, [latent_distance(x, b, std) for x in a], rtol=1e-12)
