"""A seeded sweep that survives a failed trial and an interruption, for real.

``python -m jobs.tune --smoke-test`` runs TtoC and T-conv (alpha 2, beta 1/8) with seeds 0 and
1 (four two-epoch trials, seed-major, one at a time) against the real ``mlflow server``. The test
SIGKILLs the first trial's (TtoC, seed 0) Ray Train worker once its first epoch is in MLflow (its
Train run allows no restart, so the trial errors), lets the second trial finish, then interrupts
the sweep with SIGINT (Ctrl-C) while the third runs. Running the same command again resumes it:
the two trials that never ended run, the finished one is not rerun, the failed one stays
reported with its error.

The aggregated table must then hold, from the trials' own results: T-conv with n = 2, their mean
and the t interval of the two; TtoC with n = 1 (seed 0 missing, not a zero) and no interval; the
paired difference TtoC - T-conv over seed 1 only (matched by seed).

It is also the test of the sweep itself (one sweep in the suite, as each costs minutes on two
cores): the resumed sweep's console (the progress and result tables, no Ray log line, a few
dozen lines), the parent and child MLflow runs with their params and the summary artifacts read
back with ``MlflowClient``, and the exported best configuration, read and planned as
``jobs.train`` does.
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
from jobs import train as train_cmd
from tests.jobs.test_console_output import RAY_LOG_LINE
from training.plan import plan_training
from training.tune.report import best_row
from training.tune.stats import t_quantile

pytestmark = pytest.mark.slow

#: Ray titles its Train worker actors so; found in /proc, since these Rays run without the
#: dashboard that the state API needs.
TRAIN_WORKER = "ray::RayTrainWorker"

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = "tune-faults-test"
TTC, TSC = "ttc-a2-b8-rgb", "tsc-a2-b8-rgb"


@pytest.fixture(scope="module")
def dataset(smoke_data):
    return smoke_data


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
        "sweep.name=faults",
        "sweep.resume=true",
        f"sweep.storage_path={tmp_path / 'tune'}",
        f"sweep.export_path={tmp_path / 'best.yaml'}",
        "--json",
        str(tmp_path / "sweep.json"),
    ]


def _runs(client) -> list:
    exp = client.get_experiment_by_name(EXPERIMENT)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=100)


def _children(client, status: str) -> list:
    return [
        r for r in _runs(client) if "mlflow.parentRunId" in r.data.tags and r.info.status == status
    ]


def _mid_training(client) -> bool:
    """A trial's first epoch is in MLflow: its worker is training, past start-up."""
    return any("val_top1" in r.data.metrics for r in _children(client, "RUNNING"))


def _kill_then_interrupt(argv, env, client, log: Path) -> tuple[int, int | None, float | None]:
    """Run the sweep; SIGKILL the first trial's Train worker (a descendant of this sweep's own
    process, never another Ray on the machine) once its first epoch is in MLflow, then SIGINT
    the sweep once a trial has finished."""
    killed = interrupted = None
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + 600
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
    return proc.returncode, killed, interrupted


def test_failed_trial_is_missing_and_an_interrupted_seeded_sweep_resumes(
    dataset, mlflow_server, tmp_path
):
    from mlflow.tracking import MlflowClient

    env = {**os.environ, "PYTHONPATH": str(REPO), **mlflow_server.env}
    env.pop("RAY_ADDRESS", None)
    argv = _argv(dataset, tmp_path, mlflow_server.tracking_uri)
    client = MlflowClient(mlflow_server.tracking_uri)
    log1 = tmp_path / "first.log"
    code, killed, interrupted = _kill_then_interrupt(argv, env, client, log1)
    first = log1.read_text()
    assert killed is not None and interrupted is not None, first[-4000:]
    assert code == 1, first[-4000:]  # interrupted: not a finished sweep
    assert "interrupted with 2 trial(s) not run" in first, first[-4000:]
    rows = {r["key"]: r for r in json.loads((tmp_path / "sweep.json").read_text())["rows"]}
    assert {k: r["status"] for k, r in rows.items()} == {
        f"{TTC}-s0": "error",
        f"{TSC}-s0": "finished",
        f"{TTC}-s1": "not run",
        f"{TSC}-s1": "not run",
    }
    parents = [r for r in _runs(client) if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].data.tags.get("sweep.status") == "interrupted"

    # The same command again: resumes, runs only the trials that never ended.
    second = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = second.stdout
    assert second.returncode == 0, out[-3000:] + second.stderr[-3000:]
    assert "resuming the sweep" in out
    summary = json.loads((tmp_path / "sweep.json").read_text())
    rows2 = {r["key"]: r for r in summary["rows"]}
    assert list(rows2) == [f"{TTC}-s0", f"{TSC}-s0", f"{TTC}-s1", f"{TSC}-s1"]  # seed-major
    assert rows2[f"{TTC}-s0"]["status"] == "error" and rows2[f"{TTC}-s0"]["error"]
    # killed in its second epoch: its row keeps what Tune had received before the kill (the
    # first epoch, or nothing when the kill overtook the report); aggregated it is missing
    assert rows2[f"{TTC}-s0"]["epochs"] <= 1
    assert all(rows2[k]["status"] == "finished" for k in rows2 if k != f"{TTC}-s0")
    assert "| error: " in out  # the table reports the failed trial with its error
    assert rows2[f"{TSC}-s0"]["top1"] == rows[f"{TSC}-s0"]["top1"]  # not rerun

    _check_aggregation(summary, rows2, out)
    _check_console(out + second.stderr)
    _check_mlflow(client, tmp_path)
    _check_exported_best(summary, tmp_path, dataset)


def _check_aggregation(summary: dict, rows: dict, out: str) -> None:
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


def _check_console(console: str) -> None:
    """What a person sees of the resumed sweep: the progress table (a column per swept
    dimension, a row per trial), the result table, nothing of Ray's own logging, a few dozen
    lines in all."""
    lines = console.splitlines()
    assert len(lines) <= 60, console
    assert not [line for line in lines if RAY_LOG_LINE.search(line)], console
    header = next(line for line in lines if line.startswith("trial "))
    assert header.split()[:7] == ["trial", "pathways", "fusion", "α", "β", "fast", "input"]
    assert "| configuration | seed | top-1 | top-5 | GFLOPs | params (M) |" in console
    assert "| configuration | n | top-1 (± 95 % CI) |" in console  # the seeds' table


def _check_mlflow(client, tmp_path: Path) -> None:
    runs = _runs(client)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1  # the resumed sweep continued its parent run
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    metrics = parent.data.metrics
    assert metrics["num_trials"] == 4 and metrics["num_errors"] == 1
    assert metrics[f"seeds.{TSC}.n"] == 2 and metrics[f"seeds.{TTC}.n"] == 1
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"ablation_seeds.md", "ablation_seeds.csv", "accuracy_vs_gflops_seeds.png"} <= artifacts
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    seeds = sorted((r.data.params["tune.config_key"], r.data.params["tune.seed"]) for r in children)
    assert seeds == [(TSC, "0"), (TSC, "1"), (TTC, "0"), (TTC, "1")]
    assert {r.data.params["train.seed"] for r in children} == {"0", "1"}
    # the trial finished before the interruption has one run with two epochs: it was not rerun
    done = [r for r in children if r.data.tags["raysf.run_key"] == f"faults.{TSC}-s0"]
    assert len(done) == 1
    history = client.get_metric_history(done[0].info.run_id, "val_top1")
    assert [m.step for m in history] == [0, 1]
    for child in children:  # each trial's run names the network it trained
        p = child.data.params
        assert p["model.resolved.fusion"] == p["tune.fusion"] and p["tune.trial_id"]
        assert p["model.resolved.alpha"] == p["tune.alpha"] == p["model.overrides.alpha"] == "2"
        assert p["model.resolved.width"] == "16" and float(p["model.gflops"]) > 0
        assert int(p["model.params"]) > 10_000
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"ablation.md", "ablation.csv", "accuracy_vs_gflops.png", "best.yaml"} <= artifacts
    csv = client.download_artifacts(parent.info.run_id, "ablation.csv", str(tmp_path / "dl"))
    lines = Path(csv).read_text().splitlines()
    assert lines[0].startswith("configuration,top1,top5,gflops,params") and len(lines) == 5
    png = client.download_artifacts(parent.info.run_id, "accuracy_vs_gflops.png", str(tmp_path))
    assert Path(png).read_bytes()[:4] == b"\x89PNG"


def _check_exported_best(summary: dict, tmp_path: Path, dataset: str) -> None:
    """The best configuration (by mean over seeds) exported as a training config that
    ``python -m jobs.train best.yaml`` reads, validates and plans against the dataset before Ray
    starts; that part runs here in-process (training a valid config is every other Train test's
    job, and a Train run would cost this test a minute)."""
    best_yaml = Path(summary["best_config"])
    assert best_yaml == tmp_path / "best.yaml"
    best = best_row(summary["aggregated"], "top1_mean")  # the sweep's own choice
    job = train_cmd.load_job(train_cmd.parse_args([str(best_yaml)]))
    assert job.data.dataset == dataset
    plan = plan_training(job)
    assert plan.model.fusion == {TTC: "time_to_channel", TSC: "time_strided_conv"}[best["key"]]
    assert plan.model.alpha == 2 and plan.summary.gflops > 0
