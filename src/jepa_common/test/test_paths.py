"""Recorded paths never carry the writing machine's absolute paths."""

import argparse
from pathlib import Path

from jepa_common.paths import portable_args, portable_path


def test_inside_base_is_relative_outside_is_the_name(tmp_path: Path) -> None:
    (tmp_path / "models" / "two_rooms").mkdir(parents=True)
    assert portable_path(tmp_path / "models" / "two_rooms", base=tmp_path) == "models/two_rooms"
    assert portable_path("/somewhere/else/runs/h128", base=tmp_path) == "h128"
    assert portable_path("models/x") == "models/x"


def test_args_namespace(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    ns = argparse.Namespace(out=tmp_path / "bench" / "r.json", model="/elsewhere/m", n=3, name="flat")
    assert portable_args(ns) == {"out": "bench/r.json", "model": "m", "n": 3, "name": "flat"}
