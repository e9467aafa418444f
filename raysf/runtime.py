"""The runtime: the one place that joins or starts Ray, resolves where a URI lives, and reads a
dataset manifest.

**Ray** — :func:`init_ray` joins a cluster (an explicit address, else ``RAY_ADDRESS``, which
``ray job submit`` sets for its driver) or starts a fresh local instance; an already connected
process is left alone. Every entry point and library function that needs Ray calls it.

**Storage** — :func:`resolve_filesystem` turns a local path, ``file://`` or ``s3://`` URI into
``(pyarrow filesystem, path)``; :mod:`raysf.storage` operates on that pair. S3 settings come,
in this order, from the arguments, then the standard AWS environment variables:

- endpoint: ``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL`` (unset: real AWS);
- region: ``AWS_DEFAULT_REGION``, then ``AWS_REGION`` (unset: ``us-east-1``);
- credentials: never an argument. The AWS SDK inside pyarrow resolves them in each process
  that opens a file, from that process's own environment: the node's role (EC2 instance
  profile, EKS IRSA web identity), or a credentials file that ``AWS_SHARED_CREDENTIALS_FILE``
  names (an S3-compatible endpoint such as MinIO). A filesystem shipped to Ray tasks therefore
  carries no key: :class:`RetryingS3FileSystem` refuses explicit credentials, and no code here
  copies ``AWS_*`` variables into a task's ``runtime_env`` (Ray prints those in its logs and
  serves them in its state API). docs/cluster.md, "Threat model", says why.

Transient S3 errors are retried by the AWS SDK's *standard* retry strategy (exponential
back-off with jitter on throttling, 5xx and connection errors), ``max_attempts`` tries in all.

**Manifests** — :func:`read_manifest` reads a dataset's ``manifest.json`` into a typed
:class:`~raysf.manifest.Manifest`, checking its schema version.

Ray is imported inside :func:`init_ray` only: it is a heavy package that the model, the
configuration and the storage helpers do not need.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import pyarrow.fs as pafs

from raysf import console, ray_output, storage
from raysf.manifest import MANIFEST_NAME, Manifest, parse_manifest

DEFAULT_REGION = "us-east-1"
DEFAULT_MAX_ATTEMPTS = 8
#: ``S3FileSystem`` arguments that hold a secret; a filesystem of this module never takes them.
CREDENTIAL_ARGS = frozenset({"access_key", "secret_key", "session_token"})
#: The folder holding the project's packages (put on the workers' PYTHONPATH of a local Ray).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Where a local ``ray.init()`` (Ray >= 2.59 turns token auth on for local instances) saves the
#: token it generates, with the process umask (often world-readable): made 0600 after start.
LOCAL_TOKEN_FILE = Path.home() / ".ray" / "auth_token"


# ----------------------------------------------------------------------------- Ray


def init_ray(
    address: str | None = None, *, num_cpus: int | None = None, dashboard: bool = True
) -> None:
    """Join a Ray cluster, or start a local one; only configures Ray Data when this process is
    connected already.

    Args:
        address: cluster address (``ray://...``, ``host:port`` or ``auto``); default
            ``RAY_ADDRESS`` (set by ``ray job submit`` for its driver). Without either, a fresh
            local instance is started, never a cluster found on the host by chance.
        num_cpus: logical CPUs of a local instance (default: the machine's cores).
        dashboard: start the dashboard with a local instance (Ray Train's and Tune's
            placement-group cleanup asks its state API whether a controller is alive).
    """
    # heavy: the config, storage and manifest helpers here run without Ray
    import ray
    import ray.data

    # The console shows one progress display per phase (raysf.console); Ray Data's per-operator
    # bars would interleave with it from several datasets at once (set in every process that
    # builds datasets, a Tune trial's driver too).
    ray.data.DataContext.get_current().enable_progress_bars = False
    if ray.is_initialized():
        return
    # Worker output reaches the console through raysf.ray_output (events to the progress
    # displays, the rest to the session's log files); without that hook, not at all.
    to_driver = ray_output.route_ray_output()
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        context = join_with_retries(
            lambda: ray.init(address=address, log_to_driver=to_driver), address, ray.shutdown
        )
        where = f"joined the cluster at {address}"
    else:
        # the project first, then the driver's own PYTHONPATH (packages installed with
        # ``--target``, as on a GPU host with carried wheels, stay importable in the workers)
        inherited = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        paths = list(dict.fromkeys(p for p in [str(PROJECT_ROOT), *sys.path[:1], *inherited] if p))
        context = ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=dashboard,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}},
            log_to_driver=to_driver,
        )
        restrict_to_owner(LOCAL_TOKEN_FILE)
        where = f"started a local instance ({ray.cluster_resources().get('CPU', 0):g} CPUs)"
    dashboard_url = getattr(context, "dashboard_url", None)
    console.line(f"Ray: {where}" + (f", dashboard http://{dashboard_url}" if dashboard_url else ""))
    ray_output.link_ray_session()


T = TypeVar("T")
#: Tries to join a cluster whose head does not answer, and the seconds between them.
JOIN_ATTEMPTS = 4
JOIN_WAIT_S = 10.0


def join_with_retries(
    connect: Callable[[], T],
    address: str,
    reset: Callable[[], None],
    *,
    attempts: int = JOIN_ATTEMPTS,
    wait_s: float = JOIN_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``connect()`` to the cluster at ``address``, again after ``wait_s`` when it raises
    ``ConnectionError`` (a head busy starting or under load misses Ray's connect timeout), at
    most ``attempts`` times; ``reset()`` clears a half-made connection in between. The last
    failure is a ``ConnectionError`` naming the address and the number of tries."""
    for attempt in range(1, attempts + 1):
        try:
            return connect()
        except ConnectionError as exc:
            reset()
            # Ray's message names only the address; the reason is in its cause
            why = f"{exc}: {exc.__cause__}" if exc.__cause__ else str(exc)
            why = " ".join(why.split())
            if attempt == attempts:
                raise ConnectionError(
                    f"cannot join the Ray cluster at {address} ({attempts} tries, "
                    f"{wait_s:g} s apart): {why}; is the head running and reachable?"
                ) from exc
            console.line(f"Ray: {address} did not answer ({why}); again in {wait_s:g} s")
            sleep(wait_s)
    raise AssertionError("unreachable")


def restrict_to_owner(path: Path) -> None:
    """Make ``path`` readable by its owner only (mode 0600), when it exists and is ours."""
    try:
        info = path.stat()
    except OSError:
        return
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        path.chmod(0o600)


def local_cpus(minimum: int) -> int:
    """Logical CPUs for a local Ray: the machine's cores, at least ``minimum``.

    A Tune trial's driver, its training worker and a decode task each hold a CPU; on a 2-core
    machine they only fit on more logical CPUs than cores.
    """
    return max(os.cpu_count() or 1, minimum)


# ----------------------------------------------------------------------------- storage


def env_endpoint_url() -> str | None:
    """S3 endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (None when unset)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def env_region() -> str:
    """Region from ``AWS_DEFAULT_REGION`` or ``AWS_REGION``, else ``us-east-1``."""
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or DEFAULT_REGION


class RetryingS3FileSystem(pafs.S3FileSystem):
    """``S3FileSystem`` with the AWS standard retry strategy, kept across pickling.

    pyarrow's own ``S3FileSystem.__reduce__`` drops ``retry_strategy``, so a filesystem shipped
    to Ray tasks and actors (Ray Train pickles ``storage_filesystem`` to its controller and
    workers) fell back to the SDK default of 3 attempts. This one is rebuilt from its arguments,
    which never include credentials (each process finds its own: see the module docstring).
    """

    def __init__(self, *, max_attempts: int, **kwargs) -> None:
        given = sorted(CREDENTIAL_ARGS.intersection(kwargs))
        if given:
            raise ValueError(
                f"RetryingS3FileSystem takes no credentials ({', '.join(given)}): it is pickled "
                "into Ray tasks and Tune's experiment state; give each node its role or an "
                "AWS_SHARED_CREDENTIALS_FILE instead (docs/cluster.md, Threat model)"
            )
        retry = pafs.AwsStandardS3RetryStrategy(max_attempts=max_attempts)
        super().__init__(retry_strategy=retry, **kwargs)
        self._rebuild_args = (max_attempts, dict(kwargs))

    def __reduce__(self):
        return (_rebuild_s3_filesystem, self._rebuild_args)


def _rebuild_s3_filesystem(max_attempts: int, kwargs: dict) -> RetryingS3FileSystem:
    return RetryingS3FileSystem(max_attempts=max_attempts, **kwargs)


def s3_filesystem(
    endpoint_url: str | None = None,
    region: str | None = None,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    connect_timeout: float = 10.0,
    request_timeout: float = 60.0,
) -> RetryingS3FileSystem:
    """A pyarrow ``S3FileSystem`` with retries (kept when pickled), for ``endpoint_url`` (or AWS when None).

    ``endpoint_url`` may carry a scheme (``http://127.0.0.1:5000``); without one, https is used.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    endpoint_url = endpoint_url or env_endpoint_url()
    kwargs: dict = {
        "region": region or env_region(),
        "connect_timeout": connect_timeout,
        "request_timeout": request_timeout,
    }
    if endpoint_url:
        parsed = urlparse(endpoint_url if "://" in endpoint_url else f"https://{endpoint_url}")
        if not parsed.netloc:
            raise ValueError(f"invalid S3 endpoint URL {endpoint_url!r}")
        kwargs["endpoint_override"] = parsed.netloc
        kwargs["scheme"] = parsed.scheme or "https"
    return RetryingS3FileSystem(max_attempts=max_attempts, **kwargs)


def check_s3_endpoint(uri: str, endpoint_url: str | None = None, timeout: float = 5.0) -> None:
    """Fail fast, naming the endpoint and the URI, when an S3 endpoint does not accept connections.

    pyarrow's retry strategy spends tens of seconds on a refused connection before its error;
    entry points call this first. No-op for local paths and for AWS itself (no endpoint set).
    """
    if not storage.is_s3(str(uri)):
        return
    endpoint_url = endpoint_url or env_endpoint_url()
    if not endpoint_url:
        return
    parsed = urlparse(endpoint_url if "://" in endpoint_url else f"https://{endpoint_url}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ConnectionError(
            f"S3 endpoint {endpoint_url} is unreachable ({exc.strerror or exc}) while opening "
            f"{uri}; check the endpoint setting or AWS_ENDPOINT_URL"
        ) from exc


def resolve_filesystem(
    uri: str | os.PathLike,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> tuple[pafs.FileSystem, str]:
    """Filesystem and in-filesystem path for a local path, ``file://`` URI or ``s3://`` URI.

    Local paths are made absolute. S3 paths are returned as ``bucket/key`` (no scheme, no
    trailing slash), as pyarrow expects.
    """
    text = os.fspath(uri)
    if not text:
        raise ValueError("empty path/URI")
    if storage.is_s3(text):
        path = text[len(storage.S3_SCHEME) :].strip("/")
        if not path:
            raise ValueError(f"S3 URI {text!r} has no bucket")
        return s3_filesystem(endpoint_url, region), path
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme != "file":
            raise ValueError(f"unsupported URI scheme {scheme!r} in {text!r} (use a path or s3://)")
        text = text[len("file://") :]
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(text))


# ----------------------------------------------------------------------------- manifests


def read_manifest(
    uri: str, endpoint_url: str | None = None, *, allow_incomplete: bool = False
) -> Manifest:
    """The typed manifest of the dataset at ``uri`` (local path or ``s3://``).

    ``ValueError`` naming the URI when there is none (ingest not run or not finished), when it
    is not valid JSON, when its schema version is not one this version reads, or (unless
    ``allow_incomplete``) when it says ``complete: false`` (inputs that failed transiently, or
    too many rejects; the message says which and what to do).
    """
    fs, root = resolve_filesystem(uri, endpoint_url)
    path = storage.join(root, MANIFEST_NAME)
    if not storage.is_file(fs, path):
        raise ValueError(f"{uri} has no {MANIFEST_NAME} (ingest not run or not finished)")
    try:
        data = json.loads(storage.read_text(fs, path))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{storage.to_uri(fs, path)}: invalid JSON: {exc}") from exc
    manifest = parse_manifest(data, uri)
    if not (manifest.complete or allow_incomplete):
        reason = manifest.incomplete_reason or "complete: false"
        raise ValueError(f"dataset {uri} is incomplete: {reason}")
    return manifest
