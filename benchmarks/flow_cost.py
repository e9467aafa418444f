"""Per-clip cost of making each Fast input (Table 5c), on CPU by default; prints JSON.

What is timed is the network's own input step, :class:`slowfast_model.fast_inputs.FastInput`
(the same code training, evaluation, prediction and export run), on a batch of normalised
RGB Fast clips: ``rgb``, ``gray``, ``time_diff``, ``half_res`` and ``flow`` (the torch
Lucas-Kanade of :mod:`slowfast_model.flow`). The alternative for flow, OpenCV's Farneback on
uint8 luma frame pairs one at a time (what a CPU decode task would run), is timed too when
``cv2`` is importable (``opencv-python-headless``; not a dependency of the project) and
reported as ``null`` with the reason otherwise.

    python benchmarks/flow_cost.py                              # the ablation's clips: 16 x 48^2
    python benchmarks/flow_cost.py --frames 32 --crop 224 --batch 2 --repeats 3   # 4x16 R50
    python benchmarks/flow_cost.py --device cuda --frames 32 --crop 224 --batch 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from slowfast_model.config import FAST_INPUTS, SlowFastConfig  # noqa: E402
from slowfast_model.fast_inputs import LUMA, FastInput  # noqa: E402


def moving_clips(batch: int, frames: int, crop: int, seed: int = 0) -> torch.Tensor:
    """Normalised-looking RGB clips ``(B, 3, T, crop, crop)`` of a texture drifting ~2 px a
    frame (flow has something to find; its cost does not depend on the content)."""
    gen = torch.Generator().manual_seed(seed)
    side = crop + 2 * frames + 8
    texture = torch.nn.functional.interpolate(
        torch.randn(batch, 3, side // 4, side // 4, generator=gen), size=(side, side)
    )
    shots = [texture[..., 2 * t : 2 * t + crop, t : t + crop] for t in range(frames)]
    return torch.stack(shots, dim=2).contiguous()


def time_it(fn, repeats: int, device: torch.device) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def input_costs(clips: torch.Tensor, repeats: int) -> dict[str, dict]:
    """ms per clip of every Fast input, made by the network's own input step."""
    out = {}
    for kind in FAST_INPUTS:
        step = FastInput(SlowFastConfig(fast_input=kind)).to(clips.device)
        with torch.no_grad():
            times = time_it(lambda step=step: step(clips), repeats, clips.device)
        per_clip = [1e3 * t / clips.shape[0] for t in times]
        out[kind] = {"ms_per_clip": statistics.median(per_clip), "repeats_ms_per_clip": per_clip}
    return out


def farneback_cost(clips: torch.Tensor, repeats: int, threads: int | None) -> dict:
    """ms per clip of OpenCV Farneback flow over every consecutive uint8 luma frame pair."""
    try:
        # optional: only this comparison needs OpenCV
        import cv2
    except ImportError:
        return {"ms_per_clip": None, "why": "cv2 not importable (opencv-python-headless)"}
    if threads:
        cv2.setNumThreads(threads)
    luma = torch.tensor(LUMA).view(1, 3, 1, 1, 1)
    gray = (clips.cpu() * luma).sum(1) * 0.225 + 0.45  # (B, T, H, W), back to ~[0, 1]
    frames = (gray.clamp(0, 1) * 255).round().to(torch.uint8).numpy()

    def run() -> None:
        for clip in frames:
            for prev, nxt in zip(clip[:-1], clip[1:], strict=True):
                cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 9, 3, 5, 1.1, 0)

    times = time_it(run, repeats, torch.device("cpu"))
    per_clip = [1e3 * t / len(frames) for t in times]
    return {
        "ms_per_clip": statistics.median(per_clip),
        "repeats_ms_per_clip": per_clip,
        "opencv": cv2.__version__,
        "cv2_threads": cv2.getNumThreads(),
        "parameters": "pyr_scale 0.5, levels 3, winsize 9, iterations 3, poly_n 5, sigma 1.1",
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=16, help="Fast frames per clip")
    parser.add_argument("--crop", type=int, default=48, help="clip side in pixels")
    parser.add_argument("--batch", type=int, default=8, help="clips per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clips = moving_clips(args.batch, args.frames, args.crop).to(device)
    result = {
        "benchmark": "flow_cost",
        "clip": {"frames": args.frames, "crop": args.crop, "batch": args.batch},
        "device": str(device),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "loadavg_start": list(os.getloadavg()),
        "fast_inputs": input_costs(clips, args.repeats),
        "flow_farneback_cpu": farneback_cost(clips, args.repeats, args.threads),
        "loadavg_end": list(os.getloadavg()),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
