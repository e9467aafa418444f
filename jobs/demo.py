"""The README's main command (``make demo``): SynthMotion -> Ray Data ingest -> Ray Train of
SlowFast and Slow-only -> test-view evaluation -> a Ray Tune ablation -> MLflow.

See :mod:`training.demo` for the steps and their sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from training.config import load_train_config
from training.demo import DemoOptions, run_demo
from training.tune.config import load_tune_config

HERE = Path(__file__).parent


def parse_options(argv: list[str] | None = None) -> tuple[DemoOptions, str | None]:
    """The demo's options and the optional ``--json`` path, from the command line."""
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="override the demo's epochs")
    parser.add_argument("--videos-per-class", type=int, default=None)
    parser.add_argument(
        "--sweep-epochs",
        type=int,
        default=4,
        help="epochs per trial of the ablation sweep (0 skips the sweep)",
    )
    parser.add_argument(
        "--train-profile",
        action="store_true",
        help="ingest the videos with the training re-encode profile (reencode.profile=train)",
    )
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    options = DemoOptions(
        args.epochs, args.videos_per_class, args.sweep_epochs, train_profile=args.train_profile
    )
    return options, args.json


def main(argv: list[str] | None = None) -> int:
    options, json_path = parse_options(argv)
    start = time.time()
    train = load_train_config(HERE / "train.yaml")
    tune = load_tune_config(HERE / "tune.yaml")
    rows = run_demo(train, tune, options)
    print(f"[demo] finished in {(time.time() - start) / 60:.1f} min")
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
