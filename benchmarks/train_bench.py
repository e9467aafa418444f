"""Benchmark the whole training side in one process: model ceiling, loop, Ray trainer, PyTorchVideo.

One run, one model, the device settings ``auto`` resolves to (or the flags), ratios from one run:

(a) ``ceiling``: :func:`training.worker.steps.train_step` on normalised inputs already on the device;
(b) ``loop``: :func:`training.worker.steps.train_one_epoch` fed uint8 host batches the way
    ``iter_torch_batches`` hands them to the worker (pinned on CUDA), through the worker's feed
    (next batch copied on a side stream); ``loop_same_stream`` is the same loop with the copy
    on the compute stream (what ``iter_torch_batches(device=...)`` does);
(c) ``trainer``: the real ``TorchTrainer`` path (:func:`training.run.trainer.build_trainer`,
    :func:`training.worker.loop.train_func`), one worker, on a materialised Ray Dataset of
    pre-decoded synthetic uint8 clips (decode is out of the picture; nothing imports PyAV);
    epoch 0 warms up (compile), epoch 1 is timed as the worker reports it;
(d) ``ptv``: PyTorchVideo's ``create_slowfast`` eager in its best setting (bf16 +
    ``channels_last_3d`` on CUDA, where compile gains it nothing; fp32 on CPU).

Prints one JSON document (progress goes to stderr)::

    python benchmarks/train_bench.py --smoke-test          # CPU, tiny sizes (CI), ~1-2 min
    python benchmarks/train_bench.py --device cuda --batch 16 --crop 224 --preset slowfast_8x8_r50

Clip rates are wall-clock clips per second (``cpu_clips_per_s``: per process-CPU-second, for the
parts timed in this process; the CPU figures of a shared machine are noisy, the ratios less so).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import slowfast_model  # noqa: E402
from raysf import runtime  # noqa: E402
from raysf.clip_spec import ClipSpec  # noqa: E402
from raysf.manifest import Manifest  # noqa: E402
from training.config import TrainJobConfig  # noqa: E402
from training.device.settings import DeviceSettings, resolve_device_settings  # noqa: E402
from training.plan import plan_training  # noqa: E402
from training.run.callbacks import MetricsLogCallback  # noqa: E402
from training.run.trainer import build_trainer  # noqa: E402
from training.worker.loop import WorkerSetup  # noqa: E402
from training.worker.steps import (  # noqa: E402
    DeviceSums,
    StepSettings,
    build_param_groups,
    train_one_epoch,
    train_step,
    train_steps,
)

T0 = time.perf_counter()


def log(message: str) -> None:
    wall, cpu = time.perf_counter() - T0, time.process_time()
    print(f"[train_bench {wall:6.1f}s, cpu {cpu:6.1f}s] {message}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--preset", default="slowfast_8x8_r50")
    parser.add_argument("--batch", type=int, default=16, help="clips per step")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--classes", type=int, default=400)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per part")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (compile) per part")
    parser.add_argument(
        "--trainer-steps",
        type=int,
        default=50,
        help="steps per trainer epoch (more: Ray's start of an epoch is amortised as in training)",
    )
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--channels-last", default="auto", choices=("auto", "true", "false"))
    parser.add_argument("--compile", default="auto", choices=("auto", "true", "false"))
    parser.add_argument("--parts", default="ceiling,loop,ptv,trainer", help="which parts to run")
    parser.add_argument("--out", default=None, help="also write the JSON to this file")
    parser.add_argument(
        "--smoke-test", action="store_true", help="CPU, batch 2, crop 32, 2 steps, 1 thread: CI"
    )
    args = parser.parse_args(argv)
    if args.smoke_test:
        args.batch, args.crop, args.classes, args.steps, args.warmup = 2, 32, 10, 2, 1
        args.trainer_steps = 2
        torch.set_num_threads(1)  # CI machines are small and shared: no thread oversubscription
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device")
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(args.parts) - {"ceiling", "loop", "ptv", "trainer"}
    if unknown:
        parser.error(f"--parts: unknown {sorted(unknown)}")
    return args


def _switch(value: str) -> bool | str:
    return value if value == "auto" else value == "true"


@dataclasses.dataclass
class Bench:
    """What every part shares: the model config, clip spec, settings and device."""

    args: argparse.Namespace
    device: torch.device
    config: slowfast_model.SlowFastConfig
    spec: ClipSpec
    settings: DeviceSettings

    @property
    def step(self) -> StepSettings:
        return StepSettings(self.spec, self.device, self.settings)

    def host_batches(self, count: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
        """uint8 host batches as ``iter_torch_batches`` hands them (pinned on CUDA)."""
        rng = np.random.default_rng(seed)
        b, c = self.args.batch, self.args.crop
        batches = []
        for _ in range(count):
            batch = {
                "fast": torch.from_numpy(
                    rng.integers(0, 256, (b, self.spec.fast_frames, c, c, 3), dtype=np.uint8)
                ),
                "label": torch.from_numpy(rng.integers(0, self.args.classes, b)),
            }
            if self.device.type == "cuda":
                batch = {k: v.pin_memory() for k, v in batch.items()}
            batches.append(batch)
        return batches


def make_bench(args: argparse.Namespace) -> Bench:
    device = torch.device(args.device)
    config = slowfast_model.get_config(args.preset, num_classes=args.classes)
    spec = ClipSpec(
        slow_frames=config.slow_frames,
        tau=config.default_tau,
        alpha=config.alpha,
        crop_size=args.crop,
        short_side_range=(args.crop, args.crop),
        test_short_side=args.crop,
        num_val_clips=1,
        num_test_clips=1,
    )
    settings = resolve_device_settings(
        device, args.precision, _switch(args.channels_last), _switch(args.compile)
    )
    return Bench(args, device, config, spec, settings)


def cycle(batches: list, total: int) -> Iterator:
    for i in range(total):
        yield batches[i % len(batches)]


def optimizer_of(model: torch.nn.Module):
    optimizer = torch.optim.SGD(
        build_param_groups(model, 1e-4, 0.0), lr=0.01, momentum=0.9, nesterov=True
    )
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def time_steps(bench: Bench, model, inputs, labels, step: StepSettings, n: int) -> dict:
    """Wall and process-CPU clips/s of ``n`` :func:`train_step` calls on device inputs."""
    optimizer, scheduler = optimizer_of(model)
    for _ in range(bench.args.warmup):
        train_step(model, optimizer, scheduler, inputs, labels, step)
    sync(bench.device)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        train_step(model, optimizer, scheduler, inputs, labels, step)
    sync(bench.device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    clips = n * bench.args.batch
    return {"clips_per_s": clips / wall, "cpu_clips_per_s": clips / max(cpu, 1e-9)}


def run_ceiling_and_loop(bench: Bench, parts: list[str]) -> dict:
    """(a) and (b) on one model (compiled once when the settings compile)."""
    torch.manual_seed(0)
    model = bench.settings.place(slowfast_model.build_model(bench.config), bench.device)
    train_model = torch.compile(model) if bench.settings.compile else model
    step, out = bench.step, {}
    host = bench.host_batches(min(bench.args.steps, 4))
    inputs, labels = next(step.feed(overlap=False)(host[:1]))
    if "ceiling" in parts or "loop" in parts:  # the ceiling's warm-up compiles for the loop too
        log(f"(a) ceiling: {bench.settings.describe()}, warm-up {bench.args.warmup} steps")
        out["ceiling"] = time_steps(bench, train_model, inputs, labels, step, bench.args.steps)
        log(f"(a) ceiling: {out['ceiling']['clips_per_s']:.1f} clips/s")
    if "loop" in parts:
        optimizer, scheduler = optimizer_of(model)
        for name, overlap in (("loop", True), ("loop_same_stream", False)):
            feed = step.feed(overlap=overlap)
            train_one_epoch(train_model, optimizer, scheduler, host, step, 2, feed)  # warm-up
            cpu = time.process_time()
            stats = train_one_epoch(
                train_model, optimizer, scheduler, cycle(host, bench.args.steps), step, feed=feed
            )
            cpu = time.process_time() - cpu
            out[name] = {
                "clips_per_s": stats.samples / stats.elapsed,
                "cpu_clips_per_s": stats.samples / max(cpu, 1e-9),
                "data_wait_frac": stats.wait / stats.elapsed,
                "steps": int(stats.steps),
            }
            log(f"(b) {name}: {out[name]['clips_per_s']:.1f} clips/s")
        out["sync_free_step"] = check_sync_free(bench, train_model, host)
        out["side_stream_feed_exact"] = check_feed(bench, host)
    return out


def check_feed(bench: Bench, host: list) -> bool:
    """True when the side-stream feed hands out exactly the tensors of the inline feed."""
    overlapped = list(bench.step.feed(overlap=True)(host))
    inline = list(bench.step.feed(overlap=False)(host))
    return all(
        torch.equal(a, b)
        for (a_in, a_lab), (b_in, b_lab) in zip(overlapped, inline, strict=True)
        for a, b in zip((*a_in, a_lab), (*b_in, b_lab), strict=True)
    )


def check_sync_free(bench: Bench, model, host: list) -> bool | None:
    """True when 3 loop steps run under ``torch.cuda.set_sync_debug_mode("error")`` (CUDA)."""
    if bench.device.type != "cuda":
        return None
    optimizer, scheduler = optimizer_of(model)
    sums = DeviceSums(("loss_sum",), bench.device)
    feed = bench.step.feed()  # its constants are copied to the device here, before the check
    sync(bench.device)
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_steps(model, optimizer, scheduler, feed(host[:3]), bench.step, sums)
        sync_free = True
    except RuntimeError as exc:
        log(f"a training step synchronised with the host: {exc}")
        sync_free = False
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sync_free


def import_create_slowfast():
    """PyTorchVideo's ``create_slowfast``, with a torchvision stub when torchvision is absent
    (see tests/slowfast_model/conftest.py and benchmarks/model_bench.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from model_bench import import_create_slowfast as importer

    return importer()


def run_ptv(bench: Bench) -> dict:
    """(d) PyTorchVideo's SlowFast R50 eager in its best setting on this device."""
    try:
        create_slowfast = import_create_slowfast()
    except ImportError as exc:
        log(f"(d) ptv: skipped, PyTorchVideo is not installed ({exc})")
        return {"error": f"pytorchvideo not importable: {exc}"}
    settings = resolve_device_settings(bench.device, compile=False, inference=False)
    t, k = bench.config.slow_frames, bench.args.crop // 32
    torch.manual_seed(0)
    model = create_slowfast(
        model_num_class=bench.args.classes,
        head_pool_kernel_sizes=((t, k, k), (t * bench.config.alpha, k, k)),
    )
    model = settings.place(model, bench.device)
    step = dataclasses.replace(bench.step, settings=settings)
    inputs, labels = next(step.feed(overlap=False)(bench.host_batches(1, seed=1)))
    log(f"(d) ptv: {settings.describe()}")
    out = time_steps(bench, model, inputs, labels, step, bench.args.steps)
    out["settings"] = settings.describe()
    log(f"(d) ptv: {out['clips_per_s']:.1f} clips/s")
    return out


def synthetic_clips(batch: dict[str, np.ndarray], shape, classes: int) -> dict[str, np.ndarray]:
    """Ray Data UDF: pre-decoded uint8 clips (the loader's row form) and labels."""
    ids = batch["id"]
    rng = np.random.default_rng(int(ids[0]))
    return {
        "fast": rng.integers(0, 256, (len(ids), *shape), dtype=np.uint8),
        "label": (ids % classes).astype(np.int64),
    }


def trainer_job(bench: Bench, storage: str) -> TrainJobConfig:
    """The bench's training job: its model, sizes and settings; one GPU or CPU worker."""
    args, job = bench.args, TrainJobConfig()
    cpus = max(1, torch.get_num_threads())
    clip = dataclasses.replace(
        job.data.clip,
        crop_size=args.crop,
        short_side_range=(args.crop, args.crop),
        test_short_side=args.crop,
    )
    return dataclasses.replace(
        job,
        data=dataclasses.replace(job.data, dataset=storage, clip=clip),
        model=dataclasses.replace(job.model, preset=args.preset),
        train=dataclasses.replace(
            job.train,
            epochs=2,
            batch_size=args.batch,
            max_steps_per_epoch=args.trainer_steps,
            precision=args.precision,
            channels_last=_switch(args.channels_last),
            compile=_switch(args.compile),
        ),
        scaling=dataclasses.replace(
            job.scaling,
            use_gpu=bench.device.type == "cuda",
            resources_per_worker={"CPU": cpus},  # as many torch threads as parts (a), (b)
        ),
        storage=dataclasses.replace(job.storage, path=storage, name="train_bench"),
        checkpoint=dataclasses.replace(job.checkpoint, every_n_epochs=2),  # the last epoch only
        mlflow=dataclasses.replace(job.mlflow, enabled=False),
        eval=dataclasses.replace(job.eval, after_training=False),
        resume=False,
    )


def clip_datasets(bench: Bench, n_train: int) -> dict:
    """Materialised train/val Ray Datasets of synthetic uint8 clips (no decode, no PyAV)."""
    import ray.data  # heavy; only the trainer part needs it

    shape = (bench.spec.fast_frames, bench.args.crop, bench.args.crop, 3)
    rows = max(1, 64 * 2**20 // int(np.prod(shape)))  # ~64 MiB blocks
    kwargs = {"fn_kwargs": {"shape": shape, "classes": bench.args.classes}, "batch_size": rows}
    out = {}
    for split, n in (("train", n_train), ("val", bench.args.batch)):
        ds = ray.data.range(n, override_num_blocks=max(1, n // rows)).map_batches(
            synthetic_clips, **kwargs
        )
        out[split] = ds.materialize()
    return out


def run_trainer(bench: Bench) -> dict:
    """(c) the real TorchTrainer path, one worker; epoch 1's clips/s and data wait."""
    args = bench.args
    # no dashboard: fewer processes to start, and no ray[default] extras needed on a GPU host
    runtime.init_ray(num_cpus=(os.cpu_count() or 1) + 2, dashboard=False)
    n_train = args.batch * args.trainer_steps
    with tempfile.TemporaryDirectory(prefix="train_bench_") as storage:
        job = trainer_job(bench, storage)
        classes = tuple(str(i) for i in range(args.classes))
        manifest = Manifest(
            uri=storage,
            schema_version=2,
            classes=classes,
            clip_spec=bench.spec,
            per_split={"train": {"clips": n_train}, "val": {"clips": args.batch}},
        )
        plan = plan_training(job, manifest)
        log(
            f"(c) trainer: materialising {n_train} synthetic clips; workers on "
            f"{plan.device.describe()}"
        )
        datasets = clip_datasets(bench, n_train)
        log("(c) trainer: fit (epoch 0 warms up, epoch 1 is timed)")
        reports = Path(storage) / "reports.jsonl"  # every epoch's report (rank 0)
        result = build_trainer(WorkerSetup(plan), datasets, [MetricsLogCallback(str(reports))])
        result = result.fit()
        if result.error:
            raise result.error
        lines = [json.loads(line) for line in reports.read_text().splitlines()]
        history = [line["rank_metrics"][0] for line in lines if "rank_metrics" in line]
    keys = ("epoch", "clips_per_s", "data_wait_frac", "first_batch_s", "steps", "train_loss")
    epochs = [{k: row[k] for k in keys if k in row} for row in history]
    timed = epochs[-1]
    # without the epoch's start-up (the first batch's wait), which a real epoch of thousands
    # of steps amortises: the rate the loop keeps once the pipeline runs
    clips = timed["steps"] * args.batch
    elapsed = clips / timed["clips_per_s"]
    steady = clips / max(elapsed - timed["first_batch_s"], 1e-9)
    log(
        f"(c) trainer: {timed['clips_per_s']:.1f} clips/s ({steady:.1f} after the first "
        f"batch), data wait {timed['data_wait_frac']:.3f}"
    )
    return {
        "clips_per_s": timed["clips_per_s"],
        "data_wait_frac": timed["data_wait_frac"],
        "first_batch_s": timed["first_batch_s"],
        "steady": {"clips_per_s": steady},
        "epochs": epochs,
        "settings": plan.device.describe(),
    }


def ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or "clips_per_s" not in a or "clips_per_s" not in b:
        return None
    return round(a["clips_per_s"] / b["clips_per_s"], 4)


def summary(bench: Bench, parts: dict, seconds: dict) -> dict:
    device = bench.device
    timed = {k: v for k, v in parts.items() if isinstance(v, dict)}
    rates = {k: round(v["clips_per_s"], 3) for k, v in timed.items() if "clips_per_s" in v}
    cpu_rates = {
        k: round(v["cpu_clips_per_s"], 3) for k, v in timed.items() if "cpu_clips_per_s" in v
    }
    ceiling, ptv = parts.get("ceiling"), parts.get("ptv")
    return {
        "device": str(device),
        "card": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_threads": torch.get_num_threads(),
        "preset": bench.args.preset,
        "batch": bench.args.batch,
        "crop": bench.args.crop,
        "steps": bench.args.steps,
        "trainer_steps": bench.args.trainer_steps,
        "warmup": bench.args.warmup,
        "settings": bench.settings.describe(),
        "ptv_settings": (ptv or {}).get("settings"),
        "clips_per_s": rates,
        "cpu_clips_per_s": cpu_rates,
        "data_wait_frac": (parts.get("trainer") or {}).get("data_wait_frac"),
        "loop_data_wait_frac": (parts.get("loop") or {}).get("data_wait_frac"),
        "loop_over_ceiling": ratio(parts.get("loop"), ceiling),
        "loop_same_stream_over_ceiling": ratio(parts.get("loop_same_stream"), ceiling),
        "trainer_over_ceiling": ratio(parts.get("trainer"), ceiling),
        "trainer_steady_over_ceiling": ratio((parts.get("trainer") or {}).get("steady"), ceiling),
        "trainer_first_batch_s": (parts.get("trainer") or {}).get("first_batch_s"),
        "ours_over_ptv": ratio(ceiling, ptv),
        "loop_over_ptv": ratio(parts.get("loop"), ptv),
        "trainer_over_ptv": ratio(parts.get("trainer"), ptv),
        "sync_free_step": parts.get("sync_free_step"),
        "side_stream_feed_exact": parts.get("side_stream_feed_exact"),
        "trainer_epochs": (parts.get("trainer") or {}).get("epochs"),
        "ptv_error": (ptv or {}).get("error"),
        "part_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "total_seconds": round(time.perf_counter() - T0, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    # the console's lines (Ray's start, the trainer's epochs) are progress: stderr, like log()
    with contextlib.redirect_stdout(sys.stderr):
        result = run_parts(args)
    text = json.dumps(result, indent=2)
    print(text, flush=True)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return result


def run_parts(args: argparse.Namespace) -> dict:
    """Every part asked for, then the summary with the ratios."""
    bench = make_bench(args)
    log(
        f"{args.preset} batch {args.batch} crop {args.crop} on {bench.device}: "
        f"{bench.settings.describe()}"
    )
    parts: dict = {}
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    if "ceiling" in args.parts or "loop" in args.parts:
        parts.update(run_ceiling_and_loop(bench, args.parts))
        seconds["ceiling+loop"] = time.perf_counter() - start
    if "ptv" in args.parts:
        start = time.perf_counter()
        parts["ptv"] = run_ptv(bench)
        seconds["ptv"] = time.perf_counter() - start
    if bench.device.type == "cuda":
        torch.cuda.empty_cache()  # the trainer's worker is another process on the same GPU
    if "trainer" in args.parts:
        start = time.perf_counter()
        parts["trainer"] = run_trainer(bench)
        seconds["trainer"] = time.perf_counter() - start
    return summary(bench, parts, seconds)


if __name__ == "__main__":
    main()
