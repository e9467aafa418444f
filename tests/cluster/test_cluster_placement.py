"""Placement on the multi-node cluster, and checkpoints written through a flaky S3 endpoint.

One training run serves both tests (a run costs a minute or more on two cores): two DDP workers
with ``resources_per_worker={CPU: 1, train_node: 1}`` and decode tasks with
``data.decode.resources={decode_node: 1}``, checkpoints to ``s3://`` through a
:class:`~infra.local.faulty_s3_proxy.FaultyS3Proxy` that fails 20% of requests.

Placement is read back from Ray's state API after the run: the node of every
``decode_batch`` task and of every ``RayTrainWorker`` actor of the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from infra.local.e2e import wait_job
from infra.local.faulty_s3_proxy import FaultyS3Proxy
from infra.local.s3 import s3_client
from tests.cluster.cluster_helpers import (
    JOB_TIMEOUT,
    S3_BUCKET,
    Env,
    read_reports,
    reported_epochs,
    train_argv,
)

pytestmark = pytest.mark.slow

EPOCHS = 2
STORAGE = f"s3://{S3_BUCKET}/checkpoints/placement"


@dataclass
class Run:
    reports: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    actors: list[dict[str, Any]]
    node_names: dict[str, str]
    faults: dict[str, Any]
    logs: str


@pytest.fixture(scope="module")
def run(env: Env, clean_dataset: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    metrics_log = tmp_path_factory.mktemp("placement") / "reports.jsonl"
    with FaultyS3Proxy(env.s3_endpoint, failure_rate=0.2, seed=7) as proxy:
        argv = train_argv(
            clean_dataset,
            STORAGE,
            metrics_log,
            f"storage.endpoint_url={proxy.endpoint}",
            "storage.name=placement",
            "scaling.num_workers=2",
            "scaling.placement_strategy=SPREAD",
            "train.batch_size=2",
            f"train.epochs={EPOCHS}",
            "checkpoint.keep=4",
        )
        client, submission = env.submit(argv)
        status, logs = wait_job(client, submission, JOB_TIMEOUT)
        faults = proxy.stats()
    assert status == "SUCCEEDED", f"training job {status}:\n{logs[-6000:]}"
    job_id = env.ray_job_id(client, submission)
    return Run(
        reports=read_reports(metrics_log),
        tasks=[t for t in env.state("tasks") if t.get("job_id") == job_id],
        actors=[a for a in env.state("actors") if a.get("job_id") == job_id],
        node_names=env.node_names(),
        faults=faults,
        logs=logs,
    )


def test_decode_tasks_run_on_decode_nodes(run: Run) -> None:
    decode = [t for t in run.tasks if "decode_batch" in str(t.get("name", ""))]
    assert decode, f"no decode_batch task in {sorted({t.get('name') for t in run.tasks})}"
    where = {run.node_names.get(t.get("node_id"), t.get("node_id")) for t in decode}
    assert where == {"decode-1"}, f"decode tasks ran on {where}"


def test_training_workers_run_on_train_nodes(run: Run) -> None:
    workers = [a for a in run.actors if "RayTrainWorker" in str(a.get("class_name", ""))]
    assert len(workers) == 2, [a.get("class_name") for a in run.actors]
    where = sorted(run.node_names.get(a.get("node_id"), "?") for a in workers)
    assert all(name.startswith("train-") for name in where), where
    assert len(set(where)) == 2, f"SPREAD put both workers on {where}"
    # Both ranks reported every epoch, in order.
    assert reported_epochs(run.reports) == list(range(EPOCHS))
    assert all(len(r["rank_metrics"]) == 2 for r in run.reports if "rank_metrics" in r)


def test_checkpoints_through_flaky_s3_are_complete(run: Run, env: Env, aws_env) -> None:
    from training.checkpoints import load_state

    assert int(run.faults["faults"]) > 0, run.faults
    print(f"flaky checkpoint storage: {run.faults}")
    keys = [
        o["Key"]
        for o in s3_client(env.s3_endpoint)
        .list_objects_v2(Bucket=S3_BUCKET, Prefix="checkpoints/placement/")
        .get("Contents", [])
    ]
    states = [k for k in keys if k.endswith("/state.pt")]
    assert len(states) == EPOCHS, keys
    # Each reported checkpoint is exactly one complete, loadable state of its epoch.
    reported = [r["checkpoint"] for r in run.reports if r.get("checkpoint")]
    assert len(reported) == EPOCHS == len(set(reported))
    for epoch, path in enumerate(reported):
        state = load_state("s3://" + path.lstrip("/"))
        assert state.epoch == epoch
        assert state.model and all(v.isfinite().all() for v in state.model.values())
