"""Training progress on the console: events from rank 0 of the workers, one display on the driver.

Rank 0 reports its steps (:class:`StepReporter`, at most one event every ``interval`` seconds)
and each finished epoch (:func:`report_epoch_event`) with :func:`raysf.console.emit`; the
driver's :class:`TrainingDisplay` turns them into one progress display per epoch (step, clips/s,
data wait, loss, ETA) that ends in the epoch's one summary line. A run without a console
session (a Tune trial, a library call) prints only the summary lines.
"""

from __future__ import annotations

import time
from typing import Any

from raysf import console, display

STEP_EVENT = "train_step"
EPOCH_EVENT = "train_epoch"
NOTE_EVENT = "note"


class StepReporter:
    """Called by :func:`training.worker.steps.train_one_epoch` after every step of rank 0; emits a
    ``train_step`` event at most every ``interval`` seconds (the loss is read only then)."""

    def __init__(self, epoch: int, epochs: int, steps: int, interval: float = 2.0):
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.interval = interval
        self.last = time.monotonic()

    def __call__(self, stats, loss, elapsed: float) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        console.emit(
            STEP_EVENT,
            epoch=self.epoch,
            epochs=self.epochs,
            step=int(stats.steps),
            steps=self.steps,
            clips_per_s=stats.samples / max(elapsed, 1e-9),
            wait=stats.wait / max(elapsed, 1e-9),
            loss=float(loss),
        )


def epoch_text(metrics: dict[str, Any], epochs: int) -> str:
    """The one summary line of an epoch."""
    return (
        f"epoch {int(metrics['epoch']) + 1}/{epochs} · loss {metrics['train_loss']:.4f} · "
        f"val top-1 {100 * metrics['val_top1']:.1f}% · {metrics['clips_per_s']:.1f} clips/s · "
        f"data wait {100 * metrics['data_wait_frac']:.0f}%{decode_error_note(metrics)}"
    )


def decode_error_note(metrics: dict[str, Any]) -> str:
    """`` · decode errors 1 (val 0)`` for the epoch line, ``""`` when no record was dropped."""
    train, val = metrics.get("decode_errors", 0), metrics.get("val_decode_errors", 0)
    return f" · decode errors {train} (val {val})" if train or val else ""


def report_epoch_event(metrics: dict[str, Any], epochs: int) -> None:
    """Rank 0's end-of-epoch event (its ``text`` is the summary line)."""
    keys = ("epoch", "train_loss", "val_top1", "clips_per_s", "data_wait_frac")
    console.emit(
        EPOCH_EVENT,
        text=epoch_text(metrics, epochs),
        epochs=epochs,
        **{k: metrics[k] for k in keys},
    )


def report_note(text: str) -> None:
    """A line the user should see (e.g. a resume), from any process."""
    console.emit(NOTE_EVENT, text=text)


class TrainingDisplay:
    """The driver's display of a training run; use as ``with display.active(): trainer.fit()``."""

    def __init__(self, name: str, epochs: int, steps: int):
        self.name, self.epochs, self.steps = name, epochs, steps
        self.display: display.Progress | None = None
        self.started = time.monotonic()
        self.epoch_times: list[float] = []
        self.epoch_started = time.monotonic()

    def active(self):
        return console.handlers(
            **{STEP_EVENT: self.on_step, EPOCH_EVENT: self.on_epoch, NOTE_EVENT: self.on_note}
        )

    def _epoch_display(self, epoch: int) -> display.Progress:
        if self.display is None:
            self.display = display.Progress(
                f"{self.name} epoch {epoch + 1}/{self.epochs}",
                total=self.steps,
                unit="steps",
                show_rate=False,
            )
        return self.display

    def on_step(self, event: dict[str, Any]) -> None:
        shown = self._epoch_display(int(event["epoch"]))
        note = (
            f"{event['clips_per_s']:.1f} clips/s · data wait {100 * event['wait']:.0f}% · "
            f"loss {event['loss']:.4f}"
        )
        shown.update(event["step"], total=event.get("steps") or self.steps, note=note)

    def on_epoch(self, event: dict[str, Any]) -> None:
        now = time.monotonic()
        self.epoch_times.append(now - self.epoch_started)
        self.epoch_started = now
        left = self.epochs - int(event["epoch"]) - 1
        text = f"{self.name} {event['text']} · {display.format_duration(self.epoch_times[-1])}"
        if left > 0:
            mean = sum(self.epoch_times) / len(self.epoch_times)
            text += f" · run ETA {display.format_duration(left * mean)}"
        shown = self._epoch_display(int(event["epoch"]))
        shown.close(text)
        self.display = None

    def on_note(self, event: dict[str, Any]) -> None:
        console.line(f"{self.name} {event['text']}")
