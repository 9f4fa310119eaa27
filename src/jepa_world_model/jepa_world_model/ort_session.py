"""onnxruntime sessions for the GPU path: provider choice, TensorRT engine cache, IO binding.

The suite runs the same ONNX networks on a laptop CPU and on an NVIDIA GPU. This module
picks the first execution provider the caller prefers that actually works, keeps TensorRT
engines in an on-disk cache whose directory name changes whenever anything the engine
depends on changes (so a restart reuses the engine and an upgrade never loads a stale one),
and runs sessions with IO binding so a planner loop keeps tensors on the device.

Why the cache key: TensorRT engines are specific to the model, the GPU architecture and the
TensorRT build; a stale engine either fails to load or is silently rebuilt for minutes at every
start (the top complaint about Isaac ROS DNN inference, see docs/background.md).
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

_LOG = logging.getLogger("jepa_world_model.ort_session")

# Short names accepted in configs and YAML -> onnxruntime provider names.
PROVIDER_NAMES: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_GPU_PROVIDERS = frozenset({"TensorrtExecutionProvider", "CUDAExecutionProvider"})
DEFAULT_ENGINE_CACHE_DIR = Path(os.environ.get("JEPA_TRT_CACHE", "~/.cache/jepa_agent/trt_engines"))


@dataclass(frozen=True)
class OrtConfig:
    """How to build an inference session.

    Attributes:
        providers: preference order, short names ("tensorrt", "cuda", "cpu") or onnxruntime names.
            The first one that is available and creates a session wins; CPU is always the last resort.
        fp16: let TensorRT build fp16 kernels (outputs then differ from fp32 by about 1e-3).
        device_id: CUDA device index for the GPU providers.
        engine_cache_dir: parent directory of the TensorRT engine caches (one sub-directory per cache key).
        intra_op_threads: threads for CPU kernels; 0 lets onnxruntime decide.
        allow_spinning: let idle CPU worker threads busy-wait for the next kernel (onnxruntime's default).
            Off here: on a robot's few cores the spinning steals CPU from everything else. Measured on
            2 cores (bench/bench_e2e.py's in-process loop, ORT encoder + torch planner
            in one process): replan 84 ms with spinning, 33 ms without; encode 0.42 -> 0.62 ms.
    """

    providers: tuple[str, ...] = ("tensorrt", "cuda", "cpu")
    fp16: bool = False
    device_id: int = 0
    engine_cache_dir: Path = field(default=DEFAULT_ENGINE_CACHE_DIR)
    intra_op_threads: int = 0
    allow_spinning: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.providers, str):
            raise ValueError(f"OrtConfig.providers must be a list of names, got the string {self.providers!r}")
        if not self.providers:
            raise ValueError("OrtConfig.providers is empty: list at least one of tensorrt, cuda, cpu")
        object.__setattr__(self, "providers", tuple(provider_name(p) for p in self.providers))
        object.__setattr__(self, "engine_cache_dir", Path(self.engine_cache_dir).expanduser())
        if self.device_id < 0:
            raise ValueError(f"OrtConfig.device_id must be >= 0, got {self.device_id}")
        if self.intra_op_threads < 0:
            raise ValueError(f"OrtConfig.intra_op_threads must be >= 0 (0 = onnxruntime default), got {self.intra_op_threads}")


def provider_name(name: str) -> str:
    """Short or full provider name -> onnxruntime's name. Raises ValueError for an unknown one."""
    key = name.strip().lower()
    if key in PROVIDER_NAMES:
        return PROVIDER_NAMES[key]
    if name in PROVIDER_NAMES.values():
        return name
    raise ValueError(
        f"unknown execution provider {name!r}: use one of {sorted(PROVIDER_NAMES)} (or {sorted(PROVIDER_NAMES.values())})"
    )


# ---------------------------------------------------------------------------------------------
# Engine cache key


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (models are read in chunks: they can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=8)
def gpu_identity(device_id: int = 0) -> str:
    """'<GPU name> sm_<major><minor>' of a CUDA device, or 'nogpu'.

    Asks torch first (already loaded in the suite), then ``nvidia-smi``; both can be absent.
    """
    try:
        import torch

        if torch.cuda.is_available() and device_id < torch.cuda.device_count():
            major, minor = torch.cuda.get_device_capability(device_id)
            return f"{torch.cuda.get_device_name(device_id)} sm_{major}{minor}"
    except Exception as exc:  # a broken CUDA install must not stop a CPU run
        _LOG.debug("torch could not query CUDA device %d: %s", device_id, exc)
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name,compute_cap", "--format=csv,noheader", f"--id={device_id}"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            name, cap = (part.strip() for part in out.splitlines()[0].rsplit(",", 1))
            return f"{name} sm_{cap.replace('.', '')}"
        except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
            _LOG.debug("nvidia-smi could not query device %d: %s", device_id, exc)
    return "nogpu"


@lru_cache(maxsize=1)
def tensorrt_version() -> str:
    """Version of the TensorRT that onnxruntime would load, or 'notrt'.

    Tries the Python packages first, then the library itself (getInferLibVersion), which covers
    TensorRT installed from Debian packages or an NGC image without the Python bindings.
    """
    for dist in ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-libs", "tensorrt-cu12-libs", "tensorrt-libs"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    for soname in ("libnvinfer.so.10", "libnvinfer.so.11", "libnvinfer.so"):
        try:
            lib = ctypes.CDLL(soname)
        except OSError:
            continue
        code = int(lib.getInferLibVersion())  # major*10000 + minor*100 + patch since TensorRT 10
        return f"{code // 10000}.{code // 100 % 100}.{code % 100}"
    return "notrt"


def engine_cache_key(
    model_sha256: str,
    gpu: str,
    trt_version: str,
    ort_version: str,
    fp16: bool,
) -> str:
    """16 hex digits naming a TensorRT engine cache directory.

    Args:
        model_sha256: sha256 of the ONNX file.
        gpu: GPU name and compute capability, as ``gpu_identity`` gives it.
        trt_version: TensorRT version (``tensorrt_version``).
        ort_version: onnxruntime version.
        fp16: whether fp16 kernels are enabled.
    Returns:
        A key that changes when any argument changes.
    """
    parts = {"model": model_sha256, "gpu": gpu, "tensorrt": trt_version, "onnxruntime": ort_version, "fp16": bool(fp16)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def engine_cache_dir_for(onnx_path: str | os.PathLike[str], config: OrtConfig) -> Path:
    """The engine cache directory of a model under ``config`` (created, with a key.json saying what it is for)."""
    parts = {
        "model": file_sha256(onnx_path),
        "gpu": gpu_identity(config.device_id),
        "tensorrt": tensorrt_version(),
        "onnxruntime": ort.__version__,
        "fp16": config.fp16,
    }
    key = engine_cache_key(parts["model"], parts["gpu"], parts["tensorrt"], parts["onnxruntime"], parts["fp16"])
    path = config.engine_cache_dir / key
    path.mkdir(parents=True, exist_ok=True)
    manifest = path / "key.json"
    if not manifest.exists():  # lets a person see which model/GPU an engine directory belongs to
        manifest.write_text(json.dumps({**parts, "model_path": str(Path(onnx_path).resolve())}, indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# Sessions


def _provider_options(provider: str, onnx_path: Path, config: OrtConfig) -> dict[str, object]:
    if provider == "TensorrtExecutionProvider":
        cache = str(engine_cache_dir_for(onnx_path, config))
        return {
            "device_id": config.device_id,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": cache,
            "trt_fp16_enable": config.fp16,
        }
    if provider == "CUDAExecutionProvider":
        return {"device_id": config.device_id}
    return {}


@lru_cache(maxsize=1)
def _preload_gpu_libraries() -> None:
    # onnxruntime-gpu >= 1.21 can load CUDA/cuDNN from the nvidia-* pip wheels that torch brings.
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as exc:
        _LOG.debug("onnxruntime.preload_dlls failed: %s", exc)


def make_session(
    onnx_path: str | os.PathLike[str],
    config: OrtConfig | None = None,
    logger: logging.Logger = _LOG,
) -> tuple[ort.InferenceSession, str]:
    """An inference session on the first preferred provider that works.

    A GPU provider that onnxruntime lists but cannot start (CUDA libraries missing) makes
    onnxruntime silently run on CPU; this is detected and counted as a failure of that provider.
    Falling back logs one warning line saying why each preferred provider was skipped.

    Args:
        onnx_path: the ONNX file.
        config: provider preference and options (default ``OrtConfig()``).
        logger: where the fallback line goes.
    Returns:
        (session, provider actually used, e.g. "CUDAExecutionProvider").
    Raises:
        FileNotFoundError: no such ONNX file.
    """
    config = config or OrtConfig()
    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path} (export the model bundle first)")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if config.intra_op_threads:
        options.intra_op_num_threads = config.intra_op_threads
    if not config.allow_spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")

    available = ort.get_available_providers()
    preferred = list(dict.fromkeys([*config.providers, PROVIDER_NAMES["cpu"]]))
    skipped: list[str] = []
    for index, provider in enumerate(preferred):
        if provider not in available:
            skipped.append(f"{provider} not available in this onnxruntime build (available: {', '.join(available)})")
            continue
        # Later GPU providers stay in the list so TensorRT can hand unsupported nodes to CUDA.
        chain = [provider] + [p for p in preferred[index + 1 :] if p in available and p != provider]
        try:
            if provider in _GPU_PROVIDERS:
                _preload_gpu_libraries()
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=[(p, _provider_options(p, path, config)) for p in chain]
            )
        except Exception as exc:
            skipped.append(f"{provider} session creation failed: {' '.join(str(exc).split())}")
            continue
        used = session.get_providers()[0]
        if used != provider:
            # onnxruntime fell back along ``chain`` by itself: accept it, it is what we would try next.
            skipped.append(
                f"{provider} is listed but onnxruntime could not enable it and fell back to {used} (CUDA/cuDNN/TensorRT libraries missing?)"
            )
            provider = used
        if skipped:
            logger.warning("onnxruntime: running %s on %s because %s", path.name, provider, "; ".join(skipped))
        else:
            logger.info("onnxruntime: running %s on %s", path.name, provider)
        return session, provider
    raise RuntimeError(f"onnxruntime could not create a session for {path} on any provider: {'; '.join(skipped)}")


# ---------------------------------------------------------------------------------------------
# IO binding


def _ort_device(provider: str) -> str:
    return "cuda" if provider in _GPU_PROVIDERS else "cpu"


_TORCH_TO_NUMPY = {
    "torch.float32": np.float32,
    "torch.float16": np.float16,
    "torch.float64": np.float64,
    "torch.int64": np.int64,
    "torch.int32": np.int32,
    "torch.uint8": np.uint8,
    "torch.int8": np.int8,
    "torch.bool": np.bool_,
}


class IoBoundRunner:
    """Runs a session with IO binding so inputs and outputs stay on the provider's device.

    On CUDA/TensorRT the outputs are device ``OrtValue``s (or torch CUDA tensors) that the next
    call can take as inputs, so a planner's rollout loop never copies latents through host
    memory. On CPU the plain ``session.run`` is used unless ``use_io_binding=True``.
    """

    def __init__(self, session: ort.InferenceSession, provider: str, device_id: int = 0, use_io_binding: bool | None = None):
        """Args: session and the provider ``make_session`` returned; device_id of the GPU providers;
        use_io_binding: force binding on/off (default: on for GPU providers)."""
        self.session = session
        self.device = _ort_device(provider_name(provider))
        self.device_id = device_id if self.device == "cuda" else 0
        self.use_io_binding = self.device == "cuda" if use_io_binding is None else use_io_binding
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    def _check_feeds(self, feeds: Mapping[str, object]) -> None:
        missing = set(self.input_names) - set(feeds)
        extra = set(feeds) - set(self.input_names)
        if missing or extra:
            raise ValueError(
                f"inputs do not match the model: missing {sorted(missing)}, unknown {sorted(extra)} (model inputs: {self.input_names})"
            )

    def run_device(self, feeds: Mapping[str, np.ndarray | ort.OrtValue]) -> list[ort.OrtValue]:
        """Outputs as OrtValues on the runner's device, in the model's output order."""
        self._check_feeds(feeds)
        binding = self.session.io_binding()
        for name in self.input_names:
            value = feeds[name]
            if not isinstance(value, ort.OrtValue):
                value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value), self.device, self.device_id)
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, self.device, self.device_id)
        binding.synchronize_inputs()
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return binding.get_outputs()

    def run(self, feeds: Mapping[str, np.ndarray | ort.OrtValue]) -> list[np.ndarray]:
        """Same result as ``session.run(None, feeds)``: host arrays in the model's output order."""
        if not self.use_io_binding:
            self._check_feeds(feeds)
            host = {k: v.numpy() if isinstance(v, ort.OrtValue) else v for k, v in feeds.items()}
            return self.session.run(None, host)
        return [value.numpy() for value in self.run_device(feeds)]

    def run_torch(self, feeds: Mapping[str, object]) -> list[object]:
        """torch tensors in, torch tensors out, on the tensors' device, without a host copy on CUDA.

        Inputs are bound by pointer (they must live on the runner's device); outputs are
        allocated by onnxruntime and handed to torch through DLPack.
        """
        import torch

        self._check_feeds(feeds)
        binding = self.session.io_binding()
        keep_alive = []
        for name in self.input_names:
            tensor = feeds[name]
            if not isinstance(tensor, torch.Tensor):
                raise ValueError(f"run_torch input {name!r} must be a torch.Tensor, got {type(tensor).__name__}")
            if tensor.device.type != self.device:
                raise ValueError(
                    f"run_torch input {name!r} is on {tensor.device}, the session runs on {self.device}: move it first"
                )
            if str(tensor.dtype) not in _TORCH_TO_NUMPY:
                raise ValueError(f"run_torch input {name!r} has dtype {tensor.dtype}; supported: {sorted(_TORCH_TO_NUMPY)}")
            tensor = tensor.contiguous()
            keep_alive.append(tensor)
            binding.bind_input(
                name, self.device, self.device_id, _TORCH_TO_NUMPY[str(tensor.dtype)], list(tensor.shape), tensor.data_ptr()
            )
        for name in self.output_names:
            binding.bind_output(name, self.device, self.device_id)
        if self.device == "cuda":
            torch.cuda.current_stream().synchronize()  # inputs written by torch kernels must be complete
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return [_ortvalue_to_torch(v) for v in binding.get_outputs()]


def _ortvalue_to_torch(value: ort.OrtValue) -> object:
    import torch

    to_dlpack = getattr(value, "to_dlpack", None)
    if to_dlpack is not None:
        try:
            return torch.from_dlpack(to_dlpack())
        except Exception as exc:  # some builds have the method without DLPack support
            _LOG.debug("OrtValue.to_dlpack failed (%s): copying through host memory", exc)
    return torch.from_numpy(value.numpy())


# ---------------------------------------------------------------------------------------------
# Agreement between providers


@dataclass(frozen=True)
class ProviderAgreement:
    """Result of comparing one provider's outputs with a reference.

    Attributes:
        requested: provider asked for; used: provider the session really ran on;
        max_abs_diff: largest absolute difference over all outputs; ok: within tolerance and on the requested provider.
    """

    requested: str
    used: str
    max_abs_diff: float
    ok: bool


def compare_providers(
    onnx_path: str | os.PathLike[str],
    feeds: Mapping[str, np.ndarray],
    reference: Sequence[np.ndarray],
    atol: float = 1e-4,
    providers: Sequence[str] | None = None,
    config: OrtConfig | None = None,
) -> list[ProviderAgreement]:
    """Run the model on every available provider and compare its outputs with ``reference``.

    Args:
        onnx_path: the ONNX file.
        feeds: input name -> array.
        reference: expected outputs in the model's output order (e.g. the torch module's).
        atol: allowed absolute difference (TensorRT fp16 needs about 1e-2).
        providers: providers to check (default: those of tensorrt/cuda/cpu this onnxruntime lists).
        config: base options (fp16, device, cache dir); its provider list is replaced per check.
    Returns:
        One ProviderAgreement per provider checked.
    """
    base = config or OrtConfig()
    known = [p for p in PROVIDER_NAMES.values() if p in ort.get_available_providers()]
    wanted = [provider_name(p) for p in providers] if providers is not None else known
    results = []
    for provider in wanted:
        cfg = replace(base, providers=(provider,))
        session, used = make_session(onnx_path, cfg)
        outputs = IoBoundRunner(session, used, cfg.device_id).run(feeds)
        if len(outputs) != len(reference):
            raise ValueError(f"{onnx_path} has {len(outputs)} outputs, the reference has {len(reference)}")
        diff = max(
            float(np.max(np.abs(np.asarray(o, np.float64) - np.asarray(r, np.float64)))) for o, r in zip(outputs, reference)
        )
        results.append(ProviderAgreement(provider, used, diff, ok=used == provider and diff <= atol))
    return results
