#!/usr/bin/env bash
# Set everything up (idempotent) and run the main job.
#   scripts/demo.sh [args passed to the demo]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
exec .venv/bin/python -m jepa_planner.demo "$@"
