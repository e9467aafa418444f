"""Typed configuration of the training job (``jobs/train.yaml``).

Parsed and validated once, at the entry point, by :func:`load_train_config`; the training loop
and the data/model layers receive these frozen objects or plain values taken from them.
Every default here is mirrored, with one comment each, in ``jobs/train.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from raysf.config import ConfigError, load_config

Precision = Literal["auto", "fp32", "bf16"]


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "demo_output/dataset"
    endpoint_url: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    tau: int | None = None
    rule: Literal["stride", "linspace"] = "stride"
    target_fps: float | None = None
    crop_size: int = 224
    short_side_range: tuple[int, int] = (256, 320)
    test_short_side: int = 256
    num_test_crops: int = 3
    flip: bool = True
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    decode_cpus: float = 1.0
    decode_batch_size: int = 8
    decode_resources: dict[str, float] = field(default_factory=dict)
    shuffle_buffer: int = 64

    def validate(self) -> None:
        if self.tau is not None and self.tau <= 0:
            raise ValueError(f"data.tau must be positive, got {self.tau}")
        lo, hi = self.short_side_range
        if not 0 < lo <= hi:
            raise ValueError(f"data.short_side_range must be 0 < low <= high, got {lo, hi}")
        if self.crop_size > lo:
            raise ValueError(
                f"data.crop_size ({self.crop_size}) must not exceed short_side_range low ({lo})"
            )
        if self.crop_size > self.test_short_side:
            raise ValueError(
                f"data.crop_size ({self.crop_size}) must not exceed test_short_side "
                f"({self.test_short_side})"
            )
        if self.num_test_crops not in (1, 3):
            raise ValueError(f"data.num_test_crops must be 1 or 3, got {self.num_test_crops}")
        if any(s <= 0 for s in self.std):
            raise ValueError("data.std entries must be positive")
        if self.decode_cpus <= 0:
            raise ValueError("data.decode_cpus must be positive")


@dataclass(frozen=True)
class PretrainedConfig:
    path: str
    source: Literal["raysf", "pytorchvideo", "pyslowfast", "mmaction2"] = "raysf"
    skip_head: bool = True


@dataclass(frozen=True)
class ModelConfig:
    preset: str = "slowfast_8x8_r50"
    # Overrides of the preset's fields (alpha, beta_inv, fusion, ...); num_classes comes from the
    # dataset manifest unless set here.
    overrides: dict[str, Any] = field(default_factory=dict)
    pretrained: PretrainedConfig | None = None


@dataclass(frozen=True)
class OptimConfig:
    base_lr: float = 0.1
    reference_batch: int = 64
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    bn_weight_decay: float = 0.0
    warmup_epochs: float = 34.0
    warmup_start_factor: float = 0.1
    min_lr_factor: float = 0.0
    label_smoothing: float = 0.0
    grad_clip_norm: float | None = None

    def validate(self) -> None:
        if self.base_lr <= 0 or self.reference_batch <= 0:
            raise ValueError("optim.base_lr and optim.reference_batch must be positive")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"optim.momentum must be in [0, 1), got {self.momentum}")
        if self.warmup_epochs < 0 or not 0 < self.warmup_start_factor <= 1:
            raise ValueError("optim.warmup_epochs >= 0 and 0 < optim.warmup_start_factor <= 1")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 196
    batch_size: int = 8
    precision: Precision = "auto"
    seed: int = 0
    compile: bool = False
    channels_last: bool = False
    max_steps_per_epoch: int | None = None

    def validate(self) -> None:
        if self.epochs <= 0 or self.batch_size <= 0:
            raise ValueError("train.epochs and train.batch_size must be positive")


@dataclass(frozen=True)
class ScalingConfig:
    num_workers: int = 1
    use_gpu: bool = False
    resources_per_worker: dict[str, float] = field(default_factory=dict)
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"

    def validate(self) -> None:
        if self.num_workers < 1:
            raise ValueError(f"scaling.num_workers must be >= 1, got {self.num_workers}")


@dataclass(frozen=True)
class StorageConfig:
    path: str = "demo_output/ray_results"
    endpoint_url: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class CheckpointConfig:
    every_n_epochs: int = 1
    keep: int = 2

    def validate(self) -> None:
        if self.every_n_epochs < 1 or self.keep < 1:
            raise ValueError("checkpoint.every_n_epochs and checkpoint.keep must be >= 1")


@dataclass(frozen=True)
class FailureConfig:
    max_failures: int = 2


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str | None = None
    experiment: str = "slowfast"
    run_name: str | None = None
    log_model: bool = True
    enabled: bool = True


@dataclass(frozen=True)
class EvalConfig:
    after_training: bool = True
    num_crops: int | None = None
    batch_size: int = 8


@dataclass(frozen=True)
class TrainJobConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    failure: FailureConfig = field(default_factory=FailureConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    resume: bool = True

    def validate(self) -> None:
        if self.train.precision == "bf16" and not self.scaling.use_gpu:
            raise ValueError(
                "train.precision: bf16 autocast needs scaling.use_gpu: true "
                "(use 'auto' for bf16 on GPU and fp32 on CPU)"
            )


def load_train_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()):
    """Read and validate a training config; raises :class:`ConfigError` naming file and key."""
    cfg = load_config(TrainJobConfig, path, overrides)
    _check_model_preset(cfg, str(path or "config"))
    return cfg


def _check_model_preset(cfg: TrainJobConfig, source: str) -> None:
    """Build the model config once so unknown presets or bad overrides fail at start."""
    import slowfast_model

    overrides = dict(cfg.model.overrides)
    overrides.setdefault("num_classes", 2)
    try:
        slowfast_model.get_config(cfg.model.preset, **overrides)
    except (KeyError, TypeError, ValueError) as exc:
        key = (
            "model.preset"
            if cfg.model.preset not in slowfast_model.list_models()
            else ("model.overrides")
        )
        raise ConfigError(f"{source}: {key}: {exc}") from exc


def resolve_path(uri: str) -> str:
    """Local relative paths become absolute (Ray workers run elsewhere); URIs pass through."""
    if "://" in uri:
        return uri
    return os.path.abspath(uri)
