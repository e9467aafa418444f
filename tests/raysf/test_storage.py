"""Tests of raysf.storage and raysf.runtime.resolve_filesystem on the local filesystem and on a real (moto) S3 endpoint."""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from raysf import storage
from raysf.runtime import check_s3_endpoint, resolve_filesystem


def test_resolve_local_path_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fs, path = resolve_filesystem("sub/dir")
    assert isinstance(fs, pafs.LocalFileSystem)
    assert path == os.path.join(str(tmp_path), "sub", "dir")
    fs2, path2 = resolve_filesystem(f"file://{tmp_path}/x")
    assert isinstance(fs2, pafs.LocalFileSystem) and path2 == f"{tmp_path}/x"


def test_resolve_rejects_unknown_scheme_and_empty():
    with pytest.raises(ValueError, match="gs"):
        resolve_filesystem("gs://bucket/key")
    with pytest.raises(ValueError, match="empty"):
        resolve_filesystem("")
    with pytest.raises(ValueError, match="no bucket"):
        resolve_filesystem("s3://")


def test_resolve_s3_uses_env_endpoint(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    fs, path = resolve_filesystem("s3://bucket/a/b/")
    assert isinstance(fs, pafs.S3FileSystem)
    assert path == "bucket/a/b"
    assert fs.region == "eu-west-3"
    assert storage.to_uri(fs, path) == "s3://bucket/a/b"


def test_local_atomic_write_read_list(tmp_path):
    fs, root = resolve_filesystem(str(tmp_path / "out"))
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
    started = time.monotonic()
    with pytest.raises(ConnectionError) as err:
        check_s3_endpoint("s3://bucket/datasets/x", f"http://127.0.0.1:{port}")
    assert time.monotonic() - started < 5
    assert f"http://127.0.0.1:{port}" in str(err.value) and "s3://bucket/datasets/x" in str(
        err.value
    )
    check_s3_endpoint("/local/path", f"http://127.0.0.1:{port}")  # local paths: no check


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
