"""Training augmentation, domain randomisation and the BatchNorm variance floor."""

from __future__ import annotations

import pytest
import torch

from jepa_world_model.augment import augment_frames, invariance_loss
from jepa_world_model.config import AugmentConfig, EncoderConfig, SimDataConfig, parse_config
from jepa_world_model.models.encoders import CNNEncoder

torch.set_num_threads(1)

FULL = AugmentConfig(
    enabled=True, probability=1.0, noise_std=0.02, brightness=0.3, contrast=0.2, gamma=0.3, colour_shift=0.03
)


def _frames(b: int = 3, t: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (b, t, 16, 16, 3), generator=g, dtype=torch.uint8)


def test_disabled_augmentation_returns_the_frames_unchanged():
    frames = _frames()
    assert augment_frames(frames, AugmentConfig()) is frames


def test_augmentation_changes_every_frame_differently_and_keeps_uint8():
    frames = _frames()
    out = augment_frames(frames, FULL, torch.Generator().manual_seed(1))
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    diffs = (out.float() - frames.float()).abs().mean(dim=(-3, -2, -1)).flatten()
    assert (diffs > 0).all() and len(set(diffs.tolist())) == diffs.numel()  # independent levels per frame


def test_per_window_levels_are_shared_by_the_frames_of_a_window():
    frames = torch.full((6, 3, 8, 8, 3), 120, dtype=torch.uint8)  # identical frames: only the levels differ
    cfg = FULL.model_copy(update={"per_window": True, "noise_std": 0.0, "probability": 0.5})
    out = augment_frames(frames, cfg, torch.Generator().manual_seed(3)).float()
    assert torch.equal(out, out[:, :1].expand_as(out))  # the same levels (and keep/augment choice) in a window
    means = out.mean(dim=(1, 2, 3, 4))
    assert len(set(means.tolist())) > 2  # windows differ
    noisy = augment_frames(frames, FULL.model_copy(update={"per_window": True}), torch.Generator().manual_seed(4))
    assert not torch.equal(noisy[:, 0], noisy[:, 1])  # each frame still has its own noise pattern


def test_probability_leaves_some_frames_clean():
    frames = _frames(b=40, t=1)
    out = augment_frames(frames, FULL.model_copy(update={"probability": 0.5}), torch.Generator().manual_seed(2))
    clean = (out == frames).flatten(1).all(dim=1)
    assert 5 < int(clean.sum()) < 35


def test_each_augmentation_alone_changes_the_image():
    frames = torch.full((1, 8, 8, 3), 100, dtype=torch.uint8)
    frames[0, :4] = 30
    for field in ("noise_std", "brightness", "contrast", "gamma", "colour_shift", "background", "colour_mix", "blur"):
        cfg = AugmentConfig(enabled=True, probability=1.0, **{field: 1.5 if field == "blur" else 0.3})
        outs = [augment_frames(frames, cfg, torch.Generator().manual_seed(s)) for s in range(4)]
        assert any(not torch.equal(o, frames) for o in outs), field


def test_scene_augmentations_do_what_the_camera_factors_do():
    frames = torch.zeros(1, 9, 9, 3, dtype=torch.uint8)
    frames[0, :, 6:, 2] = 255  # a blue wall on a black floor
    frames[0, 2, 2, 0] = 255  # a red dot
    bg = augment_frames(frames, AugmentConfig(enabled=True, probability=1.0, background=0.5), torch.Generator().manual_seed(0))
    assert torch.equal(bg[0, :, 6:], frames[0, :, 6:])  # the bright wall keeps its colour
    assert (bg[0, 0, 0] > 0).any() and bg[0, 0, 0].max() <= 128  # the floor takes a colour of at most 0.5
    mixed = augment_frames(frames, AugmentConfig(enabled=True, probability=1.0, colour_mix=0.5), torch.Generator().manual_seed(1))
    assert torch.equal(mixed[0, 0, 0], frames[0, 0, 0])  # black stays black under a colour matrix
    assert not torch.equal(mixed[0, :, 6:], frames[0, :, 6:])  # the wall is recoloured
    blurred = augment_frames(frames, AugmentConfig(enabled=True, probability=1.0, blur=2.0), torch.Generator().manual_seed(2))
    assert 0 < blurred[0, 2, 2, 0] < 255 and blurred[0, 2, 3, 0] > 0  # the dot spreads
    assert abs(blurred[..., 0].float().sum() - 255) < 30  # and keeps (about) its energy


def test_invariance_loss_is_zero_for_an_invariant_encoder_and_positive_otherwise():
    frames = _frames()
    constant = lambda x: torch.zeros(x.shape[0], 4, requires_grad=True)  # noqa: E731
    assert invariance_loss(constant, frames, FULL).item() == 0.0
    mean_pixel = lambda x: x.float().mean(dim=(1, 2, 3)).unsqueeze(1)  # noqa: E731
    assert invariance_loss(mean_pixel, frames, FULL).item() > 0.0


def test_config_sections_are_validated():
    cfg = parse_config({"augment": {"enabled": True, "noise_std": 0.02}, "data": {"source": "sim", "randomise": {"door_y": "random"}}})
    assert cfg.augment.noise_std == 0.02 and cfg.data.randomise == {"door_y": "random"}
    with pytest.raises(ValueError, match=r"augment\.brightness"):
        parse_config({"augment": {"brightness": 1.5}})
    with pytest.raises(ValueError, match=r"augment\.nois"):
        parse_config({"augment": {"nois": 0.1}})


def test_randomised_world_options_reach_the_data_but_not_the_world_settings():
    from jepa_world_model.data_source import load_episodes

    cfg = SimDataConfig(episodes=6, steps=3, randomise={"door_y": "random"}, collect_batch=1, seed=3)
    eps, meta = load_episodes(cfg)
    walls = {e.frames[0][:, 32, 2].tobytes() for e in eps.episodes}
    assert len(walls) == 6  # a door of its own in every episode
    assert "door_y" not in cfg.world_kwargs and meta["world"] == "two_rooms"


def test_batchnorm_variance_floor_bounds_the_gain_of_constant_features():
    torch.manual_seed(0)
    images = torch.zeros(64, 16, 16, 3, dtype=torch.uint8)
    images[:, 4:8, 4:8, 0] = torch.randint(0, 256, (64, 1, 1), dtype=torch.uint8)  # only one region varies
    gains = {}
    for eps in (1e-5, 1.0):
        enc = CNNEncoder(EncoderConfig(channels=[8, 8], latent_dim=4, feature_norm_eps=eps), 16)
        enc.feature_norm.reset_running_stats()
        enc.feature_norm.momentum = None  # running statistics = those of this batch (as after recalibration)
        enc.train()
        enc(images)
        enc.eval()
        noisy = images.clone()
        noisy[:, 12:, 12:, 1] = 1  # +1/255 on an always-empty corner of the unused channel
        with torch.no_grad():
            gains[eps] = (enc(noisy) - enc(images)).norm(dim=1).mean().item()
    assert gains[1.0] < gains[1e-5] / 5


def test_a_part_of_the_data_can_be_randomised_alone():
    from jepa_world_model.config import SimDataPart
    from jepa_world_model.data_source import load_episodes

    part = SimDataPart(policy="random", episodes=3, randomise={"door_y": "random"})
    cfg = SimDataConfig(episodes=2, steps=3, extra=[part], collect_batch=1, seed=4)
    eps, _ = load_episodes(cfg)
    walls = [e.frames[0][:, 32, 2].tobytes() for e in eps.episodes]
    assert walls[0] == walls[1]  # the main part keeps the world's door
    assert len(set(walls[2:])) == 3 and walls[0] not in walls[2:]
