"""Experiment configs: unknown keys and out-of-range values are clear errors; overrides; shipped configs load."""

from __future__ import annotations

from pathlib import Path

import pytest

from jepa_world_model import train as train_mod
from jepa_world_model.config import ExperimentConfig, load_config, parse_config

REPO = Path(__file__).resolve().parents[3]


def test_defaults_are_valid() -> None:
    cfg = parse_config({})
    assert cfg.data.source == "sim" and cfg.model.levels[0].stride == 1
    assert cfg.window_length() == cfg.model.context + cfg.train.horizon


def test_unknown_key_is_named() -> None:
    with pytest.raises(ValueError, match=r"train\.learning_rate"):
        parse_config({"train": {"learning_rate": 0.1}})


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"train": {"lr": -1.0}}, r"train\.lr"),
        ({"train": {"batch_size": 1}}, r"train\.batch_size"),
        ({"model": {"frameskip": 0}}, r"model\.frameskip"),
        ({"data": {"source": "sim", "val_fraction": 1.5}}, r"data\.sim\.val_fraction"),
        ({"data": {"source": "ftp"}}, r"data"),
        ({"data": {"source": "bags"}}, r"data\.bags\.paths"),
        ({"model": {"levels": [{"stride": 2}]}}, r"levels\[0\]\.stride must be 1"),
        ({"model": {"levels": [{"stride": 1}, {"stride": 1}]}}, r"levels\[1\]\.stride must be > 1"),
        ({"model": {"encoder": {"type": "onnx"}}}, r"onnx_path"),
        ({"train": {"anti_collapse": "magic"}}, r"train\.anti_collapse"),
    ],
)
def test_bad_values_are_clear_errors(raw: dict, where: str) -> None:
    with pytest.raises(ValueError, match=where):
        parse_config(raw)


def test_window_length_covers_coarse_levels() -> None:
    cfg = parse_config(
        {"model": {"context": 1, "levels": [{"stride": 1}, {"stride": 5, "rollout_steps": 2}]}, "train": {"horizon": 4}}
    )
    assert cfg.window_length() == 11  # two level-1 steps of 5 frames after the context frame


def test_overrides_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text("name: x\ntrain:\n  epochs: 3\n")
    cfg = load_config(f, ["train.epochs=7", "model.encoder.latent_dim=12", "model.levels=[{stride: 1}, {stride: 6}]"])
    assert cfg.train.epochs == 7 and cfg.model.encoder.latent_dim == 12 and cfg.model.levels[1].stride == 6
    with pytest.raises(ValueError, match="key=value"):
        load_config(f, ["train.epochs"])
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_cli_exit_code_on_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("train:\n  epochz: 3\n")
    assert train_mod.main(["--config", str(f), "--out", str(tmp_path / "run")]) == train_mod.EXIT_BAD_CONFIG
    assert "train.epochz" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted((REPO / "config" / "train").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_training_configs_validate(path: Path) -> None:
    assert isinstance(load_config(path), ExperimentConfig)
