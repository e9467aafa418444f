"""Training clips per second from N decode processes on one host, on the training profile.

The check behind "one 16-core host feeds one GPU at 250 clips/s": N processes (one per core,
as Ray's decode tasks would be, one decoder thread each) run the loader's training-clip path
(:func:`pipelines.views.train_clip`: 8x8 window at 30 fps, random short side in [256, 320],
random 224 crop, flip) over videos of the training re-encode profile, for a fixed time, all
started together, first with one process, then with N. Reported per process count and decode
mode (``exact``: whole frame scaled then cropped, the default; ``crop_first``:
``data.decode.train_view: crop_first``; ``planes``: ``data.decode.train_view: planes``, the crop's
4:2:0 planes cut with no conversion, :func:`pipelines.views.train_planes`): clips/s of all processes together (wall), clips per CPU-second
per process, and the 250 clips/s target; ``aggregate_clips_per_s`` sums it up and
``scaling`` is N processes' clips/s over N times one process's.

Needs only numpy, av (PyAV with libx264) and this repository's source tree (not installed: the
script puts the repository root on ``sys.path``); no Ray, no torch. The videos are rendered and
encoded first, in parallel, one process per video (``--cache DIR`` keeps them).

    python benchmarks/decode_scaling.py --processes 16             # 1 and 16 processes, JSON
    python benchmarks/decode_scaling.py --processes 2 --seconds 10  # a dry run
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time

import av
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # benchmarks/ and the repository root
from kinetics_sources import RAW_SOURCES, raw_video, reencoded  # noqa: E402

from pipelines.decode.frame_table import read_frame_table  # noqa: E402
from pipelines.ingest.segment import REENCODE_PROFILES  # noqa: E402
from pipelines.views import train_clip, train_planes, window_indices, window_span  # noqa: E402
from raysf.clip_spec import ClipSpec  # noqa: E402

SPEC = ClipSpec(slow_frames=8, tau=8, alpha=4, target_fps=30.0, num_val_clips=1, num_test_clips=10)
TARGET_CLIPS_PER_S = 250.0
MODES = ("exact", "crop_first", "planes")


def _make_video(args: tuple[int, str | None]) -> bytes:
    index, cache = args
    raw = raw_video(RAW_SOURCES[index % len(RAW_SOURCES)], cache)
    return reencoded(raw, REENCODE_PROFILES["train"], cache=cache)


def _worker(contents, mode, seed, barrier, deadline_box, queue) -> None:
    """Decode training clips until the shared deadline; report (clips, cpu_s, wall_s)."""
    records = []
    for i, content in enumerate(contents):
        table = read_frame_table(content)
        records.append(
            {"content": content, "video_id": f"v{i}", "frame_pts": table.pts,
             "keyframes": table.keyframes.astype(np.int64), "num_frames": table.num_frames,
             "fps": table.fps, "width": table.width, "height": table.height}
        )  # fmt: skip
    rng = np.random.default_rng(seed)

    def one() -> None:
        record = records[int(rng.integers(len(records)))]
        span = window_span(SPEC, record["fps"])
        start = int(rng.integers(0, max(record["num_frames"] - span, 0) + 1))
        fast, slow = window_indices(SPEC, start, record["num_frames"], record["fps"])
        if mode == "planes":
            train_planes(record, fast, slow, SPEC, rng, threads=1)
        else:
            train_clip(record, fast, slow, SPEC, rng, crop_first=mode == "crop_first", threads=1)

    for _ in range(3):  # warm-up: imports, first allocations
        one()
    barrier.wait()
    clips, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    while deadline_box.value == 0.0 or time.time() < deadline_box.value:
        one()
        clips += 1
    queue.put((clips, time.process_time() - cpu0, time.perf_counter() - wall0))


def run_mode(contents: list[bytes], processes: int, seconds: float, mode: str) -> dict:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(processes + 1)
    deadline = ctx.RawValue("d", 0.0)  # 0: not set yet (the workers keep going)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(contents, mode, k, barrier, deadline, queue))
        for k in range(processes)
    ]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.time()
    deadline.value = start + seconds
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    clips = sum(r[0] for r in results)
    wall = max(r[2] for r in results)
    per_cpu = [r[0] / r[1] for r in results if r[1] > 0]
    return {
        "clips": clips,
        "wall_s": round(wall, 2),
        "clips_per_s": round(clips / wall, 1),
        "clips_per_cpu_s_per_process": round(float(np.mean(per_cpu)), 2),
        "cpu_utilisation": round(sum(r[1] for r in results) / wall / processes, 3),
        "meets_250": clips / wall >= TARGET_CLIPS_PER_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=16, help="decode processes (also 1)")
    parser.add_argument("--seconds", type=float, default=30.0, help="timed run per mode")
    parser.add_argument("--videos", type=int, default=4, help="training-profile videos")
    parser.add_argument("--cache", default=None, help="folder keeping the generated videos")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated decode modes")
    args = parser.parse_args()
    modes = args.modes.split(",")
    if set(modes) - set(MODES):
        parser.error(f"--modes: {sorted(set(modes) - set(MODES))} not among {MODES}")
    if args.processes < 1 or args.videos < 1 or args.seconds <= 0:
        parser.error("--processes and --videos must be >= 1, --seconds > 0")
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(min(args.videos, os.cpu_count() or 1)) as pool:
        contents = pool.map(_make_video, [(i, args.cache) for i in range(args.videos)])
    generate_s = time.perf_counter() - t0
    runs = {
        str(n): {mode: run_mode(contents, n, args.seconds, mode) for mode in modes}
        for n in sorted({1, args.processes})
    }
    one, many = runs["1"], runs[str(args.processes)]
    print(
        json.dumps(
            {
                "processes": args.processes,
                "seconds_per_mode": args.seconds,
                "cpus": os.cpu_count(),
                "machine": platform.processor() or platform.machine(),
                "python": platform.python_version(),
                "av": av.__version__,
                "loadavg_end": [round(v, 2) for v in os.getloadavg()],
                "videos": len(contents),
                "bytes_per_video": int(np.mean([len(c) for c in contents])),
                "train_profile": REENCODE_PROFILES["train"].__dict__,
                "generate_s": round(generate_s, 1),
                "runs": runs,
                "aggregate_clips_per_s": {
                    mode: {n: runs[n][mode]["clips_per_s"] for n in runs} for mode in one
                },
                "scaling": {
                    mode: round(
                        many[mode]["clips_per_s"] / (args.processes * one[mode]["clips_per_s"]), 3
                    )
                    for mode in one
                },
                "target_clips_per_s": TARGET_CLIPS_PER_S,
                "meets_250_with_n_processes": {m: many[m]["meets_250"] for m in many},
                "total_s": round(time.perf_counter() - t0, 1),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
