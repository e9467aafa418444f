"""The ingress's logic: one request from its body to its JSON answer, against the decoder and
model deployments' handles (anything with ``.remote`` and ``.options(stream=True)``, as Ray
Serve's handles have). FastAPI is only the transport (:mod:`training.serving.app`).

A request is admitted (429 ``busy`` over ``max_inflight``), its body read with a byte cap
(413 before the whole body is read), its video found (upload or allowed URI, read off the
event loop), pre-checked (size, container signature) and then sent to the decoder; the views
go to the model in pieces of at most ``max_batch_clips`` (the model's ``@serve.batch`` size,
counted in clips), every piece of a timeline sent as soon as its chunk is decoded. The whole
request has ``limits.ingest.timeout_s`` (504 ``timeout``). Errors become JSON
(:func:`error_answer`): a refusal keeps its status, an overloaded back end is 503
``overloaded``, anything else 500 ``internal``; the service keeps serving.

**A lost replica.** Decoding a classification and scoring views are pure functions of their
inputs, so a call whose replica died under it (its process killed, its node gone) is sent again,
up to :data:`LOST_REPLICA_TRIES` times in all, a moment apart; Ray Serve routes it to another
replica or waits for the one it restarts. A timeline's decoding is a stream and is not
repeated. A request that still fails is 503 ``replica_lost`` with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import numpy as np

from raysf.storage import as_location
from training.inference.timeline import TimelineOptions, timeline_result, top_labels, window_scores
from training.serving.admission import (
    MULTIPART_SLACK,
    Gate,
    RequestError,
    ServeLimits,
    allowed_uri,
    check_size,
    parse_body,
    precheck,
)

#: Tries of a call whose replica died under it (the first and the repeats).
LOST_REPLICA_TRIES = 3
#: Ray's exceptions for an actor that died or cannot be reached (by name: no Ray import here).
LOST_REPLICA_ERRORS = frozenset({"RayActorError", "ActorDiedError", "ActorUnavailableError"})


def lost_replica(exc: BaseException) -> bool:
    """Whether ``exc`` says the replica working on the call is gone."""
    return any(kind.__name__ in LOST_REPLICA_ERRORS for kind in type(exc).__mro__)


async def retry_lost(call, tries: int = LOST_REPLICA_TRIES, pause_s: float = 0.25):
    """``await call()``, again (after ``pause_s``, then twice that, ...) while it fails because
    its replica died; other errors, and the last try's, propagate."""
    for attempt in range(tries):
        try:
            return await call()
        except Exception as exc:
            if not lost_replica(exc) or attempt == tries - 1:
                raise
            await asyncio.sleep(pause_s * (attempt + 1))
    raise ValueError(f"tries must be >= 1, got {tries}")


async def read_capped(chunks: AsyncIterator[bytes], declared: str | None, cap: int) -> bytes:
    """A body of at most ``cap`` bytes: 413 from its ``Content-Length`` alone when that is over,
    or as soon as the bytes read pass it."""
    if declared and declared.isdigit() and int(declared) > cap:
        raise RequestError(413, "file_too_large", f"body of {declared} bytes, the limit is {cap}")
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > cap:
            raise RequestError(413, "file_too_large", f"body over {cap} bytes")
        parts.append(chunk)
    return b"".join(parts)


def options_from_query(query: Mapping[str, str]) -> TimelineOptions:
    """``stride_s``, ``smooth`` and ``top_k`` query parameters; 400 ``bad_option``."""
    unknown = set(query) - {"stride_s", "smooth", "top_k"}
    try:
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)} (stride_s, smooth, top_k)")
        stride = query.get("stride_s")
        return TimelineOptions(
            stride_s=float(stride) if stride else None,
            smooth=int(query.get("smooth", 1)),
            top_k=int(query.get("top_k", 5)),
        )
    except ValueError as exc:
        raise RequestError(400, "bad_option", str(exc)) from exc


def error_answer(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """``(status, JSON body)`` of a failed request (module docstring)."""
    cause = getattr(exc, "cause", None)  # a RayTaskError carries the replica's exception
    if isinstance(cause, RequestError):
        exc = cause
    if isinstance(exc, RequestError):
        return exc.status, exc.body()
    if isinstance(exc, TimeoutError):
        return 504, {"error": "timeout", "detail": "the request took too long", "status": 504}
    name = type(exc).__name__
    if lost_replica(exc):
        detail = f"a back-end replica stopped while working on this request ({name}); retry"
        return 503, {"error": "replica_lost", "detail": detail, "status": 503}
    if "BackPressure" in name or "DeploymentUnavailable" in name:
        return 503, {"error": "overloaded", "detail": " ".join(str(exc).split()), "status": 503}
    detail = " ".join(f"{name}: {exc}".split())[:500]
    return 500, {"error": "internal", "detail": detail, "status": 500}


class Gateway:
    """Classification and timelines over the decoder and model handles (module docstring)."""

    def __init__(self, decoder, model, limits: ServeLimits, max_batch_clips: int) -> None:
        self.decoder, self.model, self.limits = decoder, model, limits
        self.max_batch_clips = max_batch_clips
        self.gate = Gate(limits.max_inflight)

    async def answer(
        self, route: str, chunks: AsyncIterator[bytes], headers: Mapping[str, str], query
    ) -> tuple[int, dict[str, Any]]:
        """``(status, JSON)`` of a ``classify`` or ``timeline`` request (its body's chunks, its
        headers and query parameters)."""
        cap = self.limits.ingest.max_bytes + MULTIPART_SLACK

        async def work():
            body = await read_capped(chunks, headers.get("content-length"), cap)
            kind = headers.get("content-type", "application/octet-stream")
            if route == "classify":
                return await self.classify(body, kind)
            return await self.timeline(body, kind, query)

        return await self.run(work)

    async def run(self, work) -> tuple[int, dict[str, Any]]:
        """``(200, answer)`` of ``work()`` (a coroutine function) or its error answer."""
        try:
            with self.gate.admit():
                return 200, await asyncio.wait_for(work(), self.limits.ingest.timeout_s)
        except Exception as exc:  # noqa: BLE001 - every failure is answered as JSON
            return error_answer(exc)

    async def video(self, body: bytes, content_type: str) -> tuple[bytes, str]:
        """The request's video bytes and name: an upload, or an allowed URI read."""
        found = parse_body(body, content_type)
        data = found.data
        if data is None:
            data = await asyncio.to_thread(self._read_uri, found.uri)
        precheck(data, self.limits, found.name)
        return data, found.name

    def _read_uri(self, uri: str) -> bytes:
        where = as_location(allowed_uri(uri, self.limits))
        info = where.filesystem.get_file_info(where.path)
        if info.type.name != "File":
            raise RequestError(404, "uri_not_found", f"{uri}: no such file")
        check_size(info.size, self.limits, uri)
        return where.read_bytes()

    async def scores(self, fast: np.ndarray) -> np.ndarray:
        """``(V, C)`` softmax scores of the views, in pieces the model batches."""
        step = self.max_batch_clips
        pieces = [fast[i : i + step] for i in range(0, len(fast), step)]
        calls = (retry_lost(lambda p=p: self.model.score.remote(p)) for p in pieces)
        return np.concatenate(await asyncio.gather(*calls))

    async def classify(self, body: bytes, content_type: str) -> dict[str, Any]:
        start = time.perf_counter()
        data, name = await self.video(body, content_type)
        decoded = await retry_lost(lambda: self.decoder.classify_views.remote(data, name))
        model_start = time.perf_counter()
        scores = await self.scores(decoded["fast"])
        model_ms = round((time.perf_counter() - model_start) * 1000, 2)
        info = await self.model_info()
        return {
            "video": name,
            "top5": top_labels(scores.mean(0), info["classes"], 5),
            "views": len(scores),
            "clip_spec": info["clip_spec"],
            "input": decoded["video"],
            "timings_ms": _timings(start, decoded["decode_ms"], model_ms),
        }

    async def timeline(self, body: bytes, content_type: str, query) -> dict[str, Any]:
        start = time.perf_counter()
        options = options_from_query(query)
        data, name = await self.video(body, content_type)
        stream = self.decoder.options(stream=True).timeline_chunks.remote(data, name, options)
        head, pending, index, decode_ms = None, [], [], 0.0
        async for item in stream:
            decode_ms += item["decode_ms"]
            if head is None:
                head = item
                continue
            pending.append(asyncio.ensure_future(self.scores(item["fast"])))
            index.append(item["clip_index"])
        model_start = time.perf_counter()
        parts = await asyncio.gather(*pending)
        model_ms = round((time.perf_counter() - model_start) * 1000, 2)
        windows = head["windows"]
        per_window = window_scores(
            np.concatenate(parts), np.concatenate(index), len(windows.starts)
        )
        info = await self.model_info()
        answer = timeline_result(per_window, windows, info["classes"], options, name)
        answer["input"] = head["video"]
        answer["timings_ms"] = _timings(start, round(decode_ms, 2), model_ms)
        return answer

    async def model_info(self) -> dict[str, Any]:
        if not hasattr(self, "_info"):
            self._info = await self.model.info.remote()
        return self._info


def _timings(start: float, decode_ms: float, model_ms: float) -> dict[str, float]:
    """``decode`` (the decoder's work), ``model`` (from the views' dispatch to their scores: the
    batch wait, the forward pass and the transfers; for a timeline, the part not hidden behind
    decoding) and ``total`` (the request in the ingress)."""
    total = round((time.perf_counter() - start) * 1000, 2)
    return {"decode": decode_ms, "model": model_ms, "total": total}
