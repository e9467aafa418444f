"""A multi-node Ray cluster on 127.0.0.1: one head and any number of worker raylets.

Each node is a ``ray start --block`` process leading its own process group, with its own
ports (GCS, node manager, object manager, dashboard agent, runtime-env agent, metrics,
a disjoint worker-port range), a custom resource and the node label ``raysf.node=<name>``.

Authentication: Ray 2.60 supports token auth (``RAY_AUTH_MODE=token``). A fresh random
token is generated per cluster and passed as ``RAY_AUTH_TOKEN`` to every node; clients get
the same variables from ``RayCluster.env``. Nothing is read from or written to
``~/.ray/auth_token``, so clusters of concurrent test sessions never share a token.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.procs import (
    ServiceProcess,
    find_pids,
    free_port,
    free_port_range,
    group_alive,
    http_get,
    signal_group,
    spawn,
    wait_http,
)

NODE_LABEL = "raysf.node"
WORKER_PORTS_PER_NODE = 40
DEFAULT_OBJECT_STORE_BYTES = 256 * 1024 * 1024
# `ray start` rewrites "127.0.0.1"/"localhost" to the host's routable address (its
# resolve_ip_for_localhost), which would put cluster traffic on the real interface.
# 127.0.0.2 is loopback too but is not rewritten, so every Ray node binds and advertises it.
RAY_NODE_IP = "127.0.0.2"


def ray_executable() -> str:
    """The ``ray`` CLI next to the running interpreter (the venv's), else from PATH."""
    candidate = Path(sys.executable).parent / "ray"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("ray")
    if found is None:
        raise FileNotFoundError("the `ray` CLI is neither next to sys.executable nor on PATH")
    return found


@dataclass
class RayNode:
    """One raylet of a local cluster.

    Attributes:
        name: unique node name, also the value of its ``raysf.node`` label.
        is_head: True for the head node.
        node_manager_port: the raylet's port; it identifies the raylet process.
        resources: custom resources given to the node, e.g. ``{"decode_node": 100}``.
        labels: Ray node labels (always includes ``raysf.node``).
        num_cpus: logical CPUs the node advertises.
        process: the ``ray start --block`` process (leader of the node's process group).
    """

    name: str
    is_head: bool
    node_manager_port: int
    resources: dict[str, float]
    labels: dict[str, str]
    num_cpus: int
    process: ServiceProcess

    def raylet_pid(self) -> int | None:
        """Pid of this node's raylet process, or None when it is not running."""
        pids = [
            pid
            for pid in find_pids(f"--node_manager_port={self.node_manager_port}")
            if _exe_name(pid) == "raylet"
        ]
        return pids[0] if pids else None


def _exe_name(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


@dataclass
class RayCluster:
    """Handle on a running local cluster.

    Attributes:
        gcs_address: ``127.0.0.1:<port>``, what ``ray.init(address=...)`` takes.
        dashboard_url: ``http://127.0.0.1:<port>``, for job submission and the state API.
        token: the cluster's auth token.
        temp_dir: Ray's ``--temp-dir`` (sessions, logs, sockets), unique to this cluster.
        state_dir: where node logs (``ray-<name>.log``) are written.
        node_env: environment every node (and so every job driver and worker) gets.
        head: the head node; ``workers`` the worker nodes in start order.
    """

    gcs_address: str
    dashboard_url: str
    token: str
    temp_dir: Path
    state_dir: Path
    node_env: dict[str, str]
    head: RayNode
    workers: list[RayNode] = field(default_factory=list)

    @property
    def nodes(self) -> list[RayNode]:
        return [self.head, *self.workers]

    @property
    def auth_env(self) -> dict[str, str]:
        """The variables any Ray client of this cluster needs to authenticate."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    @property
    def env(self) -> dict[str, str]:
        """Client environment: addresses plus auth. Merge into a driver's or CLI's env."""
        return {
            "RAY_ADDRESS": self.gcs_address,
            "RAY_API_SERVER_ADDRESS": self.dashboard_url,
            **self.auth_env,
        }

    @property
    def auth_headers(self) -> dict[str, str]:
        """HTTP headers for the dashboard / job / state REST API."""
        return {"Authorization": f"Bearer {self.token}"}

    def node(self, name: str) -> RayNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node named {name!r}; nodes: {[n.name for n in self.nodes]}")

    def list_nodes(self) -> list[dict[str, Any]]:
        """Node states from the dashboard's state API (``state``, ``labels``, ``resources_total``...)."""
        status, body = http_get(
            f"{self.dashboard_url}/api/v0/nodes?limit=1000&detail=true",
            headers=self.auth_headers,
            timeout=10.0,
        )
        if status != 200:
            raise RuntimeError(f"state API answered HTTP {status}: {body[:500]!r}")
        payload = json.loads(body)
        return list(payload["data"]["result"]["result"])

    def alive_node_names(self) -> set[str]:
        """Names (``raysf.node`` label) of the nodes the GCS reports ALIVE."""
        return {
            n.get("labels", {}).get(NODE_LABEL, "?")
            for n in self.list_nodes()
            if n.get("state") == "ALIVE"
        }

    def add_worker(
        self,
        name: str | None = None,
        *,
        num_cpus: int = 1,
        resources: Mapping[str, float] | None = None,
        labels: Mapping[str, str] | None = None,
        object_store_memory: int = DEFAULT_OBJECT_STORE_BYTES,
        timeout: float = 90.0,
    ) -> RayNode:
        """Start one more worker raylet; see :func:`start_ray_worker`."""
        return start_ray_worker(
            self,
            name=name,
            num_cpus=num_cpus,
            resources=resources,
            labels=labels,
            object_store_memory=object_store_memory,
            timeout=timeout,
        )

    def stop(self) -> None:
        stop_ray(self)


def _node_args(
    name: str,
    num_cpus: int,
    resources: Mapping[str, float],
    labels: Mapping[str, str],
    object_store_memory: int,
) -> tuple[list[str], int]:
    """Per-node ``ray start`` flags with freshly discovered ports; returns (args, nm_port)."""
    if num_cpus < 0:
        raise ValueError(f"num_cpus must be >= 0, got {num_cpus}")
    for key in labels:
        if key == NODE_LABEL:
            raise ValueError(f"label {NODE_LABEL!r} is reserved for the node name")
    low, high = free_port_range(WORKER_PORTS_PER_NODE)
    node_manager_port = free_port()
    all_labels = {NODE_LABEL: name, **labels}
    args = [
        "--block",
        f"--node-ip-address={RAY_NODE_IP}",
        f"--num-cpus={num_cpus}",
        "--num-gpus=0",
        f"--resources={json.dumps(dict(resources))}",
        f"--labels={','.join(f'{k}={v}' for k, v in all_labels.items())}",
        f"--object-store-memory={object_store_memory}",
        f"--node-manager-port={node_manager_port}",
        f"--object-manager-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--min-worker-port={low}",
        f"--max-worker-port={high}",
        "--disable-usage-stats",
        "--log-style=record",
        "--log-color=false",
    ]
    return args, node_manager_port


def _node_env(token: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    # A client address inherited from the caller must not redirect `ray start`.
    for key in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)
    env.update(extra or {})
    # Job entrypoints such as "python -m jobs.train" must find this venv's interpreter.
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    env.update(
        {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": token,
            "RAY_USAGE_STATS_ENABLED": "0",
            # Detect a dead raylet in ~3-5 s instead of ~15-30 s (node-kill tests).
            "RAY_health_check_initial_delay_ms": "1000",
            "RAY_health_check_period_ms": "1000",
            "RAY_health_check_timeout_ms": "1000",
            "RAY_health_check_failure_threshold": "3",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def start_ray_head(
    state_dir: str | os.PathLike[str],
    *,
    num_cpus: int = 1,
    resources: Mapping[str, float] | None = None,
    labels: Mapping[str, str] | None = None,
    object_store_memory: int = DEFAULT_OBJECT_STORE_BYTES,
    env: Mapping[str, str] | None = None,
    name: str = "head",
    timeout: float = 180.0,
) -> RayCluster:
    """Start a Ray head node on 127.0.0.1 and wait until the GCS lists it ALIVE.

    Args:
        state_dir: folder for the node logs (created if missing).
        num_cpus: logical CPUs of the head (jobs' drivers run here; keep >= 1).
        resources: custom resources of the head, e.g. ``{"head_node": 1}``.
        labels: extra node labels (``raysf.node=<name>`` is always set).
        object_store_memory: bytes of shared memory for the head's object store.
        env: extra environment for every process of the node (e.g. AWS / MLflow vars, so
            jobs and their workers inherit them).
        name: node name.
        timeout: seconds to wait for the head to come up.

    Returns:
        A :class:`RayCluster`; call :func:`stop_ray` (or ``cluster.stop()``) to tear down.
    """
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    # Ray puts Unix sockets under --temp-dir: keep the path short (108-byte limit).
    temp_dir = Path(tempfile.mkdtemp(prefix="rsf-ray-", dir="/tmp"))
    token = secrets.token_hex(32)
    gcs_port, dashboard_port = free_port(), free_port()
    node_args, nm_port = _node_args(
        name, num_cpus, dict(resources or {}), dict(labels or {}), object_store_memory
    )
    argv = [
        ray_executable(),
        "start",
        "--head",
        f"--port={gcs_port}",
        "--include-dashboard=true",
        f"--dashboard-host={RAY_NODE_IP}",
        f"--dashboard-port={dashboard_port}",
        f"--ray-client-server-port={free_port()}",
        f"--temp-dir={temp_dir}",
        *node_args,
    ]
    node_env = _node_env(token, env)
    process = spawn(f"ray node {name}", argv, state / f"ray-{name}.log", env=node_env)
    head = RayNode(
        name=name,
        is_head=True,
        node_manager_port=nm_port,
        resources=dict(resources or {}),
        labels=dict(labels or {}),
        num_cpus=num_cpus,
        process=process,
    )
    cluster = RayCluster(
        gcs_address=f"{RAY_NODE_IP}:{gcs_port}",
        dashboard_url=f"http://{RAY_NODE_IP}:{dashboard_port}",
        token=token,
        temp_dir=temp_dir,
        state_dir=state,
        node_env=node_env,
        head=head,
    )
    try:
        wait_http(f"{cluster.dashboard_url}/api/version", timeout, process, cluster.auth_headers)
        _wait_node_alive(cluster, head, timeout)
    except BaseException:
        stop_ray(cluster)
        raise
    return cluster


def start_ray_worker(
    cluster: RayCluster,
    *,
    name: str | None = None,
    num_cpus: int = 1,
    resources: Mapping[str, float] | None = None,
    labels: Mapping[str, str] | None = None,
    object_store_memory: int = DEFAULT_OBJECT_STORE_BYTES,
    timeout: float = 90.0,
    retries: int = 1,
) -> RayNode:
    """Start a worker raylet that joins ``cluster``, and wait until it is ALIVE.

    Args:
        cluster: the cluster from :func:`start_ray_head`; the node is appended to
            ``cluster.workers``.
        name: node name (default ``worker-<i>``), also its ``raysf.node`` label.
        num_cpus: logical CPUs of the node.
        resources: custom resources, e.g. ``{"decode_node": 100}`` or ``{"train_node": 100}``.
        labels: extra Ray node labels.
        object_store_memory: bytes of shared memory for the node's object store.
        timeout: seconds to wait for the node to register (per attempt).
        retries: extra attempts when the node fails to come up.
    """
    name = name or f"worker-{len(cluster.workers) + 1}"
    if name in {n.name for n in cluster.nodes}:
        raise ValueError(f"node name {name!r} is already used in this cluster")
    last_error: Exception | None = None
    for _attempt in range(1 + retries):
        node = _launch_worker(
            cluster, name, num_cpus, resources, labels, object_store_memory, log_suffix=_attempt
        )
        try:
            _wait_node_alive(cluster, node, timeout)
            cluster.workers.append(node)
            return node
        except (RuntimeError, TimeoutError) as err:
            # `ray start` gives a raylet a fixed 30 s to register; on an overloaded
            # machine that can run out, so the node is started once more.
            _stop_node(node)
            last_error = err
    assert last_error is not None
    raise last_error


def _launch_worker(
    cluster: RayCluster,
    name: str,
    num_cpus: int,
    resources: Mapping[str, float] | None,
    labels: Mapping[str, str] | None,
    object_store_memory: int,
    log_suffix: int,
) -> RayNode:
    node_args, nm_port = _node_args(
        name, num_cpus, dict(resources or {}), dict(labels or {}), object_store_memory
    )
    argv = [ray_executable(), "start", f"--address={cluster.gcs_address}", *node_args]
    log = cluster.state_dir / f"ray-{name}{'' if not log_suffix else f'-retry{log_suffix}'}.log"
    process = spawn(f"ray node {name}", argv, log, env=cluster.node_env)
    return RayNode(
        name=name,
        is_head=False,
        node_manager_port=nm_port,
        resources=dict(resources or {}),
        labels=dict(labels or {}),
        num_cpus=num_cpus,
        process=process,
    )


def _wait_node_alive(cluster: RayCluster, node: RayNode, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not node.process.alive():
            raise RuntimeError(
                f"ray node {node.name} exited with code {node.process.popen.returncode}; "
                f"log {node.process.log_path}:\n{node.process.log_tail()}"
            )
        with contextlib.suppress(OSError, RuntimeError, KeyError, ValueError):
            if node.name in cluster.alive_node_names():
                return
        time.sleep(0.5)
    raise TimeoutError(
        f"ray node {node.name} not ALIVE after {timeout:.0f}s; "
        f"log {node.process.log_path}:\n{node.process.log_tail()}"
    )


def wait_for_nodes(cluster: RayCluster, n: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Wait until exactly ``n`` nodes are ALIVE; return their state-API records."""
    deadline = time.monotonic() + timeout
    alive: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, RuntimeError):
            alive = [x for x in cluster.list_nodes() if x.get("state") == "ALIVE"]
            if len(alive) == n:
                return alive
        time.sleep(0.5)
    raise TimeoutError(f"expected {n} ALIVE nodes within {timeout:.0f}s, saw {len(alive)}")


def wait_for_node_dead(cluster: RayCluster, node: RayNode, timeout: float = 60.0) -> None:
    """Wait until the GCS no longer reports ``node`` ALIVE."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, RuntimeError):
            if node.name not in cluster.alive_node_names():
                return
        time.sleep(0.5)
    raise TimeoutError(f"node {node.name} still ALIVE after {timeout:.0f}s")


def kill_node(node: RayNode, sig: int = signal.SIGKILL) -> int:
    """Kill ``node``'s raylet (SIGKILL by default), as a crashed machine would; return its pid.

    The ``ray start --block`` parent notices and exits; the GCS marks the node DEAD after
    its health check fails. Use :func:`wait_for_node_dead` to wait for that.
    """
    pid = node.raylet_pid()
    if pid is None:
        raise RuntimeError(f"no raylet process found for node {node.name}")
    os.kill(pid, sig)
    return pid


def _stop_node(node: RayNode, grace: float = 2.0) -> None:
    _stop_groups([node], grace)


def _stop_groups(nodes: list[RayNode], grace: float) -> None:
    """SIGTERM every node's process group, SIGKILL whatever is left after ``grace`` s."""
    for node in nodes:
        signal_group(node.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(group_alive(n.process.pid) for n in nodes):
        time.sleep(0.1)
    for node in nodes:
        node.process.stop(timeout=0.5)


def stop_ray(cluster: RayCluster, remove_temp_dir: bool = True, grace: float = 2.0) -> None:
    """Stop every node of ``cluster`` and any process left in its temp dir.

    Only this cluster's process groups are signalled (never ``ray stop``, which would kill
    every Ray process on the machine): SIGTERM, then SIGKILL after ``grace`` seconds (a
    test cluster needs no draining). Processes that escaped their group are found by the
    cluster's unique ``--temp-dir`` in their command line and killed.
    """
    _stop_groups(cluster.nodes, grace)
    for _ in range(3):
        stray = [p for p in find_pids(str(cluster.temp_dir)) if p != os.getpid()]
        if not stray:
            break
        for pid in stray:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    if remove_temp_dir:
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)


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
