"""Committed results, manifests, docs and configs hold no absolute path of the machine that wrote them."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MACHINE_PATH = re.compile(r"""["'\s=:](/(?:work|root|home|tmp|Users)/[^\s"']*)""")


def test_committed_files_carry_repo_relative_paths() -> None:
    found = []
    for folder in ("bench/results", "models", "docs", "config"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.is_file() and path.suffix in {".json", ".yaml", ".yml", ".md", ".txt", ".csv"}:
                for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                    m = MACHINE_PATH.search(line)
                    if m:
                        found.append(f"{path.relative_to(REPO)}:{lineno}: {m.group(1)}")
    assert not found, "absolute machine paths (write them with jepa_common.paths.portable_path):\n" + "\n".join(found[:20])
