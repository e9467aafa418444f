"""One training epoch through the Ray Data loader: the streaming layout against the earlier one.

Both variants read the same clip records and decode them with the same UDF
(:func:`pipelines.loader.dataset.decode_batch`, seeded train mode); they differ only in how records
reach the decode tasks:

- ``streaming`` (:func:`pipelines.loader.dataset.build_clip_dataset` today): the record files are read
  in a new seeded order every epoch and cut into blocks of ``--decode-batch`` records, so the
  decode tasks of an epoch run in parallel and the first rows arrive after one task.
- ``read_blocks`` (the loader before): one decode task per read block (a read block holds up to
  128 MB of records, i.e. a whole small dataset), its block order permuted per epoch.

For each, per epoch (the variants alternate, epoch by epoch, so both see the same machine load):
seconds to the first batch, seconds for the whole epoch, clips/s, the number of decode tasks,
and whether the epochs came in different orders. Prints JSON; the ratios compare the two
variants measured in this run.

    python benchmarks/epoch_bench.py [--dataset ROOT] [--epochs 3] [--cpus N]

Without ``--dataset`` it ingests the smoke SynthMotion set into a temporary folder (~1 min).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time

import ray

from pipelines.loader.blocks import RECORD_COLUMNS, read_record_files
from pipelines.loader.dataset import build_clip_dataset, decode_batch
from pipelines.loader.options import DecodeOptions
from raysf.runtime import read_manifest
from training.recipes.smoke import smoke_dataset


def read_blocks_dataset(root: str, spec, decode: DecodeOptions, seed: int):
    """The earlier layout: records as read (one task per read block), block order permuted."""
    from ray.data import RandomSeedConfig
    from ray.data.expressions import col

    ds = read_record_files(os.path.join(root, "clips"))  # the reader the loader uses
    ds = ds.filter(expr=col("split") == "train")
    ds = ds.select_columns([c for c in RECORD_COLUMNS if c in ds.schema().names])
    ds = ds.randomize_block_order(seed=RandomSeedConfig(seed=seed, reseed_after_execution=True))
    ds = ds.map_batches(
        decode_batch,
        batch_size=decode.batch_size,
        batch_format="numpy",
        fn_kwargs={"spec": spec, "mode": "train", "seed": seed},
        num_cpus=decode.num_cpus,
    )
    ds.context.execution_options.preserve_order = True
    return ds


def one_epoch(ds, batch_size: int) -> dict:
    t0 = time.perf_counter()
    first, clips, order = None, 0, []
    for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
        if first is None:
            first = time.perf_counter() - t0
        clips += len(batch["label"])
        order.extend(batch["video_id"].tolist())
    seconds = time.perf_counter() - t0
    found = re.search(r"decode_batch\): (\d+) tasks executed", ds.stats())
    return {
        "first_batch_s": first,
        "epoch_s": seconds,
        "clips": clips,
        "decode_tasks": int(found.group(1)) if found else None,
        "order": order,
    }


def summarise(epochs: list[dict]) -> dict:
    orders = [tuple(e["order"]) for e in epochs]
    clips = sum(e["clips"] for e in epochs)
    seconds = sum(e["epoch_s"] for e in epochs)
    return {
        "first_batch_s_median": statistics.median(e["first_batch_s"] for e in epochs),
        "epoch_s_median": statistics.median(e["epoch_s"] for e in epochs),
        "clips_per_s": clips / seconds,
        "decode_tasks_per_epoch": epochs[0]["decode_tasks"],
        "clips_per_epoch": epochs[0]["clips"],
        "distinct_epoch_orders": len(set(orders)),
        "epochs": [{k: v for k, v in e.items() if k != "order"} for e in epochs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", help="dataset root (default: ingest the smoke set)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--decode-batch", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8, help="training batch size")
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # before the smoke set's ingest, which runs on the Ray it finds
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    root = args.dataset or smoke_dataset(tempfile.mkdtemp(prefix="epoch-bench-"))
    spec = read_manifest(str(root)).clip_spec.replace(
        crop_size=args.crop, short_side_range=(args.crop + 8, args.crop + 16)
    )
    decode = DecodeOptions(batch_size=args.decode_batch)
    variants = {
        "streaming": build_clip_dataset(
            str(root), split="train", mode="train", spec=spec, decode=decode, seed=args.seed
        ),
        "read_blocks": read_blocks_dataset(str(root), spec, decode, args.seed),
    }
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        for name, ds in variants.items():
            runs[name].append(one_epoch(ds, args.batch))
    results = {name: summarise(epochs) for name, epochs in runs.items()}
    new, old = results["streaming"], results["read_blocks"]
    print(
        json.dumps(
            {
                "dataset": str(root),
                "cpus": args.cpus,
                "epochs": args.epochs,
                "decode_batch": args.decode_batch,
                "crop": args.crop,
                "variants": results,
                "first_batch_speedup": old["first_batch_s_median"] / new["first_batch_s_median"],
                "epoch_speedup": old["epoch_s_median"] / new["epoch_s_median"],
                "clips_per_s_ratio": new["clips_per_s"] / old["clips_per_s"],
                "total_s": time.perf_counter() - t0,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
