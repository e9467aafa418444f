"""Where data lives, and file operations on it: local paths and S3 alike.

**Locations** — :func:`resolve_location` turns a local path, ``file://`` or ``s3://`` URI and a
job's :class:`S3Config` into a :class:`StorageLocation` (the URI as given, the pyarrow
filesystem, the in-filesystem path): the one place that builds a filesystem. Typed configs and
entry points resolve once; lower layers receive the location. S3 settings come from
:class:`S3Config`, else the AWS environment: endpoint ``AWS_ENDPOINT_URL_S3``, then
``AWS_ENDPOINT_URL`` (unset: AWS); region ``AWS_DEFAULT_REGION``, then ``AWS_REGION`` (unset:
``us-east-1``). Credentials are never a setting: the AWS SDK inside pyarrow finds them in each
process that opens a file (the node's role, EC2 instance profile or EKS IRSA, or the file that
``AWS_SHARED_CREDENTIALS_FILE`` names, as for MinIO). A location shipped to Ray tasks carries no
key: :class:`RetryingS3FileSystem` refuses explicit credentials, and no code here copies
``AWS_*`` variables into a task's ``runtime_env`` (Ray prints those in its logs and serves them
in its state API; docs/cluster.md, "Threat model"). Transient S3 errors: the AWS SDK's standard
retry strategy (back-off with jitter), ``max_attempts`` tries in all.

**File operations** take a ``(pyarrow filesystem, path)`` pair. :func:`retry_transient`
retries an operation on errors that may pass (I/O errors, throttling) and raises
:class:`TransientStorageError` when they do not; errors that cannot pass (no such file,
permission denied) are raised at once. :func:`write_bytes_atomic` writes a local file under a
temporary name and renames it into place; an S3 object appears only when its upload completes.
"""

from __future__ import annotations

import errno
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import TypeVar
from urllib.parse import urlparse

import pyarrow.fs as pafs

T = TypeVar("T")

S3_SCHEME = "s3://"
DEFAULT_REGION = "us-east-1"
DEFAULT_MAX_ATTEMPTS = 8
#: ``S3FileSystem`` arguments that hold a secret; a filesystem of this module never takes them.
CREDENTIAL_ARGS = frozenset({"access_key", "secret_key", "session_token"})
#: Uploads of one object before :func:`write_bytes_atomic` gives up on a stored mismatch.
UPLOAD_ATTEMPTS = 3
#: Objects up to this size are read back and compared after upload (larger: size only).
VERIFY_BYTES_MAX = 1 << 20


@dataclass(frozen=True)
class S3Config:
    """A job's S3 settings (null: the environment's); an endpoint without a scheme is https."""

    endpoint_url: str | None = None
    region: str | None = None

    def with_environment(self) -> S3Config:
        """The settings a process uses: unset ones taken from the AWS environment."""
        return S3Config(self.endpoint_url or env_endpoint_url(), self.region or env_region())


@dataclass(frozen=True)
class StorageLocation:
    """A resolved place: ``uri`` as given (for messages), its ``filesystem`` and the ``path`` in
    it (``bucket/key`` on S3, absolute locally). Pickles into Ray tasks without credentials."""

    uri: str
    filesystem: pafs.FileSystem
    path: str

    def __str__(self) -> str:
        return self.uri

    def __hash__(self) -> int:  # pyarrow filesystems are unhashable
        return hash((self.uri, self.path))

    @property
    def is_s3(self) -> bool:
        return isinstance(self.filesystem, pafs.S3FileSystem)

    def join(self, *parts: str) -> StorageLocation:
        """The location ``parts`` below this one (same filesystem)."""
        return StorageLocation(join(self.uri, *parts), self.filesystem, join(self.path, *parts))

    def at(self, path: str) -> StorageLocation:
        """The location of ``path``, a path in this location's filesystem (a listed file)."""
        return StorageLocation(to_uri(self.filesystem, path), self.filesystem, path)

    def exists(self) -> bool:
        return exists(self.filesystem, self.path)

    def is_file(self) -> bool:
        return is_file(self.filesystem, self.path)

    def read_bytes(self) -> bytes:
        return read_bytes(self.filesystem, self.path)

    def write_bytes_atomic(self, data: bytes) -> None:
        write_bytes_atomic(self.filesystem, self.path, data)

    def list_files(self, *, recursive: bool = True) -> list[StorageLocation]:
        """The regular files under this location, sorted (empty if absent)."""
        return [self.at(p) for p in list_files(self.filesystem, self.path, recursive=recursive)]


def resolve_location(uri: str | os.PathLike, s3: S3Config | None = None) -> StorageLocation:
    """The :class:`StorageLocation` of a local path, ``file://`` URI or ``s3://`` URI: local
    paths made absolute, S3 paths as ``bucket/key`` (as pyarrow expects) on a filesystem with
    the settings of ``s3`` (unset ones: the AWS environment's)."""
    text = os.fspath(uri)
    if not text:
        raise ValueError("empty path/URI")
    if is_s3(text):
        path = text[len(S3_SCHEME) :].strip("/")
        if not path:
            raise ValueError(f"S3 URI {text!r} has no bucket")
        return StorageLocation(text, s3_filesystem(*astuple(s3 or S3Config())), path)
    local = text
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme != "file":
            raise ValueError(f"unsupported URI scheme {scheme!r} in {text!r} (use a path or s3://)")
        local = text[len("file://") :]
    return StorageLocation(text, pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(local)))


def as_location(where: StorageLocation | str | os.PathLike) -> StorageLocation:
    """``where`` itself when it is a location; a path or URI resolved with the AWS
    environment's S3 settings (for callers and tests that hold no job config)."""
    return where if isinstance(where, StorageLocation) else resolve_location(where)


def env_endpoint_url() -> str | None:
    """S3 endpoint from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (None when unset)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def env_region() -> str:
    """Region from ``AWS_DEFAULT_REGION`` or ``AWS_REGION``, else ``us-east-1``."""
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or DEFAULT_REGION


class RetryingS3FileSystem(pafs.S3FileSystem):
    """``S3FileSystem`` with the AWS standard retry strategy, kept across pickling (pyarrow's
    own ``__reduce__`` drops ``retry_strategy``: Ray tasks and actors, and Ray Train's pickled
    ``storage_filesystem``, fell back to 3 attempts). Rebuilt from its arguments, which never
    include credentials (each process finds its own: see the module docstring)."""

    def __init__(self, *, max_attempts: int, **kwargs) -> None:
        given = sorted(CREDENTIAL_ARGS.intersection(kwargs))
        if given:
            raise ValueError(
                f"RetryingS3FileSystem takes no credentials ({', '.join(given)}): it is pickled "
                "into Ray tasks and Tune's experiment state; give each node its role or an "
                "AWS_SHARED_CREDENTIALS_FILE instead (docs/cluster.md, Threat model)"
            )
        retry = pafs.AwsStandardS3RetryStrategy(max_attempts=max_attempts)
        super().__init__(retry_strategy=retry, **kwargs)
        self._rebuild_args = (max_attempts, dict(kwargs))

    def __reduce__(self):
        return (_rebuild_s3_filesystem, self._rebuild_args)

    @property
    def endpoint(self) -> str | None:
        """``scheme://host:port`` of the endpoint it was given (None: AWS)."""
        kwargs = self._rebuild_args[1]
        host = kwargs.get("endpoint_override")
        return f"{kwargs.get('scheme', 'https')}://{host}" if host else None


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
    """A pyarrow ``S3FileSystem`` with retries (kept when pickled); unset settings: the
    environment's."""
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


def check_s3_endpoint(location: StorageLocation, timeout: float = 5.0) -> None:
    """Fail fast, naming the endpoint and the URI, when the S3 endpoint of ``location`` does not
    accept connections (pyarrow's retries spend tens of seconds on a refused connection). No-op
    for local paths and for AWS itself (no endpoint set)."""
    endpoint = getattr(location.filesystem, "endpoint", None)
    if not endpoint:
        return
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ConnectionError(
            f"S3 endpoint {endpoint} is unreachable ({exc.strerror or exc}) while opening "
            f"{location.uri}; check the endpoint setting or AWS_ENDPOINT_URL"
        ) from exc


def is_s3(uri: str) -> bool:
    """True for ``s3://bucket/key`` URIs."""
    return str(uri).startswith(S3_SCHEME)


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
    S3 (any other filesystem): one upload straight to the key (an object only appears once its
    upload completes), then checked: the stored size must be ``len(data)`` and objects up to
    :data:`VERIFY_BYTES_MAX` are read back and compared. A mismatch is uploaded again, up to
    :data:`UPLOAD_ATTEMPTS` times, then ``OSError`` names the object. (Seen in CI against moto: a
    Ray worker started before the S3 credentials were set sent unsigned aws-chunked uploads,
    which moto stored with their framing; the error then says so.)
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
    for _ in range(UPLOAD_ATTEMPTS):
        with fs.open_output_stream(path) as stream:
            stream.write(data)
        problem = _stored_differs(fs, path, data)
        if problem is None:
            return
    raise OSError(
        f"{to_uri(fs, path)}: the stored object is not what was written ({problem}) after "
        f"{UPLOAD_ATTEMPTS} uploads"
    )


def _stored_differs(fs: pafs.FileSystem, path: str, data: bytes) -> str | None:
    """Why the object at ``path`` is not ``data`` (its size; small ones byte for byte), or None."""
    size = fs.get_file_info(path).size
    if size != len(data):
        frame = b"%x\r\n" % len(data)  # what an aws-chunked body of len(data) starts with
        framed = False
        if size > len(data):
            with fs.open_input_stream(path) as stream:  # its head only
                framed = stream.read(len(frame)) == frame
        hint = "; stored with aws-chunked framing: an unsigned upload (no credentials?)"
        return f"{size} bytes stored, {len(data)} written" + (hint if framed else "")
    if len(data) <= VERIFY_BYTES_MAX and read_bytes(fs, path) != data:
        return f"same size ({size} bytes), other bytes"
    return None


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


class TransientStorageError(OSError):
    """A storage operation failed with errors that may pass (still failing after the retries):
    worth trying again later, never a verdict on the file."""


#: errnos that retrying cannot fix (the file is not there, or reading it is not allowed).
_PERMANENT_ERRNOS = frozenset(
    {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ELOOP}
)
#: Words of pyarrow's S3 error messages that retrying cannot fix.
_PERMANENT_S3 = ("ACCESS_DENIED", "NO_SUCH_KEY", "NO_SUCH_BUCKET", "INVALID_OBJECT_STATE")


def is_permanent(exc: BaseException) -> bool:
    """True for errors that retrying cannot fix: missing file, permission denied (local or S3)."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return True
    if isinstance(exc, OSError) and exc.errno in _PERMANENT_ERRNOS:
        return True
    return any(word in str(exc) for word in _PERMANENT_S3)


def retry_transient(
    operation: Callable[[], T], *, what: str, attempts: int = 4, backoff_s: float = 0.5
) -> T:
    """``operation()``, tried ``attempts`` times with exponential back-off (``backoff_s``,
    ``2 * backoff_s`` ...) while it raises an ``OSError`` that is not :func:`is_permanent`.

    Permanent errors are raised as they are, at once; transient ones that outlast the tries
    become :class:`TransientStorageError` naming ``what`` and the last error. (The AWS SDK
    inside pyarrow retries each S3 request on its own first.)
    """
    for attempt in range(attempts):
        try:
            return operation()
        except OSError as exc:
            if is_permanent(exc):
                raise
            if attempt == attempts - 1:
                raise TransientStorageError(
                    f"{what}: {exc} (still failing after {attempts} attempts)"
                ) from exc
            time.sleep(backoff_s * 2**attempt)
    raise ValueError(f"attempts must be >= 1, got {attempts}")


def to_uri(fs: pafs.FileSystem, path: str) -> str:
    """Inverse of :func:`resolve_location` for messages and records (``s3://`` or a path)."""
    if isinstance(fs, pafs.S3FileSystem):
        return f"{S3_SCHEME}{path}"
    return path
