"""Multigrid against the plain schedule on SynthMotion (issue 31, item 5): wall-clock to the
plain run's final val top-1, and each schedule's final val top-1, over seeds.

An in-process harness (no Ray, so a run starts in seconds): the plan of the real training job
(:func:`training.plan.plan_training`: the shape schedule, the resolved clip and network), the
worker's own per-epoch functions (:mod:`training.worker.phases`: each epoch's shape, feed,
learning rate and sub-batch BN; :func:`training.worker.steps.train_one_epoch` and
:func:`~training.worker.steps.validate`), and the loader's own decode
(:func:`pipelines.loader.dataset.decode_batch`) called inline on the ingested records, one
batch at a time. Decoding is therefore part of every step's wait and measured per phase
(``data_wait_by_phase``), but it runs in the training process on one core, not in parallel Ray
Data tasks: the figures say how the schedule trades decode against compute on one core, not what
a Ray cluster would do.

For each seed: the plain run and the multigrid run from the same initial weights (``train.seed``)
and recipe (the demo's: ``training.recipes.demo.demo_train_job``). ``speedup_to_accuracy`` =
(training seconds of the plain run until it first reaches its final val top-1) / (training
seconds of the multigrid run until it first reaches that top-1); ``None`` for a seed whose multigrid run never
does (and counted in ``not_reached``). Validation time is left out of both (it is the same work).

    python benchmarks/multigrid_bench.py --dataset demo_output/synthmotion/dataset --seeds 0 1 2
    python benchmarks/multigrid_bench.py --smoke-test     # tiny, every key (CI)

Prints one JSON object (and appends it to ``--out``): ``speedup_to_accuracy``,
``final_top1_plain``, ``final_top1_multigrid`` (mean, 95 % t interval, per seed),
``data_wait_by_phase`` (mean share of the training time spent waiting for batches, per phase),
the schedule table, and the settings.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import torch

import slowfast_model
from pipelines.loader.blocks import RECORD_COLUMNS
from pipelines.loader.dataset import decode_batch
from raysf.config import with_overrides
from training.config import load_train_config
from training.device.settings import resolve_device_settings
from training.multigrid.table import schedule_table
from training.plan import plan_training
from training.recipes.demo import demo_train_job
from training.recipes.smoke import smoke_dataset, smoke_train_job
from training.tune.stats import summarize
from training.worker import phases
from training.worker.steps import StepSettings, build_param_groups, train_one_epoch, validate

ROOT = Path(__file__).resolve().parents[1]
TRAIN_YAML = ROOT / "jobs" / "train.yaml"
#: The smoke test's multigrid: two long-cycle shapes and one short-cycle size fit its 12 clips.
SMOKE_MULTIGRID = [
    "train.multigrid.long_cycle=[[0.5, 1], [1, 1]]",
    "train.multigrid.short_cycle=[0.5]",
    "train.multigrid.crop_multiple=4",
    "train.batch_size=1",
]


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", help="an ingested SynthMotion dataset (default: the smoke set)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=15, help="plain epochs (multigrid: x1.5)")
    p.add_argument("--override", action="append", default=[], help="key=value for the job")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default="benchmarks/results/multigrid_bench.jsonl")
    p.add_argument("--smoke-test", action="store_true", help="tiny: 1 seed, 2 epochs, smoke set")
    return p.parse_args(argv)


def job_for(args: argparse.Namespace, schedule: str, seed: int):
    """The training job of one run (the demo's recipe; the smoke test's with ``--smoke-test``)."""
    base = load_train_config(TRAIN_YAML)
    if args.smoke_test:
        job = smoke_train_job(base, args.dataset)
        extra = [f"train.epochs={args.epochs}", "train.max_steps_per_epoch=null", *SMOKE_MULTIGRID]
    else:
        job = demo_train_job(base, args.dataset, args.epochs)
        job = with_overrides(job, ['model.overrides={"beta_inv": 4, "fast_input": "time_diff"}'])
        extra = []
    run = [f"train.schedule={schedule}", f"train.seed={seed}", "mlflow.enabled=false"]
    return with_overrides(job, [*extra, *run, *args.override], source="multigrid_bench")


def read_records(dataset: str, split: str) -> list[dict]:
    """The ingested records of ``split``, one dict each (the loader's columns)."""
    data = pads.dataset(Path(dataset) / "clips", format="parquet")
    columns = [c for c in RECORD_COLUMNS if c in data.schema.names]
    table = data.to_table(columns=columns, filter=pads.field("split") == split)
    return table.to_pylist()


def host_batches(records, spec, batch: int, seed: int, mode: str, flip_map=None) -> Iterator[dict]:
    """Decoded uint8 batches of ``batch`` records in a seeded order (``train``: new windows,
    crops and flips for every ``seed``); the last partial batch dropped in train mode."""
    order = np.random.default_rng(seed).permutation(len(records)) if mode == "train" else None
    rows = [records[i] for i in order] if order is not None else records
    stop = len(rows) - len(rows) % batch if mode == "train" else len(rows)
    for start in range(0, stop, batch):
        chunk = rows[start : start + batch]
        columns = {k: np.asarray([r[k] for r in chunk], dtype=object) for k in chunk[0]}
        out = decode_batch(
            columns, spec, mode, seed if mode == "train" else None, flip_map=flip_map
        )
        yield {"fast": torch.from_numpy(out["fast"]), "label": torch.from_numpy(out["label"])}


def train_run(args: argparse.Namespace, schedule: str, seed: int, data: dict) -> dict:
    """One run: per epoch its phase, training seconds (decode included), data wait, val top-1."""
    plan = plan_training(job_for(args, schedule, seed))
    torch.manual_seed(seed)
    model = phases.prepare_network(slowfast_model.build_model(plan.model), plan)
    optim = plan.job.optim
    groups = build_param_groups(model, optim.weight_decay, optim.bn_weight_decay)
    optimizer = torch.optim.SGD(groups, lr=plan.peak_lr, momentum=optim.momentum, nesterov=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, phases.step_lr_lambda(plan))
    settings = resolve_device_settings("cpu", compile=False)
    step = StepSettings(plan.clip, torch.device("cpu"), settings, optim.label_smoothing)
    feeds = phases.phase_feeds(plan, step)
    val = list(host_batches(data["val"], plan.clip, plan.job.train.batch_size, 0, "val"))
    epochs, seconds = [], 0.0
    for epoch in range(plan.epochs):
        shape = phases.epoch_shape(plan, feeds, epoch)
        phases.enter_epoch(model, plan, shape)
        spec = shape.phase.shape.clip_spec(plan.clip)
        batches = host_batches(
            data["train"], spec, shape.batch, seed * 1000 + epoch, "train", plan.flip_map
        )
        stats = train_one_epoch(model, optimizer, scheduler, batches, step, feed=shape.feed)
        seconds += stats.elapsed
        top1 = validate(model, val, step, plan.model.num_classes, step.feed(overlap=False))[0]
        epochs.append(
            {
                "epoch": epoch,
                "phase": shape.phase.name,
                "seconds": seconds,
                "data_wait_frac": stats.wait / max(stats.elapsed, 1e-9),
                "clips": stats.samples,
                "val_top1": top1.metrics()["val_top1"],
            }
        )
    return {
        "schedule": schedule,
        "seed": seed,
        "table": schedule_table(plan.shapes),
        "epochs": epochs,
    }


def seconds_to(run: dict, target: float) -> float | None:
    """Training seconds until the run's val top-1 first reaches ``target`` (None: never)."""
    return next((e["seconds"] for e in run["epochs"] if e["val_top1"] >= target - 1e-9), None)


def summary(values) -> dict:
    s = summarize(values)
    return {"mean": s.mean, "ci95": [s.low, s.high], "per_seed": list(values)}


def report(runs: list[dict], args: argparse.Namespace, wall: float) -> dict:
    """The JSON of the issue's keys over the seeds' paired runs."""
    plain = {r["seed"]: r for r in runs if r["schedule"] == "plain"}
    multi = {r["seed"]: r for r in runs if r["schedule"] == "multigrid"}
    speedups = []
    for seed, base in plain.items():
        target = base["epochs"][-1]["val_top1"]
        t_multi = seconds_to(multi[seed], target)
        speedups.append(None if t_multi is None else seconds_to(base, target) / t_multi)
    waits: dict[str, list[float]] = {}
    for run in runs:
        for e in run["epochs"]:
            key = "plain" if run["schedule"] == "plain" else e["phase"]
            waits.setdefault(key, []).append(e["data_wait_frac"])
    return {
        "speedup_to_accuracy": {**summary(speedups), "not_reached": speedups.count(None)},
        "final_top1_plain": summary([r["epochs"][-1]["val_top1"] for r in plain.values()]),
        "final_top1_multigrid": summary([r["epochs"][-1]["val_top1"] for r in multi.values()]),
        "data_wait_by_phase": {k: float(np.mean(v)) for k, v in waits.items()},
        "train_seconds": {f"{r['schedule']}/{r['seed']}": r["epochs"][-1]["seconds"] for r in runs},
        "multigrid_schedule": next(iter(multi.values()))["table"],
        "settings": {
            "dataset": args.dataset,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "overrides": args.override,
            "smoke_test": args.smoke_test,
            "torch_threads": args.threads,
            "torch": torch.__version__,
            "host": platform.node(),
        },
        "wall_s": round(wall, 1),
    }


def main(argv=None) -> dict:
    args = parse(argv)
    if args.smoke_test:
        args.seeds, args.epochs = args.seeds[:1], 2
        args.dataset = args.dataset or smoke_dataset()
    if not args.dataset:
        sys.exit("--dataset is required (or --smoke-test)")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    data = {split: read_records(args.dataset, split) for split in ("train", "val")}
    runs = [
        train_run(args, schedule, seed, data)
        for seed in args.seeds
        for schedule in ("plain", "multigrid")
    ]
    result = report(runs, args, time.perf_counter() - start)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(result) + "\n")
    return result


if __name__ == "__main__":
    main()
