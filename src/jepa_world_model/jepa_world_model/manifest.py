"""The bundle manifest, checked as a whole before any bundle file is opened.

``check_manifest`` validates the schema (pydantic) and the consistency between fields (levels
against the raw action space, file lists against the levels, latent statistics against the
latent shape), ``check_paths`` keeps every file the manifest names inside the bundle directory,
and ``verify_checksums`` compares every named file with its sha256. Each failure is a
``BundleError`` (a ValueError) whose message is one line naming the bad field, so the nodes and
CLIs that already report ValueError print exactly what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = (1,)
MANIFEST = "manifest.json"


class BundleError(ValueError):
    """A bundle that must not be loaded: bad manifest, unsafe path, checksum mismatch, unsafe pickle."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


Finite = Annotated[float, Field(allow_inf_nan=False)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
FileName = Annotated[str, Field(min_length=1)]


class _Section(BaseModel):
    # unknown keys are kept (a newer exporter may add fields); the ones read here are typed strictly
    model_config = ConfigDict(extra="allow", strict=True)


class InputSpec(_Section):
    image_size: list[Annotated[int, Field(ge=1, le=8192)]] = Field(min_length=2, max_length=2)
    channels: Literal[3]
    dtype: Literal["uint8"]
    layout: Literal["NHWC"]
    normalisation: dict[str, Any] = Field(default_factory=dict)
    proprio_dim: int = Field(0, ge=0)
    uses_proprio: bool = False

    @model_validator(mode="after")
    def _proprio(self) -> InputSpec:
        if self.uses_proprio and self.proprio_dim < 1:
            raise ValueError("uses_proprio is true but proprio_dim is 0")
        return self


class EncoderSpec(_Section):
    type: str = Field(min_length=1)
    frozen: bool = False


class PredictorSpec(_Section):
    type: str = Field(min_length=1)
    noise_dim: int = Field(0, ge=0)


class RawActionSpec(_Section):
    dim: int = Field(ge=1)
    low: list[Finite]
    high: list[Finite]
    norm_max: Finite | None = None


class LevelEntry(_Section):
    level: int = Field(ge=0)
    stride: int = Field(ge=1)
    action_dim: int = Field(ge=1)
    action_low: list[Finite]
    action_high: list[Finite]


class FilesSpec(_Section):
    torch: FileName
    encoder: FileName
    predictors: list[FileName] = Field(min_length=1)
    macro_encoders: dict[str, FileName] = Field(default_factory=dict)
    decoder: FileName | None = None

    def referenced(self) -> list[tuple[str, str]]:
        """(field, file name) of every file this section names."""
        out = [("files.torch", self.torch), ("files.encoder", self.encoder)]
        out += [(f"files.predictors[{i}]", n) for i, n in enumerate(self.predictors)]
        out += [(f"files.macro_encoders.{k}", n) for k, n in self.macro_encoders.items()]
        if self.decoder is not None:
            out.append(("files.decoder", self.decoder))
        return out


class PositionReadoutSpec(_Section):
    """A linear head latent -> position (x, y): ``position = weights @ latent.flatten() + bias``."""

    weights: list[list[Finite]] = Field(min_length=2, max_length=2)
    bias: list[Finite] = Field(min_length=2, max_length=2)
    frame_id: str = Field(min_length=1)
    units: str = Field(min_length=1)
    r2: Finite | None = None


class ReadoutSpec(_Section):
    position: PositionReadoutSpec | None = None


class GoalSpec(_Section):
    """How close counts as "reached" for this bundle's latent: its scale per metre or pixel is the bundle's own."""

    tolerance: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    basis: str = ""  # how the value was chosen (e.g. a calibration figure), for people reading the manifest


class ManifestModel(_Section):
    schema_version: int
    model_id: str = Field(min_length=1)
    input: InputSpec
    encoder: EncoderSpec
    predictor: PredictorSpec
    latent_shape: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=3)
    latent_mean: list[Finite]
    latent_std: list[Finite]
    raw_action: RawActionSpec
    frameskip: int = Field(ge=1)
    context: int = Field(ge=1)
    levels: list[LevelEntry] = Field(min_length=1)
    files: FilesSpec
    has_decoder: bool = False
    checksums: dict[FileName, Sha256] = Field(min_length=1)
    readout: ReadoutSpec | None = None
    goal: GoalSpec | None = None
    provenance: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)

    @field_validator("schema_version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be a positive integer, got {v}")
        if v > SCHEMA_VERSION:
            raise ValueError(f"{v} is newer than this jepa_world_model supports ({SCHEMA_VERSION}); upgrade the package")
        if v not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(f"{v} is not supported (supported: {list(SUPPORTED_SCHEMA_VERSIONS)}); re-export the bundle")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ManifestModel:
        n_latent = math.prod(self.latent_shape)
        for name in ("latent_mean", "latent_std"):
            if len(getattr(self, name)) != n_latent:
                raise ValueError(f"{name} has {len(getattr(self, name))} values, latent_shape {self.latent_shape} needs {n_latent}")
        if min(self.latent_std) <= 0:
            raise ValueError("latent_std: every value must be > 0")
        ra = self.raw_action
        for name in ("low", "high"):
            if len(getattr(ra, name)) != ra.dim:
                raise ValueError(f"raw_action.{name} has {len(getattr(ra, name))} values, raw_action.dim is {ra.dim}")
        if any(lo > hi for lo, hi in zip(ra.low, ra.high)):
            raise ValueError("raw_action: low must be <= high in every dimension")
        for i, lv in enumerate(self.levels):
            where = f"levels[{i}]"
            if lv.level != i:
                raise ValueError(f"{where}.level is {lv.level}, expected {i} (levels listed in order from 0)")
            for name in ("action_low", "action_high"):
                if len(getattr(lv, name)) != lv.action_dim:
                    raise ValueError(f"{where}.{name} has {len(getattr(lv, name))} values, action_dim is {lv.action_dim}")
            if any(lo > hi for lo, hi in zip(lv.action_low, lv.action_high)):
                raise ValueError(f"{where}: action_low must be <= action_high in every dimension")
        level0 = self.levels[0]
        if level0.stride != 1:
            raise ValueError(f"levels[0].stride is {level0.stride}, level 0 must have stride 1")
        if level0.action_dim != ra.dim * self.frameskip:
            raise ValueError(
                f"levels[0].action_dim is {level0.action_dim}, expected raw_action.dim x frameskip = {ra.dim * self.frameskip}"
            )
        if len(self.files.predictors) != len(self.levels):
            raise ValueError(f"files.predictors lists {len(self.files.predictors)} files for {len(self.levels)} levels")
        wanted = {str(k) for k in range(1, len(self.levels))}
        if set(self.files.macro_encoders) != wanted:
            raise ValueError(f"files.macro_encoders has keys {sorted(self.files.macro_encoders)}, expected {sorted(wanted)}")
        if self.has_decoder != (self.files.decoder is not None):
            raise ValueError("has_decoder disagrees with files.decoder")
        for field, name in self.files.referenced():
            if name not in self.checksums:
                raise ValueError(f"checksums has no entry for {field} ({name}); every bundle file must be checksummed")
        pos = self.readout.position if self.readout is not None else None
        if pos is not None and any(len(row) != n_latent for row in pos.weights):
            raise ValueError(f"readout.position.weights must be 2 rows of {n_latent} values (the flattened latent)")
        return self


def _field_of(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "manifest"


def check_manifest(raw: Any, where: str) -> ManifestModel:
    """The validated manifest; BundleError with one line naming the first bad field otherwise."""
    if not isinstance(raw, dict):
        raise BundleError(f"{where}: the manifest must be a JSON object, got {type(raw).__name__}")
    try:
        return ManifestModel.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        field = _field_of(tuple(err["loc"]))
        if err["type"] == "missing":
            msg = "is missing"
        got = "" if err["type"] in ("missing", "value_error") else f" (got {err.get('input')!r:.60})"
        text = f"{where}: field '{field}' {msg}{got}" if field != "manifest" else f"{where}: {msg}"
        raise BundleError(" ".join(text.split()) + "; re-export the bundle") from None


def goal_tolerance(manifest: dict[str, Any]) -> float | None:
    """The bundle's own goal tolerance (``goal.tolerance``, normalised latent distance), None when it has none."""
    value = (manifest.get("goal") or {}).get("tolerance")
    return None if value is None else float(value)


def write_manifest(root: Path, raw: dict[str, Any]) -> ManifestModel:
    """Validate ``raw`` and replace ``root/manifest.json`` with it atomically: never a manifest the loader would refuse."""
    checked = check_manifest(json.loads(json.dumps(raw)), str(root / MANIFEST))
    tmp = root / f".{MANIFEST}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(raw, indent=2) + "\n")
    tmp.replace(root / MANIFEST)
    return checked


def safe_path(root: Path, name: str, field: str) -> Path:
    """``root / name`` when it stays inside ``root`` (relative, no '..', no symlink leaving it); BundleError otherwise."""
    if "\\" in name or PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise BundleError(f"{field} = {name!r} is not a relative path inside the bundle directory; refusing to load")
    if any(part in ("..", ".", "") for part in name.split("/")):
        raise BundleError(
            f"{field} = {name!r} leaves or escapes the bundle directory (only plain relative paths: no '..', '.' or "
            "empty parts); refusing to load"
        )
    path = root / name
    real_root = root.resolve()
    try:
        path.resolve().relative_to(real_root)
    except ValueError:
        raise BundleError(f"{field} = {name!r} resolves outside the bundle directory (a symlink); refusing to load") from None
    return path


def check_paths(root: Path, manifest: ManifestModel) -> None:
    """Every file the manifest names (``files.*`` and ``checksums``) stays inside ``root``."""
    for field, name in manifest.files.referenced():
        safe_path(root, name, field)
    for name in manifest.checksums:
        safe_path(root, name, f"checksums[{name!r}]")


def verify_checksums(root: Path, manifest: ManifestModel) -> int:
    """sha256 of every checksummed file; returns how many were verified."""
    for name, digest in manifest.checksums.items():
        path = safe_path(root, name, f"checksums[{name!r}]")
        if not path.is_file():
            raise FileNotFoundError(f"bundle file missing: {path} (listed in {MANIFEST}); re-export the bundle")
        if sha256_of(path) != digest:
            raise BundleError(f"checksum mismatch for {path}: the file changed after export or is corrupt; re-export or re-download it")
    return len(manifest.checksums)
