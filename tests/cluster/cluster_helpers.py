"""Helpers of the ``tests/cluster`` suite: job submission, state API, metrics-log parsing."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.local.e2e import INGEST_SAMPLING, submit, wait_job
from infra.local.procs import http_get
from infra.local.ray_cluster import NODE_LABEL, RayCluster

S3_BUCKET = "raysf-test"  # created by the s3_server fixture (tests/conftest.py)
SYNTH = {"classes": 3, "videos_per_class": 6, "frames": 40, "seed": 0}
RAW = f"s3://{S3_BUCKET}/raw/synth"
CLEAN_DATASET = f"s3://{S3_BUCKET}/datasets/clean"
DECODE_RESOURCES = "data.decode.resources={decode_node: 1}"
TRAIN_RESOURCES = "scaling.resources_per_worker={CPU: 1, train_node: 1}"
JOB_TIMEOUT = 600.0  # a 2-epoch run takes ~1-2 min on 2 idle cores, 7+ min at load 60+


@dataclass
class Env:
    """What the tests need: the cluster and the S3 endpoint (moto, no faults)."""

    cluster: RayCluster
    s3_endpoint: str

    def submit(self, argv: Sequence[str]) -> tuple[Any, str]:
        return submit(self.cluster.dashboard_url, self.cluster.token, argv)

    def run(self, argv: Sequence[str], timeout: float = JOB_TIMEOUT) -> str:
        """Run a job to completion; fail the test with the log tail unless it SUCCEEDED."""
        client, job_id = self.submit(argv)
        status, logs = wait_job(client, job_id, timeout)
        assert status == "SUCCEEDED", f"job {job_id} {status}:\n{logs[-6000:]}"
        return logs

    def ray_job_id(self, client: Any, submission_id: str) -> str:
        """The Ray job id (hex) of a submission, as the state API records it."""
        return str(client.get_job_info(submission_id).job_id)

    def state(self, resource: str) -> list[dict[str, Any]]:
        """All records of ``resource`` (``tasks``, ``actors``, ``nodes``) from the state API."""
        status, body = http_get(
            f"{self.cluster.dashboard_url}/api/v0/{resource}?limit=10000&detail=true",
            headers=self.cluster.auth_headers,
            timeout=30.0,
        )
        assert status == 200, f"state API {resource}: HTTP {status} {body[:300]!r}"
        return list(json.loads(body)["data"]["result"]["result"])

    def node_names(self) -> dict[str, str]:
        """node id -> node name (``raysf.node`` label), dead nodes included."""
        return {n["node_id"]: n.get("labels", {}).get(NODE_LABEL, "?") for n in self.state("nodes")}


def ingest_argv(videos: str, out: str, *extra: str) -> list[str]:
    argv = ["python", "-m", "jobs.ingest", "--videos", videos, "--format", "kinetics"]
    return [*argv, "--out", out, *INGEST_SAMPLING, "resources.address=auto", *extra]


def train_argv(dataset: str, storage_path: str, metrics_log: Path, *extra: str) -> list[str]:
    """``jobs.train`` with the smoke sizes, decode tasks on decode nodes, workers on train nodes."""
    return [
        "python",
        "-m",
        "jobs.train",
        "--smoke-test",
        "--metrics-log",
        str(metrics_log),
        "jobs/train.yaml",
        f"data.dataset={dataset}",
        f"storage.path={storage_path}",
        "mlflow.enabled=false",
        "eval.after_training=false",
        "data.shuffle_buffer=0",
        DECODE_RESOURCES,
        TRAIN_RESOURCES,
        *extra,
    ]


def read_reports(path: Path) -> list[dict[str, Any]]:
    """Records of a ``--metrics-log`` file (reports and failures), in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reported_epochs(records: list[dict[str, Any]]) -> list[int]:
    """Epoch of every report round, in order (rank 0's value)."""
    return [int(r["rank_metrics"][0]["epoch"]) for r in records if "rank_metrics" in r]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    """Poll ``predicate`` until it returns a truthy value; ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} within {timeout:.0f}s")
