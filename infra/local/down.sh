#!/usr/bin/env bash
# Stop the services started by up.sh (only those: their process groups are in state.json).
# Usage: infra/local/down.sh [STATE_DIR]   (default: .local-cluster)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
cd "$repo"
exec "$python" -m infra.local.services down --state-dir "${1:-.local-cluster}"
