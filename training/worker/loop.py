"""The per-worker training function run by Ray Train's ``TorchTrainer``: :func:`train_func`.

Each worker receives one typed :class:`WorkerSetup` (the :class:`~training.plan.TrainingPlan`,
the MLflow run, pretrained weights) and goes through four steps:

1. **build** — the model in the plan's resolved device settings (bf16, ``channels_last_3d``
   and ``torch.compile`` on CUDA for ``auto``; :mod:`training.device.settings`), DDP over NCCL on GPU,
   gloo on CPU via ``prepare_model``, the SGD optimizer with its two parameter groups, the
   per-iteration learning-rate schedule, and the device feed (:mod:`training.device.inputs`);
2. **resume** — from the latest reported checkpoint, so a restarted worker group never
   repeats a finished epoch;
3. **epoch** — at the shape the run's shape schedule gives the epoch (plain: one shape
   throughout; multigrid: the phase's dataset, batch, short cycle, learning-rate factor and
   BatchNorm groups, :mod:`training.worker.phases`), train on this worker's shard (uint8 batches
   pinned by Ray Data's fetch threads
   on CUDA, copied to the device one batch ahead on a side stream, sums read once per epoch),
   broadcast rank 0's BatchNorm buffers, validate (sums and the confusion matrix all-reduced
   across ranks; from memory after the first epoch when the val split fits
   ``data.val_cache_mb`` on every worker, :mod:`training.worker.val_cache`);
4. **report** — rank 0 logs the epoch to MLflow and writes the checkpoint; every rank reports
   to Ray Train; rank 0 reports the epoch to the driver's console (:mod:`training.worker.reporting`).

Records that fail to decode are dropped by the decode tasks and counted in the run's
:class:`~pipelines.loader.decode_errors.DecodeErrorLog`; rank 0 reads it after each epoch
(``decode_errors`` and ``val_decode_errors`` in the metrics, on the epoch line when not zero).
Above ``data.max_decode_error_fraction`` every rank reports the epoch with ``stop_reason`` and
returns: the driver fails the run with that message, and Ray Train does not retry a damaged
dataset. A loss that is not finite raises before any checkpoint of that epoch is written, so a
restarted worker group resumes from the last good one.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

import torch

import slowfast_model
from pipelines.loader.decode_errors import take_decode_errors
from raysf.config import to_dict
from training.checkpoints import TrainingState, load_state, save_state, unwrap_model
from training.config import recorded_job
from training.device.inputs import DeviceFeed
from training.plan import TrainingPlan
from training.tracking import RunTarget
from training.worker.phases import (
    EpochShape,
    checkpoint_schedule,
    compile_network,
    enter_epoch,
    epoch_shape,
    phase_feeds,
    prepare_network,
    resume_note,
    step_lr_lambda,
)
from training.worker.reporting import StepReporter, report_epoch_event, report_note
from training.worker.steps import (
    DecodeErrorStats,
    StepSettings,
    all_ranks_agree,
    build_param_groups,
    param_digest,
    sync_buffers,
    train_one_epoch,
    validate,
)
from training.worker.val_cache import ValCache


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker receives (``train_loop_config={"setup": setup}``)."""

    plan: TrainingPlan
    run: RunTarget | None = None
    init_state: dict[str, torch.Tensor] | None = None
    decode_errors: Any = None  # the run's DecodeErrorLog actor (pipelines.loader.decode_errors)


@dataclass
class WorkerState:
    """One worker's model, optimizer and schedule, and where it runs."""

    model: torch.nn.Module  # DDP-wrapped (what checkpoints unwrap)
    train_model: torch.nn.Module  # what the steps call (compiled when the settings say so)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step: StepSettings
    feed: DeviceFeed  # host batches -> normalised device tensors, one batch ahead on CUDA
    train_feeds: dict[str, DeviceFeed]  # the same for each train dataset of the shape schedule
    val_cache: ValCache  # the val batches, kept after a pass when every rank's share fits
    rank: int
    world: int
    announced_phase: int = -1  # the schedule's phase rank 0 last announced


def train_func(config: dict[str, Any]) -> None:
    """Entry point of every Ray Train worker (``train_loop_per_worker``)."""
    import ray.train  # only ever runs inside a Ray Train worker

    setup: WorkerSetup = config["setup"]
    worker = build_worker(setup)
    start_epoch = resume(worker, setup.plan, ray.train.get_checkpoint())
    for epoch in range(start_epoch, setup.plan.epochs):
        metrics, confusion = run_epoch(worker, setup.plan, epoch)
        add_decode_errors(worker, setup, metrics)
        report_epoch(worker, setup, epoch, metrics, confusion)
        if metrics.get("stop_reason"):
            return


def add_decode_errors(worker: WorkerState, setup: WorkerSetup, metrics: dict[str, Any]) -> None:
    """``decode_errors``/``val_decode_errors`` of the epoch (rank 0 reads the log, the counts
    are summed to every rank) and ``stop_reason`` when above the limit."""
    stats = DecodeErrorStats()
    if worker.rank == 0 and setup.decode_errors is not None:
        counts = take_decode_errors(setup.decode_errors)["counts"]
        job = setup.plan.job
        stats = DecodeErrorStats(
            counts.get(job.data.train_split, 0), counts.get(job.data.val_split, 0)
        )
    stats = stats.all_reduce(worker.step.device)
    metrics.update(stats.metrics())
    shape = setup.plan.shapes.phase_at(int(metrics["epoch"])).shape
    train_clips = metrics["steps"] * worker.world * shape.clips_per_step
    limit = setup.plan.job.data.max_decode_error_fraction
    reason = stats.over_limit(train_clips, metrics["val_clips"], limit)
    if reason:
        metrics["stop_reason"] = reason


def build_worker(setup: WorkerSetup) -> WorkerState:
    """Step 1: the model, optimizer and schedule of this worker."""
    # these run inside Ray Train workers; the driver imports this module without them
    import ray.train
    import ray.train.torch

    job, settings = setup.plan.job, setup.plan.device
    ctx = ray.train.get_context()
    device = ray.train.torch.get_device()
    settings.check(device)
    if ctx.get_world_rank() == 0:
        print(f"[rank 0] training on {device}: {settings.describe()}", flush=True)
    torch.manual_seed(job.train.seed)
    model = slowfast_model.build_model(setup.plan.model)
    if setup.init_state is not None:
        model.load_state_dict(setup.init_state, strict=True)
    model = prepare_network(model, setup.plan)  # sub-batch BN for multigrid
    model = ray.train.torch.prepare_model(settings.place(model, device))
    train_model, compile_note = compile_network(model, setup.plan)
    if compile_note and ctx.get_world_rank() == 0:
        report_note(compile_note)
    optimizer = torch.optim.SGD(
        build_param_groups(model, job.optim.weight_decay, job.optim.bn_weight_decay),
        lr=setup.plan.peak_lr,
        momentum=job.optim.momentum,
        nesterov=job.optim.nesterov and job.optim.momentum > 0,
    )
    step = StepSettings(
        spec=setup.plan.clip,
        device=device,
        settings=settings,
        label_smoothing=job.optim.label_smoothing,
        grad_clip_norm=job.optim.grad_clip_norm,
    )
    return WorkerState(
        model=model,
        train_model=train_model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, step_lr_lambda(setup.plan)),
        step=step,
        feed=step.feed(),
        train_feeds=phase_feeds(setup.plan, step),
        val_cache=ValCache(job.data.val_cache_mb * 2**20),
        rank=ctx.get_world_rank(),
        world=ctx.get_world_size(),
    )


def resume(worker: WorkerState, plan: TrainingPlan, checkpoint) -> int:
    """Step 2: load the latest checkpoint, if any; returns the first epoch to run."""
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as ckpt_dir:
        state = load_state(ckpt_dir, map_location="cpu")
    unwrap_model(worker.model).load_state_dict(state.model)
    if state.optimizer:
        worker.optimizer.load_state_dict(state.optimizer)
    if state.scheduler:
        worker.scheduler.load_state_dict(state.scheduler)
    where = resume_note(state.schedule, plan, state.epoch + 1)
    report_note(f"[rank {worker.rank}] resumed from checkpoint of epoch {state.epoch}: {where}")
    return state.epoch + 1


def run_epoch(
    worker: WorkerState, plan: TrainingPlan, epoch: int
) -> tuple[dict[str, Any], torch.Tensor]:
    """Step 3: train on this worker's shard, then validate; metrics summed over ranks."""
    job = plan.job
    shape = epoch_shape(plan, worker.train_feeds, epoch)
    _enter_epoch(worker, plan, shape)
    host = _host_batches(worker, job.data.prefetch_batches)
    batches = _train_batches(worker, plan, epoch, host, shape.data_key, shape.batch)
    lr_now = worker.optimizer.param_groups[0]["lr"]
    reporter = None
    if worker.rank == 0:
        reporter = StepReporter(epoch, plan.epochs, shape.steps)
    stats = train_one_epoch(
        worker.train_model,
        worker.optimizer,
        worker.scheduler,
        batches,
        worker.step,
        job.train.max_steps_per_epoch,
        feed=shape.feed,
        on_step=reporter,
    )
    steps = int(stats.steps)
    summed = stats.all_reduce(worker.step.device)
    sync_buffers(worker.model)
    val, confusion, cached = _validate_epoch(worker, plan, epoch, host)
    metrics = {
        "epoch": epoch,
        **summed.metrics(worker.world),
        "lr": lr_now,
        "steps": steps,
        "world_size": worker.world,
        **val.metrics(),
        "val_from_memory": float(cached),  # 1: validated from the kept batches, no decode
        "phase": shape.phase_index,  # the shape schedule's phase (training.worker.phases)
    }
    if job.train.log_param_digest:
        metrics["param_digest"] = param_digest(worker.model)
    return metrics, confusion


def _enter_epoch(worker: WorkerState, plan: TrainingPlan, shape: EpochShape) -> None:
    """The epoch's BatchNorm groups; rank 0 announces a phase it has not announced yet."""
    line = enter_epoch(unwrap_model(worker.model), plan, shape)
    if line and worker.rank == 0 and worker.announced_phase != shape.phase_index:
        report_note(line)
    worker.announced_phase = shape.phase_index


def _train_batches(
    worker: WorkerState,
    plan: TrainingPlan,
    epoch: int,
    host: dict[str, Any],
    key: str,
    batch_size: int,
):
    """This worker's shard of the train dataset ``key`` (the epoch's shape) for ``epoch``:
    shuffled with a seed of its own (run seed, epoch, rank), the last partial batch dropped."""
    import ray.train  # runs inside a Ray Train worker

    job = plan.job
    return ray.train.get_dataset_shard(key).iter_torch_batches(
        batch_size=batch_size,
        drop_last=True,
        local_shuffle_buffer_size=job.data.shuffle_buffer or None,
        local_shuffle_seed=job.train.seed + epoch * 1000 + worker.rank,
        **host,
    )


def _validate_epoch(worker: WorkerState, plan: TrainingPlan, epoch: int, host: dict[str, Any]):
    """Validate on this worker's shard of the val split, from the kept batches when the val
    cache holds them; after the first pass, settle whether later epochs keep them.

    Returns ``(val stats, confusion matrix, validated from memory)``.
    """
    import ray.train  # runs inside a Ray Train worker

    job = plan.job
    val_batches = worker.val_cache.batches(
        lambda: ray.train.get_dataset_shard("val").iter_torch_batches(
            batch_size=job.train.batch_size, **host
        )
    )
    cached = worker.val_cache.active
    val, confusion = validate(
        unwrap_model(worker.model), val_batches, worker.step, plan.model.num_classes, worker.feed
    )
    later_epochs = epoch + 1 < plan.epochs
    if not cached and later_epochs and worker.val_cache.settle(_agree(worker)) and worker.rank == 0:
        report_note(
            f"validation clips kept in memory ({worker.val_cache.kept_bytes / 2**20:.1f} MiB "
            "per worker): later epochs validate without decoding (data.val_cache_mb)"
        )
    return val, confusion, cached


def _agree(worker: WorkerState):
    """``fits -> fits on every rank`` (an all-reduce on the worker's device)."""
    return lambda fits: all_ranks_agree(fits, worker.step.device)


def _host_batches(worker: WorkerState, prefetch_batches: int) -> dict[str, Any]:
    """How Ray Data hands batches to the feed: on the host (``device="cpu"``: the feed copies
    them, see :mod:`training.device.inputs`), pinned by its fetch threads when the device is a GPU,
    ``prefetch_batches`` ahead."""
    on_gpu = worker.step.device.type == "cuda"
    return {"device": "cpu", "pin_memory": on_gpu, "prefetch_batches": prefetch_batches}


def report_epoch(
    worker: WorkerState,
    setup: WorkerSetup,
    epoch: int,
    metrics: dict[str, Any],
    confusion: torch.Tensor,
) -> None:
    """Step 4: MLflow and the checkpoint (rank 0), the report to Ray Train (every rank)."""
    import ray.train  # runs inside a Ray Train worker

    job = setup.plan.job
    if not math.isfinite(metrics["train_loss"]):  # before any checkpoint of this epoch
        raise FloatingPointError(f"training loss is {metrics['train_loss']} at epoch {epoch}")
    if worker.rank == 0 and setup.run is not None:
        setup.run.log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, step=epoch)
    last = epoch == setup.plan.epochs - 1
    want_ckpt = (epoch + 1) % job.checkpoint.every_n_epochs == 0 or last
    if want_ckpt and worker.rank == 0:
        state = _checkpoint_state(worker, setup.plan, epoch, metrics, confusion)
        with tempfile.TemporaryDirectory() as tmp:
            save_state(state, tmp)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(metrics)
    if worker.rank == 0:
        report_epoch_event(metrics, setup.plan.epochs)


def _checkpoint_state(
    worker: WorkerState,
    plan: TrainingPlan,
    epoch: int,
    metrics: dict[str, Any],
    confusion: torch.Tensor,
) -> TrainingState:
    """The checkpoint of ``epoch``: weights, optimizer, schedule, spec, classes, config."""
    return TrainingState(
        model={k: v.detach().cpu() for k, v in unwrap_model(worker.model).state_dict().items()},
        model_config=asdict(plan.model),
        clip_spec=plan.clip,
        classes=list(plan.classes),
        epoch=epoch,
        global_step=int(worker.scheduler.last_epoch),
        optimizer=worker.optimizer.state_dict(),
        scheduler=worker.scheduler.state_dict(),
        job_config=to_dict(recorded_job(plan.job)),
        metrics={
            k: float(v) for k, v in metrics.items() if k not in ("param_digest", "stop_reason")
        },
        confusion=confusion.tolist(),
        schedule=checkpoint_schedule(plan, epoch),
    )
