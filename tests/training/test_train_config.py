"""The training config is parsed once and every bad key or value names itself."""

from pathlib import Path

import pytest

from raysf.config import ConfigError, dump_yaml, flatten, to_dict
from training.config import TrainJobConfig, load_train_config

TRAIN_YAML = Path(__file__).resolve().parents[2] / "jobs" / "train.yaml"


def test_yaml_defaults_match_dataclass_defaults():
    # jobs/train.yaml documents the defaults: it must agree with the code.
    assert load_train_config(TRAIN_YAML) == TrainJobConfig()


def test_overrides_are_typed():
    cfg = load_train_config(
        TRAIN_YAML,
        [
            "train.epochs=3",
            "data.clip.short_side_range=[64, 80]",
            "data.clip.crop_size=56",
            "data.clip.test_short_side=64",
            "model.overrides.alpha=2",
            "scaling.use_gpu=true",
            "train.compile=false",
            "train.channels_last=auto",
        ],
    )
    assert cfg.train.epochs == 3
    assert cfg.train.compile is False and cfg.train.channels_last == "auto"
    assert cfg.data.clip.short_side_range == (64, 80)
    assert cfg.model.overrides == {"alpha": 2}
    assert cfg.scaling.use_gpu is True


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("optim.base_lrr=0.1", "optim.base_lrr: unknown key (did you mean 'base_lr'?)"),
        ("train.epochs=3.5", "train.epochs: expected an integer"),
        ("train.precision=fp16", "train.precision: 'fp16' is not one of"),
        ("data.clip.crop_size=400", "data.clip: ClipSpec.short_side_range=(256, 320): must"),
        ("data.clip.alpha=8", "data.clip.alpha=8 differs from the model's alpha=4"),
        ("model.preset=resnet", "model.preset"),
        ("model.overrides.fusion=concat", "model.overrides"),
        ("train.precision=bf16", "bf16 autocast needs scaling.use_gpu"),
        ("train.compile=always", "train.compile: 'always' matches none of"),
        ("data.prefetch_batches=-1", "data.prefetch_batches must be >= 0"),
        ("data.val_cache_mb=-1", "data.val_cache_mb must be >= 0"),
        ("data.clips_per_decode=0", "data.clips_per_decode must be >= 1"),
        ("data.clips_per_decode=1.5", "data.clips_per_decode: expected an integer"),
        ("scaling.num_workers=0", "scaling.num_workers must be >= 1"),
    ],
)
def test_bad_values_name_the_key(override, fragment):
    with pytest.raises(ConfigError) as info:
        load_train_config(TRAIN_YAML, [override])
    assert fragment in str(info.value)
    assert str(TRAIN_YAML) in str(info.value)


def test_crop_first_and_convert_on_device_are_alternatives():
    cfg = load_train_config(TRAIN_YAML, ["data.convert_on_device=true"])
    assert cfg.data.decode.convert_on_device and not cfg.data.decode.crop_first
    with pytest.raises(ConfigError) as info:
        load_train_config(
            TRAIN_YAML, ["data.convert_on_device=true", "data.decode_crop_first=true"]
        )
    assert "data.decode_crop_first and data.convert_on_device are alternatives" in str(info.value)


def test_convert_on_device_on_cpu_workers_gets_a_note():
    assert load_train_config(TRAIN_YAML).notes() == []
    gpu = load_train_config(TRAIN_YAML, ["data.convert_on_device=true", "scaling.use_gpu=true"])
    assert gpu.notes() == []
    (note,) = load_train_config(TRAIN_YAML, ["data.convert_on_device=true"]).notes()
    assert note.startswith("data.convert_on_device with CPU workers")


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_train_config(tmp_path / "nope.yaml")


def test_round_trip_through_yaml(tmp_path):
    cfg = load_train_config(TRAIN_YAML, ["model.preset=slowfast_tiny", "train.epochs=2"])
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_yaml(cfg))
    assert load_train_config(path) == cfg
    flat = flatten(to_dict(cfg))
    assert flat["model.preset"] == "slowfast_tiny" and flat["optim.momentum"] == 0.9
