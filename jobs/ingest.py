"""Ingest videos into clip records with Ray Data:

    python -m jobs.ingest --videos ROOT [--annotations FILE] [--format kinetics|list|folders]
        --out URI [--config jobs/ingest.yaml] [--classes FILE] [dotted.key=value ...]
        [--smoke-test]

See :mod:`pipelines.ingest` and docs/data.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from dataclasses import replace

from pipelines.ingest import run_ingest
from pipelines.ingest_config import DEFAULT_CONFIG, IngestConfig, load_ingest_config
from pipelines.sources import FORMATS
from pipelines.synth import generate
from raysf.clip_spec import ClipSpec
from raysf.config import with_overrides
from raysf.errors import add_verbose_argument, run_entry_point


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m jobs.ingest", description="Ingest videos.")
    parser.add_argument("--videos", help="video root (local path or s3:// prefix)")
    parser.add_argument("--annotations", help="annotation CSV / list file or folder")
    parser.add_argument("--format", choices=FORMATS, help="input listing format")
    parser.add_argument("--classes", help="class-name file (one per line, line i = label id i)")
    parser.add_argument("--out", help="output dataset URI (local path or s3://)")
    parser.add_argument("--config", help=f"YAML config (default {DEFAULT_CONFIG})")
    parser.add_argument(
        "--smoke-test", action="store_true", help="tiny SynthMotion set, smallest settings"
    )
    add_verbose_argument(parser)
    parser.add_argument("overrides", nargs="*", help="dotted.key=value config overrides")
    args = parser.parse_intermixed_args(argv)
    overrides = []
    for key in ("videos", "annotations", "format", "classes", "out"):
        value = getattr(args, key)
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    return args, overrides + list(args.overrides)


def smoke_config(cfg: IngestConfig, tmp: str) -> IngestConfig:
    """The smallest real ingest: 3 classes x 4 generated videos unless ``--videos`` is given,
    T=4 windows, 4 videos per shard, into ``tmp`` unless ``--out`` is given."""
    videos = cfg.videos
    if videos is None:
        videos = os.path.join(tmp, "videos")
        generate(videos, classes=3, videos_per_class=4, seed=0, frames=32)
    return replace(
        cfg,
        videos=videos,
        format="kinetics" if cfg.videos is None else cfg.format,
        out=cfg.out or os.path.join(tmp, "dataset"),
        shard_size=4,
        clip=ClipSpec(slow_frames=4, tau=4, alpha=2, num_val_clips=1, num_test_clips=2),
        resources=replace(cfg.resources, num_cpus=2),
    )


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done; 2 bad config or listing; 3 incomplete (inputs failed with errors
    that may pass: rerun the same command); 1 other expected failures (too many rejects, an
    unreachable endpoint). A traceback is printed only with ``--verbose``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args, overrides = parse_args(argv)
    return run_entry_point(lambda: _ingest(args, overrides), verbose=args.verbose)


def _ingest(args: argparse.Namespace, overrides: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="ingest-smoke-") as tmp:
        cfg = load_ingest_config(args.config, overrides)
        if args.smoke_test:
            cfg = with_overrides(smoke_config(cfg, tmp), overrides, source="--smoke-test")
        manifest = run_ingest(cfg)
    print(json.dumps({"out": cfg.out, **manifest.counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
