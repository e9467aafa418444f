"""`python -m infra.local.services up/status/down` as a user runs it (S3 + MLflow + Ray head)."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from infra.local.procs import find_pids, group_alive, http_get

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
        _check_secrets_are_private(state_dir, state)
        status = _cli("status", "--state-dir", str(state_dir))
        assert status.returncode == 0 and "ray:head: running" in status.stdout
    finally:
        down = _cli("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr[-3000:]
    assert not any(group_alive(pgid) for pgid in state["process_groups"].values())
    assert find_pids(state["ray_temp_dir"]) == []
    assert _cli("status", "--state-dir", str(state_dir)).returncode == 1


def _check_secrets_are_private(state_dir: Path, state: dict) -> None:
    """Token, keys and the MLflow login sit in owner-only files; MLflow wants the login."""
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    for name in ("state.json", "env.sh", "aws-credentials", "mlflow/basic_auth.ini"):
        assert stat.S_IMODE((state_dir / name).stat().st_mode) == 0o600, name
    env = state["env"]
    assert "AWS_SECRET_ACCESS_KEY" not in env and "AWS_ACCESS_KEY_ID" not in env
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == str(state_dir / "aws-credentials")
    assert "aws_secret_access_key" in (state_dir / "aws-credentials").read_text()
    uri = env["MLFLOW_TRACKING_URI"]
    search = f"{uri}/api/2.0/mlflow/experiments/search?max_results=1"
    assert http_get(search, timeout=60)[0] == 401  # no login, no access
    login = f"{env['MLFLOW_TRACKING_USERNAME']}:{env['MLFLOW_TRACKING_PASSWORD']}"
    basic = {"Authorization": "Basic " + base64.b64encode(login.encode()).decode()}
    assert http_get(search, headers=basic, timeout=60)[0] == 200
    assert http_get(f"{uri}/health", timeout=60)[0] == 200  # health checks need none
