"""The shape schedule as the run prints it at start and logs it to MLflow: a text table
(:func:`schedule_table`) and JSON-ready rows (:func:`schedule_rows`)."""

from __future__ import annotations

from typing import Any

from training.multigrid.schedule import ShapeSchedule

HEADER = ("phase", "epochs", "T x tau", "crop", "batch", "lr x", "short cycle (batches@crop)")


def schedule_rows(schedule: ShapeSchedule) -> list[dict[str, Any]]:
    """One dict per phase: its epochs, clip shape, batch per worker, learning-rate factor and
    short cycle (``[[micro_batches, crop], ...]``)."""
    return [
        {
            "phase": phase.name,
            "first_epoch": phase.first_epoch,
            "epochs": phase.epochs,
            "slow_frames": phase.shape.slow_frames,
            "tau": phase.shape.tau,
            "crop": phase.shape.crop,
            "batch": phase.shape.batch,
            "lr_factor": phase.shape.lr_factor,
            "short_cycle": [[s.micro_batches, s.crop] for s in phase.shape.short_cycle],
        }
        for phase in schedule.phases
    ]


def schedule_table(schedule: ShapeSchedule) -> str:
    """The schedule as an aligned text table, with a line of totals under it."""
    rows = [HEADER]
    for phase in schedule.phases:
        shape = phase.shape
        rows.append(
            (
                phase.name,
                f"{phase.first_epoch}-{phase.first_epoch + phase.epochs - 1}",
                f"{shape.slow_frames} x {shape.tau}",
                str(shape.crop),
                str(shape.batch),
                f"{shape.lr_factor:g}",
                " ".join(f"{s.micro_batches}x@{s.crop}" for s in shape.short_cycle),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    base = schedule.base
    lines.append(
        f"{schedule.kind}: {schedule.epochs} epochs, {len(schedule.step_shapes())} step shapes; "
        f"plain clip {base.slow_frames} x {base.tau} at {base.crop}, batch {base.batch} per worker"
    )
    return "\n".join(lines)
