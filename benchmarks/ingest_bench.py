"""Ingest throughput: videos/s and videos/s per core with 1 and 2 Ray CPUs (JSON to stdout).

    python benchmarks/ingest_bench.py [--videos-per-class N] [--classes K] [--frames F]
        [--reencode] [--out FILE]

Generates a SynthMotion set once, then runs the whole ingest (listing -> probe -> records ->
Parquet) in a fresh subprocess per CPU count, so each run starts its own Ray instance with
``resources.num_cpus`` CPUs. Times are wall-clock of the ingest itself (Ray start excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

_CHILD = r"""
import json, sys, time
import ray
from pipelines.ingest import run as ingest
cfg = ingest.load_ingest_config(None, json.loads(sys.argv[1]))
ray.init(address="local", num_cpus=cfg.resources.num_cpus, include_dashboard=False,
         log_to_driver=False)
ray.data.DataContext.get_current().enable_progress_bars = False
t0 = time.perf_counter()
manifest = ingest.run_ingest(cfg)
print(json.dumps({"seconds": time.perf_counter() - t0, **manifest["counts"]}))
"""


def run_once(videos: str, out: str, cpus: int, reencode: bool) -> dict:
    overrides = [f"videos={json.dumps(videos)}", f"out={json.dumps(out)}", "shard_size=2"]
    overrides += [f"resources.num_cpus={cpus}"]
    if reencode:
        overrides += ["reencode.short_side=64", "reencode.fps=30.0"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(overrides)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ingest with {cpus} CPUs failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--videos-per-class", type=int, default=10)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--reencode", action="store_true", help="also re-encode (x264)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    from pipelines.synth.generate import generate

    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        videos = os.path.join(tmp, "videos")
        t0 = time.perf_counter()
        generate(
            videos,
            classes=args.classes,
            videos_per_class=args.videos_per_class,
            seed=0,
            frames=args.frames,
        )
        gen_s = time.perf_counter() - t0
        runs = {}
        for cpus in (1, 2):
            r = run_once(videos, os.path.join(tmp, f"out{cpus}"), cpus, args.reencode)
            runs[cpus] = {
                **r,
                "videos_per_s": r["inputs"] / r["seconds"],
                "videos_per_s_per_core": r["inputs"] / r["seconds"] / cpus,
            }
    result = {
        "benchmark": "ingest",
        "videos": args.classes * args.videos_per_class,
        "frames_per_video": args.frames,
        "reencode": args.reencode,
        "synth_generation_s": round(gen_s, 2),
        "cpus_1": runs[1],
        "cpus_2": runs[2],
        "speedup_2_vs_1": runs[1]["seconds"] / runs[2]["seconds"],
        "scaling_efficiency": runs[1]["seconds"] / runs[2]["seconds"] / 2,
        "host_cpus": os.cpu_count(),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
