"""Generated data and tiny settings for ``--smoke-test`` runs and the demo.

``ensure_synth_dataset`` writes a SynthMotion set and ingests it with Ray Data, reusing both
when they already exist with the same parameters (the manifest is written last, so its presence
means the ingest finished).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SMOKE_ROOT = Path("demo_output/smoke")


def ensure_synth_dataset(
    root: str | os.PathLike,
    *,
    classes: int,
    videos_per_class: int,
    frames: int,
    slow_frames: int,
    tau: int,
    alpha: int,
    num_test_clips: int = 10,
    seed: int = 0,
    shard_size: int = 16,
) -> str:
    """SynthMotion videos under ``root/videos`` ingested into ``root/dataset``; returns its path."""
    from pipelines.ingest import load_ingest_config, run_ingest
    from pipelines.synth import generate

    root = Path(root).absolute()
    videos, dataset = root / "videos", root / "dataset"
    params = dict(classes=classes, videos_per_class=videos_per_class, frames=frames, seed=seed)
    stamp = root / "synth-params.json"
    if not stamp.exists() or json.loads(stamp.read_text()) != params:
        generate(
            videos, classes=classes, videos_per_class=videos_per_class, seed=seed, frames=frames
        )
        root.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(params))
    overrides = [
        f"videos={json.dumps(str(videos))}",
        "format=kinetics",
        f"out={json.dumps(str(dataset))}",
        f"shard_size={shard_size}",
        f"sampling.slow_frames={slow_frames}",
        f"sampling.tau={tau}",
        f"sampling.alpha={alpha}",
        "sampling.target_fps=null",
        f"sampling.num_test_clips={num_test_clips}",
    ]
    run_ingest(load_ingest_config(None, overrides))
    return str(dataset)


#: The smoke tests' SynthMotion set: 3 classes x 6 videos of 40 frames, T=4, tau=4, alpha=2.
SMOKE_DATA = dict(
    classes=3,
    videos_per_class=6,
    frames=40,
    slow_frames=4,
    tau=4,
    alpha=2,
    num_test_clips=2,
    shard_size=8,
)


def smoke_dataset(root: str | os.PathLike = SMOKE_ROOT) -> str:
    """The smoke-test dataset (``SMOKE_DATA``) under ``root``, generated and ingested once."""
    return ensure_synth_dataset(root, **SMOKE_DATA)


def smoke_train_overrides(user_overrides: list[str]) -> list[str]:
    """Smallest real training run; user overrides still win (they come last)."""
    dataset = None
    if not any(o.startswith("data.dataset=") for o in user_overrides):
        dataset = smoke_dataset()
    base = [
        "model.preset=slowfast_tiny",
        "model.overrides.alpha=2",
        "data.tau=4",
        "data.crop_size=32",
        "data.short_side_range=[32, 40]",
        "data.test_short_side=32",
        "data.decode_batch_size=4",
        "train.epochs=2",
        "train.batch_size=4",
        "train.max_steps_per_epoch=2",
        "optim.warmup_epochs=0.5",
        f"storage.path={SMOKE_ROOT.absolute() / 'ray_results'}",
        "storage.name=smoke",
        "resume=false",
        "mlflow.experiment=smoke",
        "eval.num_crops=1",
    ]
    if dataset:
        base.insert(0, f"data.dataset={dataset}")
    return base + list(user_overrides)


def smoke_checkpoint() -> tuple[str, str]:
    """Train the smoke model and return (checkpoint URI, dataset URI)."""
    from jobs.config import load_train_config
    from jobs.train import DEFAULT_CONFIG, run_training

    job = load_train_config(DEFAULT_CONFIG, smoke_train_overrides(["mlflow.enabled=false"]))
    outcome = run_training(job, evaluate_after=False)
    return outcome.checkpoint_uri, job.data.dataset
