"""Ablation sweeps with Ray Tune: :func:`run_sweep`.

Every point of the space is validated (its training job and network built, its cost counted)
before the first trial starts (:func:`prepare`). Each trial runs one Ray Train job
(:mod:`training.tune.trial`); ASHA stops weak trials on ``search.metric``. MLflow gets one
parent run per sweep and one nested child run per trial; the parent carries the ablation table
(Markdown and CSV, the layout of the paper's Table 5), a plot of accuracy against GFLOPs per
fusion type, and the best configuration as a YAML that ``python -m jobs.train`` accepts.

An interrupted sweep with the same ``sweep.name`` resumes (``Tuner.restore``): finished trials
are kept, unfinished ones continue from their last Ray Train checkpoint.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from raysf import console, runtime
from raysf.config import ConfigError, dump_yaml, flatten, to_dict
from raysf.storage import StorageLocation, resolve_location
from training import tracking
from training.config import TrainJobConfig, recorded_job, resolve_path
from training.plan import epoch_rows, model_summary
from training.tune.config import TuneJobConfig
from training.tune.live_table import SweepProgress, ignore_trial_events
from training.tune.report import best_row, write_summary
from training.tune.results import (
    PreparedPoint,
    aggregate_rows,
    collect_rows,
    default_baseline,
    trial_dirname,
)
from training.tune.space import (
    absolute_paths,
    check_point,
    make_points,
    select_points,
    trial_job,
    with_seeds,
)
from training.tune.trial import run_trial

PARENT_KEY_PREFIX = "sweep:"


@dataclass
class SweepOutcome:
    """What a finished sweep produced."""

    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    # one row per configuration with its seed statistics (seeded sweeps only)
    aggregated: list[dict[str, Any]] | None
    best_config_path: str | None
    experiment_path: str
    parent_run_id: str | None
    tracking_uri: str | None  # for display: credentials redacted
    errors: list[str]
    interrupted: int = 0
    artifacts: list[str] = field(default_factory=list)


def prepare(cfg: TuneJobConfig, source: str = "tune config") -> list[PreparedPoint]:
    """Every selected point validated, with its training job and cost; ``ConfigError`` naming
    the ``space.*`` or ``train.*`` key of the first invalid one."""
    base = cfg.train
    manifest = runtime.read_manifest(base.data.location())
    rows, described = epoch_rows(base, manifest)
    if rows < base.train.batch_size * base.scaling.num_workers:
        raise ConfigError(
            f"{source}: train.train.batch_size: the train split has {described}, "
            "fewer than one global batch"
        )
    prepared, seen = [], set()
    configurations = select_points(make_points(cfg.space, base), cfg.search)
    if cfg.report.baseline is not None and cfg.report.baseline not in {
        p.key for p in configurations
    }:
        raise ConfigError(
            f"{source}: report.baseline: {cfg.report.baseline!r} is not a configuration of the "
            f"sweep; its configurations: {[p.key for p in configurations]}"
        )
    for point in with_seeds(configurations, cfg.space.seed_list()):
        if point.key in seen:
            raise ConfigError(f"{source}: space: two trials share the key {point.key!r}")
        seen.add(point.key)
        job = trial_job(base, point, _train_root(cfg), cfg.sweep.name, source)
        model_cfg = check_point(job, point, manifest.num_classes, source)
        summary = model_summary(model_cfg, job.data.clip.crop_size)
        prepared.append(PreparedPoint(point, job, summary.gflops, summary.params))
    return prepared


def _storage_root(cfg: TuneJobConfig) -> str:
    return resolve_path(cfg.sweep.storage_path).rstrip("/")


def _train_root(cfg: TuneJobConfig) -> str:
    """Ray Train runs of the trials live in the sweep's experiment folder, under ``train_runs``."""
    return f"{_storage_root(cfg)}/{cfg.sweep.name}/train_runs"


def _max_concurrent(cfg: TuneJobConfig) -> int:
    """``search.max_concurrent`` or what the cluster's CPUs hold: workers + one decode task."""
    import ray  # the sweep's driver is connected by now

    base = cfg.train
    cpus = ray.cluster_resources().get("CPU", 0.0)
    per_worker = base.scaling.resources_per_worker.get("CPU", 1.0)
    need = base.scaling.num_workers * per_worker + base.data.decode.num_cpus + cfg.search.trial_cpus
    if cpus < need:
        # Tune would start the trial and its Ray Train run would wait forever for its data.
        raise ConfigError(
            f"the Ray cluster has {cpus:g} CPUs but one trial needs {need:g} (scaling.num_workers "
            "x resources_per_worker.CPU + data.decode.num_cpus + search.trial_cpus); start Ray with "
            "more logical CPUs (sweep.local_num_cpus) or lower these"
        )
    return cfg.search.max_concurrent or max(1, int(cpus // need))


def _storage_location(cfg: TuneJobConfig) -> StorageLocation:
    """The sweep's storage root, resolved with the S3 settings of ``train.storage``."""
    return resolve_location(_storage_root(cfg), cfg.train.storage.s3)


def _tune_storage(cfg: TuneJobConfig):
    root = _storage_location(cfg)
    if root.is_s3:
        return root.path, root.filesystem
    Path(root.path).mkdir(parents=True, exist_ok=True)
    return root.path, None


def build_tuner(cfg: TuneJobConfig, prepared, tracking_uri, parent_run_id):
    """A fresh ``Tuner`` or, when ``sweep.resume`` and the experiment exists, the restored one."""
    import ray.tune  # heavy; validation and planning run without it

    trainable = ray.tune.with_parameters(
        run_trial,
        base=absolute_paths(cfg.train),  # trials run in their own working folders
        train_root=_train_root(cfg),
        sweep=cfg.sweep.name,
        experiment=_storage_location(cfg).join(cfg.sweep.name),
        tracking_uri=tracking_uri,
        parent_run_id=parent_run_id,
    )
    trainable = ray.tune.with_resources(trainable, {"CPU": cfg.search.trial_cpus})
    storage_path, storage_fs = _tune_storage(cfg)
    experiment = f"{storage_path}/{cfg.sweep.name}"
    if cfg.sweep.resume and ray.tune.Tuner.can_restore(experiment, storage_filesystem=storage_fs):
        console.line(f"[tune] resuming the sweep in {experiment}")
        return ray.tune.Tuner.restore(
            experiment,
            trainable=trainable,
            resume_unfinished=True,
            restart_errored=cfg.sweep.retry_errored,
            storage_filesystem=storage_fs,
        )
    return ray.tune.Tuner(
        trainable,
        param_space={"point": ray.tune.grid_search([pp.point.as_dict() for pp in prepared])},
        tune_config=ray.tune.TuneConfig(
            metric=cfg.search.metric,
            mode=cfg.search.mode_of_metric,
            scheduler=_scheduler(cfg),
            max_concurrent_trials=_max_concurrent(cfg),
            trial_dirname_creator=lambda t: trial_dirname(t.config["point"]["key"], t.trial_id),
        ),
        run_config=ray.tune.RunConfig(
            name=cfg.sweep.name,
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            failure_config=ray.tune.FailureConfig(max_failures=0, fail_fast=False),
            # Tune's own table shows the point as one truncated dict; SweepProgress has a column
            # per swept dimension.
            callbacks=[
                SweepProgress([pp.point.as_dict() for pp in prepared], cfg.train.train.run_epochs)
            ],
            verbose=0,
        ),
    )


def _scheduler(cfg: TuneJobConfig):
    """ASHA on the metric, or None.

    Rungs stop before the last epoch (max_t = epochs - 1, last trials not stopped): a trial
    that reaches its last epoch always finishes its run (checkpoint, MLflow, artifacts) and is
    never killed by the scheduler on its way out.
    """
    from ray.tune.schedulers import ASHAScheduler  # heavy; validation runs without Ray Tune

    asha, epochs = cfg.search.asha, cfg.train.train.run_epochs
    if not asha.enabled:
        return None
    if epochs - 1 < asha.grace_period:
        console.line("[tune] ASHA off: train.epochs leaves no epoch after the grace period")
        return None
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=epochs - 1,
        grace_period=asha.grace_period,
        reduction_factor=asha.reduction_factor,
        stop_last_trials=False,
    )


def exported_job(best: PreparedPoint, base: TrainJobConfig, sweep: str) -> TrainJobConfig:
    """The best trial's config for a full ``jobs.train`` run (base storage, its own run name)."""
    job = best.job
    storage = replace(base.storage, name=f"{sweep}-best")
    mlflow = replace(job.mlflow, run_name=f"{sweep}-best")
    return replace(job, storage=storage, mlflow=mlflow, resume=base.resume)


def run_sweep(
    cfg: TuneJobConfig,
    *,
    address: str | None = None,
    source: str = "tune config",
) -> SweepOutcome:
    """Validate every point, run the Tuner, write and log the summary; returns the rows."""
    if not cfg.sweep.resume:
        # A fresh sweep never meets the runs of an earlier one of the same name.
        stamp = time.strftime("%Y%m%d-%H%M%S")
        cfg = replace(cfg, sweep=replace(cfg.sweep, name=f"{cfg.sweep.name}-{stamp}"))
    tracking_uri = None
    if cfg.train.mlflow.enabled:
        tracking_uri = tracking.resolve_tracking_uri(cfg.train.mlflow.tracking_uri)
        tracking.check_reachable(tracking_uri)
    prepared = prepare(cfg, source)
    runtime.init_ray(address, num_cpus=cfg.sweep.local_num_cpus or runtime.local_cpus(4))
    console.line(
        f"[tune] {cfg.sweep.name}: {len(prepared)} trials of {cfg.train.train.run_epochs} epochs"
    )
    parent = _open_parent_run(cfg, prepared, tracking_uri)
    start = time.time()
    # Tune prints its own banners whatever its verbosity: to the log folder with the rest.
    with ignore_trial_events(), console.stdout_to_log():
        results = build_tuner(cfg, prepared, tracking_uri, parent and parent.run_id).fit()
    rows = collect_rows(results, prepared, cfg.train.train.run_epochs)
    if tracking_uri:
        _link_child_runs(tracking_uri, cfg.train.mlflow.experiment, cfg.sweep.name, rows)
    outcome = _summarize(cfg, prepared, rows, tracking_uri, parent)
    if parent is not None:
        _log_parent(parent, outcome, minutes=(time.time() - start) / 60)
    if outcome.interrupted:
        console.line(
            f"[tune] interrupted with {outcome.interrupted} trial(s) not run; run the same command "
            f"with sweep.name={cfg.sweep.name} sweep.resume=true to finish it"
        )
    return outcome


def _open_parent_run(cfg: TuneJobConfig, prepared, tracking_uri) -> tracking.RunTarget | None:
    if not tracking_uri:
        return None
    run_id = tracking.start_run(
        tracking_uri,
        cfg.train.mlflow.experiment,
        cfg.sweep.name,
        run_key=PARENT_KEY_PREFIX + cfg.sweep.name,
        resume=cfg.sweep.resume,
    )
    # The base training job is logged by every child run; the parent holds the sweep's keys.
    params = {
        f"sweep.{k}": v for k, v in flatten(to_dict(cfg)).items() if not k.startswith("train.")
    }
    params["sweep.num_trials"] = len(prepared)
    params["sweep.trial_keys"] = ",".join(pp.point.key for pp in prepared)
    tracking.log_params(tracking_uri, run_id, params)
    return tracking.RunTarget(tracking_uri, run_id)


def _summarize(cfg, prepared, rows, tracking_uri, parent) -> SweepOutcome:
    """Write the table, plot and best config next to the sweep (a temp folder on S3)."""
    storage_root = _storage_root(cfg)
    local_out = None if storage_root.startswith("s3://") else f"{storage_root}/{cfg.sweep.name}"
    out_dir = Path(local_out or tempfile.mkdtemp(prefix="tune-summary-")) / "summary"
    agg = None
    if cfg.space.seed_list() is not None:
        baseline = default_baseline(rows, cfg.report.baseline)
        agg = aggregate_rows(rows, baseline, cfg.report.level)
    paths = write_summary(rows, out_dir, agg, title=cfg.sweep.name)
    best = best_row(agg, "top1_mean") if agg is not None else best_row(rows)
    best_path = _export_best(cfg, prepared, best, out_dir) if best is not None else None
    return SweepOutcome(
        rows=rows,
        best=best,
        aggregated=agg,
        best_config_path=best_path,
        experiment_path=f"{storage_root}/{cfg.sweep.name}",
        parent_run_id=parent.run_id if parent else None,
        tracking_uri=tracking.redact_uri(tracking_uri),
        errors=[f"{r['key']}: {r['error']}" for r in rows if r["error"]],
        interrupted=sum(r["status"] == "not run" for r in rows),
        artifacts=[*map(str, paths.values()), *([best_path] if best_path else [])],
    )


def best_top1(best: dict[str, Any]) -> float:
    """The best row's top-1: its mean over seeds (aggregated row) or its single value."""
    return best["top1_mean"] if "top1_mean" in best else best["top1"]


def _export_best(cfg: TuneJobConfig, prepared, best: dict[str, Any], out_dir: Path) -> str:
    """The best configuration's training job as YAML (its first seed's trial, with a seeded
    sweep); returns its path."""
    chosen = next(pp for pp in prepared if best["key"] in (pp.point.key, pp.point.config_key))
    path = cfg.sweep.export_path or str(out_dir / "best_train.yaml")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    over = f" over {best['n']} seeds" if "n" in best else ""
    header = (
        f"# Best configuration of sweep {cfg.sweep.name!r}: {best['configuration']} "
        f"(val top-1 {best_top1(best):.3f}{over}).\n# Train it: python -m jobs.train {path}\n"
    )
    job = exported_job(chosen, cfg.train, cfg.sweep.name)
    Path(path).write_text(header + dump_yaml(recorded_job(job)))
    return path


def _seed_metrics(agg: list[dict[str, Any]]) -> dict[str, float]:
    """Per-configuration seed statistics as parent-run metrics (``seeds.<key>.top1_mean``...)."""
    names = ("n", "top1_mean", "top1_ci", "top5_mean", "top5_ci", "diff_top1_mean")
    names += ("diff_top1_low", "diff_top1_high")
    return {
        f"seeds.{r['key']}.{name}": float(r[name])
        for r in agg
        for name in names
        if r.get(name) is not None
    }


def _log_parent(parent: tracking.RunTarget, outcome: SweepOutcome, minutes: float) -> None:
    """The summary artifacts and metrics on the parent run; finished unless interrupted."""
    client = tracking.get_client(parent.tracking_uri)
    for path in outcome.artifacts:
        client.log_artifact(parent.run_id, path)
    summary = {
        "num_trials": len(outcome.rows),
        "num_errors": len(outcome.errors),
        "sweep_minutes": minutes,
    }
    if outcome.best is not None:
        best = outcome.best
        summary.update({"best_top1": best_top1(best), "best_gflops": best["gflops"]})
        client.set_tag(parent.run_id, "best_configuration", best["configuration"])
    if outcome.aggregated is not None:
        summary.update(_seed_metrics(outcome.aggregated))
    parent.log_metrics(summary, step=0)
    if outcome.interrupted:
        client.set_tag(parent.run_id, "sweep.status", "interrupted")
    else:
        client.set_terminated(parent.run_id, "FINISHED")


def _link_child_runs(tracking_uri: str, experiment: str, sweep: str, rows) -> None:
    """Fill ``mlflow_run_id`` of each row; runs of trials that ASHA stopped are marked KILLED."""
    client = tracking.get_client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return
    for row in rows:
        found = client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{tracking.RUN_KEY_TAG}` = '{sweep}.{row['key']}'",
            max_results=1,
        )
        if not found:
            continue
        run = found[0]
        row["mlflow_run_id"] = run.info.run_id
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, "tune.status", row["status"])
            client.set_terminated(run.info.run_id, "KILLED")
