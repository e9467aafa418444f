"""An MLflow tracking server on 127.0.0.1 with a SQLite backend and S3 (moto) artifacts.

Artifacts are proxied (``--serve-artifacts``): clients upload and download through the
tracking server (``mlflow-artifacts:/`` URIs), and only the server holds S3 credentials and
the endpoint. A Ray job that logs to MLflow therefore needs just ``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.local.procs import LOOPBACK, ServiceProcess, free_port, spawn, wait_http


@dataclass
class MlflowServer:
    """A running tracking server.

    Attributes:
        tracking_uri: ``http://127.0.0.1:<port>``.
        artifact_root: where the server stores artifacts, e.g. ``s3://mlflow/artifacts``.
        backend_uri: ``sqlite:///<state_dir>/mlflow.db``.
        process: the server process (leader of its process group, with its workers).
    """

    tracking_uri: str
    artifact_root: str
    backend_uri: str
    process: ServiceProcess

    @property
    def env(self) -> dict[str, str]:
        """What a client (a driver, a Ray job) needs to log here."""
        return {"MLFLOW_TRACKING_URI": self.tracking_uri}

    def stop(self) -> None:
        self.process.stop(timeout=5.0)


def _mlflow_executable() -> str:
    candidate = Path(sys.executable).parent / "mlflow"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("mlflow")
    if found is None:
        raise FileNotFoundError("the `mlflow` CLI is neither next to sys.executable nor on PATH")
    return found


def start_mlflow_server(
    state_dir: str | os.PathLike[str],
    artifact_root: str,
    s3_env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    timeout: float = 180.0,
) -> MlflowServer:
    """Start ``mlflow server`` on 127.0.0.1 and wait for ``/health``.

    Args:
        state_dir: holds ``mlflow.db`` (SQLite backend) and ``mlflow.log``.
        artifact_root: ``s3://bucket/prefix`` (needs ``s3_env``) or a local folder.
        s3_env: endpoint and credentials for the server process, e.g. ``S3Server.env``
            (``MLFLOW_S3_ENDPOINT_URL`` and ``AWS_*``).
        port: fixed port, default a free one.
        timeout: seconds to wait for the server.
    """
    if artifact_root.startswith("s3://") and not (s3_env or {}).get("MLFLOW_S3_ENDPOINT_URL"):
        raise ValueError(
            f"artifact_root {artifact_root!r} is on S3 but s3_env has no MLFLOW_S3_ENDPOINT_URL"
        )
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    backend_uri = f"sqlite:///{(state / 'mlflow.db').resolve()}"
    argv = [
        _mlflow_executable(),
        "server",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend_uri,
        "--serve-artifacts",
        "--artifacts-destination",
        artifact_root,
    ]
    env = {**os.environ, **(s3_env or {}), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = spawn("mlflow server", argv, state / "mlflow.log", env=env)
    tracking_uri = f"http://{LOOPBACK}:{port}"
    try:
        wait_http(f"{tracking_uri}/health", timeout, process)
    except BaseException:
        process.stop()
        raise
    return MlflowServer(
        tracking_uri=tracking_uri,
        artifact_root=artifact_root,
        backend_uri=backend_uri,
        process=process,
    )
