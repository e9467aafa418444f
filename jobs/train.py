"""Train SlowFast with Ray Train DDP: ``python -m jobs.train jobs/train.yaml [key=value ...]``.

Locally this starts a Ray instance; under ``ray job submit`` (or with ``RAY_ADDRESS`` set) it
joins the cluster. The driver validates the config, checks that MLflow is reachable, builds the
streaming datasets, runs ``TorchTrainer`` and, after training, evaluates the final checkpoint with
the 10x3-view protocol and logs everything to MLflow.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from jobs.checkpoints import Preprocessing, load_state
from jobs.config import TrainJobConfig, load_train_config, resolve_path
from raysf.config import (
    ConfigError,
    add_config_arguments,
    flatten,
    parse_config_arguments,
    to_dict,
)

DEFAULT_CONFIG = Path(__file__).with_name("train.yaml")


@dataclass
class TrainOutcome:
    """What a finished training run produced."""

    checkpoint_uri: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    mlflow_run_id: str | None
    tracking_uri: str | None
    model_info: dict[str, float]
    test_metrics: dict[str, float] | None = None


def read_manifest(dataset_uri: str, endpoint_url: str | None = None) -> dict[str, Any]:
    from pipelines.manifest import read_manifest as _read

    return _read(dataset_uri, endpoint_url=endpoint_url)


def class_names(manifest: dict[str, Any]) -> list[str]:
    classes = sorted(manifest["classes"], key=lambda c: c["label_id"])
    return [c["name"] for c in classes]


def preprocessing_of(job: TrainJobConfig, model_cfg) -> Preprocessing:
    return Preprocessing(
        slow_frames=model_cfg.slow_frames,
        tau=job.data.tau or model_cfg.default_tau,
        alpha=model_cfg.alpha,
        rule=job.data.rule,
        target_fps=job.data.target_fps,
        mean=tuple(job.data.mean),
        std=tuple(job.data.std),
        crop_size=job.data.crop_size,
        short_side_range=tuple(job.data.short_side_range),
        test_short_side=job.data.test_short_side,
        num_test_crops=job.data.num_test_crops,
    )


def build_model_config(job: TrainJobConfig, num_classes: int):
    import slowfast_model

    overrides = dict(job.model.overrides)
    overrides.setdefault("num_classes", num_classes)
    return slowfast_model.get_config(job.model.preset, **overrides)


def model_summary(model_cfg, crop_size: int) -> dict[str, float]:
    """Parameter count and GFLOPs per view at the training crop size."""
    import slowfast_model

    model = slowfast_model.build_model(model_cfg)
    params = sum(p.numel() for p in model.parameters())
    gflops = slowfast_model.count_flops(model, crop=crop_size)
    return {"params": float(params), "gflops": float(gflops)}


def build_datasets(job: TrainJobConfig, prep: Preprocessing) -> dict[str, Any]:
    from pipelines.loader import build_clip_dataset

    common = dict(
        slow_frames=prep.slow_frames,
        tau=prep.tau,
        alpha=prep.alpha,
        rule=prep.rule,
        target_fps=prep.target_fps,
        crop_size=prep.crop_size,
        short_side_range=prep.short_side_range,
        test_short_side=prep.test_short_side,
        decode_num_cpus=job.data.decode_cpus,
        decode_batch_size=job.data.decode_batch_size,
        resources=job.data.decode_resources or None,
        filesystem=dataset_filesystem(job.data.dataset, job.data.endpoint_url),
    )
    dataset = resolve_path(job.data.dataset)
    train = build_clip_dataset(
        dataset, split=job.data.train_split, mode="train", flip=job.data.flip, **common
    )
    val = build_clip_dataset(dataset, split=job.data.val_split, mode="val", **common)
    cols = ["slow", "fast", "label"]
    return {"train": train.select_columns(cols), "val": val.select_columns(cols)}


def dataset_filesystem(uri: str, endpoint_url: str | None):
    """pyarrow filesystem for a dataset URI (S3 endpoint from the config or AWS env vars)."""
    from pipelines.storage import resolve_filesystem

    return resolve_filesystem(resolve_path(uri), endpoint_url)[0]


def count_split(manifest: dict[str, Any], split: str) -> int:
    """Clip records of ``split`` according to the dataset manifest."""
    return int(manifest.get("per_split", {}).get(split, {}).get("clips", 0))


def _storage(job: TrainJobConfig):
    path = resolve_path(job.storage.path)
    if path.startswith("s3://"):
        from pipelines.storage import resolve_filesystem

        fs, stripped = resolve_filesystem(path, endpoint_url=job.storage.endpoint_url)
        return stripped, fs
    Path(path).mkdir(parents=True, exist_ok=True)
    return path, None


def run_name_of(job: TrainJobConfig) -> str:
    name = job.storage.name or (job.mlflow.run_name or job.model.preset)
    if not job.resume:
        name = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return name


def init_ray(address: str | None = None) -> None:
    """Join the cluster (``RAY_ADDRESS``, ``ray job submit``, ``--address``) or start a local Ray."""
    import ray

    if ray.is_initialized():
        return
    import ray.data

    # One line per epoch from the workers is the training log; Ray Data's per-operator progress
    # bars would interleave with it from several datasets at once.
    ray.data.DataContext.get_current().enable_progress_bars = False
    import os

    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path[:1] + [str(Path.cwd())])}}
    ray.init(address=address, runtime_env=env if address is None else None, log_to_driver=True)


def run_training(
    job: TrainJobConfig,
    *,
    address: str | None = None,
    evaluate_after: bool | None = None,
    callbacks: list | None = None,
    metrics_log: str | None = None,
) -> TrainOutcome:
    """Run the whole job: checks, datasets, TorchTrainer, artifacts, evaluation.

    ``metrics_log``: also write every worker's per-epoch report to this JSON-lines file
    (:class:`jobs.callbacks.MetricsLogCallback`); ``callbacks``: extra Ray Train callbacks.
    """
    import ray.train
    from ray.train.torch import TorchTrainer

    from jobs import tracking

    tracking_uri = None
    if job.mlflow.enabled:
        tracking_uri = tracking.resolve_tracking_uri(job.mlflow.tracking_uri)
        tracking.check_reachable(tracking_uri)

    from pipelines.storage import check_s3_endpoint

    check_s3_endpoint(job.data.dataset, job.data.endpoint_url)
    check_s3_endpoint(job.storage.path, job.storage.endpoint_url)
    manifest = read_manifest(resolve_path(job.data.dataset), job.data.endpoint_url)
    classes = class_names(manifest)
    model_cfg = build_model_config(job, len(classes))
    prep = preprocessing_of(job, model_cfg)
    info = model_summary(model_cfg, prep.crop_size)
    n_train = count_split(manifest, job.data.train_split)
    global_batch = job.train.batch_size * job.scaling.num_workers
    steps_per_epoch = max(1, n_train // global_batch)
    if job.train.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, job.train.max_steps_per_epoch)
    if n_train < global_batch:
        raise ConfigError(
            f"train split has {n_train} clips, fewer than the global batch {global_batch} "
            "(train.batch_size x scaling.num_workers)"
        )

    name = run_name_of(job)
    run_id = None
    if tracking_uri:
        run_id = tracking.start_run(
            tracking_uri,
            job.mlflow.experiment,
            job.mlflow.run_name or name,
            run_key=name,
            resume=job.resume,
        )
        params = flatten(to_dict(job))
        params.update({f"model.resolved.{k}": v for k, v in asdict(model_cfg).items()})
        params.update(
            {
                "model.gflops": round(info["gflops"], 4),
                "model.params": int(info["params"]),
                "train.global_batch": global_batch,
                "optim.peak_lr": job.optim.base_lr * global_batch / job.optim.reference_batch,
            }
        )
        tracking.log_params(tracking_uri, run_id, params)

    init_ray(address)
    init_state = _pretrained_state(job, model_cfg)
    storage_path, storage_fs = _storage(job)
    trainer = TorchTrainer(
        train_loop_per_worker=_train_func(),
        train_loop_config={
            "job": job,
            "job_dict": to_dict(job),
            "model_config": asdict(model_cfg),
            "preprocessing": prep,
            "classes": classes,
            "steps_per_epoch": steps_per_epoch,
            "tracking_uri": tracking_uri,
            "mlflow_run_id": run_id,
            "init_state": init_state,
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=job.scaling.num_workers,
            use_gpu=job.scaling.use_gpu,
            resources_per_worker=dict(job.scaling.resources_per_worker) or None,
            placement_strategy=job.scaling.placement_strategy,
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            failure_config=ray.train.FailureConfig(max_failures=job.failure.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=job.checkpoint.keep),
            callbacks=_callbacks(callbacks, metrics_log),
        ),
        datasets=build_datasets(job, prep),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")
    ckpt_uri = result.checkpoint.path
    if storage_fs is not None:
        ckpt_uri = "s3://" + ckpt_uri.lstrip("/")
    history = _history(result)
    metrics = dict(result.metrics or {})
    outcome = TrainOutcome(ckpt_uri, metrics, history, run_id, tracking_uri, info)

    if tracking_uri and run_id:
        from jobs.artifacts import log_training_artifacts

        log_training_artifacts(tracking_uri, run_id, job, ckpt_uri, log_model=job.mlflow.log_model)
    do_eval = job.eval.after_training if evaluate_after is None else evaluate_after
    if do_eval:
        from jobs.evaluate import evaluate_checkpoint

        outcome.test_metrics = evaluate_checkpoint(
            ckpt_uri,
            dataset=resolve_path(job.data.dataset),
            split=job.data.test_split,
            endpoint_url=job.data.endpoint_url,
            batch_size=job.eval.batch_size,
            num_crops=job.eval.num_crops,
            tracking_uri=tracking_uri,
            run_id=run_id,
            decode_cpus=job.data.decode_cpus,
        )
    return outcome


def _callbacks(callbacks: list | None, metrics_log: str | None) -> list:
    out = list(callbacks or [])
    if metrics_log:
        from jobs.callbacks import MetricsLogCallback

        out.append(MetricsLogCallback(str(Path(metrics_log).absolute())))
    return out


def _train_func():
    from jobs.train_loop import train_func

    return train_func


def _history(result) -> list[dict[str, Any]]:
    df = getattr(result, "metrics_dataframe", None)
    if df is None:
        return []
    return df.to_dict(orient="records")


def _pretrained_state(job: TrainJobConfig, model_cfg):
    """Load and convert a pretrained checkpoint on the driver (new heads are left out)."""
    if job.model.pretrained is None:
        return None
    import slowfast_model

    pre = job.model.pretrained
    model = slowfast_model.build_model(model_cfg)
    path = resolve_path(pre.path)
    if pre.source == "raysf":
        slowfast_model.load_pretrained(
            model, load_state(path).model, source="ours", skip_head=pre.skip_head
        )
    else:
        slowfast_model.load_pretrained(model, path, source=pre.source, skip_head=pre.skip_head)
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.train", description=__doc__.split("\n")[0]
    )
    add_config_arguments(parser, DEFAULT_CONFIG)
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="smallest real run on generated SynthMotion data (~2 min on 2 CPUs)",
    )
    parser.add_argument("--address", default=None, help="Ray address (default: auto/local)")
    parser.add_argument(
        "--metrics-log",
        default=None,
        help="append every worker's per-epoch report to this JSON-lines file",
    )
    return parse_config_arguments(parser, argv, DEFAULT_CONFIG)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        overrides = list(args.overrides)
        if args.smoke_test:
            from jobs.smoke import smoke_train_overrides

            init_ray(args.address)  # the smoke data's ingest runs on the same Ray as training
            overrides = smoke_train_overrides(overrides)
        job = load_train_config(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outcome = run_training(job, address=args.address, metrics_log=args.metrics_log)
    summary = {
        "checkpoint": outcome.checkpoint_uri,
        "val_top1": outcome.metrics.get("val_top1"),
        "val_top5": outcome.metrics.get("val_top5"),
        "test": outcome.test_metrics,
        "mlflow_run_id": outcome.mlflow_run_id,
        "tracking_uri": outcome.tracking_uri,
        **outcome.model_info,
    }
    print(json.dumps(summary, indent=2, default=str))
    return 0


def replace_job(job: TrainJobConfig, **sections) -> TrainJobConfig:
    """Copy of ``job`` with whole sections replaced (used by the demo and the sweep)."""
    return replace(job, **sections)


if __name__ == "__main__":
    sys.exit(main())
