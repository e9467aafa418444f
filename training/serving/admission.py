"""What a request may ask, decided cheaply and before any decoding: pure functions, no Ray.

- **Limits** (:class:`ServeLimits`): the ingest's per-input caps (:class:`LimitsConfig`:
  ``max_bytes``, ``max_pixels``, ``max_duration_s``, ``timeout_s``, the same defaults) plus the
  service's own: ``allowed_uris`` (local roots and ``s3://`` prefixes a request may name; none by
  default), ``max_inflight`` (requests one ingress replica works on at once) and ``max_windows``
  (windows of one timeline).
- **Refusals** are :class:`RequestError`: an HTTP status, a reason (the ingest's reject
  categories where one applies: :data:`pipelines.ingest.probe.REJECT_CATEGORIES`) and a detail,
  answered as JSON ``{"error": REASON, "detail": ..., "status": CODE}``.
- **Bodies**: a raw video (any ``Content-Type`` but JSON and multipart), a multipart form with a
  ``video`` (or ``file``) field, or JSON ``{"uri": ...}``; a multipart body is parsed in memory
  (the stdlib email parser): nothing is written to a temporary file.
- **URIs**: a local path is resolved (symlinks and ``..`` followed) and must lie under an
  allowed root; ``s3://`` must start with an allowed prefix; anything else is refused.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.ingest.config import LimitsConfig
from pipelines.ingest.probe import ProbeResult, RejectError, probe_video, sniff_container

#: The HTTP status of each ingest reject category a request can meet.
REJECT_STATUS: dict[str, int] = {
    "empty": 400,
    "file_too_large": 413,
    "frame_too_large": 413,
    "too_long": 413,
    "unreadable": 415,
    "image": 415,
    "container_not_allowed": 415,
    "no_video": 415,
    "truncated": 422,
    "undecodable": 422,
    "too_short": 422,
    "timeout": 504,
}
#: Bytes a multipart body may carry beyond ``max_bytes`` (boundaries and part headers).
MULTIPART_SLACK = 64 * 1024


class RequestError(Exception):
    """A refused request: ``status`` (HTTP), ``reason`` (a short key) and ``detail``."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(status, reason, detail)
        self.status, self.reason, self.detail = status, reason, detail

    def __str__(self) -> str:
        return f"{self.status} {self.reason}: {self.detail}"

    def body(self) -> dict[str, Any]:
        return {"error": self.reason, "detail": self.detail, "status": self.status}


@dataclass(frozen=True)
class ServeLimits:
    """The limits of a request (module docstring)."""

    ingest: LimitsConfig = field(default_factory=LimitsConfig)
    allowed_uris: tuple[str, ...] = ()
    max_inflight: int = 8
    max_windows: int = 2000

    def __post_init__(self) -> None:
        self.ingest.validate()
        if self.max_inflight < 1 or self.max_windows < 1:
            raise ValueError("max_inflight and max_windows must be >= 1")
        for uri in self.allowed_uris:
            if not (uri.startswith("s3://") or os.path.isabs(uri)):
                raise ValueError(f"allowed URI {uri!r}: an absolute local path or s3:// prefix")


@dataclass(frozen=True)
class VideoInput:
    """What a request names: the video's bytes (an upload) or a URI, and a name for messages."""

    data: bytes | None
    uri: str | None
    name: str


def parse_body(body: bytes, content_type: str) -> VideoInput:
    """The video of a request body (module docstring); ``RequestError`` 400 when there is none."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            uri = json.loads(body or b"{}").get("uri")
        except (ValueError, AttributeError) as exc:
            raise RequestError(400, "bad_request", f"body is not a JSON object: {exc}") from exc
        if not isinstance(uri, str) or not uri:
            raise RequestError(400, "bad_request", 'JSON body needs {"uri": "..."}')
        return VideoInput(None, uri, uri)
    if kind == "multipart/form-data":
        return _multipart_video(body, content_type)
    return VideoInput(body, None, "upload")


def _multipart_video(body: bytes, content_type: str) -> VideoInput:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise RequestError(400, "bad_request", "multipart body without parts (boundary?)")
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") in ("video", "file"):
            data = part.get_payload(decode=True) or b""
            return VideoInput(data, None, part.get_filename() or "upload")
    raise RequestError(400, "bad_request", "multipart form has no 'video' (or 'file') field")


def allowed_uri(uri: str, limits: ServeLimits) -> str:
    """``uri`` as it will be read (a local path resolved) when an allowed root holds it;
    ``RequestError`` 403 otherwise."""
    if uri.startswith("s3://"):
        for prefix in limits.allowed_uris:
            if prefix.startswith("s3://") and uri.startswith(prefix.rstrip("/") + "/"):
                return uri
        raise RequestError(403, "uri_not_allowed", f"{uri}: no allowed s3:// prefix holds it")
    path = uri.removeprefix("file://")
    if "://" in path or not os.path.isabs(path):
        raise RequestError(403, "uri_not_allowed", f"{uri}: only absolute paths and s3:// URIs")
    real = Path(os.path.realpath(path))
    for root in limits.allowed_uris:
        if not root.startswith("s3://") and real.is_relative_to(os.path.realpath(root)):
            return str(real)
    raise RequestError(403, "uri_not_allowed", f"{uri}: not under an allowed root")


def check_size(size: int, limits: ServeLimits, name: str) -> None:
    """``RequestError`` 413 ``file_too_large`` over ``max_bytes``, 400 ``empty`` at zero."""
    if size > limits.ingest.max_bytes:
        raise RequestError(
            413, "file_too_large", f"{name}: {size} bytes, the limit is {limits.ingest.max_bytes}"
        )
    if size == 0:
        raise RequestError(400, "empty", f"{name} has zero bytes")


def precheck(data: bytes, limits: ServeLimits, name: str) -> None:
    """The ingress's cheap checks: size, then the container signature (no FFmpeg call)."""
    check_size(len(data), limits, name)
    if sniff_container(data) is None:
        probe(data, limits, name)  # refuses from the first bytes alone


def probe(data: bytes, limits: ServeLimits, name: str) -> ProbeResult:
    """The ingest's probe with its limits (allowlisted container, pixels, duration, a frame
    decodes); its reject as a ``RequestError``."""
    try:
        return probe_video(
            data,
            name,
            max_pixels=limits.ingest.max_pixels,
            max_duration_s=limits.ingest.max_duration_s,
        )
    except RejectError as exc:
        raise RequestError(REJECT_STATUS.get(exc.category, 422), exc.category, exc.message) from exc


class Gate:
    """At most ``limit`` requests at once in one ingress replica (one event loop, no lock):
    :meth:`admit` refuses the next one with 429 ``busy`` at once instead of queueing it."""

    def __init__(self, limit: int) -> None:
        self.limit, self.active = limit, 0

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        if self.active >= self.limit:
            raise RequestError(
                429, "busy", f"{self.active} requests in progress, the limit is {self.limit}"
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
