"""File operations on a ``(pyarrow filesystem, path)`` pair: local paths and S3 alike.

Which filesystem a URI lives on is decided in one place, :func:`raysf.runtime.resolve_filesystem`;
every helper here takes its result. :func:`retry_transient` retries an operation on errors that
may pass (I/O errors, throttling) and raises :class:`TransientStorageError` when they do not;
errors that cannot pass (no such file, permission denied) are raised at once.

Atomicity: :func:`write_bytes_atomic` writes a local file under a temporary name in the same
directory and renames it into place; on S3 an object becomes visible only when its upload
completes, so a killed writer leaves no partial object behind.
"""

from __future__ import annotations

import errno
import os
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pyarrow.fs as pafs

T = TypeVar("T")

S3_SCHEME = "s3://"
#: Uploads of one object before :func:`write_bytes_atomic` gives up on a stored mismatch.
UPLOAD_ATTEMPTS = 3
#: Objects up to this size are read back and compared after upload (larger: size only).
VERIFY_BYTES_MAX = 1 << 20


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
        framed = size > len(data) and _read_head(fs, path, len(frame)) == frame
        hint = "; stored with aws-chunked framing: an unsigned upload (no credentials?)"
        return f"{size} bytes stored, {len(data)} written" + (hint if framed else "")
    if len(data) <= VERIFY_BYTES_MAX and read_bytes(fs, path) != data:
        return f"same size ({size} bytes), other bytes"
    return None


def _read_head(fs: pafs.FileSystem, path: str, nbytes: int) -> bytes:
    """The first ``nbytes`` of an object (without reading the rest)."""
    with fs.open_input_stream(path) as stream:
        return stream.read(nbytes)


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
    """Inverse of :func:`resolve_filesystem` for messages and records (``s3://`` or a path)."""
    if isinstance(fs, pafs.S3FileSystem):
        return f"{S3_SCHEME}{path}"
    return path
