"""Model bundles: the unit of deployment shared by perception, the world-model node and planners.

A bundle is a directory::

    manifest.json          schema_version, input spec, latent stats, levels, provenance, metrics, sha256 of every file,
                           optional position readout (linear head latent -> odometry (x, y), plain JSON numbers),
                           optional goal tolerance (the latent distance that counts as "reached" with this latent)
    encoder.onnx           uint8 NHWC images -> latents (normalisation inside)
    predictor.onnx         level-0 one-step predict (z_ctx (B, C, *L), action (B, A0)) -> (B, *L)
    predictor_level{k}.onnx, macro_encoder_level{k}.onnx   coarser levels
    decoder.onnx           optional: latents -> uint8 images, for pictures only
    model.pt               torch checkpoint + config (training, torch backend): tensors and plain data only

``load_bundle(path, backend="torch" | "onnx")`` returns a ``ModelBundle`` implementing
``jepa_world_model.protocol.WorldModel`` with either backend. Loading never unpickles arbitrary
objects (``torch.load(weights_only=True)``), and nothing is opened before the whole manifest is
validated, every named file is inside the bundle directory and every file matches its sha256.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import pickle
import sys
import warnings
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from jepa_common.paths import portable_path
from jepa_world_model.config import ExperimentConfig
from jepa_world_model.manifest import (
    MANIFEST,
    SCHEMA_VERSION,
    BundleError,
    check_manifest,
    check_paths,
    goal_tolerance,
    safe_path,
    sha256_of,
    verify_checksums,
    write_manifest,
)
from jepa_world_model.models.predictors import pad_context
from jepa_world_model.models.world_model import DataDims, JEPAWorldModel
from jepa_world_model.protocol import LevelSpec, sliding_rollout
from jepa_world_model.readout import DEFAULT_EPISODES, DEFAULT_SEED, PositionReadout

__all__ = ["MANIFEST", "SCHEMA_VERSION", "BundleError", "ModelBundle", "load_bundle", "read_manifest", "sha256_of"]
ONNX_OPSET = 17
log = logging.getLogger(__name__)


# ---- export --------------------------------------------------------------------------------------
class _EncoderExport(nn.Module):
    def __init__(self, model: JEPAWorldModel, with_proprio: bool) -> None:
        super().__init__()
        self.model, self.with_proprio = model, with_proprio

    def forward(self, images: torch.Tensor, proprio: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.encoder(images, proprio if self.with_proprio else None)


class _PredictorExport(nn.Module):
    def __init__(self, model: JEPAWorldModel, level: int) -> None:
        super().__init__()
        self.predictor = model.predictors[level]

    def forward(self, z_ctx: torch.Tensor, action: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.predictor(z_ctx, action, noise)


class _DecoderExport(nn.Module):
    def __init__(self, model: JEPAWorldModel) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return (self.decoder(latents) * 255.0).round().clamp(0, 255).to(torch.uint8)


def _onnx_export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic: dict) -> None:
    # eval first: the exporter restores the wrapper's own mode afterwards, which would put BatchNorm back in training mode
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice; it handles these small graphs well
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )


def safe_torch_load(path: Path, device: str | torch.device = "cpu") -> Any:
    """``torch.load`` of tensors and plain data only (``weights_only``): a file holding any other Python
    object is refused with one line instead of running code while it is unpickled."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise BundleError(
            f"{path} holds Python objects other than tensors and plain data; refusing to unpickle it "
            "(re-export it from a trusted run)"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{path} is not a readable torch checkpoint: {first}") from None


def load_run_model(run_or_file: str | Path, device: str = "cpu") -> tuple[JEPAWorldModel, dict[str, Any]]:
    """Rebuild a trained model from ``<run>/final.pt`` (or a bundle's ``model.pt``)."""
    path = Path(run_or_file)
    if path.is_dir():
        path = path / "final.pt"
    if not path.is_file():
        raise FileNotFoundError(f"trained model not found: {path} (train with jepa-train first; final.pt is written at the end)")
    state = safe_torch_load(path, device)
    if not isinstance(state, dict):
        raise BundleError(f"{path} is not a jepa_world_model checkpoint: it holds a {type(state).__name__}, not a dict")
    for key in ("model", "config", "dims", "meta"):
        if key not in state:
            raise BundleError(f"{path} is not a jepa_world_model checkpoint: key '{key}' missing")
    return model_from_state(state).to(device).eval(), state


def model_from_state(state: dict[str, Any]) -> JEPAWorldModel:
    """The model a checkpoint dict (``config``, ``dims``, ``model`` weights) describes, in eval mode."""
    cfg = ExperimentConfig.model_validate(state["config"])
    model = JEPAWorldModel(cfg, DataDims(**state["dims"]), onnx_bytes=state.get("onnx_encoder"))
    model.load_state_dict(state["model"])
    return model.eval()


def level_specs(model: JEPAWorldModel, meta: dict[str, Any]) -> list[LevelSpec]:
    """Levels for the manifest: level 0 bounds are the raw bounds repeated ``frameskip`` times; macro-actions are in [-1, 1]."""
    low = tuple(float(v) for v in meta["raw_action_low"]) * model.frameskip
    high = tuple(float(v) for v in meta["raw_action_high"]) * model.frameskip
    specs = [LevelSpec(0, 1, model.level_action_dims[0], low, high)]
    for lv in range(1, len(model.level_action_dims)):
        d = model.level_action_dims[lv]
        specs.append(LevelSpec(lv, model.level_strides[lv], d, (-1.0,) * d, (1.0,) * d))
    return specs


def export_bundle(
    run_dir: str | Path,
    out_dir: str | Path,
    model_id: str | None = None,
    check_tolerance: float = 1e-4,
    readout_episodes: int = DEFAULT_EPISODES,
    episodes: Any = None,
    encoder_centre: str | None = None,
) -> Path:
    """Export a finished run to a bundle directory; checks ONNX against torch on random inputs.

    Then fits the position readout (``jepa_world_model.readout``) on ``episodes`` when given (e.g. the
    training episodes), else on ``readout_episodes`` episodes of the run's own world or bags; without
    such data (or with ``readout_episodes=0``) the bundle has no readout and a warning says why.

    ``encoder_centre`` replaces the run's ``model.encoder.centre`` (an input step without weights, e.g. "floor"
    for a model trained on black floors: the identity there, so its latents on its own data do not change).

    Raises:
        FileNotFoundError: no ``final.pt`` in ``run_dir``.
        RuntimeError: an ONNX file disagrees with torch by more than ``check_tolerance``.
    """
    model, state = load_run_model(run_dir)
    if encoder_centre is not None and encoder_centre != model.cfg.model.encoder.centre:
        state["config"]["model"]["encoder"]["centre"] = encoder_centre
        model = model_from_state(state)
    cfg: ExperimentConfig = model.cfg
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.onnx"):
        stale.unlink()
    torch.save(state, out / "model.pt")
    dims = model.dims
    files: dict[str, Any] = {
        "torch": "model.pt",
        "encoder": "encoder.onnx",
        "predictors": [],
        "macro_encoders": {},
        "decoder": None,
    }
    g = torch.Generator().manual_seed(0)
    checks: list[tuple[str, nn.Module, dict[str, torch.Tensor]]] = []

    uses_proprio = bool(getattr(model.encoder, "use_proprio", False))
    img = torch.randint(0, 256, (2, dims.image_size, dims.image_size, 3), generator=g, dtype=torch.uint8)
    if model.encoder_frozen:
        (out / "encoder.onnx").write_bytes(model.encoder.onnx_bytes)
    else:
        enc_in = {"images": img}
        dyn = {"images": {0: "batch"}, "latent": {0: "batch"}}
        if uses_proprio:
            enc_in["proprio"] = torch.randn(2, dims.proprio_dim, generator=g)
            dyn["proprio"] = {0: "batch"}
        enc = _EncoderExport(model, uses_proprio)
        _onnx_export(enc, tuple(enc_in.values()), out / "encoder.onnx", list(enc_in), ["latent"], dyn)
        checks.append(("encoder.onnx", enc, enc_in))

    lat = model.latent_shape
    for lv, a_dim in enumerate(model.level_action_dims):
        name = "predictor.onnx" if lv == 0 else f"predictor_level{lv}.onnx"
        pred_in = {"z_ctx": torch.randn(3, model.context, *lat, generator=g), "action": torch.randn(3, a_dim, generator=g)}
        dyn = {"z_ctx": {0: "batch"}, "action": {0: "batch"}, "z_next": {0: "batch"}}
        if model.noise_dim:
            pred_in["noise"] = torch.randn(3, model.noise_dim, generator=g)
            dyn["noise"] = {0: "batch"}
        pe = _PredictorExport(model, lv)
        _onnx_export(pe, tuple(pred_in.values()), out / name, list(pred_in), ["z_next"], dyn)
        files["predictors"].append(name)
        checks.append((name, pe, pred_in))
        if lv > 0:
            mname = f"macro_encoder_level{lv}.onnx"
            macro = model.macro_encoders[lv - 1]
            m_in = {"actions": torch.randn(3, macro.stride, model.level_action_dims[0], generator=g)}
            _onnx_export(
                macro,
                (m_in["actions"],),
                out / mname,
                ["actions"],
                ["macro_action"],
                {"actions": {0: "batch"}, "macro_action": {0: "batch"}},
            )
            files["macro_encoders"][str(lv)] = mname
            checks.append((mname, macro, m_in))
    if model.decoder is not None:
        de = _DecoderExport(model)
        d_in = {"latents": torch.randn(2, *lat, generator=g)}
        _onnx_export(
            de,
            (d_in["latents"],),
            out / "decoder.onnx",
            ["latents"],
            ["images"],
            {"latents": {0: "batch"}, "images": {0: "batch"}},
        )
        files["decoder"] = "decoder.onnx"

    _check_onnx_matches(out, checks, check_tolerance)

    enc_cfg = cfg.model.encoder
    frozen = model.encoder_frozen
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model_id": model_id or f"{cfg.name}-{sha256_of(out / 'model.pt')[:8]}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": {
            "image_size": [dims.image_size, dims.image_size],
            "channels": 3,
            "dtype": "uint8",
            "layout": "NHWC",
            "normalisation": {
                "scale": 1.0 / 255.0,
                "mean": list(enc_cfg.mean),
                "std": list(enc_cfg.std),
                "centre": enc_cfg.centre,
                "inside_model": not frozen,
                "onnx_input_size": enc_cfg.onnx_input_size if frozen else None,
                "onnx_input_layout": enc_cfg.onnx_input_layout if frozen else None,
                "onnx_input_dtype": enc_cfg.onnx_input_dtype if frozen else None,
            },
            "proprio_dim": dims.proprio_dim,
            "uses_proprio": uses_proprio,
        },
        "encoder": {"type": enc_cfg.type, "frozen": frozen},
        "predictor": {"type": cfg.model.predictor.type, "noise_dim": model.noise_dim},
        "latent_shape": list(lat),
        "latent_mean": model.latent_mean.flatten().tolist(),
        "latent_std": model.latent_std.flatten().tolist(),
        "raw_action": {
            "dim": dims.raw_action_dim,
            "low": list(state["meta"]["raw_action_low"]),
            "high": list(state["meta"]["raw_action_high"]),
            "norm_max": state["meta"].get("action_norm_max"),
        },
        "frameskip": model.frameskip,
        "context": model.context,
        "levels": [asdict(s) for s in level_specs(model, state["meta"])],
        "files": files,
        "has_decoder": files["decoder"] is not None,
        "provenance": {
            "source": state["meta"].get("source"),
            "world": state["meta"].get("world"),
            "data": cfg.data.model_dump(mode="json"),
            "seed": cfg.seed,
            "config": cfg.model_dump(mode="json"),
            "run_dir": portable_path(run_dir),
            "torch_version": torch.__version__,
        },
        "metrics": state.get("metrics", {}),
    }
    listed = ["model.pt", "encoder.onnx", *files["predictors"], *files["macro_encoders"].values()] + (
        [files["decoder"]] if files["decoder"] else []
    )
    manifest["checksums"] = {name: sha256_of(out / name) for name in listed}
    write_manifest(out, manifest)
    if episodes is not None or readout_episodes:
        from jepa_world_model.readout import try_add_position_readout

        try_add_position_readout(out, episodes=episodes, n_episodes=readout_episodes)
    return out


def _check_onnx_matches(out: Path, checks: list[tuple[str, nn.Module, dict[str, torch.Tensor]]], tol: float) -> None:
    import onnxruntime as ort

    for name, module, inputs in checks:
        sess = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            ref = module(*inputs.values()).numpy()
        got = sess.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
        diff = float(np.abs(got - ref).max())
        # random check inputs (noise images) can drive outputs far above their usual O(1) range, where
        # float32 rounding alone exceeds an absolute 1e-4: compare relative to the output's magnitude
        scale = max(1.0, float(np.abs(ref).max()))
        if diff > tol * scale:
            raise RuntimeError(f"exported {name} differs from torch by {diff:.2e} (> {tol} x output scale {scale:.3g}); "
                               "export is not trustworthy")


# ---- loading -------------------------------------------------------------------------------------
def read_manifest(path: str | Path, verify: bool = True) -> dict[str, Any]:
    """Manifest of a bundle directory, validated as a whole; every listed file inside the bundle and
    (``verify``) matching its sha256. Nothing else of the bundle is opened before this passes.

    Raises:
        FileNotFoundError: no directory, no manifest, or a listed file missing.
        BundleError (a ValueError): unreadable or invalid manifest (one line naming the field), a path
            leaving the bundle directory, a checksum mismatch.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"model bundle directory not found: {root}")
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise FileNotFoundError(f"{mpath} missing: {root} is not a model bundle (export one with jepa-export)")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath} is not valid JSON: {' '.join(str(exc).split())}") from None
    checked = check_manifest(manifest, str(mpath))
    check_paths(root, checked)
    if verify:
        verify_checksums(root, checked)
    else:
        for name in checked.checksums:
            if not safe_path(root, name, "checksums").is_file():
                raise FileNotFoundError(f"bundle file missing: {root / name} (listed in {MANIFEST}); re-export the bundle")
    return manifest


class ModelBundle:
    """A loaded bundle: encoder + predictors of every level, torch or onnxruntime backend.

    Implements ``jepa_world_model.protocol.WorldModel``. Latents in and out are float32 torch tensors.
    """

    def __init__(
        self,
        path: str | Path,
        backend: str = "torch",
        providers: list[str] | None = None,
        device: str = "cpu",
        onnx_threads: int | None = None,
    ) -> None:
        if backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        m = self.manifest
        self.backend, self.device = backend, torch.device(device)
        self.latent_shape: tuple[int, ...] = tuple(m["latent_shape"])
        self.context: int = int(m["context"])
        self.frameskip: int = int(m["frameskip"])
        self.levels: list[LevelSpec] = [
            LevelSpec(d["level"], d["stride"], d["action_dim"], tuple(d["action_low"]), tuple(d["action_high"]))
            for d in m["levels"]
        ]
        self.latent_mean = torch.tensor(m["latent_mean"], dtype=torch.float32).reshape(self.latent_shape)
        self.latent_std = torch.tensor(m["latent_std"], dtype=torch.float32).reshape(self.latent_shape)
        self.image_size: tuple[int, int] = tuple(m["input"]["image_size"])
        self.uses_proprio: bool = bool(m["input"].get("uses_proprio", False))
        self.proprio_dim: int = int(m["input"].get("proprio_dim", 0))
        self.noise_dim: int = int(m["predictor"].get("noise_dim", 0))
        self.has_decoder: bool = bool(m.get("has_decoder", False))
        self.model_id: str = m["model_id"]
        position = (m.get("readout") or {}).get("position")
        self._readout = PositionReadout.from_manifest(position) if position else None
        self.providers: list[str] = []
        self._model, _ = load_run_model(self.path / m["files"]["torch"], device)
        self._model.requires_grad_(False)  # gradients flow to inputs (actions) only, never to the weights
        if backend == "onnx":
            self._open_sessions(providers, onnx_threads)

    def _open_sessions(self, providers: list[str] | None, threads: int | None) -> None:
        """onnxruntime sessions through ``ort_session.make_session``: the first preferred provider that
        works (TensorRT with a versioned engine cache, CUDA, CPU), one log line when it falls back."""
        from jepa_world_model.ort_session import OrtConfig, make_session

        if providers:
            preferred = tuple(providers)  # asked for explicitly: a fallback is logged with its reason
        else:  # auto: the GPU providers this onnxruntime build has, then CPU (no warning on CPU-only builds)
            import onnxruntime as ort

            built = set(ort.get_available_providers())
            preferred = (*[p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in built], "CPUExecutionProvider")
        config = OrtConfig(providers=preferred, intra_op_threads=threads or 0)
        files = self.manifest["files"]

        def session(name: str) -> Any:
            return make_session(self.path / name, config, logger=log)[0]

        self._enc = None if self.manifest["encoder"]["frozen"] else session(files["encoder"])
        self._preds = [session(n) for n in files["predictors"]]
        self._macros = {int(k): session(v) for k, v in files["macro_encoders"].items()}
        self._dec = session(files["decoder"]) if files.get("decoder") else None
        self.providers = self._preds[0].get_providers()
        log.info("bundle %s: onnxruntime providers in use: %s", self.model_id, self.providers)

    # ---- input checks --------------------------------------------------------------------------
    def _check_images(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        if not isinstance(images, np.ndarray | torch.Tensor):
            raise TypeError(f"images must be a numpy array or torch tensor, got {type(images).__name__}")
        if isinstance(images, np.ndarray) and not images.flags.writeable:
            images = images.copy()  # a view of a ROS message's bytes: torch warns about read-only memory
        x = torch.as_tensor(images)
        if x.dtype != torch.uint8:
            raise ValueError(
                f"images must be uint8 RGB (B, H, W, 3), got dtype {x.dtype}; do not normalise them, the bundle does"
            )
        if x.ndim == 3:
            x = x.unsqueeze(0)
        h, w = self.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (h, w, 3):
            raise ValueError(
                f"image shape {tuple(x.shape)} does not match this bundle's input (B, {h}, {w}, 3); resize to {h}x{w} RGB"
            )
        return x

    def _check_level(self, level: int) -> LevelSpec:
        if not 0 <= level < len(self.levels):
            raise ValueError(f"level {level} does not exist; this bundle has levels 0..{len(self.levels) - 1}")
        return self.levels[level]

    def _check_ctx_action(self, z_ctx: torch.Tensor, action: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        spec = self._check_level(level)
        z_ctx, action = torch.as_tensor(z_ctx, dtype=torch.float32), torch.as_tensor(action, dtype=torch.float32)
        if z_ctx.ndim != 2 + len(self.latent_shape) or tuple(z_ctx.shape[2:]) != self.latent_shape or z_ctx.shape[1] < 1:
            raise ValueError(
                f"z_ctx must be (B, C, {', '.join(map(str, self.latent_shape))}) with C >= 1, got {tuple(z_ctx.shape)}"
            )
        if action.shape != (z_ctx.shape[0], spec.action_dim):
            raise ValueError(f"level {level} action must be (B={z_ctx.shape[0]}, {spec.action_dim}), got {tuple(action.shape)}")
        return z_ctx, action

    # ---- protocol ------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images: np.ndarray | torch.Tensor, proprio: np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
        """uint8 RGB (B, H, W, 3) (or one (H, W, 3) image) -> latents (B, *latent_shape)."""
        x = self._check_images(images)
        p = None
        if self.uses_proprio:
            if proprio is None:
                raise ValueError("this bundle's encoder fuses proprioception: pass proprio (B, P)")
            p = torch.as_tensor(proprio, dtype=torch.float32).reshape(x.shape[0], -1)
        if self.backend == "torch" or self._enc is None:
            return self._model.encoder(x.to(self.device), p.to(self.device) if p is not None else None).float()
        feeds = {"images": x.cpu().numpy()}
        if p is not None:
            feeds["proprio"] = p.numpy()
        return torch.from_numpy(self._enc.run(None, feeds)[0])

    def predict(
        self, z_ctx: torch.Tensor, action: torch.Tensor, level: int = 0, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Next latent (B, *latent_shape); ``noise`` (B, noise_dim) for stochastic models, zeros when None.

        With the torch backend the result is differentiable in ``z_ctx`` and ``action`` when grad mode is
        on (the gradient planner); callers that need no graph run under ``torch.no_grad()``.
        """
        z_ctx, action = self._check_ctx_action(z_ctx, action, level)
        if self.backend == "torch":
            dev = self.device
            return self._model.predict(z_ctx.to(dev), action.to(dev), level, noise.to(dev) if noise is not None else None)
        feeds = {"z_ctx": pad_context(z_ctx.cpu(), self.context).contiguous().numpy(), "action": action.cpu().numpy()}
        if self.noise_dim:
            feeds["noise"] = (noise if noise is not None else torch.zeros(z_ctx.shape[0], self.noise_dim)).float().cpu().numpy()
        return torch.from_numpy(self._preds[level].run(None, feeds)[0])

    def rollout(self, z_ctx: torch.Tensor, actions: torch.Tensor, level: int = 0) -> torch.Tensor:
        """Predicted latents (B, H, *latent_shape) for action sequences (B, H, A_level)."""
        return sliding_rollout(self, z_ctx, actions, level)

    @torch.no_grad()
    def encode_macro(self, actions: torch.Tensor, level: int = 1) -> torch.Tensor:
        """Level-0 action chunks (B, stride, A_0) -> macro-actions (B, A_level) in [-1, 1]."""
        spec = self._check_level(level)
        if level == 0:
            raise ValueError("level 0 has no macro-actions; use level >= 1")
        actions = torch.as_tensor(actions, dtype=torch.float32)
        expected = (spec.stride, self.levels[0].action_dim)
        if actions.ndim != 3 or tuple(actions.shape[1:]) != expected:
            raise ValueError(
                f"level {level} macro encoder expects (B, {expected[0]}, {expected[1]}) level-0 actions, got {tuple(actions.shape)}"
            )
        if self.backend == "torch":
            return self._model.encode_macro(actions.to(self.device), level)
        return torch.from_numpy(self._macros[level].run(None, {"actions": actions.cpu().numpy()})[0])

    @property
    def has_position_readout(self) -> bool:
        return self._readout is not None

    @property
    def position_frame(self) -> str | None:
        """frame_id of ``readout_position``'s positions (the odometry frame of the data it was fitted on)."""
        return self._readout.frame_id if self._readout is not None else None

    @property
    def position_units(self) -> str | None:
        return self._readout.units if self._readout is not None else None

    def readout_position(self, latents: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Latents (..., *latent_shape), any leading batch dims -> positions (..., 2) float32 in
        ``position_frame`` / ``position_units``; the same linear head for both backends (for display)."""
        if self._readout is None:
            raise ValueError(f"bundle {self.path} has no position readout; add one with: jepa-bundle add-readout {self.path}")
        return self._readout(latents, self.latent_shape)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Latents (B, *latent_shape) -> uint8 images (B, H, W, 3); for pictures of imagined futures only."""
        if not self.has_decoder:
            raise ValueError(f"bundle {self.path} has no decoder (trained with decoder.enabled: false)")
        z = torch.as_tensor(latents, dtype=torch.float32)
        if tuple(z.shape[1:]) != self.latent_shape:
            raise ValueError(f"latents must be (B, {', '.join(map(str, self.latent_shape))}), got {tuple(z.shape)}")
        if self.backend == "torch":
            return _DecoderExport(self._model)(z.to(self.device)).cpu().numpy()
        return self._dec.run(None, {"latents": z.cpu().numpy()})[0]


def load_bundle(
    path: str | Path,
    backend: str = "torch",
    providers: list[str] | None = None,
    device: str = "cpu",
    onnx_threads: int | None = None,
) -> ModelBundle:
    """Load and verify a bundle (manifest schema, checksums). See ``ModelBundle``.

    Args:
        path: bundle directory.
        backend: "torch" (model.pt) or "onnx" (onnxruntime sessions over the .onnx files).
        providers: onnxruntime providers in order of preference; None picks TensorRT, CUDA, then CPU where available.
        device: torch device of the torch backend.
        onnx_threads: onnxruntime intra-op threads (None: its default).
    """
    return ModelBundle(path, backend=backend, providers=providers, device=device, onnx_threads=onnx_threads)


def summarise(manifest: dict[str, Any]) -> str:
    """Human-readable manifest summary for ``jepa-bundle info``."""
    lines = [
        f"model_id:      {manifest['model_id']}  (schema {manifest['schema_version']}, created {manifest.get('created')})",
        f"input:         {manifest['input']['image_size']} x {manifest['input']['channels']} {manifest['input']['dtype']} {manifest['input']['layout']}",
        f"encoder:       {manifest['encoder']['type']}{' (frozen ONNX)' if manifest['encoder'].get('frozen') else ''}",
        f"latent_shape:  {manifest['latent_shape']}",
        f"frameskip:     {manifest['frameskip']}   context: {manifest['context']}",
        f"predictor:     {manifest['predictor']['type']} (noise_dim {manifest['predictor'].get('noise_dim', 0)})",
    ]
    for lv in manifest["levels"]:
        lines.append(f"level {lv['level']}:       stride {lv['stride']}, action_dim {lv['action_dim']}")
    prov = manifest.get("provenance", {})
    lines.append(f"data:          {prov.get('data')}")
    metrics = manifest.get("metrics", {})
    keys = ("val_pred_error_1", "val_pred_error_8", "val_level1_pred_error_1", "effective_rank", "probe_r2")
    shown = {k: round(metrics[k], 4) for k in keys if k in metrics}
    lines.append(f"metrics:       {json.dumps(shown)}")
    lines.append(f"decoder:       {'yes' if manifest.get('has_decoder') else 'no'}")
    pos = (manifest.get("readout") or {}).get("position")
    if pos:
        data = pos.get("fit", {}).get("data", {})
        lines.append(f"readout:       position in frame '{pos['frame_id']}' ({pos['units']}), held-out R^2 {pos.get('r2')} "
                     f"({data.get('source')} {data.get('world', '')}, {data.get('episodes')} episodes)")
    else:
        lines.append("readout:       none (plans are not drawn as paths; add one with jepa-bundle add-readout)")
    tol = goal_tolerance(manifest)
    lines.append(f"goal:          tolerance {tol} ({manifest['goal'].get('basis') or 'no basis given'})" if tol is not None
                 else "goal:          no tolerance (the configurator's default_tolerance, else 0.03; set one with "
                      "jepa-bundle set-tolerance)")
    return "\n".join(lines)


def export_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jepa-export", description="Export a finished training run to a model bundle directory.")
    p.add_argument("--run", required=True, help="run directory written by jepa-train (must contain final.pt)")
    p.add_argument("--out", required=True, help="bundle directory to write (e.g. models/two_rooms)")
    p.add_argument(
        "--model-id", default=None, help="model id for the manifest (default <config name>-<sha256 prefix of model.pt>)"
    )
    p.add_argument(
        "--readout-episodes",
        type=int,
        default=DEFAULT_EPISODES,
        help="episodes of the run's world (or bags) the position readout is fitted on (0: no readout)",
    )
    p.add_argument(
        "--encoder-centre", choices=("none", "median", "floor"), default=None,
        help="replace the run's model.encoder.centre (an input step without weights; default: keep the run's)",
    )
    args = p.parse_args(argv)
    if args.readout_episodes < 0:
        p.error("--readout-episodes must be >= 0")
    try:
        out = export_bundle(
            args.run, args.out, args.model_id, readout_episodes=args.readout_episodes, encoder_centre=args.encoder_centre
        )
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"jepa-export: {exc}", file=sys.stderr)
        return 1
    print(summarise(read_manifest(out)))
    print(f"bundle written to {out}")
    return 0


def _info(path: str, as_json: bool) -> int:
    manifest = read_manifest(path, verify=True)
    # the checkpoint must also load as tensors and plain data: a bundle that would run code is refused here too
    load_run_model(Path(path) / manifest["files"]["torch"])
    print(json.dumps(manifest, indent=2) if as_json else summarise(manifest))
    print(f"checksums:     OK ({len(manifest['checksums'])} files)")
    return 0


def _add_readout(args: argparse.Namespace) -> int:
    from jepa_world_model.readout import add_position_readout

    torch.set_num_threads(max(1, args.threads))
    entry = add_position_readout(args.path, n_episodes=args.episodes, seed=args.seed, frame_id=args.frame_id, units=args.units)
    fit = entry["fit"]
    print(
        f"position readout of {args.path}: frame '{entry['frame_id']}' ({entry['units']}), held-out R^2 {entry['r2']:.4f} "
        f"(x {fit['r2_xy'][0]:.4f}, y {fit['r2_xy'][1]:.4f}; RMSE {fit['rmse_xy'][0]:.3g}, {fit['rmse_xy'][1]:.3g} {entry['units']}) "
        f"over {fit['heldout_frames']} frames of {fit['heldout_episodes']} held-out episodes"
    )
    return 0


def set_goal_tolerance(path: str | Path, tolerance: float, basis: str = "") -> dict[str, Any]:
    """Store the bundle's goal tolerance in its manifest (replacing an older one); the bundle is verified first.

    Raises:
        ValueError: a tolerance that is not a positive finite number (BundleError for a bad bundle).
    """
    root = Path(path)
    if not math.isfinite(tolerance) or tolerance <= 0:
        raise ValueError(f"the goal tolerance must be a positive finite normalised latent distance, got {tolerance}")
    raw = read_manifest(root, verify=True)  # the manifest as read (validated, every file checked)
    raw["goal"] = {"tolerance": float(tolerance), "basis": basis}
    write_manifest(root, raw)
    return raw["goal"]


def bundle_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="jepa-bundle", description="Inspect model bundles; add a position readout or a goal tolerance.")
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print the manifest summary; verify the manifest, every file's sha256 and the checkpoint")
    info.add_argument("path", help="bundle directory")
    info.add_argument("--json", action="store_true", help="print the whole manifest as JSON instead of a summary")
    add = sub.add_parser(
        "add-readout",
        help="fit (or refit) the linear position readout latent -> odometry (x, y) on episodes of the bundle's own "
        "world (or bags) and store it in manifest.json",
    )
    add.add_argument("path", help="bundle directory")
    add.add_argument("--episodes", type=int, default=DEFAULT_EPISODES, help="episodes collected (a fifth is held out for R^2)")
    add.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the collected episodes and the held-out split")
    add.add_argument("--frame-id", default=None, help="frame of the positions (default: map for the sims, odom for bags)")
    add.add_argument("--units", default=None, help="units of the positions (default: the world's, e.g. px or m)")
    add.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    tol = sub.add_parser(
        "set-tolerance",
        help="store the goal tolerance that suits this bundle's latent (normalised latent distance: the configurator "
        "uses it when its default_tolerance is 0 and a goal gives none); bench/calibrate_tolerance.py measures "
        "the distance of a 1 px move",
    )
    tol.add_argument("path", help="bundle directory")
    tol.add_argument("tolerance", type=float, help="normalised latent distance below which a goal counts as reached")
    tol.add_argument("--basis", default="", help="how the value was chosen, stored beside it (e.g. a calibration figure)")
    args = p.parse_args(argv)
    try:
        if args.command == "info":
            return _info(args.path, args.json)
        if args.command == "set-tolerance":
            goal = set_goal_tolerance(args.path, args.tolerance, args.basis)
            print(f"goal tolerance of {args.path}: {goal['tolerance']}")
            return 0
        return _add_readout(args)
    except (FileNotFoundError, ValueError, ImportError) as exc:
        print(f"jepa-bundle: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(bundle_main())
