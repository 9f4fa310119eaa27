"""jepa_world_model.surprise: the one surprise definition, thresholds, AUROC, calibration files; offline marking."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from jepa_world_model.protocol import LevelSpec, sliding_rollout
from jepa_world_model.surprise import (
    ContextScale,
    OnlineSurprise,
    RestRegime,
    SurpriseCalibration,
    SurpriseDetector,
    Whitening,
    at_rest,
    auroc,
    context_features,
    exceed_rate,
    first_scored_frame,
    normalised_distance,
    read_calibration,
    residual_series,
    rest_bias_series,
    surprise_series,
    threshold_for_rate,
    window_sum,
    write_calibration,
)

CONTEXT, FRAMESKIP, DIM, RAW = 2, 3, 5, 2


class LinearModel:
    """A known WorldModel double over given latents: z' = z_last A + z_first 0.1 + action B."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.latent_shape, self.context, self.frameskip = (DIM,), CONTEXT, FRAMESKIP
        a = RAW * FRAMESKIP
        self.levels = [LevelSpec(0, 1, a, (-3.0,) * a, (3.0,) * a)]
        self.a_mat = torch.eye(DIM) * 0.9 + 0.05 * torch.randn(DIM, DIM, generator=g)
        self.b_mat = 0.2 * torch.randn(a, DIM, generator=g)
        self.latent_mean = torch.zeros(DIM)
        self.latent_std = torch.linspace(0.5, 2.0, DIM)

    def predict(self, z_ctx, action, level=0):
        return z_ctx[:, -1] @ self.a_mat + 0.1 * z_ctx[:, 0] + action @ self.b_mat

    def rollout(self, z_ctx, actions, level=0):
        return sliding_rollout(self, z_ctx, actions, level)


def test_series_is_the_frameskip_aware_prediction_error() -> None:
    model = LinearModel()
    rng = np.random.default_rng(0)
    t_len = 30
    z = torch.from_numpy(rng.normal(size=(t_len, DIM)).astype(np.float32))
    actions = rng.uniform(-1, 1, size=(t_len, RAW)).astype(np.float32)
    std = model.latent_std.numpy()
    for horizon in (1, 2):
        s = surprise_series(model, z, actions, horizon=horizon)
        first = first_scored_frame(model, horizon)
        assert first == (CONTEXT - 1 + horizon) * FRAMESKIP
        assert np.isnan(s[:first]).all() and np.isfinite(s[first:]).all()
        for t in range(first, t_len):
            last = t - horizon * FRAMESKIP
            ctx = z[[last - FRAMESKIP * j for j in range(CONTEXT - 1, -1, -1)]][None]
            acts = torch.from_numpy(actions[last : last + horizon * FRAMESKIP].reshape(1, horizon, -1))
            pred = model.rollout(ctx, acts)[0, -1].numpy()
            assert s[t] == pytest.approx(float(normalised_distance(pred, z[t].numpy(), std)), rel=1e-5)


def test_whitening_weighs_residuals_by_how_unusual_their_direction_is() -> None:
    rng = np.random.default_rng(1)
    # normal residuals: large along the first axis (the model's usual error), small along the others
    scales = np.array([1.0, 0.1, 0.1])
    normal = rng.normal(size=(20000, 3)) * scales + np.array([0.05, 0.0, 0.0])
    w = Whitening.fit(normal)
    assert np.mean(w.scores(normal) ** 2) == pytest.approx(1.0, rel=0.02)  # identity covariance on normal data
    along_usual, across = np.array([0.5, 0.0, 0.0]), np.array([0.0, 0.5, 0.0])
    assert np.linalg.norm(along_usual) == np.linalg.norm(across)
    assert w.scores(across) > 5 * w.scores(along_usual)  # same size, the unusual direction is the surprise
    with pytest.raises(ValueError, match="more normal frames"):
        Whitening.fit(normal[:3])


def test_whitened_series_is_the_whitening_of_the_residuals() -> None:
    model = LinearModel()
    rng = np.random.default_rng(2)
    z = torch.from_numpy(rng.normal(size=(40, DIM)).astype(np.float32))
    actions = rng.uniform(-1, 1, size=(40, RAW)).astype(np.float32)
    residuals = residual_series(model, z, actions)
    first = first_scored_frame(model)
    assert np.isnan(residuals[:first]).all() and residuals.shape == (40, DIM)
    w = Whitening(rng.normal(size=DIM) * 0.1, np.tril(rng.normal(size=(DIM, DIM))) + 3 * np.eye(DIM))
    expected = np.sqrt((((residuals - w.mean) @ w.matrix.T) ** 2).mean(axis=1))
    np.testing.assert_allclose(surprise_series(model, z, actions, whitening=w), expected)
    np.testing.assert_allclose(surprise_series(model, z, actions), np.sqrt((residuals**2).mean(axis=1)))


def test_window_sum_adds_the_last_frames_and_never_reaches_across_unscored_ones() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(size=(12, 3))
    r[:2] = np.nan  # an episode's unscored start
    r[7] = np.nan  # and the next one's, after a concatenation
    out = window_sum(r, 3)
    for t in range(12):
        rows = r[max(0, t - 2) : t + 1]
        if t < 2 or not np.isfinite(rows).all():
            assert np.isnan(out[t]).all(), t
        else:
            np.testing.assert_allclose(out[t], rows.sum(axis=0))
    assert np.isfinite(out[4]).all() and np.isnan(out[8]).all() and np.isfinite(out[10]).all()
    np.testing.assert_array_equal(window_sum(r, 1), r)
    with pytest.raises(ValueError, match="window"):
        window_sum(r, 0)


def test_detector_scores_windowed_whitened_residuals_and_knows_its_history() -> None:
    """The live node keeps ``frames_needed`` frames: exactly enough for the newest frame's score, never fewer."""
    model = LinearModel()
    rng = np.random.default_rng(3)
    z = torch.from_numpy(rng.normal(size=(40, DIM)).astype(np.float32))
    actions = rng.uniform(-1, 1, size=(40, RAW)).astype(np.float32)
    w = Whitening(np.zeros(DIM), np.diag(rng.uniform(0.5, 2.0, size=DIM)))
    for horizon, window in ((1, 1), (1, 4), (2, 3)):
        detector = SurpriseDetector(horizon, window, w)
        expected = w.scores(window_sum(residual_series(model, z, actions, horizon=horizon), window))
        np.testing.assert_allclose(detector.series(model, z, actions), expected)
        need = detector.frames_needed(model)
        tail = detector.series(model, z[-need:], actions[-need:])
        assert tail[-1] == pytest.approx(expected[-1]) and np.isnan(tail[:-1]).all()
        assert np.isnan(detector.series(model, z[-need + 1 :], actions[-need + 1 :])).all()
    with pytest.raises(ValueError, match="horizon and window"):
        SurpriseDetector(1, 0)


def test_online_surprise_frame_by_frame_equals_the_series() -> None:
    """The live node's frame-by-frame surprise is the detector's series; a lost command blanks every window it is in."""
    model = LinearModel()
    rng = np.random.default_rng(4)
    z = rng.normal(size=(40, DIM)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(40, RAW)).astype(np.float32)
    w = Whitening(np.zeros(DIM), np.diag(rng.uniform(0.5, 2.0, size=DIM)))
    for horizon, window, whitening in ((1, 1, None), (1, 5, w), (2, 3, w)):
        detector = SurpriseDetector(horizon, window, whitening)
        std = model.latent_std
        expected = detector.series(model, torch.from_numpy(z), actions, std)
        online = OnlineSurprise(detector, model, std, RAW)
        got = [online.push(z[t], actions[t - 1] if t else None) for t in range(len(z))]
        np.testing.assert_allclose(got, expected, rtol=1e-6)  # NaN where the series has NaN, too

        lost = 20  # the command after frame 19 never arrived
        online = OnlineSurprise(detector, model, std, RAW)
        got = np.array([online.push(z[t], None if t in (0, lost) else actions[t - 1]) for t in range(len(z))])
        blank = np.isnan(got)
        first_blank = lost  # frame 20's prediction consumes the missing action, and so do the next horizon * frameskip
        last_blank = lost - 1 + horizon * FRAMESKIP + window - 1  # - 1 frames'; the windows that hold one of them go blank
        assert blank[first_blank : last_blank + 1].all()
        assert np.isfinite(got[last_blank + 1 :]).all()
        np.testing.assert_allclose(got[last_blank + 1 :], expected[last_blank + 1 :], rtol=1e-6)
    with pytest.raises(ValueError):
        OnlineSurprise(SurpriseDetector(1, 0), model, model.latent_std, RAW)


def test_at_rest_needs_every_command_its_window_consumed_to_be_zero() -> None:
    norms = np.array([1, 0, 0, 0, 0, 1, 0, 0, 0, np.nan, 0, 0, 0], dtype=float)
    actions = np.stack([norms, np.zeros_like(norms)], axis=1)
    mask = at_rest(actions, 3, 0.0)
    # frame t is at rest when actions t-3, t-2, t-1 are all zero; a NaN (unknown) command is not zero
    assert np.flatnonzero(mask).tolist() == [4, 5, 9]
    assert at_rest(actions[:3], 3, 0.0).tolist() == [False] * 3  # fewer than span actions before any frame
    assert at_rest(actions, 3, 1.0).sum() > mask.sum()  # a bound admits small commands


def test_rest_regime_scores_frames_at_rest_with_its_own_window_and_scale() -> None:
    """Frames whose predictions consumed only zero commands are scored by the rest regime (scaled onto the moving
    threshold); the rest in motion; the live frame-by-frame value is the same, and the history covers the rest span."""
    model = LinearModel()
    rng = np.random.default_rng(5)
    z = rng.normal(size=(60, DIM)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(60, RAW)).astype(np.float32)
    actions[20:40] = 0.0  # standing still
    moving_w = Whitening(np.zeros(DIM), np.diag(rng.uniform(0.5, 2.0, size=DIM)))
    rest_w = Whitening(np.full(DIM, 0.1), np.diag(rng.uniform(2.0, 4.0, size=DIM)))
    for horizon, window, rest_window in ((1, 5, 1), (1, 1, 3), (2, 2, 2)):
        rest = RestRegime(1e-6, rest_window, rest_w, 1.7)
        detector = SurpriseDetector(horizon, window, moving_w, rest)
        r = residual_series(model, torch.from_numpy(z), actions, horizon=horizon)
        span = horizon * FRAMESKIP + rest_window - 1
        resting = np.zeros(60, bool)
        resting[20 + span : 41] = True  # actions t - span .. t - 1 all inside the still stretch 20..39
        np.testing.assert_array_equal(detector.rest_frames(actions, FRAMESKIP), resting)
        expected = np.where(resting, 1.7 * rest_w.scores(window_sum(r, rest_window)), moving_w.scores(window_sum(r, window)))
        series = detector.series(model, torch.from_numpy(z), actions)
        np.testing.assert_allclose(series, expected)
        assert detector.frames_needed(model) == first_scored_frame(model, horizon) + max(window, rest_window)
        online = OnlineSurprise(detector, model, model.latent_std, RAW)
        got = [online.push(z[t], actions[t - 1] if t else None) for t in range(len(z))]
        np.testing.assert_allclose(got, series, rtol=1e-6)
    assert "at rest 2-frame, whitened x 1.7" in detector.describe()
    with pytest.raises(ValueError, match="rest regime"):
        RestRegime(-1.0)
    with pytest.raises(ValueError, match="rest regime"):
        RestRegime(0.0, 1, None, 0.0)


def test_rest_bias_is_the_models_own_residual_for_a_stay_at_the_place() -> None:
    """rest_bias_series(t): the model predicts from the latent ``horizon`` model steps back repeated over its whole
    context, with zero commands; subtracting it from a standing robot's residual leaves exactly nothing, while a drift
    at rest stays. The debiased regime scores that difference, batch and live alike, and refuses to score without it."""
    model = LinearModel()
    rng = np.random.default_rng(11)
    std = model.latent_std.numpy()
    for horizon in (1, 2):
        z = rng.normal(size=(40, DIM)).astype(np.float32)
        bias = rest_bias_series(model, torch.from_numpy(z), horizon=horizon)
        first = first_scored_frame(model, horizon)
        assert np.isnan(bias[:first]).all() and np.isfinite(bias[first:]).all()
        for t in (first, 25, 39):
            z0 = torch.from_numpy(z[t - horizon * FRAMESKIP]).reshape(1, 1, DIM).expand(1, CONTEXT, DIM)
            want = model.rollout(z0, torch.zeros(1, horizon, RAW * FRAMESKIP))[0, -1].numpy()
            np.testing.assert_allclose(bias[t], (want - z[t - horizon * FRAMESKIP]) / std, rtol=1e-5, atol=1e-6)
    still = np.tile(rng.normal(size=(1, DIM)).astype(np.float32), (40, 1))  # a robot standing still, commands zero
    actions = np.zeros((40, RAW), np.float32)
    r = residual_series(model, torch.from_numpy(still), actions)
    debiased = r - rest_bias_series(model, torch.from_numpy(still), None)
    assert np.abs(r[first_scored_frame(model):]).max() > 0.05  # the model's own error at this place
    np.testing.assert_allclose(debiased[first_scored_frame(model):], 0.0, atol=1e-6)  # removed

    drift = still.copy()
    drift[20:] += np.arange(20, dtype=np.float32)[:, None] * 0.05  # it moves by itself
    w = Whitening(np.zeros(DIM), np.eye(DIM) * 10.0)
    detector = SurpriseDetector(1, 5, w, RestRegime(1e-6, 1, w, 1.0, debias=True))
    series = detector.series(model, torch.from_numpy(drift), actions)
    assert detector.debiased and "debiased" in detector.describe()
    np.testing.assert_allclose(series[first_scored_frame(model):20], 0.0, atol=1e-4)
    assert (series[21:] > 0.5).all()  # from the first frame that moved
    online = OnlineSurprise(detector, model, model.latent_std, RAW)
    got = [online.push(drift[t], actions[t - 1] if t else None) for t in range(len(drift))]
    np.testing.assert_allclose(got, series, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="rest_residuals"):
        detector.score(r, actions, FRAMESKIP, drift)


def test_context_features_are_what_each_windowed_prediction_started_from() -> None:
    """Frame t: the latent at t - horizon * frameskip, the commands its window consumed (actions t - span .. t - 1) and
    the newest prediction's own (the last horizon * frameskip); NaN until they exist or where a command is missing."""
    z = np.arange(20, dtype=float)[:, None] * np.ones((1, 2))
    actions = np.ones((20, 1))
    actions[12] = np.nan
    f = context_features(z, actions, frameskip=3, horizon=1, window=2)  # span 3 + 2 - 1 = 4 actions
    assert f.shape == (20, 2 + 1 + 1)
    assert np.isnan(f[:4]).any(axis=1).all() and np.isfinite(f[4]).all()
    np.testing.assert_array_equal(f[4], [1.0, 1.0, 4.0, 3.0])
    np.testing.assert_array_equal(f[10, :2], [7.0, 7.0])
    assert np.isnan(f[13:17, 2]).all() and np.isfinite(f[17]).all()  # windows holding the missing action 12


def _net_scale(rng: np.random.Generator, features: int, gain: float = 1.0) -> ContextScale:
    layers = ((rng.normal(size=(6, features)), rng.normal(size=6)), (rng.normal(size=(6, 6)), rng.normal(size=6)),
              (0.3 * rng.normal(size=(1, 6)), np.zeros(1)))
    return ContextScale(rng.normal(size=features), rng.uniform(0.5, 2.0, size=features), layers, gain)


def test_context_scale_is_the_mlp_it_was_fitted_as_and_refuses_broken_layers() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4000, 3))
    noise = np.exp(1.5 * np.tanh(x[:, 0]))  # normal errors large where feature 0 is high (a wall ahead), small elsewhere
    scores = noise * np.exp(0.3 * rng.normal(size=4000))
    scale = ContextScale.fit(x, scores)
    x = rng.normal(size=(300, 3))  # fresh contexts
    expected = scale.expected(x)
    assert np.corrcoef(np.log(expected), 1.5 * np.tanh(x[:, 0]))[0, 1] > 0.95  # it learnt where the model is often wrong
    assert np.isnan(scale.expected(np.full((1, 3), np.nan))).all()
    net = torch.nn.Sequential(*[m for w, b in scale.layers for m in (torch.nn.Linear(w.shape[1], w.shape[0]), torch.nn.SiLU())][:-1]).double()
    with torch.no_grad():
        for m, (w, b) in zip([m for m in net if isinstance(m, torch.nn.Linear)], scale.layers, strict=True):
            m.weight.copy_(torch.from_numpy(w)), m.bias.copy_(torch.from_numpy(b))
        reference = torch.exp(net(torch.from_numpy((x - scale.mean) / scale.std)))[:, 0].numpy()
    np.testing.assert_allclose(expected, reference, rtol=1e-6)
    good = _net_scale(rng, 3)
    for broken in (dict(gain=0.0), dict(std=np.zeros(3)), dict(layers=good.layers[:2]), dict(layers=((np.ones((6, 4)), np.ones(6)),)),
                   dict(mean=np.full(3, np.nan)), dict(layers=())):
        with pytest.raises(ValueError, match="context scale needs"):
            ContextScale(**{**dict(mean=good.mean, std=good.std, layers=good.layers, gain=1.0), **broken})
    with pytest.raises(ValueError, match="at least"):
        ContextScale.fit(x[:5], scores[:5])


def test_context_scaled_detector_scores_the_larger_of_plain_and_scaled_and_runs_live() -> None:
    """Moving frames: max(plain, gain * plain / expected); rest frames untouched; the live node gets the same values
    and scoring without latents is refused."""
    model = LinearModel()
    rng = np.random.default_rng(8)
    z = rng.normal(size=(60, DIM)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(60, RAW)).astype(np.float32)
    actions[30:45] = 0.0
    w = Whitening(np.zeros(DIM), np.diag(rng.uniform(0.5, 2.0, size=DIM)))
    for horizon, window in ((1, 5), (2, 1)):
        scale = _net_scale(rng, DIM + 2 * RAW, gain=1.3)
        rest = RestRegime(1e-6, 1, w, 0.9)
        detector = SurpriseDetector(horizon, window, w, rest, scale)
        r = residual_series(model, torch.from_numpy(z), actions, horizon=horizon)
        plain = w.scores(window_sum(r, window))
        expected_scale = scale.expected(context_features(z, actions, FRAMESKIP, horizon, window))
        moving = np.fmax(plain, 1.3 * plain / expected_scale)
        want = np.where(detector.rest_frames(actions, FRAMESKIP), 0.9 * w.scores(r), moving)
        series = detector.series(model, torch.from_numpy(z), actions)
        np.testing.assert_allclose(series, want)
        assert (series[np.isfinite(series)] >= np.minimum(plain, 0.9 * w.scores(r))[np.isfinite(series)] - 1e-12).all()
        online = OnlineSurprise(detector, model, model.latent_std, RAW)
        got = [online.push(z[t], actions[t - 1] if t else None) for t in range(len(z))]
        np.testing.assert_allclose(got, series, rtol=1e-6)
        with pytest.raises(ValueError, match="needs the episode's latents"):
            detector.score(r, actions, FRAMESKIP)
    assert "context-scaled" in detector.describe()


def test_thresholds_rates_and_auroc() -> None:
    scores = np.arange(1000, dtype=float)
    thr = threshold_for_rate(scores, 0.01)
    assert exceed_rate(scores, thr) <= 0.01 and exceed_rate(scores, thr - 1) > 0.01
    assert threshold_for_rate(np.array([np.nan, 1.0, 2.0]), 0.0) == 2.0
    with pytest.raises(ValueError, match="no finite"):
        threshold_for_rate(np.array([np.nan]), 0.01)
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0]), np.array([1.0])) == 0.5
    assert auroc(np.array([0.0, 5.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(0.5)


def _calibration(**overrides) -> SurpriseCalibration:
    base = dict(threshold=0.8, horizon=1, target_false_alarm_rate=5e-4, false_alarm_rate=2e-4, calibration_frames=100,
                validation_frames=100, model_id="m-1", checksums={"model.pt": "abc"}, command="python bench/calibrate_surprise.py")
    return SurpriseCalibration(**{**base, **overrides})


def test_calibration_round_trip_and_validation(tmp_path: Path) -> None:
    path = write_calibration(_calibration(), tmp_path / "cal.json")
    manifest = {"model_id": "m-1", "checksums": {"model.pt": "abc"}}
    assert read_calibration(path, manifest).threshold == 0.8
    with pytest.raises(ValueError, match="recalibrate"):
        read_calibration(path, {"model_id": "m-2", "checksums": {"model.pt": "abc"}})
    with pytest.raises(ValueError, match=r"files changed: model\.pt"):
        read_calibration(path, {"model_id": "m-1", "checksums": {"model.pt": "def"}})
    with pytest.raises(FileNotFoundError, match="calibrate_surprise"):
        read_calibration(tmp_path / "missing.json")
    bad = write_calibration(_calibration(threshold=-1.0), tmp_path / "bad.json")
    with pytest.raises(ValueError, match="threshold"):
        read_calibration(bad)
    (tmp_path / "junk.json").write_text(json.dumps({"threshold": 1}))
    with pytest.raises(ValueError, match="not a surprise calibration"):
        read_calibration(tmp_path / "junk.json")
    # a whitening travels with its threshold; a broken one, or one for another latent size, is refused
    assert read_calibration(path, manifest).whitener() is None  # a file without one: plain RMS surprise
    whitened = write_calibration(_calibration(residual_mean=[0.1, 0.2], whitening=[[2.0, 0.0], [1.0, 3.0]]), tmp_path / "w.json")
    w = read_calibration(whitened, {**manifest, "latent_shape": [2]}).whitener()
    assert w is not None and w.matrix.shape == (2, 2) and w.mean.tolist() == [0.1, 0.2]
    with pytest.raises(ValueError, match="for 2 latent dimensions, the bundle has 8"):
        read_calibration(whitened, {**manifest, "latent_shape": [8]})
    for bad_w in ([[1.0, 0.0]], [[float("nan"), 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0]]):
        broken = write_calibration(_calibration(residual_mean=[0.1, 0.2], whitening=bad_w), tmp_path / "broken.json")
        with pytest.raises(ValueError, match="whitening must be"):
            read_calibration(broken)
        broken = write_calibration(_calibration(rest_residual_mean=[0.1, 0.2], rest_whitening=bad_w, rest_threshold=1.0), tmp_path / "b.json")
        with pytest.raises(ValueError, match="rest_whitening must be"):
            read_calibration(broken)
    # a rest regime: its scale maps its own calibrated tail onto the threshold; without one every frame is scored alike
    assert read_calibration(whitened).detector().rest is None
    rest = dict(residual_mean=[0.0, 0.0], whitening=[[1.0, 0.0], [0.0, 1.0]], rest_residual_mean=[0.0, 0.0],
                rest_whitening=[[3.0, 0.0], [0.0, 3.0]], rest_command_below=0.05, rest_window=2, rest_threshold=0.4)
    regime = read_calibration(write_calibration(_calibration(**rest), tmp_path / "r.json"), {**manifest, "latent_shape": [2]}).detector().rest
    assert regime is not None and (regime.command_below, regime.window, regime.scale) == (0.05, 2, pytest.approx(2.0))
    for field, value in (("rest_threshold", 0.0), ("rest_window", 0), ("rest_window", 1.5), ("rest_command_below", -1.0),
                         ("rest_command_below", "low")):
        broken = write_calibration(_calibration(**{**rest, field: value}), tmp_path / "b.json")
        with pytest.raises(ValueError, match="rest regime needs"):
            read_calibration(broken)
    assert not regime.debias  # a file from before debiasing keeps its plain rest regime
    debiased = read_calibration(write_calibration(_calibration(**rest, rest_debias=True, rest_noise=3 / 255), tmp_path / "d.json"))
    assert debiased.detector().rest.debias and debiased.detector().debiased
    for field, value in (("rest_debias", "yes"), ("rest_debias", 1), ("rest_noise", -0.1), ("rest_noise", float("nan")),
                         ("rest_noise", True)):
        with pytest.raises(ValueError, match=field):
            read_calibration(write_calibration(_calibration(**{**rest, field: value}), tmp_path / "b.json"))
    with pytest.raises(ValueError, match="rest_whitening is for 2 latent dimensions"):
        read_calibration(write_calibration(_calibration(**{**rest, "whitening": []}), tmp_path / "r.json"), {**manifest, "latent_shape": [8]})
    # a context scale travels with its threshold; broken layers or one for another latent size are refused
    good = _net_scale(np.random.default_rng(9), 2 + 2 * RAW, gain=1.2)
    context = dict(context_mean=good.mean.tolist(), context_std=good.std.tolist(), context_gain=1.2,
                   context_layers=[{"weight": w.tolist(), "bias": b.tolist()} for w, b in good.layers])
    loaded = read_calibration(write_calibration(_calibration(**rest, **context), tmp_path / "c.json"), {**manifest, "latent_shape": [2]})
    scale = loaded.detector().context
    assert scale is not None and scale.gain == 1.2
    x = np.random.default_rng(1).normal(size=(4, 2 + 2 * RAW))
    np.testing.assert_allclose(scale.expected(x), good.expected(x))
    assert read_calibration(whitened).detector().context is None
    for field, value in (("context_gain", 0.0), ("context_gain", True), ("context_std", [0.0] * 6),
                         ("context_layers", [{"weight": [[1.0]], "bias": [0.0]}]), ("context_layers", [{"weights": []}])):
        broken = write_calibration(_calibration(**rest, **{**context, field: value}), tmp_path / "b.json")
        with pytest.raises(ValueError, match="context scale needs"):
            read_calibration(broken)
    with pytest.raises(ValueError, match="reads 6 features"):
        read_calibration(write_calibration(_calibration(**rest, **context), tmp_path / "c.json"), {**manifest, "latent_shape": [3]})


def test_offline_eval_marks_frames_above_the_threshold() -> None:
    from jepa_world_model.offline_eval import EpisodeResult, OfflineEvalReport, mark_surprising

    eps = [EpisodeResult("a", 5, 0, [], [None, 0.1, 0.9, 0.3, 1.2], [0.0] * 5),
           EpisodeResult("b", 3, 0, [], [None, 0.2, 0.1], [0.0] * 3)]
    report = OfflineEvalReport(1, 1, 1, "model", [], eps, {}, {})
    mark_surprising(report, 0.5, "test")
    assert eps[0].surprising_frames == [2, 4] and eps[1].surprising_frames == []
    assert report.surprise_alarm["surprising_frames"] == 2 and report.surprise_alarm["rate"] == pytest.approx(2 / 6)
    assert report.to_dict()["episodes"][0]["surprising_frames"] == [2, 4]
    mark_surprising(report, None, "no calibration")
    assert report.surprise_alarm == {"threshold": None, "source": "no calibration"}


def test_alarm_setting_pairs_the_threshold_with_its_whitening(tmp_path: Path) -> None:
    from jepa_world_model.surprise import alarm_setting

    manifest = {"model_id": "m-1", "checksums": {"model.pt": "abc"}, "latent_shape": [2]}
    path = write_calibration(_calibration(residual_mean=[0.0, 0.0], whitening=[[2.0, 0.0], [0.0, 2.0]]), tmp_path / "c.json")
    calibrated = alarm_setting(path, manifest, None, "--surprise-threshold")
    assert calibrated.threshold == 0.8 and calibrated.detector.whitening is not None and not calibrated.problem
    assert calibrated.source.startswith("c.json (1-step, whitened; false alarms")
    assert calibrated.detector.horizon == 1 and calibrated.detector.window == 1
    overridden = alarm_setting(path, manifest, 3.0, "--surprise-threshold")  # the whitening stays: it defines the unit
    assert (overridden.threshold, overridden.source) == (3.0, "--surprise-threshold") and overridden.detector.whitening is not None
    missing = alarm_setting(tmp_path / "none.json", manifest, None, "x")
    assert missing.threshold is None and missing.detector.whitening is None and "not found" in missing.problem
    windowed = write_calibration(_calibration(horizon=2, window=3), tmp_path / "h2w3.json")
    detector = alarm_setting(windowed, manifest, None, "surprise_threshold").detector
    assert (detector.horizon, detector.window, detector.whitening) == (2, 3, None)  # the calibration's detector, any horizon
    bad = write_calibration(_calibration(window=0), tmp_path / "w0.json")
    refused = alarm_setting(bad, manifest, 1.5, "surprise_threshold")
    assert refused.threshold == 1.5 and refused.detector == SurpriseDetector() and "window" in refused.problem
