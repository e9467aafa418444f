"""What converting training clips on the training device costs there: the device feed of one
batch in plane form (``data.decode.train_view: planes``: 4:2:0 planes of the crop's region, scaled,
flipped and converted to RGB by :class:`training.device.yuv_to_rgb.PlaneConverter`) against the feed of the
same batch as RGB (the loader's default rows: uint8 crops, normalised only), measured in the same
run on the same device.

Per feed: milliseconds per batch of :meth:`training.device.inputs.DeviceInputs.inputs` (the host-to-
device copy from pinned memory included, both pathways out, the device synchronised after each
batch), bytes per clip shipped, and the share of a training step at ``--step-rate`` clips/s
(250: slowfast_8x8_r50 compiled on an H200, docs/performance.md) that the feed takes if it ran
on the compute stream (the loop's :class:`training.device.inputs.DeviceFeed` runs it on a side stream).

Batches are the training profile's case (``--source-short`` 256 stored, scale jitter
256-320, crop 224): each row's box is ``224 * 256 / short`` pixels for a random short side,
placed at an odd or even offset, flipped at random.

    python benchmarks/device_convert_bench.py                 # CUDA when present, else CPU
    python benchmarks/device_convert_bench.py --batch 2 --iters 3   # a dry run on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pipelines.decode.planes import plane_side  # noqa: E402
from raysf.clip_spec import ClipSpec  # noqa: E402
from training.device.inputs import DeviceInputs  # noqa: E402

SPEC = ClipSpec(slow_frames=8, tau=8, alpha=4, target_fps=30.0, num_val_clips=1, num_test_clips=10)


def batches(batch: int, source_short: int, seed: int = 0) -> tuple[dict, dict]:
    """``(rgb, planes)`` host batches of ``batch`` random clips (pinned when CUDA is present)."""
    rng = np.random.default_rng(seed)
    t, crop = SPEC.fast_frames, SPEC.crop_size
    side = plane_side(crop, SPEC.short_side_range)
    regions = []
    for _ in range(batch):
        short = int(rng.integers(SPEC.short_side_range[0], SPEC.short_side_range[1] + 1))
        box = min(side - 2, 2 * round(crop * source_short / short / 2))
        regions.append((int(rng.integers(0, 2)), int(rng.integers(0, 2)), box, box))
    planes = {
        "fast_y": rng.integers(16, 236, size=(batch, t, side, side), dtype=np.uint8),
        "fast_uv": rng.integers(16, 241, size=(batch, t, 2, side // 2, side // 2), dtype=np.uint8),
        "region": np.asarray(regions, np.int32),
        "flip": rng.random(batch) < 0.5,
        "yuv": np.zeros(batch, np.int8),
    }
    rgb = {"fast": rng.integers(0, 256, size=(batch, t, crop, crop, 3), dtype=np.uint8)}
    pin = torch.cuda.is_available()
    as_torch = {
        name: {k: torch.from_numpy(v).pin_memory() if pin else torch.from_numpy(v)
               for k, v in b.items()}
        for name, b in (("rgb", rgb), ("planes", planes))
    }  # fmt: skip
    return as_torch["rgb"], as_torch["planes"]


def time_feed(inputs: DeviceInputs, batch: dict, iters: int, device: torch.device) -> float:
    """Milliseconds per batch of ``inputs.inputs(batch)``, device synchronised per batch."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(3):
        inputs.inputs(batch)
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        inputs.inputs(batch)
        sync()
    return (time.perf_counter() - start) / iters * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="clips per batch")
    parser.add_argument("--iters", type=int, default=50, help="timed batches per feed")
    parser.add_argument("--source-short", type=int, default=256, help="stored short side")
    parser.add_argument("--step-rate", type=float, default=250.0, help="training clips/s")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if any)")
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rgb, planes = batches(args.batch, args.source_short)
    inputs = DeviceInputs.for_spec(SPEC, device, channels_last=device.type == "cuda")
    ms = {
        name: time_feed(inputs, b, args.iters, device)
        for name, b in (("rgb", rgb), ("planes", planes))
    }
    step_ms = args.batch / args.step_rate * 1000.0
    row_bytes = {
        name: int(sum(v[0].numel() * v.element_size() for v in b.values())) for name, b in
        (("rgb", rgb), ("planes", planes))
    }  # fmt: skip
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "torch": torch.__version__,
                "batch": args.batch,
                "fast_frames": SPEC.fast_frames,
                "crop": SPEC.crop_size,
                "plane_side": plane_side(SPEC.crop_size, SPEC.short_side_range),
                "ms_per_batch": {k: round(v, 3) for k, v in ms.items()},
                "planes_vs_rgb_ms": round(ms["planes"] / ms["rgb"], 3),
                "bytes_per_clip": row_bytes,
                "planes_vs_rgb_bytes": round(row_bytes["planes"] / row_bytes["rgb"], 3),
                "step_ms_at_step_rate": round(step_ms, 2),
                "share_of_step": {k: round(v / step_ms, 4) for k, v in ms.items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
