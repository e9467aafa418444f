"""Credentials in an MLflow URI: split off before MLflow sees the URI, redacted wherever the URI is
printed or stored (errors, run parameters, checkpoints' job config, configs), and an S3
filesystem that refuses to carry keys. No server needed: the real-server checks are in
``tests/cluster/test_cluster_no_secrets.py``."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from infra.local.procs import free_port
from raysf.clip_spec import ClipSpec
from raysf.config import dump_yaml, to_dict
from raysf.storage import RetryingS3FileSystem, s3_filesystem
from training import tracking
from training.config import load_train_config, recorded_job
from training.plan import plan_training

TRAIN_YAML = Path(__file__).resolve().parents[2] / "jobs" / "train.yaml"
SECRET = "Sentinel-pw-4f1c"
URI = f"http://alice:{SECRET}@mlflow.example:5000"


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        (URI, "http://alice:***@mlflow.example:5000"),
        ("https://bob:p%40ss@h/path?x=1", "https://bob:***@h/path?x=1"),
        ("http://token-only@h:5000", "http://token-only@h:5000"),  # no password to hide
        ("postgresql://h/db?user=u&password=s3cret", "postgresql://h/db?user=u&password=***"),
        ("http://h:5000", "http://h:5000"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("/local/store", "/local/store"),
        (None, None),
    ],
)
def test_redact_uri(uri, shown):
    assert tracking.redact_uri(uri) == shown
    assert tracking.redact_uri(shown) == shown  # idempotent


def test_split_credentials_and_the_redacted_form_counts_as_none():
    assert tracking.split_credentials(URI) == ("http://mlflow.example:5000", ("alice", SECRET))
    assert tracking.split_credentials("https://bob:p%40ss@h/x") == ("https://h/x", ("bob", "p@ss"))
    # what a stored config holds: the process's own MLFLOW_TRACKING_* variables apply
    assert tracking.split_credentials("http://alice:***@h:1") == ("http://h:1", None)
    assert tracking.split_credentials("http://h:1") == ("http://h:1", None)


def test_mlflow_uri_moves_credentials_into_this_process_env(monkeypatch):
    monkeypatch.delenv(tracking.USERNAME_VAR, raising=False)
    monkeypatch.delenv(tracking.PASSWORD_VAR, raising=False)
    assert tracking.mlflow_uri("http://h:1") == "http://h:1"
    assert tracking.PASSWORD_VAR not in os.environ
    assert tracking.mlflow_uri(URI) == "http://mlflow.example:5000"
    assert (os.environ[tracking.USERNAME_VAR], os.environ[tracking.PASSWORD_VAR]) == (
        "alice",
        SECRET,
    )


def test_resolve_tracking_uri_reads_mlflow_tracking_uri(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    assert tracking.resolve_tracking_uri(None) == "http://from-env:5000"
    assert tracking.resolve_tracking_uri("http://given:1") == "http://given:1"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    assert tracking.resolve_tracking_uri(None).startswith(f"sqlite:///{tmp_path}")


def test_unreachable_server_error_names_the_uri_without_its_password():
    uri = f"http://alice:{SECRET}@127.0.0.1:{free_port()}"
    with pytest.raises(tracking.TrackingUnavailableError) as err:
        tracking.check_reachable(uri, timeout=2)
    assert SECRET not in str(err.value)
    assert "http://alice:***@127.0.0.1:" in str(err.value)


def test_run_target_repr_hides_the_password():
    run = tracking.RunTarget(URI, "run-1")
    assert SECRET not in repr(run) and run.display_uri == "http://alice:***@mlflow.example:5000"
    assert pickle.loads(pickle.dumps(run)).tracking_uri == URI  # rank 0 still logs with it


@pytest.fixture
def dataset(tmp_path) -> str:
    doc = {
        "schema_version": 2,
        "classes": [{"label_id": i, "name": n} for i, n in enumerate(["a", "b", "c"])],
        "per_split": {"train": {"clips": 20}, "val": {"clips": 4}},
        "clip_spec": ClipSpec(slow_frames=8, tau=8, alpha=4).to_dict(),
    }
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    return str(tmp_path)


def test_recorded_job_params_and_repr_never_hold_the_password(dataset):
    job = load_train_config(
        TRAIN_YAML,
        [f"data.dataset={dataset}", "model.preset=slowfast_tiny", f"mlflow.tracking_uri={URI}"],
    )
    assert job.mlflow.tracking_uri == URI  # the driver keeps it to log in
    shown = "http://alice:***@mlflow.example:5000"
    assert recorded_job(job).mlflow.tracking_uri == shown
    assert SECRET not in json.dumps(to_dict(recorded_job(job)))  # checkpoints' job_config
    assert SECRET not in dump_yaml(recorded_job(job))  # resolved_config.yaml, best_train.yaml
    assert SECRET not in repr(job) and shown in repr(job.mlflow)
    params = plan_training(job).mlflow_params()
    assert params["mlflow.tracking_uri"] == shown
    assert not any(SECRET in str(v) for v in params.values())
    plain = load_train_config(TRAIN_YAML, ["mlflow.tracking_uri=http://h:1"])
    assert recorded_job(plain) is plain


def test_s3_filesystem_refuses_credentials_and_pickles_none(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    with pytest.raises(ValueError, match="takes no credentials \\(access_key, secret_key\\)"):
        RetryingS3FileSystem(max_attempts=2, access_key="AKIA", secret_key=SECRET)
    fs = s3_filesystem("http://127.0.0.1:9", max_attempts=2)
    assert SECRET.encode() not in pickle.dumps(fs)
    func, args = fs.__reduce__()
    assert set(args[1]) & {"access_key", "secret_key", "session_token"} == set()
