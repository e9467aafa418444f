"""What turning a phone video upright costs the loader: clips/s of the training view (RGB and
crop-first) and of `predict`'s whole-file views, for H.264 videos stored turned with a
90-degree display matrix against the same videos stored upright (JSON to stdout).

    python benchmarks/rotation_decode_bench.py [--videos N] [--size WxH] [--frames F]
        [--repeats R] [--out FILE] [--smoke-test]

The same SynthMotion pictures are encoded twice with the same settings: once upright (portrait,
no matrix), once turned clockwise with a 90-degree matrix (how a phone stores portrait video).
Each clip is decoded as the loader and `predict` decode it (:mod:`pipelines.views`) in this one
process; the fastest of ``--repeats`` passes counts. ``turned_over_upright`` is the turned
videos' rate divided by the upright ones' measured in the same run.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from fractions import Fraction

import av
import numpy as np

from pipelines.decode.frame_table import read_frame_table
from pipelines.synth.render import render_frames
from pipelines.synth.spec import CLASS_NAMES, sample_spec
from pipelines.views import train_clip, video_views, window_indices
from raysf.clip_spec import ClipSpec

SPEC = ClipSpec(
    slow_frames=8, tau=8, alpha=4, num_val_clips=1, num_test_clips=2, crop_size=112
).replace(short_side_range=(128, 160), test_short_side=128)


def encode(frames: np.ndarray, rotation: int, fps: int = 30) -> bytes:
    """H.264 MP4 of ``frames`` (a keyframe a second), with a display rotation when given."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt, stream.codec_context.gop_size = "yuv420p", fps
        stream.options = {"preset": "veryfast", "threads": "1"}
        if rotation:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def record(content: bytes, size: tuple[int, int]) -> dict:
    table = read_frame_table(content)
    return {"content": content, "frame_pts": table.pts, "keyframes": table.keyframes,
            "width": size[0], "height": size[1], "fps": table.fps,
            "num_frames": table.num_frames}  # fmt: skip


def clips_per_s(videos: list[bytes], size: tuple[int, int], view: str) -> float:
    """Clips (training views or predict windows) decoded per second over ``videos``."""
    rng = np.random.default_rng(0)
    start, clips = time.perf_counter(), 0
    for content in videos:
        if view == "predict":
            clips += len(video_views(content, SPEC).fast)
            continue
        r = record(content, size)
        fast, slow = window_indices(SPEC, 0, r["num_frames"], r["fps"])
        train_clip(r, fast, slow, SPEC, rng, crop_first=view == "crop_first", threads=1)
        clips += 1
    return clips / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--size", default="256x340", help="upright WxH (portrait)")
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--smoke-test", action="store_true", help="2 tiny videos, 1 pass")
    args = parser.parse_args(argv)
    if args.smoke_test:
        args.videos, args.size, args.frames, args.repeats = 2, "128x160", 72, 1
    width, height = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    pictures = [
        render_frames(sample_spec(rng, CLASS_NAMES[i % 6], num_frames=args.frames,
                                  size=(width, height)))
        for i in range(args.videos)
    ]  # fmt: skip
    upright = [encode(p, 0) for p in pictures]
    turned = [encode(np.rot90(p, -1, axes=(1, 2)), 90) for p in pictures]
    results = {}
    for view in ("rgb", "crop_first", "predict"):
        rates = {
            name: max(clips_per_s(videos, (width, height), view) for _ in range(args.repeats))
            for name, videos in (("upright", upright), ("turned", turned))
        }
        results[view] = {
            "upright_clips_per_s": round(rates["upright"], 2),
            "turned_clips_per_s": round(rates["turned"], 2),
            "turned_over_upright": round(rates["turned"] / rates["upright"], 3),
        }
    report = {"benchmark": "rotation_decode_bench", "videos": args.videos,
              "upright_size": f"{width}x{height}", "frames": args.frames, "cpus": 1,
              "views": results}  # fmt: skip
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
