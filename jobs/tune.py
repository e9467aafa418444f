"""Ablation sweeps with Ray Tune: ``python -m jobs.tune jobs/tune.yaml [key=value ...]``.

Each Tune trial is a small driver (``search.trial_cpus`` CPUs) that runs one Ray Train job
through :func:`jobs.train.run_training`, so a trial may itself be multi-worker DDP
(``train.scaling.*``). The workers' per-epoch reports reach Tune through Ray Train's
``TuneReportCallback``; ASHA stops weak trials on ``search.metric``. MLflow gets one parent
run per sweep and one nested child run per trial; the parent carries the ablation table
(Markdown and CSV, the layout of the paper's Table 5), a plot of accuracy against GFLOPs per
fusion type, and the best configuration as a YAML that ``python -m jobs.train`` accepts.

Locally this starts a Ray instance (at least 4 logical CPUs, so that a trial's driver, its
training worker and its decode tasks fit on a 2-core machine); under ``ray job submit`` or with
``RAY_ADDRESS`` set it joins the cluster. An interrupted sweep with the same ``sweep.name``
resumes (``Tuner.restore``): finished trials are kept, unfinished ones continue from their last
Ray Train checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jobs.config import TrainJobConfig, resolve_path
from jobs.tune_report import best_row, format_table, write_summary
from jobs.tune_space import (
    Point,
    TuneJobConfig,
    base_train_job,
    check_point,
    load_tune_config,
    make_points,
    select_points,
    trial_job,
)
from raysf.config import (
    ConfigError,
    add_config_arguments,
    dump_yaml,
    flatten,
    parse_config_arguments,
    to_dict,
)

DEFAULT_CONFIG = Path(__file__).with_name("tune.yaml")
PARENT_KEY_PREFIX = "sweep:"

#: Space of ``--smoke-test``: 4 of the 6 points fusion x alpha (random mode, seed 0 draws all
#: three fusions and both alphas; tests/jobs/test_tune_unit.py checks it), ~2 min on 2 CPUs.
SMOKE_SPACE = [
    "space.alpha=[2, 4]",
    "space.beta_inv=[8]",
    "space.fusion=[time_to_channel, time_strided_sampling, time_strided_conv]",
    "space.fast_input=[rgb]",
    "space.slow_only=false",
    "search.mode=random",
    "search.num_samples=4",
    "search.seed=0",
    "search.max_concurrent=1",
]
#: Train settings added to jobs.smoke's for the sweep: width 16 so beta 1/16 is valid, one epoch.
SMOKE_TRAIN = [
    "model.overrides.width=16",
    "train.epochs=1",
    "eval.after_training=false",
    "mlflow.log_model=false",
]


@dataclass
class SweepOutcome:
    """What a finished sweep produced."""

    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_config_path: str | None
    experiment_path: str
    parent_run_id: str | None
    tracking_uri: str | None
    errors: list[str]
    interrupted: int = 0


@dataclass(frozen=True)
class PreparedPoint:
    point: Point
    job: TrainJobConfig
    gflops: float
    params: int


# ----------------------------------------------------------------------------- trial side


def run_trial(
    config: dict[str, Any],
    *,
    base: dict[str, Any],
    train_root: str,
    sweep: str,
    tracking_uri: str | None,
    parent_run_id: str | None,
) -> None:
    """Tune trainable: one Ray Train run for ``config["point"]``, reported to Tune per epoch."""
    import ray.data
    import ray.tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from jobs import tracking
    from jobs.train import run_training
    from raysf.config import build

    ray.data.DataContext.get_current().enable_progress_bars = False
    point = Point(**config["point"])
    job = trial_job(build(TrainJobConfig, base), point, train_root, sweep)
    if not tracking_uri:
        job = replace(job, mlflow=replace(job.mlflow, enabled=False))
    job = replace(job, mlflow=replace(job.mlflow, tracking_uri=tracking_uri))
    run_id = None
    if tracking_uri:
        # run_training finds this run again through the same run key (resume=True).
        run_id = tracking.start_run(
            tracking_uri,
            job.mlflow.experiment,
            job.mlflow.run_name,
            run_key=job.storage.name,
            parent_run_id=parent_run_id,
            resume=True,
        )
        ctx = ray.tune.get_context()
        params = {"tune.trial_id": ctx.get_trial_id(), "tune.key": point.key}
        params.update({f"tune.{k}": v for k, v in point.dims.items()})
        params["tune.label"] = point.label
        tracking.log_params(tracking_uri, run_id, params)
    try:
        run_training(job, callbacks=[TuneReportCallback()])
    except BaseException:
        if run_id:
            tracking.get_client(tracking_uri).set_terminated(run_id, "FAILED")
        raise
    if run_id:
        tracking.get_client(tracking_uri).set_terminated(run_id, "FINISHED")


# ----------------------------------------------------------------------------- driver side


def prepare(cfg: TuneJobConfig, source: str = "tune config"):
    """Base job, tracking URI, class count and every selected point validated, with its cost."""
    from jobs import tracking
    from jobs.train import count_split, model_summary, read_manifest

    base = base_train_job(cfg, source)
    tracking_uri = None
    if base.mlflow.enabled:
        tracking_uri = tracking.resolve_tracking_uri(base.mlflow.tracking_uri)
    manifest = read_manifest(resolve_path(base.data.dataset), base.data.endpoint_url)
    num_classes = len(manifest["classes"])
    n_train = count_split(manifest, base.data.train_split)
    if n_train < base.train.batch_size * base.scaling.num_workers:
        raise ConfigError(
            f"{source}: train.train.batch_size: the train split has {n_train} clips, fewer than "
            "one global batch"
        )
    points = select_points(make_points(cfg.space, base), cfg.search)
    train_root = _train_root(cfg)
    prepared, seen = [], set()
    for point in points:
        if point.key in seen:
            raise ConfigError(f"{source}: space: two trials share the key {point.key!r}")
        seen.add(point.key)
        job = trial_job(base, point, train_root, cfg.sweep.name)
        model_cfg = check_point(job, point, num_classes, source)
        info = model_summary(model_cfg, job.data.crop_size)
        prepared.append(PreparedPoint(point, job, info["gflops"], int(info["params"])))
    return base, tracking_uri, prepared


def _storage_root(cfg: TuneJobConfig) -> str:
    return resolve_path(cfg.sweep.storage_path).rstrip("/")


def _train_root(cfg: TuneJobConfig) -> str:
    """Ray Train runs of the trials live in the sweep's experiment folder, under ``train_runs``."""
    return f"{_storage_root(cfg)}/{cfg.sweep.name}/train_runs"


def init_ray(address: str | None, num_cpus: int | None) -> None:
    """Join a cluster (``address``/``RAY_ADDRESS``) or start a local Ray with >= 4 logical CPUs."""
    import ray
    import ray.data

    if ray.is_initialized():
        return
    ray.data.DataContext.get_current().enable_progress_bars = False
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, log_to_driver=True)
        return
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path[:1]])}}
    cpus = num_cpus or max(os.cpu_count() or 1, 4)
    # The dashboard stays on: Ray Train's placement-group cleaner (which frees the workers of a
    # trial that ASHA stopped) asks the state API whether the trial's controller is alive.
    ray.init(num_cpus=cpus, runtime_env=env, log_to_driver=True)


def _max_concurrent(cfg: TuneJobConfig, base: TrainJobConfig) -> int:
    """``search.max_concurrent`` or what the cluster's CPUs hold: workers + one decode task."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 0.0)
    per_worker = base.scaling.resources_per_worker.get("CPU", 1.0)
    need = base.scaling.num_workers * per_worker + base.data.decode_cpus + cfg.search.trial_cpus
    if cpus < need:
        # Tune would start the trial and its Ray Train run would wait forever for its data.
        raise ConfigError(
            f"the Ray cluster has {cpus:g} CPUs but one trial needs {need:g} (scaling.num_workers "
            "x resources_per_worker.CPU + data.decode_cpus + search.trial_cpus); start Ray with "
            "more logical CPUs (sweep.local_num_cpus) or lower these"
        )
    return cfg.search.max_concurrent or max(1, int(cpus // need))


def _tune_storage(cfg: TuneJobConfig, base: TrainJobConfig):
    root = _storage_root(cfg)
    if root.startswith("s3://"):
        from pipelines.storage import resolve_filesystem

        fs, stripped = resolve_filesystem(root, base.storage.endpoint_url)
        return stripped, fs
    Path(root).mkdir(parents=True, exist_ok=True)
    return root, None


def build_tuner(cfg: TuneJobConfig, base, prepared, tracking_uri, parent_run_id):
    """A fresh ``Tuner`` or, when ``sweep.resume`` and the experiment exists, the restored one."""
    import ray.tune
    from ray.tune.schedulers import ASHAScheduler

    trainable = ray.tune.with_parameters(
        run_trial,
        base=to_dict(base),
        train_root=_train_root(cfg),
        sweep=cfg.sweep.name,
        tracking_uri=tracking_uri,
        parent_run_id=parent_run_id,
    )
    trainable = ray.tune.with_resources(trainable, {"CPU": cfg.search.trial_cpus})
    storage_path, storage_fs = _tune_storage(cfg, base)
    experiment = f"{storage_path}/{cfg.sweep.name}"
    if cfg.sweep.resume and ray.tune.Tuner.can_restore(experiment, storage_filesystem=storage_fs):
        print(f"[tune] resuming the sweep in {experiment}", flush=True)
        return ray.tune.Tuner.restore(
            experiment,
            trainable=trainable,
            resume_unfinished=True,
            restart_errored=cfg.sweep.retry_errored,
            storage_filesystem=storage_fs,
        )
    scheduler = None
    asha = cfg.search.asha
    # Rungs stop before the last epoch (max_t = epochs - 1, last trials not stopped): a trial
    # that reaches its last epoch always finishes its run (checkpoint, MLflow, artifacts) and is
    # never killed by the scheduler on its way out.
    if asha.enabled and base.train.epochs - 1 >= asha.grace_period:
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            max_t=base.train.epochs - 1,
            grace_period=asha.grace_period,
            reduction_factor=asha.reduction_factor,
            stop_last_trials=False,
        )
    elif asha.enabled:
        print("[tune] ASHA off: train.epochs leaves no epoch after the grace period", flush=True)
    keys = {pp.point.key for pp in prepared}
    assert len(keys) == len(prepared)
    return ray.tune.Tuner(
        trainable,
        param_space={"point": ray.tune.grid_search([pp.point.as_dict() for pp in prepared])},
        tune_config=ray.tune.TuneConfig(
            metric=cfg.search.metric,
            mode=cfg.search.mode_of_metric,
            scheduler=scheduler,
            max_concurrent_trials=_max_concurrent(cfg, base),
            trial_dirname_creator=lambda trial: _trial_dirname(
                trial.config["point"]["key"], trial.trial_id
            ),
        ),
        run_config=ray.tune.RunConfig(
            name=cfg.sweep.name,
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            failure_config=ray.tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )


def collect_rows(results, prepared: list[PreparedPoint], epochs: int) -> list[dict[str, Any]]:
    """One ablation row per point, in the sweep's order, from the ``ResultGrid``.

    Errors are kept with their message. An interrupted sweep's grid holds only the trials Tune
    had created (it expands the grid lazily, up to ``max_concurrent`` ahead): every other point
    is reported as a trial not run yet.
    """
    by_key = {pp.point.key: pp for pp in prepared}
    found: dict[str, dict[str, Any]] = {}
    for result in results:
        key = _result_key(result)
        if key not in by_key:
            continue
        metrics = result.metrics or {}
        done_epochs = int(metrics["epoch"]) + 1 if "epoch" in metrics else 0
        error = _trial_error(result)
        if error:
            status = "error"
        elif done_epochs == 0:
            status = "not run"  # the sweep was interrupted before this trial reported
        elif done_epochs < epochs:
            status = "stopped early"
        else:
            status = "finished"
        found[key] = _row(by_key[key], metrics, done_epochs, status, error)
    return [found.get(pp.point.key) or _row(pp, {}, 0, "not run", None) for pp in prepared]


def _trial_dirname(key: str, trial_id: str) -> str:
    """A trial's folder: ``<point key>_<trial id>`` (Tune's trial ids look like ``1f2e3_00001``)."""
    return f"{key}_{trial_id}"


def _result_key(result) -> str | None:
    """The point of a trial's result: from its config, else from its folder (``_trial_dirname``).

    A trial that failed before its first report, in an earlier session of a resumed sweep,
    comes back from ``Tuner.restore`` without a config.
    """
    key = (result.config or {}).get("point", {}).get("key")
    if key is None and result.path:
        key = result.path.rstrip("/").rsplit("/", 1)[-1].rsplit("_", 2)[0]
    return key


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _trial_error(result) -> str | None:
    """The first line of a trial's error, or None.

    A trial that failed in an earlier session of a resumed sweep comes back from
    ``Tuner.restore`` without its error (Tune looks in the new session's staging folder); its
    ``error.pkl`` is still in the trial's storage folder, and is read from there.
    """
    error = result.error
    if error is None and result.path and not (result.metrics or {}).get("done"):
        error = _stored_error(result.filesystem, result.path)
    if error is None:
        return None
    cause = getattr(error, "cause", None)  # a RayTaskError wraps the trial's own exception
    if isinstance(cause, BaseException):
        error = cause
    lines = [ln.strip() for ln in _ANSI.sub("", str(error)).splitlines() if ln.strip()] or [""]
    message, rest = lines[0], lines[1:]
    while message.endswith(":") and rest:  # "Training failed due to worker errors:" ...
        message = f"{message} {rest.pop(0)}"
    return f"{type(error).__name__}: {message}"[:300]


def _stored_error(filesystem, trial_path: str) -> BaseException | None:
    import pickle

    import pyarrow.fs

    fs = filesystem or pyarrow.fs.LocalFileSystem()
    try:
        with fs.open_input_stream(f"{trial_path}/error.pkl") as stream:
            error = pickle.loads(stream.read())  # written by Tune into this sweep's own storage
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    return error if isinstance(error, BaseException) else RuntimeError(str(error))


def _row(pp: PreparedPoint, metrics: dict, epochs: int, status: str, error: str | None) -> dict:
    return {
        "key": pp.point.key,
        "configuration": pp.point.label,
        **pp.point.dims,
        "top1": metrics.get("val_top1"),
        "top5": metrics.get("val_top5"),
        "gflops": pp.gflops,
        "params": pp.params,
        "epochs": epochs,
        "status": status,
        "error": error,
        "trial_id": metrics.get("trial_id"),
        "mlflow_run_id": None,
    }


def exported_job(best: PreparedPoint, base: TrainJobConfig, sweep: str) -> TrainJobConfig:
    """The best trial's config for a full ``jobs.train`` run (base storage, its own run name)."""
    job = best.job
    storage = replace(base.storage, name=f"{sweep}-best")
    mlflow = replace(job.mlflow, run_name=f"{sweep}-best")
    return replace(job, storage=storage, mlflow=mlflow, resume=base.resume)


def run_sweep(
    cfg: TuneJobConfig, *, address: str | None = None, source: str = "tune config"
) -> SweepOutcome:
    """Validate every point, run the Tuner, write and log the summary; returns the rows."""
    import tempfile

    from jobs import tracking

    if not cfg.sweep.resume:
        # A fresh sweep never meets the runs of an earlier one of the same name.
        stamp = time.strftime("%Y%m%d-%H%M%S")
        cfg = replace(cfg, sweep=replace(cfg.sweep, name=f"{cfg.sweep.name}-{stamp}"))
    base, tracking_uri, prepared = prepare(cfg, source)
    init_ray(address, cfg.sweep.local_num_cpus)
    print(f"[tune] {len(prepared)} trials: {[pp.point.key for pp in prepared]}", flush=True)
    parent_run_id = None
    if tracking_uri:
        tracking.check_reachable(tracking_uri)
        parent_run_id = tracking.start_run(
            tracking_uri,
            base.mlflow.experiment,
            cfg.sweep.name,
            run_key=PARENT_KEY_PREFIX + cfg.sweep.name,
            resume=cfg.sweep.resume,
        )
        params = {f"sweep.{k}": v for k, v in flatten(to_dict(cfg)).items() if k != "train"}
        params["sweep.num_trials"] = len(prepared)
        params["sweep.trial_keys"] = ",".join(pp.point.key for pp in prepared)
        tracking.log_params(tracking_uri, parent_run_id, params)

    start = time.time()
    results = build_tuner(cfg, base, prepared, tracking_uri, parent_run_id).fit()
    rows = collect_rows(results, prepared, base.train.epochs)
    errors = [f"{r['key']}: {r['error']}" for r in rows if r["error"]]
    interrupted = sum(r["status"] == "not run" for r in rows)
    if tracking_uri:
        _link_child_runs(tracking_uri, base.mlflow.experiment, cfg.sweep.name, rows)

    storage_root = _storage_root(cfg)
    local_out = None if storage_root.startswith("s3://") else f"{storage_root}/{cfg.sweep.name}"
    out_dir = Path(local_out or tempfile.mkdtemp(prefix="tune-summary-")) / "summary"
    paths = write_summary(rows, out_dir)
    best = best_row(rows)
    best_path = None
    if best is not None:
        chosen = next(pp for pp in prepared if pp.point.key == best["key"])
        best_path = cfg.sweep.export_path or str(out_dir / "best_train.yaml")
        Path(best_path).parent.mkdir(parents=True, exist_ok=True)
        header = (
            f"# Best configuration of sweep {cfg.sweep.name!r}: {best['configuration']} "
            f"(val top-1 {best['top1']:.3f}).\n# Train it: python -m jobs.train {best_path}\n"
        )
        Path(best_path).write_text(header + dump_yaml(exported_job(chosen, base, cfg.sweep.name)))
    if tracking_uri and parent_run_id:
        client = tracking.get_client(tracking_uri)
        for path in paths.values():
            client.log_artifact(parent_run_id, str(path))
        if best_path:
            client.log_artifact(parent_run_id, best_path)
        summary = {
            "num_trials": len(rows),
            "num_errors": len(errors),
            "sweep_minutes": (time.time() - start) / 60,
        }
        if best is not None:
            summary.update({"best_top1": best["top1"], "best_gflops": best["gflops"]})
            client.set_tag(parent_run_id, "best_configuration", best["configuration"])
        tracking.log_metrics(tracking_uri, parent_run_id, summary, step=0)
        if interrupted:
            client.set_tag(parent_run_id, "sweep.status", "interrupted")
        else:
            client.set_terminated(parent_run_id, "FINISHED")
    if interrupted:
        print(
            f"[tune] interrupted with {interrupted} trial(s) not run; run the same command with "
            f"sweep.name={cfg.sweep.name} sweep.resume=true to finish it",
            flush=True,
        )
    return SweepOutcome(
        rows=rows,
        best=best,
        best_config_path=best_path,
        experiment_path=f"{storage_root}/{cfg.sweep.name}",
        parent_run_id=parent_run_id,
        tracking_uri=tracking_uri,
        errors=errors,
        interrupted=interrupted,
    )


def _link_child_runs(tracking_uri: str, experiment: str, sweep: str, rows) -> None:
    """Fill ``mlflow_run_id`` of each row; runs of trials that ASHA stopped are marked KILLED."""
    from jobs import tracking

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


# ----------------------------------------------------------------------------- entry points


def smoke_overrides(user_overrides: list[str]) -> list[str]:
    """Sweep overrides for ``--smoke-test``: jobs.smoke's tiny training run, 4 trials."""
    from jobs.smoke import SMOKE_ROOT, smoke_train_overrides

    prefix = "train.data.dataset="
    given = [o[len("train.") :] for o in user_overrides if o.startswith(prefix)]
    train = smoke_train_overrides(given) + SMOKE_TRAIN
    return [
        *(f"train.{o}" for o in train),
        *SMOKE_SPACE,
        "sweep.name=smoke",
        "sweep.resume=false",
        f"sweep.storage_path={SMOKE_ROOT.absolute() / 'tune'}",
        *user_overrides,
    ]


def run_demo_sweep(
    dataset_uri: str,
    *,
    train_overrides: list[str] | tuple[str, ...] = (),
    sweep_overrides: list[str] | tuple[str, ...] = (),
    storage_path: str = "demo_output/tune",
    name: str = "demo-ablation",
) -> list[dict[str, Any]]:
    """The README demo's small sweep: fusions and the Slow-only baseline on ``dataset_uri``.

    ``train_overrides`` are dotted keys of the training config (as for ``jobs.train``, e.g. the
    demo's ``DEMO_TRAIN``); ``sweep_overrides`` are keys of ``jobs/tune.yaml``. Prints the
    ablation table and returns its rows (see :mod:`jobs.tune_report`).
    """
    overrides = [
        f"train.data.dataset={dataset_uri}",
        "train.model.preset=slowfast_tiny",
        *(f"train.{o}" for o in train_overrides),
        "space.alpha=[4]",
        "space.beta_inv=[4]",
        "space.fast_input=[time_diff]",
        "space.fusion=[none, time_to_channel, time_strided_sampling, time_strided_conv]",
        "space.slow_only=true",
        # every trial gets the same epochs: with 4-5 short trials, ASHA's rungs would compare
        # 1-epoch against 4-epoch results in the table
        "search.asha.enabled=false",
        f"sweep.storage_path={Path(storage_path).absolute()}",
        f"sweep.name={name}",
        "sweep.resume=false",
        *sweep_overrides,
    ]
    cfg = load_tune_config(DEFAULT_CONFIG, overrides)
    outcome = run_sweep(cfg, source=str(DEFAULT_CONFIG))
    print(format_table(outcome.rows), flush=True)
    return outcome.rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.tune", description=__doc__.split("\n")[0])
    add_config_arguments(parser, DEFAULT_CONFIG)
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="4 tiny trials on generated SynthMotion data (~2-3 min on 2 CPUs)",
    )
    parser.add_argument("--address", default=None, help="Ray address (default: auto/local)")
    parser.add_argument("--json", default=None, help="also write the rows and outcome here")
    return parse_config_arguments(parser, argv, DEFAULT_CONFIG)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        overrides = list(args.overrides)
        if args.smoke_test:
            # Start Ray first: generating the smoke dataset would otherwise start a smaller one.
            init_ray(args.address, None)
            overrides = smoke_overrides(overrides)
        cfg = load_tune_config(args.config, overrides)
        outcome = run_sweep(cfg, address=args.address, source=args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n" + format_table(outcome.rows) + "\n")
    for err in outcome.errors:
        print(f"[tune] trial failed: {err}", file=sys.stderr)
    print(
        json.dumps(
            {
                "best": outcome.best and outcome.best["configuration"],
                "best_config": outcome.best_config_path,
                "experiment_path": outcome.experiment_path,
                "parent_run_id": outcome.parent_run_id,
                "tracking_uri": outcome.tracking_uri,
                "errors": outcome.errors,
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": outcome.rows, "best_config": outcome.best_config_path}, indent=2)
        )
    return 0 if outcome.best is not None and not outcome.interrupted else 1


if __name__ == "__main__":
    sys.exit(main())
