"""Ingest videos into clip records with Ray Data:

    raysf ingest [CONFIG] --videos ROOT [--annotations FILE] [--format kinetics|list|folders]
        --out URI [--classes FILE] [dotted.key=value ...] [--smoke-test] [--verbose]
    raysf ingest --synth {smoke,demo,ablation} [--out ROOT]

(``python -m jobs.ingest`` is the same command; ``--config CONFIG`` is the older spelling of the
positional ``CONFIG``, default ``jobs/ingest.yaml``.)

``--synth NAME`` generates the named SynthMotion set and ingests it under ``ROOT`` (default
``demo_output/synth-NAME``; the dataset is ``ROOT/dataset``), reusing both when they exist:
the data of the smoke tests, the demo and the ablation sweeps (``jobs/ablations/``).

See :mod:`pipelines.ingest.run` and docs/data.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from dataclasses import replace

from pipelines.ingest import formats
from pipelines.ingest.config import DEFAULT_CONFIG, IngestConfig, load_ingest_config
from pipelines.ingest.run import run_ingest
from pipelines.ingest.sources import FORMATS
from pipelines.synth.dataset import (
    ABLATION_DATA,
    SMOKE_DATA,
    SynthDataset,
    ensure_synth_dataset,
    synth_flip_labels,
)
from pipelines.synth.generate import generate
from raysf import console, runtime
from raysf.clip_spec import ClipSpec
from raysf.config import with_overrides
from raysf.entry import command_parser, parse_with_config, run_command
from training.recipes.demo import DEMO_DATA

#: The SynthMotion sets ``--synth`` generates.
SYNTH_SETS: dict[str, SynthDataset] = {
    "smoke": SMOKE_DATA,
    "demo": DEMO_DATA,
    "ablation": ABLATION_DATA,
}


#: What ``--smoke-test`` does for this command.
SMOKE_HELP = "tiny SynthMotion set, smallest settings"


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = command_parser("ingest", __doc__, SMOKE_HELP, config=DEFAULT_CONFIG)
    parser.add_argument("--videos", help="video root (local path or s3:// prefix)")
    parser.add_argument("--annotations", help="annotation CSV / list file or folder")
    parser.add_argument("--format", choices=FORMATS, help="input listing format")
    parser.add_argument("--classes", help="class-name file (one per line, line i = label id i)")
    parser.add_argument("--out", help="output dataset URI (local path or s3://)")
    parser.add_argument(
        "--config", dest="config_option", help="YAML config (the positional CONFIG)"
    )
    parser.add_argument(
        "--synth",
        choices=sorted(SYNTH_SETS),
        help="generate and ingest this SynthMotion set under --out (default demo_output/synth-NAME)",
    )
    args = parse_with_config(parser, argv, DEFAULT_CONFIG)
    args.config = args.config_option or args.config
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
        flip=synth_flip_labels(3) if cfg.videos is None else cfg.flip,
        resources=replace(cfg.resources, num_cpus=2),
    )


def synth(name: str, root: str | None) -> int:
    """``--synth``: the named SynthMotion set generated and ingested under ``root``."""
    root = root or os.path.join("demo_output", f"synth-{name}")
    runtime.init_ray()
    uri = ensure_synth_dataset(root, SYNTH_SETS[name])
    manifest = runtime.read_manifest(uri)
    counts = {split: manifest.clips_in(split) for split in ("train", "val", "test")}
    console.line(json.dumps({"out": uri, "classes": manifest.num_classes, "clips": counts}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done; 2 bad config or listing; 3 incomplete (inputs failed with errors
    that may pass: rerun the same command); 1 other expected failures (too many rejects, an
    unreachable endpoint). A traceback is printed only with ``--verbose``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args, overrides = parse_args(argv)
    if args.synth:
        return run_command("ingest", args, lambda: synth(args.synth, args.out))
    return run_command("ingest", args, lambda: _ingest(args, overrides))


def _ingest(args: argparse.Namespace, overrides: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="ingest-smoke-") as tmp:
        cfg = load_ingest_config(args.config, overrides)
        if args.smoke_test:
            cfg = with_overrides(smoke_config(cfg, tmp), overrides, source="--smoke-test")
        manifest = run_ingest(cfg)
    summary = {"out": cfg.out, **manifest.counts, "formats": formats.compact(manifest.formats)}
    console.line(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
