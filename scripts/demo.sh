#!/usr/bin/env bash
# Set everything up (idempotent) and run the main job, from any working directory.
#   scripts/demo.sh [args passed to the demo]
# Relative paths in the arguments are taken from the caller's directory; Ctrl-C stops every node.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(cd "$ROOT" && bash scripts/setup.sh)
exec "$ROOT/.venv/bin/python" -m jepa_planner.demo "$@"
