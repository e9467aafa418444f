"""A seeded sweep for real: 2 configurations x 2 seeds, one trial failed on purpose.

``python -m jobs.tune --smoke-test`` runs TtoC and T-conv (alpha 2, beta 1/8) with seeds 0 and
1, one trial at a time, against the real ``mlflow server``. The test SIGKILLs the first trial's
(TtoC, seed 0) Ray Train worker once its first epoch is in MLflow (no Train restarts, so the
trial errors). The aggregated table must then hold, from the trials' own results: T-conv with
n = 2, their mean and the t interval of the two; TtoC with n = 1 (seed 0 missing, not a zero)
and no interval; the paired difference TtoC - T-conv over seed 1 only (matched by seed).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.local.procs import find_pids
from training.smoke import smoke_dataset
from training.tune.stats import t_quantile

pytestmark = pytest.mark.slow

TRAIN_WORKER = "ray::RayTrainWorker"
REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = "tune-seeds-test"
TTC, TSC = "ttc-a2-b8-rgb", "tsc-a2-b8-rgb"


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
        "train.data.reproducible=true",
        "space.alpha=[2]",
        "space.fusion=[time_to_channel, time_strided_conv]",
        "space.seeds=[0, 1]",
        "search.mode=grid",
        "search.max_concurrent=1",
        "search.asha.enabled=false",
        f"report.baseline={TSC}",
        "sweep.name=seeds",
        f"sweep.storage_path={tmp_path / 'tune'}",
        "--json",
        str(tmp_path / "sweep.json"),
    ]


def _first_epoch_logged(client) -> bool:
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return False
    runs = client.search_runs([exp.experiment_id], max_results=100)
    return any(
        "mlflow.parentRunId" in r.data.tags and "val_top1" in r.data.metrics
        for r in runs
        if r.info.status == "RUNNING"
    )


def _run_killing_the_first_trial(argv, env, client, log: Path) -> tuple[int, int | None]:
    """Run the sweep; SIGKILL the first trial's Train worker (a descendant of this sweep's
    own process, never another Ray on the machine) once its first epoch is in MLflow."""
    killed = None
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 900
            while proc.poll() is None and time.time() < deadline:
                if killed is None and _first_epoch_logged(client):
                    pids = sorted(find_pids(TRAIN_WORKER, under=proc.pid))
                    if pids:
                        killed = pids[0]
                        os.kill(killed, signal.SIGKILL)
                time.sleep(0.5)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    return proc.returncode, killed


def test_seeded_sweep_aggregates_finished_seeds_and_pairs_them(dataset, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    env = {**os.environ, "PYTHONPATH": str(REPO), **mlflow_server.env}
    env.pop("RAY_ADDRESS", None)
    client = MlflowClient(mlflow_server.tracking_uri)
    log = tmp_path / "sweep.log"
    code, killed = _run_killing_the_first_trial(
        _argv(dataset, tmp_path, mlflow_server.tracking_uri), env, client, log
    )
    out = log.read_text()
    assert killed is not None and code == 0, out[-4000:]
    summary = json.loads((tmp_path / "sweep.json").read_text())
    rows = {r["key"]: r for r in summary["rows"]}
    assert [r["key"] for r in summary["rows"]] == [
        f"{TTC}-s0",
        f"{TSC}-s0",
        f"{TTC}-s1",
        f"{TSC}-s1",
    ]  # seed-major
    assert rows[f"{TTC}-s0"]["status"] == "error" and rows[f"{TTC}-s0"]["top1"] is None
    assert all(rows[k]["status"] == "finished" for k in rows if k != f"{TTC}-s0")
    agg = {r["key"]: r for r in summary["aggregated"]}

    # T-conv: both seeds, mean and t interval computed from the trials' results
    t0, t1 = rows[f"{TSC}-s0"]["top1"], rows[f"{TSC}-s1"]["top1"]
    tsc = agg[TSC]
    assert tsc["n"] == 2 and tsc["seeds"] == [0, 1] and tsc["missing"] == []
    assert tsc["top1_mean"] == pytest.approx((t0 + t1) / 2)
    std = abs(t0 - t1) / math.sqrt(2)
    assert tsc["top1_std"] == pytest.approx(std, abs=1e-12)
    assert tsc["top1_ci"] == pytest.approx(t_quantile(0.95, 1) * std / math.sqrt(2), abs=1e-12)
    assert tsc["is_baseline"] and "diff_n" not in tsc

    # TtoC: the failed seed is missing, not a zero; one seed has no interval
    ttc = agg[TTC]
    s1 = rows[f"{TTC}-s1"]["top1"]
    assert ttc["n"] == 1 and ttc["seeds"] == [1] and ttc["missing"] == [0]
    assert ttc["top1_mean"] == pytest.approx(s1) and ttc["top1_ci"] is None
    # paired by seed: only seed 1 ran for both
    assert ttc["diff_n"] == 1 and ttc["diff_seeds"] == [1]
    assert ttc["diff_top1_mean"] == pytest.approx(s1 - t1)
    assert "| SlowFast α=2 β=1/8 TtoC | 1 |" in out and "(n=1, no interval)" in out

    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "FINISHED"
    metrics = parent.data.metrics
    assert metrics["num_trials"] == 4 and metrics["num_errors"] == 1
    assert metrics[f"seeds.{TSC}.n"] == 2 and metrics[f"seeds.{TTC}.n"] == 1
    assert metrics[f"seeds.{TSC}.top1_mean"] == pytest.approx(tsc["top1_mean"])
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"ablation_seeds.md", "ablation_seeds.csv", "accuracy_vs_gflops_seeds.png"} <= artifacts
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    seeds = sorted((r.data.params["tune.config_key"], r.data.params["tune.seed"]) for r in children)
    assert seeds == [(TSC, "0"), (TSC, "1"), (TTC, "0"), (TTC, "1")]
    assert {r.data.params["train.seed"] for r in children} == {"0", "1"}
