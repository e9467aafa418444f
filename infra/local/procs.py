"""Process-group lifecycle, free-port discovery and HTTP readiness polling.

Every service is started with ``start_new_session=True`` so that it leads its own
process group: stopping a service signals the whole group (the server and every
worker it forked) and never touches processes of another test or engineer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"

_handed_out: set[int] = set()
_port_lock = threading.Lock()


def _bindable(port: int, host: str = "") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "") -> int:
    """Return a TCP port that is free now and not yet handed out by this process.

    The kernel picks the port (bind to 0 on ``host``, default all addresses, so the port is
    free on every loopback address); ports already returned by this function in this
    process are skipped so that two services started back to back never collide.
    """
    with _port_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no free TCP port found on {host} after 100 tries")


def free_port_range(size: int, low: int = 12000, high: int = 30000) -> tuple[int, int]:
    """Return ``(first, last)`` of ``size`` consecutive free ports below the ephemeral range.

    Used for Ray's ``--min-worker-port/--max-worker-port``: each node of a cluster gets
    its own disjoint range. The search starts at a pid-dependent offset so that
    concurrent test sessions are unlikely to probe the same ranges.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    span = high - low - size
    start = low + (os.getpid() * 97) % span
    with _port_lock:
        for step in range(0, span, size):
            first = low + (start - low + step) % span
            ports = range(first, first + size)
            if any(p in _handed_out for p in ports):
                continue
            if all(_bindable(p) for p in ports):
                _handed_out.update(ports)
                return first, first + size - 1
    raise RuntimeError(f"no {size} consecutive free ports in [{low}, {high})")


@dataclass
class ServiceProcess:
    """A service process that leads its own process group, with its log file.

    Attributes:
        name: short label used in error messages.
        popen: the started process (its pid is also the process-group id).
        log_path: file receiving the process's stdout and stderr.
    """

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log_handle: object = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, max_chars: int = 4000) -> str:
        """Return the last ``max_chars`` characters of the service log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"
        return text[-max_chars:]

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left after ``timeout`` s."""
        signal_group(self.popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while group_alive(self.popen.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        signal_group(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        if self._log_handle is not None:
            self._log_handle.close()  # type: ignore[attr-defined]
            self._log_handle = None


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is already gone is ignored."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """True while any process of group ``pgid`` exists (zombies of our children excluded)."""
    for pid in _all_pids():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            return True
    return False


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; split after the last ")"
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> set[int]:
    """Pids of every live process below ``root`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        parent = _parent_pid(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def find_pids(*needles: str, under: int | None = None) -> list[int]:
    """Return pids whose command line contains every string in ``needles``; with ``under``,
    only descendants of that pid (a test's own Ray workers, never another engineer's on a
    shared machine)."""
    found = []
    scope = descendants(under) if under is not None else None
    for pid in _all_pids():
        if scope is not None and pid not in scope:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmdline for n in needles):
            found.append(pid)
    return found


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ServiceProcess:
    """Start ``argv`` in a new session (own process group), output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log_path, "ab")  # noqa: SIM115 - closed by ServiceProcess.stop
    popen = subprocess.Popen(
        list(argv),
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        cwd=str(cwd) if cwd is not None else None,
        start_new_session=True,
    )
    return ServiceProcess(name=name, popen=popen, log_path=log_path, _log_handle=handle)


def start_service(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    ready_url: str,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> ServiceProcess:
    """:func:`spawn` a service and wait until ``ready_url`` answers 200 (:func:`wait_http`);
    a service that does not come up is stopped before the error propagates."""
    process = spawn(name, argv, log_path, env=env)
    try:
        wait_http(ready_url, timeout, process)
    except BaseException:
        process.stop()
        raise
    return process


def find_executable(name: str, missing: str) -> str:
    """The ``name`` CLI next to the running interpreter (the venv's), else from PATH.

    Raises:
        FileNotFoundError: with the message ``missing`` when it is in neither place.
    """
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(missing)
    return found


def http_get(
    url: str, headers: Mapping[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """GET ``url`` and return ``(status, body)``; HTTP error statuses are returned, not raised."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_http(
    url: str,
    timeout: float,
    service: ServiceProcess | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Poll ``url`` until it answers 200, failing fast if ``service`` exits.

    Raises:
        RuntimeError: the service process exited before it became ready.
        TimeoutError: no 200 within ``timeout`` seconds (the message has the log tail).
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if service is not None and not service.alive():
            raise RuntimeError(
                f"{service.name} exited with code {service.popen.returncode} before "
                f"{url} was ready; log {service.log_path}:\n{service.log_tail()}"
            )
        try:
            status, _ = http_get(url, headers=headers, timeout=2.0)
            if status == 200:
                return
            last = f"HTTP {status}"
        except (OSError, urllib.error.URLError) as err:
            last = repr(err)
        time.sleep(0.2)
    tail = f"; log {service.log_path}:\n{service.log_tail()}" if service else ""
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s (last: {last}){tail}")
