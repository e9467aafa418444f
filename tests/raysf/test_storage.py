"""Tests of raysf.storage (locations, file operations) on the local filesystem and on a real
(moto) S3 endpoint."""

from __future__ import annotations

import io
import os
import pickle

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from raysf import storage
from raysf.storage import (
    RetryingS3FileSystem,
    S3Config,
    StorageLocation,
    as_location,
    check_s3_endpoint,
    resolve_location,
)


def test_resolve_local_path_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    where = resolve_location("sub/dir")
    assert isinstance(where.filesystem, pafs.LocalFileSystem) and not where.is_s3
    assert where.path == os.path.join(str(tmp_path), "sub", "dir")
    assert where.uri == str(where) == "sub/dir"  # as the user gave it
    other = resolve_location(f"file://{tmp_path}/x")
    assert isinstance(other.filesystem, pafs.LocalFileSystem) and other.path == f"{tmp_path}/x"


def test_resolve_rejects_unknown_scheme_and_empty():
    with pytest.raises(ValueError, match="gs"):
        resolve_location("gs://bucket/key")
    with pytest.raises(ValueError, match="empty"):
        resolve_location("")
    with pytest.raises(ValueError, match="no bucket"):
        resolve_location("s3://")


def test_resolve_s3_uses_env_endpoint(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    where = resolve_location("s3://bucket/a/b/")
    assert isinstance(where.filesystem, pafs.S3FileSystem) and where.is_s3
    assert where.path == "bucket/a/b" and where.uri == "s3://bucket/a/b/"
    assert where.filesystem.region == "eu-west-3"
    assert where.filesystem.endpoint == "http://127.0.0.1:9"
    assert storage.to_uri(where.filesystem, where.path) == "s3://bucket/a/b"


def test_resolve_s3_settings_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    where = resolve_location("s3://bucket/ds", S3Config("minio.local:9000", "us-west-2"))
    assert where.filesystem.endpoint == "https://minio.local:9000"
    assert where.filesystem.region == "us-west-2"
    assert S3Config().with_environment() == S3Config("http://127.0.0.1:9", "eu-west-3")


def test_location_join_and_at(tmp_path):
    s3 = resolve_location("s3://bucket/runs/", S3Config("http://127.0.0.1:9"))
    trial = s3.join("sweep", "/trial_1/")
    assert (trial.uri, trial.path) == (
        "s3://bucket/runs/sweep/trial_1",
        "bucket/runs/sweep/trial_1",
    )
    assert trial.filesystem is s3.filesystem
    assert trial.at("bucket/runs/x/state.pt").uri == "s3://bucket/runs/x/state.pt"
    local = resolve_location(str(tmp_path))
    local.join("a", "x.bin").write_bytes_atomic(b"abc")
    assert local.join("a/x.bin").read_bytes() == b"abc" and local.join("a").exists()
    assert [f.uri for f in local.list_files()] == [f"{tmp_path}/a/x.bin"]
    assert as_location(local) is local and as_location(str(tmp_path)) == local
    assert len({local, as_location(str(tmp_path)), local.join("a")}) == 2  # hashable


def test_s3_location_pickles_without_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-key")
    where = resolve_location("s3://bucket/ds", S3Config("http://127.0.0.1:9", "eu-west-3"))
    data = pickle.dumps(where)
    assert b"very-secret-key" not in data and b"AKIAEXAMPLE" not in data
    back = pickle.loads(data)
    assert isinstance(back, StorageLocation) and isinstance(back.filesystem, RetryingS3FileSystem)
    assert (back.uri, back.path) == (where.uri, where.path)
    assert back.filesystem.endpoint == "http://127.0.0.1:9"
    assert back.filesystem.region == "eu-west-3"
    assert back.filesystem._rebuild_args == where.filesystem._rebuild_args


def test_local_atomic_write_read_list(tmp_path):
    out = resolve_location(str(tmp_path / "out"))
    fs, root = out.filesystem, out.path
    storage.write_bytes_atomic(fs, storage.join(root, "a", "x.bin"), b"abc")
    storage.write_bytes_atomic(fs, storage.join(root, "b.bin"), b"")
    storage.write_bytes_atomic(fs, storage.join(root, "b.bin"), b"new")
    assert storage.read_bytes(fs, storage.join(root, "a/x.bin")) == b"abc"
    assert storage.read_text(fs, storage.join(root, "b.bin")) == "new"
    assert storage.list_files(fs, root) == [f"{root}/a/x.bin", f"{root}/b.bin"]
    assert storage.list_files(fs, root, recursive=False) == [f"{root}/b.bin"]
    assert storage.list_files(fs, storage.join(root, "missing")) == []
    assert not any(".tmp-" in p for p in os.listdir(root))
    assert storage.exists(fs, root) and storage.is_file(fs, f"{root}/b.bin")
    storage.delete_file(fs, f"{root}/b.bin")
    assert not storage.exists(fs, f"{root}/b.bin")
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        storage.read_bytes(fs, f"{root}/missing.bin")


def test_unreachable_s3_endpoint_fails_fast_naming_it():
    import socket
    import time

    with socket.socket() as sock:  # a port that is certainly closed once released
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = S3Config(f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(ConnectionError) as err:
        check_s3_endpoint(resolve_location("s3://bucket/datasets/x", endpoint))
    assert time.monotonic() - started < 5
    assert f"http://127.0.0.1:{port}" in str(err.value) and "s3://bucket/datasets/x" in str(
        err.value
    )
    check_s3_endpoint(resolve_location("/local/path", endpoint))  # local paths: no check


class _CorruptingHandler(pafs.FSSpecHandler):
    """An in-memory object store whose first ``bad`` uploads store a framed body (what a broken
    unsigned aws-chunked upload stores), or the same number of other bytes when ``same_size``."""

    def __init__(self, bad: int, same_size: bool = False):
        from fsspec.implementations.memory import MemoryFileSystem

        super().__init__(MemoryFileSystem(skip_instance_cache=True))
        self.bad, self.same_size, self.uploads = bad, same_size, 0

    def open_output_stream(self, path, metadata):
        self.uploads += 1
        if self.uploads > self.bad:
            return super().open_output_stream(path, metadata)
        handler = self

        class Framed(io.BytesIO):
            def close(self):
                body = self.getvalue()
                framed = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"  # unsigned aws-chunked
                stored = bytes(len(body)) if handler.same_size else framed
                with handler.fs.open(path, "wb") as f:
                    f.write(stored)
                super().close()

        return pa.PythonFile(Framed(), mode="w")


@pytest.mark.parametrize("same_size", [False, True])
def test_a_mismatching_upload_is_uploaded_again(same_size):
    handler = _CorruptingHandler(bad=2, same_size=same_size)
    fs = pafs.PyFileSystem(handler)
    storage.write_bytes_atomic(fs, "/bucket/m.json", b'{"clips": 2}')
    assert storage.read_bytes(fs, "/bucket/m.json") == b'{"clips": 2}'
    assert handler.uploads == 3


def test_an_object_that_never_stores_right_fails_naming_it():
    handler = _CorruptingHandler(bad=10)
    fs = pafs.PyFileSystem(handler)
    with pytest.raises(
        OSError, match=r"m\.json.*not what was written \(22 bytes stored, 12.*unsig"
    ):
        storage.write_bytes_atomic(fs, "/bucket/m.json", b'{"clips": 2}')
    assert handler.uploads == storage.UPLOAD_ATTEMPTS
