"""The Tune trainable: one trial is one Ray Train run (:func:`run_trial`).

Each trial is a small driver (``search.trial_cpus`` CPUs) that runs
:func:`training.run.trainer.run_training` for its point, so a trial may itself be multi-worker DDP
(``train.scaling.*``). The workers' per-epoch reports reach Tune through Ray Train's
``TuneReportCallback``. Its MLflow run is a child of the sweep's parent run, tagged with the
point, and is marked ``FAILED`` when the trial fails.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from raysf.storage import StorageLocation
from training import tracking
from training.config import TrainJobConfig
from training.run.trainer import run_training
from training.tune.results import trial_dirname, write_error_record
from training.tune.space import Point, trial_job


def run_trial(
    config: dict[str, Any],
    *,
    base: TrainJobConfig,
    train_root: str,
    sweep: str,
    experiment: StorageLocation,
    tracking_uri: str | None,
    parent_run_id: str | None,
) -> None:
    """Tune trainable: one Ray Train run for ``config["point"]``, reported to Tune per epoch.

    A failure leaves its JSON error record in the trial's folder under ``experiment``
    (:func:`training.tune.results.write_error_record`), for a resumed sweep to report.
    """
    # heavy, and only inside a Tune trial
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    point = Point(**config["point"])
    job = trial_job(base, point, train_root, sweep)
    job = replace(
        job, mlflow=replace(job.mlflow, enabled=bool(tracking_uri), tracking_uri=tracking_uri)
    )
    run_id = _open_child_run(job, point, tracking_uri, parent_run_id) if tracking_uri else None
    try:
        run_training(job, callbacks=[TuneReportCallback()])
    except Exception as exc:
        trial = trial_dirname(point.key, ray.tune.get_context().get_trial_id())
        try:
            write_error_record(experiment.join(trial), exc)
        except OSError as record_error:  # the trial's own error is the one to raise
            print(f"[tune] could not record the error of {trial}: {record_error}", flush=True)
        if run_id:
            tracking.get_client(tracking_uri).set_terminated(run_id, "FAILED")
        raise
    except BaseException:
        if run_id:
            tracking.get_client(tracking_uri).set_terminated(run_id, "FAILED")
        raise
    if run_id:
        tracking.get_client(tracking_uri).set_terminated(run_id, "FINISHED")


def _open_child_run(
    job: TrainJobConfig, point: Point, tracking_uri: str, parent_run_id: str | None
) -> str:
    """The trial's child run, tagged with the point; ``run_training`` finds it again through
    the same run key (``resume`` is on for trials)."""
    import ray.tune  # runs inside a Tune trial

    run_id = tracking.start_run(
        tracking_uri,
        job.mlflow.experiment,
        job.mlflow.run_name,
        run_key=job.storage.name,
        parent_run_id=parent_run_id,
        resume=True,
    )
    params = {"tune.trial_id": ray.tune.get_context().get_trial_id(), "tune.key": point.key}
    params.update({f"tune.{k}": v for k, v in point.dims.items()})
    params["tune.label"] = point.label
    params["tune.config_key"] = point.config_key
    if point.seed is not None:
        params["tune.seed"] = point.seed
    tracking.log_params(tracking_uri, run_id, params)
    return run_id
