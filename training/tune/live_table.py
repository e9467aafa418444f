"""The sweep's progress table on the console: :class:`SweepProgress`, a Ray Tune callback.

Tune's own table shows a trial's config as one truncated dict (``... 'base_lr': 0.4}}``); this
one has a column per swept dimension (pathways, fusion, α, β, fast input, and the learning rate
when it is swept) and the key metrics. The header is printed when the sweep starts and a row
when a trial ends (finished, stopped early, failed); meanwhile one progress display shows the
trials done, the running ones with their epoch and validation top-1, and the ETA. The trials'
own training events (their epochs and steps) stay in the log files.
"""

from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback

from raysf import console, display
from training.tune.space import FUSION_LABEL

#: (header, width) of the swept dimensions; the learning rate only when it is swept.
DIM_COLUMNS = (("pathways", 9), ("fusion", 10), ("α", 3), ("β", 5), ("fast input", 10))
LR_COLUMN = ("lr", 6)


def dim_cell(name: str, dims: dict[str, Any]) -> str:
    """A point's value in the column ``name`` (``-`` where it does not apply)."""
    if name == "pathways":
        return str(dims["pathways"])
    if name == "fusion":
        return FUSION_LABEL.get(dims["fusion"], dims["fusion"]) if dims["fusion"] else "-"
    if name == "α":
        return "-" if dims["alpha"] is None else str(dims["alpha"])
    if name == "β":
        return "-" if dims["beta_inv"] is None else f"1/{dims['beta_inv']}"
    if name == "fast input":
        return str(dims["fast_input"] or "-")
    return f"{dims['base_lr']:g}"


RESULT_COLUMNS = (
    ("status", 13),
    ("epochs", 6),
    ("val top-1", 9),
    ("val loss", 8),
    ("time", 7),
)


class SweepProgress(Callback):
    """Prints the sweep's progress table (see the module docstring).

    Args:
        points: ``Point.as_dict()`` of every trial, in the sweep's order.
        epochs: epochs per trial.
    """

    def __init__(self, points: list[dict[str, Any]], epochs: int):
        self.points = {p["key"]: p for p in points}
        self.epochs = epochs
        lrs = {p["dims"].get("base_lr") for p in points}
        self.columns = [*DIM_COLUMNS, *([LR_COLUMN] if len(lrs) > 1 else [])]
        self.key_width = max([5, *(len(k) for k in self.points)])
        self.results: dict[str, dict[str, Any]] = {}
        self.started: dict[str, float] = {}
        self.done = 0
        self.display: display.Progress | None = None

    # -- formatting
    def header(self) -> str:
        cells = [f"{'trial':<{self.key_width}}"]
        cells += [f"{name:<{width}}" for name, width in self.columns]
        cells += [f"{name:<{width}}" for name, width in RESULT_COLUMNS]
        return "  ".join(cells).rstrip()

    def row(self, key: str, status: str) -> str:
        dims = self.points.get(key, {}).get("dims", {})
        result = self.results.get(key, {})
        top1, loss = result.get("val_top1"), result.get("val_loss")
        done = int(result["epoch"]) + 1 if "epoch" in result else 0
        seconds = time.monotonic() - self.started.get(key, time.monotonic())
        cells = [f"{key:<{self.key_width}}"]
        cells += [f"{dim_cell(n, dims) if dims else '?':<{w}}" for n, w in self.columns]
        values = (
            status,
            f"{done}/{self.epochs}",
            "-" if top1 is None else f"{100 * top1:.1f}%",
            "-" if loss is None else f"{loss:.3f}",
            display.format_duration(seconds),
        )
        cells += [f"{v:<{w}}" for v, (_, w) in zip(values, RESULT_COLUMNS, strict=True)]
        return "  ".join(cells).rstrip()

    def running_note(self) -> str:
        running = [
            k for k in self.started if k not in self.results or "_ended" not in self.results[k]
        ]
        parts = []
        for key in running[:3]:
            result = self.results.get(key, {})
            epoch = int(result["epoch"]) + 1 if "epoch" in result else 0
            top1 = result.get("val_top1")
            acc = "" if top1 is None else f" top-1 {100 * top1:.1f}%"
            parts.append(f"{key} epoch {epoch}/{self.epochs}{acc}")
        return "running: " + ", ".join(parts) if parts else ""

    # -- Tune callback hooks (they run in the sweep's driver)
    def setup(self, **info) -> None:
        console.line(self.header())
        self.display = display.Progress("sweep", total=len(self.points), unit="trials")

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.started[_key(trial)] = time.monotonic()
        self._refresh()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.results.setdefault(_key(trial), {}).update(
            {k: result[k] for k in ("epoch", "val_top1", "val_loss") if k in result}
        )
        self._refresh()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        key = _key(trial)
        done = int(self.results.get(key, {}).get("epoch", -1)) + 1
        self._ended(key, "finished" if done >= self.epochs else "stopped early")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._ended(_key(trial), "error")

    def on_experiment_end(self, trials, **info) -> None:
        if self.display is not None:
            self.display.close(f"sweep: {self.done}/{len(self.points)} trials ended")
            self.display = None

    def _ended(self, key: str, status: str) -> None:
        self.done += 1
        console.line(self.row(key, status))
        self.results.setdefault(key, {})["_ended"] = True
        self._refresh()

    def _refresh(self) -> None:
        if self.display is not None:
            self.display.update(self.done, note=self.running_note())


def _key(trial) -> str:
    return str(trial.config.get("point", {}).get("key", trial.trial_id))


def ignore_trial_events():
    """While the sweep runs, the trials' training events stay out of the console."""
    return console.handlers(train_step=_ignore, train_epoch=_ignore, note=_ignore)


def _ignore(event: dict[str, Any]) -> None:
    return None
