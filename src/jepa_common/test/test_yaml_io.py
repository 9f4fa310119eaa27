"""Config YAML: a key written twice is an error naming both lines, not a silent last-one-wins."""

from __future__ import annotations

import pytest

from jepa_common.yaml_io import load_yaml_file, load_yaml_text


def test_plain_yaml_loads_as_safe_load_does() -> None:
    assert load_yaml_text("a: 1\nb: {c: [1, 2]}\n") == {"a": 1, "b": {"c": [1, 2]}}
    assert load_yaml_text("") is None


def test_a_duplicated_key_names_the_file_key_and_lines(tmp_path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text("profiles:\n  flat:\n    weight: 1\n    weight: 2\n")
    with pytest.raises(ValueError, match=r"profiles\.yaml.*'weight' appears twice \(lines 3 and 4\)"):
        load_yaml_file(path)


def test_equal_keys_in_different_mappings_are_fine_and_syntax_errors_are_named() -> None:
    assert load_yaml_text("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}
    with pytest.raises(ValueError, match=r"^bad\.yaml: "):
        load_yaml_text("a: [1, 2\n", "bad.yaml")


def test_arbitrary_python_objects_are_still_refused() -> None:
    with pytest.raises(ValueError, match="could not determine a constructor"):
        load_yaml_text("!!python/object/apply:os.system ['true']\n")
