"""bench/bench_robustness.py: rows of one factor level or of several at once, and what a bad row gets."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load():
    spec = importlib.util.spec_from_file_location("bench_robustness", REPO / "bench" / "bench_robustness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_take_single_and_combined_factor_levels() -> None:
    mod = load()
    rows = mod.rows_for("two_rooms", ["nominal", "door_y=20", "door_y=random,noise=0.01176"])
    assert rows == [("nominal", None), ("door_y", 20), ("door_y+noise", {"door_y": "random", "noise": 0.01176})]
    assert mod.level_text(rows[2][1]) == "door_y=random, noise=0.01176" and mod.level_text(0.0117647) == "0.01176"
    with pytest.raises(ValueError, match="NAME=LEVEL"):
        mod.rows_for("two_rooms", ["door_y=random,noise"])


def test_a_combined_row_applies_every_factor_and_a_bad_one_names_the_valid_factors(tmp_path: Path, capsys) -> None:
    """One task per row on the door-anywhere bundle: the combined row runs (door anywhere and camera noise at once),
    an unknown factor in a combined row is an error row listing the valid factors, a malformed row ends the run."""
    mod = load()
    bundle = "models/two_rooms"
    rows = ["nominal", "door_y=random,noise=0.01176", "door_y=random,glare=2"]
    assert mod.main(["--bundle", bundle, "--episodes", "1", "--threads", "1", "--rows", *rows, "--out-dir", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "robustness_two_rooms.json").read_text())
    nominal, both, bad = result["rows"]
    assert nominal["factor"] == "nominal" and nominal["episodes"] == 1
    assert both["factor"] == "door_y+noise" and both["level"] == {"door_y": "random", "noise": 0.01176} and both["episodes"] == 1
    assert "unknown factor 'glare'" in bad["error"] and "noise" in bad["error"]
    assert "| door_y+noise | door_y=random, noise=0.01176 |" in (tmp_path / "robustness_two_rooms.md").read_text()
    assert mod.main(["--bundle", bundle, "--rows", "door_y", "noise=", "a=1,b", "--out-dir", str(tmp_path)]) == 2
    assert "NAME=LEVEL" in capsys.readouterr().err


def test_the_plot_takes_rows_at_100_and_0_percent(tmp_path: Path) -> None:
    """Every task reached (or none): the interval's bound equals the rate; a result written with a bound a rounding
    error inside it still plots (its error bar is clipped at zero)."""
    mod = load()
    rows = [{"factor": "nominal", "level": None, "success_rate": 1.0, "success_ci95": [0.963, 0.9999999999999999]},
            {"factor": "noise", "level": 0.01176, "success_rate": 0.0, "success_ci95": [1e-17, 0.037]}]
    out = tmp_path / "plot.png"
    mod.plot({"bundle": "models/x", "model_id": "x-1", "rows": rows}, out)
    assert out.stat().st_size > 0
