"""Typed, validated experiment configuration: one YAML file per training run.

Every section forbids unknown keys and checks ranges, so a typo or an impossible
value fails at load time with a message naming the key, not hours into training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from jepa_common import plugins
from jepa_common.yaml_io import load_yaml_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class SimDataPart(_Strict):
    """Further episodes from another behaviour policy (same world and episode length)."""

    policy: str
    episodes: int = Field(ge=1)
    policy_kwargs: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None  # default: the main seed + 1000 x (part index + 1)
    randomise: dict[str, Any] | None = None  # domain randomisation of this part (default: the data section's)


class SimDataConfig(_Strict):
    """Episodes collected from a built-in world with ``jepa_sim.collect.collect_episodes``.

    ``extra`` mixes in episodes of other behaviour policies: what the data covers bounds what the
    model predicts well, and a planner exploits whatever it predicts badly (e.g. pushing into walls).
    """

    source: Literal["sim"] = "sim"
    world: str = "two_rooms"
    world_kwargs: dict[str, Any] = Field(default_factory=dict)  # world constructor options, e.g. {maze: large}
    # Domain randomisation: world options used only to collect training data (e.g. {door_y: random}: a new door
    # per reset). Kept apart from world_kwargs, which describe the world the model is for and which evaluation
    # tools read back from the bundle's manifest.
    randomise: dict[str, Any] = Field(default_factory=dict)
    collect_batch: int = Field(64, ge=1)  # environments stepped together; a randomised layout is drawn per batch
    episodes: int = Field(200, ge=1)
    steps: int = Field(100, ge=2)
    policy: str = "random_momentum"
    policy_kwargs: dict[str, Any] = Field(default_factory=dict)
    extra: list[SimDataPart] = Field(default_factory=list)
    seed: int = 0
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)


class BagDataConfig(_Strict):
    """Episodes read from rosbags by ``jepa_world_model.data.bags.load_bags``."""

    source: Literal["bags"] = "bags"
    paths: list[str] = Field(min_length=1)
    topics: dict[str, Any] = Field(default_factory=dict)
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    seed: int = 0


DataConfig = Annotated[SimDataConfig | BagDataConfig, Field(discriminator="source")]


class EncoderConfig(_Strict):
    """Image encoder. ``cnn``/``vit`` are trained; ``onnx`` wraps a frozen user encoder."""

    type: str = "cnn"  # cnn, vit, onnx, or an encoder registered under entry point group jepa.encoders
    latent_dim: int = Field(32, ge=1, le=4096)
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 64], min_length=1, max_length=6)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    use_proprio: bool = False
    # divide proprio by these (one per value) before fusing it: raw units (Push-T's px and px/s, hundreds) would
    # swamp the image features in the head; empty = as given (PointMaze's metres need none)
    proprio_scale: list[float] = Field(default_factory=list)
    # CNN with use_proprio: this many of the latent_dim dimensions come from the proprio alone (a small MLP), the
    # rest from the image. Fused in the head, the few proprio values among ~1000 image features were ignored (a
    # Push-T latent moved 0.01 std for the goal's agent position); a part of the latent that only proprio can
    # feed must encode it to meet the variance term. 0 = fuse in the head.
    proprio_latent_dim: int = Field(0, ge=0)
    # CNN: the last layout_dim of the latent_dim dimensions are a *layout* part (a second head on the same conv
    # features): what stays put during an episode (where a door is). The predictors carry it through every
    # step unchanged and condition on it; anti-collapse terms act on the other (agent) part only, so a per-episode
    # constant cannot stand in for the agent there, and distances (costs, goal tests, surprise) ignore it.
    layout_dim: int = Field(0, ge=0)
    # > 0: the layout part is layout_bound * tanh(head output), so it cannot leave [-layout_bound, layout_bound].
    # Unbounded, run G / L of sessions 23 / 25 put it at -30 to -130 for some door heights (0-5 elsewhere), where
    # it swamped the agent part in the predictor's input and the predictor held the agent still. 0 = unbounded.
    layout_bound: float = Field(0.0, ge=0)
    # CNN: > 0 makes the agent part a linear map of this many *keypoints*: each is the expected (x, y) of a spatial
    # softmax over one channel (a 1x1 conv) of the conv stage keypoint_stage (1 = the first stride-2 stage), as in
    # deep spatial autoencoders. Why: a vector head over the whole feature map is free to code where a door is into
    # the agent part (session 27: moving the door with the agent fixed moved a layout model's agent part as far as
    # 15-20 px of agent motion); a keypoint moves only with what its channel responds to, and linearly with it.
    # Measured (models/two_rooms_fixed_door/README.md, session 27): 8 keypoints, a 2-d agent part: that spread 0.001 latent
    # units, position linear in the agent part (probe R^2 0.997), camera noise 3/255 moves it 0.01 px.
    keypoints: int = Field(0, ge=0, le=64)
    keypoint_stage: int = Field(2, ge=1)
    # Per-image, per-channel centring before standardising, with m = the channel's median (the floor colour of a
    # scene that is mostly floor): "median" subtracts m; "floor" maps m to 0 and 1 to 1, clipping below 0, so a
    # floor of another colour (a lit room, another table, a black-level offset) reaches the network as the black
    # floor it was trained on. Both change nothing on images whose floor is black (m = 0).
    centre: Literal["none", "median", "floor"] = "none"
    feature_norm: Literal["batch", "none"] = "batch"  # CNN: batch-normalise conv features before the head
    # BatchNorm's variance floor: features that are almost constant over the data (empty floor, an unused colour
    # channel) are divided by sqrt(var + eps); the default 1e-5 turns a 1/255 camera change there into a large jump.
    feature_norm_eps: float = Field(1e-5, gt=0.0, le=10.0)
    # ViT
    patch_size: int = Field(8, ge=2)
    vit_dim: int = Field(64, ge=8)
    vit_depth: int = Field(2, ge=1, le=24)
    vit_heads: int = Field(4, ge=1)
    pool: bool = True  # True: one vector latent; False: patch tokens (N, latent_dim)
    # Frozen ONNX encoder ("bring your own")
    onnx_path: str | None = None
    onnx_input_size: int | None = Field(None, ge=8)
    onnx_input_layout: Literal["NHWC", "NCHW"] = "NCHW"
    onnx_input_dtype: Literal["uint8", "float32"] = "float32"

    @model_validator(mode="after")
    def _check(self) -> EncoderConfig:
        valid = plugins.names(plugins.ENCODERS, dict.fromkeys(("cnn", "vit", "onnx")))
        if self.type not in valid:
            raise ValueError(f"unknown encoder.type {self.type!r}; valid: {valid} (register more under entry point group jepa.encoders)")
        if self.type == "onnx" and not self.onnx_path:
            raise ValueError("encoder.type 'onnx' needs encoder.onnx_path (the frozen encoder's .onnx file)")
        if self.type == "vit" and self.vit_dim % self.vit_heads:
            raise ValueError(f"encoder.vit_dim ({self.vit_dim}) must be divisible by encoder.vit_heads ({self.vit_heads})")
        if self.centre != "none" and self.type == "onnx":
            raise ValueError("encoder.centre applies to trained encoders (cnn, vit); a frozen ONNX encoder sees its input as given")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"encoder.std must be positive, got {self.std}")
        if self.proprio_latent_dim and not (self.type == "cnn" and self.use_proprio):
            raise ValueError("encoder.proprio_latent_dim needs encoder.type 'cnn' with use_proprio true "
                             f"(got type {self.type!r}, use_proprio {self.use_proprio}); set it to 0 otherwise")
        if self.layout_dim and self.type != "cnn":
            raise ValueError(f"encoder.layout_dim needs encoder.type 'cnn' (got {self.type!r}); set it to 0 otherwise")
        if self.keypoints and (self.type != "cnn" or (self.use_proprio and not self.proprio_latent_dim)):
            raise ValueError("encoder.keypoints needs encoder.type 'cnn', and with use_proprio a proprio_latent_dim "
                             "(proprio gets its own dimensions beside the keypoints); set keypoints to 0 otherwise")
        if self.keypoints and self.keypoint_stage > len(self.channels):
            raise ValueError(f"encoder.keypoint_stage ({self.keypoint_stage}) must name one of the {len(self.channels)} conv stages")
        if self.layout_dim + self.proprio_latent_dim >= self.latent_dim:
            raise ValueError(f"encoder.layout_dim ({self.layout_dim}) + proprio_latent_dim ({self.proprio_latent_dim}) "
                             f"must leave agent dimensions in latent_dim ({self.latent_dim})")
        return self


class PredictorConfig(_Strict):
    """Action-conditioned one-step predictor (same family at every level)."""

    type: Literal["mlp", "transformer"] = "mlp"
    hidden: int = Field(256, ge=8)
    layers: int = Field(3, ge=1, le=32)
    heads: int = Field(4, ge=1)
    noise_dim: int = Field(0, ge=0, le=64)  # latent variable for stochastic futures; 0 = deterministic
    kl_weight: float = Field(1e-3, ge=0.0)


class LevelConfig(_Strict):
    """One temporal scale; level 0 must have stride 1 and no macro-action."""

    stride: int = Field(1, ge=1, le=50)
    macro_dim: int = Field(4, ge=1, le=64)
    rollout_steps: int = Field(1, ge=1, le=16)


class ModelConfig(_Strict):
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    predictor: PredictorConfig = Field(default_factory=PredictorConfig)
    frameskip: int = Field(5, ge=1, le=50)
    context: int = Field(1, ge=1, le=16)
    levels: list[LevelConfig] = Field(default_factory=lambda: [LevelConfig()], min_length=1, max_length=4)
    # raw actions are divided by this inside the model (level-0 predictor and macro-action encoders, so also in
    # the exported networks): raw units of tens (Push-T's +-50 px) would swamp the unit-scale latent inputs
    action_scale: float = Field(1.0, gt=0.0)

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.levels[0].stride != 1:
            raise ValueError(f"model.levels[0].stride must be 1 (level 0 is the fine level), got {self.levels[0].stride}")
        for i in range(1, len(self.levels)):
            if self.levels[i].stride <= 1:
                raise ValueError(f"model.levels[{i}].stride must be > 1, got {self.levels[i].stride}")
        return self


class CollapseConfig(_Strict):
    """Stop training when the representation collapses for ``patience`` consecutive checks."""

    min_effective_rank: float = Field(1.5, ge=0.0)
    min_std: float = Field(1e-3, ge=0.0)
    patience: int = Field(2, ge=1)
    check_every_steps: int = Field(0, ge=0)  # 0: check once per epoch on validation latents


class DecoderConfig(_Strict):
    """Visual decoder trained on frozen latents after the JEPA (for pictures only)."""

    enabled: bool = True
    epochs: int = Field(3, ge=1)
    lr: float = Field(2e-3, gt=0.0)
    width: int = Field(32, ge=4)
    foreground_weight: float = Field(50.0, ge=0.0)  # extra loss weight on pixels that differ from the mean frame


class AugmentConfig(_Strict):
    """Photometric augmentation of training frames (``jepa_world_model.augment``): the camera changes a model must ignore.

    Each frame (independently) is augmented with probability ``probability``, drawing its own levels:
    a floor colour in [0, background]^3 painted where the scene is dark, a colour matrix I + U(-colour_mix,
    colour_mix)^(3x3) recolouring the scene, a Gaussian blur of std uniform in [0, blur] px, gain in
    [1 - brightness, 1 + brightness], contrast scale in [1 - contrast, 1 + contrast], gamma exponent
    log-uniform in [1 / (1 + gamma), 1 + gamma], per-channel offset in [-colour_shift, colour_shift], Gaussian
    noise of std uniform in [0, noise_std] (fractions of full scale), then rounded back to uint8.
    ``invariance_weight`` adds a loss pulling the latents of two augmented views of the same frames together.
    ``per_window`` draws the levels once per training window instead (its frames share them, each with its own
    noise pattern): then a change within a window is never photometric, which ``train.temporal_var_weight``
    needs (otherwise the latent can meet that term by encoding the per-frame augmentation).
    """

    enabled: bool = False
    probability: float = Field(0.8, ge=0.0, le=1.0)
    noise_std: float = Field(0.0, ge=0.0, le=0.5)
    brightness: float = Field(0.0, ge=0.0, lt=1.0)
    contrast: float = Field(0.0, ge=0.0, lt=1.0)
    gamma: float = Field(0.0, ge=0.0, le=4.0)
    colour_shift: float = Field(0.0, ge=0.0, le=0.5)
    background: float = Field(0.0, ge=0.0, le=1.0)
    colour_mix: float = Field(0.0, ge=0.0, le=1.0)
    blur: float = Field(0.0, ge=0.0, le=3.0)
    invariance_weight: float = Field(0.0, ge=0.0)
    invariance_frames: int = Field(32, ge=2)
    per_window: bool = False


class TrainConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0.0, le=1.0)
    lr_schedule: Literal["constant", "cosine"] = "cosine"  # cosine decays to lr_min_fraction * lr at the last step
    lr_min_fraction: float = Field(0.05, ge=0.0, le=1.0)
    warmup_steps: int = Field(50, ge=0)
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float = Field(1.0, ge=0.0)
    horizon: int = Field(4, ge=1, le=64)  # level-0 rollout steps in the loss (and validation error steps)
    teacher_weight: float = Field(1.0, ge=0.0)
    rollout_weight: float = Field(1.0, ge=0.0)
    anti_collapse: Literal["vicreg", "ema", "sigreg"] = "vicreg"
    # sigreg: the encoder outputs' random 1-d projections pulled towards N(0, 1) (Epps-Pulley statistic), in place of
    # VICReg's variance and covariance terms (LeWM's SIGReg); directions are redrawn every step
    # 15: Push-T, 10 x 300 steps, batch 32 x 9 frames: weight 1 collapsed to effective rank 3.8 of 16 within an epoch,
    # 15 kept rank 14.3 (models/push_t/README.md; the statistic is per sample, not multiplied by the batch size)
    sigreg_weight: float = Field(15.0, ge=0.0)
    sigreg_directions: int = Field(256, ge=1, le=8192)
    sigreg_knots: int = Field(17, ge=3, le=257)
    var_weight: float = Field(1.0, ge=0.0)
    cov_weight: float = Field(0.04, ge=0.0)
    ema_momentum: float = Field(0.99, ge=0.0, lt=1.0)
    inverse_dynamics_weight: float = Field(0.0, ge=0.0)
    smoothness_weight: float = Field(0.0, ge=0.0)
    # within-window variance (vicreg only): hinge on the latents' std around each training window's own mean,
    # so a per-episode constant (e.g. where a randomised door is) cannot alone satisfy the variance term
    temporal_var_weight: float = Field(0.0, ge=0.0)
    temporal_var_target: float = Field(0.2, gt=0.0, le=1.0)
    # the hinge per dimension (every agent dimension must move within a window) instead of on their RMS; with
    # var_weight 0 nothing then rewards an episode constant anywhere in the agent part
    temporal_var_per_dim: bool = False
    # (vicreg only) a floor on *each* window's own spread (RMS over agent dimensions): the batch terms above can
    # be met by most windows while the agent part collapses for a few layouts (a door near the top of a
    # randomised two-rooms: per-window spread 0.1 against 0.8 elsewhere); still windows add no gradient
    window_var_weight: float = Field(0.0, ge=0.0)
    window_var_target: float = Field(0.3, gt=0.0, le=1.0)
    # with encoder.layout_dim: squared correlation (batch) of every agent dimension with every (stop-grad) layout
    # dimension, so the agent part leaves what the layout part holds to it
    layout_decorrelation_weight: float = Field(0.0, ge=0.0)
    # with encoder.layout_dim: VICReg's variance hinge on the layout part across the batch; with its copy through
    # the predictor (which asks it to stay put within a window) it makes the layout part hold what differs
    # between episodes (a randomised door) even where prediction alone gives it little signal (rare wall contacts)
    layout_var_weight: float = Field(0.0, ge=0.0)
    high_level_weight: float = Field(1.0, ge=0.0)
    # a fraction of every batch drawn from "contact" windows: some step in them departs from a linear fit of the
    # proprio dynamics by more than contact_threshold x the RMS proprio change (a wall stopped the agent); free
    # motion is most of the data, so without this a predictor can ignore the walls (data.windows.contact_steps).
    # Measured, two-rooms with the door anywhere (session 27, 0.5 at threshold 1.0, ~19% of windows flagged): no gain;
    # bench/wall_leak.py leak 72% (run V) against 86% without (R), 99% (KC) against 97% (K2), door rows not better
    contact_oversample: float = Field(0.0, ge=0.0, lt=1.0)
    contact_threshold: float = Field(0.5, gt=0.0)
    steps_per_epoch: int = Field(0, ge=0)  # 0: one pass over all training windows
    val_windows: int = Field(512, ge=8)
    probe_ridge: float = Field(1e-3, ge=0.0)
    num_threads: int = Field(2, ge=1)
    device: str = "cpu"
    collapse: CollapseConfig = Field(default_factory=CollapseConfig)


class ExperimentConfig(_Strict):
    """The whole experiment: data, model, training, augmentation, decoder."""

    name: str = "experiment"
    seed: int = 0
    data: DataConfig = Field(default_factory=SimDataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)

    def window_length(self) -> int:
        """Frames per training window: enough for the level-0 rollout and one coarse-level rollout."""
        m = self.model
        need = m.context + self.train.horizon
        for lv in m.levels[1:]:
            need = max(need, (m.context + lv.rollout_steps - 1) * lv.stride + 1)
        return need


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {dotted}: '{key}' is not a section")
    node[keys[-1]] = value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a raw config dict."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got '{item}'")
        key, value = item.split("=", 1)
        _set_dotted(raw, key.strip(), yaml.safe_load(value))
    return raw


def parse_config(raw: dict[str, Any], origin: str = "config") -> ExperimentConfig:
    """Validate a raw dict; raise ValueError listing every bad key with its location."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ValueError(f"invalid experiment config {origin}:\n" + "\n".join(lines)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment file, apply ``--set`` overrides, validate."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"experiment config not found: {path}")
    raw = load_yaml_file(path) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    return parse_config(apply_overrides(raw, overrides or []), origin=str(path))
