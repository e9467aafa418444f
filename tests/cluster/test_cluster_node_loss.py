"""A train node dies mid-training; the run resumes from its last checkpoint on another node.

The job's driver and the Train controller live on the head; the single training worker runs
on a ``train_node``. Once the first checkpoint is reported, that node's raylet is SIGKILLed
(:func:`~infra.local.ray_cluster.kill_node`) and a replacement train node is started. With
``failure.max_failures=2`` Ray Train restarts the worker group, the loop resumes from the
checkpoint (on S3), and the metrics log must show every epoch exactly once.
"""

from __future__ import annotations

import time

import pytest

from infra.local.e2e import wait_job
from infra.local.ray_cluster import kill_node, wait_for_node_dead
from tests.cluster.cluster_helpers import (
    JOB_TIMEOUT,
    S3_BUCKET,
    Env,
    read_reports,
    reported_epochs,
    train_argv,
    wait_for,
)

pytestmark = pytest.mark.slow

EPOCHS = 3


def test_killed_train_node_resumes_without_repeating_epochs(
    env: Env, clean_dataset: str, tmp_path
) -> None:
    metrics_log = tmp_path / "reports.jsonl"
    argv = train_argv(
        clean_dataset,
        f"s3://{S3_BUCKET}/checkpoints/node-loss",
        metrics_log,
        "storage.name=node-loss",
        "scaling.num_workers=1",
        "train.batch_size=4",
        f"train.epochs={EPOCHS}",
        "train.max_steps_per_epoch=3",
        "failure.max_failures=2",
    )
    client, submission = env.submit(argv)

    def first_checkpoint() -> bool:
        if client.get_job_status(submission).is_terminal():
            raise AssertionError(f"job ended before the kill:\n{client.get_job_logs(submission)}")
        return any(r.get("checkpoint") for r in read_reports(metrics_log))

    wait_for(first_checkpoint, 300, "no checkpoint reported")
    job_id = env.ray_job_id(client, submission)
    workers = [
        a
        for a in env.state("actors")
        if a.get("job_id") == job_id
        and "RayTrainWorker" in str(a.get("class_name"))
        and a.get("state") == "ALIVE"
    ]
    assert len(workers) == 1, workers
    # the run's decode-error log lives with the driver (the head, under `ray job submit`), so
    # losing a worker node cannot take it along
    logs = [
        a
        for a in env.state("actors")
        if a.get("job_id") == job_id and a.get("class_name") == "DecodeErrorLog"
    ]
    assert [env.node_names()[a["node_id"]] for a in logs] == ["head"], logs
    victim_name = env.node_names()[workers[0]["node_id"]]
    assert victim_name.startswith("train-"), victim_name
    victim = env.cluster.node(victim_name)
    epochs_before = reported_epochs(read_reports(metrics_log))
    killed_at = time.monotonic()
    kill_node(victim)
    wait_for_node_dead(env.cluster, victim, timeout=60)
    trains = sum(n.name.startswith("train-") for n in env.cluster.workers)
    replacement = env.cluster.add_worker(
        f"train-{trains + 1}", num_cpus=1, resources={"train_node": 100}
    )

    status, logs = wait_job(client, submission, JOB_TIMEOUT)
    recovery_s = time.monotonic() - killed_at
    assert status == "SUCCEEDED", f"{status}:\n{logs[-6000:]}"
    records = read_reports(metrics_log)
    assert any("failures" in r for r in records), "the kill was not seen as a worker failure"
    assert "resumed from checkpoint of epoch" in logs
    epochs = reported_epochs(records)
    assert epochs == list(range(EPOCHS)), (
        f"epochs reported {epochs} (before the kill: {epochs_before})"
    )
    after = [
        env.node_names()[a["node_id"]]
        for a in env.state("actors")
        if a.get("job_id") == job_id
        and "RayTrainWorker" in str(a.get("class_name"))
        and a["node_id"] != workers[0]["node_id"]
    ]
    assert after and all(n.startswith("train-") and n != victim_name for n in after), after
    print(
        f"killed {victim_name} after epochs {epochs_before}; resumed on {after} "
        f"(replacement {replacement.name}); {recovery_s:.0f}s from kill to success"
    )
