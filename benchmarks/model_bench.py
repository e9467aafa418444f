"""Benchmark slowfast_8x8_r50 against PyTorchVideo's create_slowfast in one process.

Train step (forward, backward, SGD step) and inference, on the same inputs, alternating
ours/theirs each repeat; prints JSON with per-repeat times and the median ratio ours/theirs.

    python benchmarks/model_bench.py --batch 2 --crop 112 --repeats 5
    python benchmarks/model_bench.py --device cuda --batch 8 --crop 224 --compile
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import slowfast_model as sm  # noqa: E402


def import_create_slowfast() -> Callable[..., torch.nn.Module]:
    """PyTorchVideo imports torchvision.ops for detection heads; stub it when absent."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        ops.RoIAlign = type("RoIAlign", (torch.nn.Module,), {})
        tv.ops = ops
        sys.modules.update({"torchvision": tv, "torchvision.ops": ops})
    from pytorchvideo.models.slowfast import create_slowfast

    return create_slowfast


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_steps(model, inputs, labels, device, bf16: bool):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def train_step() -> None:
        model.train()
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(list(inputs)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def infer_step() -> None:
        model.eval()
        with autocast:
            model(list(inputs))

    return train_step, infer_step


def timed(fn: Callable[[], None], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--crop", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--channels-last", action="store_true", help="channels_last_3d")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    torch.manual_seed(0)
    config = sm.get_config("slowfast_8x8_r50", num_classes=400, fusion_kernel=7)
    ours = sm.build_model(config)
    theirs = import_create_slowfast()(
        head_pool_kernel_sizes=((config.slow_frames, args.crop // 32, args.crop // 32),
                                (config.fast_frames, args.crop // 32, args.crop // 32)),
    )  # fmt: skip
    sm.load_pretrained(ours, theirs.state_dict(), source="pytorchvideo")  # identical weights
    memory_format = torch.channels_last_3d if args.channels_last else torch.contiguous_format
    ours = ours.to(device, memory_format=memory_format)
    theirs = theirs.to(device, memory_format=memory_format)
    inputs = [
        t.to(device, memory_format=memory_format)
        for t in sm.example_inputs(config, batch=args.batch, crop=args.crop)
    ]
    labels = torch.randint(0, 400, (args.batch,), device=device)
    models = {"ours": ours, "theirs": theirs}
    if args.compile:
        models = {k: torch.compile(m) for k, m in models.items()}
    steps = {k: make_steps(m, inputs, labels, device, args.bf16) for k, m in models.items()}

    times: dict[str, dict[str, list[float]]] = {
        phase: {"ours": [], "theirs": []} for phase in ("train", "infer")
    }
    for phase, index in (("train", 0), ("infer", 1)):
        for name in ("ours", "theirs"):
            for _ in range(args.warmup):
                steps[name][index]()
        for r in range(args.repeats):
            order = ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")
            for name in order:
                times[phase][name].append(timed(steps[name][index], device))

    result = {
        "model": "slowfast_8x8_r50",
        "device": str(device),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "batch": args.batch,
        "crop": args.crop,
        "repeats": args.repeats,
        "channels_last_3d": args.channels_last,
        "bf16": args.bf16,
        "compile": args.compile,
        "params": ours.num_params(),
        "gflops_per_view": round(sm.count_flops(ours, [t[:1] for t in inputs]), 3),
    }
    for phase, per_model in times.items():
        ratios = [a / b for a, b in zip(per_model["ours"], per_model["theirs"], strict=True)]
        result[phase] = {
            "ours_median_s": round(statistics.median(per_model["ours"]), 4),
            "theirs_median_s": round(statistics.median(per_model["theirs"]), 4),
            "median_ratio_ours_over_theirs": round(statistics.median(ratios), 4),
            "ours_s": [round(t, 4) for t in per_model["ours"]],
            "theirs_s": [round(t, 4) for t in per_model["theirs"]],
        }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
