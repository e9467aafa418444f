"""Train SlowFast with Ray Train DDP: ``python -m jobs.train jobs/train.yaml [key=value ...]``.

Locally this starts a Ray instance; under ``ray job submit`` (or with ``RAY_ADDRESS`` set) it
joins the cluster. See :func:`training.run.trainer.run_training` and docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from raysf import console, runtime
from raysf.config import with_overrides
from raysf.entry import command_parser, parse_with_config, run_command
from training.config import TrainJobConfig, load_train_config
from training.recipes.smoke import smoke_dataset_unless_given, smoke_train_job
from training.run.trainer import run_training

DEFAULT_CONFIG = Path(__file__).with_name("train.yaml")


#: What ``--smoke-test`` does for this command.
SMOKE_HELP = "smallest real run on generated SynthMotion data (~2 min on 2 CPUs)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_parser("train", __doc__, SMOKE_HELP, config=DEFAULT_CONFIG, address=True)
    parser.add_argument(
        "--metrics-log",
        default=None,
        help="append every worker's per-epoch report to this JSON-lines file",
    )
    return parse_with_config(parser, argv, DEFAULT_CONFIG)


def load_job(args: argparse.Namespace) -> TrainJobConfig:
    """The typed job: the YAML, the smoke settings with ``--smoke-test``, the overrides last."""
    overrides = list(args.overrides)
    if not args.smoke_test:
        return load_train_config(args.config, overrides)
    runtime.init_ray(args.address)  # the smoke data's ingest runs on the same Ray as training
    job = smoke_train_job(load_train_config(args.config), smoke_dataset_unless_given(overrides))
    return with_overrides(job, overrides, source=str(args.config))


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 trained; 2 bad config or a refused resume; 1 other expected failures
    (unreachable service, missing dataset, unplaceable workers, damaged data), printed as one
    line (the traceback with ``--verbose``); unexpected errors keep their traceback."""
    args = parse_args(argv)
    return run_command("train", args, lambda: _train(args))


def _train(args: argparse.Namespace) -> int:
    job = load_job(args)
    for note in job.notes():
        console.line(f"[train] note: {note}")
    outcome = run_training(job, address=args.address, metrics_log=args.metrics_log)
    summary = {
        "checkpoint": outcome.checkpoint_uri,
        "val_top1": outcome.metrics.get("val_top1"),
        "val_top5": outcome.metrics.get("val_top5"),
        "test": outcome.test_metrics,
        "mlflow_run_id": outcome.mlflow_run_id,
        "tracking_uri": outcome.tracking_uri,
        **asdict(outcome.model_info),
    }
    console.line(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
