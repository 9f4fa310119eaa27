"""The interleaved e2e A/B's variant parsing and profile edits (the benchmark itself needs ROS and minutes)."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ab():
    spec = importlib.util.spec_from_file_location("bench_e2e_ab", REPO / "bench" / "bench_e2e_ab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_variants_parse_with_defaults_and_refuse_unknown_keys(ab) -> None:
    assert ab.parse_variant("shipped") == {"name": "shipped", "bundle": "models/two_rooms", "drop": []}
    v = ab.parse_variant("old:bundle=runs/old,drop=escalation+stall_recovery")
    assert v == {"name": "old", "bundle": "runs/old", "drop": ["escalation", "stall_recovery"]}
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape("bundle=..., drop=...")):
        ab.parse_variant("x:horizon=3")
    with pytest.raises(argparse.ArgumentTypeError, match="no name"):
        ab.parse_variant(":drop=escalation")


def test_dropping_a_key_changes_only_that_profile(ab, tmp_path: Path) -> None:
    ab.profiles_without("flat_cem", ["escalation"], tmp_path)
    edited = yaml.safe_load((tmp_path / "planner_profiles.yaml").read_text())["profiles"]
    shipped = yaml.safe_load((REPO / "config" / "planner_profiles.yaml").read_text())["profiles"]
    assert "escalation" in shipped["flat_cem"] and "escalation" not in edited["flat_cem"]
    assert {k: v for k, v in shipped["flat_cem"].items() if k != "escalation"} == edited["flat_cem"]
    assert {k: v for k, v in shipped.items() if k != "flat_cem"} == {k: v for k, v in edited.items() if k != "flat_cem"}
    with pytest.raises(SystemExit, match="no \\['horizon'\\] to drop"):
        ab.profiles_without("flat_cem", ["horizon"], tmp_path)
