"""The documented cluster path: ``ray start --head`` on loopback, then ``ray job submit``.

The head node is a real ``ray start --head`` process (infra.local.ray_cluster, token auth); the
job is submitted with the ``ray job submit`` CLI exactly as docs/training.md shows, runs the
training smoke test (on the session's smoke dataset) against the real ``mlflow server``, and
must end SUCCEEDED; ``ray job status`` and ``ray job logs`` then read its outcome.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.local.ray_cluster import ray_executable
from infra.local.ray_jobs import TERMINAL_JOB_STATES as TERMINAL

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _ray(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    out = subprocess.run(
        [ray_executable(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    if out.returncode != 0:
        raise AssertionError(f"ray {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout + out.stderr


def test_ray_job_submit_succeeds(ray_cluster_factory, mlflow_server, smoke_data):
    from mlflow.tracking import MlflowClient
    from ray.job_submission import JobSubmissionClient

    cluster = ray_cluster_factory(head_num_cpus=4)
    env = {**os.environ, **cluster.env}
    runtime_env = {"excludes": [".git", ".venv", "demo_output", "__pycache__", "*.pyc"]}
    out = _ray(
        [
            "job",
            "submit",
            "--address",
            cluster.dashboard_url,
            "--working-dir",
            ".",
            "--runtime-env-json",
            json.dumps(runtime_env),
            "--no-wait",
            "--",
            sys.executable,
            "-m",
            "jobs.train",
            "jobs/train.yaml",
            "--smoke-test",
            f"data.dataset={smoke_data}",  # the session's smoke set, generated once
            f"mlflow.tracking_uri={mlflow_server.tracking_uri}",
            "mlflow.experiment=submitted",
        ],
        env,
    )
    job_id = re.search(r"raysubmit_\w+", out).group(0)

    # Waited for through the job API (one `ray` CLI process per poll would take a core's worth
    # of start-ups from the job on two cores); status and logs are then read with the CLI.
    client = JobSubmissionClient(cluster.dashboard_url, headers=cluster.auth_headers)
    deadline = time.time() + 420
    while time.time() < deadline and str(client.get_job_status(job_id).value) not in TERMINAL:
        time.sleep(1)
    status = _ray(["job", "status", "--address", cluster.dashboard_url, job_id], env)
    logs = _ray(["job", "logs", "--address", cluster.dashboard_url, job_id], env)
    # `ray job status` prints "Job '<id>' succeeded" (older releases: "... SUCCEEDED")
    assert re.search(r"\bsucceeded\b", status, re.IGNORECASE), (
        f"{status}\n--- job logs ---\n{logs[-6000:]}"
    )
    assert re.search(r'"checkpoint": ".+checkpoint_', logs), logs[-3000:]
    assert re.search(r'"test_videos": [1-9]', logs), logs[-3000:]
    run_id = re.search(r'"mlflow_run_id": "(\w+)"', logs).group(1)

    client = MlflowClient(mlflow_server.tracking_uri)
    run = client.get_run(run_id)
    assert run.data.params["model.preset"] == "slowfast_tiny"
    assert "val_top1" in run.data.metrics
