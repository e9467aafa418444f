"""``data.reproducible``: the same ``train.seed`` trains the same weights, for real.

Three tiny Ray Train runs on the smoke SynthMotion set with ``data.reproducible: true``: two
with seed 0 end with bit-identical weights (the per-epoch digest of every parameter) and the
same losses; seed 1 ends elsewhere. This is what lets a seeded sweep pair its trials by seed.
The first run validates its second epoch from the batches it kept in memory
(``data.val_cache_mb``), the second decodes them again: their validation metrics agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.synth.dataset import synth_flip_labels
from raysf.config import with_overrides
from raysf.runtime import read_manifest
from training.config import load_train_config
from training.recipes.smoke import smoke_train_job
from training.run.trainer import run_training

TRAIN_YAML = Path(__file__).resolve().parents[3] / "jobs" / "train.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dataset(smoke_data):
    return smoke_data


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.shutdown()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _train(dataset: str, tmp_path: Path, name: str, seed: int, *extra: str) -> list[dict]:
    """Per-epoch rank-0 reports of a 2-epoch reproducible run (every step of every epoch)."""
    job = smoke_train_job(load_train_config(TRAIN_YAML), dataset)
    job = with_overrides(
        job,
        [
            f"storage.path={tmp_path / 'results'}",
            f"storage.name={name}",
            "mlflow.enabled=false",
            "data.reproducible=true",
            f"train.seed={seed}",
            "train.max_steps_per_epoch=null",
            "train.log_param_digest=true",
            *extra,
        ],
    )
    log = tmp_path / f"{name}.jsonl"
    run_training(job, evaluate_after=False, metrics_log=str(log))
    reports = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [r["rank_metrics"][0] for r in reports if "rank_metrics" in r]


def test_same_seed_same_weights_other_seed_other_weights(dataset, local_ray, tmp_path):
    a = _train(dataset, tmp_path, "a", seed=0)
    b = _train(dataset, tmp_path, "b", 0, "data.val_cache_mb=0")
    c = _train(dataset, tmp_path, "c", seed=1)
    assert [m["epoch"] for m in a] == [0, 1] and a[0]["steps"] >= 2
    for x, y in zip(a, b, strict=True):
        assert x["param_digest"] == y["param_digest"], (a, b)
        assert x["train_loss"] == y["train_loss"], (a, b)  # the same batches in the same order
        # validation sums float32 batch losses in the order the (unseeded) val rows arrive
        assert x["val_loss"] == pytest.approx(y["val_loss"], rel=1e-5)
        assert x["val_top1"] == y["val_top1"] and x["val_clips"] == y["val_clips"]
    # a validated its second epoch from the batches kept in memory, b decoded them again: the
    # same metrics (the weights are the same)
    assert [m["val_from_memory"] for m in a] == [0.0, 1.0], a
    assert [m["val_from_memory"] for m in b] == [0.0, 0.0], b
    assert a[0]["param_digest"] != a[1]["param_digest"]  # it trained
    assert a[-1]["param_digest"] != c[-1]["param_digest"]


def test_synthmotion_declares_its_flip_pairs(dataset):
    """The generated set's manifest pairs the two drifts (only those: orbit has no mirror
    class), so its training flips keep labels true."""
    manifest = read_manifest(dataset)
    assert manifest.flip.pairs == (("drift_right", "drift_left"),)
    assert manifest.flip.label_map(manifest.classes)[:2] == (1, 0)
    assert synth_flip_labels(1).pairs == ()
