"""Ingest cost per container and codec: videos/s on one CPU for WebM/VP9, MKV/AV1, MKV/H.264,
AVI/MPEG-4 and WebM/VP8 (re-encoded: no MP4 mapping) against H.264 in MP4 of the same content
and size (JSON to stdout).

    python benchmarks/format_ingest_bench.py [--videos N] [--size WxH] [--frames F] [--fps R]
        [--out FILE] [--smoke-test]

Every format holds the same SynthMotion videos (rendered once, encoded once per format with a
keyframe every second, as downloads have). Each video goes through the ingest's per-video work
in this one process — read, probe (first frame decoded), remux, frame-table checks and records
— exactly as a Ray ingest task runs it (:func:`pipelines.ingest.clips.process_video`), once as a
``train`` video (the whole stream remuxed into one record) and once as a ``test`` video (the
segments of its test windows). Encoding is not timed; after one untimed warm-up call per
format, the fastest of ``--repeats`` passes counts. ``over_h264_mp4`` is each format's rate
divided by the H.264 MP4 rate measured in the same run; ``file_kib`` is the mean input size.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from fractions import Fraction

import av
import numpy as np

from pipelines.ingest.clips import process_video
from pipelines.ingest.config import load_ingest_config
from pipelines.ingest.sources import SourceEntry
from pipelines.synth.render import render_frames
from pipelines.synth.spec import CLASS_NAMES, sample_spec

#: name -> (container, encoder, encoder options); the baseline first.
FORMATS = {
    "h264.mp4": ("mp4", "libx264", {"preset": "veryfast"}),
    "vp9.webm": ("webm", "libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"}),
    "av1.mkv": ("matroska", "libsvtav1", {"preset": "12"}),
    "h264.mkv": ("matroska", "libx264", {"preset": "veryfast"}),
    "mpeg4.avi": ("avi", "mpeg4", {"qscale": "3"}),
    # No MP4 mapping: the ingest re-encodes it (the fallback profile), the cost measured here.
    "vp8.webm": ("webm", "libvpx", {"deadline": "realtime", "cpu-used": "8"}),
}
BASELINE = "h264.mp4"


def encode(frames: np.ndarray, fmt: str, fps: int) -> bytes:
    """``frames`` (uint8 ``(N, H, W, 3)``) in the container and codec of ``fmt``, a keyframe a
    second."""
    container, codec, options = FORMATS[fmt]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = fps
        stream.options = dict(options)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def time_format(paths: list[str], cfg, split: str) -> float:
    """Seconds to run the ingest's per-video work on ``paths`` as ``split`` videos."""
    start = time.perf_counter()
    for i, path in enumerate(paths):
        entry = SourceEntry(uri=path, video_id=f"v{i}", split=split, label=CLASS_NAMES[0])
        rows, reject = process_video(entry, 0, False, cfg)
        if reject is not None or not rows:
            raise RuntimeError(f"{path} was not ingested: {reject}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=8, help="videos per format")
    parser.add_argument("--size", default="340x256", help="WxH (Kinetics' short side is 256+)")
    parser.add_argument("--frames", type=int, default=300, help="frames per video (10 s)")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes (the fastest counts)")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("--smoke-test", action="store_true", help="2 tiny videos per format")
    args = parser.parse_args(argv)
    if args.smoke_test:
        args.videos, args.size, args.frames = 2, "96x64", 64
    width, height = (int(v) for v in args.size.split("x"))
    cfg = load_ingest_config(None, ["clip.target_fps=null", "retries.backoff_s=0"])
    rng = np.random.default_rng(0)
    specs = [
        sample_spec(
            rng, CLASS_NAMES[i % len(CLASS_NAMES)], num_frames=args.frames, size=(width, height)
        )
        for i in range(args.videos)
    ]
    clips = [render_frames(spec) for spec in specs]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="format-bench-") as tmp:
        for fmt in FORMATS:
            paths = []
            for i, frames in enumerate(clips):
                paths.append(os.path.join(tmp, f"{i}.{fmt}"))
                with open(paths[-1], "wb") as f:
                    f.write(encode(frames, fmt, args.fps))
            sizes = [os.path.getsize(p) / 1024 for p in paths]
            time_format(paths[:1], cfg, "test")  # warm-up: the first call loads codecs
            timing = {
                split: min(time_format(paths, cfg, split) for _ in range(args.repeats))
                for split in ("train", "test")
            }
            results[fmt] = {
                "file_kib": round(float(np.mean(sizes)), 1),
                **{f"{s}_videos_per_s": round(len(paths) / t, 2) for s, t in timing.items()},
            }
    for row in results.values():
        for split in ("train", "test"):
            key = f"{split}_videos_per_s"
            row[f"{split}_over_h264_mp4"] = round(row[key] / results[BASELINE][key], 3)
    report = {
        "benchmark": "format_ingest_bench",
        "videos_per_format": args.videos,
        "size": f"{width}x{height}",
        "frames": args.frames,
        "fps": args.fps,
        "cpus": 1,
        "formats": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
