"""DDP overhead on CPU: 2 gloo workers against 1 at the same global batch, plus data-wait.

Prints JSON. Both runs train the same tiny model on the same SynthMotion dataset in one process
(same machine state), with the global batch fixed: 1 worker x B against 2 workers x B/2. The
ratio ``time_per_global_step_2w / time_per_global_step_1w`` is the DDP overhead factor on this
machine (on 2 cores, 2 workers also compete with the decode tasks for CPU, which the data-wait
fraction shows). Not a test: timings on shared machines are noisy.

    python benchmarks/ddp_bench.py [--global-batch 8] [--epochs 3] [--crop 48]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
TRAIN_YAML = Path(__file__).resolve().parents[1] / "jobs" / "train.yaml"


def run(workers: int, global_batch: int, dataset: str, root: Path, epochs: int, crop: int):
    from training.config import load_train_config
    from training.run.trainer import run_training

    log = root / f"w{workers}.jsonl"
    job = load_train_config(
        TRAIN_YAML,
        [
            f"data.dataset={dataset}",
            "model.preset=slowfast_tiny",
            "data.clip.tau=8",
            f"data.clip.crop_size={crop}",
            f"data.clip.short_side_range=[{crop}, {crop + 8}]",
            f"data.clip.test_short_side={crop}",
            f"train.epochs={epochs}",
            f"train.batch_size={global_batch // workers}",
            f"scaling.num_workers={workers}",
            "scaling.resources_per_worker={CPU: 1}",
            f"storage.path={root / 'results'}",
            f"storage.name=w{workers}",
            "mlflow.enabled=false",
            "eval.after_training=false",
        ],
    )
    run_training(job, metrics_log=str(log))
    reports = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    epochs_metrics = [r["rank_metrics"] for r in reports if "rank_metrics" in r][1:]  # warm-up
    steps = sum(m[0]["steps"] for m in epochs_metrics)
    clips_per_s = sum(m[0]["clips_per_s"] for m in epochs_metrics) / len(epochs_metrics)
    wait = sum(m[0]["data_wait_frac"] for m in epochs_metrics) / len(epochs_metrics)
    return {
        "workers": workers,
        "per_worker_batch": global_batch // workers,
        "global_steps": steps,
        "clips_per_s": clips_per_s,
        "s_per_global_step": global_batch / clips_per_s,
        "data_wait_frac": wait,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--videos-per-class", type=int, default=12)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is warm-up and is not timed")

    import ray

    from pipelines.synth.dataset import SynthDataset, ensure_synth_dataset
    from raysf.clip_spec import ClipSpec

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = ClipSpec(slow_frames=4, tau=8, alpha=4, num_val_clips=1, num_test_clips=1)
        data = SynthDataset(classes=6, videos_per_class=args.videos_per_class, frames=48, clip=clip)
        dataset = ensure_synth_dataset(root / "data", data)
        one = run(1, args.global_batch, dataset, root, args.epochs, args.crop)
        two = run(2, args.global_batch, dataset, root, args.epochs, args.crop)
        ray.shutdown()
    print(
        json.dumps(
            {
                "benchmark": "ddp_overhead_cpu",
                "one_worker": one,
                "two_workers": two,
                "ddp_step_time_ratio_2w_over_1w": two["s_per_global_step"]
                / one["s_per_global_step"],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
