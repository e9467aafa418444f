"""Runs under faults (real Ray, real files, a real MLflow store): a damaged record, a changed
config on resume, a NaN loss, pretrained weights that do not fit, workers that cannot be placed,
and the entry points' one-line errors."""

from __future__ import annotations

import glob
import io
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import slowfast_model
from jobs import train as train_job
from raysf.config import ConfigError, dump_yaml, with_overrides
from training.checkpoints import load_state
from training.config import load_train_config
from training.plan import ResumeRefused
from training.recipes.smoke import smoke_train_job
from training.run.placement import PlacementError
from training.run.trainer import DecodeErrorLimit, run_training

TRAIN_YAML = Path(__file__).resolve().parents[3] / "jobs" / "train.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(smoke_data) -> str:
    return smoke_data


@pytest.fixture(scope="module")
def damaged(dataset, tmp_path_factory) -> str:
    """A copy of the dataset whose first train record's content is garbage (bit rot after
    ingest): it fails to decode in every epoch that draws it."""
    import shutil

    root = tmp_path_factory.mktemp("damaged") / "dataset"
    shutil.copytree(dataset, root)
    for path in sorted(glob.glob(str(root / "clips" / "*.parquet"))):
        table = pq.read_table(path)
        splits = table.column("split").to_pylist()
        if "train" in splits:
            i = splits.index("train")
            content = table.column("content").to_pylist()
            content[i] = np.random.default_rng(0).bytes(len(content[i]))
            col = table.schema.get_field_index("content")
            table = table.set_column(col, table.schema.field(col), pa.array(content, pa.binary()))
            pq.write_table(table, path)
            return str(root)
    raise AssertionError("no train record")


def _job(dataset: str, tmp_path: Path, *extra: str):
    job = smoke_train_job(load_train_config(TRAIN_YAML), dataset)
    base = [
        f"storage.path={tmp_path / 'results'}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        "eval.after_training=false",
        "mlflow.log_model=false",
    ]
    return with_overrides(job, [*base, *extra])


def _runs(tmp_path: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps) if exps else []


def _reports(path: Path) -> list[dict]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


# ---------------------------------------------------------------------------- before Ray


def test_pretrained_with_another_class_count_fails_before_ray(dataset, tmp_path):
    """Issue case 8: it failed after Ray started (30 s), leaving the MLflow run RUNNING."""
    import ray

    ray.shutdown()
    external = tmp_path / "k400.pyth"
    model = slowfast_model.create_model("slowfast_tiny", alpha=2, num_classes=5)
    state = slowfast_model.export_state_dict(model.state_dict(), "pyslowfast")
    torch.save({"model_state": state}, external)
    job = _job(
        dataset,
        tmp_path,
        f"model.pretrained={{path: {external}, source: pyslowfast, skip_head: false}}",
    )
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"model.pretrained: .*k400.pyth: .*head") as info:
        run_training(job)
    assert time.monotonic() - started < 5
    assert "3 classes: skip_head: true fine-tunes" in str(info.value)
    assert not ray.is_initialized()
    assert _runs(tmp_path) == []  # no MLflow run was opened


def test_entry_points_print_one_line_errors(tmp_path, capfd):
    """Issue case 8: missing datasets and unreachable endpoints arrived as tracebacks. The
    error line goes to the terminal's stderr (file descriptor 2) while the console sends the
    libraries' stderr to the log folder."""
    logs = ["--log-dir", str(tmp_path / "logs")]
    missing = [str(TRAIN_YAML), f"data.dataset={tmp_path / 'nope'}", "mlflow.enabled=false"]
    assert train_job.main([*missing, *logs]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "nope has no manifest.json" in err
    assert "Traceback" not in err
    assert train_job.main([*missing, *logs, "--verbose"]) == 2
    assert "Traceback" in capfd.readouterr().err
    unreachable = [str(TRAIN_YAML), "mlflow.tracking_uri=http://127.0.0.1:9", *logs]
    assert train_job.main(unreachable) == 1
    err = capfd.readouterr().err
    assert "MLflow tracking server http://127.0.0.1:9 is unreachable" in err
    assert err.count("\n") == 1
    from jobs import ingest as ingest_job

    none = ["--videos", str(tmp_path / "none"), "--out", str(tmp_path / "o"), *logs]
    assert ingest_job.main(none) == 2
    err = capfd.readouterr().err
    assert "video root" in err and "does not exist" in err and "Traceback" not in err


# ---------------------------------------------------------------------------- on Ray


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.shutdown()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_corrupt_record_is_dropped_counted_and_the_run_completes(damaged, local_ray, tmp_path):
    """Issue case 3: a record that passed ingest but does not decode killed training."""
    job = _job(
        damaged,
        tmp_path,
        "train.max_steps_per_epoch=null",  # every record is drawn in every epoch
        "data.max_decode_error_fraction=0.2",
    )
    log = tmp_path / "reports.jsonl"
    outcome = run_training(job, metrics_log=str(log))
    reports = [r["rank_metrics"][0] for r in _reports(log) if "rank_metrics" in r]
    assert [(r["epoch"], r["decode_errors"], r["val_decode_errors"]) for r in reports] == [
        (0, 1, 0),
        (1, 1, 0),
    ]
    assert not any("failures" in r for r in _reports(log))  # no worker crashed
    assert load_state(outcome.checkpoint_uri).epoch == 1
    from mlflow.tracking import MlflowClient

    client = MlflowClient(outcome.tracking_uri)
    history = client.get_metric_history(outcome.mlflow_run_id, "decode_errors")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 1.0)]
    assert client.get_run(outcome.mlflow_run_id).info.status == "FINISHED"


def test_too_many_decode_errors_stop_the_run_without_retries(damaged, local_ray, tmp_path):
    job = _job(damaged, tmp_path, "train.max_steps_per_epoch=null", "failure.max_failures=2")
    log = tmp_path / "reports.jsonl"
    with pytest.raises(DecodeErrorLimit, match=r"1 train records failed to decode .*> data.max"):
        run_training(job, metrics_log=str(log))
    epochs = [r["rank_metrics"][0]["epoch"] for r in _reports(log) if "rank_metrics" in r]
    assert epochs == [0]  # stopped after the first epoch, not retried
    assert [r.info.status for r in _runs(tmp_path)] == ["FAILED"]


def test_changed_config_resume_is_refused_naming_the_key(dataset, local_ray, tmp_path, capfd):
    """Issue case 4: a rerun with another learning rate trained 0 epochs and returned the old
    checkpoint; now it is refused (exit code 2) unless resume=force or a new run name."""
    job = _job(dataset, tmp_path, "storage.name=fixed", "resume=true", "train.epochs=1")
    first = run_training(job)
    config = tmp_path / "job.yaml"
    config.write_text(dump_yaml(job))

    changed = [str(config), "optim.base_lr=0.2", "data.clip.crop_size=24"]
    assert train_job.main([*changed, "--log-dir", str(tmp_path / "logs")]) == 2
    err = capfd.readouterr().err  # the terminal's stderr: the console's error line only
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err
    assert "optim.base_lr: 0.1 -> 0.2" in errors[0] and "data.clip.crop_size: 32 -> 24" in errors[0]
    assert "resume=force" in errors[0]
    with pytest.raises(ResumeRefused):
        run_training(with_overrides(job, ["train.seed=7"]))

    # unchanged: resumes (nothing left to train, same checkpoint); eval.* may change
    same = run_training(with_overrides(job, ["eval.batch_size=2"]))
    assert same.checkpoint_uri == first.checkpoint_uri and same.mlflow_run_id == first.mlflow_run_id
    # force: continues the run with the new settings
    forced = run_training(with_overrides(job, ["resume=force", "train.epochs=2", "train.seed=7"]))
    state = load_state(forced.checkpoint_uri)
    assert state.epoch == 1 and state.job_config["train"]["seed"] == 7
    # a new run name: a fresh run
    fresh = run_training(with_overrides(job, ["storage.name=other", "train.seed=7"]))
    assert load_state(fresh.checkpoint_uri).epoch == 0
    statuses = {r.info.run_id: r.info.status for r in _runs(tmp_path)}
    assert statuses[first.mlflow_run_id] == "FINISHED" and len(statuses) == 2


def test_nan_loss_never_reaches_a_checkpoint(dataset, local_ray, tmp_path):
    """Issue case 5: the checkpoint was written before the NaN check."""
    job = _job(dataset, tmp_path, "optim.base_lr=1.0e30", "failure.max_failures=0")
    with pytest.raises(Exception, match="training loss is (nan|inf)"):
        run_training(job)
    states = glob.glob(str(tmp_path / "results" / "**" / "state.pt"), recursive=True)
    assert states == []
    assert [r.info.status for r in _runs(tmp_path)] == ["FAILED"]


def test_unplaceable_worker_group_fails_in_time(dataset, local_ray, tmp_path):
    """Issue case 8: 8 workers on a small cluster waited forever."""
    job = _job(dataset, tmp_path, "scaling.num_workers=8", "train.batch_size=1")
    job = with_overrides(job, ["scaling.placement_timeout_s=2"])
    started = time.monotonic()
    with pytest.raises(PlacementError) as info:
        run_training(job)
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert "8 worker(s) x {'CPU': 1.0}" in message and "'CPU': 4.0" in message
    assert "scaling.placement_timeout_s" in message
    assert [r.info.status for r in _runs(tmp_path)] == ["FAILED"]


def test_unreadable_checkpoint_is_named(tmp_path):
    path = tmp_path / "ckpt" / "state.pt"
    path.parent.mkdir()
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"ckpt/state.pt: not a readable checkpoint"):
        load_state(str(path.parent))
    buffer = io.BytesIO()
    torch.save([1, 2], buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match=r"state.pt: not a raysf checkpoint"):
        load_state(str(path))
