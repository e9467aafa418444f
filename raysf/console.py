"""The console: what a person reads while a command runs, and where everything else goes.

Every entry point opens one :func:`session` (``raysf <command>`` = ``python -m jobs.<command>``):

- **stdout is the console**: one line per step, one progress display per long phase
  (:class:`raysf.display.Progress`: count, rate, ETA), the results. On a terminal the display
  is one line redrawn in place; off a terminal (CI, ``ray job submit``, a pipe) it is a
  plain-text line every ``interval`` seconds and a last line when the phase ends.
- **everything else goes to files** in the session's log folder (default
  ``demo_output/logs/<command>-<time>``, ``--log-dir``), named on the first console line:
  ``driver.log`` (this process's stderr: the logging and warnings of Ray, Ray Data, Tune,
  MLflow, torch; the C++ core worker's lines), ``ray-workers.log`` (every Ray worker's and
  actor's output, with Ray's ``(Name pid=..)`` prefix) and ``ray-session`` (a link to Ray's
  session logs: raylet, GCS).
- ``--verbose`` leaves stderr on the terminal and prints Ray's worker output there too.

**Events.** Code in Ray workers (a training worker's steps and epochs) calls :func:`emit`: one
line ``[raysf:event] {json}`` on its stdout. Ray forwards worker output to the driver, where
:mod:`raysf.ray_output` (installed by :func:`raysf.runtime.init_ray`) hands these lines to
:func:`dispatch`: to the handlers the driver registered with :func:`handlers`, else the
event's ``text`` (if any) is printed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from raysf.display import Progress

#: Prefix of an event line on a worker's stdout.
EVENT_PREFIX = "[raysf:event] "
#: Where logs go when no ``--log-dir`` is given (next to the demo's other outputs).
DEFAULT_LOG_ROOT = Path("demo_output/logs")
#: Seconds between the plain-text lines of a progress display when stdout is not a terminal.
PLAIN_INTERVAL = 300.0

_session: Session | None = None
_ORIGIN, _SEQUENCE = uuid.uuid4().hex[:12], itertools.count()


# ----------------------------------------------------------------------------- session


class Session:
    """The console of one command: the live display, the event handlers, the log files."""

    def __init__(
        self,
        out: TextIO,
        *,
        log_dir: Path | None = None,
        verbose: bool = True,
        tty: bool | None = None,
        interval: float = PLAIN_INTERVAL,
    ):
        self.out = out
        self.log_dir = log_dir
        self.verbose = verbose
        self.tty = out.isatty() if tty is None else tty
        self.interval = interval
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self.live: Progress | None = None
        self.lock = threading.RLock()
        self.worker_log: TextIO | None = None
        if log_dir is not None:
            self.worker_log = open(log_dir / "ray-workers.log", "a", buffering=1)  # noqa: SIM115

    # -- lines
    def line(self, text: str) -> None:
        """Print one line, keeping a live display below it on a terminal."""
        with self.lock:
            if self.tty and self.live is not None:
                self.out.write("\r\x1b[K")
            self.out.write(text + "\n")
            if self.tty and self.live is not None:
                self.out.write(self._fit(self.live.text()))
            self.out.flush()

    def show(self, display: Progress) -> None:
        now = time.monotonic()
        with self.lock:
            self.live = display
            if self.tty:
                self.out.write("\r\x1b[K" + self._fit(display.text(now)))
                self.out.flush()
            elif now - display.last_line >= self.interval:
                display.last_line = now
                self.out.write(display.text(now) + "\n")
                self.out.flush()

    def finish(self, display: Progress, text: str) -> None:
        with self.lock:
            if self.live is display:
                if self.tty:
                    self.out.write("\r\x1b[K")
                self.live = None
            self.line(text)

    def _fit(self, text: str) -> str:
        try:
            width = os.get_terminal_size().columns
        except OSError:
            width = 120
        return text if len(text) < width else text[: width - 2] + "…"

    # -- events and worker output
    def dispatch(self, event: dict[str, Any]) -> None:
        handler = self.handlers.get(event.get("kind", ""))
        if handler is not None:
            with self.lock:
                handler(event)

    def write_worker_lines(self, data: dict[str, Any], lines: list[str]) -> None:
        if self.worker_log is None or not lines:
            return
        who = data.get("actor_name") or data.get("task_name") or ""
        pid = data.get("pid")
        if pid == "autoscaler":  # its whole monitor log; Ray itself shows only its events
            lines = [t for t in lines if ":event_summary:" in t]
        prefix = f"({who} pid={pid}, ip={data.get('ip')})" if who else f"(pid={pid})"
        if pid in ("raylet", "autoscaler", "gcs_server"):
            prefix = f"({pid})"
        with self.lock:
            self.worker_log.writelines(f"{prefix} {line}\n" for line in lines)

    def close(self) -> None:
        if self.worker_log is not None:
            self.worker_log.close()


def current() -> Session:
    """The open session, or a plain stdout console for library use without one."""
    return _session or Session(sys.stdout, tty=False, interval=PLAIN_INTERVAL)


def line(text: str) -> None:
    """Print one console line (between the lines of a live progress display)."""
    current().line(text)


def error(text: str) -> None:
    """An error for the user: on the terminal's stderr even while stderr goes to a file."""
    print(text, file=_real_stderr or sys.stderr, flush=True)


# ----------------------------------------------------------------------------- events


def emit(kind: str, **payload: Any) -> None:
    """Report an event to the driver's console (from a Ray worker, or from the driver itself);
    ``text``, when given, is what a console without a handler for ``kind`` prints. A worker's
    event carries an id: the driver drops a line that Ray forwards twice (raysf.ray_output)."""
    if _session is not None:
        dispatch({"kind": kind, **payload})
        return
    event = {"kind": kind, **payload, "id": f"{_ORIGIN}-{next(_SEQUENCE)}"}
    # sys.stdout.write, not print: Ray Train wraps print() in its workers into a logger that
    # also echoes the line, and the driver would see it twice.
    sys.stdout.write(EVENT_PREFIX + json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def parse_event(text: str) -> dict[str, Any] | None:
    """The event of a worker output line, or ``None`` for any other line."""
    at = text.find(EVENT_PREFIX)
    if at < 0:
        return None
    try:
        event = json.loads(text[at + len(EVENT_PREFIX) :])
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def dispatch(event: dict[str, Any]) -> None:
    """Hand an event to its handler in the open session; without one, print its ``text``."""
    if _session is not None and event.get("kind") in _session.handlers:
        _session.dispatch(event)
    elif event.get("text"):
        current().line(str(event["text"]))


def write_worker_lines(data: dict[str, Any], lines: list[str]) -> bool:
    """Write Ray worker output to the session's ``ray-workers.log``; ``True`` when the console
    should print it too (``--verbose``, or no session)."""
    if _session is None:
        return True
    _session.write_worker_lines(data, lines)
    return _session.verbose


@contextlib.contextmanager
def stdout_to_log() -> Iterator[None]:
    """Send what libraries ``print`` (Ray Tune's banners) to ``driver.log`` while the block
    runs; the console's own lines still reach the terminal. No-op with ``--verbose``."""
    if _session is None or _session.verbose or _session.log_dir is None:
        yield
        return
    with open(_session.log_dir / "driver.log", "a") as log, contextlib.redirect_stdout(log):
        yield


def log_dir() -> Path | None:
    return _session.log_dir if _session is not None else None  # the open session's folder


@contextlib.contextmanager
def handlers(**by_kind: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """Handle events of these kinds while the block runs (no-op without a session)."""
    session = _session
    if session is None:
        yield
        return
    with session.lock:
        saved = {k: session.handlers.get(k) for k in by_kind}
        session.handlers.update(by_kind)
    try:
        yield
    finally:
        with session.lock:
            for kind, old in saved.items():
                if old is None:
                    session.handlers.pop(kind, None)
                else:
                    session.handlers[kind] = old


# ----------------------------------------------------------------------------- the session


_real_stderr: TextIO | None = None


def _new_log_folder(command: str) -> Path:
    """``DEFAULT_LOG_ROOT/<command>-<time>``, created; ``...-<time>-<pid>`` when another command
    of the same name took that folder in the same second (two jobs on one machine)."""
    folder = DEFAULT_LOG_ROOT / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()
    except FileExistsError:
        folder = folder.with_name(f"{folder.name}-{os.getpid()}")
    return folder


@contextlib.contextmanager
def session(
    command: str,
    *,
    verbose: bool = False,
    log_dir: str | os.PathLike | None = None,
    interval: float = PLAIN_INTERVAL,
) -> Iterator[Session]:
    """The console of one command (see the module docstring); restores everything on exit."""
    global _session
    folder = Path(log_dir) if log_dir else _new_log_folder(command)
    folder.mkdir(parents=True, exist_ok=True)
    console = Session(sys.stdout, log_dir=folder, verbose=verbose, interval=interval)
    previous, _session = _session, console
    where = "here (--verbose)" if verbose else f"to {folder}/ (--verbose shows them here)"
    console.line(f"[{command}] Ray and library logs go {where}")
    try:
        with _stderr_to(None if verbose else folder / "driver.log"):
            yield console
    finally:
        _session = previous
        console.close()


@contextlib.contextmanager
def _stderr_to(path: Path | None) -> Iterator[None]:
    """Point file descriptor 2 (Python's, the C++ core worker's and child processes' stderr) at
    ``path``. It is restored before an exception leaves the session, so Python prints its
    traceback on the terminal; :func:`error` writes there meanwhile."""
    global _real_stderr
    if path is None:
        yield
        return
    sys.stderr.flush()
    saved_fd = os.dup(2)
    terminal = os.fdopen(os.dup(saved_fd), "w", buffering=1, errors="backslashreplace")
    with open(path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 2)
    # Python's own writes too, where sys.stderr is not file descriptor 2 (a test's capture)
    previous_stream, sys.stderr = sys.stderr, open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    previous, _real_stderr = _real_stderr, terminal
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = previous_stream
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        _real_stderr = previous
        terminal.close()


def add_console_arguments(parser) -> None:
    """``--verbose`` and ``--log-dir``: the console options shared by every entry point."""
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's and the libraries' logs on the console instead of only in files",
    )
    parser.add_argument(
        "--log-dir",
        default=None,
        help=f"folder for the logs (default: {DEFAULT_LOG_ROOT}/<command>-<time>)",
    )
