"""Typed configuration of the training job (``jobs/train.yaml``).

Parsed and validated once, at the entry point, by :func:`load_train_config`; the training loop
and the data/model layers receive these frozen objects or plain values taken from them.
Every default here is mirrored, with one comment each, in ``jobs/train.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import slowfast_model
from pipelines.loader.options import DecodeOptions
from raysf.clip_spec import ClipSpec
from raysf.config import load_config
from raysf.storage import S3Config, StorageLocation, resolve_location
from training.device.settings import Precision, Switch
from training.multigrid.config import MultigridConfig
from training.multigrid.schedule import (
    BaseShape,
    ShapeSchedule,
    multigrid_epochs,
    multigrid_schedule,
    plain_schedule,
)
from training.tracking import redact_uri


@dataclass(frozen=True)
class DataConfig:
    #: Keys of earlier versions: a config that sets one fails naming its replacement.
    REPLACED_KEYS: ClassVar[dict[str, str]] = {
        "decode_cpus": "decode.num_cpus",
        "decode_batch_size": "decode.batch_size",
        "decode_resources": "decode.resources",
        "decode_threads": "decode.threads",
        "decode_crop_first": "decode.train_view: crop_first",
        "convert_on_device": "decode.train_view: planes",
        "clips_per_decode": "decode.clips_per_decode",
    }

    dataset: str = "demo_output/dataset"
    # S3 endpoint of an s3:// dataset (null: AWS_ENDPOINT_URL[_S3], else AWS itself).
    endpoint_url: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    # How clips are cut and fed; T and alpha come from the model, tau defaults to the model's,
    # the val/test window counts to the dataset's (ClipSpec.resolve).
    clip: ClipSpec = field(default_factory=ClipSpec)
    # Where and how the decode tasks run and the form of the training views: data.decode.*
    # (pipelines.loader.options.DecodeOptions, validated there).
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    shuffle_buffer: int = 64
    # Batches Ray Data's fetch threads prepare (and pin, on a GPU) ahead of the training step.
    prefetch_batches: int = 2
    # Seed the training data with train.seed (windows, crops, flips and order, new every epoch):
    # the same seed gives the same epochs row for row. Off: fresh randomness, rows in the order
    # the decode tasks finish (no waiting on a slow task).
    reproducible: bool = False
    # Records that fail to decode are dropped and counted (decode_errors per epoch); above this
    # share of an epoch's train (or val) records the run stops with an error.
    max_decode_error_fraction: float = 0.001
    # Keep the validation batches of the first epoch in each worker's memory when every
    # worker's share fits in this many MiB, and validate later epochs from them (no Ray Data
    # execution); 0 = decode the val split every epoch (training/worker/val_cache.py).
    val_cache_mb: int = 512

    def validate(self) -> None:
        if self.prefetch_batches < 0:
            raise ValueError(f"data.prefetch_batches must be >= 0, got {self.prefetch_batches}")
        if not 0.0 <= self.max_decode_error_fraction <= 1.0:
            raise ValueError("data.max_decode_error_fraction must be in [0, 1]")
        if self.val_cache_mb < 0:
            raise ValueError(f"data.val_cache_mb must be >= 0, got {self.val_cache_mb}")

    @property
    def s3(self) -> S3Config:
        """The S3 settings of the dataset (the region: from the AWS environment)."""
        return S3Config(self.endpoint_url)

    def location(self) -> StorageLocation:
        """Where the dataset lives (resolved once, by the entry point or the planner)."""
        return resolve_location(resolve_path(self.dataset), self.s3)


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

    def resolve(self, num_classes: int) -> slowfast_model.SlowFastConfig:
        """The network's config: the preset, ``overrides``, and ``num_classes`` unless overridden.

        ``ValueError`` naming ``model.preset`` or ``model.overrides`` when it is invalid.
        """
        overrides = dict(self.overrides)
        overrides.setdefault("num_classes", num_classes)
        try:
            return slowfast_model.get_config(self.preset, **overrides)
        except (KeyError, TypeError, ValueError) as exc:
            known = self.preset in slowfast_model.list_models()
            raise ValueError(f"{'model.overrides' if known else 'model.preset'}: {exc}") from exc


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
    # auto: bf16 autocast + channels_last_3d + torch.compile on CUDA, fp32 contiguous eager on
    # CPU (training.device.settings); explicit values win.
    precision: Precision = "auto"
    seed: int = 0
    compile: Switch = "auto"
    channels_last: Switch = "auto"
    max_steps_per_epoch: int | None = None
    # Hash every weight on every rank each epoch (reported as param_digest): the DDP test's
    # check that ranks stay identical. Off by default: it costs a pass over all weights.
    log_param_digest: bool = False
    # plain: every epoch at data.clip's shape and train.batch_size; multigrid: the long and
    # short cycles of train.multigrid (training/multigrid/schedule.py, docs/training.md).
    schedule: Literal["plain", "multigrid"] = "plain"
    multigrid: MultigridConfig = field(default_factory=MultigridConfig)

    def validate(self) -> None:
        if self.epochs <= 0 or self.batch_size <= 0:
            raise ValueError("train.epochs and train.batch_size must be positive")

    @property
    def run_epochs(self) -> int:
        """Epochs the run trains: ``epochs``, times ``multigrid.epoch_factor`` with multigrid."""
        if self.schedule == "plain":
            return self.epochs
        return multigrid_epochs(self.epochs, self.multigrid)

    def shape_schedule(self, clip: ClipSpec) -> ShapeSchedule:
        """The run's shape schedule for its resolved clip spec (``ValueError`` naming
        ``train.multigrid.<key>`` when a multigrid factor does not fit the clip)."""
        base = BaseShape(clip.slow_frames, clip.tau, clip.crop_size, self.batch_size)
        if self.schedule == "plain":
            return plain_schedule(base, self.epochs)
        try:
            return multigrid_schedule(self.multigrid, base, self.epochs)
        except ValueError as exc:
            raise ValueError(f"train.multigrid.{exc}") from exc


@dataclass(frozen=True)
class ScalingConfig:
    num_workers: int = 1
    use_gpu: bool = False
    resources_per_worker: dict[str, float] = field(default_factory=dict)
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    # How long to wait for the cluster to hold the worker group (an autoscaler adding nodes)
    # before failing with the resources asked for and available.
    placement_timeout_s: float = 120.0

    def validate(self) -> None:
        if self.num_workers < 1:
            raise ValueError(f"scaling.num_workers must be >= 1, got {self.num_workers}")
        if self.placement_timeout_s < 0:
            raise ValueError("scaling.placement_timeout_s must be >= 0")


@dataclass(frozen=True)
class StorageConfig:
    """Where runs are stored (Ray Train's storage path) and the S3 endpoint of an s3:// one."""

    path: str = "demo_output/ray_results"
    endpoint_url: str | None = None
    name: str | None = None

    @property
    def s3(self) -> S3Config:
        """The S3 settings of an s3:// storage path (the region: from the AWS environment)."""
        return S3Config(self.endpoint_url)

    def location(self) -> StorageLocation:
        """The storage root (local paths made absolute: Ray workers run elsewhere)."""
        return resolve_location(resolve_path(self.path), self.s3)


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

    def __repr__(self) -> str:
        """With the tracking URI redacted: a job's repr can land in logs and error messages."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        shown["tracking_uri"] = redact_uri(self.tracking_uri)
        return f"MlflowConfig({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


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
    # true: continue the run of the same name if its stored config has the same training keys
    # (refused, naming the changed keys, otherwise); force: continue it regardless; false: new.
    resume: bool | Literal["force"] = True

    def validate(self) -> None:
        if self.train.precision == "bf16" and not self.scaling.use_gpu:
            raise ValueError(
                "train.precision: bf16 autocast needs scaling.use_gpu: true "
                "(use 'auto' for bf16 on GPU and fp32 on CPU)"
            )
        # Build the network's config once (the class count comes later, from the dataset), so
        # an unknown preset, a bad override or a clip spec that contradicts the model fail now.
        model = self.model.resolve(num_classes=2)
        clip = self.data.clip.resolve(
            slow_frames=model.slow_frames,
            alpha=model.alpha,
            default_tau=model.default_tau,
            dataset=ClipSpec(),
        )
        self.train.shape_schedule(clip)  # a multigrid factor that does not fit fails now

    def notes(self) -> list[str]:
        """Settings that are valid but probably not what this job wants, one line each (the
        train entry point prints them before it starts)."""
        notes = []
        if self.data.decode.train_view == "planes" and not self.scaling.use_gpu:
            notes.append(
                "data.decode.train_view: planes with CPU workers: the scaling and colour conversion move "
                "from the decode tasks into the training process, where they cost about twice "
                "the RGB feed's normalisation; CPU-only training should leave it off "
                "(docs/data-loading.md)"
            )
        return notes


#: Data keys that say where the dataset lives, not what a run computes (training.plan).
LOCATION_KEYS = ("data.endpoint_url",)


def load_train_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainJobConfig:
    """Read and validate a training config; raises :class:`ConfigError` naming file and key."""
    return load_config(TrainJobConfig, path, overrides)


def resolve_path(uri: str) -> str:
    """Local relative paths become absolute (Ray workers run elsewhere); URIs pass through."""
    if "://" in uri:
        return uri
    return os.path.abspath(uri)


def recorded_job(job: TrainJobConfig) -> TrainJobConfig:
    """``job`` as it is recorded (MLflow params and artifacts, checkpoints, exported configs):
    credentials in ``mlflow.tracking_uri`` redacted (:func:`training.tracking.redact_uri`)."""
    uri = redact_uri(job.mlflow.tracking_uri)
    if uri == job.mlflow.tracking_uri:
        return job
    return replace(job, mlflow=replace(job.mlflow, tracking_uri=uri))
