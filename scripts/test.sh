#!/usr/bin/env bash
# Set everything up (idempotent) and run the whole test suite: lint, then pytest.
#   scripts/test.sh [pytest args...]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
echo "[test] ruff"
.venv/bin/ruff check .
echo "[test] pytest"
# pytest exits 5 when it collected nothing: that is a failure here, like any other non-zero exit.
exec .venv/bin/python -m pytest "$@"
