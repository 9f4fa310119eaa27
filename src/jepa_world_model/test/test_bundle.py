"""Export -> load round trip with both backends, and every way a bundle can be bad."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from jepa_common.episodes import EpisodeSet
from jepa_world_model.bundle import SCHEMA_VERSION, bundle_main, export_bundle, export_main, load_bundle
from jepa_world_model.protocol import WorldModel
from jepa_world_model.testing import TOY_META, TOY_SIZE, render_dots, toy_config
from jepa_world_model.train import Trainer


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, toy_data: EpisodeSet) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    Trainer(toy_config(**{"train.epochs": 1}), root / "run", toy_data, TOY_META).fit()
    assert export_main(["--run", str(root / "run"), "--out", str(root / "model")]) == 0
    return root / "model"


@pytest.fixture
def copy_of(bundle_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(bundle_dir, dst)
    return dst


def _images(n: int, seed: int = 0) -> np.ndarray:
    return render_dots(np.random.default_rng(seed).uniform(3, 12, (n, 2)).astype(np.float32))


def test_manifest_contents(bundle_dir: Path) -> None:
    m = json.loads((bundle_dir / "manifest.json").read_text())
    assert m["schema_version"] == SCHEMA_VERSION and m["frameskip"] == 2 and m["context"] == 1
    assert m["input"]["image_size"] == [TOY_SIZE, TOY_SIZE] and m["input"]["dtype"] == "uint8"
    assert m["latent_shape"] == [8] and len(m["latent_mean"]) == 8 and all(s > 0 for s in m["latent_std"])
    assert [lv["stride"] for lv in m["levels"]] == [1, 2]
    assert m["levels"][0]["action_dim"] == 4 and m["levels"][0]["action_high"] == [0.6] * 4
    assert m["levels"][1]["action_dim"] == 2 and m["levels"][1]["action_low"] == [-1.0, -1.0]
    assert m["has_decoder"] and set(m["checksums"]) >= {
        "encoder.onnx",
        "predictor.onnx",
        "predictor_level1.onnx",
        "model.pt",
        "decoder.onnx",
    }
    assert m["provenance"]["world"] == "toy" and "val_pred_error_1" in m["metrics"]


def test_export_can_add_floor_centring_without_changing_black_floor_latents(bundle_dir: Path, tmp_path: Path) -> None:
    run = bundle_dir.parent / "run"
    assert export_main(["--run", str(run), "--out", str(tmp_path / "floor"), "--encoder-centre", "floor", "--readout-episodes", "0"]) == 0
    m = json.loads((tmp_path / "floor" / "manifest.json").read_text())
    assert m["input"]["normalisation"]["centre"] == "floor"
    assert m["model_id"] != json.loads((bundle_dir / "manifest.json").read_text())["model_id"]
    images = _images(6)
    x = images.astype(np.float32) / 255
    paint = (1 - x.max(axis=-1, keepdims=True)) * np.array([0.16, 0.12, 0.08], dtype=np.float32)
    lit = (np.clip(x + paint, 0, 1) * 255 + 0.5).astype(np.uint8)  # the same scene over a coloured floor
    for backend in ("torch", "onnx"):
        plain, floor = load_bundle(bundle_dir, backend=backend), load_bundle(tmp_path / "floor", backend=backend)
        assert torch.equal(floor.encode(images), plain.encode(images))  # black floor: the very same latents
        moved_plain = (plain.encode(lit) - plain.encode(images)).norm(dim=1).mean()
        moved_floor = (floor.encode(lit) - plain.encode(images)).norm(dim=1).mean()
        assert moved_floor < moved_plain / 10  # a coloured floor: as if black (up to uint8 rounding)


def test_torch_and_onnx_backends_agree(bundle_dir: Path) -> None:
    tb, ob = load_bundle(bundle_dir, backend="torch"), load_bundle(bundle_dir, backend="onnx", providers=["CPUExecutionProvider"])
    assert isinstance(tb, WorldModel) and isinstance(ob, WorldModel)
    assert ob.providers == ["CPUExecutionProvider"]
    imgs = _images(5)
    z_t, z_o = tb.encode(imgs), ob.encode(imgs)
    assert z_t.shape == (5, 8) and float((z_t - z_o).abs().max()) < 1e-4
    g = torch.Generator().manual_seed(0)
    acts = torch.rand(5, 3, 4, generator=g) - 0.5
    r_t, r_o = tb.rollout(z_t[:, None], acts), ob.rollout(z_t[:, None], acts)
    assert r_t.shape == (5, 3, 8) and float((r_t - r_o).abs().max()) < 1e-4
    chunks = torch.rand(5, 2, 4, generator=g) - 0.5
    m_t, m_o = tb.encode_macro(chunks, level=1), ob.encode_macro(chunks, level=1)
    assert m_t.shape == (5, 2) and float((m_t - m_o).abs().max()) < 1e-4
    p_t, p_o = tb.predict(z_t[:, None], m_t, level=1), ob.predict(z_t[:, None], m_t, level=1)
    assert float((p_t - p_o).abs().max()) < 1e-4
    d_t, d_o = tb.decode(z_t), ob.decode(z_t)
    assert d_t.dtype == np.uint8 and d_t.shape == (5, TOY_SIZE, TOY_SIZE, 3)
    assert np.abs(d_t.astype(int) - d_o.astype(int)).max() <= 1  # rounding at .5 may differ by one grey level


def test_torch_backend_is_differentiable_in_the_actions(bundle_dir: Path) -> None:
    """The gradient planner needs d(rollout)/d(actions) from a loaded bundle (torch backend)."""
    tb = load_bundle(bundle_dir, backend="torch")
    z = tb.encode(_images(2))
    acts = (torch.rand(2, 3, 4) - 0.5).requires_grad_(True)
    tb.rollout(z[:, None], acts).pow(2).sum().backward()
    assert acts.grad is not None and float(acts.grad.abs().sum()) > 0
    assert all(p.grad is None for p in tb._model.parameters())
    with torch.no_grad():
        assert not tb.rollout(z[:, None], acts).requires_grad


def test_bad_images_are_named(bundle_dir: Path) -> None:
    b = load_bundle(bundle_dir)
    with pytest.raises(ValueError, match="does not match this bundle's input"):
        b.encode(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        b.encode(np.zeros((2, TOY_SIZE, TOY_SIZE, 3), np.float32))
    with pytest.raises(ValueError, match="action must be"):
        b.predict(torch.zeros(2, 1, 8), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="level 5"):
        b.predict(torch.zeros(2, 1, 8), torch.zeros(2, 4), level=5)
    assert b.encode(_images(1)[0]).shape == (1, 8)  # one (H, W, 3) image is accepted as a batch of one


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_read_only_images_encode_without_a_warning(bundle_dir: Path, backend: str) -> None:
    """A camera image is a read-only view of the ROS message's bytes: same latent, and no torch warning in the log."""
    import warnings

    b = load_bundle(bundle_dir, backend=backend)
    images = _images(2)
    frozen = np.frombuffer(images.tobytes(), np.uint8).reshape(images.shape)
    assert not frozen.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = b.encode(frozen)
    np.testing.assert_allclose(np.asarray(z), np.asarray(b.encode(images)), atol=1e-6)


def test_missing_file(copy_of: Path) -> None:
    (copy_of / "predictor.onnx").unlink()
    with pytest.raises(FileNotFoundError, match=r"predictor\.onnx"):
        load_bundle(copy_of)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_bundle(copy_of / "nowhere")


def test_bad_checksum(copy_of: Path) -> None:
    with open(copy_of / "encoder.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match=r"checksum mismatch .*encoder.onnx"):
        load_bundle(copy_of, backend="onnx")
    assert bundle_main(["info", str(copy_of)]) == 1


def test_newer_schema(copy_of: Path) -> None:
    m = json.loads((copy_of / "manifest.json").read_text())
    m["schema_version"] = SCHEMA_VERSION + 1
    (copy_of / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="newer"):
        load_bundle(copy_of)


def test_bundle_info_cli(bundle_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert bundle_main(["info", str(bundle_dir)]) == 0
    out = capsys.readouterr().out
    assert "checksums:     OK" in out and "latent_shape:  [8]" in out


def test_export_needs_a_finished_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"final\.pt"):
        export_bundle(tmp_path, tmp_path / "out")


@pytest.mark.slow
def test_transformer_vit_noise_variant_exports(tmp_path: Path, toy_data: EpisodeSet) -> None:
    cfg = toy_config(
        **{
            "train.epochs": 1,
            "train.steps_per_epoch": 2,
            "decoder.enabled": False,
            "model.context": 2,
            "model.encoder": {
                "type": "vit",
                "latent_dim": 8,
                "patch_size": 4,
                "vit_dim": 16,
                "vit_heads": 2,
                "vit_depth": 1,
                "pool": False,
            },
            "model.predictor": {"type": "transformer", "hidden": 16, "layers": 1, "heads": 2, "noise_dim": 2},
        }
    )
    Trainer(cfg, tmp_path / "run", toy_data, TOY_META).fit()
    export_bundle(tmp_path / "run", tmp_path / "model")  # raises if ONNX and torch disagree
    tb, ob = load_bundle(tmp_path / "model"), load_bundle(tmp_path / "model", backend="onnx")
    assert tb.latent_shape == (16, 8) and not tb.has_decoder
    z = tb.encode(_images(3))
    acts = torch.rand(3, 2, 4) - 0.5
    assert float((tb.rollout(z[:, None], acts) - ob.rollout(z[:, None], acts)).abs().max()) < 1e-4
    noise = torch.randn(3, 2)
    assert (
        float((tb.predict(z[:, None], acts[:, 0], noise=noise) - ob.predict(z[:, None], acts[:, 0], noise=noise)).abs().max())
        < 1e-4
    )
    with pytest.raises(ValueError, match="no decoder"):
        tb.decode(z)
