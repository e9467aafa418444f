"""MLflow helpers: resolve and check the tracking URI at start, create/resume runs, log in bulk.

Only the driver and the rank-0 worker talk to MLflow. An unreachable tracking server is reported
before any training starts, naming the URI.

**Credentials.** A server behind MLflow's basic-auth app takes a user and a password: from the
process's ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (or ``~/.mlflow/credentials``)
as MLflow reads them, or inside the URI (``http://user:password@host:5000``). A URI's user info
never reaches MLflow itself, which prints the URI it was given ("View run at ..."): every client
made here gets the URI without it (:func:`mlflow_uri`), and its credentials are set as the two
variables of this process only. Everything printed, logged or stored (errors, run parameters,
checkpoints, configs, summaries) shows :func:`redact_uri`'s form, ``http://user:***@host:5000``;
a redacted URI read back from a stored config counts as one without credentials.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from raysf.errors import ExpectedError

DEFAULT_STORE_DIR = "demo_output/mlflow"
RUN_KEY_TAG = "raysf.run_key"
#: What replaces a secret in a printed or stored URI.
REDACTED = "***"
#: Query parameters whose values are secrets (``?password=...`` of a database URI).
SECRET_QUERY_KEYS = ("password", "passwd", "pwd", "secret", "token", "key")
USERNAME_VAR = "MLFLOW_TRACKING_USERNAME"
PASSWORD_VAR = "MLFLOW_TRACKING_PASSWORD"


class TrackingUnavailableError(ExpectedError, RuntimeError):
    """The MLflow tracking store cannot be reached or written."""


@dataclass(frozen=True)
class RunTarget:
    """An MLflow run to log into: its tracking URI and run id.

    The URI may hold credentials (it reaches the rank-0 worker inside the pickled worker setup,
    never in an environment or a log): its ``repr`` shows it redacted.
    """

    tracking_uri: str = field(repr=False)
    run_id: str

    @property
    def display_uri(self) -> str:
        return redact_uri(self.tracking_uri) or ""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        log_metrics(self.tracking_uri, self.run_id, metrics, step)


def redact_uri(uri: str | None) -> str | None:
    """``uri`` as it may be printed or stored: the password of its user info and the values of
    secret-looking query parameters replaced by ``***`` (``None`` and plain paths unchanged)."""
    if not uri or "://" not in uri:
        return uri
    parts = urlsplit(uri)
    shown = uri
    if "@" in parts.netloc:
        userinfo, host = parts.netloc.rsplit("@", 1)
        user, sep, _ = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{host}" if sep else parts.netloc
        shown = shown.replace(parts.netloc, netloc, 1)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        hidden = [(k, REDACTED if _is_secret_key(k) else v) for k, v in pairs]
        if hidden != pairs:
            head, _, rest = shown.partition("?")
            fragment = f"#{parts.fragment}" if parts.fragment else ""
            shown = f"{head}?{urlencode(hidden, safe='*')}{fragment}"
    return shown


def _is_secret_key(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_QUERY_KEYS)


def split_credentials(uri: str) -> tuple[str, tuple[str, str] | None]:
    """``(uri without user info, (user, password) or None)`` of an ``http(s)://`` URI.

    A redacted password (``***``, as stored configs hold it) counts as none: the process's own
    ``MLFLOW_TRACKING_*`` variables then apply.
    """
    if "://" not in uri:
        return uri, None
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri, None
    userinfo, host = parts.netloc.rsplit("@", 1)
    bare = urlunsplit(parts._replace(netloc=host))
    user, sep, password = userinfo.partition(":")
    if not sep or password == REDACTED:
        return bare, None
    return bare, (unquote(user), unquote(password))


def mlflow_uri(uri: str) -> str:
    """The URI to hand to MLflow: without user info. Credentials found in ``uri`` become this
    process's ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (MLflow sends them
    as basic auth on every request), so MLflow never sees, and never prints, them."""
    bare, credentials = split_credentials(uri)
    if credentials is not None:
        os.environ[USERNAME_VAR], os.environ[PASSWORD_VAR] = credentials
    return bare


def resolve_tracking_uri(uri: str | None) -> str:
    """``None`` -> ``MLFLOW_TRACKING_URI``, else a local SQLite store in the working folder;
    relative sqlite/file made absolute."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        store = Path(DEFAULT_STORE_DIR).absolute()
        store.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{store / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri[len("sqlite:///") :]).absolute())
    if uri.startswith("file:") or "://" not in uri:
        path = Path(uri.removeprefix("file://").removeprefix("file:")).absolute()
        return f"file://{path}"
    return uri


def default_artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a local SQLite store live beside the database (not in the cwd)."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///") :]).parent / "artifacts").as_uri()
    return None


def check_reachable(tracking_uri: str, timeout: float = 10.0) -> None:
    """Fail fast, naming the URI, when the tracking server or store is unusable."""
    if tracking_uri.startswith(("http://", "https://")):
        shown = redact_uri(tracking_uri)
        # /health needs no login (MLflow's auth app leaves it open); the user info stays out.
        url = split_credentials(tracking_uri)[0].rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                if resp.status >= 400:
                    raise TrackingUnavailableError(
                        f"MLflow tracking server {shown} answered {resp.status} on /health"
                    )
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingUnavailableError(
                f"MLflow tracking server {shown} is unreachable ({reason}); start it or set "
                "mlflow.tracking_uri (or mlflow.enabled=false)"
            ) from exc
        return
    if tracking_uri.startswith(("sqlite:///", "file://")):
        raw = tracking_uri.removeprefix("sqlite:///").removeprefix("file://")
        parent = Path(raw if tracking_uri.startswith("file://") else raw).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingUnavailableError(
                f"MLflow store {tracking_uri}: cannot create {parent}: {exc}"
            ) from exc
        if not os.access(parent, os.W_OK):
            raise TrackingUnavailableError(f"MLflow store {tracking_uri}: {parent} is not writable")


def get_client(tracking_uri: str):
    """An ``MlflowClient`` for ``tracking_uri`` (its credentials applied: :func:`mlflow_uri`)."""
    from mlflow.tracking import MlflowClient  # heavy; only the driver and rank 0 log

    return MlflowClient(tracking_uri=mlflow_uri(tracking_uri))


def ensure_experiment(client, name: str, tracking_uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=default_artifact_location(tracking_uri))


def start_run(
    tracking_uri: str,
    experiment: str,
    run_name: str | None,
    run_key: str | None = None,
    parent_run_id: str | None = None,
    resume: bool = True,
) -> str:
    """Create a run (or reuse the unfinished one tagged ``run_key`` when resuming)."""
    client = get_client(tracking_uri)
    exp_id = ensure_experiment(client, experiment, tracking_uri)
    if resume and run_key:
        found = client.search_runs(
            [exp_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'", max_results=1
        )
        if found:  # resumed: RUNNING again, whatever the last attempt ended as
            client.update_run(found[0].info.run_id, status="RUNNING")
            return found[0].info.run_id
    tags = {**run_tags()}
    if run_key:
        tags[RUN_KEY_TAG] = run_key
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(exp_id, run_name=run_name, tags=tags)
    return run.info.run_id


def end_run(run: RunTarget, status: str) -> None:
    """Mark ``run`` ``FINISHED`` or ``FAILED`` (a failure to do so never hides the run's own
    error: it is printed, not raised)."""
    try:
        get_client(run.tracking_uri).set_terminated(run.run_id, status)
    except Exception as exc:  # noqa: BLE001 - called while another error may be raised
        print(f"warning: could not mark MLflow run {run.run_id} {status}: {exc}", flush=True)


def run_tags() -> dict[str, str]:
    """Git commit and library versions."""
    tags = {"python": platform.python_version()}
    for lib in ("torch", "ray", "av", "pyarrow", "mlflow", "numpy"):
        try:
            tags[f"version.{lib}"] = md.version(lib)
        except md.PackageNotFoundError:
            tags[f"version.{lib}"] = "not installed"
    tags["mlflow.source.git.commit"] = git_commit()
    tags["git_commit"] = tags["mlflow.source.git.commit"]
    return tags


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return os.environ.get("RAYSF_GIT_COMMIT", "unknown")


def log_params(tracking_uri: str, run_id: str, params: dict[str, Any]) -> None:
    """Log many params in batches of 100 (MLflow's limit), values as strings.

    MLflow keeps a param's first value; when a resumed run (``resume: force``) logs another,
    the new value goes to the tag ``param_changed.<key>`` as ``"old -> new"``.
    """
    from mlflow.entities import Param, RunTag  # heavy; only the driver and rank 0 log

    client = get_client(tracking_uri)
    existing = client.get_run(run_id).data.params
    values = {k: str(v)[:6000] for k, v in params.items()}
    items = [Param(k, v) for k, v in values.items() if k not in existing]
    changed = [
        RunTag(f"param_changed.{k}", f"{existing[k]} -> {v}"[:5000])
        for k, v in values.items()
        if k in existing and existing[k] != v
    ]
    for i in range(0, max(len(items), len(changed)), 100):
        client.log_batch(run_id, params=items[i : i + 100], tags=changed[i : i + 100])


def log_text(tracking_uri: str, run_id: str, text: str, artifact_file: str) -> None:
    """Log ``text`` as the run's artifact ``artifact_file`` (e.g. the shape schedule's table)."""
    get_client(tracking_uri).log_text(run_id, text, artifact_file)


def log_metrics(tracking_uri: str, run_id: str, metrics: dict[str, float], step: int) -> None:
    from mlflow.entities import Metric  # heavy; only the driver and rank 0 log

    now = int(time.time() * 1000)
    skip = {"epoch", "steps", "world_size"}
    batch = [
        Metric(k, float(v), now, step)
        for k, v in metrics.items()
        if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    get_client(tracking_uri).log_batch(run_id, metrics=batch)
