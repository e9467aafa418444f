"""SynthMotion: a tiny synthetic action dataset, real H.264 files in the Kinetics layout.

Every video shows one object (square, disc or diamond) on a static textured background with
per-frame noise. The class is the object's motion. Some classes differ only by motion with a
period of 4 or 8 *native* frames, which the Slow pathway (stride 8 or 16) cannot see because
every frame it samples falls on the same phase, while the Fast pathway (stride 2) sees it
alternate. See ``docs/data-loading.md`` ("SynthMotion") for the aliasing argument.

Output (``python -m pipelines.synth --out DIR --classes K --videos-per-class N --seed S``)::

    DIR/train/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4
    DIR/val/...   DIR/test/...
    DIR/annotations/{train,val,test}.csv   # label,youtube_id,time_start,time_end,split

Everything is a function of ``--seed``: the same seed gives the same frames and, since
libx264 runs single-threaded here, the same bytes.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import av
import numpy as np

#: Fixed class order: ``--classes K`` takes the first K. The first six are the demo classes and
#: include the four that alias to "static" at any Slow stride that is a multiple of 8.
CLASS_NAMES: tuple[str, ...] = (
    "drift_right",  # moves right at constant speed: visible to Slow and Fast
    "drift_left",  # moves left: visible to Slow and Fast
    "still",  # static object
    "vibrate",  # horizontal square wave, period 4 frames (+A,+A,-A,-A): Fast only
    "vibrate_slow",  # horizontal square wave, period 8 frames (+A x4, -A x4): Fast only
    "flicker",  # colour square wave between two colours, period 4 frames: Fast only
    "grow",  # size grows linearly: visible to Slow and Fast
    "orbit",  # circular motion, period 24..48 frames: visible to Slow and Fast
)

#: Classes whose motion has a period dividing 8 native frames: at a Slow stride that is a
#: multiple of 8 the sampled frames all show the same state, so Slow-only sees "still".
ALIASING_CLASSES: tuple[str, ...] = ("vibrate", "vibrate_slow", "flicker")

SHAPES = ("square", "disc", "diamond")
FRAME_RATES = (24, 25, 30)
ASPECTS = (4 / 3, 16 / 9, 1.0, 3 / 4)
#: (keyframe interval g, max B-frames) choices: long GOPs with B-frames are common on purpose.
GOP_CHOICES = ((48, 2), (48, 3), (32, 2), (250, 2), (12, 0))
DEFAULT_SPLITS = {"train": 0.7, "val": 0.15, "test": 0.15}


@dataclass(frozen=True)
class VideoSpec:
    """Everything needed to render and encode one video (a pure function of it).

    Positions are in pixels of the top-left corner of the object's bounding box; ``size`` is
    the bounding-box side. ``phase`` shifts the square waves; ``speed`` is pixels per frame
    (drift), per-frame size growth (grow) or radians per frame (orbit).
    """

    label: str
    width: int
    height: int
    fps: int
    num_frames: int
    gop: int
    bframes: int
    shape: str
    size: int
    x0: float
    y0: float
    color: tuple[int, int, int]
    color2: tuple[int, int, int]
    amplitude: int
    phase: int
    speed: float
    noise: float
    seed: int


@dataclass(frozen=True)
class ObjectState:
    """State of the object in one frame: bounding box top-left ``(x, y)``, side, RGB colour."""

    x: int
    y: int
    size: int
    color: tuple[int, int, int]


def class_names(num_classes: int) -> list[str]:
    """The first ``num_classes`` names of :data:`CLASS_NAMES`."""
    if not 1 <= num_classes <= len(CLASS_NAMES):
        raise ValueError(f"classes must be in [1, {len(CLASS_NAMES)}], got {num_classes}")
    return list(CLASS_NAMES[:num_classes])


def square_wave(t: int, period: int, phase: int) -> int:
    """+1 for the first half of each period, -1 for the second half (integer frames)."""
    return 1 if ((t + phase) % period) < period // 2 else -1


def object_state(spec: VideoSpec, t: int) -> ObjectState:
    """The object's state at native frame ``t`` (pure: used to render and to test aliasing)."""
    x, y, size, color = spec.x0, spec.y0, spec.size, spec.color
    if spec.label == "drift_right":
        x = spec.x0 + spec.speed * t
    elif spec.label == "drift_left":
        x = spec.x0 - spec.speed * t
    elif spec.label == "vibrate":
        x = spec.x0 + spec.amplitude * square_wave(t, 4, spec.phase)
    elif spec.label == "vibrate_slow":
        x = spec.x0 + spec.amplitude * square_wave(t, 8, spec.phase)
    elif spec.label == "flicker":
        color = spec.color if square_wave(t, 4, spec.phase) > 0 else spec.color2
    elif spec.label == "grow":
        size = spec.size + spec.speed * t
    elif spec.label == "orbit":
        angle = spec.speed * t + spec.phase
        x = spec.x0 + spec.amplitude * math.cos(angle)
        y = spec.y0 + spec.amplitude * math.sin(angle)
    elif spec.label != "still":
        raise ValueError(f"unknown SynthMotion label {spec.label!r}")
    return ObjectState(int(round(x)), int(round(y)), int(round(size)), color)


def _random_color(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(30, 226, size=3))  # type: ignore[return-value]


def _contrasting_color(
    rng: np.random.Generator, other: tuple[int, int, int], min_distance: float = 120.0
) -> tuple[int, int, int]:
    """A random colour at least ``min_distance`` (RGB Euclidean) from ``other``."""
    for _ in range(100):
        color = _random_color(rng)
        if np.linalg.norm(np.subtract(color, other)) >= min_distance:
            return color
    return tuple(255 - c for c in other)


def sample_spec(
    rng: np.random.Generator,
    label: str,
    *,
    num_frames: int = 64,
    short_side: tuple[int, int] = (64, 112),
    size: tuple[int, int] | None = None,
) -> VideoSpec:
    """Draw a random :class:`VideoSpec` of class ``label``.

    Args:
        rng: the generator (one per video, derived from the dataset seed).
        num_frames: frames in the video.
        short_side: inclusive range of the short side when ``size`` is None (sides are even,
            as yuv420p requires).
        size: fixed ``(width, height)`` (rounded down to even) instead of a random short side
            and aspect.
    """
    if label not in CLASS_NAMES:
        raise ValueError(f"label must be one of {CLASS_NAMES}, got {label!r}")
    if size is None:
        short = int(rng.integers(-(-short_side[0] // 2), short_side[1] // 2 + 1)) * 2
        aspect = float(ASPECTS[int(rng.integers(len(ASPECTS)))])
        long = max(short, int(round(short * max(aspect, 1 / aspect) / 2)) * 2)
        width, height = (long, short) if aspect >= 1 else (short, long)
    else:
        width, height = int(size[0]) // 2 * 2, int(size[1]) // 2 * 2
    if min(width, height) < 32:
        raise ValueError(f"size must be at least 32 pixels on the short side, got {width}x{height}")
    short = min(width, height)
    obj = int(rng.integers(int(0.22 * short), int(0.32 * short) + 1))
    amplitude = max(4, int(round(rng.uniform(0.12, 0.18) * short)))
    speed = 0.0
    margin = amplitude + 1
    x_lo, x_hi = margin, width - obj - margin
    y_lo, y_hi = margin, height - obj - margin
    if label in ("drift_right", "drift_left"):
        travel = rng.uniform(0.4, 0.8) * (width - obj - 2)
        speed = travel / max(num_frames - 1, 1)
        x_lo, x_hi = (
            (1, width - obj - 1 - travel)
            if label == "drift_right"
            else (1 + travel, width - obj - 1)
        )
    elif label == "grow":
        grow_to = rng.uniform(1.8, 2.5) * obj
        speed = (grow_to - obj) / max(num_frames - 1, 1)
        x_hi, y_hi = width - grow_to - 1, height - grow_to - 1
        x_lo, y_lo = 1, 1
    elif label == "orbit":
        speed = 2 * math.pi / float(rng.integers(24, 49))
        amplitude = max(4, int(round(rng.uniform(0.12, 0.2) * short)))
        x_lo, x_hi = amplitude + 1, width - obj - amplitude - 1
        y_lo, y_hi = amplitude + 1, height - obj - amplitude - 1
    gop, bframes = GOP_CHOICES[int(rng.integers(len(GOP_CHOICES)))]
    color = _random_color(rng)
    return VideoSpec(
        label=label,
        width=width,
        height=height,
        fps=int(FRAME_RATES[int(rng.integers(len(FRAME_RATES)))]),
        num_frames=int(num_frames),
        gop=gop,
        bframes=bframes,
        shape=SHAPES[int(rng.integers(len(SHAPES)))],
        size=obj,
        x0=float(rng.uniform(x_lo, max(x_lo, x_hi))),
        y0=float(rng.uniform(y_lo, max(y_lo, y_hi))),
        color=color,
        color2=_contrasting_color(rng, color),
        amplitude=amplitude,
        phase=int(rng.integers(0, 8)),
        speed=float(speed),
        noise=float(rng.uniform(1.0, 4.0)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Static smooth texture: a few random plane waves per channel, float32 ``(H, W, 3)``."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 190, size=3).astype(np.float32)
    img = np.broadcast_to(base, (height, width, 3)).copy()
    for _ in range(3):
        fx, fy = rng.uniform(-0.25, 0.25, size=2)
        amp = rng.uniform(4, 12, size=3).astype(np.float32)
        wave = np.sin(fx * xx + fy * yy + rng.uniform(0, 2 * np.pi))
        img += wave[..., None] * amp
    return img


def _mask(shape: str, size: int) -> np.ndarray:
    """Boolean ``(size, size)`` mask of a square, disc or diamond."""
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    if shape == "disc":
        return (xx - c) ** 2 + (yy - c) ** 2 <= (size / 2.0) ** 2
    return np.abs(xx - c) + np.abs(yy - c) <= size / 2.0


def render_frames(spec: VideoSpec) -> np.ndarray:
    """Render the raw frames of ``spec``: uint8 ``(num_frames, height, width, 3)``."""
    rng = np.random.default_rng(spec.seed)
    background = _background(rng, spec.width, spec.height)
    frames = np.empty((spec.num_frames, spec.height, spec.width, 3), dtype=np.uint8)
    for t in range(spec.num_frames):
        state = object_state(spec, t)
        img = background.copy()
        x0, y0 = state.x, state.y
        x1, y1 = min(x0 + state.size, spec.width), min(y0 + state.size, spec.height)
        cx0, cy0 = max(x0, 0), max(y0, 0)
        if x1 > cx0 and y1 > cy0:
            mask = _mask(spec.shape, state.size)[cy0 - y0 : y1 - y0, cx0 - x0 : x1 - x0]
            region = img[cy0:y1, cx0:x1]
            region[mask] = np.asarray(state.color, dtype=np.float32)
        img += rng.normal(0.0, spec.noise, size=img.shape).astype(np.float32)
        frames[t] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return frames


def encode_mp4(
    frames: np.ndarray, fps: int, *, gop: int = 48, bframes: int = 2, crf: int = 20
) -> bytes:
    """Encode RGB frames ``(N, H, W, 3)`` uint8 to H.264 mp4 bytes (yuv420p, one thread).

    ``gop`` is the keyframe interval (scene-cut keyframes disabled so it is exact) and
    ``bframes`` the maximum number of consecutive B-frames.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    _, height, width, _ = frames.shape
    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {width}x{height}")
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "g": str(gop),
            "keyint_min": str(gop),
            "sc_threshold": "0",
            "bf": str(bframes),
            "threads": "1",
            "crf": str(crf),
            "preset": "veryfast",
            # x264's macroblock-tree rate control gave different bytes from run to run on
            # identical input (seen at 80x80); without it the output is byte-reproducible.
            "x264-params": "mbtree=0",
        }
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


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
    if videos_per_class < 1:
        raise ValueError(f"videos_per_class must be >= 1, got {videos_per_class}")
    if frames < 8:
        raise ValueError(f"frames must be >= 8, got {frames}")
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    names = class_names(classes)
    root = os.fspath(out)
    videos: list[SynthVideo] = []
    index = 0
    for class_id, label in enumerate(names):
        order = np.random.default_rng([seed, class_id, 7]).permutation(videos_per_class)
        assignment: list[str] = []
        for split, count in split_counts(videos_per_class, splits).items():
            assignment += [split] * count
        for k in range(videos_per_class):
            rng = np.random.default_rng([seed, class_id, k])
            spec = sample_spec(rng, label, num_frames=frames, short_side=short_side, size=size)
            split = assignment[int(order[k])]
            vid = youtube_id(seed, index)
            time_start = int(rng.integers(0, 300))
            time_end = time_start + max(1, math.ceil(frames / spec.fps))
            name = f"{vid}_{time_start:06d}_{time_end:06d}.mp4"
            path = os.path.join(root, split, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            data = encode_mp4(render_frames(spec), spec.fps, gop=spec.gop, bframes=spec.bframes)
            with open(path, "wb") as f:
                f.write(data)
            videos.append(SynthVideo(path, label, vid, time_start, time_end, split, spec))
            index += 1
    ann_dir = os.path.join(root, "annotations")
    os.makedirs(ann_dir, exist_ok=True)
    for split in splits:
        with open(os.path.join(ann_dir, f"{split}.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            for v in videos:
                if v.split == split:
                    writer.writerow([v.label, v.youtube_id, v.time_start, v.time_end, split])
    with open(os.path.join(root, "synth.json"), "w") as f:
        json.dump(
            {
                "dataset": "SynthMotion",
                "classes": names,
                "videos_per_class": videos_per_class,
                "seed": seed,
                "splits": splits,
                "frames": frames,
                "short_side": list(short_side),
                "size": list(size) if size else None,
                "videos": [
                    {**asdict(v), "path": os.path.relpath(v.path, root), "spec": asdict(v.spec)}
                    for v in videos
                ],
            },
            f,
            indent=1,
        )
    return videos


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
