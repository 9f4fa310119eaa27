"""Tests of jepa_world_model.ort_session on CPU; the GPU branches are driven through fakes."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnxruntime as ort
import pytest
import torch

from jepa_world_model import ort_session
from jepa_world_model.ort_session import (
    IoBoundRunner,
    OrtConfig,
    compare_providers,
    engine_cache_dir_for,
    engine_cache_key,
    file_sha256,
    make_session,
)

CPU = "CPUExecutionProvider"


class TinyTokenBlock(torch.nn.Module):
    """A small attention block over tokens plus an action, like the planner's predictor."""

    def __init__(self, dim: int = 16, action_dim: int = 2):
        super().__init__()
        self.action = torch.nn.Linear(action_dim, dim)
        self.norm = torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.out = torch.nn.Linear(dim, dim)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, 32), torch.nn.GELU(), torch.nn.Linear(32, dim))

    def forward(self, tokens: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = tokens + self.action(action).unsqueeze(1)
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=-1)
        weights = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
        x = x + self.out(weights @ v)
        return x + self.mlp(self.norm(x))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TinyTokenBlock]:
    torch.manual_seed(0)
    model = TinyTokenBlock().eval()
    path = tmp_path_factory.mktemp("onnx") / "block.onnx"
    example = (torch.randn(2, 5, 16), torch.randn(2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(
            model,
            example,
            str(path),
            dynamo=False,
            input_names=["tokens", "action"],
            output_names=["next_tokens"],
            dynamic_axes={"tokens": {0: "batch"}, "action": {0: "batch"}, "next_tokens": {0: "batch"}},
            opset_version=17,
        )
    return path, model


def _feeds(batch: int = 3, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "tokens": rng.standard_normal((batch, 5, 16)).astype(np.float32),
        "action": rng.standard_normal((batch, 2)).astype(np.float32),
    }


# ------------------------------------------------------------------------------ cache key


def test_engine_cache_key_changes_when_any_part_changes() -> None:
    base = {"model_sha256": "a" * 64, "gpu": "NVIDIA H100 sm_90", "trt_version": "10.16.1", "ort_version": "1.31.1", "fp16": True}
    variants = [
        {"model_sha256": "b" * 64},
        {"gpu": "NVIDIA RTX 4090 sm_89"},
        {"gpu": "NVIDIA H100 sm_91"},
        {"trt_version": "10.16.2"},
        {"ort_version": "1.31.2"},
        {"fp16": False},
    ]
    key = engine_cache_key(**base)
    assert key == engine_cache_key(**base)  # a restart finds the same directory
    assert len(key) == 16 and int(key, 16) >= 0
    keys = {engine_cache_key(**{**base, **change}) for change in variants}
    assert len(keys) == len(variants) and key not in keys


def test_engine_cache_dir_follows_the_model_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort_session, "gpu_identity", lambda device_id=0: "FakeGPU sm_86")
    monkeypatch.setattr(ort_session, "tensorrt_version", lambda: "10.16.1")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"first")
    config = OrtConfig(engine_cache_dir=tmp_path / "cache", fp16=True)
    first = engine_cache_dir_for(model, config)
    assert first.parent == tmp_path / "cache" and first == engine_cache_dir_for(model, config)
    manifest = json.loads((first / "key.json").read_text())
    assert manifest["gpu"] == "FakeGPU sm_86" and manifest["model"] == file_sha256(model) and manifest["fp16"] is True
    model.write_bytes(b"second")
    assert engine_cache_dir_for(model, config) != first
    assert engine_cache_dir_for(model, OrtConfig(engine_cache_dir=tmp_path / "cache", fp16=False)) != first


def test_gpu_identity_without_a_gpu_is_nogpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(ort_session.shutil, "which", lambda name: None)
    ort_session.gpu_identity.cache_clear()
    try:
        assert ort_session.gpu_identity(0) == "nogpu"
    finally:
        ort_session.gpu_identity.cache_clear()


# ------------------------------------------------------------------------------ config and sessions


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown execution provider 'rocm'"):
        OrtConfig(providers=("rocm",))
    with pytest.raises(ValueError, match="list of names"):
        OrtConfig(providers="cuda")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device_id"):
        OrtConfig(device_id=-1)
    with pytest.raises(ValueError, match="intra_op_threads"):
        OrtConfig(intra_op_threads=-2)
    assert OrtConfig(providers=("CUDA", "cpu")).providers == ("CUDAExecutionProvider", CPU)


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothere\.onnx"):
        make_session(tmp_path / "nothere.onnx")


def test_fallback_to_cpu_is_logged_once(exported, caplog: pytest.LogCaptureFixture) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: no fallback to observe")
    path, _ = exported
    with caplog.at_level(logging.INFO, logger="jepa_world_model.ort_session"):
        session, used = make_session(path, OrtConfig(providers=("cuda",)))
    assert used == CPU and session.get_providers()[0] == CPU
    warnings_logged = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_logged) == 1
    assert "CUDAExecutionProvider not available" in warnings_logged[0].getMessage()
    assert "on CPUExecutionProvider" in warnings_logged[0].getMessage()


def test_cpu_threads_do_not_spin_unless_asked(exported) -> None:
    """Idle onnxruntime workers must not busy-wait by default (they would starve the planner on a few cores)."""
    path, _ = exported
    key = "session.intra_op.allow_spinning"
    quiet, _ = make_session(path, OrtConfig(providers=("cpu",)))
    spinning, _ = make_session(path, OrtConfig(providers=("cpu",), allow_spinning=True))
    assert quiet.get_session_options().get_session_config_entry(key) == "0"
    with pytest.raises(Exception, match="does not have configuration"):  # onnxruntime's default (spinning) kept
        spinning.get_session_options().get_session_config_entry(key)


class _FakeSession:
    """Stands in for ort.InferenceSession when a GPU provider is pretended to exist."""

    created: ClassVar[list[list[tuple[str, dict]]]] = []
    fail_with: ClassVar[dict[str, str]] = {}
    silently_fall_back: ClassVar[bool] = False

    def __init__(self, path: str, sess_options=None, providers=()):
        chain = [(name, dict(opts)) for name, opts in providers]
        _FakeSession.created.append(chain)
        if chain[0][0] in self.fail_with:
            raise RuntimeError(self.fail_with[chain[0][0]])
        self._providers = [CPU] if self.silently_fall_back else [name for name, _ in chain]

    def get_providers(self) -> list[str]:
        return self._providers


@pytest.fixture
def fake_gpu_ort(monkeypatch: pytest.MonkeyPatch):
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU]
    monkeypatch.setattr(ort_session.ort, "get_available_providers", lambda: gpu)
    monkeypatch.setattr(ort_session.ort, "InferenceSession", _FakeSession)
    monkeypatch.setattr(ort_session, "gpu_identity", lambda device_id=0: "FakeGPU sm_89")
    monkeypatch.setattr(ort_session, "tensorrt_version", lambda: "10.16.1")
    monkeypatch.setattr(ort_session, "_preload_gpu_libraries", lambda: None)
    _FakeSession.created, _FakeSession.fail_with, _FakeSession.silently_fall_back = [], {}, False
    return _FakeSession


def test_tensorrt_gets_engine_cache_options(exported, tmp_path: Path, fake_gpu_ort, caplog) -> None:
    path, _ = exported
    config = OrtConfig(fp16=True, device_id=1, engine_cache_dir=tmp_path / "engines")
    with caplog.at_level(logging.INFO, logger="jepa_world_model.ort_session"):
        _, used = make_session(path, config)
    assert used == "TensorrtExecutionProvider"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    (chain,) = fake_gpu_ort.created
    assert [name for name, _ in chain] == ["TensorrtExecutionProvider", "CUDAExecutionProvider", CPU]
    trt = chain[0][1]
    expected_dir = tmp_path / "engines" / engine_cache_key(file_sha256(path), "FakeGPU sm_89", "10.16.1", ort.__version__, True)
    assert trt["trt_engine_cache_enable"] is True and trt["trt_fp16_enable"] is True
    assert trt["trt_engine_cache_path"] == str(expected_dir) and trt["trt_timing_cache_path"] == str(expected_dir)
    assert trt["trt_timing_cache_enable"] is True and trt["device_id"] == 1
    assert chain[1][1] == {"device_id": 1}


def test_failed_gpu_sessions_fall_back_with_the_error(exported, tmp_path: Path, fake_gpu_ort, caplog) -> None:
    path, _ = exported
    fake_gpu_ort.fail_with = {
        "TensorrtExecutionProvider": "libnvinfer.so.10: cannot open shared object file",
        "CUDAExecutionProvider": "CUDA driver version is insufficient",
    }
    with caplog.at_level(logging.WARNING, logger="jepa_world_model.ort_session"):
        _, used = make_session(path, OrtConfig(engine_cache_dir=tmp_path))
    assert used == CPU
    (record,) = caplog.records
    message = record.getMessage()
    assert "libnvinfer.so.10: cannot open shared object file" in message
    assert "CUDA driver version is insufficient" in message


def test_silent_onnxruntime_fallback_is_detected(exported, fake_gpu_ort, caplog) -> None:
    path, _ = exported
    fake_gpu_ort.silently_fall_back = True
    with caplog.at_level(logging.WARNING, logger="jepa_world_model.ort_session"):
        _, used = make_session(path, OrtConfig(providers=("cuda",)))
    assert used == CPU
    (record,) = caplog.records
    assert "CUDAExecutionProvider is listed but onnxruntime could not enable it" in record.getMessage()


# ------------------------------------------------------------------------------ IO binding and agreement


@pytest.mark.parametrize("use_io_binding", [True, False])
def test_io_bound_runner_matches_session_run(exported, use_io_binding: bool) -> None:
    path, _ = exported
    session, used = make_session(path, OrtConfig(providers=("cpu",), intra_op_threads=1))
    runner = IoBoundRunner(session, used, use_io_binding=use_io_binding)
    feeds = _feeds()
    (expected,) = session.run(None, feeds)
    (got,) = runner.run(feeds)
    np.testing.assert_array_equal(got, expected)
    # A rollout step fed with the previous step's device output gives the same as going through numpy.
    (first,) = runner.run_device(feeds)
    (second,) = runner.run_device({"tokens": first, "action": feeds["action"]})
    (reference,) = session.run(None, {"tokens": expected, "action": feeds["action"]})
    np.testing.assert_allclose(second.numpy(), reference, atol=1e-6)


def test_io_bound_runner_torch_in_torch_out(exported) -> None:
    path, _ = exported
    session, used = make_session(path, OrtConfig(providers=("cpu",), intra_op_threads=1))
    runner = IoBoundRunner(session, used)
    feeds = _feeds(batch=4, seed=2)
    (out,) = runner.run_torch({name: torch.from_numpy(value) for name, value in feeds.items()})
    assert isinstance(out, torch.Tensor) and out.shape == (4, 5, 16)
    np.testing.assert_allclose(out.numpy(), session.run(None, feeds)[0], atol=1e-6)
    with pytest.raises(ValueError, match=r"dtype torch\.complex64"):
        runner.run_torch({"tokens": torch.zeros(4, 5, 16, dtype=torch.complex64), "action": torch.zeros(4, 2)})
    with pytest.raises(ValueError, match="missing \\['action'\\]"):
        runner.run({"tokens": feeds["tokens"]})


def test_every_available_provider_agrees_with_torch(exported) -> None:
    path, model = exported
    feeds = _feeds(batch=6, seed=3)
    with torch.no_grad():
        reference = model(*(torch.from_numpy(feeds[name]) for name in ("tokens", "action"))).numpy()
    results = compare_providers(path, feeds, [reference], atol=1e-4)
    assert results and {r.requested for r in results} >= {CPU}
    for result in results:
        if result.used != result.requested:
            # onnxruntime-gpu on a machine without a GPU lists CUDA/TensorRT but cannot run them.
            assert ort_session.gpu_identity(0) == "nogpu", result
            continue
        assert result.ok, result
        assert result.max_abs_diff <= 1e-4


def test_agreement_check_flags_a_wrong_reference(exported) -> None:
    path, _ = exported
    feeds = _feeds()
    (result,) = compare_providers(path, feeds, [np.zeros((3, 5, 16), np.float32)], providers=["cpu"])
    assert not result.ok and result.max_abs_diff > 1e-2
