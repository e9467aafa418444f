"""A small multi-epoch training with validation decoded every epoch against validation from memory.

Both variants train the ablations' network and recipe (``jobs/ablations/fusion.yaml``'s T-conv
SlowFast: width 16, alpha 4, beta 1/4, time-difference Fast input, 48-pixel crops) for
``--epochs`` epochs on the same dataset with the same seed (``data.reproducible: true``); they
differ only in ``data.val_cache_mb``: ``0`` (every epoch's validation pass is a Ray Data
execution that decodes the val split) or the default (the first pass is kept in the worker's
memory and later epochs validate from it, :mod:`training.worker.val_cache`). The variants alternate
(``--repeats`` rounds), so both see the same machine load. Prints JSON: wall seconds of each
run, the ratio streamed / from memory, and whether both gave the same validation top-1 in every
epoch (they must: the same weights see the same clips).

    python benchmarks/val_cache_bench.py [--dataset ROOT] [--epochs 4] [--repeats 1] [--cpus N]

Without ``--dataset`` it ingests the smoke SynthMotion set into a temporary folder (~1 min).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import ray

from raysf.config import with_overrides
from training.config import load_train_config
from training.recipes.smoke import smoke_dataset
from training.run.trainer import run_training

TRAIN_YAML = Path(__file__).resolve().parents[1] / "jobs" / "train.yaml"
ABLATION_RECIPE = [
    "model.preset=slowfast_tiny",
    "model.overrides.width=16",
    "model.overrides.alpha=4",
    "model.overrides.beta_inv=4",
    "model.overrides.fusion=time_strided_conv",
    "model.overrides.fast_input=time_diff",
    "data.clip.tau=8",
    "data.clip.crop_size=48",
    "data.clip.short_side_range=[56, 64]",
    "data.clip.test_short_side=56",
    "data.reproducible=true",
    "data.shuffle_buffer=32",
    "train.batch_size=8",
    "optim.base_lr=0.4",
    "optim.warmup_epochs=1.0",
    "mlflow.enabled=false",
    "eval.after_training=false",
    "resume=false",
]
VARIANTS = {"streamed": "data.val_cache_mb=0", "from_memory": None}


def train_once(dataset: str, out: Path, name: str, epochs: int, extra: str | None) -> dict:
    job = load_train_config(TRAIN_YAML)
    overrides = [
        *ABLATION_RECIPE,
        f"data.dataset={dataset}",
        f"train.epochs={epochs}",
        f"storage.path={out}",
        f"storage.name={name}",
    ]
    job = with_overrides(job, overrides + ([extra] if extra else []))
    t0 = time.perf_counter()
    outcome = run_training(job)
    seconds = time.perf_counter() - t0
    history = outcome.history
    return {
        "wall_s": seconds,
        "val_top1": [h["val_top1"] for h in history],
        "val_from_memory": [h.get("val_from_memory") for h in history],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=None, help="ingested dataset root (default: smoke)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of both variants")
    parser.add_argument("--cpus", type=int, default=None, help="logical CPUs of the local Ray")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is decoded in both variants)")
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory(prefix="val-cache-bench-") as tmp:
        dataset = args.dataset or smoke_dataset(Path(tmp) / "smoke")
        runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
        for r in range(args.repeats):
            for name, extra in VARIANTS.items():
                runs[name].append(train_once(dataset, Path(tmp), f"{name}-{r}", args.epochs, extra))
    ray.shutdown()
    wall = {name: statistics.median(x["wall_s"] for x in rs) for name, rs in runs.items()}
    same = all(
        a["val_top1"] == b["val_top1"]
        for a, b in zip(runs["streamed"], runs["from_memory"], strict=True)
    )
    print(
        json.dumps(
            {
                "dataset": args.dataset or "smoke",
                "epochs": args.epochs,
                "repeats": args.repeats,
                "wall_s": wall,
                "speedup_from_memory_vs_streamed": wall["streamed"] / wall["from_memory"],
                "saved_s_per_later_epoch": (wall["streamed"] - wall["from_memory"])
                / (args.epochs - 1),
                "same_val_top1_every_epoch": same,
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
