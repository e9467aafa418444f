"""Ray's worker output on the driver, routed through the console (:mod:`raysf.console`).

A Ray driver prints what its workers and actors write (and the error messages the cluster
pushes to it, such as the raylet's warnings) through one function,
``ray._private.worker.print_to_stdstream``. :func:`route_ray_output` replaces it, before
``ray.init``, with :func:`handle_ray_output`: event lines (:func:`raysf.console.emit`) go to the
console's handlers, every other line to the session's ``ray-workers.log``, and to Ray's own
printer only with ``--verbose`` or outside a console session.

The replaced function is private to Ray. Where a Ray release lacks it, :func:`route_ray_output`
says so and :func:`raysf.runtime.init_ray` asks Ray not to forward worker output at all
(``log_to_driver=False``): the console stays quiet, only the workers' progress is not shown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raysf import console

_routed = False
#: Ids of the last events dispatched: Ray forwards a worker's lines again when a node joins
#: that shares the log folder of a node before it (several nodes on one host), and an event
#: must reach the console once.
_SEEN_MAX = 100_000
_seen: dict[str, None] = {}  # insertion-ordered: the oldest id is dropped first


def first_sight(event: dict[str, Any]) -> bool:
    """True the first time an event id is seen (events without an id always pass)."""
    key = event.get("id")
    if key is None:
        return True
    if key in _seen:
        return False
    _seen[key] = None
    if len(_seen) > _SEEN_MAX:
        del _seen[next(iter(_seen))]
    return True


def handle_ray_output(data: dict[str, Any], original: Callable[..., None] | None = None) -> None:
    """Route one batch of forwarded worker output (Ray's dict: ``lines``, ``pid``, ``ip``,
    ``actor_name``/``task_name``, ``is_err``)."""
    rest = []
    for text in data.get("lines", []):
        event = console.parse_event(text)
        if event is None:
            rest.append(text)
        elif first_sight(event):
            console.dispatch(event)
    if rest and console.write_worker_lines(data, rest) and original is not None:
        original({**data, "lines": rest})


def route_ray_output() -> bool:
    """Make this process's Ray print worker output through :func:`handle_ray_output`.

    Call before ``ray.init``; returns ``False`` where this Ray release has no
    ``print_to_stdstream`` to replace.
    """
    global _routed
    if _routed:
        return True
    # heavy, and a private module of Ray: only drivers that start or join Ray need it
    import ray._private.worker as ray_worker

    original = getattr(ray_worker, "print_to_stdstream", None)
    if original is None:
        return False

    def print_to_stdstream(data, ignore_prefix: bool = False):
        handle_ray_output(data, lambda d: original(d, ignore_prefix))

    ray_worker.print_to_stdstream = print_to_stdstream
    _routed = True
    return True


def link_ray_session() -> None:
    """Link Ray's log folder on this node (raylet, GCS, every worker's files) into the session's
    log folder as ``ray-session``; nothing when Ray does not say where it is."""
    folder = console.log_dir()
    if folder is None:
        return
    # heavy, and private to Ray; only called once Ray is connected
    import ray._private.worker as ray_worker

    with contextlib.suppress(Exception):
        logs = Path(ray_worker._global_node.get_logs_dir_path())
        link = folder / "ray-session"
        if logs.is_dir() and not link.exists():
            link.symlink_to(logs, target_is_directory=True)
