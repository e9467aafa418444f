"""Export a checkpoint for serving: ``raysf export CHECKPOINT --format FORMAT [--out PATH]``.

Formats: ``torchscript``, ``exported-program`` (``torch.export``) and ``onnx`` (the ``onnx``
extra). The model takes the normalised ``slow`` and ``fast`` tensors and returns logits; the clip
spec, the classes and the input shapes go beside it in ``PATH.json``. See
:mod:`training.inference.export`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from raysf import console
from raysf.entry import command_parser, run_command
from training.config import load_train_config
from training.inference.export import FORMATS, export_checkpoint
from training.recipes.smoke import smoke_checkpoint

TRAIN_CONFIG = Path(__file__).with_name("train.yaml")


#: What ``--smoke-test`` does for this command.
SMOKE_HELP = "train the tiny smoke model first, then export it"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_parser("export", __doc__, SMOKE_HELP)
    parser.add_argument(
        "checkpoint", nargs="?", help="checkpoint directory or state.pt (local or s3://)"
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    parser.add_argument(
        "--out", default=None, help="model file (default: <preset><suffix> in this folder)"
    )
    args = parser.parse_args(argv)
    if args.checkpoint is None and not args.smoke_test:
        parser.error("CHECKPOINT is required (or --smoke-test)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_command("export", args, lambda: _export(args))


def _export(args: argparse.Namespace) -> int:
    """Exit codes: 0 exported; 2 the checkpoint cannot be exported in that format (unreadable,
    or the exporter failed on it)."""
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint, _ = smoke_checkpoint(load_train_config(TRAIN_CONFIG))
    try:
        result = export_checkpoint(checkpoint, args.format, args.out)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        console.error(f"error: {exc}")
        return 2
    console.line(
        f"exported {checkpoint} as {result.format}: {result.path} (max |logit - eager| "
        f"{result.max_abs_diff:.2g}); clip spec and classes in {result.metadata_path}"
    )
    console.line(json.dumps({k: str(v) for k, v in asdict(result).items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
