"""Top-5 predictions: ``raysf predict CHECKPOINT VIDEO... | FOLDER | DATASET_URI``.

Video files print one JSON line each; a folder or an ingested dataset (``--split``) runs as Ray
Data batch inference and writes a Parquet file (``--out``). See :mod:`training.inference.predict`.
``--timeline`` (files and folders) gives each video's per-window top-k instead, the answer of
the service's ``POST /v1/timeline`` (:mod:`training.inference.timeline`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from raysf import console
from raysf.entry import command_parser, run_command
from raysf.storage import S3Config
from training.config import load_train_config
from training.inference.evaluate import EvalRequest
from training.inference.predict import (
    ModelSource,
    add_model_source_arguments,
    failed_rows,
    is_dataset,
    load_predictor,
    predict_dataset,
    predict_folder,
    score_timeline,
    score_video,
)
from training.inference.timeline import TimelineOptions
from training.recipes.smoke import smoke_checkpoint, smoke_videos

TRAIN_CONFIG = Path(__file__).with_name("train.yaml")


#: What ``--smoke-test`` does for this command.
SMOKE_HELP = "train the tiny smoke model, then predict the smoke dataset's test videos"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_parser("predict", __doc__, SMOKE_HELP)
    parser.add_argument(
        "checkpoint", nargs="?", help="state.pt / checkpoint dir, or an external .pyth/.pth"
    )
    parser.add_argument("videos", nargs="*", help="video files, or one folder or dataset URI")
    add_model_source_arguments(parser)
    parser.add_argument("--out", default="predictions.parquet", help="Parquet (folder input)")
    parser.add_argument("--concurrency", type=int, default=1, help="model actors (folder input)")
    parser.add_argument("--split", default="test", help="split to score (dataset input)")
    parser.add_argument(
        "--endpoint-url", dest="endpoint", default=None, help="S3 endpoint (dataset input)"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="where the model runs (cuda: bf16 autocast + channels_last_3d; folder and dataset "
        "inputs get one GPU per actor)",
    )
    add_timeline_arguments(parser)
    args = parser.parse_args(argv)
    if not args.smoke_test and (args.checkpoint is None or not args.videos):
        parser.error("CHECKPOINT and VIDEO... are required (or --smoke-test)")
    try:
        args.timeline = (
            TimelineOptions(args.stride_s, args.smooth, args.top_k) if args.timeline else None
        )
    except ValueError as exc:
        parser.error(str(exc))
    return args


def add_timeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="per-window top-k over each video (files and folders), as POST /v1/timeline",
    )
    parser.add_argument(
        "--stride-s", type=float, default=None, help="seconds between windows (default: a span)"
    )
    parser.add_argument("--smooth", type=int, default=1, help="windows in the moving average")
    parser.add_argument("--top-k", type=int, default=5, help="labels per window")


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 every video scored; 1 some video files failed (their JSON lines or rows
    carry ``error``, the others are written) or another expected failure (one line, the
    traceback with ``--verbose``); 2 bad arguments or an unreadable checkpoint."""
    args = parse_args(argv)
    return run_command("predict", args, lambda: _predict(args))


def _predict(args: argparse.Namespace) -> int:
    if args.smoke_test:
        args.checkpoint, dataset = smoke_checkpoint(load_train_config(TRAIN_CONFIG))
        args.videos = args.videos or sorted(str(p) for p in smoke_videos(dataset))[:3]
    model = ModelSource.from_args(args)
    target = args.videos[0] if len(args.videos) == 1 else None
    if target is not None and is_dataset(target):
        if args.timeline:
            raise ValueError("--timeline scores video files and folders, not datasets")
        request = EvalRequest(
            checkpoint=args.checkpoint,
            dataset=target,
            split=args.split,
            storage=S3Config(args.endpoint),
            concurrency=args.concurrency,
            use_gpu=args.device == "cuda",
        )
        n = predict_dataset(request, args.out)
        return _written(n, args.out)
    if target is not None and os.path.isdir(target):
        n = predict_folder(
            model,
            target,
            args.out,
            concurrency=args.concurrency,
            use_gpu=args.device == "cuda",
            timeline=args.timeline,
        )
        return _written(n, args.out)
    return _predict_files(load_predictor(model, args.device), args.videos, args.timeline)


def _predict_files(predictor, videos: list[str], timeline: TimelineOptions | None) -> int:
    """One JSON line per video (its top-5, or its timeline); 1 when some failed."""
    failures = 0
    for video in videos:
        if timeline is not None:
            scored = score_timeline(predictor, video, timeline)
            line = scored["timeline"] or {"video": video}
        else:
            scored = score_video(predictor, video)
            top5 = [{"label": label, "score": round(score, 4)} for label, score in scored["top5"]]
            line = {"video": video, "top5": top5}
        if scored["error"]:
            failures += 1
            line["error"] = scored["error"]
        console.line(json.dumps(line))
    return 1 if failures else 0


def _written(n: int, out: str) -> int:
    failed = failed_rows(out)
    note = f" ({failed} failed: see their error column)" if failed else ""
    console.line(f"wrote {n} predictions to {out}{note}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
