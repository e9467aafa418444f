"""Public entry point for the local services: import from here, or run as a CLI.

    python -m infra.local.services up     --state-dir .local-cluster [--workers 2]
    python -m infra.local.services status --state-dir .local-cluster
    python -m infra.local.services down   --state-dir .local-cluster

``up`` starts moto S3 (bucket ``raysf``), an MLflow server with artifacts in
``s3://raysf/mlflow`` behind MLflow's basic-auth app, a Ray head with token auth and
``--workers`` worker nodes alternating decode (``{"decode_node": 100}``) and train
(``{"train_node": 100}``) flavours. It writes ``state.json`` (process groups, ports) and
``env.sh`` (``source`` it for RAY_ADDRESS, the Ray auth token, MLFLOW_TRACKING_URI and its
login, AWS_* with the path of the S3 credentials file) under the state dir: both hold secrets,
so the state dir is 0700 and every file in it 0600. Every service leads its own process group,
so the services outlive the ``up`` command and ``down`` stops exactly them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

from infra.local.credentials import private_dir, write_private
from infra.local.faulty_s3_proxy import FAULT_KINDS, FaultPlan, FaultyS3Proxy
from infra.local.mlflow_server import MlflowServer, start_mlflow_server
from infra.local.procs import (
    LOOPBACK,
    ServiceProcess,
    find_pids,
    free_port,
    group_alive,
    http_get,
    signal_group,
    spawn,
    wait_http,
)
from infra.local.ray_cluster import (
    NODE_LABEL,
    RAY_NODE_IP,
    JobResult,
    RayCluster,
    RayNode,
    kill_node,
    start_ray_head,
    start_ray_worker,
    stop_ray,
    submit_job,
    wait_for_node_dead,
    wait_for_nodes,
)
from infra.local.s3 import (
    S3_CREDENTIALS,
    S3Server,
    make_bucket,
    s3_client,
    s3_env,
    start_moto_server,
)

__all__ = [
    "FAULT_KINDS",
    "LOOPBACK",
    "NODE_LABEL",
    "RAY_NODE_IP",
    "S3_CREDENTIALS",
    "FaultPlan",
    "FaultyS3Proxy",
    "JobResult",
    "MlflowServer",
    "RayCluster",
    "RayNode",
    "S3Server",
    "ServiceProcess",
    "free_port",
    "http_get",
    "kill_node",
    "make_bucket",
    "s3_client",
    "s3_env",
    "spawn",
    "start_mlflow_server",
    "start_moto_server",
    "start_ray_head",
    "start_ray_worker",
    "stop_ray",
    "submit_job",
    "wait_for_node_dead",
    "wait_for_nodes",
    "wait_http",
]

DEFAULT_STATE_DIR = ".local-cluster"
DEFAULT_BUCKET = "raysf"
STATE_FILE = "state.json"
ENV_FILE = "env.sh"


def worker_flavour(index: int) -> tuple[str, dict[str, float]]:
    """Name and resources of the ``index``-th (0-based) worker: decode, train, decode, ..."""
    kind = "decode" if index % 2 == 0 else "train"
    return f"{kind}-{index // 2 + 1}", {f"{kind}_node": 100.0}


def up(state_dir: Path, workers: int = 2, bucket: str = DEFAULT_BUCKET) -> dict[str, object]:
    """Start S3, MLflow and a Ray cluster with ``workers`` worker nodes; write state + env."""
    if workers < 0:
        raise ValueError(f"--workers must be >= 0, got {workers}")
    if (state_dir / STATE_FILE).exists():
        raise RuntimeError(f"{state_dir / STATE_FILE} exists: run `down` first")
    private_dir(state_dir)
    started: list[ServiceProcess] = []
    cluster: RayCluster | None = None
    try:
        s3 = start_moto_server(state_dir)
        started.append(s3.process)
        make_bucket(s3.endpoint, bucket)
        mlflow = start_mlflow_server(
            state_dir / "mlflow", f"s3://{bucket}/mlflow", s3.env, auth=True
        )
        started.append(mlflow.process)
        cluster = start_ray_head(state_dir / "ray", env={**s3.env, **mlflow.env})
        for index in range(workers):
            name, resources = worker_flavour(index)
            start_ray_worker(cluster, name=name, resources=resources)
    except BaseException:
        if cluster is not None:
            stop_ray(cluster)
        for process in started:
            process.stop()
        raise
    env = {**s3.env, **mlflow.env, **cluster.env}
    state = {
        "env": env,
        "s3_endpoint": s3.endpoint,
        "bucket": bucket,
        "mlflow_tracking_uri": mlflow.tracking_uri,
        "ray_gcs_address": cluster.gcs_address,
        "ray_dashboard_url": cluster.dashboard_url,
        "ray_temp_dir": str(cluster.temp_dir),
        "process_groups": {
            "moto": s3.process.pid,
            "mlflow": mlflow.process.pid,
            **{f"ray:{n.name}": n.process.pid for n in cluster.nodes},
        },
        "ray_nodes": {
            n.name: {"resources": n.resources, "node_manager_port": n.node_manager_port}
            for n in cluster.nodes
        },
    }
    write_private(state_dir / STATE_FILE, json.dumps(state, indent=2))
    lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    write_private(state_dir / ENV_FILE, "\n".join(lines) + "\n")
    return state


def down(state_dir: Path, grace: float = 3.0) -> list[str]:
    """Stop every process group recorded by :func:`up`; return the names stopped."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return []
    state = json.loads(path.read_text())
    groups: dict[str, int] = state["process_groups"]
    for pgid in groups.values():
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(group_alive(p) for p in groups.values()):
        time.sleep(0.1)
    for pgid in groups.values():
        signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(group_alive(p) for p in groups.values()):
        time.sleep(0.1)
    temp_dir = state["ray_temp_dir"]
    for pid in find_pids(temp_dir):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(temp_dir, ignore_errors=True)
    path.unlink()
    (state_dir / ENV_FILE).unlink(missing_ok=True)
    return sorted(groups)


def status(state_dir: Path) -> dict[str, bool]:
    """Whether each recorded process group is still running (empty if not up)."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return {}
    groups: dict[str, int] = json.loads(path.read_text())["process_groups"]
    return {name: group_alive(pgid) for name, pgid in groups.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="local S3 + MLflow + multi-node Ray")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--state-dir", type=Path, default=Path(DEFAULT_STATE_DIR))
    parser.add_argument("--workers", type=int, default=2, help="worker nodes (up only)")
    parser.add_argument("--bucket", default=DEFAULT_BUCKET, help="S3 bucket (up only)")
    args = parser.parse_args(argv)
    state_dir = args.state_dir.resolve()
    if args.command == "up":
        state = up(state_dir, args.workers, args.bucket)
        print(f"up: {', '.join(state['process_groups'])}")  # type: ignore[arg-type]
        print(f"source {state_dir / ENV_FILE}")
        return 0
    if args.command == "down":
        stopped = down(state_dir)
        print(f"down: {', '.join(stopped) or 'nothing was running'}")
        return 0
    alive = status(state_dir)
    if not alive:
        print("not running")
        return 1
    for name, ok in alive.items():
        print(f"{name}: {'running' if ok else 'DEAD'}")
    return 0 if all(alive.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
