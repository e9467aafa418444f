"""One input video -> its clip records, or one reject row; pure functions of the bytes, no Ray.

Per video: read -> probe (PyAV) -> validate -> optional re-encode -> clip records. A training
video becomes one record holding the whole (remuxed) video, its default window centred; a
val/test video becomes one record per window (``clip.num_val_clips`` / ``num_test_clips``
uniform windows), each holding only the GOPs its window needs plus padding. Nothing here
raises for a bad input: :func:`process_video` turns every failure into a reject row.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pipelines import sampling
from pipelines.ingest_config import IngestConfig
from pipelines.probe import ProbeResult, RejectError, probe_video, validate_length
from pipelines.segment import Segment, extract_segment, reencode_video, remux_video
from pipelines.sources import SourceEntry
from pipelines.views import window_indices, window_span
from raysf import storage
from raysf.clip_spec import ClipSpec
from raysf.runtime import resolve_filesystem


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
        {**common, **_window_columns(clip_index, seg, start, span, probe.fps, s)}
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
        segments.append((clip_index, seg, start))
    return segments


def _window_columns(
    clip_index: int, seg: Segment, source_start: int | None, span: int, fps: float, s: ClipSpec
) -> dict[str, Any]:
    """The record columns of one segment: its frame table, content and default window."""
    seg_n = seg.table.num_frames
    if source_start is None:  # train: the whole video, default window centred
        start = sampling.center_start(seg_n, span)
    else:  # val/test: the window's start, relative to the segment
        start = source_start - seg.first_frame
    fast, slow = window_indices(s, start, seg_n, fps)
    return {
        "clip_index": clip_index,
        "num_frames": seg_n,
        "height": seg.table.height,
        "width": seg.table.width,
        "start_frame": start,
        "fast_idx": fast,
        "slow_idx": slow,
        "content": seg.content,
        "frame_pts": seg.table.pts,
        "keyframes": seg.table.keyframes,
        "source_start_frame": seg.first_frame,
    }


def process_video(
    entry: SourceEntry, label_id: int | None, duplicate: bool, cfg: IngestConfig
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Clip rows of one input, or ``([], reject_row)``; never raises for a bad input."""
    try:
        if duplicate:
            raise RejectError("duplicate", f"{entry.video_id} already listed in {entry.split}")
        if label_id is None:
            raise RejectError("unknown_label", f"label {entry.label!r} is not in the class list")
        data = _read_input(entry.uri, cfg)
        probe = probe_video(data, entry.uri, decode_all=cfg.checks.decode_all)
        if cfg.reencode is not None:
            r, x264 = cfg.reencode, cfg.reencode.settings()
            try:
                data = reencode_video(
                    data,
                    short_side=r.short_side,
                    fps=r.fps,
                    gop=x264.gop,
                    crf=x264.crf,
                    preset=x264.preset,
                    tune=x264.tune,
                    bframes=x264.bframes,
                    b_pyramid=x264.b_pyramid,
                    name=entry.uri,
                )
            except ValueError as exc:
                raise RejectError("processing_error", str(exc)) from exc
            probe = replace(probe_video(data, entry.uri), rotation=probe.rotation)
        min_frames = cfg.checks.min_frames or window_span(cfg.clip, probe.fps)
        if cfg.checks.short_policy == "reject":
            validate_length(probe, min_frames, entry.uri)
        try:
            return clips_for_video(entry, label_id, data, probe, cfg), None
        except (ValueError, OSError) as exc:
            raise RejectError("processing_error", str(exc)) from exc
    except RejectError as exc:
        return [], _reject_row(entry, exc.category, exc.message)
    except Exception as exc:  # noqa: BLE001 - one bad file must never fail the job
        return [], _reject_row(entry, "processing_error", f"{type(exc).__name__}: {exc}")


def _reject_row(entry: SourceEntry, reason: str, message: str) -> dict[str, Any]:
    return {
        "path": entry.uri,
        "video_id": entry.video_id,
        "split": entry.split,
        "label": entry.label,
        "reason": reason,
        "message": message,
    }


def _read_input(uri: str, cfg: IngestConfig) -> bytes:
    fs, path = resolve_filesystem(uri, cfg.storage.endpoint_url, cfg.storage.region)
    try:
        return storage.read_bytes(fs, path)
    except FileNotFoundError as exc:
        raise RejectError("missing", f"{uri} does not exist") from exc
    except OSError as exc:
        if not storage.exists(fs, path):
            raise RejectError("missing", f"{uri} does not exist") from exc
        raise RejectError("read_error", f"{uri}: {exc}") from exc
