"""A four-node local Ray cluster with S3 (moto) for the placement and fault tests.

One cluster serves the whole ``tests/cluster`` package (starting a node costs ~15 s on two
cores) and is stopped when the package ends: ``head`` (1 CPU: job drivers, the Train
controller, Parquet reads), ``decode-1`` (2 CPUs, ``decode_node``) and ``train-1``,
``train-2`` (1 CPU each, ``train_node``). Every node
gets the moto S3 environment. Jobs run with their driver on the head
(:func:`infra.local.e2e.submit`), so killing a worker node never kills the driver.

The SynthMotion videos are uploaded to ``s3://<bucket>/raw/synth`` and ingested once, on the
cluster, into ``s3://<bucket>/datasets/clean``; tests train from that dataset.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.local.e2e import upload_tree
from tests.cluster.cluster_helpers import CLEAN_DATASET, RAW, S3_BUCKET, SYNTH, Env, ingest_argv
from tests.conftest import stop_shared_cluster


@pytest.fixture(scope="package")
def env(ray_cluster_factory, s3_server) -> Iterator[Env]:
    cluster = ray_cluster_factory(
        workers=[
            {"name": "decode-1", "num_cpus": 2, "resources": {"decode_node": 100}},
            {"name": "train-1", "num_cpus": 1, "resources": {"train_node": 100}},
            {"name": "train-2", "num_cpus": 1, "resources": {"train_node": 100}},
        ],
        head_num_cpus=1,
        env=s3_server.env,
        shared=True,  # every module of the package uses it; stopped when the package ends
    )
    yield Env(cluster=cluster, s3_endpoint=s3_server.endpoint)
    stop_shared_cluster(cluster)


@pytest.fixture(scope="package")
def raw_videos(env: Env, tmp_path_factory: pytest.TempPathFactory) -> str:
    """SynthMotion files uploaded to :data:`RAW`; returns that URI."""
    from pipelines.synth.generate import generate

    local = tmp_path_factory.mktemp("synth")
    generate(local, **SYNTH)
    assert upload_tree(env.s3_endpoint, local, S3_BUCKET, "raw/synth") > 0
    return RAW


@pytest.fixture(scope="package")
def clean_dataset(env: Env, raw_videos: str) -> str:
    """:data:`CLEAN_DATASET`, ingested on the cluster straight from moto."""
    env.run(ingest_argv(raw_videos, CLEAN_DATASET))
    return CLEAN_DATASET


@pytest.fixture
def aws_env(s3_server, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's S3 clients (pyarrow, load_state) point at moto."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    yield
