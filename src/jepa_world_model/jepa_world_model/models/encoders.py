"""Image encoders: uint8 NHWC images in, latents out.

Normalisation lives inside the module so an exported ONNX file takes raw camera
bytes and nobody has to copy mean/std into another node.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jepa_common import plugins
from jepa_world_model.config import EncoderConfig


class ImageNormalizer(nn.Module):
    """uint8 (B, H, W, 3) -> float (B, 3, H, W), scaled to [0, 1], centred, then standardised.

    ``centre`` (per image and channel, m = the median: the floor colour of a mostly-floor scene): "median"
    subtracts m; "floor" maps m to 0 and 1 to 1 and clips below, clip((x - m) / (1 - m), 0, 1), so a scene
    drawn over a floor of any colour (or a camera's black-level offset) comes out as it would over a black
    floor. Both are the identity where the floor is black (m = 0), so a model trained on black floors keeps its
    latents exactly there.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], centre: str = "none") -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.centre = centre

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        if self.centre != "none":  # the lower median of H*W values, by a sort (exports to ONNX as TopK)
            flat = x.flatten(2)
            m = flat.sort(dim=2).values[:, :, (flat.shape[2] - 1) // 2, None, None]
            x = x - m if self.centre == "median" else ((x - m) / (1.0 - m).clamp_min(0.05)).clamp_min(0.0)
        return (x - self.mean) / self.std


def register_proprio_scale(module: nn.Module, cfg: EncoderConfig, proprio_dim: int) -> None:
    """A ``proprio_scale`` buffer (so it is saved with the weights and exported to ONNX) when the config sets one;
    ValueError when its length is not the proprio size or a value is not > 0."""
    scale = list(cfg.proprio_scale)
    if not (module.use_proprio and scale):
        return
    if len(scale) != proprio_dim or not all(v > 0 for v in scale):
        raise ValueError(f"encoder.proprio_scale needs {proprio_dim} values > 0 (one per proprio value), got {scale}")
    module.register_buffer("proprio_scale", torch.tensor(scale, dtype=torch.float32))


def scaled_proprio(module: nn.Module, proprio: torch.Tensor) -> torch.Tensor:
    scale = getattr(module, "proprio_scale", None)
    return proprio if scale is None else proprio / scale


class SpatialSoftmax(nn.Module):
    """(B, K, H, W) maps -> (B, 2K): each map's softmax (learned temperature) as a distribution over the image,
    and its expected (x, y), both in [-1, 1] (x right, y down): where the thing the channel responds to is."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], dim=1))
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(maps.flatten(2) / self.log_temperature.exp(), dim=2)
        return (weights @ self.grid).flatten(1)


class CNNEncoder(nn.Module):
    """Strided conv stack + linear head to a vector latent.

    Flattening the last feature map (instead of global pooling) keeps *where*
    things are, which is what a navigation latent must encode precisely.
    """

    def __init__(self, cfg: EncoderConfig, image_size: int, proprio_dim: int = 0) -> None:
        super().__init__()
        self.normalize = ImageNormalizer(cfg.mean, cfg.std, cfg.centre)
        layers: list[nn.Module] = []
        in_ch, size = 3, image_size
        if image_size >> len(cfg.channels) < 1:
            raise ValueError(f"encoder.channels has {len(cfg.channels)} stride-2 stages: too many for {image_size} px images")
        # the last feature map feeds a head unless keypoints make the agent part and there is no layout part;
        # then no stage after the keypoint stage is built
        full_stack = not cfg.keypoints or bool(cfg.layout_dim)
        stages = cfg.channels if full_stack else cfg.channels[: cfg.keypoint_stage]
        for ch in stages:
            layers += [nn.Conv2d(in_ch, ch, 4, stride=2, padding=1), nn.GELU()]
            in_ch, size = ch, size // 2
        self.convs = nn.Sequential(*layers)
        self.keypoints, self.keypoint_stage = None, cfg.keypoint_stage
        if cfg.keypoints:  # the agent part from keypoints of an earlier (finer) stage
            side = image_size >> cfg.keypoint_stage
            self.keypoints = nn.Sequential(nn.Conv2d(cfg.channels[cfg.keypoint_stage - 1], cfg.keypoints, 1), SpatialSoftmax(side, side))
        self.use_proprio = cfg.use_proprio and proprio_dim > 0
        register_proprio_scale(self, cfg, proprio_dim)
        flat = in_ch * size * size
        # Per-feature batch normalisation before the head: in sparse scenes (a small agent on a static
        # background) the features that depend on the agent are tiny next to the constant ones, so an
        # unnormalised head starts with near-constant latents that the variance term cannot pull apart.
        # ``feature_norm_eps`` floors the variance so near-constant features are not blown up (camera noise robustness).
        self.feature_norm = (
            nn.BatchNorm1d(flat, eps=cfg.feature_norm_eps) if cfg.feature_norm == "batch" and full_stack else nn.Identity()
        )
        separate = cfg.proprio_latent_dim if self.use_proprio else 0
        if separate >= cfg.latent_dim:
            raise ValueError(f"encoder.proprio_latent_dim ({separate}) must leave image dimensions in latent_dim ({cfg.latent_dim})")
        self.proprio_head = (
            nn.Sequential(nn.Linear(proprio_dim, 64), nn.GELU(), nn.Linear(64, separate)) if separate else None
        )
        fused = self.use_proprio and not separate
        self.layout_dim, self.layout_bound = cfg.layout_dim, float(cfg.layout_bound)
        agent_dim = cfg.latent_dim - separate - self.layout_dim
        if self.keypoints is not None:  # linear in the keypoints: a keypoint's move is a straight line in the latent
            self.head = nn.Linear(2 * cfg.keypoints, agent_dim)
        else:
            self.head = nn.Sequential(nn.Linear(flat + (proprio_dim if fused else 0), 256), nn.GELU(), nn.Linear(256, agent_dim))
        self.layout_head = (
            nn.Sequential(nn.Linear(flat, 128), nn.GELU(), nn.Linear(128, self.layout_dim)) if self.layout_dim else None
        )
        self.latent_shape: tuple[int, ...] = (cfg.latent_dim,)

    def layout(self, h: torch.Tensor) -> torch.Tensor:
        """The layout part from the conv features, bounded to +-``layout_bound`` when that is set."""
        out = self.layout_head(h)
        return out if not self.layout_bound else self.layout_bound * torch.tanh(out / self.layout_bound)

    def forward(self, images: torch.Tensor, proprio: torch.Tensor | None = None) -> torch.Tensor:
        x = self.normalize(images)
        if self.keypoints is not None:
            stage = self.convs[: 2 * self.keypoint_stage](x)  # each stage is a conv and a GELU
            parts = [self.head(self.keypoints(stage))]  # image part, proprio part, layout part
            if self.proprio_head is not None:
                if proprio is None:
                    raise ValueError("this encoder fuses proprioception: pass proprio (B, P)")
                parts.append(self.proprio_head(scaled_proprio(self, proprio).to(stage.dtype)))
            if self.layout_head is not None:
                parts.append(self.layout(self.feature_norm(self.convs[2 * self.keypoint_stage :](stage).flatten(1))))
            return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        h = self.feature_norm(self.convs(x).flatten(1))
        layout = [] if self.layout_head is None else [self.layout(h)]
        if not self.use_proprio:
            return torch.cat([self.head(h), *layout], dim=1) if layout else self.head(h)
        if proprio is None:
            raise ValueError("this encoder fuses proprioception: pass proprio (B, P)")
        p = scaled_proprio(self, proprio).to(h.dtype)
        if self.proprio_head is not None:  # image part, proprio part, layout part
            return torch.cat([self.head(h), self.proprio_head(p), *layout], dim=1)
        return torch.cat([self.head(torch.cat([h, p], dim=1)), *layout], dim=1)


class ViTEncoder(nn.Module):
    """Small vision transformer: patch tokens (N, D) or their mean as a vector latent."""

    def __init__(self, cfg: EncoderConfig, image_size: int, proprio_dim: int = 0) -> None:
        super().__init__()
        if image_size % cfg.patch_size:
            raise ValueError(f"image size {image_size} is not a multiple of encoder.patch_size {cfg.patch_size}")
        self.normalize = ImageNormalizer(cfg.mean, cfg.std, cfg.centre)
        self.patch = nn.Conv2d(3, cfg.vit_dim, cfg.patch_size, stride=cfg.patch_size)
        n_tokens = (image_size // cfg.patch_size) ** 2
        self.pos = nn.Parameter(torch.randn(1, n_tokens, cfg.vit_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            cfg.vit_dim, cfg.vit_heads, dim_feedforward=2 * cfg.vit_dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, cfg.vit_depth, enable_nested_tensor=False)
        self.use_proprio = cfg.use_proprio and proprio_dim > 0
        register_proprio_scale(self, cfg, proprio_dim)
        if self.use_proprio:
            self.proprio_proj = nn.Linear(proprio_dim, cfg.vit_dim)
        self.norm = nn.LayerNorm(cfg.vit_dim)
        self.out = nn.Linear(cfg.vit_dim, cfg.latent_dim)
        self.pool = cfg.pool
        self.latent_shape = (cfg.latent_dim,) if cfg.pool else (n_tokens, cfg.latent_dim)

    def forward(self, images: torch.Tensor, proprio: torch.Tensor | None = None) -> torch.Tensor:
        tokens = self.patch(self.normalize(images)).flatten(2).transpose(1, 2) + self.pos
        if self.use_proprio:
            if proprio is None:
                raise ValueError("this encoder fuses proprioception: pass proprio (B, P)")
            # proprio is added to every patch token: a cheap fusion that keeps the token count fixed
            tokens = tokens + self.proprio_proj(scaled_proprio(self, proprio).to(tokens.dtype)).unsqueeze(1)
        tokens = self.out(self.norm(self.blocks(tokens)))
        return tokens.mean(dim=1) if self.pool else tokens


class OnnxFrozenEncoder(nn.Module):
    """A user's own encoder from an ONNX file, frozen: only predictors train on top.

    Input size, layout, dtype and normalisation come from the config, because an
    arbitrary ONNX file does not tell how it expects its pixels.
    """

    frozen = True

    def __init__(self, cfg: EncoderConfig, image_size: int, onnx_bytes: bytes | None = None) -> None:
        super().__init__()
        import onnxruntime as ort

        if onnx_bytes is None:
            path = Path(cfg.onnx_path or "")
            if not path.is_file():
                raise FileNotFoundError(f"encoder.onnx_path: ONNX encoder file not found: {path}")
            onnx_bytes = path.read_bytes()
        self.onnx_bytes = onnx_bytes
        self.cfg = cfg
        self.input_size = cfg.onnx_input_size or image_size
        self.session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.normalize = ImageNormalizer(cfg.mean, cfg.std, cfg.centre)
        probe = self._run(torch.zeros(1, image_size, image_size, 3, dtype=torch.uint8))
        self.latent_shape = tuple(probe.shape[1:])

    def preprocess(self, images: torch.Tensor) -> np.ndarray:
        """Resize and lay out images the way the wrapped ONNX file expects them."""
        x = images
        if x.shape[1] != self.input_size or x.shape[2] != self.input_size:
            x = nn.functional.interpolate(x.permute(0, 3, 1, 2).float(), size=(self.input_size, self.input_size), mode="bilinear")
            x = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        if self.cfg.onnx_input_dtype == "uint8":
            arr = x if self.cfg.onnx_input_layout == "NHWC" else x.permute(0, 3, 1, 2)
        else:
            arr = self.normalize(x)
            if self.cfg.onnx_input_layout == "NHWC":
                arr = arr.permute(0, 2, 3, 1)
        return np.ascontiguousarray(arr.detach().cpu().numpy())

    def _run(self, images: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: self.preprocess(images)})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    def forward(self, images: torch.Tensor, proprio: torch.Tensor | None = None) -> torch.Tensor:
        return self._run(images).to(images.device)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("session", None)  # an onnxruntime session does not pickle; rebuilt from onnx_bytes
        return state


def build_encoder(cfg: EncoderConfig, image_size: int, proprio_dim: int = 0, onnx_bytes: bytes | None = None) -> nn.Module:
    """Encoder named by ``cfg.type``; every encoder exposes ``latent_shape``.

    ``cnn``/``vit``/``onnx`` are built in; any other name is loaded from entry point group
    ``jepa.encoders`` and called as ``factory(cfg, image_size, proprio_dim)``.
    """
    if cfg.type == "onnx":
        return OnnxFrozenEncoder(cfg, image_size, onnx_bytes)
    return plugins.load(plugins.ENCODERS, cfg.type, BUILTIN_ENCODERS)(cfg, image_size, proprio_dim)


BUILTIN_ENCODERS: dict[str, Callable[[EncoderConfig, int, int], nn.Module]] = {"cnn": CNNEncoder, "vit": ViTEncoder}
