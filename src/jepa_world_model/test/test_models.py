"""Shapes, masks and invariants of every network (no training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jepa_world_model.bundle import _onnx_export
from jepa_world_model.config import EncoderConfig, PredictorConfig
from jepa_world_model.models import (
    CausalTransformerPredictor,
    CNNEncoder,
    LatentDecoder,
    MacroActionEncoder,
    MLPPredictor,
    OnnxFrozenEncoder,
    ViTEncoder,
    frame_causal_mask,
)
from jepa_world_model.models.predictors import build_predictor, pad_context
from jepa_world_model.testing import TOY_SIZE, CentroidEncoder, export_centroid_onnx, render_dots

IMG = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)


def test_cnn_encoder_shape_and_proprio_fusion() -> None:
    enc = CNNEncoder(EncoderConfig(latent_dim=12, channels=[8, 16]), image_size=32)
    assert enc(IMG).shape == (3, 12)
    fused = CNNEncoder(EncoderConfig(latent_dim=12, channels=[8, 16], use_proprio=True), image_size=32, proprio_dim=4)
    p = torch.randn(3, 4)
    assert fused(IMG, p).shape == (3, 12)
    assert not torch.allclose(fused(IMG, p), fused(IMG, p + 1.0))  # proprio really reaches the latent
    with pytest.raises(ValueError, match="proprio"):
        fused(IMG)


def test_normalisation_is_inside_the_encoder() -> None:
    enc = CNNEncoder(EncoderConfig(latent_dim=4, channels=[4], mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)), image_size=32)
    x = enc.normalize(torch.full((1, 32, 32, 3), 255, dtype=torch.uint8))
    assert x.shape == (1, 3, 32, 32) and torch.allclose(x, torch.ones_like(x))


def test_median_centre_removes_the_floor_colour_and_keeps_black_floors(tmp_path) -> None:
    cfg = EncoderConfig(latent_dim=4, channels=[4], mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), centre="median")
    enc = CNNEncoder(cfg, image_size=32).eval()
    scene = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    scene[:, :, 20:, 2] = 255  # a wall over a third of the image
    scene[1, 5:8, 5:8, 0] = 200  # and an agent in the second
    plain = CNNEncoder(cfg.model_copy(update={"centre": "none"}), image_size=32)
    assert torch.equal(enc.normalize(scene), plain.normalize(scene))  # black floor: nothing changes
    lit = scene.clone()
    lit[:, :, :20] += torch.tensor([30, 20, 10], dtype=torch.uint8)  # the floor in another colour
    x = enc.normalize(lit)
    assert torch.equal(x[:, :, :, :20], plain.normalize(scene)[:, :, :, :20])  # is the black floor again
    onnx_path = tmp_path / "enc.onnx"
    _onnx_export(enc, (lit,), onnx_path, ["images"], ["z"], {"images": {0: "batch"}})
    import onnxruntime as ort

    got = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"images": lit.numpy()})[0]
    with torch.no_grad():
        assert np.allclose(got, enc(lit).numpy(), atol=1e-5)  # the sort exports
    with pytest.raises(ValueError, match="centre"):
        EncoderConfig(type="onnx", onnx_path="x.onnx", centre="median")
    floor = CNNEncoder(cfg.model_copy(update={"centre": "floor"}), image_size=32).eval()
    walls = scene[:1].clone()
    painted = walls.clone()
    painted[walls.amax(dim=-1) == 0] = torch.tensor([30, 20, 10], dtype=torch.uint8)  # floor painted, walls kept
    assert torch.equal(floor.normalize(walls), plain.normalize(walls))  # black floor: nothing changes
    assert torch.allclose(floor.normalize(painted), plain.normalize(walls), atol=1e-6)  # floor black again, walls kept


@pytest.mark.parametrize("pool", [True, False])
def test_vit_encoder_vector_or_tokens(pool: bool) -> None:
    cfg = EncoderConfig(type="vit", latent_dim=10, patch_size=8, vit_dim=16, vit_heads=2, vit_depth=1, pool=pool)
    enc = ViTEncoder(cfg, image_size=32)
    out = enc(IMG)
    expected = (3, 10) if pool else (3, 16, 10)
    assert out.shape == expected and enc.latent_shape == expected[1:]


def test_pad_context_repeats_oldest() -> None:
    z = torch.arange(6.0).view(1, 2, 3)
    padded = pad_context(z, 4)
    assert padded.shape == (1, 4, 3)
    assert torch.equal(padded[:, 0], z[:, 0]) and torch.equal(padded[:, 1], z[:, 0]) and torch.equal(padded[:, 2:], z)
    assert torch.equal(pad_context(z, 1), z[:, 1:])


@pytest.mark.parametrize("noise_dim", [0, 3])
def test_mlp_predictor_shapes(noise_dim: int) -> None:
    pred = MLPPredictor(PredictorConfig(hidden=32, layers=2, noise_dim=noise_dim), (8,), context=2, action_dim=5)
    z, a = torch.randn(4, 2, 8), torch.randn(4, 5)
    assert pred(z, a).shape == (4, 8)
    assert pred(z[:, :1], a).shape == (4, 8)  # fewer context frames than the model's context
    if noise_dim:
        out0, out1 = pred(z, a), pred(z, a, torch.randn(4, noise_dim))
        assert torch.allclose(out0, pred(z, a, torch.zeros(4, noise_dim)))  # None means zeros
        assert not torch.allclose(out0, out1)


@pytest.mark.parametrize("latent_shape", [(8,), (4, 8)])
def test_transformer_predictor_shapes(latent_shape: tuple[int, ...]) -> None:
    pred = CausalTransformerPredictor(
        PredictorConfig(type="transformer", hidden=16, layers=2, heads=2), latent_shape, context=3, action_dim=5
    )
    z, a = torch.randn(2, 3, *latent_shape), torch.randn(2, 5)
    assert pred(z, a).shape == (2, *latent_shape)


def test_frame_causal_mask_layout() -> None:
    mask = frame_causal_mask(3, 2)  # True = blocked
    assert mask.shape == (6, 6)
    assert not mask[0, 1] and mask[0, 2] and mask[1, 5] and not mask[5, 0] and not mask[3, 2]


@pytest.mark.parametrize("latent_shape", [(8,), (4, 8)])
def test_transformer_is_frame_causal(latent_shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    pred = CausalTransformerPredictor(
        PredictorConfig(type="transformer", hidden=16, layers=2, heads=2), latent_shape, context=4, action_dim=3
    ).eval()
    z, cond = torch.randn(2, 4, *latent_shape), torch.randn(2, 4, 3)
    base = pred.forward_frames(z, cond)
    z2, cond2 = z.clone(), cond.clone()
    z2[:, 2] += 5.0  # change frame 2 and its condition
    cond2[:, 2] += 5.0
    changed = pred.forward_frames(z2, cond2)
    assert torch.allclose(base[:, :2], changed[:, :2], atol=1e-6)  # earlier frames unaffected
    assert not torch.allclose(base[:, 2:], changed[:, 2:])  # that frame and later ones see it


def test_macro_encoder_bounded_and_checked() -> None:
    enc = MacroActionEncoder(stride=5, action_dim=4, macro_dim=3)
    out = enc(torch.randn(7, 5, 4) * 100)
    assert out.shape == (7, 3) and out.abs().max() <= 1.0
    with pytest.raises(ValueError, match="action chunks"):
        enc(torch.randn(7, 4, 4))


@pytest.mark.parametrize("latent_shape", [(8,), (4, 8)])
def test_decoder_image_shape(latent_shape: tuple[int, ...]) -> None:
    dec = LatentDecoder(latent_shape, image_size=32, width=8)
    with torch.no_grad():
        out = dec(torch.randn(2, *latent_shape))
    assert out.shape == (2, 32, 32, 3) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_onnx_frozen_encoder_matches_its_source(tmp_path) -> None:
    path = export_centroid_onnx(tmp_path / "centroid.onnx")
    cfg = EncoderConfig(type="onnx", onnx_path=str(path), onnx_input_dtype="uint8", onnx_input_layout="NHWC")
    enc = OnnxFrozenEncoder(cfg, image_size=TOY_SIZE)
    pos = np.array([[4.0, 9.0], [11.0, 6.5]], np.float32)
    imgs = torch.from_numpy(render_dots(pos))
    assert enc.latent_shape == (2,)
    assert torch.allclose(enc(imgs), CentroidEncoder()(imgs), atol=1e-5)
    assert torch.allclose(enc(imgs), torch.from_numpy(pos), atol=0.2)  # latent really is the position
    assert not any(p.requires_grad for p in enc.parameters())
    with pytest.raises(FileNotFoundError, match="onnx_path"):
        OnnxFrozenEncoder(EncoderConfig(type="onnx", onnx_path=str(tmp_path / "missing.onnx")), image_size=TOY_SIZE)


def test_temporal_variance_penalises_per_episode_constants_not_motion() -> None:
    """A latent that is constant within each window (a per-episode layout) has all the batch spread VICReg
    asks for, and still gets the full within-window hinge; one that moves within its window gets none."""
    from jepa_world_model.models.world_model import temporal_variance, vicreg_variance

    torch.manual_seed(0)
    b, t, d = 64, 11, 8
    constant = torch.randn(b, 1, d).expand(b, t, d) * 2.0  # spread across windows only
    moving = constant + torch.linspace(-1.0, 1.0, t)[None, :, None] * torch.randn(b, 1, d)
    assert vicreg_variance(constant.reshape(-1, d)) == 0.0
    assert float(temporal_variance(constant, 0.2)) == pytest.approx(0.2 - 1e-2, abs=1e-2)
    assert float(temporal_variance(moving, 0.2)) == 0.0


def test_temporal_variance_per_dim_counts_every_dimension() -> None:
    """Motion carried by one dimension (the rest per-episode constants) meets the RMS hinge but not the
    per-dimension one, which charges each still dimension its full target."""
    from jepa_world_model.models.world_model import temporal_variance

    torch.manual_seed(0)
    b, t, d = 64, 11, 8
    z = torch.randn(b, 1, d).expand(b, t, d).clone()
    z[..., 0] = z[..., 0] + torch.linspace(-8.0, 8.0, t)[None, :] * torch.randn(b, 1)
    assert float(temporal_variance(z, 0.5)) == 0.0
    assert float(temporal_variance(z, 0.5, per_dim=True)) == pytest.approx(0.5 * (d - 1) / d, abs=2e-2)
    everywhere = z + torch.linspace(-1.0, 1.0, t)[None, :, None] * torch.randn(b, 1, d) * 2.0
    assert float(temporal_variance(everywhere, 0.5, per_dim=True)) < 0.05


def test_window_variance_charges_the_few_collapsed_windows_the_batch_terms_forgive() -> None:
    """A quarter of the windows barely moving (a layout where the encoder lost the agent) while the rest move
    widely: the pooled hinge is met, the per-window floor charges exactly that quarter; still windows (identical
    frames) add a constant but no gradient."""
    from jepa_world_model.models.world_model import temporal_variance

    torch.manual_seed(0)
    b, t, d = 64, 9, 8
    ramp = torch.linspace(-1.0, 1.0, t)[None, :, None]
    z = ramp * torch.randn(b, 1, d) * 3.0
    z[: b // 4] *= 0.01
    assert float(temporal_variance(z, 0.3)) == 0.0
    per_window = float(temporal_variance(z, 0.3, per_window=True))
    assert per_window == pytest.approx(0.25 * 0.3, abs=0.01)
    still = torch.randn(b, 1, d).expand(b, t, d).clone().requires_grad_(True)
    temporal_variance(still, 0.3, per_window=True).backward()
    assert still.grad is not None and float(still.grad.abs().max()) == 0.0


def test_sigreg_is_near_zero_for_a_standard_normal_and_penalises_collapse_and_scale() -> None:
    """The sketched normality statistic: small for N(0, I) samples, large for a point, a subspace, a wrong scale
    or a skewed distribution; its gradient spreads a collapsed batch."""
    from jepa_world_model.models.world_model import sigreg

    torch.manual_seed(0)
    n, d = 2048, 8
    normal = float(sigreg(torch.randn(n, d)))
    assert normal < 0.01
    half = torch.randn(n, d)
    half[:, 4:] = 0.0
    for bad in (torch.zeros(n, d), half, 3.0 * torch.randn(n, d), torch.randn(n, d).exp()):
        assert float(sigreg(bad)) > 5 * normal
    z = (0.01 * torch.randn(256, d)).requires_grad_()
    opt = torch.optim.SGD([z], lr=50.0)
    for _ in range(100):
        opt.zero_grad()
        sigreg(z).backward()
        opt.step()
    std = z.detach().std(0)
    assert float(std.min()) > 0.5 and float(std.max()) < 1.5


@pytest.mark.parametrize("kind", ["cnn", "vit"])
def test_proprio_scale_divides_proprio_inside_the_encoder(kind: str) -> None:
    """The scale is part of the encoder (saved with its weights): raw proprio / scale gives what a scaled
    input gives to an encoder without one; a wrong-length or non-positive scale is refused."""
    from jepa_world_model.models import build_encoder

    torch.manual_seed(0)
    base = dict(type=kind, latent_dim=4, channels=[8, 8], use_proprio=True, vit_dim=16, vit_depth=1, vit_heads=2)
    scaled = build_encoder(EncoderConfig(**base, proprio_scale=[100.0, 10.0]), 16, proprio_dim=2).eval()
    plain = build_encoder(EncoderConfig(**base), 16, proprio_dim=2).eval()
    plain.load_state_dict({k: v for k, v in scaled.state_dict().items() if k != "proprio_scale"})
    assert "proprio_scale" in scaled.state_dict() and "proprio_scale" not in plain.state_dict()
    images = torch.randint(0, 255, (3, 16, 16, 3), dtype=torch.uint8)
    raw = torch.tensor([[300.0, 20.0], [50.0, -5.0], [0.0, 0.0]])
    assert torch.allclose(scaled(images, raw), plain(images, raw / torch.tensor([100.0, 10.0])), atol=1e-5)
    for bad in ([1.0], [1.0, 0.0]):
        with pytest.raises(ValueError, match="proprio_scale needs 2 values > 0"):
            build_encoder(EncoderConfig(**base, proprio_scale=bad), 16, proprio_dim=2)


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_action_scale_divides_raw_actions_in_the_predictor_and_macro_encoder(kind: str) -> None:
    """``model.action_scale``: a model fed raw actions equals the same weights fed actions / scale, and the
    scale is a config constant (not in the state dict), so checkpoints from before it still load."""
    cfg = PredictorConfig(type=kind, hidden=16, layers=1, heads=2)
    torch.manual_seed(0)
    scaled = build_predictor(cfg, (4,), 1, 2, action_scale=50.0)
    plain = build_predictor(cfg, (4,), 1, 2)
    plain.load_state_dict(scaled.state_dict())
    z, a = torch.randn(3, 1, 4), torch.randn(3, 2) * 50.0
    torch.testing.assert_close(scaled(z, a), plain(z, a / 50.0))
    assert not torch.allclose(scaled(z, a), plain(z, a))
    macro, macro_plain = MacroActionEncoder(5, 2, 3, action_scale=50.0), MacroActionEncoder(5, 2, 3)
    macro_plain.load_state_dict(macro.state_dict())
    chunks = torch.randn(3, 5, 2) * 50.0
    torch.testing.assert_close(macro(chunks), macro_plain(chunks / 50.0))


def test_proprio_latent_dim_gives_proprio_its_own_part_of_the_latent() -> None:
    """The last ``proprio_latent_dim`` dimensions depend on proprio only, the others on the image only."""
    cfg = EncoderConfig(latent_dim=6, channels=[8, 8], use_proprio=True, proprio_latent_dim=2, feature_norm="none")
    enc = CNNEncoder(cfg, 16, proprio_dim=4).eval()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 16, 16, 3), generator=g, dtype=torch.uint8)
    other_images = torch.randint(0, 256, (3, 16, 16, 3), generator=g, dtype=torch.uint8)
    p, q = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    z = enc(images, p)
    assert z.shape == (3, 6)
    torch.testing.assert_close(enc(other_images, p)[:, 4:], z[:, 4:])  # proprio part: image-independent
    torch.testing.assert_close(enc(images, q)[:, :4], z[:, :4])  # image part: proprio-independent
    assert not torch.allclose(enc(images, q)[:, 4:], z[:, 4:])
    with pytest.raises(ValueError, match="proprio_latent_dim"):
        CNNEncoder(cfg.model_copy(update={"proprio_latent_dim": 6}), 16, proprio_dim=4)
    with pytest.raises(ValueError, match="proprio_latent_dim needs"):
        EncoderConfig(type="vit", use_proprio=True, proprio_latent_dim=2)
