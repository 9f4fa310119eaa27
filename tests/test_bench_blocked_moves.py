"""bench/blocked_moves.py: every variant on the same tasks, the failed seeds listed, bad input refused in one line."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "models" / "two_rooms"


def load():
    spec = importlib.util.spec_from_file_location("blocked_moves", REPO / "bench" / "blocked_moves.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_variants_are_radius_and_angle_and_a_bad_one_is_refused(capsys) -> None:
    mod = load()
    assert mod.parse_variant("0.1:45") == (0.1, 45.0)
    with pytest.raises(SystemExit):
        mod.main(["--variants", "0.1"])
    assert "RADIUS:ANGLE" in capsys.readouterr().err
    assert mod.main(["--bundles", str(BUNDLE), "--profile", "flat_cem", "--episodes", "1"]) == 2  # no search in it
    assert "has no search" in capsys.readouterr().err


@pytest.mark.skipif(not (BUNDLE / "manifest.json").exists(), reason="shipped bundle missing")
def test_each_variant_runs_the_same_tasks(tmp_path: Path) -> None:
    out = tmp_path / "bm.json"
    assert load().main(["--bundles", str(BUNDLE), "--rows", "nominal", "--episodes", "2", "--variants", "0:45", "0.1:45",
                        "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    row = result["results"][0]["rows"][0]
    assert result["results"][0]["model_id"].startswith("two_rooms_door_anywhere-") and row["episodes"] == 2
    assert set(row["variants"]) == {"0.0:45.0", "0.1:45.0"}
    for v in row["variants"].values():
        assert 0 <= v["successes"] <= 2 and len(v["seeds_failed"]) == 2 - v["successes"]
        assert all(s >= 100_000 for s in v["seeds_failed"])
