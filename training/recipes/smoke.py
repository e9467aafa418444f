"""``--smoke-test``: every entry point's real code path at the smallest size, on generated data.

The settings are typed replacements of the configs the entry points loaded (the user's own
``key=value`` overrides are applied after them, so they still win): a tiny SlowFast on the smoke
SynthMotion set (:data:`pipelines.synth.dataset.SMOKE_DATA`, generated and ingested once under
``demo_output/smoke``), 32-pixel crops, two short epochs.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from pipelines.synth.dataset import SMOKE_DATA, ensure_synth_dataset
from raysf.config import overridden_keys, with_overrides
from training.config import TrainJobConfig
from training.run.trainer import run_training
from training.tune.config import SpaceConfig, TuneJobConfig

SMOKE_ROOT = Path("demo_output/smoke")


def smoke_dataset(root: str | os.PathLike = SMOKE_ROOT) -> str:
    """The smoke-test dataset (``SMOKE_DATA``) under ``root``, generated and ingested once."""
    return ensure_synth_dataset(root, SMOKE_DATA)


def smoke_dataset_unless_given(overrides: list[str], key: str = "data.dataset") -> str | None:
    """The smoke dataset, unless the user's overrides name one (then ``None``: theirs wins)."""
    return None if key in overridden_keys(overrides) else smoke_dataset()


def smoke_train_job(
    job: TrainJobConfig, dataset: str | None, root: Path = SMOKE_ROOT
) -> TrainJobConfig:
    """The smallest real training run of ``job`` on ``dataset`` (``None``: the job's own),
    validated again."""
    clip = replace(
        job.data.clip, tau=4, crop_size=32, short_side_range=(32, 40), test_short_side=32
    )
    job = replace(
        job,
        data=replace(
            job.data,
            dataset=dataset or job.data.dataset,
            clip=clip,
            decode=replace(job.data.decode, batch_size=4),
        ),
        model=replace(
            job.model, preset="slowfast_tiny", overrides={**job.model.overrides, "alpha": 2}
        ),
        train=replace(job.train, epochs=2, batch_size=4, max_steps_per_epoch=2),
        optim=replace(job.optim, warmup_epochs=0.5),
        storage=replace(job.storage, path=str(root.absolute() / "ray_results"), name="smoke"),
        mlflow=replace(job.mlflow, experiment="smoke"),
        eval=replace(job.eval, num_crops=1),
        resume=False,
    )
    return with_overrides(job, source="--smoke-test")


def smoke_sweep(cfg: TuneJobConfig, dataset: str | None, root: Path = SMOKE_ROOT) -> TuneJobConfig:
    """4 tiny one-epoch trials, two at a time: three fusions and two alphas (random mode, seed 0
    draws all of them; tests/training/tune/test_tune_unit.py checks it), ~3 min on 2 CPUs (two
    at a time took 185 s there against 256 s one at a time, measured as standalone runs)."""
    base = smoke_train_job(cfg.train, dataset, root)
    base = replace(
        base,
        # width 16 so that every beta of the space divides it
        model=replace(base.model, overrides={**base.model.overrides, "width": 16}),
        train=replace(base.train, epochs=1),
        eval=replace(base.eval, after_training=False),
        mlflow=replace(base.mlflow, log_model=False),
    )
    space = SpaceConfig(
        alpha=[2, 4],
        beta_inv=[8],
        fusion=["time_to_channel", "time_strided_sampling", "time_strided_conv"],
        fast_input=["rgb"],
        slow_only=False,
    )
    search = replace(cfg.search, mode="random", num_samples=4, seed=0, max_concurrent=2)
    sweep = replace(
        cfg.sweep, name="smoke", resume=False, storage_path=str(root.absolute() / "tune")
    )
    cfg = replace(cfg, train=base, space=space, search=search, sweep=sweep)
    return with_overrides(cfg, source="--smoke-test")


def smoke_checkpoint(job: TrainJobConfig) -> tuple[str, str]:
    """Train the smoke model of ``job`` (MLflow off) and return (checkpoint URI, dataset URI)."""
    job = smoke_train_job(job, smoke_dataset())
    job = replace(job, mlflow=replace(job.mlflow, enabled=False))
    outcome = run_training(job, evaluate_after=False)
    return outcome.checkpoint_uri, job.data.dataset


def smoke_videos(dataset: str | os.PathLike) -> list[Path]:
    """The generated test-split videos behind a smoke dataset (``<root>/videos/test/*.mp4``)."""
    return sorted((Path(dataset).parent / "videos" / "test").glob("*.mp4"))
