"""Shared pytest setup: lazy fixtures for the real local services.

Fixtures (each starts its service only when a test asks for it):

- ``s3_server`` (session): moto S3 on 127.0.0.1 with bucket ``S3_BUCKET`` created;
  an :class:`infra.local.s3.S3Server` (``.endpoint``, ``.env``).
- ``mlflow_server`` (session): MLflow server (SQLite backend, proxied artifacts in
  ``s3://<S3_BUCKET>/mlflow`` on ``s3_server``); ``.tracking_uri``, ``.env``.
- ``smoke_data`` (session): the smoke SynthMotion dataset (``training.recipes.smoke.SMOKE_DATA``),
  generated and ingested once per session; its root. Tests read it; one that damages records
  copies it first.
- ``ray_cluster_factory`` (session): ``factory(workers=..., head_resources=..., env=...)``
  returns a started :class:`infra.local.ray_cluster.RayCluster`, stopped at the end of the
  test module that made it (an idle cluster's log monitors, raylets and dashboard keep using
  CPU that later tests need); ``shared=True`` leaves it to its maker to stop (the cluster
  package's four-node cluster, stopped at the end of that package). Whatever is left is
  stopped at the end of the session.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest

from infra.local.mlflow_server import MlflowServer, start_mlflow_server
from infra.local.procs import free_port as _free_port
from infra.local.ray_cluster import (
    RayCluster,
    start_ray_head,
    start_ray_worker,
    stop_ray,
)
from infra.local.s3 import S3Server, make_bucket, start_moto_server
from training.recipes.smoke import smoke_dataset

S3_BUCKET = "raysf-test"

WorkerSpec = Mapping[str, object]
RayClusterFactory = Callable[..., RayCluster]


def pytest_configure(config: pytest.Config) -> None:
    # pyproject registers it already; this keeps the marker known when run from elsewhere.
    config.addinivalue_line("markers", "slow: starts real processes (Ray, mlflow, S3)")
    config.addinivalue_line("markers", "acceptance: a full-size target; only with -m acceptance")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Acceptance tests (minutes each, outside CI's budget) run only when ``-m`` names them;
    the slow test groups go first (:func:`_group_and_order`)."""
    _group_and_order(items)
    if "acceptance" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="acceptance test: make test-acceptance runs it")
    for item in items:
        if "acceptance" in item.keywords:
            item.add_marker(skip)


#: Packages whose modules share package-scoped services (tests/cluster's four-node cluster):
#: one group each, so the services start once.
SHARED_PACKAGES = ("tests/cluster/",)


def group_of(nodeid: str) -> str:
    """The group a test runs in under ``make test``'s two workers: its module, or the package of
    :data:`SHARED_PACKAGES` it belongs to."""
    path = nodeid.split("::", 1)[0]
    return next((p for p in SHARED_PACKAGES if path.startswith(p)), path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadscope`` (``make test``) with :func:`group_of` as the scope: a group runs
    whole on one worker, so module and package fixtures start once. (pytest-xdist 3.8's
    ``loadgroup`` marks a group by setting ``item._nodeid``, which pytest 9.2 no longer reads:
    its groups were silently ignored.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling  # only under xdist

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return GroupScheduling(config, log)


def _group_and_order(items: list[pytest.Item]) -> None:
    """Groups holding slow tests first, the unit-test modules last, so that under two workers
    (``--no-loadscope-reorder`` keeps this order) the short ones fill the gaps at the end
    instead of a long one starting alone. The order is the same on every worker, as xdist
    requires; a serial run only changes order."""
    groups = [group_of(item.nodeid) for item in items]
    slow = {g for g, item in zip(groups, items, strict=True) if item.get_closest_marker("slow")}
    first = {g: i for i, g in reversed(list(enumerate(groups)))}
    rank = {id(item): (g not in slow, first[g]) for g, item in zip(groups, items, strict=True)}
    items.sort(key=lambda item: rank[id(item)])


def free_port() -> int:
    """A free TCP port on this machine (never the same twice in one test session)."""
    return _free_port()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_moto_server(tmp_path_factory.mktemp("moto"))
    try:
        make_bucket(server.endpoint, S3_BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    server = start_mlflow_server(
        tmp_path_factory.mktemp("mlflow"), f"s3://{S3_BUCKET}/mlflow", s3_server.env
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    return smoke_dataset(tmp_path_factory.mktemp("smoke-synth"))


@pytest.fixture(scope="session")
def ray_cluster_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RayClusterFactory]:
    """``factory(workers=[{"name": "decode-1", "resources": {"decode_node": 100}}], ...)``.

    Keyword arguments: ``workers`` (sequence of dicts passed to ``start_ray_worker``:
    name, num_cpus, resources, labels), ``head_num_cpus`` (default 1), ``head_resources``,
    ``env`` (extra environment for every node, e.g. ``s3_server.env``).
    """

    def factory(
        workers: Sequence[WorkerSpec] = (),
        head_num_cpus: int = 1,
        head_resources: Mapping[str, float] | None = None,
        env: Mapping[str, str] | None = None,
        shared: bool = False,
    ) -> RayCluster:
        cluster = start_ray_head(
            tmp_path_factory.mktemp("ray"),
            num_cpus=head_num_cpus,
            resources=head_resources,
            env=env,
        )
        (_SHARED_CLUSTERS if shared else _MODULE_CLUSTERS).append(cluster)
        for spec in workers:
            start_ray_worker(cluster, **spec)  # type: ignore[arg-type]
        return cluster

    try:
        yield factory
    finally:
        _stop_clusters(_MODULE_CLUSTERS)
        _stop_clusters(_SHARED_CLUSTERS)


#: Clusters the factory made: stopped at the end of the current module / by their maker.
_MODULE_CLUSTERS: list[RayCluster] = []
_SHARED_CLUSTERS: list[RayCluster] = []


def _stop_clusters(clusters: list[RayCluster]) -> None:
    while clusters:
        stop_ray(clusters.pop())


def stop_shared_cluster(cluster: RayCluster) -> None:
    """Stop a cluster made with ``shared=True`` (its maker's teardown)."""
    if cluster in _SHARED_CLUSTERS:
        _SHARED_CLUSTERS.remove(cluster)
    stop_ray(cluster)


@pytest.fixture(scope="module", autouse=True)
def _no_ray_left_behind() -> Iterator[None]:
    """Shut down an in-process Ray a test module left running, so the next module can start its own,
    and stop the clusters the module made (``ray_cluster_factory``).

    Entry points such as ``run_ingest`` start a local Ray when none is connected and leave it up
    for the caller; in a test session that would leak into the next module's ``ray.init``.
    """
    yield
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    _stop_clusters(_MODULE_CLUSTERS)
