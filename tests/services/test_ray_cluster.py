"""A real two-node Ray cluster on loopback: nodes, auth, job submission, node kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.local.procs import find_pids
from infra.local.ray_cluster import kill_node, submit_job, wait_for_node_dead, wait_for_nodes

pytestmark = pytest.mark.slow

NODES_SCRIPT = (
    "import json, ray; ray.init(); "
    "print('NODES=' + json.dumps([[n['Alive'], n['Resources']] for n in ray.nodes()]))"
)


@pytest.fixture(scope="module")
def cluster(ray_cluster_factory):
    return ray_cluster_factory(
        workers=[{"name": "decode-1", "resources": {"decode_node": 100}}],
        head_resources={"head_node": 1},
    )


def _client(cluster, code: str, with_auth: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(cluster.env if with_auth else {"RAY_ADDRESS": cluster.gcs_address})
    if not with_auth:
        env["RAY_AUTH_MODE"] = "disabled"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_client_with_token_sees_both_nodes_and_resources(cluster):
    alive = wait_for_nodes(cluster, 2)
    assert {n["labels"]["raysf.node"] for n in alive} == {"head", "decode-1"}
    result = _client(cluster, NODES_SCRIPT)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("NODES="))
    nodes = json.loads(line.removeprefix("NODES="))
    assert [alive for alive, _ in nodes] == [True, True]
    resources = [res for _, res in nodes]
    assert any(r.get("decode_node") == 100 for r in resources)
    assert any(r.get("head_node") == 1 for r in resources)
    assert all("node:127.0.0.2" in r for r in resources), "nodes must stay on loopback"


def test_client_without_token_is_rejected(cluster):
    result = _client(cluster, NODES_SCRIPT, with_auth=False)
    assert result.returncode != 0
    assert "NODES=" not in result.stdout


def test_job_runs_task_on_decode_node(cluster, tmp_path: Path):
    (tmp_path / "job.py").write_text(
        "import os, ray\n"
        "ray.init()\n"
        "@ray.remote(resources={'decode_node': 1})\n"
        "def where():\n"
        "    return os.environ['GREETING'], ray.get_runtime_context().get_node_id()\n"
        "print('RESULT', *ray.get(where.remote()))\n"
    )
    result = submit_job(cluster, "python job.py", tmp_path, env={"GREETING": "hello"})
    assert result.status == "SUCCEEDED", result.logs[-3000:]
    decode_id = next(
        n["node_id"] for n in cluster.list_nodes() if n["labels"]["raysf.node"] == "decode-1"
    )
    assert f"RESULT hello {decode_id}" in result.logs


def test_failing_job_reports_failed(cluster, tmp_path: Path):
    result = submit_job(cluster, "python -c 'import sys; sys.exit(3)'", tmp_path)
    assert result.status == "FAILED"


def test_killing_raylet_marks_node_dead(cluster):
    worker = cluster.node("decode-1")
    pid = kill_node(worker)
    wait_for_node_dead(cluster, worker, timeout=60)
    assert worker.raylet_pid() is None
    assert pid not in find_pids(str(cluster.temp_dir))
    assert cluster.alive_node_names() == {"head"}


def test_stop_leaves_no_process(ray_cluster_factory):
    from infra.local.ray_cluster import stop_ray

    cluster = ray_cluster_factory()
    assert find_pids(str(cluster.temp_dir)), "the running head must be found by its temp dir"
    stop_ray(cluster)
    assert find_pids(str(cluster.temp_dir)) == []
    assert not cluster.temp_dir.exists()
