"""Acceptance: training learns, and SlowFast beats Slow-only on the same data and budget.

A reduced version of the demo, small enough for CI: SynthMotion's six demo classes, three of
which differ only by motion with a period of 4 or 8 frames that a Slow stride of 8 aliases away,
so a Slow-only model can separate at most the other three while SlowFast sees all six.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.synth.dataset import SynthDataset, ensure_synth_dataset
from raysf.clip_spec import ClipSpec
from raysf.config import with_overrides
from training.config import ModelConfig, load_train_config
from training.recipes.demo import DEMO_TRAIN_PROFILE, demo_train_job
from training.run.trainer import run_training

TRAIN_YAML = Path(__file__).resolve().parents[3] / "jobs" / "train.yaml"

pytestmark = pytest.mark.slow

#: Small enough for CI: the time-difference SlowFast (which learns from 30 videos per class)
#: against Slow-only, on the demo's recipe before issue 29 (batch 8, the fixed normalisation,
#: the stems' max-pool). The demo's own RGB recipe at its size is checked by
#: ``test_demo_targets.py`` (``make test-acceptance``).
MODELS = {
    "SlowFast": ModelConfig(
        preset="slowfast_tiny", overrides={"beta_inv": 4, "fast_input": "time_diff"}
    ),
    "Slow-only": ModelConfig(preset="slow_tiny"),
}


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _val_top1(root: Path, reencode, models: dict) -> tuple[dict[str, float], int]:
    """Validation top-1 of each of ``models`` trained 10 epochs on one SynthMotion set, and the
    number of validation clips."""
    data = SynthDataset(
        classes=6,
        videos_per_class=30,
        frames=48,
        clip=ClipSpec(slow_frames=4, tau=8, alpha=4, num_val_clips=1, num_test_clips=2),
        reencode=reencode,
    )
    dataset = ensure_synth_dataset(root, data)
    val_top1, clips = {}, 0
    for name, model in models.items():
        job = replace(
            demo_train_job(load_train_config(TRAIN_YAML), dataset, epochs=10), model=model
        )
        job = with_overrides(
            job,
            [
                "data.clip.crop_size=40",
                "data.clip.short_side_range=[44, 48]",
                "data.clip.test_short_side=44",
                f"storage.path={root / 'results'}",
                f"storage.name={name}",
                "mlflow.enabled=false",
                "eval.after_training=false",
                "train.batch_size=8",
                "data.clip.normalise=fixed",
            ],
        )
        metrics = run_training(job).metrics
        val_top1[name], clips = metrics["val_top1"], int(metrics["val_clips"])
    return val_top1, clips


def above_chance(classes: int, clips: int, z: float = 1.96) -> float:
    """The top-1 a model at chance exceeds with probability ~2.5 % on ``clips`` clips (normal
    approximation of the binomial): above it, the model learned something."""
    p = 1 / classes
    return p + z * math.sqrt(p * (1 - p) / clips)


def test_slowfast_learns_and_beats_slow_only(local_ray, tmp_path_factory):
    """Both models on the videos through ingest's training re-encode profile (the demo's
    ``--train-profile``): SlowFast learns, and beats Slow-only, so the profile's encoding keeps
    the motion SlowFast relies on. (The generated streams themselves train in every other
    training test; one dataset here keeps this test to two trainings.)"""
    profile = replace(DEMO_TRAIN_PROFILE, short_side=48)
    val_top1, clips = _val_top1(tmp_path_factory.mktemp("profile"), profile, MODELS)
    print(f"val_top1 on the train profile ({clips} clips): {val_top1}")
    # Learned: above what chance reaches on this many clips (0.30 for 30 clips of 6 classes).
    # A fixed multiple of chance (2.5x, 0.42) failed a correct run: unseeded 10-epoch runs
    # ended at 0.37 and at 0.60 on the same code.
    assert clips >= 24 and val_top1["SlowFast"] > above_chance(6, clips), (val_top1, clips)
    assert val_top1["SlowFast"] >= val_top1["Slow-only"] + 0.15, val_top1
