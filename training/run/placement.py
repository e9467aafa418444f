"""Can the cluster ever hold the run's worker group? Checked before ``TorchTrainer.fit``.

Ray Train waits for its worker group's placement group; a request the cluster can never
satisfy (8 workers on a 2-CPU cluster, a GPU on a CPU-only cluster) used to wait forever. The
driver asks instead: do the workers' bundles (``scaling.resources_per_worker``, by default one
CPU, or one GPU with ``use_gpu``) plus one decode task fit the *total* resources of the alive
nodes, bundle by bundle, under the placement strategy? It polls for
``scaling.placement_timeout_s`` (an autoscaler may be adding nodes) and then fails with
:class:`PlacementError`, naming what was asked for and what the cluster has.

The fit itself is a pure function (:func:`placement_problem`), tested without Ray.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from raysf.errors import ExpectedError
from training.config import TrainJobConfig

Resources = Mapping[str, float]


class PlacementError(ExpectedError):
    """The worker group cannot be placed on the cluster."""


def worker_bundle(job: TrainJobConfig) -> dict[str, float]:
    """What one training worker asks for (Ray Train's defaults when none are configured)."""
    scaling = job.scaling
    bundle = {k: float(v) for k, v in scaling.resources_per_worker.items() if v}
    if not bundle:
        bundle = {"GPU": 1.0} if scaling.use_gpu else {"CPU": 1.0}
    if scaling.use_gpu:
        bundle.setdefault("GPU", 1.0)
    return bundle


def decode_bundle(job: TrainJobConfig) -> dict[str, float]:
    """What one decode task asks for: without one, no batch is ever produced."""
    decode = job.data.decode
    return {"CPU": float(decode.num_cpus), **dict(decode.resources)}


def _fits(bundle: Resources, free: Mapping[str, float]) -> bool:
    return all(free.get(k, 0.0) + 1e-9 >= v for k, v in bundle.items())


def _take(bundle: Resources, free: dict[str, float]) -> None:
    for k, v in bundle.items():
        free[k] = free.get(k, 0.0) - v


def placement_problem(
    workers: Sequence[Resources],
    extra: Sequence[Resources],
    nodes: Sequence[Resources],
    strategy: str,
) -> str:
    """Why the ``workers`` bundles (placed with ``strategy``) and the ``extra`` bundles (placed
    anywhere) cannot all fit the nodes' total resources; ``""`` when they can."""
    free = [dict(n) for n in nodes]
    if strategy == "STRICT_PACK":
        total = {k: sum(b.get(k, 0.0) for b in workers) for w in workers for k in w}
        homes = [i for i, n in enumerate(free) if _fits(total, n)]
        if not homes:
            return f"STRICT_PACK needs {total} on one node"
        _take(total, free[homes[0]])
    else:
        used: set[int] = set()
        for bundle in sorted(workers, key=lambda b: -sum(b.values())):
            spread = strategy == "STRICT_SPREAD"
            homes = [
                i for i, n in enumerate(free) if _fits(bundle, n) and not (spread and i in used)
            ]
            if not homes:
                return f"a worker bundle {dict(bundle)} finds no node with room left"
            used.add(homes[0])
            _take(bundle, free[homes[0]])
    for bundle in extra:
        if not any(_fits(bundle, n) for n in free):
            return f"no room is left for a decode task {dict(bundle)}"
    return ""


def _total(bundles: Sequence[Resources]) -> dict[str, float]:
    out: dict[str, float] = {}
    for bundle in bundles:
        for k, v in bundle.items():
            out[k] = out.get(k, 0.0) + v
    return out


def alive_node_resources() -> list[dict[str, float]]:
    """Total resources of every alive node of the connected Ray cluster."""
    import ray  # heavy; only the driver of a run that starts Ray asks

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def wait_for_placement(job: TrainJobConfig, poll_s: float = 1.0) -> None:
    """Return once the cluster can hold the run's workers and a decode task; raise
    :class:`PlacementError` after ``scaling.placement_timeout_s`` when it cannot."""
    workers = [worker_bundle(job)] * job.scaling.num_workers
    extra = [decode_bundle(job)]
    deadline = time.monotonic() + job.scaling.placement_timeout_s
    while True:
        nodes = alive_node_resources()
        problem = placement_problem(workers, extra, nodes, job.scaling.placement_strategy)
        if not problem or time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    if problem:
        raise PlacementError(
            f"scaling: {job.scaling.num_workers} worker(s) x {worker_bundle(job)} "
            f"({job.scaling.placement_strategy}) and one decode task {decode_bundle(job)} "
            f"cannot be placed: {problem}; the cluster has {_total(nodes)} on {len(nodes)} "
            f"node(s) (waited {job.scaling.placement_timeout_s:g} s, "
            "scaling.placement_timeout_s)"
        )
