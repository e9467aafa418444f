"""The S3 filesystem keeps its retry strategy when Ray pickles it to tasks and actors.

Ray Train ships ``storage_filesystem`` to its controller and workers by pickling; pyarrow's
``S3FileSystem.__reduce__`` drops ``retry_strategy``, which silently cut retries to the SDK's
default 3 attempts (checkpointing through the flaky proxy then failed on the first HeadBucket).
"""

from __future__ import annotations

import pickle

import pytest

from infra.local.faulty_s3_proxy import FaultyS3Proxy
from raysf.storage import s3_filesystem

pytestmark = pytest.mark.slow


def test_pickled_s3_filesystem_retries_as_often(s3_server, monkeypatch) -> None:
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    with FaultyS3Proxy(s3_server.endpoint, failure_rate=1.0, kinds=("internal",)) as proxy:
        shipped = pickle.loads(pickle.dumps(s3_filesystem(proxy.endpoint, max_attempts=5)))
        with pytest.raises(OSError, match="raysf-test"):
            shipped.get_file_info("raysf-test/anything")
        assert proxy.stats()["requests"] == 5
