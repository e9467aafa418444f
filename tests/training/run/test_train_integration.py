"""Ray Train on CPU for real: two-worker gloo DDP, a killed worker, checkpoints, evaluation.

These start an in-process local Ray (4 logical CPUs so that two training workers and the decode
tasks fit on a 2-core machine) and train the tiny preset on a small SynthMotion set.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from infra.local.procs import find_pids
from pipelines.synth.dataset import SMOKE_DATA, ensure_synth_dataset
from raysf.config import with_overrides
from training.checkpoints import load_state
from training.config import load_train_config
from training.plan import plan_training
from training.recipes.smoke import smoke_train_job
from training.run.trainer import run_training

TRAIN_YAML = Path(__file__).resolve().parents[3] / "jobs" / "train.yaml"

pytestmark = pytest.mark.slow

#: Ray titles its Train worker actors so; found in /proc, since these Rays run without the
#: dashboard that the state API needs.
TRAIN_WORKER = "ray::RayTrainWorker"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    # the smoke set with 8 videos per class (more steps per epoch for the two-worker tests)
    return ensure_synth_dataset(root, replace(SMOKE_DATA, videos_per_class=8))


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.shutdown()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _job(dataset: str, tmp_path: Path, *extra: str, tracking_uri: str | None = None):
    tracking_uri = tracking_uri or f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = smoke_train_job(load_train_config(TRAIN_YAML), dataset)
    overrides = [f"storage.path={tmp_path / 'results'}", f"mlflow.tracking_uri={tracking_uri}"]
    return with_overrides(job, [*overrides, *extra])


def _reports(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_two_worker_ddp_keeps_ranks_identical(dataset, local_ray, tmp_path, mlflow_server):
    """Acceptance 1 (ranks identical) and 5 (a real ``mlflow server`` holds the run). The
    training clips travel as 4:2:0 planes converted on each worker (``data.decode.train_view: planes``;
    the other end-to-end runs feed RGB rows), the val and test clips as RGB."""
    job = _job(
        dataset,
        tmp_path,
        "data.decode.train_view=planes",
        "scaling.num_workers=2",
        "scaling.resources_per_worker={CPU: 1}",
        "train.batch_size=2",
        "train.epochs=2",
        "eval.after_training=true",
        "mlflow.experiment=ddp-test",
        "train.log_param_digest=true",
        tracking_uri=mlflow_server.tracking_uri,
    )
    log = tmp_path / "reports.jsonl"
    outcome = run_training(job, metrics_log=str(log))

    reports = [r for r in _reports(log) if "rank_metrics" in r]
    assert [r["rank_metrics"][0]["epoch"] for r in reports] == [0, 1]
    for r in reports:
        ranks = r["rank_metrics"]
        assert len(ranks) == 2 and {m["world_size"] for m in ranks} == {2}
        # DDP's all-reduce keeps parameters (and broadcast buffers) bit-identical across ranks.
        assert ranks[0]["param_digest"] == ranks[1]["param_digest"]
        assert ranks[0]["steps"] >= 1
        # validation is summed over the ranks: the same figures on both
        assert ranks[0]["val_clips"] == ranks[1]["val_clips"] > 0
    # both ranks kept their val shares after epoch 0 (one all-reduced decision) and validated
    # epoch 1 from memory, over as many clips as the decoded pass
    assert [[m["val_from_memory"] for m in r["rank_metrics"]] for r in reports] == [
        [0.0, 0.0],
        [1.0, 1.0],
    ]
    assert reports[0]["rank_metrics"][0]["val_clips"] == reports[1]["rank_metrics"][0]["val_clips"]
    # the weights changed between epochs: training really stepped
    assert (
        reports[0]["rank_metrics"][0]["param_digest"]
        != reports[1]["rank_metrics"][0]["param_digest"]
    )

    state = load_state(outcome.checkpoint_uri)
    assert state.epoch == 1
    assert state.clip_spec.slow_frames == 4 and state.clip_spec.alpha == 2
    assert state.clip_spec.num_test_clips == 2  # the dataset's test windows reach the checkpoint
    assert state.optimizer and state.scheduler and state.job_config["data"]["dataset"] == dataset
    assert 0.0 <= outcome.test_metrics["test_top1"] <= 1.0
    assert outcome.test_metrics["test_views_per_video"] == 2.0  # 2 windows x 1 crop

    # Everything is readable back from the tracking server.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server.tracking_uri)
    run = client.get_run(outcome.mlflow_run_id)
    params = run.data.params
    assert params["model.preset"] == "slowfast_tiny"
    assert params["model.resolved.alpha"] == "2" and params["model.resolved.fusion"]
    assert float(params["model.gflops"]) > 0 and int(params["model.params"]) > 100_000
    assert params["scaling.num_workers"] == "2" and params["data.decode.train_view"] == "planes"
    assert run.data.tags["git_commit"] and run.data.tags["version.torch"].startswith("2.")
    history = client.get_metric_history(run.info.run_id, "val_top1")
    assert [m.step for m in history] == [0, 1]
    for key in ("train_loss", "lr", "val_top5", "clips_per_s", "data_wait_frac", "test_top1"):
        assert key in run.data.metrics, key
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"resolved_config.yaml", "confusion_matrix.png", "per_class_accuracy.csv"} <= artifacts
    assert "training_curves.png" in artifacts  # loss, top-1/5, clips/s, data wait per epoch
    curves = client.download_artifacts(run.info.run_id, "training_curves.png", str(tmp_path))
    assert Path(curves).read_bytes()[:4] == b"\x89PNG"
    models = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert any(m.source_run_id == run.info.run_id for m in models)
    import mlflow.pytorch
    import torch

    mlflow.set_tracking_uri(mlflow_server.tracking_uri)
    model_uri = next(m.model_uri for m in models if m.source_run_id == run.info.run_id)
    served = mlflow.pytorch.load_model(model_uri)
    # the requirements are stated (training.artifacts.model_requirements), not inferred
    requirements = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text().split()
    assert f"torch=={torch.__version__}" in requirements
    logits = served(torch.zeros(1, 3, 8, 32, 32))
    assert logits.shape == (1, 3)


def _train_and_kill_a_worker(job, log: Path, after_epoch: int):
    """Run ``job`` in a thread, SIGKILL a training worker once epoch ``after_epoch`` has been
    reported, and return the outcome of the run (which must survive it)."""
    result: dict = {}

    def target():
        try:
            result["outcome"] = run_training(job, metrics_log=str(log))
        except BaseException as exc:  # surfaced by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    killed = None
    deadline = time.time() + 300
    while thread.is_alive() and time.time() < deadline:
        done = [r for r in _reports(log) if "rank_metrics" in r]
        if done and done[-1]["rank_metrics"][0]["epoch"] >= after_epoch and killed is None:
            workers = sorted(find_pids(TRAIN_WORKER, under=os.getpid()))
            if workers:
                killed = workers[0]
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    thread.join(timeout=300)
    assert "error" not in result, result.get("error")
    assert killed is not None, "the run finished before a worker could be killed"
    return result["outcome"]


def test_killed_multigrid_worker_resumes_its_phase_in_lock_step(dataset, local_ray, tmp_path):
    """Two workers on a multigrid schedule, one SIGKILLed inside the first phase: the restarted
    group resumes after the last checkpoint and continues that phase (every epoch reported once,
    each at its phase's shape on both ranks, weights bit-identical), the final checkpoint
    records the fine-tune phase, and the schedule is logged to MLflow. One run for the plain
    resume path, the phase resume and multigrid's DDP lock-step: they share the same restart."""
    job = _job(
        dataset,
        tmp_path,
        "scaling.num_workers=2",
        "scaling.resources_per_worker={CPU: 1}",
        "train.epochs=4",
        "train.batch_size=1",
        "train.max_steps_per_epoch=2",
        "train.log_param_digest=true",
        "train.schedule=multigrid",
        "train.multigrid.long_cycle=[[0.5, 1], [1, 1]]",
        "train.multigrid.short_cycle=[0.5]",
        "train.multigrid.long_cycles=1",
        "train.multigrid.finetune_fraction=0.2",
        "train.multigrid.crop_multiple=4",
        "failure.max_failures=2",
        "eval.after_training=false",
        "mlflow.log_model=false",
    )
    shapes = plan_training(job).shapes
    assert [(p.name, p.epochs) for p in shapes.phases] == [("1.1", 3), ("1.2", 2), ("finetune", 1)]
    log = tmp_path / "reports.jsonl"
    outcome = _train_and_kill_a_worker(job, log, after_epoch=0)

    records = _reports(log)
    assert any("failures" in r for r in records), "Ray Train saw no worker failure"
    reports = [r["rank_metrics"] for r in records if "rank_metrics" in r]
    # every epoch reported exactly once: the restarted group resumed inside phase 1.1
    assert [ranks[0]["epoch"] for ranks in reports] == list(range(6))
    for epoch, ranks in enumerate(reports):
        assert len(ranks) == 2
        assert ranks[0]["phase"] == ranks[1]["phase"] == shapes.phase_index(epoch)
        assert ranks[0]["steps"] == ranks[1]["steps"] >= 1
        assert ranks[0]["param_digest"] == ranks[1]["param_digest"]
    assert len({ranks[0]["param_digest"] for ranks in reports}) == 6  # it trained every epoch
    assert load_state(outcome.checkpoint_uri).schedule["phase"] == "finetune"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(job.mlflow.tracking_uri)
    table = client.download_artifacts(outcome.mlflow_run_id, "shape_schedule.txt", str(tmp_path))
    assert Path(table).read_text().startswith("phase") and "4x@16 1x@32" in Path(table).read_text()
    params = client.get_run(outcome.mlflow_run_id).data.params
    assert params["train.schedule"] == "multigrid" and params["train.resolved.epochs"] == "6"
