"""The runtime: the one place that joins or starts Ray, and reads a dataset manifest.

**Ray** — :func:`init_ray` joins a cluster (an explicit address, else ``RAY_ADDRESS``, which
``ray job submit`` sets for its driver) or starts a fresh local instance; an already connected
process is left alone. Every entry point and library function that needs Ray calls it.

**Manifests** — :func:`read_manifest` reads the ``manifest.json`` of a dataset's
:class:`~raysf.storage.StorageLocation` into a typed :class:`~raysf.manifest.Manifest`,
checking its schema version. Where data lives (filesystems, S3 settings) is
:mod:`raysf.storage`'s business.

Ray is imported inside :func:`init_ray` only: it is a heavy package that the model, the
configuration and the storage helpers do not need.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from raysf import console, ray_output, storage
from raysf.manifest import MANIFEST_NAME, Manifest, parse_manifest

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


# ----------------------------------------------------------------------------- manifests


def read_manifest(
    dataset: storage.StorageLocation | str, *, allow_incomplete: bool = False
) -> Manifest:
    """The typed manifest of the dataset at ``dataset`` (a location; a path or URI is resolved
    with the AWS environment's S3 settings).

    ``ValueError`` naming the URI when there is none (ingest not run or not finished), when it
    is not valid JSON, when its schema version is not one this version reads, or (unless
    ``allow_incomplete``) when it says ``complete: false`` (inputs that failed transiently, or
    too many rejects; the message says which and what to do).
    """
    dataset = storage.as_location(dataset)
    uri, file = dataset.uri, dataset.join(MANIFEST_NAME)
    if not file.is_file():
        raise ValueError(f"{uri} has no {MANIFEST_NAME} (ingest not run or not finished)")
    try:
        data = json.loads(file.read_bytes())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file.uri}: invalid JSON: {exc}") from exc
    manifest = parse_manifest(data, uri)
    if not (manifest.complete or allow_incomplete):
        reason = manifest.incomplete_reason or "complete: false"
        raise ValueError(f"dataset {uri} is incomplete: {reason}")
    return manifest
