"""No secret leaks: a real ingest and a real training smoke test with sentinel secrets, then every
place Ray, MLflow and the jobs write is searched for them.

The set-up is the one the threat model (docs/cluster.md) describes:

- a local Ray cluster with token auth and the dashboard (``ray start`` head node), whose nodes
  get S3 keys from a credentials file (mode 0600, ``AWS_SHARED_CREDENTIALS_FILE``; its secret
  is the sentinel ``node``);
- the drivers (``python -m jobs.ingest``, ``python -m jobs.train``) run as child processes of
  the test, as a submitter's would, connected to that cluster, with the sentinel ``aws`` in
  ``AWS_SECRET_ACCESS_KEY`` (a submitter whose shell exports keys: before the fix, ingest copied
  every ``AWS_*`` variable into its tasks' ``runtime_env``, which Ray prints in its logs and
  serves in its state API);
- an MLflow server behind MLflow's basic-auth app whose password is the sentinel ``mlflow``,
  given to the training job inside ``mlflow.tracking_uri`` (``http://admin:<sentinel>@...``).

Searched afterwards: every file under the cluster's Ray temp dir (session logs, runtime envs,
spilled objects), the state API's task, actor, job, node and placement-group records, the MLflow
runs' params, tags and artifacts, every S3 object the jobs wrote (manifest, plan, shards,
checkpoints, MLflow artifacts), the jobs' printed output and their console log folders.
Positive controls show that each secret was really used (rank 0 logged its metrics through the
password) and that the search finds a planted sentinel.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.local.credentials import write_aws_credentials
from infra.local.e2e import INGEST_SAMPLING, list_keys, upload_tree
from infra.local.mlflow_server import start_mlflow_server
from infra.local.procs import http_get
from infra.local.s3 import s3_client
from tests.cluster.cluster_helpers import S3_BUCKET, SYNTH

pytestmark = pytest.mark.slow

SENTINELS = {name: f"{name}-sentinel-{secrets.token_hex(8)}" for name in ("aws", "node", "mlflow")}
REPO = Path(__file__).resolve().parents[2]
PREFIX = "no-secrets"
RAW = f"s3://{S3_BUCKET}/{PREFIX}/raw"
DATASET = f"s3://{S3_BUCKET}/{PREFIX}/dataset"
CHECKPOINTS = f"s3://{S3_BUCKET}/{PREFIX}/checkpoints"
EXPERIMENT = "no-secrets"
STATE_RESOURCES = ("tasks", "actors", "jobs", "nodes", "placement_groups")


@pytest.fixture(scope="module")
def mlflow_auth(s3_server, tmp_path_factory):
    server = start_mlflow_server(
        tmp_path_factory.mktemp("mlflow-auth"),
        f"s3://{S3_BUCKET}/{PREFIX}/mlflow",
        s3_server.env,
        auth=True,
        admin_password=SENTINELS["mlflow"],
        timeout=600,  # a loaded 2-core machine: the auth app's start alone took minutes
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster(ray_cluster_factory, s3_server, tmp_path_factory):
    """One head node (3 CPUs: every raylet of this one-machine cluster shares its session dir,
    and each extra node is one more chance to miss Ray's 30 s start window on a loaded host);
    S3 keys from a 0600 file holding the ``node`` sentinel."""
    creds = write_aws_credentials(
        tmp_path_factory.mktemp("node-creds") / "credentials", "AKIDNODE", SENTINELS["node"]
    )
    env = {**s3_server.env, "AWS_SHARED_CREDENTIALS_FILE": str(creds)}
    return ray_cluster_factory(head_num_cpus=3, env=env)


@pytest.fixture
def driver_env(cluster, s3_server, monkeypatch):
    """This process as a submitter: cluster address and token, the ``aws`` sentinel in its env."""
    for key, value in {**s3_server.env, **cluster.env}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDDRIVER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SENTINELS["aws"])
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(key, "")  # recorded, so that the login the driver sets is undone
        monkeypatch.delenv(key)


def test_no_secret_in_logs_state_api_mlflow_manifests_or_checkpoints(
    cluster, mlflow_auth, s3_server, driver_env, tmp_path
):
    from pipelines.synth.generate import generate

    generate(tmp_path / "synth", **SYNTH)
    assert upload_tree(s3_server.endpoint, tmp_path / "synth", S3_BUCKET, f"{PREFIX}/raw") > 0
    ingest = ["--videos", RAW, "--format", "kinetics", "--out", DATASET, *INGEST_SAMPLING]
    logs = tmp_path / "logs"
    argv = [*ingest, f"resources.address={cluster.gcs_address}"]
    printed = _submitter("jobs.ingest", argv, logs / "ingest")
    # The login-bearing URI goes in the job's YAML, not on the command line: Ray records a
    # driver's command line as its job's entrypoint (state API, job API), as docs/cluster.md says.
    config = yaml.safe_load((REPO / "jobs" / "train.yaml").read_text())
    config["mlflow"]["tracking_uri"] = mlflow_auth.uri_with_credentials
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    train = [
        "--smoke-test",
        "--address",
        cluster.gcs_address,
        str(tmp_path / "train.yaml"),
        f"data.dataset={DATASET}",
        f"storage.path={CHECKPOINTS}",
        f"mlflow.experiment={EXPERIMENT}",
        "eval.after_training=false",
        "data.shuffle_buffer=0",
    ]
    printed += _submitter("jobs.train", train, logs / "train")

    run = _the_run(mlflow_auth)
    # positive controls: the password reached rank 0 (it logged per-epoch metrics through it)
    # and the recorded URI is the redacted one
    assert run.data.metrics.get("train_loss") is not None and "val_top1" in run.data.metrics
    assert run.data.params["mlflow.tracking_uri"] == f"http://admin:***@{_host(mlflow_auth)}"
    places = {
        "printed output": printed.encode(),
        **_session_files(cluster.temp_dir),
        **{f"driver log {p.relative_to(logs)}": p.read_bytes() for p in _files(logs)},
        **_state_records(cluster),
        **_mlflow_records(run, mlflow_auth),
        **_s3_objects(s3_server.endpoint),
    }
    assert any(k.startswith("s3://") and k.endswith("manifest.json") for k in places)
    assert any(k.startswith("s3://") and k.endswith("state.pt") for k in places)
    assert any(k.startswith("state API tasks") for k in places)
    assert sum(k.startswith("ray temp dir") for k in places) > 20
    assert any(k.startswith("driver log") and k.endswith("driver.log") for k in places)
    assert _leaks(places, SENTINELS) == []


def test_the_search_finds_a_planted_sentinel():
    planted = {"a.log": b"x" * 100 + b"aws-sentinel-1234" + b"y", "b.log": b"clean"}
    assert _leaks(planted, {"aws": "aws-sentinel-1234"}) == ["aws sentinel in a.log"]


# --------------------------------------------------------------------------- helpers


def _submitter(module: str, argv: list[str], log_dir: Path) -> str:
    """``python -m <module> <argv>`` as a submitter would run it: its own process (Ray reads its
    auth mode once per process, so an earlier in-process Ray of the test session must not decide
    it), this process's environment (the ``aws`` sentinel included), the console's log files in
    ``log_dir``; returns what it printed."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *argv, "--log-dir", str(log_dir)],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, f"{module} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def _leaks(places: dict[str, bytes], sentinels: dict[str, str]) -> list[str]:
    return [
        f"{name} sentinel in {where}"
        for where, data in places.items()
        for name, value in sentinels.items()
        if value.encode() in data
    ]


def _host(server) -> str:
    return server.tracking_uri.split("://", 1)[1]


def _session_files(temp_dir: Path) -> dict[str, bytes]:
    """Every file under the cluster's Ray temp dir (sessions, logs, runtime envs, sockets
    skipped)."""
    found = {}
    for path in Path(temp_dir).rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                found[f"ray temp dir {path.relative_to(temp_dir)}"] = path.read_bytes()
            except OSError:
                continue
    return found


def _state_records(cluster) -> dict[str, bytes]:
    records = {}
    for resource in STATE_RESOURCES:
        url = f"{cluster.dashboard_url}/api/v0/{resource}?limit=10000&detail=true"
        status, body = http_get(url, headers=cluster.auth_headers, timeout=60)
        assert status == 200, f"state API {resource}: HTTP {status} {body[:300]!r}"
        records[f"state API {resource}"] = body
    status, body = http_get(
        f"{cluster.dashboard_url}/api/jobs/", headers=cluster.auth_headers, timeout=60
    )
    assert status == 200
    records["jobs API"] = body
    return records


def _client(server):
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"] = str(server.username)
    os.environ["MLFLOW_TRACKING_PASSWORD"] = str(server.password)
    return MlflowClient(server.tracking_uri)


def _the_run(server):
    client = _client(server)
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None, f"no MLflow experiment {EXPERIMENT!r}"
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def _mlflow_records(run, server) -> dict[str, bytes]:
    client = _client(server)
    records: dict[str, Any] = {
        "MLflow params": json.dumps(run.data.params),
        "MLflow tags": json.dumps(run.data.tags),
        "MLflow run info": json.dumps(dict(run.info)),
    }
    for item in client.list_artifacts(run.info.run_id):
        if not item.is_dir:
            path = client.download_artifacts(run.info.run_id, item.path)
            records[f"MLflow artifact {item.path}"] = Path(path).read_bytes()
    assert "MLflow artifact resolved_config.yaml" in records
    return {k: v if isinstance(v, bytes) else v.encode() for k, v in records.items()}


def _s3_objects(endpoint: str) -> dict[str, bytes]:
    client = s3_client(endpoint)
    return {
        f"s3://{S3_BUCKET}/{key}": client.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read()
        for key in list_keys(endpoint, S3_BUCKET, f"{PREFIX}/")
        if not key.startswith(f"{PREFIX}/raw/")
    }
