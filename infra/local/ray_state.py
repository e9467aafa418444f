"""Node states of a local Ray cluster, as the GCS reports them through the dashboard.

Every wait polls :meth:`RayCluster.list_nodes` (the state API) twice a second until the nodes
are in the wanted state, and raises ``TimeoutError`` when ``timeout`` seconds pass first.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from infra.local.ray_nodes import RayNode

if TYPE_CHECKING:
    from infra.local.ray_cluster import RayCluster


def wait_node_alive(cluster: RayCluster, node: RayNode, timeout: float) -> None:
    """Wait until the GCS reports ``node`` ALIVE; RuntimeError (with its log) if it exits."""
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
