"""What the service refuses before any decoding, and how (no Ray): bodies, URIs, sizes, the
ingest's container allowlist and caps, in-flight requests, query options, error answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

import pytest

from pipelines.ingest.config import LimitsConfig
from pipelines.synth.generate import generate
from training.serving.admission import (
    Gate,
    RequestError,
    ServeLimits,
    allowed_uri,
    parse_body,
    precheck,
    probe,
)
from training.serving.gateway import error_answer, options_from_query, read_capped, retry_lost


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    root = tmp_path_factory.mktemp("admission")
    video = generate(root, classes=1, videos_per_class=1, seed=2, frames=24, size=(64, 48))[0]
    return open(video.path, "rb").read()


@contextlib.contextmanager
def _refused(status: int, reason: str):
    """Expects a :class:`RequestError` of this status and reason."""
    with pytest.raises(RequestError) as info:
        yield
    assert (info.value.status, info.value.reason) == (status, reason), str(info.value)


def _multipart(field: str, data: bytes, filename: str = "clip.mp4") -> tuple[bytes, str]:
    boundary = "XyZ123boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"'
            "\r\nContent-Type: video/mp4\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_bodies_raw_multipart_and_json(video_bytes):
    raw = parse_body(video_bytes, "application/octet-stream")
    assert raw.data == video_bytes and raw.uri is None
    body, kind = _multipart("video", video_bytes)
    part = parse_body(body, kind)
    assert part.data == video_bytes and part.name == "clip.mp4"
    assert parse_body(b'{"uri": "s3://b/k.mp4"}', "application/json").uri == "s3://b/k.mp4"
    with _refused(400, "bad_request"):
        parse_body(*_multipart("other", video_bytes))
    with _refused(400, "bad_request"):
        parse_body(b"[1, 2]", "application/json")
    with _refused(400, "bad_request"):
        parse_body(b"{not json", "application/json")


def test_uris_only_under_allowed_roots(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    (root / "a.mp4").write_bytes(b"x")
    os.symlink("/etc/passwd", root / "escape.mp4")
    limits = ServeLimits(allowed_uris=(str(root), "s3://bucket/videos"))
    assert allowed_uri(str(root / "a.mp4"), limits) == str(root / "a.mp4")
    assert allowed_uri(f"file://{root}/a.mp4", limits) == str(root / "a.mp4")
    assert allowed_uri("s3://bucket/videos/x.mp4", limits) == "s3://bucket/videos/x.mp4"
    for uri in (
        f"{root}/../outside.mp4",
        str(root / "escape.mp4"),  # a symlink out of the root
        "/etc/passwd",
        "relative/a.mp4",
        "http://example.com/a.mp4",
        "s3://bucket/videos-other/x.mp4",  # a prefix is a folder, not a string prefix
        "s3://other/videos/x.mp4",
    ):
        with _refused(403, "uri_not_allowed"):
            allowed_uri(uri, limits)
    with _refused(403, "uri_not_allowed"):
        allowed_uri(str(root / "a.mp4"), ServeLimits())  # no URI is allowed by default
    with pytest.raises(ValueError, match="absolute"):
        ServeLimits(allowed_uris=("relative/root",))


@pytest.mark.parametrize(
    "data, status, reason",
    [
        (b"", 400, "empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), 415, "image"),
        (b"#EXTM3U\n#EXT-X-VERSION:3\nhttp://example.com/a.ts\n", 415, "container_not_allowed"),
        (b"ffconcat version 1.0\nfile '/etc/passwd'\n", 415, "container_not_allowed"),
        (b"hello, this is not a video at all", 415, "unreadable"),
    ],
)
def test_precheck_refuses_non_videos_from_their_first_bytes(data, status, reason):
    with _refused(status, reason):
        precheck(data, ServeLimits(), "upload")


def test_the_ingest_caps_apply(video_bytes):
    precheck(video_bytes, ServeLimits(), "ok")  # a video passes the cheap checks
    assert probe(video_bytes, ServeLimits(), "ok").num_frames == 24
    with _refused(413, "file_too_large"):
        precheck(video_bytes, ServeLimits(LimitsConfig(max_bytes=100)), "big")
    with _refused(413, "frame_too_large"):
        probe(video_bytes, ServeLimits(LimitsConfig(max_pixels=64 * 47)), "wide")
    with _refused(413, "too_long"):
        probe(video_bytes, ServeLimits(LimitsConfig(max_duration_s=0.5)), "long")
    with _refused(422, "truncated"):
        probe(video_bytes[: len(video_bytes) // 2], ServeLimits(), "cut")


def test_gate_refuses_over_the_limit_and_frees_its_place():
    gate = Gate(1)
    with gate.admit(), _refused(429, "busy"), gate.admit():
        pass
    with gate.admit():  # the first request is done: room again
        assert gate.active == 1
    assert gate.active == 0


def test_body_cap_refuses_from_the_header_or_while_reading():
    async def chunks(n):
        for _ in range(n):
            yield b"x" * 10

    assert asyncio.run(read_capped(chunks(3), "30", 30)) == b"x" * 30
    with _refused(413, "file_too_large"):
        asyncio.run(read_capped(chunks(1), "31", 30))  # refused before reading
    with _refused(413, "file_too_large"):
        asyncio.run(read_capped(chunks(4), None, 30))  # no header: refused at 40 bytes


def test_query_options():
    opts = options_from_query({"stride_s": "0.5", "smooth": "3", "top_k": "2"})
    assert (opts.stride_s, opts.smooth, opts.top_k) == (0.5, 3, 2)
    assert options_from_query({}).stride_s is None
    for query in ({"smooth": "2"}, {"stride_s": "abc"}, {"stride": "1"}, {"top_k": "99"}):
        with _refused(400, "bad_option"):
            options_from_query(query)


def test_error_answers_are_json_with_a_reason():
    class BackPressureError(Exception):
        pass

    class RayTaskError(Exception):
        def __init__(self, cause):
            self.cause = cause

    refused = RequestError(415, "image", "a PNG")
    assert error_answer(refused) == (415, refused.body())
    assert error_answer(RayTaskError(refused))[0] == 415  # raised inside a replica
    assert error_answer(BackPressureError("queue full"))[1]["error"] == "overloaded"
    assert error_answer(TimeoutError())[0] == 504
    status, body = error_answer(KeyError("boom"))
    assert status == 500 and body["error"] == "internal" and "boom" in body["detail"]
    json.dumps(body)


# ---------------------------------------------------------------------------- lost replicas


class RayActorError(Exception):
    """Named as Ray's: the gateway recognises a lost replica by its exception's class name."""


class ActorDiedError(RayActorError):
    pass


def test_a_call_whose_replica_died_is_sent_again():
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ActorDiedError("the replica's process died")
        return "scored"

    assert asyncio.run(retry_lost(flaky, pause_s=0)) == "scored" and len(calls) == 3


def test_a_replica_lost_every_time_is_503_and_other_errors_are_not_retried():
    calls = []

    async def dead():
        calls.append(1)
        raise ActorDiedError("gone")

    with pytest.raises(ActorDiedError) as lost:
        asyncio.run(retry_lost(dead, tries=2, pause_s=0))
    assert len(calls) == 2
    status, body = error_answer(lost.value)
    assert (status, body["error"]) == (503, "replica_lost") and "ActorDiedError" in body["detail"]

    async def refused():
        calls.append(1)
        raise RequestError(415, "unreadable", "not a video")

    calls.clear()
    with pytest.raises(RequestError):
        asyncio.run(retry_lost(refused, pause_s=0))
    assert len(calls) == 1
    assert error_answer(ValueError("bug"))[1]["error"] == "internal"
