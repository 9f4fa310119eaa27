"""Training behaviour on the toy world: loss goes down, resume == uninterrupted, collapse stops training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jepa_common.episodes import EpisodeSet
from jepa_world_model import train as train_mod
from jepa_world_model.metrics import CollapseDetector, RepresentationCollapseError, effective_rank, ridge_probe_r2
from jepa_world_model.testing import TOY_META, toy_config, toy_episodes
from jepa_world_model.train import Trainer


def test_effective_rank_and_probe_on_known_data() -> None:
    g = torch.Generator().manual_seed(0)
    assert effective_rank(torch.randn(500, 1, generator=g) * torch.ones(1, 8)) == pytest.approx(1.0, abs=1e-6)
    assert effective_rank(torch.randn(2000, 8, generator=g)) > 7.0
    assert effective_rank(torch.zeros(10, 4)) == 0.0
    z = torch.randn(400, 6, generator=g)
    y = z[:, :2] @ torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    assert ridge_probe_r2(z[:300], y[:300], z[300:], y[300:]) > 0.99
    assert ridge_probe_r2(z[:300], torch.randn(300, 2, generator=g), z[300:], torch.randn(100, 2, generator=g)) < 0.2


def test_collapse_detector_needs_patience() -> None:
    det = CollapseDetector(min_effective_rank=1.5, min_std=1e-3, patience=2)
    det.check(1.0, 1.0)
    det.check(5.0, 1.0)  # a good check resets the count
    det.check(5.0, 0.0)
    with pytest.raises(RepresentationCollapseError, match="effective rank"):
        det.check(1.0, 1.0)


def test_loss_decreases_on_tiny_dataset(tmp_path, toy_data: EpisodeSet) -> None:
    cfg = toy_config(**{"train.epochs": 3, "train.steps_per_epoch": 12, "decoder.enabled": False})
    Trainer(cfg, tmp_path / "run", toy_data, TOY_META).fit()
    hist = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert hist[-1]["train_loss"] < 0.7 * hist[0]["train_loss"]
    assert hist[-1]["val_pred_error_1"] < hist[0]["val_pred_error_1"]
    for key in ("effective_rank", "latent_std_mean", "probe_r2", "val_pred_error_2", "val_level1_pred_error_1"):
        assert np.isfinite(hist[-1][key])
    assert (tmp_path / "run" / "final.pt").is_file() and (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    assert any((tmp_path / "run" / "tb").iterdir())


def test_sigreg_anti_collapse_trains_without_vicreg_terms(tmp_path, toy_data: EpisodeSet) -> None:
    cfg = toy_config(**{"train.epochs": 2, "train.steps_per_epoch": 12, "decoder.enabled": False,
                        "train.anti_collapse": "sigreg", "train.sigreg_directions": 64})
    Trainer(cfg, tmp_path / "run", toy_data, TOY_META).fit()
    hist = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert hist[-1]["effective_rank"] > 1.5 and np.isfinite(hist[-1]["val_pred_error_1"])
    assert "train_sigreg" in hist[-1] and "train_variance" not in hist[-1]


def test_resume_equals_uninterrupted(tmp_path, toy_data: EpisodeSet) -> None:
    cfg2 = toy_config(**{"train.epochs": 2})
    Trainer(cfg2, tmp_path / "full", toy_data, TOY_META).fit()
    Trainer(cfg2, tmp_path / "split", toy_data, TOY_META).fit(stop_after=1)  # "interrupted" after epoch 1
    assert not (tmp_path / "split" / "final.pt").exists()
    Trainer(cfg2, tmp_path / "split", toy_data, TOY_META).fit(resume=True)
    full = torch.load(tmp_path / "full" / "final.pt", weights_only=True)
    split = torch.load(tmp_path / "split" / "final.pt", weights_only=True)
    assert full["model"].keys() == split["model"].keys()
    for key, value in full["model"].items():
        assert torch.equal(value, split["model"][key]), key

    def losses(run: str) -> list[float]:
        return [json.loads(line)["train_loss"] for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    assert losses("full") == losses("split")
    with pytest.raises(ValueError, match="config differs"):
        Trainer(toy_config(**{"train.epochs": 3, "train.lr": 0.5}), tmp_path / "split", toy_data, TOY_META).fit(resume=True)


def test_same_seed_same_result(tmp_path, toy_data: EpisodeSet) -> None:
    cfg = toy_config(**{"train.epochs": 1, "decoder.enabled": False})
    a = Trainer(cfg, tmp_path / "a", toy_data, TOY_META).fit()
    b = Trainer(cfg, tmp_path / "b", toy_data, TOY_META).fit()
    assert a["train_loss"] == b["train_loss"] and a["val_pred_error_1"] == b["val_pred_error_1"]


def test_collapsed_toy_stops_with_clear_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    blank = toy_episodes(8, 30, seed=1)
    for ep in blank.episodes:
        ep.frames[:] = 0  # nothing to see: every latent is the same point
    cfg = toy_config(**{"train.epochs": 4, "train.steps_per_epoch": 2, "decoder.enabled": False})
    with pytest.raises(RepresentationCollapseError, match="collapsed"):
        Trainer(cfg, tmp_path / "run", blank, TOY_META).fit()
    # the CLI turns it into exit code 3 with the message on stderr
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(json.dumps(cfg.model_dump(mode="json")))
    monkeypatch.setattr(train_mod, "load_episodes", lambda data_cfg: (blank, TOY_META))
    assert train_mod.main(["--config", str(cfg_file), "--out", str(tmp_path / "cli")]) == train_mod.EXIT_COLLAPSE


def test_windows_too_short_for_batch_is_clear(tmp_path) -> None:
    few = toy_episodes(2, 6, seed=2)
    with pytest.raises(ValueError, match="training windows"):
        Trainer(toy_config(), tmp_path / "run", few, TOY_META)


@pytest.mark.slow
def test_ddp_under_torchrun_on_cpu(tmp_path) -> None:
    """The same module runs as 2 gloo processes under torchrun; rank 0 alone writes the run directory."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    cfg = toy_config(**{"train.epochs": 2, "train.steps_per_epoch": 2, "train.batch_size": 8, "decoder.enabled": False})
    raw = cfg.model_dump(mode="json")
    raw["data"] = {"source": "sim", "world": "two_rooms", "episodes": 8, "steps": 20}
    raw["model"]["encoder"]["channels"] = [8, 8, 8]
    cfg_file = tmp_path / "ddp.yaml"
    cfg_file.write_text(json.dumps(raw))
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        str(torchrun),
        "--nproc_per_node",
        "2",
        "-m",
        "jepa_world_model.train",
        "--config",
        str(cfg_file),
        "--out",
        str(tmp_path / "run"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert (tmp_path / "run" / "final.pt").is_file()


def test_proprio_fusing_encoder_trains_exports_and_needs_proprio(tmp_path, toy_data: EpisodeSet) -> None:
    """encoder.use_proprio: validation, probe, BatchNorm recalibration and latent statistics all pass proprio."""
    from jepa_world_model.bundle import export_bundle, load_bundle

    cfg = toy_config(**{"train.epochs": 1, "train.steps_per_epoch": 4, "decoder.enabled": False,
                        "model.encoder.use_proprio": True})
    Trainer(cfg, tmp_path / "run", toy_data, TOY_META).fit()
    hist = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(hist["probe_r2"]) and np.isfinite(hist["val_pred_error_1"])
    export_bundle(tmp_path / "run", tmp_path / "model")  # raises if ONNX and torch disagree
    ep = toy_data.episodes[0]
    frame, pro = ep.frames[:1], ep.proprio[:1].astype(np.float32)
    for backend in ("torch", "onnx"):
        model = load_bundle(tmp_path / "model", backend=backend)
        assert model.uses_proprio and model.proprio_dim == pro.shape[1]
        z = model.encode(frame, pro)
        assert z.shape == (1, *model.latent_shape) and torch.isfinite(z).all()
        with pytest.raises(ValueError, match="fuses proprioception"):
            model.encode(frame)


def test_layout_part_is_carried_by_the_predictors_and_left_out_of_distances(tmp_path, toy_data: EpisodeSet) -> None:
    """encoder.layout_dim: the last dimensions come from their own head, every level's predictor carries them
    unchanged whatever the action, anti-collapse and metrics see the agent part, and the exported bundle's
    latent_std makes normalised distances ignore the layout (torch and ONNX alike)."""
    from jepa_world_model.bundle import export_bundle, load_bundle
    from jepa_world_model.models.world_model import LAYOUT_STD

    cfg = toy_config(**{"train.epochs": 1, "train.steps_per_epoch": 4, "decoder.enabled": False,
                        "model.encoder.latent_dim": 10, "model.encoder.layout_dim": 3,
                        "train.layout_decorrelation_weight": 1.0, "train.temporal_var_weight": 1.0,
                        "train.layout_var_weight": 1.0})
    trainer = Trainer(cfg, tmp_path / "run", toy_data, TOY_META)
    assert trainer.model.layout_dim == 3 and trainer.model.latent_shape == (10,)
    trainer.fit()
    hist = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert len(hist["latent_std_per_dim"]) == 7 and np.isfinite(hist["probe_r2"])
    assert "train_layout_decorrelation" in hist and "train_layout_variance" in hist
    export_bundle(tmp_path / "run", tmp_path / "model")  # raises if ONNX and torch disagree
    frames = toy_data.episodes[0].frames[:4]
    g = torch.Generator().manual_seed(0)
    for backend in ("torch", "onnx"):
        model = load_bundle(tmp_path / "model", backend=backend)
        std = np.asarray(model.latent_std).reshape(-1)
        assert np.all(std[-3:] == LAYOUT_STD) and np.all(std[:-3] < 100)
        z = torch.as_tensor(np.asarray(model.encode(frames)))
        for level in range(len(model.levels)):
            action = torch.randn(4, model.levels[level].action_dim, generator=g)
            nxt = torch.as_tensor(np.asarray(model.predict(z.unsqueeze(1), action, level=level)))
            assert torch.equal(nxt[:, -3:], z[:, -3:])  # carried bit for bit
            assert not torch.allclose(nxt[:, :-3], z[:, :-3])


def test_layout_bound_keeps_the_layout_part_in_range_and_changes_nothing_else() -> None:
    """encoder.layout_bound: the layout part is bound * tanh(head / bound), within +-bound whatever the head
    says; the agent part is the same as without the bound; 0 (the default) leaves the head's output as it is."""
    from jepa_world_model.config import EncoderConfig
    from jepa_world_model.models.encoders import CNNEncoder

    torch.manual_seed(0)
    kw = {"latent_dim": 6, "layout_dim": 2, "channels": [4, 4]}
    free, bounded = CNNEncoder(EncoderConfig(**kw), 16), CNNEncoder(EncoderConfig(**kw, layout_bound=3.0), 16)
    bounded.load_state_dict(free.state_dict())
    with torch.no_grad():
        free.layout_head[-1].bias.fill_(200.0)  # a head far out of range, as runs G / L had for some doors
        bounded.layout_head[-1].bias.fill_(200.0)
    free.eval(), bounded.eval()
    images = torch.rand(5, 16, 16, 3)
    a, b = free(images), bounded(images)
    assert (a[:, -2:] > 100).all() and (b[:, -2:].abs() <= 3.0).all()
    assert torch.equal(a[:, :-2], b[:, :-2])
    assert torch.allclose(b[:, -2:], 3.0 * torch.tanh(a[:, -2:] / 3.0))
    assert EncoderConfig(**kw).layout_bound == 0.0
    with pytest.raises(ValueError, match="layout_bound"):
        EncoderConfig(**kw, layout_bound=-1.0)


def test_layout_part_config_is_validated() -> None:
    from jepa_world_model.config import EncoderConfig

    with pytest.raises(ValueError, match=r"layout_dim needs encoder\.type 'cnn'"):
        EncoderConfig(type="vit", layout_dim=2)
    with pytest.raises(ValueError, match="must leave agent dimensions"):
        EncoderConfig(latent_dim=4, layout_dim=4)
    with pytest.raises(ValueError, match=r"layout_dim needs predictor\.type 'mlp'"):
        from jepa_world_model.models.world_model import DataDims, JEPAWorldModel

        JEPAWorldModel(toy_config(**{"model.encoder.layout_dim": 2, "model.predictor.type": "transformer",
                                     "model.predictor.heads": 2}), DataDims(16, 2, 0))


def test_cross_correlation_of_independent_and_identical_columns() -> None:
    from jepa_world_model.models.world_model import cross_correlation

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4000, 3, generator=g), torch.randn(4000, 2, generator=g)
    assert cross_correlation(a, b) < 1e-3
    assert cross_correlation(a, torch.cat([2 * a[:, :1] + 1, a[:, 1:2]], dim=1)) == pytest.approx(2 / 6, abs=1e-3)


def test_contact_oversampling_draws_batches_from_the_wall_windows_and_resumes_identically(tmp_path, toy_data: EpisodeSet) -> None:
    cfg = toy_config(**{"train.epochs": 2, "train.steps_per_epoch": 3, "decoder.enabled": False, "train.contact_oversample": 0.5})
    full = Trainer(cfg, tmp_path / "full", toy_data, TOY_META)
    n_contact, n_windows = full.meta["contact_windows"]
    assert 0 < n_contact < n_windows == len(full.train_set)  # the toy world clips at its borders: some windows hit them
    full.fit()
    Trainer(cfg, tmp_path / "split", toy_data, TOY_META).fit(stop_after=1)
    Trainer(cfg, tmp_path / "split", toy_data, TOY_META).fit(resume=True)
    a = torch.load(tmp_path / "full" / "final.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "final.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.load(tmp_path / "full" / "final.pt", weights_only=True)["meta"]["contact_windows"] == [n_contact, n_windows]


def test_spatial_softmax_finds_a_peak_and_keypoint_encoders_train_and_export(tmp_path, toy_data: EpisodeSet) -> None:
    """encoder.keypoints: each keypoint is the expected (x, y) in [-1, 1] of its channel's softmax; the agent part
    is linear in the keypoints, the layout part comes from the full conv stack as before (stages after the keypoint
    stage are built only for it); ONNX agrees with torch."""
    from jepa_world_model.bundle import export_bundle, load_bundle
    from jepa_world_model.config import EncoderConfig
    from jepa_world_model.models.encoders import CNNEncoder, SpatialSoftmax

    soft = SpatialSoftmax(5, 9)
    maps = torch.zeros(2, 1, 5, 9)
    maps[0, 0, 0, 8] = 50.0  # top right
    maps[1, 0, 2, 4] = 50.0  # centre
    assert torch.allclose(soft(maps), torch.tensor([[1.0, -1.0], [0.0, 0.0]]), atol=1e-4)
    assert torch.allclose(soft(torch.zeros(1, 3, 5, 9)), torch.zeros(1, 6), atol=1e-6)  # flat map: the centre

    enc = CNNEncoder(EncoderConfig(latent_dim=6, layout_dim=2, channels=[4, 4, 4], keypoints=3, keypoint_stage=1), 16)
    assert isinstance(enc.head, torch.nn.Linear) and enc.head.in_features == 6 and enc(torch.zeros(2, 16, 16, 3)).shape == (2, 6)
    with pytest.raises(ValueError, match="keypoint_stage"):
        EncoderConfig(channels=[4, 4], keypoints=3, keypoint_stage=3)
    with pytest.raises(ValueError, match="keypoints needs"):
        EncoderConfig(type="vit", keypoints=3)
    with pytest.raises(ValueError, match="keypoints needs"):  # proprio fused into a keypoint head: not built
        EncoderConfig(keypoints=3, use_proprio=True)
    # keypoints beside proprio's own dimensions (Push-T): image part from the keypoints, then the proprio part
    kp_proprio = CNNEncoder(EncoderConfig(latent_dim=8, channels=[4, 4], keypoints=3, keypoint_stage=2, use_proprio=True,
                                          proprio_latent_dim=2), 16, proprio_dim=4)
    images, proprio = torch.rand(2, 16, 16, 3), torch.rand(2, 4)
    z = kp_proprio(images, proprio)
    assert z.shape == (2, 8) and kp_proprio.head.out_features == 6
    assert torch.equal(z[:, 6:], kp_proprio.proprio_head(proprio))  # no proprio_scale: the proprio part as given
    assert not torch.equal(kp_proprio(images, proprio + 1)[:, 6:], z[:, 6:])
    assert torch.equal(kp_proprio(images, proprio + 1)[:, :6], z[:, :6])  # the keypoints see only the image
    with pytest.raises(ValueError, match="pass proprio"):
        kp_proprio(images)
    agent_only = CNNEncoder(EncoderConfig(latent_dim=4, channels=[4, 4, 4], keypoints=3, keypoint_stage=1), 16)
    assert len(agent_only.convs) == 2 and isinstance(agent_only.feature_norm, torch.nn.Identity)  # no unused stage
    assert agent_only(torch.zeros(2, 16, 16, 3)).shape == (2, 4)

    cfg = toy_config(**{"train.epochs": 1, "train.steps_per_epoch": 4, "decoder.enabled": False,
                        "model.encoder.latent_dim": 5, "model.encoder.layout_dim": 2, "model.encoder.keypoints": 4,
                        "model.encoder.keypoint_stage": 1})
    Trainer(cfg, tmp_path / "run", toy_data, TOY_META).fit()
    export_bundle(tmp_path / "run", tmp_path / "model")  # raises if ONNX and torch disagree
    frames = toy_data.episodes[0].frames[:4]
    z_torch = np.asarray(load_bundle(tmp_path / "model", backend="torch").encode(frames))
    z_onnx = np.asarray(load_bundle(tmp_path / "model", backend="onnx").encode(frames))
    assert z_torch.shape == (4, 5) and np.allclose(z_torch, z_onnx, atol=1e-4)

