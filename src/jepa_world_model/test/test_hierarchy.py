"""The coarse level learns a k-step jump: on the toy world with latent = position (a frozen ONNX centroid
encoder, i.e. "bring your own encoder") and additive actions, the level-1 predictor fed the learned
macro-action of k level-0 actions must land where the dot really is k steps later."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_world_model.bundle import export_bundle, load_bundle
from jepa_world_model.data.windows import WindowDataset, split_episodes
from jepa_world_model.testing import TOY_META, export_centroid_onnx, toy_config, toy_episodes
from jepa_world_model.train import Trainer

STRIDE = 4


@pytest.mark.slow
def test_high_level_predicts_k_step_position(tmp_path) -> None:
    onnx_file = export_centroid_onnx(tmp_path / "centroid.onnx")
    eps = toy_episodes(40, 40, seed=3, action_scale=0.4)
    cfg = toy_config(
        **{
            "model.frameskip": 1,
            "model.encoder": {
                "type": "onnx",
                "onnx_path": str(onnx_file),
                "onnx_input_dtype": "uint8",
                "onnx_input_layout": "NHWC",
            },
            "model.predictor": {"type": "mlp", "hidden": 64, "layers": 2},
            "model.levels": [{"stride": 1}, {"stride": STRIDE, "macro_dim": 3, "rollout_steps": 1}],
            "train.epochs": 20,
            "train.steps_per_epoch": 0,
            "train.batch_size": 64,
            "train.lr": 0.003,
            "train.horizon": 1,
            "decoder.enabled": False,
        }
    )
    trainer = Trainer(cfg, tmp_path / "run", eps, TOY_META)
    record = trainer.fit()
    assert record["val_level1_pred_error_1"] < 0.05  # normalised MSE: 1.0 would be "predict the mean position"

    export_bundle(tmp_path / "run", tmp_path / "model")
    _, val = split_episodes(eps, cfg.data.val_fraction, cfg.data.seed)
    windows = WindowDataset(val, context=1, horizon=STRIDE, frameskip=1)
    idx = np.linspace(0, len(windows) - 1, 200).round().astype(int)
    frames = torch.stack([windows[int(i)]["frames"] for i in idx])
    actions = torch.stack([windows[int(i)]["actions"] for i in idx])  # (N, STRIDE, 2)
    true_pos = torch.stack([windows[int(i)]["state"] for i in idx])  # (N, STRIDE + 1, 2)
    for backend in ("torch", "onnx"):
        model = load_bundle(tmp_path / "model", backend=backend)
        assert [lv.stride for lv in model.levels] == [1, STRIDE]
        z0, z_k = model.encode(frames[:, 0]), model.encode(frames[:, STRIDE])
        assert torch.allclose(z0, true_pos[:, 0], atol=0.25)  # the frozen encoder's latent is the position
        macro = model.encode_macro(actions, level=1)
        assert macro.shape == (len(idx), 3) and macro.abs().max() <= 1.0
        jump = model.predict(z0[:, None], macro, level=1)
        err = (jump - z_k).norm(dim=1).mean()
        stay = (z0 - z_k).norm(dim=1).mean()  # error of "nothing moves"
        assert err < 0.3, f"{backend}: k-step jump error {err:.3f} px"
        assert err < 0.2 * stay, f"{backend}: jump error {err:.3f} not much better than standing still {stay:.3f}"
