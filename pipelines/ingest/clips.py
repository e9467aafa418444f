"""One input video -> its clip records, or one reject row; pure functions of the bytes, no Ray.

Per video: read -> probe (PyAV) -> validate -> optional re-encode -> clip records. A training
video becomes one record holding the whole (remuxed) video, its default window centred; a
val/test video becomes one record per window (``clip.num_val_clips`` / ``num_test_clips``
uniform windows), each holding only the GOPs its window needs plus padding. Nothing here
raises for a bad input: :func:`process_video` turns every failure into a reject row.

**The read path** takes regular files only (a FIFO or ``/dev/zero`` would block or never end)
of at most ``limits.max_bytes``, and retries errors that may pass (I/O errors, S3 throttling)
with back-off (``retries``). What still fails that way is no verdict on the video: it raises
:class:`TransientError`, which the shard records as *transient* (retried by the next run),
never as a reject. The whole of one video's processing is bounded by ``limits.timeout_s``.
The sha256 of the bytes read (``source_sha256``, not a record column) lets the ingest find
the same video in two splits.

A video is stored as it is (remuxed, frame-exact) unless the config re-encodes every video or
its stream cannot be (:class:`~pipelines.ingest.segment.RemuxError`: VP8, WMV ...): that video
alone is re-encoded then (:data:`~pipelines.ingest.formats.FALLBACK_PROFILE`), not rejected.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import threading
import time
from typing import Any

import pyarrow.fs as pafs

from pipelines import sampling
from pipelines.ingest import formats
from pipelines.ingest.config import IngestConfig
from pipelines.ingest.probe import (
    ProbeResult,
    RejectError,
    decode_every_frame,
    probe_video,
    validate_length,
)
from pipelines.ingest.segment import (
    REENCODE_PROFILES,
    EncodeSettings,
    RemuxError,
    Segment,
    extract_segment,
    reencode_video,
    remux_video,
)
from pipelines.ingest.sources import SourceEntry
from pipelines.views import window_indices, window_span
from raysf import storage
from raysf.clip_spec import ClipSpec

#: A failure that may pass on a rerun (I/O, throttling after the retries, memory).
TransientError = storage.TransientStorageError


def clips_for_video(
    entry: SourceEntry,
    label_id: int,
    data: bytes,
    probe: ProbeResult,
    cfg: IngestConfig,
) -> list[dict[str, Any]]:
    """Clip records of one probed video (train: 1 whole video; val/test: 1 per window)."""
    s = cfg.clip
    span = window_span(s, probe.fps)
    common = {
        "video_id": entry.video_id,
        "label": entry.label,
        "label_id": label_id,
        "split": entry.split,
        "fps": probe.fps,
        "span": span,
        "source_uri": entry.uri,
        "rotation": probe.rotation,
        "codec": probe.codec,
    }
    return [
        {**common, **_window_columns(clip_index, seg, start, span, probe, s)}
        for clip_index, seg, start in _segments(entry, data, probe, span, cfg)
    ]


def _segments(
    entry: SourceEntry, data: bytes, probe: ProbeResult, span: int, cfg: IngestConfig
) -> list[tuple[int, Segment, int | None]]:
    """``(clip_index, segment, window start in the source)``: the whole remuxed video for
    training (start ``None``: centred), else the GOPs of each uniform window plus padding."""
    if entry.split == "train":
        return [(0, remux_video(data, probe.table, name=entry.uri), None)]
    n = probe.num_frames
    k = cfg.clip.num_test_clips if entry.split == "test" else cfg.clip.num_val_clips
    segments = []
    for clip_index, start in enumerate(sampling.uniform_starts(n, span, k)):
        start = int(start)
        last = min(start + span, n) - 1
        seg = extract_segment(
            data, probe.table, start, last, pad=cfg.segment.pad_frames, name=entry.uri
        )
        if cfg.checks.decode_all == "eval":
            decode_every_frame(seg.content, f"{entry.uri} (window {clip_index})")
        segments.append((clip_index, seg, start))
    return segments


def _window_columns(
    clip_index: int,
    seg: Segment,
    source_start: int | None,
    span: int,
    probe: ProbeResult,
    s: ClipSpec,
) -> dict[str, Any]:
    """The record columns of one segment: its frame table, content and default window (its
    size is the upright picture's: the content keeps the display matrix, and the decoder
    applies it)."""
    seg_n, fps = seg.table.num_frames, probe.fps
    width, height = probe.orientation.display_size(seg.table.width, seg.table.height)
    if source_start is None:  # train: the whole video, default window centred
        start = sampling.center_start(seg_n, span)
    else:  # val/test: the window's start, relative to the segment
        start = source_start - seg.first_frame
    fast, slow = window_indices(s, start, seg_n, fps)
    return {
        "clip_index": clip_index,
        "num_frames": seg_n,
        "height": height,
        "width": width,
        "start_frame": start,
        "fast_idx": fast,
        "slow_idx": slow,
        "content": seg.content,
        "frame_pts": seg.table.pts,
        "keyframes": seg.table.keyframes,
        "source_start_frame": seg.first_frame,
    }


def process_video(
    entry: SourceEntry,
    label_id: int | None,
    duplicate: bool,
    cfg: IngestConfig,
    seen: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Clip rows of one input, or ``([], reject_row)``; never raises for a bad input.

    Raises :class:`TransientError` when the input could not be read for a reason that may
    pass (or memory ran out): the caller keeps it for the next run instead of rejecting it.
    Rows carry keys that are no record columns: clip rows ``source_sha256`` (of the bytes
    read), ``source_format``, ``stored_as``, ``stored_reason``; a reject row the
    ``source_format`` as far as it was known, which ``seen`` also tells the caller.
    """
    seen = {} if seen is None else seen
    seen["source_format"] = formats.UNREAD
    timer = time_limit(cfg.limits.timeout_s, entry.uri)
    try:
        with timer:
            return video_rows(entry, label_id, duplicate, cfg, seen), None
    except RejectError as exc:
        reject = reject_row(entry, exc.category, exc.message)
    except TransientError:
        raise
    except MemoryError as exc:
        raise TransientError(f"{entry.uri}: out of memory while processing") from exc
    except Exception as exc:  # noqa: BLE001 - one bad file must never fail the job
        if timer.expired:  # the time limit interrupted PyAV, which re-raised it as its own
            reject = reject_row(entry, "timeout", timer.message)
        else:
            reject = reject_row(entry, "processing_error", f"{type(exc).__name__}: {exc}")
    return [], {**reject, "source_format": seen["source_format"]}


def video_rows(
    entry: SourceEntry,
    label_id: int | None,
    duplicate: bool,
    cfg: IngestConfig,
    seen: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The clip rows of one input (see :func:`process_video` for ``seen``); raises
    :class:`RejectError` for an unusable one."""
    seen = {} if seen is None else seen
    if entry.error:
        raise RejectError("bad_entry", entry.error)
    if duplicate:
        raise RejectError("duplicate", f"{entry.video_id} already listed in {entry.split}")
    if label_id is None:
        raise RejectError("unknown_label", f"label {entry.label!r} is not in the class list")
    data = read_input(entry.uri, cfg)
    digest = hashlib.sha256(data).hexdigest()
    seen["source_format"] = formats.source_format(data, None)
    limits = cfg.limits
    probe = probe_video(
        data,
        entry.uri,
        decode_all=cfg.checks.decode_all is True,
        max_pixels=limits.max_pixels,
        max_duration_s=limits.max_duration_s,
    )
    rotation = probe.rotation  # the source's: a re-encode writes upright pictures
    seen["source_format"] = formats.source_format(data, probe.codec)
    stored = {"stored_as": "copied", "stored_reason": ""}
    if cfg.reencode is not None:
        r = cfg.reencode
        data, probe = _reencode(data, probe, r.settings(), r.short_side, r.fps, entry.uri)
        stored = {"stored_as": "reencoded", "stored_reason": formats.configured_reason(r.profile)}
    min_frames = cfg.checks.min_frames or window_span(cfg.clip, probe.fps)
    if cfg.checks.short_policy == "reject":
        validate_length(probe, min_frames, entry.uri)
    rows, stored = _stored_rows(entry, label_id, data, probe, cfg, stored)
    extra = {"source_sha256": digest, "source_format": seen["source_format"], **stored}
    extra["rotation"] = rotation
    return [{**row, **extra} for row in rows]


def _stored_rows(
    entry: SourceEntry,
    label_id: int,
    data: bytes,
    probe: ProbeResult,
    cfg: IngestConfig,
    stored: dict[str, str],
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The clip rows of the video as it is, or, when its stream cannot be stored as it is,
    of the video re-encoded with the fallback profile; and how it was stored."""
    try:
        return clips_for_video(entry, label_id, data, probe, cfg), stored
    except RemuxError as exc:
        if cfg.reencode is not None:  # the config's own re-encode does not remux: a bug
            raise RejectError("processing_error", str(exc)) from exc
        reason = str(exc).removeprefix(f"{entry.uri}: ")  # the path is listed beside it
    except (ValueError, OSError) as exc:
        raise RejectError("processing_error", str(exc)) from exc
    fallback = REENCODE_PROFILES[formats.FALLBACK_PROFILE]
    data, probe = _reencode(data, probe, fallback, None, None, entry.uri)
    try:
        rows = clips_for_video(entry, label_id, data, probe, cfg)
    except (ValueError, OSError) as exc:
        raise RejectError("processing_error", f"{exc} (re-encoded because {reason})") from exc
    return rows, {"stored_as": "reencoded", "stored_reason": reason}


def _reencode(
    data: bytes,
    probe: ProbeResult,
    settings: EncodeSettings,
    short_side: int | None,
    fps: float | None,
    name: str,
) -> tuple[bytes, ProbeResult]:
    """The video re-encoded upright (:func:`reencode_video`) and its probe; a failure is a
    ``processing_error``."""
    try:
        data = reencode_video(data, settings, short_side=short_side, fps=fps, name=name)
    except ValueError as exc:
        raise RejectError("processing_error", str(exc)) from exc
    return data, probe_video(data, name)


class time_limit:  # noqa: N801 - used as a context manager, like contextlib's
    """Bound a block by ``seconds``: :class:`RejectError` ``timeout`` when it runs longer.

    In the main thread (where Ray runs a task) a ``SIGALRM`` timer interrupts the block, even
    inside PyAV's loops; elsewhere the block is timed and rejected afterwards. ``expired``
    tells whether the limit was hit (PyAV may re-raise the interruption as its own error).
    """

    def __init__(self, seconds: float | None, name: str) -> None:
        self.seconds, self.expired, self._armed = seconds, False, False
        self.message = f"{name}: processing took longer than limits.timeout_s={seconds}"
        self._previous: Any = None
        self._start = 0.0

    def _fire(self, signum, frame) -> None:
        if self._armed:
            self._armed, self.expired = False, True
            raise RejectError("timeout", self.message)

    def __enter__(self) -> time_limit:
        self._start = time.monotonic()
        if self.seconds and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGALRM, self._fire)
            self._armed = True
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        was_armed, self._armed = self._armed, False
        if self._previous is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)
            self._previous = None
        overran = self.seconds and time.monotonic() - self._start > self.seconds
        if exc_type is None and overran and not was_armed:
            self.expired = True
            raise RejectError("timeout", self.message)


def reject_row(entry: SourceEntry, reason: str, message: str) -> dict[str, Any]:
    """One input's row of the rejects table (also the shape of a transient input's entry)."""
    return {
        "path": entry.uri,
        "video_id": entry.video_id,
        "split": entry.split,
        "label": entry.label,
        "reason": reason,
        "message": message,
    }


def read_input(uri: str, cfg: IngestConfig) -> bytes:
    """The bytes of the regular file ``uri`` (at most ``limits.max_bytes``).

    Raises :class:`RejectError` (``missing``, ``not_regular_file``, ``file_too_large``,
    ``read_error`` for a refused read) or :class:`TransientError` (errors that outlasted the
    retries).
    """
    where = cfg.location(uri)
    fs, path = where.filesystem, where.path
    retries = {"attempts": cfg.retries.attempts, "backoff_s": cfg.retries.backoff_s}
    max_bytes = cfg.limits.max_bytes
    try:
        info = storage.retry_transient(lambda: fs.get_file_info(path), what=uri, **retries)
        if info.type == pafs.FileType.NotFound:
            raise RejectError("missing", f"{uri} does not exist")
        if info.type != pafs.FileType.File:
            kind = _file_kind(fs, path, info)
            raise RejectError("not_regular_file", f"{uri} is a {kind}, not a regular file")
        if info.size is not None and info.size > max_bytes:
            raise RejectError("file_too_large", f"{uri}: {info.size} bytes > {max_bytes}")
        data = storage.retry_transient(
            lambda: _read_at_most(fs, path, max_bytes + 1), what=uri, **retries
        )
    except FileNotFoundError as exc:
        raise RejectError("missing", f"{uri} does not exist") from exc
    except TransientError:
        raise
    except OSError as exc:  # permanent: permission denied and the like
        raise RejectError("read_error", f"{uri}: {exc}") from exc
    if len(data) > max_bytes:
        raise RejectError("file_too_large", f"{uri}: more than {max_bytes} bytes")
    return data


def _read_at_most(fs: pafs.FileSystem, path: str, size: int) -> bytes:
    with fs.open_input_stream(path) as stream:
        return stream.read(size)


def _file_kind(fs: pafs.FileSystem, path: str, info: pafs.FileInfo) -> str:
    """``directory``, ``FIFO``, ``character device`` ... for a message."""
    if info.type == pafs.FileType.Directory:
        return "directory"
    if isinstance(fs, pafs.LocalFileSystem):
        mode = os.stat(path).st_mode
        for test, name in (
            (stat.S_ISFIFO, "FIFO"),
            (stat.S_ISCHR, "character device"),
            (stat.S_ISBLK, "block device"),
            (stat.S_ISSOCK, "socket"),
        ):
            if test(mode):
                return name
    return "special file"
