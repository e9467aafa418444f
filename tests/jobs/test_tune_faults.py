"""A sweep survives a failed trial and an interruption, for real.

``python -m jobs.tune --smoke-test`` runs three two-epoch trials one at a time against the real
``mlflow server``. The test SIGKILLs the first trial's Ray Train worker once its first epoch is
in MLflow (its Train run allows no restart, so the trial errors), lets the second trial finish,
then interrupts the sweep with SIGINT (Ctrl-C) while the third runs. Running the same command
again resumes the sweep: the third trial runs, the finished one is not rerun, the failed one
stays reported with its error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.local.procs import find_pids
from training.smoke import smoke_dataset

pytestmark = pytest.mark.slow

#: Ray titles its Train worker actors so; found in /proc, since these Rays run without the
#: dashboard that the state API needs.
TRAIN_WORKER = "ray::RayTrainWorker"

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = "tune-faults-test"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return smoke_dataset(tmp_path_factory.mktemp("synth"))


def _argv(dataset: str, tmp_path: Path, tracking_uri: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jobs.tune",
        "--smoke-test",
        f"train.data.dataset={dataset}",
        f"train.mlflow.tracking_uri={tracking_uri}",
        f"train.mlflow.experiment={EXPERIMENT}",
        "train.failure.max_failures=0",
        "train.train.epochs=2",
        "space.alpha=[2]",
        "space.fusion=[time_to_channel, time_strided_sampling, time_strided_conv]",
        "search.mode=grid",
        "search.max_concurrent=1",
        "sweep.name=faults",
        "sweep.resume=true",
        f"sweep.storage_path={tmp_path / 'tune'}",
        "--json",
        str(tmp_path / "sweep.json"),
    ]


def _children(client, status: str) -> list:
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], max_results=100)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags and r.info.status == status]


def _mid_training(client) -> bool:
    """A trial's first epoch is in MLflow: its worker is training, past start-up."""
    return any("val_top1" in r.data.metrics for r in _children(client, "RUNNING"))


def test_failed_trial_is_reported_and_an_interrupted_sweep_resumes(
    dataset, mlflow_server, tmp_path
):
    from mlflow.tracking import MlflowClient

    env = {**os.environ, "PYTHONPATH": str(REPO), **mlflow_server.env}
    env.pop("RAY_ADDRESS", None)
    argv = _argv(dataset, tmp_path, mlflow_server.tracking_uri)
    client = MlflowClient(mlflow_server.tracking_uri)
    log1 = tmp_path / "first.log"

    with open(log1, "w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        killed = interrupted = None
        deadline = time.time() + 480
        try:
            while proc.poll() is None and time.time() < deadline and interrupted is None:
                if killed is None:
                    pids = sorted(find_pids(TRAIN_WORKER, under=proc.pid))
                    if pids and _mid_training(client):  # the first trial's only worker
                        killed = pids[0]
                        os.kill(killed, signal.SIGKILL)
                elif _children(client, "FINISHED"):
                    interrupted = time.time()
                    proc.send_signal(signal.SIGINT)  # Ctrl-C while the third trial runs
                time.sleep(0.5)
            proc.wait(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
    first = log1.read_text()
    assert killed is not None and interrupted is not None, first[-4000:]
    assert proc.returncode == 1, first[-4000:]  # interrupted: not a finished sweep
    assert "interrupted with 1 trial(s) not run" in first, first[-4000:]
    rows = {r["key"]: r for r in json.loads((tmp_path / "sweep.json").read_text())["rows"]}
    statuses = sorted(r["status"] for r in rows.values())
    assert statuses == ["error", "finished", "not run"], rows
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None
    parents = [
        r
        for r in client.search_runs([exp.experiment_id], max_results=100)
        if "mlflow.parentRunId" not in r.data.tags
    ]
    assert len(parents) == 1 and parents[0].data.tags.get("sweep.status") == "interrupted"
    finished_key = next(k for k, r in rows.items() if r["status"] == "finished")

    # The same command again: resumes, runs only the trial that never ran.
    second = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming the sweep" in second.stdout
    rows2 = {r["key"]: r for r in json.loads((tmp_path / "sweep.json").read_text())["rows"]}
    assert set(rows2) == set(rows)
    errored = [r for r in rows2.values() if r["status"] == "error"]
    assert len(errored) == 1 and errored[0]["error"], rows2
    assert "| error: " in second.stdout  # the table reports the failed trial with its error
    assert sorted(r["status"] for r in rows2.values()) == ["error", "finished", "finished"]
    assert rows2[finished_key]["top1"] == rows[finished_key]["top1"]

    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1  # the resumed sweep continued its parent run
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["num_trials"] == 3 and parent.data.metrics["num_errors"] == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    by_key = {}
    for child in children:
        by_key.setdefault(child.data.tags["raysf.run_key"], []).append(child)
    # the trial finished before the interruption has one run with two epochs: it was not rerun
    done = by_key[f"faults.{finished_key}"]
    assert len(done) == 1
    history = client.get_metric_history(done[0].info.run_id, "val_top1")
    assert [m.step for m in history] == [0, 1]
