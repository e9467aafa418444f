"""What a training run will do, worked out before Ray starts: :func:`plan_training`.

The plan is a pure function of the job config and the dataset manifest: the resolved network
config (class count from the dataset), the resolved :class:`~raysf.clip_spec.ClipSpec` (its
``flip`` off where the dataset does not allow flips) and the label map of flipped clips
(:mod:`raysf.flip_labels`), the
resolved device settings (:class:`~training.device.settings.DeviceSettings`: what ``auto`` precision,
``channels_last`` and ``compile`` become on the workers' device), the model's cost, the global
batch, steps per epoch, the peak learning rate, the run name and the parameters logged to
MLflow. It is tested without Ray; the trainer and every worker receive it.

**Resuming** (``resume: true``) continues the run of the same name only when the config stored
in its latest checkpoint has the same *training keys* as the new one
(:func:`changed_training_keys`: everything but :data:`RESUME_FREE_KEYS`, which change where a
run runs, logs and checkpoints or how fast it decodes, not what it computes); otherwise
:class:`ResumeRefused` names the keys. ``resume: force`` continues regardless.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import slowfast_model
from raysf.clip_spec import ClipSpec
from raysf.config import ConfigError, flatten, to_dict
from raysf.errors import ExpectedError
from raysf.manifest import Manifest
from raysf.runtime import read_manifest
from raysf.storage import StorageLocation
from training.config import LOCATION_KEYS, TrainJobConfig, recorded_job
from training.device.settings import DeviceSettings, resolve_device_settings
from training.multigrid.schedule import ShapeSchedule
from training.schedule import scaled_lr


@dataclass(frozen=True)
class ModelSummary:
    """Parameter count and GFLOPs per view at the training crop size."""

    params: int
    gflops: float


@dataclass(frozen=True)
class TrainingPlan:
    """Everything derived from a job before it runs (see the module docstring)."""

    job: TrainJobConfig
    dataset: StorageLocation
    classes: tuple[str, ...]
    model: slowfast_model.SlowFastConfig
    clip: ClipSpec
    device: DeviceSettings
    summary: ModelSummary
    run_name: str
    global_batch: int
    steps_per_epoch: int
    peak_lr: float
    shapes: ShapeSchedule  # the clip shape, batch and LR factor of every epoch and step
    train_rows: int  # training rows of an epoch (clips x data.decode.clips_per_decode)
    flip_map: tuple[int, ...] | None = None  # label of a flipped clip by label id (None: same)

    @property
    def epochs(self) -> int:
        """Epochs the run trains (``train.epochs``; x ``epoch_factor`` with multigrid)."""
        return self.shapes.epochs

    def epoch_steps(self, epoch: int) -> int:
        """Optimizer steps of ``epoch`` on every worker (the shards are equal)."""
        return self.epoch_cycle(epoch)[1]

    def epoch_cycle(self, epoch: int) -> tuple[int, int]:
        """``(short-cycle step the epoch starts at, its optimizer steps)`` on every worker."""
        rows = self.train_rows // self.job.scaling.num_workers
        return self.shapes.epoch_steps(epoch, rows, self.job.train.max_steps_per_epoch)

    def mlflow_params(self) -> dict[str, Any]:
        """The run's parameters: the flattened job, the resolved network, its cost, the batch."""
        params = flatten(to_dict(recorded_job(self.job)))
        params.update({f"model.resolved.{k}": v for k, v in asdict(self.model).items()})
        params.update({f"data.clip.resolved.{k}": v for k, v in self.clip.to_dict().items()})
        params.update(self.device.params("train.resolved"))
        params.update(
            {
                "data.flip_map": str(self.flip_map),
                "model.gflops": round(self.summary.gflops, 4),
                "model.params": self.summary.params,
                "train.global_batch": self.global_batch,
                "optim.peak_lr": self.peak_lr,
                "train.resolved.epochs": self.epochs,
                "train.resolved.phases": len(self.shapes.phases),
                "train.resolved.step_shapes": len(self.shapes.step_shapes()),
            }
        )
        return params


def model_summary(model: slowfast_model.SlowFastConfig, crop_size: int) -> ModelSummary:
    """Parameter count and GFLOPs per view of ``model`` at ``crop_size``."""
    net = slowfast_model.build_model(model)
    params = sum(p.numel() for p in net.parameters())
    return ModelSummary(int(params), float(slowfast_model.count_flops(net, crop=crop_size)))


def resolve_clip(job: TrainJobConfig, model, manifest: Manifest) -> ClipSpec:
    """The run's clip spec: ``data.clip`` completed from the model and the dataset."""
    try:
        clip = job.data.clip.resolve(
            slow_frames=model.slow_frames,
            alpha=model.alpha,
            default_tau=model.default_tau,
            dataset=manifest.clip_spec,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    # A dataset whose labels a flip would falsify (manifest "flip": allowed false) is never
    # flipped, whatever data.clip.flip says.
    return clip if manifest.flip.allowed else clip.replace(flip=False)


def resolve_device(job: TrainJobConfig) -> DeviceSettings:
    """What ``train.precision``, ``train.channels_last`` and ``train.compile`` become on the
    workers' device (CUDA with ``scaling.use_gpu``, else CPU)."""
    train = job.train
    try:
        return resolve_device_settings(
            "cuda" if job.scaling.use_gpu else "cpu",
            train.precision,
            train.channels_last,
            train.compile,
        )
    except ValueError as exc:
        raise ConfigError(f"train: {exc}") from exc


def run_name_of(job: TrainJobConfig, now: float | None = None) -> str:
    """``storage.name`` (else the MLflow run name, else the preset); timestamped unless the
    run resumes, so that a fresh run never meets an older one of the same name."""
    name = job.storage.name or (job.mlflow.run_name or job.model.preset)
    if not job.resume:
        name = f"{name}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}"
    return name


def epoch_rows(job: TrainJobConfig, manifest: Manifest) -> tuple[int, str]:
    """An epoch's training rows (the train split's clips x ``data.decode.clips_per_decode``) and
    the words for them in an error (``"20 clips"``, ``"20 clips x data.decode.clips_per_decode 2"``)."""
    clips, per = manifest.clips_in(job.data.train_split), job.data.decode.clips_per_decode
    words = f"{clips} clips" + (f" x data.decode.clips_per_decode {per}" if per > 1 else "")
    return clips * per, words


def plan_training(job: TrainJobConfig, manifest: Manifest | None = None) -> TrainingPlan:
    """The plan of ``job`` (reads the dataset manifest unless given); ``ConfigError`` when the
    dataset cannot serve it (too few clips for one global batch, a contradicting clip spec)."""
    dataset = job.data.location()
    manifest = manifest or read_manifest(dataset)
    try:
        model = job.model.resolve(num_classes=manifest.num_classes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    clip = resolve_clip(job, model, manifest)
    rows, described = epoch_rows(job, manifest)
    global_batch = job.train.batch_size * job.scaling.num_workers
    if rows < global_batch:
        raise ConfigError(
            f"train split {job.data.train_split!r} has {described}, fewer than the global "
            f"batch {global_batch} (train.batch_size x scaling.num_workers)"
        )
    steps = max(1, rows // global_batch)
    if job.train.max_steps_per_epoch:
        steps = min(steps, job.train.max_steps_per_epoch)
    shapes = shape_schedule(job, clip, rows)
    return TrainingPlan(
        job=job,
        dataset=dataset,
        classes=manifest.classes,
        model=model,
        clip=clip,
        device=resolve_device(job),
        summary=model_summary(model, clip.crop_size),
        run_name=run_name_of(job),
        global_batch=global_batch,
        steps_per_epoch=steps,
        peak_lr=scaled_lr(job.optim.base_lr, global_batch, job.optim.reference_batch),
        shapes=shapes,
        train_rows=rows,
        flip_map=manifest.flip.label_map(manifest.classes) if clip.flip else None,
    )


def shape_schedule(job: TrainJobConfig, clip: ClipSpec, rows: int) -> ShapeSchedule:
    """The run's shape schedule; ``ConfigError`` when a factor does not fit the clip or a
    phase's epoch would have no step on a worker (its batches larger than the shard)."""
    try:
        shapes = job.train.shape_schedule(clip)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    per_worker = rows // job.scaling.num_workers
    for phase in shapes.phases:
        if not shapes.steps_in_epoch(phase.first_epoch, per_worker):
            cycle = phase.shape.short_cycle
            need = phase.shape.batch * cycle[0].micro_batches
            raise ConfigError(
                f"train.schedule: {shapes.kind}: phase {phase.name} needs {need} training rows per "
                f"worker for its first step ({phase.shape.batch} clips x "
                f"{cycle[0].micro_batches}), a worker gets {per_worker}: lower train.batch_size, "
                "use fewer workers, or change train.multigrid.long_cycle"
            )
    return shapes


#: Keys whose change does not change what a run computes (prefixes match their sub-keys).
RESUME_FREE_KEYS = (
    *LOCATION_KEYS,
    "data.test_split",
    "data.decode.num_cpus",
    "data.decode.batch_size",
    "data.decode.resources",
    "data.max_decode_error_fraction",
    "data.val_cache_mb",
    "train.compile",
    "train.channels_last",
    "train.log_param_digest",
    "scaling.use_gpu",
    "scaling.resources_per_worker",
    "scaling.placement_strategy",
    "scaling.placement_timeout_s",
    "storage",
    "checkpoint",
    "failure",
    "mlflow",
    "eval",
    "resume",
)


class ResumeRefused(ExpectedError):
    """``resume: true`` met a run of the same name trained with other training keys."""

    exit_code = 2


def is_training_key(key: str) -> bool:
    """False for a key of :data:`RESUME_FREE_KEYS` (or below one)."""
    return not any(key == free or key.startswith(free + ".") for free in RESUME_FREE_KEYS)


def changed_training_keys(stored: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``"key: old -> new"`` for every training key whose value differs between the stored
    (checkpoint ``job_config``) and the new job dicts; keys missing on one side (written by
    another version) are not compared."""
    old_flat, new_flat = flatten(stored), flatten(new)
    return [
        f"{key}: {old_flat[key]!r} -> {new_flat[key]!r}"
        for key in sorted(set(old_flat) & set(new_flat))
        if is_training_key(key) and old_flat[key] != new_flat[key]
    ]


def check_resume(job: TrainJobConfig, stored: dict[str, Any] | None, where: str) -> None:
    """Raise :class:`ResumeRefused` when ``job`` would resume (``resume: true``) the run whose
    latest checkpoint at ``where`` stored ``stored`` with other training keys."""
    if job.resume is not True or stored is None:
        return
    changed = changed_training_keys(stored, to_dict(job))
    if changed:
        raise ResumeRefused(
            f"resume: {where} holds a run of the same name trained with other settings "
            f"({'; '.join(changed)}); run it unchanged to resume it, set resume=force to "
            "continue it with the new settings, or give a new storage.name"
        )
