"""A bundle's goal tolerance: set with ``jepa-bundle set-tolerance``, validated, and consistent with its calibration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jepa_world_model.bundle import BundleError, bundle_main, load_bundle, read_manifest

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "models" / "two_rooms"
# each shipped bundle that carries a tolerance, with the 1-px calibration it was chosen from (bench/calibrate_tolerance.py)
CALIBRATED = {"two_rooms": "tolerance.json", "two_rooms_fixed_door": "tolerance_two_rooms_fixed_door.json",
              "multi_room": "tolerance_multi_room.json"}

pytestmark = pytest.mark.skipif(not (SHIPPED / "manifest.json").exists(), reason="shipped bundle missing")


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    out = tmp_path / "b"
    shutil.copytree(SHIPPED, out)
    return out


def test_set_tolerance_writes_the_manifest_only(bundle: Path, capsys: pytest.CaptureFixture) -> None:
    before = json.loads((bundle / "manifest.json").read_text())
    assert bundle_main(["set-tolerance", str(bundle), "0.02", "--basis", "half a pixel"]) == 0
    after = read_manifest(bundle)
    assert after["goal"] == {"tolerance": 0.02, "basis": "half a pixel"}
    assert after["checksums"] == before["checksums"] and after["model_id"] == before["model_id"]
    assert load_bundle(bundle).model_id == before["model_id"]
    capsys.readouterr()
    assert bundle_main(["info", str(bundle)]) == 0
    assert "goal:          tolerance 0.02 (half a pixel)" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-0.01", "nan", "inf"])
def test_set_tolerance_refuses_a_non_positive_or_non_finite_value(bundle: Path, value: str,
                                                                  capsys: pytest.CaptureFixture) -> None:
    before = (bundle / "manifest.json").read_text()
    assert bundle_main(["set-tolerance", str(bundle), value]) == 1
    err = capsys.readouterr().err.strip()
    assert "positive finite" in err and len(err.splitlines()) == 1
    assert (bundle / "manifest.json").read_text() == before


@pytest.mark.parametrize("bad", [0.0, -1.0, "abc", None])
def test_a_manifest_with_a_bad_goal_tolerance_is_refused(bundle: Path, bad: object) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    m["goal"] = {"tolerance": bad}
    (bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"field 'goal\.tolerance'"):
        read_manifest(bundle)


@pytest.mark.parametrize("name", list(CALIBRATED))
def test_shipped_tolerances_sit_inside_a_pixel(name: str) -> None:
    """Each shipped tolerance is under the median latent distance of a 1 px move of the agent with that bundle."""
    path = REPO / "models" / name
    if not (path / "manifest.json").exists():
        pytest.skip(f"{path} missing")
    calibration = json.loads((REPO / "bench" / "results" / CALIBRATED[name]).read_text())
    manifest = read_manifest(path)
    assert calibration["model_id"] == manifest["model_id"], "the calibration is of another bundle: rerun bench/calibrate_tolerance.py"
    tolerance = manifest["goal"]["tolerance"]
    assert 0 < tolerance < calibration["distance_per_px"]["median"]
