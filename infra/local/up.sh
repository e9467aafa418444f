#!/usr/bin/env bash
# Start moto S3, an MLflow server and a local multi-node Ray cluster on loopback.
# Usage: infra/local/up.sh [STATE_DIR] [WORKERS]   (defaults: .local-cluster 2)
# Then:  source STATE_DIR/env.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
cd "$repo"
exec "$python" -m infra.local.services up --state-dir "${1:-.local-cluster}" --workers "${2:-2}"
