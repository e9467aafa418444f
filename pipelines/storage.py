"""Local paths and ``s3://`` URIs behind one pyarrow FileSystem interface.

``resolve_filesystem(uri)`` returns ``(filesystem, path)``; every other helper here takes that
pair. S3 settings come, in this order, from the arguments, then the standard AWS environment
variables:

- endpoint: ``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL`` (unset: real AWS);
- region: ``AWS_DEFAULT_REGION``, then ``AWS_REGION`` (unset: ``us-east-1``);
- credentials: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` or the
  usual AWS config files (resolved by the AWS SDK inside pyarrow).

Transient S3 errors are retried by the AWS SDK's *standard* retry strategy (exponential
back-off with jitter on throttling, 5xx and connection errors), ``max_attempts`` tries in all.

Atomicity: :func:`write_bytes_atomic` writes a local file under a temporary name in the same
directory and renames it into place; on S3 an object becomes visible only when its upload
completes, so a killed writer leaves no partial object behind.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlparse

import pyarrow.fs as pafs

S3_SCHEME = "s3://"
DEFAULT_REGION = "us-east-1"
DEFAULT_MAX_ATTEMPTS = 8


def is_s3(uri: str) -> bool:
    """True for ``s3://bucket/key`` URIs."""
    return str(uri).startswith(S3_SCHEME)


def env_endpoint_url() -> str | None:
    """S3 endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (None when unset)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def env_region() -> str:
    """Region from ``AWS_DEFAULT_REGION`` or ``AWS_REGION``, else ``us-east-1``."""
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or DEFAULT_REGION


class RetryingS3FileSystem(pafs.S3FileSystem):
    """``S3FileSystem`` with the AWS standard retry strategy, kept across pickling.

    pyarrow's own ``S3FileSystem.__reduce__`` drops ``retry_strategy``, so a filesystem shipped
    to Ray tasks and actors (Ray Train pickles ``storage_filesystem`` to its controller and
    workers) fell back to the SDK default of 3 attempts. This one is rebuilt from its arguments.
    """

    def __init__(self, *, max_attempts: int, **kwargs) -> None:
        retry = pafs.AwsStandardS3RetryStrategy(max_attempts=max_attempts)
        super().__init__(retry_strategy=retry, **kwargs)
        self._rebuild_args = (max_attempts, dict(kwargs))

    def __reduce__(self):
        return (_rebuild_s3_filesystem, self._rebuild_args)


def _rebuild_s3_filesystem(max_attempts: int, kwargs: dict) -> RetryingS3FileSystem:
    return RetryingS3FileSystem(max_attempts=max_attempts, **kwargs)


def s3_filesystem(
    endpoint_url: str | None = None,
    region: str | None = None,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    connect_timeout: float = 10.0,
    request_timeout: float = 60.0,
) -> RetryingS3FileSystem:
    """A pyarrow ``S3FileSystem`` with retries (kept when pickled), for ``endpoint_url`` (or AWS when None).

    ``endpoint_url`` may carry a scheme (``http://127.0.0.1:5000``); without one, https is used.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    endpoint_url = endpoint_url or env_endpoint_url()
    kwargs: dict = {
        "region": region or env_region(),
        "connect_timeout": connect_timeout,
        "request_timeout": request_timeout,
    }
    if endpoint_url:
        parsed = urlparse(endpoint_url if "://" in endpoint_url else f"https://{endpoint_url}")
        if not parsed.netloc:
            raise ValueError(f"invalid S3 endpoint URL {endpoint_url!r}")
        kwargs["endpoint_override"] = parsed.netloc
        kwargs["scheme"] = parsed.scheme or "https"
    return RetryingS3FileSystem(max_attempts=max_attempts, **kwargs)


def check_s3_endpoint(uri: str, endpoint_url: str | None = None, timeout: float = 5.0) -> None:
    """Fail fast, naming the endpoint and the URI, when an S3 endpoint does not accept connections.

    pyarrow's retry strategy spends tens of seconds on a refused connection before its error;
    entry points call this first. No-op for local paths and for AWS itself (no endpoint set).
    """
    import socket

    if not is_s3(str(uri)):
        return
    endpoint_url = endpoint_url or env_endpoint_url()
    if not endpoint_url:
        return
    parsed = urlparse(endpoint_url if "://" in endpoint_url else f"https://{endpoint_url}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ConnectionError(
            f"S3 endpoint {endpoint_url} is unreachable ({exc.strerror or exc}) while opening "
            f"{uri}; check the endpoint setting or AWS_ENDPOINT_URL"
        ) from exc


def resolve_filesystem(
    uri: str | os.PathLike,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> tuple[pafs.FileSystem, str]:
    """Filesystem and in-filesystem path for a local path, ``file://`` URI or ``s3://`` URI.

    Local paths are made absolute. S3 paths are returned as ``bucket/key`` (no scheme, no
    trailing slash), as pyarrow expects.
    """
    text = os.fspath(uri)
    if not text:
        raise ValueError("empty path/URI")
    if is_s3(text):
        path = text[len(S3_SCHEME) :].strip("/")
        if not path:
            raise ValueError(f"S3 URI {text!r} has no bucket")
        return s3_filesystem(endpoint_url, region), path
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme != "file":
            raise ValueError(f"unsupported URI scheme {scheme!r} in {text!r} (use a path or s3://)")
        text = text[len("file://") :]
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(text))


def join(base: str, *parts: str) -> str:
    """Join path components with ``/`` (works for local paths, bucket/key paths and URIs)."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def exists(fs: pafs.FileSystem, path: str) -> bool:
    """True if ``path`` is an existing file or directory."""
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_file(fs: pafs.FileSystem, path: str) -> bool:
    """True if ``path`` is an existing regular file (object)."""
    return fs.get_file_info(path).type == pafs.FileType.File


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes:
    """Whole content of a file/object. Raises ``FileNotFoundError`` naming the path."""
    try:
        with fs.open_input_stream(path) as stream:
            return stream.read()
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"no such file: {path}") from exc


def read_text(fs: pafs.FileSystem, path: str, encoding: str = "utf-8") -> str:
    """Whole content of a text file/object."""
    return read_bytes(fs, path).decode(encoding)


def write_bytes_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or the complete file.

    Local: temp file in the same directory, flushed and ``os.replace``d onto ``path``.
    S3: one upload straight to the key (an object only appears once its upload completes).
    """
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if isinstance(fs, pafs.LocalFileSystem):
        os.makedirs(parent or ".", exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    with fs.open_output_stream(path) as stream:
        stream.write(data)


def list_files(fs: pafs.FileSystem, path: str, *, recursive: bool = True) -> list[str]:
    """Sorted paths of the regular files under directory/prefix ``path`` (empty if absent)."""
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return []
    if info.type == pafs.FileType.File:
        return [path]
    selector = pafs.FileSelector(path, recursive=recursive, allow_not_found=True)
    return sorted(i.path for i in fs.get_file_info(selector) if i.type == pafs.FileType.File)


def delete_file(fs: pafs.FileSystem, path: str) -> None:
    """Delete one file/object if it exists."""
    if is_file(fs, path):
        fs.delete_file(path)


def to_uri(fs: pafs.FileSystem, path: str) -> str:
    """Inverse of :func:`resolve_filesystem` for messages and records (``s3://`` or a path)."""
    if isinstance(fs, pafs.S3FileSystem):
        return f"{S3_SCHEME}{path}"
    return path
