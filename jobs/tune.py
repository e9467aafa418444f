"""Ablation sweeps with Ray Tune: ``python -m jobs.tune jobs/tune.yaml [key=value ...]``.

Locally this starts a Ray instance (at least 4 logical CPUs, so that a trial's driver, its
training worker and its decode tasks fit on a 2-core machine); under ``ray job submit`` or with
``RAY_ADDRESS`` set it joins the cluster. See :mod:`training.tune.sweep` and docs/tune.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from raysf import console, runtime
from raysf.config import with_overrides
from raysf.entry import command_parser, parse_with_config, run_command
from training.recipes.smoke import smoke_dataset_unless_given, smoke_sweep
from training.tune.config import TuneJobConfig, load_tune_config
from training.tune.report import format_aggregate_table, format_table
from training.tune.sweep import SweepOutcome, run_sweep

DEFAULT_CONFIG = Path(__file__).with_name("tune.yaml")


#: What ``--smoke-test`` does for this command.
SMOKE_HELP = "4 tiny trials on generated SynthMotion data (~2-3 min on 2 CPUs)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_parser("tune", __doc__, SMOKE_HELP, config=DEFAULT_CONFIG, address=True)
    parser.add_argument("--json", default=None, help="also write the rows and outcome here")
    return parse_with_config(parser, argv, DEFAULT_CONFIG)


def load_sweep(args: argparse.Namespace) -> TuneJobConfig:
    """The typed sweep: the YAML, the smoke settings with ``--smoke-test``, the overrides last."""
    overrides = list(args.overrides)
    if not args.smoke_test:
        return load_tune_config(args.config, overrides)
    # Start Ray first: generating the smoke dataset would otherwise start a smaller one.
    runtime.init_ray(args.address, num_cpus=runtime.local_cpus(4))
    dataset = smoke_dataset_unless_given(overrides, key="train.data.dataset")
    cfg = smoke_sweep(load_tune_config(args.config), dataset)
    return with_overrides(cfg, overrides, source=str(args.config))


def print_outcome(outcome: SweepOutcome) -> None:
    console.line("\n" + format_table(outcome.rows) + "\n")
    if outcome.aggregated is not None:
        console.line(format_aggregate_table(outcome.aggregated) + "\n")
    for err in outcome.errors:
        console.error(f"[tune] trial failed: {err}")
    summary = {
        "best": outcome.best and outcome.best["configuration"],
        "best_config": outcome.best_config_path,
        "experiment_path": outcome.experiment_path,
        "parent_run_id": outcome.parent_run_id,
        "tracking_uri": outcome.tracking_uri,
        "errors": outcome.errors,
    }
    console.line(json.dumps(summary, indent=2, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command("tune", args, lambda: _tune(args))


def _tune(args: argparse.Namespace) -> int:
    outcome = run_sweep(load_sweep(args), address=args.address, source=args.config)
    print_outcome(outcome)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "rows": outcome.rows,
                    "aggregated": outcome.aggregated,
                    "best_config": outcome.best_config_path,
                },
                indent=2,
            )
        )
    return 0 if outcome.best is not None and not outcome.interrupted else 1


if __name__ == "__main__":
    sys.exit(main())
