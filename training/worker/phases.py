"""The worker's side of the shape schedule (:mod:`training.multigrid.schedule`): which train
dataset, batch size, feed and learning rate each epoch and step uses. A plain run is a schedule
of one phase and goes through the same functions.

Everything here is a function of the plan and the epoch or global step, never of the rank, so
every worker trains the same shape at the same step. Multigrid networks use sub-batch
BatchNorm (groups of ``train.multigrid.bn_group`` clips of the phase's batch) and, compiled,
one static graph per step shape with Dynamo's recompile limit raised to the schedule's count.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from training.device.inputs import DeviceFeed
from training.multigrid.batchnorm import bn_splits, set_bn_splits, use_sub_batch_norm
from training.multigrid.compiled import ensure_recompile_limit
from training.multigrid.schedule import Phase, ShapeSchedule
from training.multigrid.short_cycle import ShortCycleFeed
from training.plan import TrainingPlan
from training.schedule import lr_factor
from training.worker.steps import StepSettings


def prepare_network(model: torch.nn.Module, plan: TrainingPlan) -> torch.nn.Module:
    """Sub-batch BatchNorm for a multigrid run (before DDP wraps the model)."""
    if plan.shapes.kind == "multigrid":
        use_sub_batch_norm(model)
    return model


def compile_network(
    model: torch.nn.Module, plan: TrainingPlan
) -> tuple[torch.nn.Module, str | None]:
    """``(the model the steps call, a line to log)``: compiled when the device settings say so;
    a schedule of several step shapes gets static graphs and a recompile limit that holds them
    all (:func:`training.multigrid.compiled.ensure_recompile_limit`)."""
    if not plan.device.compile:
        return model, None
    if plan.shapes.kind == "plain":
        return torch.compile(model), None
    note = ensure_recompile_limit(len(plan.shapes.step_shapes()))
    return torch.compile(model, dynamic=False), note


def step_lr_lambda(plan: TrainingPlan) -> Callable[[int], float]:
    """Factor of the peak learning rate at a global optimizer step: the warm-up and cosine of
    :func:`training.schedule.lr_factor` over the run's epochs (a step's fractional epoch from
    the planned steps of each epoch), times the phase's learning-rate factor."""
    optim, shapes = plan.job.optim, plan.shapes
    steps = [max(1, plan.epoch_steps(e)) for e in range(plan.epochs)]
    starts = [0]
    for count in steps[:-1]:
        starts.append(starts[-1] + count)

    def factor(step: int) -> float:
        epoch = min(max(bisect.bisect_right(starts, step) - 1, 0), plan.epochs - 1)
        exact = epoch + (step - starts[epoch]) / steps[epoch]
        base = lr_factor(
            exact,
            epochs=plan.epochs,
            warmup_epochs=optim.warmup_epochs,
            warmup_start_factor=optim.warmup_start_factor,
            min_factor=optim.min_lr_factor,
        )
        return base * shapes.phase_at(epoch).shape.lr_factor

    return factor


def phase_feeds(
    plan: TrainingPlan, step: StepSettings, overlap: bool = True
) -> dict[str, DeviceFeed]:
    """One device feed per train dataset of the schedule (each shape's Slow positions, crop
    and normalisation: :meth:`training.multigrid.schedule.Shape.clip_spec`)."""
    return {
        key: dataclasses.replace(step, spec=shape.clip_spec(plan.clip)).feed(overlap)
        for key, shape in plan.shapes.data_keys().items()
    }


@dataclasses.dataclass(frozen=True)
class EpochShape:
    """What the worker needs to train one epoch of the schedule."""

    phase: Phase
    phase_index: int
    data_key: str  # the train dataset shard to read
    batch: int  # clips per host batch
    feed: ShortCycleFeed
    steps: int  # planned optimizer steps


def epoch_shape(plan: TrainingPlan, feeds: dict[str, DeviceFeed], epoch: int) -> EpochShape:
    """The shape of ``epoch`` (see :class:`EpochShape`)."""
    shapes: ShapeSchedule = plan.shapes
    index = shapes.phase_index(epoch)
    phase = shapes.phases[index]
    key = phase.shape.data_key(shapes.base)
    start, steps = plan.epoch_cycle(epoch)
    feed = ShortCycleFeed(feeds[key], phase.shape.short_cycle, start)
    return EpochShape(phase, index, key, phase.shape.batch, feed, steps)


def enter_epoch(model: torch.nn.Module, plan: TrainingPlan, shape: EpochShape) -> str | None:
    """Set the sub-batch BN groups of the epoch's phase (multigrid); returns the line that
    announces the phase (the caller prints it once per phase), else ``None``."""
    if plan.shapes.kind != "multigrid":
        return None
    set_bn_splits(model, bn_splits(shape.batch, plan.job.train.multigrid.bn_group))
    return phase_line(shape.phase, plan.shapes)


def phase_line(phase: Phase, shapes: ShapeSchedule) -> str:
    """``phase 1.2 (epochs 4-5): T 2 x tau 8 at 32 px, 36 clips x [4x@16 2x@24 1x@32], lr x4.5``."""
    shape = phase.shape
    cycle = " ".join(f"{s.micro_batches}x@{s.crop}" for s in shape.short_cycle)
    last = phase.first_epoch + phase.epochs - 1
    return (
        f"{shapes.kind} phase {phase.name} (epochs {phase.first_epoch + 1}-{last + 1}): T {shape.slow_frames} "
        f"x tau {shape.tau} at {shape.crop} px, {shape.batch} clips x [{cycle}], lr x{shape.lr_factor:g}"
    )


def checkpoint_schedule(plan: TrainingPlan, epoch: int) -> dict[str, Any]:
    """What a checkpoint records of the schedule at ``epoch``: the kind, the phase and where
    the epoch lies in it."""
    shapes = plan.shapes
    index = shapes.phase_index(epoch)
    phase = shapes.phases[index]
    return {
        "kind": shapes.kind,
        "phase": phase.name,
        "phase_index": index,
        "epoch_in_phase": epoch - phase.first_epoch,
        "phase_epochs": phase.epochs,
        "epochs": shapes.epochs,
    }


def resume_note(stored: dict[str, Any], plan: TrainingPlan, epoch: int) -> str:
    """The resume line's words on the schedule: where the next epoch continues, and a warning
    when the checkpoint's schedule placed its epoch in another phase (``resume: force`` with
    new multigrid settings)."""
    if epoch >= plan.epochs:
        return "the schedule is complete"
    now = checkpoint_schedule(plan, epoch)
    text = f"continues {now['kind']} phase {now['phase']} at its epoch {now['epoch_in_phase'] + 1}/{now['phase_epochs']}"
    if stored and epoch > 0:
        before = checkpoint_schedule(plan, epoch - 1)
        if (stored.get("kind"), stored.get("phase")) != (before["kind"], before["phase"]):
            text += (
                f" (the checkpoint was written in {stored.get('kind')} phase {stored.get('phase')}, "
                f"this schedule puts its epoch in phase {before['phase']})"
            )
    return text
