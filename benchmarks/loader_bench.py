"""Loader decode-path throughput against two baselines, measured in one run; prints JSON.

- ``loader``: :func:`pipelines.decode.frames.decode_clip` as the loader's tasks run it (keyframe seek,
  packets up to the window's last one, unshown non-reference frames skipped, one decoder
  thread, swscale straight to the output size, only needed frames converted) + random crop.
- ``sequential``: the ceiling of a plain PyAV decode of the same frames: decode from the
  start of the content to the last needed frame, converting only needed frames at the same
  output size (no seek).
- ``whole``: decode every frame of the video to RGB at the output size, then index.

Throughput is clips per CPU-second (process CPU time, all decoder threads included), i.e.
clips/s per core, plus wall-clock clips/s. Videos are SynthMotion clips of realistic length
(300 frames, 320x240, long GOPs with B-frames), windows at random positions. For Kinetics-like
sources and the re-encode profiles see ``benchmarks/kinetics_decode_bench.py``.

    python benchmarks/loader_bench.py [--videos 6] [--clips 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import json
import time

import av
import numpy as np

from pipelines import sampling
from pipelines.decode.frame_table import read_frame_table
from pipelines.decode.frames import decode_clip, scaled_size
from pipelines.synth.generate import encode_mp4, render_frames, sample_spec
from pipelines.transforms import random_crop

T, TAU, ALPHA = 8, 8, 4  # span 64 native frames, 32 fast frames at stride 2
SHORT, CROP = 224, 224


def _sequential(content: bytes, indices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    wanted = set(indices.tolist())
    out = {}
    with av.open(io.BytesIO(content)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(c.decode(stream)):  # no B-frame reordering issue: output order
            if i in wanted:
                out[i] = frame.to_ndarray(width=size[0], height=size[1], format="rgb24")
            if i >= indices[-1]:
                break
    return np.stack([out[i] for i in indices])


def _whole(content: bytes, indices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    with av.open(io.BytesIO(content)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [
            f.to_ndarray(width=size[0], height=size[1], format="rgb24") for f in c.decode(stream)
        ]
    return np.stack(frames)[indices]


def _timed(fn, jobs) -> dict[str, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for job in jobs:
        fn(*job)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"clips_per_cpu_s": len(jobs) / cpu, "clips_per_s": len(jobs) / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    videos = []
    for k in range(args.videos):
        spec = sample_spec(
            np.random.default_rng([args.seed, k]), "orbit", num_frames=300, size=(320, 240)
        )
        gop, bframes = ((250, 2), (96, 3), (48, 2))[k % 3]
        content = encode_mp4(render_frames(spec), spec.fps, gop=gop, bframes=bframes)
        table = read_frame_table(content)
        videos.append(
            {
                "content": content,
                "frame_pts": table.pts,
                "keyframes": table.keyframes,
                "gop": gop,
                "num_frames": table.num_frames,
            }
        )
    size = scaled_size(320, 240, SHORT)
    jobs = []
    span = sampling.window_span(T, TAU)
    for _ in range(args.clips):
        v = videos[int(rng.integers(len(videos)))]
        start = sampling.random_start(rng, v["num_frames"], span)
        fast, slow = sampling.clip_indices(
            start, v["num_frames"], slow_frames=T, tau=TAU, alpha=ALPHA
        )
        jobs.append((v, fast, slow))

    def loader(v, fast, slow):
        s, f = decode_clip(v, fast_idx=fast, slow_idx=slow, short_side=SHORT, threads=1)
        return random_crop([s, f], CROP, rng)

    def sequential(v, fast, slow):
        return _sequential(v["content"], np.union1d(fast, slow), size)

    def whole(v, fast, slow):
        return _whole(v["content"], np.union1d(fast, slow), size)

    # Correctness guard: the three paths return the same frames.
    v, fast, slow = jobs[0]
    ref = _whole(v["content"], fast, size)
    np.testing.assert_array_equal(decode_clip(v, fast_idx=fast, slow_idx=slow, size=size)[1], ref)
    np.testing.assert_array_equal(_sequential(v["content"], fast, size), ref)

    results = {
        name: _timed(fn, jobs)
        for name, fn in (("loader", loader), ("sequential", sequential), ("whole", whole))
    }
    per_core = {k: r["clips_per_cpu_s"] for k, r in results.items()}
    print(
        json.dumps(
            {
                "setup": {
                    "videos": args.videos,
                    "clips": args.clips,
                    "frames": 300,
                    "size": [320, 240],
                    "gops": sorted({v["gop"] for v in videos}),
                    "T": T,
                    "tau": TAU,
                    "alpha": ALPHA,
                    "output_size": list(size),
                    "crop": CROP,
                },
                "results": results,
                "loader_vs_sequential_per_core": per_core["loader"] / per_core["sequential"],
                "loader_vs_whole_per_core": per_core["loader"] / per_core["whole"],
                "goals": {"loader_vs_sequential": ">= 0.8", "loader_vs_whole": ">= 3"},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
