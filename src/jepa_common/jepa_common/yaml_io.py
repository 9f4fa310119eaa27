"""YAML files of the suite (profiles, parameters, goals, training configs) read with duplicate keys refused.

``yaml.safe_load`` keeps the last of two equal keys without a word, so a profile edited by hand with
``stall_recovery`` (or a weight) written twice silently runs with one of them. Here the second one is a
ValueError naming the file, the key and both lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse a key that is already there."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (lines {seen[key]} and {line}); keep one", key_node.start_mark
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_text(text: str, source: str = "YAML") -> Any:
    """Parse ``text``; ValueError naming ``source`` for a syntax error or a duplicated key."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: {' '.join(str(exc).split())}") from exc


def load_yaml_file(path: str | Path) -> Any:
    """The parsed file (None when empty); ValueError naming the file for a syntax error or a duplicated key."""
    p = Path(path)
    return load_yaml_text(p.read_text(), str(p))
