"""SynthMotion: a tiny synthetic action dataset, real H.264 files in the Kinetics layout.

Every video shows one object (square, disc or diamond) on a static textured background with
per-frame noise. The class is the object's motion. Some classes differ only by motion with a
period of 4 or 8 *native* frames, which the Slow pathway (stride 8 or 16) cannot see because
every frame it samples falls on the same phase, while the Fast pathway (stride 2) sees it
alternate. See ``docs/data-loading.md`` ("SynthMotion") for the aliasing argument.

Output (``python -m pipelines.synth.generate --out DIR --classes K --videos-per-class N --seed S``)::

    DIR/train/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4
    DIR/val/...   DIR/test/...
    DIR/annotations/{train,val,test}.csv   # label,youtube_id,time_start,time_end,split

Everything is a function of ``--seed``: the same seed gives the same frames and, since
libx264 runs single-threaded here, the same bytes.

The pieces: :mod:`pipelines.synth.spec` (classes, motion model, random per-video spec) and
:mod:`pipelines.synth.render` (frames and H.264 bytes of a spec), re-exported here. This module
lays the dataset out on disk and is the command line.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from pipelines.synth.render import encode_mp4, render_frames
from pipelines.synth.spec import (
    ALIASING_CLASSES,
    ASPECTS,
    CLASS_NAMES,
    FRAME_RATES,
    GOP_CHOICES,
    SHAPES,
    ObjectState,
    VideoSpec,
    class_names,
    object_state,
    sample_spec,
    square_wave,
)
from raysf import display

__all__ = [
    "ALIASING_CLASSES",
    "ASPECTS",
    "CLASS_NAMES",
    "DEFAULT_SPLITS",
    "FRAME_RATES",
    "GOP_CHOICES",
    "SHAPES",
    "ObjectState",
    "SynthVideo",
    "VideoSpec",
    "class_names",
    "encode_mp4",
    "generate",
    "main",
    "object_state",
    "parse_splits",
    "render_frames",
    "sample_spec",
    "split_counts",
    "square_wave",
    "youtube_id",
]

DEFAULT_SPLITS = {"train": 0.7, "val": 0.15, "test": 0.15}


def youtube_id(seed: int, index: int) -> str:
    """Deterministic 11-character YouTube-style id (``[A-Za-z0-9_-]``)."""
    digest = hashlib.sha256(f"synthmotion:{seed}:{index}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")[:11]


def parse_splits(text: str) -> dict[str, float]:
    """Parse ``"train=0.7,val=0.15,test=0.15"``; fractions must be positive and sum to 1."""
    splits: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"splits: expected name=fraction, got {part!r}")
        splits[name.strip()] = float(value)
    if any(v < 0 for v in splits.values()) or abs(sum(splits.values()) - 1.0) > 1e-6:
        raise ValueError(f"splits fractions must be >= 0 and sum to 1, got {splits}")
    return splits


def split_counts(n: int, splits: dict[str, float]) -> dict[str, int]:
    """Per-split counts for ``n`` videos of one class (largest remainder, sums to ``n``)."""
    raw = {k: v * n for k, v in splits.items()}
    counts = {k: int(math.floor(v)) for k, v in raw.items()}
    left = n - sum(counts.values())
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[:left]:
        counts[k] += 1
    return counts


@dataclass(frozen=True)
class SynthVideo:
    """One generated file: its Kinetics annotation row plus the spec that made it."""

    path: str
    label: str
    youtube_id: str
    time_start: int
    time_end: int
    split: str
    spec: VideoSpec


def generate(
    out: str | os.PathLike,
    *,
    classes: int,
    videos_per_class: int,
    seed: int = 0,
    splits: dict[str, float] | None = None,
    frames: int = 64,
    short_side: tuple[int, int] = (64, 112),
    size: tuple[int, int] | None = None,
) -> list[SynthVideo]:
    """Write the SynthMotion dataset under ``out`` and return its videos (in file order).

    Writes ``out/<split>/<youtube_id>_<start>_<end>.mp4``, ``out/annotations/<split>.csv``
    (Kinetics columns) and ``out/synth.json`` (the arguments, for provenance).
    """
    _check_sizes(videos_per_class, frames)
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    names = class_names(classes)
    root = os.fspath(out)
    videos: list[SynthVideo] = []
    shown = display.Progress(
        f"generating SynthMotion in {display.short_path(root)}",
        classes * videos_per_class,
        "videos",
    )
    for class_id, label in enumerate(names):
        assignment = _split_assignment(videos_per_class, splits, seed, class_id)
        for k in range(videos_per_class):
            rng = np.random.default_rng([seed, class_id, k])
            spec = sample_spec(rng, label, num_frames=frames, short_side=short_side, size=size)
            vid = youtube_id(seed, len(videos))
            videos.append(_write_video(root, assignment[k], vid, spec, rng))
            shown.update(len(videos))
    shown.close()
    _write_annotations(root, splits, videos)
    arguments = {
        "dataset": "SynthMotion",
        "classes": names,
        "videos_per_class": videos_per_class,
        "seed": seed,
        "splits": splits,
        "frames": frames,
        "short_side": list(short_side),
        "size": list(size) if size else None,
    }
    _write_provenance(root, arguments, videos)
    return videos


def _check_sizes(videos_per_class: int, frames: int) -> None:
    """``ValueError`` for fewer than one video a class or fewer than 8 frames a video."""
    if videos_per_class < 1:
        raise ValueError(f"videos_per_class must be >= 1, got {videos_per_class}")
    if frames < 8:
        raise ValueError(f"frames must be >= 8, got {frames}")


def _split_assignment(n: int, splits: dict[str, float], seed: int, class_id: int) -> list[str]:
    """The split of each of the ``n`` videos of class ``class_id`` (a seeded shuffle)."""
    order = np.random.default_rng([seed, class_id, 7]).permutation(n)
    assignment: list[str] = []
    for split, count in split_counts(n, splits).items():
        assignment += [split] * count
    return [assignment[int(order[k])] for k in range(n)]


def _write_video(
    root: str, split: str, vid: str, spec: VideoSpec, rng: np.random.Generator
) -> SynthVideo:
    """Render and encode ``spec`` to ``root/<split>/<vid>_<start>_<end>.mp4``.

    ``rng`` (the video's generator, after :func:`sample_spec`) draws the clip's start time.
    """
    time_start = int(rng.integers(0, 300))
    time_end = time_start + max(1, math.ceil(spec.num_frames / spec.fps))
    name = f"{vid}_{time_start:06d}_{time_end:06d}.mp4"
    path = os.path.join(root, split, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = encode_mp4(render_frames(spec), spec.fps, gop=spec.gop, bframes=spec.bframes)
    with open(path, "wb") as f:
        f.write(data)
    return SynthVideo(path, spec.label, vid, time_start, time_end, split, spec)


def _write_annotations(root: str, splits: dict[str, float], videos: list[SynthVideo]) -> None:
    """``root/annotations/<split>.csv`` with the Kinetics columns, one row per video."""
    ann_dir = os.path.join(root, "annotations")
    os.makedirs(ann_dir, exist_ok=True)
    for split in splits:
        with open(os.path.join(ann_dir, f"{split}.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for v in videos:
                if v.split == split:
                    writer.writerow([v.label, v.youtube_id, v.time_start, v.time_end, split])


def _write_provenance(root: str, arguments: dict[str, object], videos: list[SynthVideo]) -> None:
    """``root/synth.json``: the generation arguments and every video (paths relative to root)."""
    with open(os.path.join(root, "synth.json"), "w") as f:
        json.dump(
            {
                **arguments,
                "videos": [
                    {**asdict(v), "path": os.path.relpath(v.path, root), "spec": asdict(v.spec)}
                    for v in videos
                ],
            },
            f,
            indent=1,
        )


def _parse_size(text: str) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """``"64-112"`` -> short-side range; ``"320x240"`` -> fixed (width, height)."""
    if "x" in text:
        w, h = text.lower().split("x")
        return (64, 112), (int(w), int(h))
    lo, sep, hi = text.partition("-")
    if not sep:
        return (int(lo), int(lo)), None
    return (int(lo), int(hi)), None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate a dataset (see the module docstring), print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--classes", type=int, default=6, help=f"first K of {CLASS_NAMES}")
    parser.add_argument("--videos-per-class", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", default="train=0.7,val=0.15,test=0.15")
    parser.add_argument("--frames", type=int, default=64, help="frames per video")
    parser.add_argument(
        "--size", default="64-112", help="short-side range 'MIN-MAX' or fixed 'WIDTHxHEIGHT'"
    )
    args = parser.parse_args(argv)
    short_side, size = _parse_size(args.size)
    videos = generate(
        args.out,
        classes=args.classes,
        videos_per_class=args.videos_per_class,
        seed=args.seed,
        splits=parse_splits(args.splits),
        frames=args.frames,
        short_side=short_side,
        size=size,
    )
    counts: dict[str, int] = {}
    for v in videos:
        counts[v.split] = counts.get(v.split, 0) + 1
    print(json.dumps({"out": os.fspath(args.out), "videos": len(videos), "splits": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
