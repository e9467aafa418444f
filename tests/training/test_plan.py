"""plan_training: everything derived from a job before Ray starts, tested without Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raysf.clip_spec import ClipSpec
from raysf.config import ConfigError
from training.config import load_train_config
from training.plan import plan_training

TRAIN_YAML = Path(__file__).resolve().parents[2] / "jobs" / "train.yaml"
DATASET_SPEC = ClipSpec(slow_frames=8, tau=8, alpha=4, num_val_clips=1, num_test_clips=5)


@pytest.fixture
def dataset(tmp_path) -> str:
    doc = {
        "schema_version": 2,
        "classes": [{"label_id": i, "name": n} for i, n in enumerate(["a", "b", "c"])],
        "per_split": {"train": {"clips": 20}, "val": {"clips": 4}},
        "clip_spec": DATASET_SPEC.to_dict(),
    }
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    return str(tmp_path)


def _job(dataset: str, *overrides: str):
    return load_train_config(
        TRAIN_YAML,
        [f"data.dataset={dataset}", "model.preset=slowfast_tiny", "resume=true", *overrides],
    )


def test_the_plan_resolves_model_clip_batch_and_schedule(dataset):
    plan = plan_training(
        _job(
            dataset,
            "train.batch_size=3",
            "scaling.num_workers=2",
            "data.clip.crop_size=32",
            "data.clip.short_side_range=[32, 40]",
            "data.clip.test_short_side=32",
            "optim.base_lr=0.1",
            "optim.reference_batch=12",
        )
    )
    assert plan.classes == ("a", "b", "c") and plan.model.num_classes == 3
    # T and alpha from the model, tau its default, test windows from the dataset
    assert (plan.clip.slow_frames, plan.clip.alpha, plan.clip.tau) == (4, 4, 4)
    assert plan.clip.num_test_clips == 5 and plan.clip.crop_size == 32
    assert plan.global_batch == 6 and plan.steps_per_epoch == 20 // 6
    assert plan.peak_lr == pytest.approx(0.1 * 6 / 12)
    assert plan.summary.params > 100_000 and plan.summary.gflops > 0
    assert plan.run_name == "slowfast_tiny"  # resume: no timestamp
    params = plan.mlflow_params()
    assert params["model.resolved.num_classes"] == 3 and params["train.global_batch"] == 6
    assert params["data.clip.resolved.num_test_clips"] == 5
    assert params["data.dataset"] == dataset
    # auto on CPU workers: fp32, contiguous, eager; logged as resolved values
    assert (plan.device.precision, plan.device.channels_last, plan.device.compile) == (
        "fp32",
        False,
        False,
    )
    assert params["train.compile"] == "auto" and params["train.resolved.compile"] is False
    assert params["train.resolved.device"] == "cpu"


def test_auto_device_settings_resolve_for_gpu_workers_and_explicit_values_win(dataset):
    plan = plan_training(_job(dataset, "scaling.use_gpu=true"))
    assert plan.device.describe() == "cuda: bf16 autocast, channels_last_3d, torch.compile"
    params = plan.mlflow_params()
    assert params["train.resolved.precision"] == "bf16"
    assert params["train.resolved.channels_last"] is True
    plan = plan_training(
        _job(dataset, "scaling.use_gpu=true", "train.compile=false", "train.precision=fp32")
    )
    assert plan.device.describe() == "cuda: fp32, channels_last_3d, eager"
    plan = plan_training(_job(dataset, "train.channels_last=true"))
    assert plan.device.describe() == "cpu: fp32, channels_last_3d, eager"


def test_a_fresh_run_gets_a_timestamped_name_and_steps_are_capped(dataset):
    plan = plan_training(_job(dataset, "resume=false", "train.max_steps_per_epoch=2"))
    assert plan.run_name.startswith("slowfast_tiny-") and plan.steps_per_epoch == 2


def test_clips_per_decode_multiplies_an_epochs_rows_and_steps(dataset):
    one = plan_training(_job(dataset, "train.batch_size=4"))
    three = plan_training(_job(dataset, "train.batch_size=4", "data.decode.clips_per_decode=3"))
    assert (one.steps_per_epoch, three.steps_per_epoch) == (5, 15)  # 20 and 60 rows of 4
    assert three.job.data.decode.clips_per_decode == 3
    # 20 clips x 2 rows serve a global batch of 32 that 20 clips alone could not
    assert plan_training(_job(dataset, "train.batch_size=32", "data.decode.clips_per_decode=2"))
    with pytest.raises(ConfigError, match=r"20 clips x data.decode.clips_per_decode 2, fewer"):
        plan_training(_job(dataset, "train.batch_size=41", "data.decode.clips_per_decode=2"))


def test_what_the_dataset_cannot_serve_is_a_config_error(dataset):
    with pytest.raises(ConfigError, match=r"train split 'train' has 20 clips, fewer than"):
        plan_training(_job(dataset, "train.batch_size=21"))
    with pytest.raises(ConfigError, match=r"num_test_clips=3 differs from the dataset's 5"):
        plan_training(_job(dataset, "data.clip.num_test_clips=3"))
    with pytest.raises(ValueError, match="has no manifest.json"):
        plan_training(_job(str(Path(dataset) / "missing")))


def _with_flip(dataset: str, flip) -> str:
    path = Path(dataset) / "manifest.json"
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "flip": flip}))
    return dataset


def test_the_datasets_flip_rule_reaches_the_loader(dataset):
    """Pairs give the loader its label map; a dataset that forbids flips is never flipped;
    a manifest without the rule (older ingest) flips and keeps labels."""
    assert plan_training(_job(dataset)).flip_map is None
    paired = plan_training(_job(_with_flip(dataset, {"allowed": True, "pairs": [["c", "a"]]})))
    assert paired.clip.flip and paired.flip_map == (2, 1, 0)
    assert paired.mlflow_params()["data.flip_map"] == "(2, 1, 0)"
    assert not plan_training(_job(dataset, "data.clip.flip=false")).flip_map
    forbidden = plan_training(_job(_with_flip(dataset, {"allowed": False})))
    assert forbidden.clip.flip is False and forbidden.flip_map is None
    with pytest.raises(ValueError, match=": flip.pairs: class 'z' is not one of"):
        plan_training(_job(_with_flip(dataset, {"pairs": [["a", "z"]]})))
