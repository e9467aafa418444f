"""A multi-node Ray cluster on 127.0.0.1: one head and any number of worker raylets.

Each node is a ``ray start --block`` process leading its own process group, with its own
ports (GCS, node manager, object manager, dashboard agent, runtime-env agent, metrics,
a disjoint worker-port range), a custom resource and the node label ``raysf.node=<name>``.

Authentication: token auth (``RAY_AUTH_MODE=token``) with a fresh random token per cluster,
given to every node; clients get the same variables from ``RayCluster.env``
(see :mod:`infra.local.ray_auth`).

This module starts and stops whole clusters. The pieces live next to it and are re-exported
here: :mod:`infra.local.ray_nodes` (one node's flags, environment, kill, stop),
:mod:`infra.local.ray_state` (waiting for nodes to be ALIVE or dead) and
:mod:`infra.local.ray_jobs` (job submission).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.procs import find_pids, free_port, http_get, spawn, wait_http
from infra.local.ray_auth import auth_env, auth_headers, new_token
from infra.local.ray_jobs import TERMINAL_JOB_STATES, JobResult, submit_job
from infra.local.ray_nodes import (
    DEFAULT_OBJECT_STORE_BYTES,
    NODE_LABEL,
    RAY_NODE_IP,
    WORKER_PORTS_PER_NODE,
    RayNode,
    kill_node,
    node_env,
    node_start_args,
    ray_executable,
    stop_node,
    stop_nodes,
)
from infra.local.ray_state import wait_for_node_dead, wait_for_nodes, wait_node_alive

__all__ = [
    "DEFAULT_OBJECT_STORE_BYTES",
    "NODE_LABEL",
    "RAY_NODE_IP",
    "TERMINAL_JOB_STATES",
    "WORKER_PORTS_PER_NODE",
    "JobResult",
    "RayCluster",
    "RayNode",
    "kill_node",
    "ray_executable",
    "start_ray_head",
    "start_ray_worker",
    "stop_ray",
    "submit_job",
    "wait_for_node_dead",
    "wait_for_nodes",
]


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
        return auth_env(self.token)

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
        return auth_headers(self.token)

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
    retries: int = 2,
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
        retries: extra attempts (fresh ports and temp dir) when the head fails to come up.

    Returns:
        A :class:`RayCluster`; call :func:`stop_ray` (or ``cluster.stop()``) to tear down.
    """
    for attempt in range(1 + retries):
        cluster = _launch_head(
            Path(state_dir), name, num_cpus, resources, labels, object_store_memory, env
        )
        try:
            _wait_head(cluster, timeout)
            return cluster
        except (RuntimeError, TimeoutError):
            # `ray start` gives its raylet a fixed 30 s to register with the GCS; on an
            # overloaded machine that can run out, so the head is started again.
            stop_ray(cluster)
            if attempt == retries:
                raise
        except BaseException:
            stop_ray(cluster)
            raise
    raise AssertionError("unreachable")


def _wait_head(cluster: RayCluster, timeout: float) -> None:
    """Wait until the head's dashboard answers and the GCS lists the head ALIVE."""
    wait_http(
        f"{cluster.dashboard_url}/api/version",
        timeout,
        cluster.head.process,
        cluster.auth_headers,
    )
    wait_node_alive(cluster, cluster.head, timeout)


def _launch_head(
    state: Path,
    name: str,
    num_cpus: int,
    resources: Mapping[str, float] | None,
    labels: Mapping[str, str] | None,
    object_store_memory: int,
    env: Mapping[str, str] | None,
) -> RayCluster:
    """Spawn the head's ``ray start --head`` with fresh ports, token and temp dir (no wait)."""
    state.mkdir(parents=True, exist_ok=True)
    # Ray puts Unix sockets under --temp-dir: keep the path short (108-byte limit).
    temp_dir = Path(tempfile.mkdtemp(prefix="rsf-ray-", dir="/tmp"))
    token = new_token()
    gcs_port, dashboard_port = free_port(), free_port()
    node_args, nm_port = node_start_args(
        name, num_cpus, dict(resources or {}), dict(labels or {}), object_store_memory
    )
    argv = _head_argv(gcs_port, dashboard_port, temp_dir, node_args)
    env_vars = node_env(token, env)
    process = spawn(f"ray node {name}", argv, state / f"ray-{name}.log", env=env_vars)
    head = RayNode(
        name=name,
        is_head=True,
        node_manager_port=nm_port,
        resources=dict(resources or {}),
        labels=dict(labels or {}),
        num_cpus=num_cpus,
        process=process,
    )
    return RayCluster(
        gcs_address=f"{RAY_NODE_IP}:{gcs_port}",
        dashboard_url=f"http://{RAY_NODE_IP}:{dashboard_port}",
        token=token,
        temp_dir=temp_dir,
        state_dir=state,
        node_env=env_vars,
        head=head,
    )


def _head_argv(
    gcs_port: int, dashboard_port: int, temp_dir: Path, node_args: list[str]
) -> list[str]:
    """``ray start --head`` with its GCS, dashboard and client-server ports and temp dir."""
    return [
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
            wait_node_alive(cluster, node, timeout)
            cluster.workers.append(node)
            return node
        except (RuntimeError, TimeoutError) as err:
            # `ray start` gives a raylet a fixed 30 s to register; on an overloaded
            # machine that can run out, so the node is started once more.
            stop_node(node)
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
    node_args, nm_port = node_start_args(
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


def stop_ray(cluster: RayCluster, remove_temp_dir: bool = True, grace: float = 2.0) -> None:
    """Stop every node of ``cluster`` and any process left in its temp dir.

    Only this cluster's process groups are signalled (never ``ray stop``, which would kill
    every Ray process on the machine): SIGTERM, then SIGKILL after ``grace`` seconds (a
    test cluster needs no draining). Processes that escaped their group are found by the
    cluster's unique ``--temp-dir`` in their command line and killed.
    """
    stop_nodes(cluster.nodes, grace)
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
