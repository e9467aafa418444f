"""`python -m infra.local.services up/status/down` as a user runs it (S3 + MLflow + Ray head)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.local.procs import find_pids, group_alive

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.local.services", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=400,
    )


def test_up_status_down(tmp_path: Path):
    state_dir = tmp_path / "lc"
    up = _cli("up", "--state-dir", str(state_dir), "--workers", "0")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        state = json.loads((state_dir / "state.json").read_text())
        assert set(state["process_groups"]) == {"moto", "mlflow", "ray:head"}
        env_sh = (state_dir / "env.sh").read_text()
        for var in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL"):
            assert f"export {var}=" in env_sh
        status = _cli("status", "--state-dir", str(state_dir))
        assert status.returncode == 0 and "ray:head: running" in status.stdout
    finally:
        down = _cli("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr[-3000:]
    assert not any(group_alive(pgid) for pgid in state["process_groups"].values())
    assert find_pids(state["ray_temp_dir"]) == []
    assert _cli("status", "--state-dir", str(state_dir)).returncode == 1
