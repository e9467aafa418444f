"""The test-view protocol on a checkpoint: ``raysf evaluate CHECKPOINT [key=value ...]``.

The ``key=value`` overrides set the fields of :class:`training.inference.evaluate.EvalRequest` (``split``,
``dataset``, ``num_crops``, ``batch_size``, ``concurrency``, ``use_gpu``, ``decode.num_cpus``,
``storage.region`` and the S3 endpoint of ``storage``), checked like a config; the flags below
are the same settings.

See :mod:`training.inference.evaluate`: every test video's uniform windows x spatial crops are scored as
Ray Data batch inference and averaged per video.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from raysf import console
from raysf.config import with_overrides
from raysf.entry import command_parser, run_command
from raysf.storage import S3Config
from training.config import load_train_config
from training.inference.evaluate import EvalRequest, evaluate_checkpoint
from training.recipes.smoke import smoke_checkpoint

TRAIN_CONFIG = Path(__file__).with_name("train.yaml")


#: What ``--smoke-test`` does for this command.
SMOKE_HELP = "train a tiny model on generated data first, then evaluate it"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_parser("evaluate", __doc__, SMOKE_HELP)
    parser.add_argument("checkpoint", nargs="?", help="checkpoint directory or state.pt (local/s3)")
    parser.add_argument("overrides", nargs="*", help="EvalRequest fields as key=value")
    parser.add_argument("--dataset", default=None, help="dataset URI (default: the training one)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-crops", type=int, default=None, choices=(1, 3))
    parser.add_argument("--concurrency", type=int, default=1, help="model actors")
    parser.add_argument("--use-gpu", action="store_true")
    parser.add_argument(
        "--endpoint-url", dest="endpoint", default=None, help="S3 endpoint for s3:// URIs"
    )
    args = parser.parse_intermixed_args(argv)
    if args.checkpoint and "=" in args.checkpoint and not os.path.exists(args.checkpoint):
        args.overrides.insert(0, args.checkpoint)
        args.checkpoint = None
    if args.checkpoint is None and not args.smoke_test:
        parser.error("CHECKPOINT is required (or --smoke-test)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command("evaluate", args, lambda: _evaluate(args))


def _evaluate(args: argparse.Namespace) -> int:
    checkpoint, dataset = args.checkpoint, args.dataset
    if checkpoint is None:
        checkpoint, dataset = smoke_checkpoint(load_train_config(TRAIN_CONFIG))
    request = EvalRequest(
        checkpoint=checkpoint,
        dataset=dataset,
        split=args.split,
        storage=S3Config(args.endpoint),
        batch_size=args.batch_size,
        num_crops=args.num_crops,
        concurrency=args.concurrency,
        use_gpu=args.use_gpu,
    )
    request = with_overrides(request, args.overrides, source="raysf evaluate")
    console.line(json.dumps(evaluate_checkpoint(request), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
