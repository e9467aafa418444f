"""Acceptance (issue 29): the demo's recipe meets its targets on videos it was not tuned on.

``make demo`` trains the paper's configuration, SlowFast with an RGB Fast pathway, against
Slow-only on SynthMotion's six demo classes, three of which differ only by motion with a period
of 4 or 8 frames that a Slow stride of 8 aliases away. Its recipe (120 videos per class, stems
without max-pool, per-clip normalisation, batch 16) was chosen on the demo's seed 0 (docs/
results.md, rows 36-52); this test runs it unchanged on seed 1, through ingest's training
re-encode profile (the demo's ``--train-profile``, so the profile's encoding is checked to keep
the motion SlowFast relies on), and checks the targets: SlowFast >= 0.85 test top-1 with every
class >= 0.6, Slow-only >= 0.8 of the ceiling its stride allows (pipelines/synth/ceilings.py).
Test views: 2 windows x 3 crops per video (the demo's 10 x 3 in a fifth of the time).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.synth.ceilings import ceiling
from pipelines.synth.dataset import ensure_synth_dataset
from raysf.runtime import read_manifest
from training.config import load_train_config
from training.recipes.demo import MODELS, DemoOptions, demo_data, train_row

TRAIN_YAML = Path(__file__).resolve().parents[3] / "jobs" / "train.yaml"

#: About 15 minutes on 2 CPUs (two 15-epoch trainings on 504 videos): outside CI's budget, run by
#: ``make test-acceptance`` (``pytest -m acceptance``).
pytestmark = [pytest.mark.slow, pytest.mark.acceptance]


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.xfail(
    strict=False,
    reason="issue 29: SlowFast-RGB does not learn the drifts' direction in every run yet "
    "(seed 1: test top-1 0.78, drift_right/drift_left 0.50/0.28; docs/results.md, "
    "'The demo on the recipe')",
)
def test_demo_recipe_meets_the_targets_on_another_seed(local_ray, tmp_path):
    options = DemoOptions(root=tmp_path, data_seed=1, train_profile=True)
    data, folder = demo_data(options)
    data = replace(data, clip=replace(data.clip, num_test_clips=2))
    dataset = ensure_synth_dataset(folder, data)
    classes = read_manifest(dataset).classes
    rows = {
        label: train_row(
            label,
            model,
            load_train_config(TRAIN_YAML),
            dataset,
            options,
            len(classes),
            overrides=["mlflow.enabled=false"],
        )
        for label, model in MODELS.items()
    }
    print({k: (r["test_top1"], r["class_top1"]) for k, r in rows.items()})
    slowfast, slow = rows["SlowFast"], rows["Slow-only"]
    assert len(slowfast["class_top1"]) == len(classes) == 6, slowfast
    assert slowfast["test_top1"] >= 0.85, slowfast
    assert min(slowfast["class_top1"].values()) >= 0.6, slowfast
    assert slow["stride"] == 8 and slowfast["stride"] == 2, rows
    assert slow["test_top1"] >= 0.8 * ceiling(classes, slow["stride"]).top1, slow
