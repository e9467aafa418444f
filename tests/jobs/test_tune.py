"""The sweep for real: ``python -m jobs.tune --smoke-test`` against a real ``mlflow server``.

Four tiny trials (covering the three fusions and two alphas) run on SynthMotion through Ray Tune, each a Ray
Train run; the parent run, the nested children, their params and the summary artifacts are read
back with ``MlflowClient``; then the exported best config trains through ``jobs.train
--smoke-test``. Both commands are subprocesses, as a user would run them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.jobs.test_console_output import RAY_LOG_LINE

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FUSIONS = {"time_to_channel", "time_strided_sampling", "time_strided_conv"}


@pytest.fixture(scope="module")
def dataset(smoke_data):
    return smoke_data


def _run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def test_smoke_sweep_logs_parent_children_table_and_a_trainable_best_config(
    dataset, mlflow_server, tmp_path
):
    from mlflow.tracking import MlflowClient

    env = {**os.environ, "PYTHONPATH": str(REPO), **mlflow_server.env}
    env.pop("RAY_ADDRESS", None)
    out_json = tmp_path / "sweep.json"
    t0 = time.time()
    proc = _run(
        [
            "-m",
            "jobs.tune",
            "--smoke-test",
            f"train.data.dataset={dataset}",
            f"train.mlflow.tracking_uri={mlflow_server.tracking_uri}",
            "train.mlflow.experiment=tune-test",
            f"sweep.storage_path={tmp_path / 'tune'}",
            f"sweep.export_path={tmp_path / 'best.yaml'}",
            "--json",
            str(out_json),
        ],
        env,
        timeout=420,
    )
    sweep_s = time.time() - t0
    print(f"sweep took {sweep_s:.0f} s\n{proc.stdout[-2500:]}")
    assert "| configuration | top-1 | top-5 | GFLOPs | params (M) |" in proc.stdout
    # The console: the progress table has a column per swept dimension and a row per trial;
    # nothing of Ray's own logging, a few dozen lines in all.
    lines = (proc.stdout + proc.stderr).splitlines()
    assert len(lines) <= 60, "\n".join(lines)
    assert not [line for line in lines if RAY_LOG_LINE.search(line)], "\n".join(lines)
    header = next(line for line in lines if line.startswith("trial "))
    assert header.split()[:7] == ["trial", "pathways", "fusion", "α", "β", "fast", "input"]
    table_rows = [line for line in lines if re.match(r"t[ts][cs]-a\d-b8-rgb +slowfast ", line)]
    assert len(table_rows) == 4 and all(" finished " in r for r in table_rows), table_rows
    summary = json.loads(out_json.read_text())
    rows = summary["rows"]
    assert len(rows) == 4 and not [r for r in rows if r["error"]]
    assert {r["fusion"] for r in rows} == FUSIONS and {r["alpha"] for r in rows} == {2, 4}
    for r in rows:
        assert 0.0 <= r["top1"] <= r["top5"] <= 1.0
        assert r["gflops"] > 0 and r["params"] > 10_000 and r["epochs"] == 1
    # A larger alpha means more Fast frames, hence more computation, for the same fusion.
    by = {(r["fusion"], r["alpha"]): r for r in rows}
    pairs = [f for f in FUSIONS if (f, 2) in by and (f, 4) in by]
    assert pairs
    for f in pairs:
        assert by[(f, 4)]["gflops"] > by[(f, 2)]["gflops"]

    client = MlflowClient(mlflow_server.tracking_uri)
    exp = client.get_experiment_by_name("tune-test")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["sweep.num_trials"] == "4"
    assert parent.data.metrics["num_trials"] == 4 and parent.data.metrics["num_errors"] == 0
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4
    seen = set()
    for child in children:
        p = child.data.params
        seen.add((p["tune.fusion"], p["tune.alpha"]))
        assert p["model.resolved.fusion"] == p["tune.fusion"]
        assert p["model.resolved.alpha"] == p["tune.alpha"] == p["model.overrides.alpha"]
        assert p["model.resolved.width"] == "16" and float(p["model.gflops"]) > 0
        assert int(p["model.params"]) > 10_000 and p["tune.trial_id"]
        history = client.get_metric_history(child.info.run_id, "val_top1")
        assert [m.step for m in history] == [0]
        assert child.info.status == "FINISHED"
    assert seen == {(r["fusion"], str(r["alpha"])) for r in rows}

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"ablation.md", "ablation.csv", "accuracy_vs_gflops.png", "best.yaml"} <= artifacts
    local = client.download_artifacts(parent.info.run_id, "ablation.csv", str(tmp_path / "dl"))
    lines = Path(local).read_text().splitlines()
    assert lines[0].startswith("configuration,top1,top5,gflops,params") and len(lines) == 5
    png = client.download_artifacts(parent.info.run_id, "accuracy_vs_gflops.png", str(tmp_path))
    assert Path(png).read_bytes()[:4] == b"\x89PNG"

    # The exported best config is a full training config that jobs.train accepts unchanged.
    best_yaml = Path(summary["best_config"])
    assert best_yaml == tmp_path / "best.yaml"
    exported = yaml.safe_load(best_yaml.read_text())
    best = max(rows, key=lambda r: (r["top1"], -r["gflops"]))
    assert exported["model"]["overrides"]["fusion"] == best["fusion"]
    assert exported["model"]["overrides"]["alpha"] == best["alpha"]
    t1 = time.time()
    proc = _run(
        [
            "-m",
            "jobs.train",
            str(best_yaml),
            "--smoke-test",
            f"data.dataset={dataset}",
            f"storage.path={tmp_path / 'retrain'}",
            "mlflow.enabled=false",
            "train.epochs=1",  # that it trains is the point: one epoch, no test protocol
            "eval.after_training=false",
        ],
        env,
        timeout=300,
    )
    print(f"retraining the best config took {time.time() - t1:.0f} s")
    result = json.loads(proc.stdout[proc.stdout.index("{\n") :])
    assert 0.0 <= result["val_top1"] <= 1.0 and Path(result["checkpoint"]).exists()
