"""Position readout: the ridge fit, the manifest entry, both backends, the CLI, the shipped bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from jepa_common.episodes import EpisodeSet
from jepa_world_model.bundle import bundle_main, export_bundle, load_bundle
from jepa_world_model.readout import add_position_readout, fit_position_readout
from jepa_world_model.testing import TOY_META, export_centroid_onnx, render_dots, toy_config, toy_episodes
from jepa_world_model.train import Trainer

REPO = Path(__file__).resolve().parents[3]
SHIPPED = {name: REPO / "models" / name for name in ("two_rooms", "two_rooms_fixed_door", "multi_room", "point_maze")}


@pytest.fixture(scope="module")
def toy_bundle(tmp_path_factory: pytest.TempPathFactory, toy_data: EpisodeSet) -> Path:
    """A trained toy CNN bundle; the readout is fitted at export on given episodes (the toy world is no sim world)."""
    root = tmp_path_factory.mktemp("readout")
    cfg = toy_config(**{"train.epochs": 2, "train.steps_per_epoch": 10, "decoder.enabled": False})
    Trainer(cfg, root / "run", toy_data, TOY_META).fit()
    return export_bundle(root / "run", root / "model", episodes=toy_episodes(30, 30, seed=5))


@pytest.fixture(scope="module")
def centroid_bundle(tmp_path_factory: pytest.TempPathFactory, toy_data: EpisodeSet) -> Path:
    """A bundle whose (frozen ONNX) encoder outputs the dot's centroid: its position readout must be near exact."""
    root = tmp_path_factory.mktemp("centroid")
    onnx_file = export_centroid_onnx(root / "centroid.onnx")
    enc = {"type": "onnx", "onnx_path": str(onnx_file), "onnx_input_dtype": "uint8", "onnx_input_layout": "NHWC"}
    cfg = toy_config(**{"train.epochs": 1, "train.steps_per_epoch": 2, "decoder.enabled": False, "model.encoder": enc})
    Trainer(cfg, root / "run", toy_data, TOY_META).fit()
    return export_bundle(root / "run", root / "model", episodes=toy_episodes(20, 30, seed=5))


def test_ridge_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(0)
    true_w, true_b = rng.normal(size=(2, 6)), np.array([3.0, -1.0])
    latents = [rng.normal(size=(40, 6)) * rng.uniform(0.1, 10, 6) for _ in range(10)]
    positions = [z @ true_w.T + true_b + rng.normal(scale=1e-3, size=(40, 2)) for z in latents]
    w, b, report = fit_position_readout(latents, positions, ridge=1e-9)
    assert np.allclose(w, true_w, atol=1e-3) and np.allclose(b, true_b, atol=1e-2)
    assert report["r2"] > 0.9999 and report["heldout_episodes"] == 2 and report["train_frames"] == 320
    with pytest.raises(ValueError, match="at least 2 episodes"):
        fit_position_readout(latents[:1], positions[:1])


def test_readout_fits_the_toy_world(centroid_bundle: Path, toy_bundle: Path) -> None:
    """Export -> manifest -> load -> readout reproduces the true dot position (frame 'map', px)."""
    pos = json.loads((centroid_bundle / "manifest.json").read_text())["readout"]["position"]
    assert pos["frame_id"] == "map" and len(pos["weights"]) == 2 and len(pos["weights"][0]) == 2
    assert pos["r2"] > 0.99, pos["fit"]  # measured on held-out episodes
    model = load_bundle(centroid_bundle)
    truth = np.random.default_rng(1).uniform(4, 11, (64, 2)).astype(np.float32)
    got = model.readout_position(model.encode(render_dots(truth))).numpy()
    assert np.sqrt(((got - truth) ** 2).mean()) < 0.3  # px, on a 16 px image
    # a briefly trained CNN: the same path gives a usable, if rougher, readout
    cnn = json.loads((toy_bundle / "manifest.json").read_text())["readout"]["position"]
    assert len(cnn["weights"][0]) == 8 and cnn["r2"] > 0.3, cnn["fit"]


def test_readout_same_for_both_backends_and_any_batch_dims(toy_bundle: Path) -> None:
    tb, ob = load_bundle(toy_bundle, backend="torch"), load_bundle(toy_bundle, backend="onnx")
    imgs = render_dots(np.random.default_rng(2).uniform(3, 12, (6, 2)).astype(np.float32))
    p_t, p_o = tb.readout_position(tb.encode(imgs)), ob.readout_position(ob.encode(imgs))
    assert p_t.shape == (6, 2) and float((p_t - p_o).abs().max()) < 1e-3
    acts = torch.rand(6, 3, 4) - 0.5  # predicted trajectories, as the planner draws them
    z0 = tb.encode(imgs)[:, None]
    r_t, r_o = tb.readout_position(tb.rollout(z0, acts)), ob.readout_position(ob.rollout(z0, acts))
    assert r_t.shape == (6, 3, 2) and float((r_t - r_o).abs().max()) < 1e-3
    z = torch.randn(3, 4, 5, 8)
    out = tb.readout_position(z)
    assert out.shape == (3, 4, 5, 2)
    assert torch.allclose(out[1, 2], tb.readout_position(z[1, 2]), atol=1e-6)
    assert tb.readout_position(z[0, 0, 0]).shape == (2,)  # one latent
    assert torch.allclose(ob.readout_position(z.numpy()), out, atol=1e-6)  # numpy in, same numbers
    with pytest.raises(ValueError, match="latents must be"):
        tb.readout_position(torch.zeros(3, 7))
    assert tb.position_frame == "map" and tb.has_position_readout


def test_bundle_without_readout_says_how_to_add_one(toy_bundle: Path, tmp_path: Path, toy_data: EpisodeSet) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(toy_bundle, bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    del m["readout"]
    (bundle / "manifest.json").write_text(json.dumps(m))
    model = load_bundle(bundle)
    assert not model.has_position_readout
    with pytest.raises(ValueError, match="jepa-bundle add-readout"):
        model.readout_position(torch.zeros(1, 8))
    # the toy world is not a sim world: the CLI says so in one line; given episodes work
    assert bundle_main(["add-readout", str(bundle), "--episodes", "4"]) == 1
    entry = add_position_readout(bundle, episodes=toy_data, frame_id="odom", units="px")
    assert entry["frame_id"] == "odom" and load_bundle(bundle).position_frame == "odom"


@pytest.mark.skipif(not SHIPPED["two_rooms"].exists(), reason="shipped bundle missing")
def test_add_readout_cli_on_a_sim_bundle(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The command refits from the bundle's own world; bundle files and checksums are untouched."""
    bundle = tmp_path / "two_rooms"
    shutil.copytree(SHIPPED["two_rooms"], bundle)
    before = json.loads((bundle / "manifest.json").read_text())
    del before["readout"]
    (bundle / "manifest.json").write_text(json.dumps(before))
    assert bundle_main(["add-readout", str(bundle), "--episodes", "12", "--seed", "3", "--threads", "1"]) == 0
    assert "held-out R^2" in capsys.readouterr().out
    after = json.loads((bundle / "manifest.json").read_text())
    pos = after["readout"]["position"]
    assert pos["units"] == "px" and pos["fit"]["data"]["world"] == "two_rooms" and pos["fit"]["data"]["episodes"] == 12
    assert pos["r2"] > 0.9
    assert after["checksums"] == before["checksums"]
    assert bundle_main(["info", str(bundle)]) == 0


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_bundles_load_with_both_backends_and_have_a_readout(name: str) -> None:
    path = SHIPPED[name]
    if not (path / "manifest.json").exists():
        pytest.skip(f"{path} missing")
    tb, ob = load_bundle(path, backend="torch"), load_bundle(path, backend="onnx", providers=["CPUExecutionProvider"])
    m = tb.manifest["readout"]["position"]
    assert m["frame_id"] == "map" and m["units"] == ("m" if name == "point_maze" else "px") and m["r2"] > 0.8
    z = torch.randn(2, 3, *tb.latent_shape) * tb.latent_std + tb.latent_mean
    assert torch.allclose(tb.readout_position(z), ob.readout_position(z)) and tb.readout_position(z).shape == (2, 3, 2)


def test_export_fits_the_readout_from_the_runs_own_world(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """jepa-export of a run trained in a built-in world fits the readout on that world (same code as add-readout)."""
    cfg = toy_config(**{
        "data": {"source": "sim", "world": "two_rooms", "episodes": 12, "steps": 30, "val_fraction": 0.25},
        "train.epochs": 1, "train.steps_per_epoch": 3, "decoder.enabled": False,
    })
    Trainer(cfg, tmp_path / "run").fit()
    from jepa_world_model.bundle import export_main

    assert export_main(["--run", str(tmp_path / "run"), "--out", str(tmp_path / "model"), "--readout-episodes", "6"]) == 0
    assert "readout:       position in frame 'map' (px)" in capsys.readouterr().out
    pos = json.loads((tmp_path / "model" / "manifest.json").read_text())["readout"]["position"]
    assert pos["fit"]["data"]["world"] == "two_rooms" and pos["fit"]["data"]["episodes"] == 6
    assert pos["fit"]["heldout_episodes"] >= 1 and pos["r2"] is not None
    assert load_bundle(tmp_path / "model", backend="onnx").has_position_readout
