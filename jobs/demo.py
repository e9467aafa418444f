"""The README's main command (``make demo``): the whole system end to end on one machine.

1. generate SynthMotion (real H.264 videos; half of the classes differ only by motion that a
   stride-8 sampling aliases away) and ingest it with Ray Data;
2. train SlowFast and a Slow-only baseline with Ray Train on a local Ray, same data and budget;
3. evaluate both with the 10x3-view protocol as Ray Data batch inference;
4. run a small Ray Tune ablation (the three fusions, no lateral, Slow-only) and print its table;
5. log everything to the local MLflow store and print the comparison table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from jobs.config import load_train_config
from jobs.smoke import ensure_synth_dataset
from jobs.train import DEFAULT_CONFIG, run_training

DEMO_ROOT = Path("demo_output")

#: Sizes for 2 CPUs: tiny nets, 64-frame videos, 48-pixel crops. The sampling (T=4, tau=8,
#: alpha=4) puts the Slow stride on a multiple of SynthMotion's fast periods (4 and 8 frames).
DEMO_DATA = dict(classes=6, videos_per_class=40, frames=64, slow_frames=4, tau=8, alpha=4)

DEMO_TRAIN = [
    "data.tau=8",
    "data.crop_size=48",
    "data.short_side_range=[56, 64]",
    "data.test_short_side=56",
    "data.decode_batch_size=8",
    "data.shuffle_buffer=32",
    "train.epochs=15",
    "train.batch_size=8",
    "optim.base_lr=0.4",
    "optim.warmup_epochs=1",
    "optim.weight_decay=5e-5",
    "checkpoint.keep=1",
    "mlflow.experiment=demo",
    "resume=false",
]

MODELS = {
    # The paper's time-difference Fast input: on ~170 training videos the RGB Fast pathway of a
    # 0.3M-parameter net overfits within the CPU budget, the time-difference one does not.
    "SlowFast": [
        "model.preset=slowfast_tiny",
        "model.overrides.beta_inv=4",
        "model.overrides.fast_input=time_diff",
    ],
    "Slow-only": ["model.preset=slow_tiny"],
}


def run_demo(
    epochs: int | None = None, videos_per_class: int | None = None, sweep_epochs: int = 4
) -> list[dict]:
    from jobs.tune import init_ray

    start = time.time()
    # One local Ray for every step, with enough logical CPUs for a Tune trial's driver, its
    # training worker and a decode task (the ingest and the trainers reuse it).
    init_ray(None, None)
    data = dict(DEMO_DATA)
    if videos_per_class:
        data["videos_per_class"] = videos_per_class
    print(f"[demo] generating SynthMotion and ingesting it with Ray Data: {data}", flush=True)
    dataset = ensure_synth_dataset(DEMO_ROOT / "synthmotion", **data)
    rows = []
    for label, model_overrides in MODELS.items():
        overrides = [
            f"data.dataset={dataset}",
            *DEMO_TRAIN,
            *model_overrides,
            f"storage.path={(DEMO_ROOT / 'ray_results').absolute()}",
            f"storage.name=demo-{label.lower()}",
            f"mlflow.run_name=demo-{label.lower()}",
        ]
        if epochs:
            overrides.append(f"train.epochs={epochs}")
        job = load_train_config(DEFAULT_CONFIG, overrides)
        print(f"[demo] training {label} ({job.model.preset})", flush=True)
        outcome = run_training(job)
        rows.append(
            {
                "model": label,
                "preset": job.model.preset,
                "gflops": outcome.model_info["gflops"],
                "params": int(outcome.model_info["params"]),
                "val_top1": outcome.metrics.get("val_top1"),
                "test_top1": (outcome.test_metrics or {}).get("test_top1"),
                "mlflow_run_id": outcome.mlflow_run_id,
                "tracking_uri": outcome.tracking_uri,
            }
        )
    print_table(rows)
    if sweep_epochs:
        from jobs.tune import run_demo_sweep

        print(
            f"[demo] ablation sweep (Ray Tune, {sweep_epochs} epochs per trial): fusion types "
            "and the Slow-only baseline",
            flush=True,
        )
        run_demo_sweep(
            dataset,
            train_overrides=[
                *DEMO_TRAIN,
                f"train.epochs={sweep_epochs}",
                "eval.after_training=false",
            ],
            # the three fusions (+ the Slow-only baseline run_demo_sweep adds): 4 short trials
            sweep_overrides=[
                "space.fusion=[time_to_channel, time_strided_sampling, time_strided_conv]"
            ],
            storage_path=str(DEMO_ROOT / "tune"),
        )
        print_table(rows)
    print(f"[demo] finished in {(time.time() - start) / 60:.1f} min")
    return rows


def print_table(rows: list[dict]) -> None:
    header = f"{'model':<10} {'GFLOPs':>8} {'params':>9} {'val top-1':>10} {'test top-1':>11}"
    print("\n" + header + "\n" + "-" * len(header))
    for r in rows:
        print(
            f"{r['model']:<10} {r['gflops']:>8.4f} {r['params']:>9,d} "
            f"{r['val_top1']:>10.3f} {r['test_top1']:>11.3f}"
        )
    uri = rows[0]["tracking_uri"]
    if uri:
        print(
            f"\nMLflow runs are in {uri}. Browse them with:\n"
            f"  .venv/bin/mlflow ui --backend-store-uri {uri} --port 5000\n"
            "and open http://127.0.0.1:5000 (experiment 'demo')."
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="override the demo's epochs")
    parser.add_argument("--videos-per-class", type=int, default=None)
    parser.add_argument(
        "--sweep-epochs",
        type=int,
        default=4,
        help="epochs per trial of the ablation sweep (0 skips the sweep)",
    )
    parser.add_argument("--json", default=None, help="also write the table as JSON here")
    args = parser.parse_args(argv)
    rows = run_demo(args.epochs, args.videos_per_class, args.sweep_epochs)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
