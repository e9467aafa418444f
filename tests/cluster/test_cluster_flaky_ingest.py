"""Ingest through a flaky S3 endpoint: retries hide the faults, records match a clean ingest.

The job reads the raw videos and writes its shards through a
:class:`~infra.local.faulty_s3_proxy.FaultyS3Proxy` that fails 20% of requests (503
``SlowDown``, 500 ``InternalError`` or a dropped connection). The result must be the same
records as the clean ingest of the same videos: no clip lost, none duplicated.
"""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from infra.local.faulty_s3_proxy import FaultyS3Proxy
from raysf.storage import S3Config, resolve_location
from tests.cluster.cluster_helpers import S3_BUCKET, Env, ingest_argv

pytestmark = pytest.mark.slow

KEY = ["split", "video_id", "clip_index"]


def _clips(uri: str, endpoint: str):
    where = resolve_location(uri, S3Config(endpoint))
    fs, root = where.filesystem, where.path
    table = pq.read_table(f"{root}/clips", filesystem=fs)
    order = pc.sort_indices(table, sort_keys=[(k, "ascending") for k in KEY])
    return table.take(order)


def test_ingest_through_flaky_s3_matches_clean_ingest(
    env: Env, raw_videos: str, clean_dataset: str
) -> None:
    flaky = f"s3://{S3_BUCKET}/datasets/flaky"
    with FaultyS3Proxy(env.s3_endpoint, failure_rate=0.2, seed=3) as proxy:
        env.run(ingest_argv(raw_videos, flaky, f"storage.endpoint_url={proxy.endpoint}"))
        faults = proxy.stats()
    print(f"flaky ingest: {faults}")
    assert int(faults["faults"]) > 0, faults

    clean = _clips(clean_dataset, env.s3_endpoint)
    got = _clips(flaky, env.s3_endpoint)
    assert got.num_rows == clean.num_rows > 0
    keys = list(zip(*(got.column(k).to_pylist() for k in KEY), strict=True))
    assert len(set(keys)) == len(keys), "duplicated clip records"
    # Same records, field by field (the segment bytes included): nothing lost or altered.
    assert got.select(clean.column_names).equals(clean)
