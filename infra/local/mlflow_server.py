"""An MLflow tracking server on 127.0.0.1 with a SQLite backend and S3 (moto) artifacts.

Artifacts are proxied (``--serve-artifacts``): clients upload and download through the
tracking server (``mlflow-artifacts:/`` URIs), and only the server holds S3 credentials and
the endpoint. A Ray job that logs to MLflow therefore needs just ``MLFLOW_TRACKING_URI``, and,
with ``auth=True`` (MLflow's basic-auth app, as the production server runs), a login:
``MlflowServer.env`` adds ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``.

With auth the server's ``basic_auth.ini`` (users database, admin name) is written with mode
0600; the admin password and the session secret reach the server process through its
environment, never its command line (which ``ps`` shows to every user).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from infra.local.credentials import private_dir, write_private
from infra.local.procs import (
    LOOPBACK,
    ServiceProcess,
    find_executable,
    free_port,
    start_service,
)

ADMIN_USER = "admin"
AUTH_CONFIG = "basic_auth.ini"


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
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def env(self) -> dict[str, str]:
        """What a client (a driver, a Ray job) needs to log here."""
        env = {"MLFLOW_TRACKING_URI": self.tracking_uri}
        if self.password is not None:
            env["MLFLOW_TRACKING_USERNAME"] = str(self.username)
            env["MLFLOW_TRACKING_PASSWORD"] = self.password
        return env

    @property
    def uri_with_credentials(self) -> str:
        """``http://<user>:<password>@127.0.0.1:<port>`` (the plain URI without auth)."""
        if self.password is None:
            return self.tracking_uri
        scheme, rest = self.tracking_uri.split("://", 1)
        login = f"{quote(str(self.username), safe='')}:{quote(self.password, safe='')}"
        return f"{scheme}://{login}@{rest}"

    def stop(self) -> None:
        self.process.stop(timeout=5.0)


def _mlflow_executable() -> str:
    return find_executable(
        "mlflow", "the `mlflow` CLI is neither next to sys.executable nor on PATH"
    )


def start_mlflow_server(
    state_dir: str | os.PathLike[str],
    artifact_root: str,
    s3_env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    timeout: float = 180.0,
    auth: bool = False,
    admin_password: str | None = None,
) -> MlflowServer:
    """Start ``mlflow server`` on 127.0.0.1 and wait for ``/health``.

    Args:
        state_dir: holds ``mlflow.db`` (SQLite backend) and ``mlflow.log`` (made 0700).
        artifact_root: ``s3://bucket/prefix`` (needs ``s3_env``) or a local folder.
        s3_env: endpoint and credentials for the server process, e.g. ``S3Server.env``
            (``MLFLOW_S3_ENDPOINT_URL`` and ``AWS_*``).
        port: fixed port, default a free one.
        timeout: seconds to wait for the server.
        auth: run MLflow's basic-auth app: every request but ``/health`` needs the login
            ``admin`` / ``admin_password`` (``MlflowServer.env`` carries it).
        admin_password: the admin's password with ``auth`` (default: a fresh random one).
    """
    _check_artifact_root(artifact_root, s3_env)
    state = private_dir(state_dir)
    port = port or free_port()
    backend_uri = f"sqlite:///{(state / 'mlflow.db').resolve()}"
    argv = _server_argv(port, backend_uri, artifact_root)
    env = {**os.environ, **(s3_env or {}), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    password = None
    if auth:
        password = admin_password or secrets.token_urlsafe(24)
        argv += ["--app-name", "basic-auth"]
        env.update(_auth_env(state, password))
    tracking_uri = f"http://{LOOPBACK}:{port}"
    process = start_service(
        "mlflow server", argv, state / "mlflow.log", f"{tracking_uri}/health", timeout, env=env
    )
    return MlflowServer(
        tracking_uri=tracking_uri,
        artifact_root=artifact_root,
        backend_uri=backend_uri,
        process=process,
        username=ADMIN_USER if auth else None,
        password=password,
    )


def _check_artifact_root(artifact_root: str, s3_env: Mapping[str, str] | None) -> None:
    """An artifact root on S3 needs the endpoint in ``s3_env``: fail before starting."""
    if artifact_root.startswith("s3://") and not (s3_env or {}).get("MLFLOW_S3_ENDPOINT_URL"):
        raise ValueError(
            f"artifact_root {artifact_root!r} is on S3 but s3_env has no MLFLOW_S3_ENDPOINT_URL"
        )


def _server_argv(port: int, backend_uri: str, artifact_root: str) -> list[str]:
    """``mlflow server`` on 127.0.0.1:``port``, one worker, proxying artifacts."""
    argv = [_mlflow_executable(), "server", "--host", LOOPBACK, "--port", str(port)]
    argv += ["--workers", "1", "--backend-store-uri", backend_uri]
    argv += ["--serve-artifacts", "--artifacts-destination", artifact_root]
    return argv


def _auth_env(state: Path, password: str) -> dict[str, str]:
    """The basic-auth app's settings: its config file (0600) and, by environment, the admin
    password and the secret that signs its CSRF tokens."""
    config = write_private(
        state / AUTH_CONFIG,
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{(state / 'basic_auth.db').resolve()}\n"
        f"admin_username = {ADMIN_USER}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
    )
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN_USER,
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
    }
