"""Run a training job on Ray Train: :func:`run_training`.

The driver checks the services the run needs (MLflow, S3 endpoints) before anything starts,
plans the run (:func:`training.plan.plan_training`), loads the pretrained weights and checks
them against the network (class count, architecture), refuses a resume whose stored config
differs in training keys (:func:`training.plan.check_resume`) -- all before Ray starts --,
opens its MLflow run, joins or starts Ray (:func:`raysf.runtime.init_ray`), checks that the
cluster can hold the worker group (:mod:`training.run.placement`), builds the streaming train/val
datasets (records that fail to decode are dropped and counted, :mod:`pipelines.loader.decode_errors`)
and the ``TorchTrainer`` (:func:`build_trainer`), and fits it. After training it logs the
artifacts and, when asked, evaluates the final checkpoint with the test-view protocol. A run
that fails anywhere after its MLflow run was opened is marked ``FAILED`` there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import slowfast_model
from pipelines.loader.dataset import build_clip_dataset, seeded_execution_options, view_kind
from pipelines.loader.decode_errors import DecodeErrorSink, start_decode_error_log
from pipelines.loader.options import DecodeOptions
from raysf import console, runtime, storage
from raysf.config import ConfigError
from raysf.errors import ExpectedError
from training import tracking
from training.artifacts import log_training_artifacts
from training.checkpoints import STATE_FILE, load_state
from training.config import TrainJobConfig, resolve_path
from training.inference.evaluate import EvalRequest, evaluate_checkpoint
from training.multigrid.table import schedule_rows, schedule_table
from training.plan import ModelSummary, TrainingPlan, check_resume, plan_training
from training.run.callbacks import MetricsLogCallback
from training.run.placement import wait_for_placement
from training.worker.loop import WorkerSetup, train_func
from training.worker.reporting import TrainingDisplay


class DecodeErrorLimit(ExpectedError):
    """More records failed to decode in an epoch than ``data.max_decode_error_fraction``."""


@dataclass
class TrainOutcome:
    """What a finished training run produced."""

    checkpoint_uri: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    mlflow_run_id: str | None
    tracking_uri: str | None  # for display: credentials redacted
    model_info: ModelSummary
    test_metrics: dict[str, float] | None = None


def run_training(
    job: TrainJobConfig,
    *,
    address: str | None = None,
    evaluate_after: bool | None = None,
    callbacks: list | None = None,
    metrics_log: str | None = None,
) -> TrainOutcome:
    """Run the whole job: checks, plan, MLflow run, TorchTrainer, artifacts, evaluation.

    ``metrics_log``: also write every worker's per-epoch report to this JSON-lines file
    (:class:`training.run.callbacks.MetricsLogCallback`); ``callbacks``: extra Ray Train callbacks;
    ``evaluate_after``: override ``eval.after_training``.
    """
    tracking_uri = check_services(job)
    plan = plan_training(job)
    init_state = pretrained_state(job, plan.model)
    check_resume(job, *stored_job_config(job, plan.run_name))
    run = open_run(plan, tracking_uri)
    try:
        runtime.init_ray(address)
        wait_for_placement(job)
        outcome = _fit(plan, run, init_state, callbacks, metrics_log)
        if run is not None:
            console.line(f"[{plan.run_name}] logging artifacts to MLflow run {run.run_id}")
            log_training_artifacts(run, job, outcome.checkpoint_uri, log_model=job.mlflow.log_model)
        if job.eval.after_training if evaluate_after is None else evaluate_after:
            outcome.test_metrics = evaluate_checkpoint(_eval_request(job, outcome), run=run)
    except BaseException:
        if run is not None:
            tracking.end_run(run, "FAILED")
        raise
    if run is not None:
        tracking.end_run(run, "FINISHED")
    return outcome


def _fit(plan: TrainingPlan, run, init_state, callbacks, metrics_log) -> TrainOutcome:
    """The TorchTrainer's fit with the console's training display; its outcome."""
    job = plan.job
    errors = start_decode_error_log()
    setup = WorkerSetup(plan, run, init_state, decode_errors=errors)
    extra = list(callbacks or [])
    if metrics_log:
        extra.append(MetricsLogCallback(str(Path(metrics_log).absolute())))
    console.line(
        f"[{plan.run_name}] training {job.model.preset}: {_epochs_words(plan)}, "
        f"{job.scaling.num_workers} worker(s) on "
        f"{plan.device.describe()}, {plan.summary.params:,d} params, "
        f"{plan.summary.gflops:.3g} GFLOPs/view"
    )
    if plan.shapes.kind != "plain":
        for line in schedule_table(plan.shapes).splitlines():
            console.line(f"[{plan.run_name}]   {line}")
    display = TrainingDisplay(f"[{plan.run_name}]", plan.epochs, plan.steps_per_epoch)
    with display.active():
        result = build_trainer(setup, build_datasets(plan, errors), extra).fit()
    return _outcome(result, plan, run)


def _epochs_words(plan: TrainingPlan) -> str:
    """``15 epochs x 21 steps`` (plain), ``22 epochs of a multigrid schedule, 3-21 steps``."""
    if plan.shapes.kind == "plain":
        return f"{plan.epochs} epochs x {plan.steps_per_epoch} steps"
    steps = [plan.epoch_steps(e) for e in range(plan.epochs)]
    return f"{plan.epochs} epochs of a {plan.shapes.kind} schedule, {min(steps)}-{max(steps)} steps"


def stored_job_config(job: TrainJobConfig, run_name: str) -> tuple[dict | None, str]:
    """``(job_config of the latest checkpoint of run_name, its location)``; ``None`` when the
    run has no checkpoint (a fresh run)."""
    root = job.storage.location().join(run_name)
    states = [
        f
        for f in root.list_files(recursive=True)
        if f.path.endswith(f"/{STATE_FILE}") and f.path.rsplit("/", 2)[-2].startswith("checkpoint_")
    ]
    if not states:
        return None, root.uri
    latest = max(states, key=lambda f: f.path.rsplit("/", 2)[-2])
    return load_state(latest).job_config, latest.uri


def check_services(job: TrainJobConfig) -> str | None:
    """Fail fast, naming what is wrong, when MLflow or an S3 endpoint is unreachable; returns
    the resolved tracking URI (``None`` with MLflow off)."""
    tracking_uri = None
    if job.mlflow.enabled:
        tracking_uri = tracking.resolve_tracking_uri(job.mlflow.tracking_uri)
        tracking.check_reachable(tracking_uri)
    storage.check_s3_endpoint(job.data.location())
    storage.check_s3_endpoint(job.storage.location())
    return tracking_uri


def open_run(plan: TrainingPlan, tracking_uri: str | None) -> tracking.RunTarget | None:
    """Create (or, resuming, find) the run's MLflow run and log its parameters."""
    if not tracking_uri:
        return None
    job = plan.job
    run_id = tracking.start_run(
        tracking_uri,
        job.mlflow.experiment,
        job.mlflow.run_name or plan.run_name,
        run_key=plan.run_name,
        resume=job.resume,
    )
    tracking.log_params(tracking_uri, run_id, plan.mlflow_params())
    rows = json.dumps(schedule_rows(plan.shapes), indent=1)
    tracking.log_text(tracking_uri, run_id, schedule_table(plan.shapes), "shape_schedule.txt")
    tracking.log_text(tracking_uri, run_id, rows, "shape_schedule.json")
    return tracking.RunTarget(tracking_uri, run_id)


def build_datasets(plan: TrainingPlan, errors: Any = None) -> dict[str, Any]:
    """The streaming train (augmented) and val (centre view) datasets of the run, one train
    dataset per clip shape of the shape schedule (``train`` at the run's clip; a multigrid run
    adds ``train_<T>x<tau>_<crop>`` for the other long-cycle shapes, the same records cut
    otherwise, :meth:`training.multigrid.schedule.Shape.clip_spec`): the pixel
    columns the loader ships (``fast``; the train split's plane columns with
    ``data.decode.train_view: planes``, :func:`~pipelines.loader.dataset.view_kind`) and labels;
    with the ``errors`` log actor, records that fail to decode are dropped and counted there."""
    data = plan.job.data
    train_sink = DecodeErrorSink(errors, data.train_split) if errors is not None else None
    val_sink = DecodeErrorSink(errors, data.val_split) if errors is not None else None
    seed = plan.job.train.seed if data.reproducible else None
    val = build_clip_dataset(
        plan.dataset,
        split=data.val_split,
        mode="val",
        errors=val_sink,
        spec=plan.clip,
        decode=data.decode,
    )
    train_cols = [*view_kind("train", data.decode).columns, "label"]
    val_cols = [*view_kind("val", data.decode).columns, "label"]
    datasets = {"val": val.select_columns(val_cols)}
    for key, shape in plan.shapes.data_keys().items():  # one per clip shape of the schedule
        train = build_clip_dataset(
            plan.dataset,
            split=data.train_split,
            mode="train",
            spec=shape.clip_spec(plan.clip),
            decode=data.decode,
            seed=seed,
            errors=train_sink,
            flip_map=plan.flip_map,
        )
        datasets[key] = train.select_columns(train_cols)
    return datasets


def build_trainer(setup: WorkerSetup, datasets: dict[str, Any], callbacks: list):
    """The ``TorchTrainer`` of a planned run (scaling, storage, failures, checkpoints)."""
    # heavy; planning and the checks above run without it
    import ray.train
    from ray.train.torch import TorchTrainer

    job = setup.plan.job
    storage_path, storage_fs = _storage(job)
    # A reproducible run keeps the seeded train rows in order (Ray Train would replace the
    # dataset's own execution options with its defaults).
    keys = [key for key in datasets if key != "val"]
    options = {k: seeded_execution_options() for k in keys} if job.data.reproducible else None
    return TorchTrainer(
        train_loop_per_worker=train_func,
        train_loop_config={"setup": setup},
        scaling_config=ray.train.ScalingConfig(
            num_workers=job.scaling.num_workers,
            use_gpu=job.scaling.use_gpu,
            resources_per_worker=dict(job.scaling.resources_per_worker) or None,
            placement_strategy=job.scaling.placement_strategy,
        ),
        run_config=ray.train.RunConfig(
            name=setup.plan.run_name,
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            failure_config=ray.train.FailureConfig(max_failures=job.failure.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=job.checkpoint.keep),
            callbacks=callbacks,
        ),
        datasets=datasets,
        dataset_config=ray.train.DataConfig(execution_options=options),
    )


def _storage(job: TrainJobConfig):
    """``(storage_path, filesystem)`` for Ray Train: S3 paths with their filesystem, local
    folders created (filesystem ``None``)."""
    root = job.storage.location()
    if root.is_s3:
        return root.path, root.filesystem
    Path(root.path).mkdir(parents=True, exist_ok=True)
    return root.path, None


def pretrained_state(job: TrainJobConfig, model_cfg: slowfast_model.SlowFastConfig):
    """Load and convert a pretrained checkpoint on the driver, before Ray starts (new heads
    are left out); ``ConfigError`` naming ``model.pretrained`` and the file when it does not
    fit the network (class count, architecture) or cannot be read."""
    if job.model.pretrained is None:
        return None
    pre = job.model.pretrained
    model = slowfast_model.build_model(model_cfg)
    path = resolve_path(pre.path)
    try:
        if pre.source == "raysf":
            weights = load_state(path).model
            slowfast_model.load_pretrained(model, weights, source="ours", skip_head=pre.skip_head)
        else:
            slowfast_model.load_pretrained(model, path, source=pre.source, skip_head=pre.skip_head)
    except (ValueError, OSError, RuntimeError, KeyError) as exc:
        hint = ""
        if "head." in str(exc) and not pre.skip_head:
            hint = f" (the dataset has {model_cfg.num_classes} classes: skip_head: true fine-tunes)"
        raise ConfigError(f"model.pretrained: {path}: {exc}{hint}") from exc
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _outcome(result, plan: TrainingPlan, run: tracking.RunTarget | None) -> TrainOutcome:
    if result.error:
        raise result.error
    stop_reason = (result.metrics or {}).get("stop_reason")
    if stop_reason:
        raise DecodeErrorLimit(f"{plan.run_name}: {stop_reason}")
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")
    ckpt_uri = result.checkpoint.path
    if plan.job.storage.path.startswith("s3://"):
        ckpt_uri = "s3://" + ckpt_uri.lstrip("/")
    df = getattr(result, "metrics_dataframe", None)
    return TrainOutcome(
        checkpoint_uri=ckpt_uri,
        metrics=dict(result.metrics or {}),
        history=[] if df is None else df.to_dict(orient="records"),
        mlflow_run_id=run.run_id if run else None,
        tracking_uri=run.display_uri if run else None,
        model_info=plan.summary,
    )


def _eval_request(job: TrainJobConfig, outcome: TrainOutcome) -> EvalRequest:
    return EvalRequest(
        checkpoint=outcome.checkpoint_uri,
        dataset=resolve_path(job.data.dataset),
        split=job.data.test_split,
        storage=job.data.s3,
        batch_size=job.eval.batch_size,
        num_crops=job.eval.num_crops,
        decode=DecodeOptions(num_cpus=job.data.decode.num_cpus),
    )
