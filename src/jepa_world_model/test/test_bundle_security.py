"""Tampered and malicious bundles are refused with one line before anything is loaded or executed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from jepa_common.episodes import EpisodeSet
from jepa_world_model.bundle import BundleError, bundle_main, export_bundle, load_bundle, read_manifest, sha256_of
from jepa_world_model.testing import TOY_META, toy_config
from jepa_world_model.train import Trainer

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "models" / "two_rooms"


class Payload:
    """Unpickling this creates ``marker``: what a crafted model.pt would do with arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def toy_bundle(tmp_path_factory: pytest.TempPathFactory, toy_data: EpisodeSet) -> Path:
    root = tmp_path_factory.mktemp("secure")
    Trainer(toy_config(**{"train.epochs": 1}), root / "run", toy_data, TOY_META).fit()
    return export_bundle(root / "run", root / "model", readout_episodes=0)


@pytest.fixture
def bundle(toy_bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(toy_bundle, dst)
    return dst


def edit_manifest(root: Path, change: Callable[[dict], None]) -> None:
    m = json.loads((root / "manifest.json").read_text())
    change(m)
    (root / "manifest.json").write_text(json.dumps(m))


def refused(root: Path, match: str, exc: type[Exception] = BundleError) -> str:
    """The bundle is refused by both backends and `jepa-bundle info` with one line matching ``match``."""
    for backend in ("torch", "onnx"):
        with pytest.raises(exc, match=match) as info:
            load_bundle(root, backend=backend)
        assert "\n" not in str(info.value), str(info.value)
    return str(info.value)


def cli_one_line(capsys: pytest.CaptureFixture, *argv: str) -> str:
    assert bundle_main(list(argv)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _drop(key: str) -> Callable[[dict], None]:
    return lambda m: m.pop(key)


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def change(m: dict) -> None:
        node = m
        *parents, last = path.split(".")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


TAMPERED = {
    "no checksums": (_drop("checksums"), r"field 'checksums' is missing"),
    "empty checksums": (_set("checksums", {}), r"field 'checksums'"),
    "a file without checksum": (lambda m: m["checksums"].pop("predictor_level1.onnx"), r"files.predictors\[1\].*checksum"),
    "schema version negative": (_set("schema_version", -1), r"schema_version' must be a positive integer"),
    "schema version zero": (_set("schema_version", 0), r"schema_version' must be a positive integer"),
    "schema version newer": (_set("schema_version", 99), r"schema_version' 99 is newer"),
    "schema version a string": (_set("schema_version", "1"), r"schema_version'"),
    "no levels": (_drop("levels"), r"field 'levels' is missing"),
    "empty levels": (_set("levels", []), r"field 'levels'"),
    "levels out of order": (_set("levels.0.level", 1), r"levels\[0\]\.level is 1"),
    "level 0 action dim": (
        lambda m: m["levels"][0].update(action_dim=3, action_low=[-0.6] * 3, action_high=[0.6] * 3),
        r"levels\[0\]\.action_dim is 3, expected raw_action.dim x frameskip = 4",
    ),
    "level bounds length": (_set("levels.1.action_low", [-1.0]), r"levels\[1\]\.action_low has 1 values"),
    "latent mean length": (_set("latent_mean", [0.0, 1.0]), r"latent_mean has 2 values"),
    "negative latent std": (_set("latent_std", [-1.0] * 8), r"latent_std"),
    "latent shape": (_set("latent_shape", [0]), r"field 'latent_shape\[0\]'"),
    "image size": (_set("input.image_size", [16]), r"field 'input.image_size'"),
    "channels": (_set("input.channels", 4), r"field 'input.channels'"),
    "action bounds": (_set("raw_action.low", [1.0, 1.0]), r"raw_action: low must be <= high"),
    "non-finite bound": (_set("raw_action.high", [float("inf"), 0.6]), r"field 'raw_action.high\[0\]'"),
    "missing predictor list": (_set("files.predictors", ["predictor.onnx"]), r"files.predictors lists 1 files for 2 levels"),
    "readout shape": (
        _set("readout", {"position": {"weights": [[0.0] * 3, [0.0] * 3], "bias": [0, 0], "frame_id": "map", "units": "px"}}),
        r"readout.position.weights",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_manifest_refused_with_one_line(bundle: Path, case: str, capsys: pytest.CaptureFixture) -> None:
    change, match = TAMPERED[case]
    edit_manifest(bundle, change)
    refused(bundle, match)
    err = cli_one_line(capsys, "info", str(bundle))
    assert err.startswith("jepa-bundle: ")


def test_wrong_checksum_refused(bundle: Path, capsys: pytest.CaptureFixture) -> None:
    with open(bundle / "predictor.onnx", "ab") as f:
        f.write(b"\0")
    refused(bundle, r"checksum mismatch .*predictor\.onnx")
    cli_one_line(capsys, "info", str(bundle))


@pytest.mark.parametrize(
    "name, match",
    [("../outside.onnx", "leaves or escapes"), ("sub/../../outside.onnx", "leaves or escapes"), ("ABSOLUTE", "not a relative path")],
)
def test_paths_outside_the_bundle_refused(bundle: Path, name: str, match: str, capsys: pytest.CaptureFixture) -> None:
    outside = bundle.parent / "outside.onnx"
    shutil.copy(bundle / "encoder.onnx", outside)  # a valid file with a matching checksum: only the path is wrong
    name = str(outside) if name == "ABSOLUTE" else name

    def change(m: dict) -> None:
        m["files"]["encoder"] = name
        m["checksums"][name] = m["checksums"].pop("encoder.onnx")

    edit_manifest(bundle, change)
    refused(bundle, match)
    cli_one_line(capsys, "info", str(bundle))


def test_symlink_escaping_the_bundle_refused(bundle: Path, capsys: pytest.CaptureFixture) -> None:
    outside = bundle.parent / "elsewhere.onnx"
    shutil.move(bundle / "encoder.onnx", outside)
    os.symlink(outside, bundle / "encoder.onnx")  # same bytes, same checksum, but outside the directory
    refused(bundle, "resolves outside the bundle directory")
    cli_one_line(capsys, "info", str(bundle))


def test_symlink_inside_the_bundle_is_fine(bundle: Path) -> None:
    (bundle / "real").mkdir()
    shutil.move(bundle / "encoder.onnx", bundle / "real" / "encoder.onnx")
    os.symlink(bundle / "real" / "encoder.onnx", bundle / "encoder.onnx")
    assert load_bundle(bundle, backend="onnx").encode(torch.zeros(1, 16, 16, 3, dtype=torch.uint8)).shape == (1, 8)


def test_unreadable_manifest_refused(bundle: Path, capsys: pytest.CaptureFixture) -> None:
    (bundle / "manifest.json").write_text("[1, 2")
    refused(bundle, "not valid JSON")
    (bundle / "manifest.json").write_text("[1, 2]")
    refused(bundle, "must be a JSON object")
    cli_one_line(capsys, "info", str(bundle))


# ---- malicious pickle ---------------------------------------------------------------------------------
def plant_payload(root: Path, marker: Path) -> None:
    """Replace model.pt by a checkpoint whose unpickling creates ``marker``; fix its checksum as an attacker would."""
    state = torch.load(root / "model.pt", weights_only=True)
    state["meta"] = Payload(marker)
    torch.save(state, root / "model.pt")
    edit_manifest(root, lambda m: m["checksums"].__setitem__("model.pt", sha256_of(root / "model.pt")))


def test_payload_would_run_if_unpickled(tmp_path: Path) -> None:
    """The test's payload really executes under a plain unpickler: the refusals below mean something."""
    marker = tmp_path / "marker"
    torch.save({"x": Payload(marker)}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def test_malicious_model_pt_never_executes(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "pwned"
    plant_payload(bundle, marker)
    read_manifest(bundle)  # checksums match: only the safe loader stands between the file and the code
    refused(bundle, "refusing to unpickle")
    err = cli_one_line(capsys, "info", str(bundle))
    assert "refusing to unpickle" in err
    assert not marker.exists()


def test_malicious_resume_checkpoint_never_executes(tmp_path: Path, toy_data: EpisodeSet) -> None:
    cfg = toy_config(**{"train.epochs": 2})
    Trainer(cfg, tmp_path / "run", toy_data, TOY_META).fit(stop_after=1)
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    marker = tmp_path / "pwned"
    state = torch.load(ckpt, weights_only=True)
    state["history"] = [Payload(marker)]
    torch.save(state, ckpt)
    with pytest.raises(ValueError, match="refusing to unpickle") as info:
        Trainer(cfg, tmp_path / "run", toy_data, TOY_META).fit(resume=True)
    assert "\n" not in str(info.value) and not marker.exists()


def _run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", *argv], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)


@pytest.mark.skipif(not (SHIPPED / "manifest.json").exists(), reason="shipped bundle missing")
def test_malicious_shipped_bundle_refused_by_the_clis(tmp_path: Path) -> None:
    """`jepa-bundle info` and `jepa-evaluate` as separate processes: one line on stderr, exit 1, no code run."""
    bundle = tmp_path / "two_rooms"
    shutil.copytree(SHIPPED, bundle)
    marker = tmp_path / "pwned"
    plant_payload(bundle, marker)
    cmds = {
        "jepa-bundle": f"import sys; from jepa_world_model.bundle import bundle_main; sys.exit(bundle_main(['info', {str(bundle)!r}]))",
        "jepa-evaluate": (
            "import sys; from jepa_planner.evaluate import main; "
            f"sys.exit(main(['--model', {str(bundle)!r}, '--episodes', '1', '--out', {str(tmp_path / 'eval')!r}]))"
        ),
    }
    for name, code in cmds.items():
        proc = _run(tmp_path, code)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 1, (name, proc.stderr)
        assert len(lines) == 1 and "refusing to unpickle" in lines[0], (name, proc.stderr)
        assert not marker.exists(), name
