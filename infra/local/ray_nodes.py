"""One node of a local Ray cluster: its ``ray start`` flags and environment, kill and stop.

Each node is a ``ray start --block`` process leading its own process group, with its own
ports (GCS, node manager, object manager, dashboard agent, runtime-env agent, metrics,
a disjoint worker-port range), a custom resource and the node label ``raysf.node=<name>``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.local.credentials import without_credentials
from infra.local.procs import (
    ServiceProcess,
    find_executable,
    find_pids,
    free_port,
    free_port_range,
    group_alive,
    signal_group,
)
from infra.local.ray_auth import auth_env

NODE_LABEL = "raysf.node"
WORKER_PORTS_PER_NODE = 40
DEFAULT_OBJECT_STORE_BYTES = 256 * 1024 * 1024
# `ray start` rewrites "127.0.0.1"/"localhost" to the host's routable address (its
# resolve_ip_for_localhost), which would put cluster traffic on the real interface.
# 127.0.0.2 is loopback too but is not rewritten, so every Ray node binds and advertises it.
RAY_NODE_IP = "127.0.0.2"


def ray_executable() -> str:
    """The ``ray`` CLI next to the running interpreter (the venv's), else from PATH."""
    return find_executable("ray", "the `ray` CLI is neither next to sys.executable nor on PATH")


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


def node_start_args(
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


def node_env(token: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    """Environment of a node's processes: ours plus ``extra``, the venv first on PATH, auth.

    Credentials of the caller's environment (AWS keys, profiles, MLflow logins) are left out:
    a node gets exactly those that ``extra`` names, e.g. the path of an S3 credentials file.
    """
    env = without_credentials(os.environ)
    # A client address inherited from the caller must not redirect `ray start`.
    for key in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)
    env.update(extra or {})
    # Job entrypoints such as "python -m jobs.train" must find this venv's interpreter.
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    env.update(
        {
            **auth_env(token),
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


def kill_node(node: RayNode, sig: int = signal.SIGKILL) -> int:
    """Kill ``node``'s raylet (SIGKILL by default), as a crashed machine would; return its pid.

    The ``ray start --block`` parent notices and exits; the GCS marks the node DEAD after
    its health check fails. Use :func:`~infra.local.ray_cluster.wait_for_node_dead` to wait
    for that.
    """
    pid = node.raylet_pid()
    if pid is None:
        raise RuntimeError(f"no raylet process found for node {node.name}")
    os.kill(pid, sig)
    return pid


def stop_node(node: RayNode, grace: float = 2.0) -> None:
    """Stop one node's process group (see :func:`stop_nodes`)."""
    stop_nodes([node], grace)


def stop_nodes(nodes: list[RayNode], grace: float) -> None:
    """SIGTERM every node's process group, SIGKILL whatever is left after ``grace`` s."""
    for node in nodes:
        signal_group(node.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(group_alive(n.process.pid) for n in nodes):
        time.sleep(0.1)
    for node in nodes:
        node.process.stop(timeout=0.5)
