"""Ray job submission to a local cluster through its dashboard (token-authenticated)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.local.ray_cluster import RayCluster


@dataclass(frozen=True)
class JobResult:
    """Outcome of :func:`submit_job`: ``status`` is Ray's final JobStatus name."""

    job_id: str
    status: str
    logs: str


TERMINAL_JOB_STATES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


def submit_job(
    cluster: RayCluster,
    entrypoint: str,
    working_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 300.0,
    excludes: list[str] | None = None,
    entrypoint_num_cpus: float | None = None,
) -> JobResult:
    """Submit ``entrypoint`` as a Ray job, wait for a terminal state, return status and logs.

    Args:
        cluster: the target cluster (its token is sent as a Bearer header).
        entrypoint: shell command run by the job driver on the head node.
        working_dir: folder uploaded as the job's ``runtime_env.working_dir``.
        env: extra ``runtime_env.env_vars`` for the driver and every task/actor.
        timeout: seconds to wait; on expiry the job is stopped and TimeoutError raised.
        excludes: gitignore-style patterns left out of the working_dir upload.
        entrypoint_num_cpus: CPUs reserved for the driver (None: Ray's default, 0).
    """
    from ray.job_submission import JobSubmissionClient  # heavy import: only when used

    runtime_env: dict[str, Any] = {}
    if working_dir is not None:
        runtime_env["working_dir"] = str(working_dir)
        runtime_env["excludes"] = list(excludes or [".git", ".venv", "__pycache__", "*.pyc"])
    if env:
        runtime_env["env_vars"] = dict(env)
    client = JobSubmissionClient(cluster.dashboard_url, headers=cluster.auth_headers)
    job_id = client.submit_job(
        entrypoint=entrypoint,
        runtime_env=runtime_env or None,
        entrypoint_num_cpus=entrypoint_num_cpus,
    )
    deadline = time.monotonic() + timeout
    status = str(client.get_job_status(job_id))
    while time.monotonic() < deadline:
        status = str(client.get_job_status(job_id).value)
        if status in TERMINAL_JOB_STATES:
            return JobResult(job_id=job_id, status=status, logs=client.get_job_logs(job_id))
        time.sleep(0.5)
    logs = client.get_job_logs(job_id)
    client.stop_job(job_id)
    raise TimeoutError(f"job {job_id} still {status} after {timeout:.0f}s; logs:\n{logs[-4000:]}")
