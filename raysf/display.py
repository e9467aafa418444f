"""Progress displays and the text of durations and paths, drawn on the :mod:`raysf.console`.

A :class:`Progress` is one long phase (ingest, an epoch, an evaluation, a sweep): count, rate,
ETA and a note, redrawn in place on a terminal or printed as plain lines off one by the open
console session (or on stdout without one). :func:`format_duration`, :func:`short_path` and
:func:`eta_seconds` are the small formatters the displays and the commands' summary lines share.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from raysf import console

# ----------------------------------------------------------------------------- formatting


def format_duration(seconds: float) -> str:
    """``42s``, ``3:07``, ``1:02:03``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def short_path(path: str | os.PathLike) -> str:
    """``path`` relative to the current folder when it is below it (URIs unchanged)."""
    text = os.fspath(path)
    if "://" in text:
        return text
    absolute = os.path.abspath(text)
    cwd = os.getcwd()
    return os.path.relpath(absolute, cwd) if absolute.startswith(cwd + os.sep) else text


def eta_seconds(done: float, total: float | None, elapsed: float) -> float | None:
    """Remaining seconds at the mean rate so far; ``None`` before any progress or without a total."""
    if not total or done <= 0 or elapsed <= 0:
        return None
    return max(0.0, (total - done) * elapsed / done)


# ----------------------------------------------------------------------------- progress


@dataclass
class Progress:
    """One progress display: ``label  count/total unit  rate/s  ETA  note``.

    Update it with :meth:`update`; :meth:`close` prints its last line (``summary`` or the
    display's own text with the elapsed time). Works without a session (plain lines on stdout).
    """

    label: str
    total: float | None = None
    unit: str = ""
    show_rate: bool = True
    count: float = 0
    note: str = ""
    started: float = field(default_factory=time.monotonic)
    last_line: float = field(default_factory=time.monotonic)
    closed: bool = False

    def text(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.started
        parts = [self.label]
        if self.total:
            parts.append(f"{self.count:g}/{self.total:g} {self.unit}".rstrip())
        elif self.count:
            parts.append(f"{self.count:g} {self.unit}".rstrip())
        if self.show_rate and self.count and elapsed > 0:
            rate, per = self.count / elapsed, "s"
            if rate < 0.1:  # slow phases (trials, epochs): per minute
                rate, per = rate * 60, "min"
            parts.append(f"{rate:.2f} {self.unit or 'items'}/{per}")
        eta = eta_seconds(self.count, self.total, elapsed)
        if eta is not None and self.count < (self.total or 0):
            parts.append(f"ETA {format_duration(eta)}")
        if self.note:
            parts.append(self.note)
        return " · ".join(parts)

    def update(
        self,
        count: float | None = None,
        *,
        advance: float = 0,
        total: float | None = None,
        note: str | None = None,
    ) -> None:
        self.count = self.count + advance if count is None else count
        self.total = self.total if total is None else total
        self.note = self.note if note is None else note
        console.current().show(self)

    def close(self, summary: str | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        elapsed = format_duration(time.monotonic() - self.started)
        console.current().finish(self, summary or f"{self.text()} · {elapsed}")
