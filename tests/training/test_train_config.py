"""The training config is parsed once and every bad key or value names itself."""

import re
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.loader.options import DecodeOptions
from raysf.config import ConfigError, dump_yaml, flatten, to_dict, with_overrides
from training.config import TrainJobConfig, load_train_config
from training.inference.evaluate import EvalRequest

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
        ("data.decode.clips_per_decode=0", "data.decode.clips_per_decode: must be an int >= 1"),
        ("data.decode.clips_per_decode=1.5", "data.decode.clips_per_decode: expected an integer"),
        ("data.decode.num_cpus=0", "data.decode.num_cpus: must be positive, got 0.0"),
        ("data.decode.batch_size=0", "data.decode.batch_size: must be an int >= 1, got 0"),
        ("data.decode.threads=0", "data.decode.threads: must be an int >= 1 or null, got 0"),
        ("data.decode.train_view=crop", "data.decode.train_view: 'crop' is not one of"),
        ("data.decode.resources={a: x}", "data.decode.resources.a: expected a number"),
        ("scaling.num_workers=0", "scaling.num_workers must be >= 1"),
    ],
)
def test_bad_values_name_the_key(override, fragment):
    with pytest.raises(ConfigError) as info:
        load_train_config(TRAIN_YAML, [override])
    assert fragment in str(info.value)
    assert str(TRAIN_YAML) in str(info.value)


def test_the_decode_section_is_one_typed_value():
    cfg = load_train_config(TRAIN_YAML)
    assert cfg.data.decode == DecodeOptions()  # jobs/train.yaml mirrors the defaults
    cfg = load_train_config(
        TRAIN_YAML,
        ["data.decode.train_view=planes", "data.decode.num_cpus=2", "data.decode.resources.d=1"],
    )
    assert cfg.data.decode.train_view == "planes" and cfg.data.decode.decoder_threads == 2
    assert cfg.data.decode.remote_args() == {"num_cpus": 2.0, "resources": {"d": 1.0}}
    again = with_overrides(cfg, ["data.decode.clips_per_decode=2"])
    assert again.data.decode == replace(cfg.data.decode, clips_per_decode=2)


@pytest.mark.parametrize(
    "old, new",
    [
        ("data.decode_cpus=2", "data.decode.num_cpus"),
        ("data.decode_batch_size=4", "data.decode.batch_size"),
        ("data.decode_resources={decode_node: 1}", "data.decode.resources"),
        ("data.decode_threads=2", "data.decode.threads"),
        ("data.decode_crop_first=true", "data.decode.train_view: crop_first"),
        ("data.convert_on_device=true", "data.decode.train_view: planes"),
        ("data.clips_per_decode=2", "data.decode.clips_per_decode"),
    ],
)
def test_the_old_decode_keys_name_their_replacement(old, new, tmp_path):
    key = old.split("=")[0]
    message = f"{key} was replaced by {new}"
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_train_config(TRAIN_YAML, [old])
    with pytest.raises(ConfigError, match=re.escape(message)):
        with_overrides(load_train_config(TRAIN_YAML), [old])
    section, name = key.split(".")
    path = tmp_path / "old.yaml"
    path.write_text(f"{section}:\n  {name}: {old.split('=')[1]}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {message}")):
        load_train_config(path)


def test_an_old_evaluate_key_names_its_replacement():
    request = EvalRequest(checkpoint="ckpt")
    with pytest.raises(ConfigError, match=r"decode_cpus was replaced by decode\.num_cpus"):
        with_overrides(request, ["decode_cpus=2"])
    assert with_overrides(request, ["decode.num_cpus=2"]).decode.num_cpus == 2.0


def test_planes_on_cpu_workers_gets_a_note():
    assert load_train_config(TRAIN_YAML).notes() == []
    planes = "data.decode.train_view=planes"
    gpu = load_train_config(TRAIN_YAML, [planes, "scaling.use_gpu=true"])
    assert gpu.notes() == []
    (note,) = load_train_config(TRAIN_YAML, [planes]).notes()
    assert note.startswith("data.decode.train_view: planes with CPU workers")


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


def test_multigrid_schedule_is_typed_and_validated_at_load():
    cfg = load_train_config(
        TRAIN_YAML, ["train.schedule=multigrid", "train.multigrid.long_cycle=[[0.5, 1], [1, 1]]"]
    )
    assert cfg.train.schedule == "multigrid"
    assert cfg.train.multigrid.long_cycle == ((0.5, 1.0), (1.0, 1.0))
    with pytest.raises(ConfigError, match=r"train.schedule: 'cyclic' is not one of"):
        load_train_config(TRAIN_YAML, ["train.schedule=cyclic"])
    with pytest.raises(ConfigError, match=r"train.multigrid.short_cycle: factor 1.5"):
        load_train_config(TRAIN_YAML, ["train.multigrid.short_cycle=[1.5]"])
    # the default preset's T=8, tau=8: a T factor of 3/8 leaves no integer stride
    with pytest.raises(ConfigError, match=r"train.multigrid.long_cycle: shape 0 .*T=3"):
        load_train_config(
            TRAIN_YAML, ["train.schedule=multigrid", "train.multigrid.long_cycle=[[0.375, 1]]"]
        )
