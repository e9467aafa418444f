"""Finding Ray Train worker processes from a test, without the dashboard's state API."""

from __future__ import annotations

from pathlib import Path


def train_worker_pids() -> list[int]:
    """PIDs of live Ray Train worker actors on this machine (Ray titles them ``ray::RayTrainWorker``).

    Read from /proc rather than through ``ray.util.state``: the in-process and subprocess Rays of
    these tests run without the dashboard, which the state API needs.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # the process exited meanwhile
            continue
        if cmdline.startswith(b"ray::RayTrainWorker"):
            pids.append(int(entry.name))
    return sorted(pids)
