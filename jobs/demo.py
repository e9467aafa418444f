"""The README's main command (``make demo``): SynthMotion -> Ray Data ingest -> Ray Train of
SlowFast and Slow-only -> test-view evaluation -> a Ray Tune ablation -> MLflow.

See :mod:`training.recipes.demo` for the steps and their sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from raysf import console
from raysf.entry import command_parser, run_command
from training.config import load_train_config
from training.recipes.demo import SMOKE_OPTIONS, DemoOptions, run_demo
from training.tune.config import load_tune_config

HERE = Path(__file__).parent


#: What ``--smoke-test`` does for this command.
SMOKE_HELP = "every step at the smallest size (6 videos per class, 1 epoch, 1-epoch trials)"


def parse_options(argv: list[str] | None = None) -> tuple[DemoOptions, argparse.Namespace]:
    """The demo's options and the parsed command line (``--json``, console flags)."""
    parser = command_parser("demo", __doc__, SMOKE_HELP)
    parser.add_argument("--epochs", type=int, default=None, help="override the demo's epochs")
    parser.add_argument("--videos-per-class", type=int, default=None)
    parser.add_argument(
        "--sweep-epochs",
        type=int,
        default=0,
        help="epochs per trial of a Ray Tune ablation of the fusions after the comparison "
        "(default 0: no sweep; 4 adds about 6 minutes on 2 CPUs)",
    )
    parser.add_argument(
        "--data-seed",
        type=int,
        default=0,
        help="SynthMotion seed (default 0; another seed checks the recipe on new videos)",
    )
    parser.add_argument(
        "--train-profile",
        action="store_true",
        help="ingest the videos with the training re-encode profile (reencode.profile=train)",
    )
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    options = DemoOptions(
        args.epochs,
        args.videos_per_class,
        args.sweep_epochs,
        train_profile=args.train_profile,
        data_seed=args.data_seed,
    )
    if args.smoke_test:
        options = replace(SMOKE_OPTIONS, train_profile=args.train_profile)
    return options, args


def main(argv: list[str] | None = None) -> int:
    options, args = parse_options(argv)
    return run_command("demo", args, lambda: _demo(options, args))


def _demo(options: DemoOptions, args: argparse.Namespace) -> int:
    start = time.time()
    rows = run_demo(
        load_train_config(HERE / "train.yaml"), load_tune_config(HERE / "tune.yaml"), options
    )
    console.line(f"[demo] finished in {(time.time() - start) / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
