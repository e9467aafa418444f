"""Frame-accurate decoding of the frames at given presentation indices.

Strategy (one pass per clip):

1. Seek (backward, to a keyframe) on the pts of the last keyframe at or before the first
   needed frame, so nothing before that GOP is decoded.
2. Decode forward with threaded decoding and stop as soon as the last needed frame is out.
3. Identify each decoded frame by its pts (looked up in the clip's ``frame_pts`` table), never
   by counting frames from the seek point: with B-frames, open GOPs or a demuxer that lands on
   an earlier keyframe, counting silently shifts the clip.
4. Convert to RGB only the frames that are needed, scaling inside libswscale straight to the
   output size (no full-resolution RGB frame is ever built and resized in Python).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pipelines.frame_table import VideoSource, describe_source, open_container, read_frame_table


class DecodeError(RuntimeError):
    """A video could not be decoded; the message names the video (id or path)."""


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """``(width, height)`` scaled so the short side is ``short_side``, aspect kept (rounded)."""
    if width <= 0 or height <= 0 or short_side <= 0:
        raise ValueError(f"sizes must be positive, got {width}x{height} -> {short_side}")
    if width <= height:
        return short_side, max(1, int(round(height * short_side / width)))
    return max(1, int(round(width * short_side / height))), short_side


def _output_size(
    width: int, height: int, size: tuple[int, int] | None, short_side: int | None
) -> tuple[int, int] | None:
    if size is not None and short_side is not None:
        raise ValueError("give at most one of size and short_side")
    if size is not None:
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            raise ValueError(f"size must be positive (width, height), got {size}")
        return None if (w, h) == (width, height) else (w, h)
    if short_side is not None:
        w, h = scaled_size(width, height, int(short_side))
        return None if (w, h) == (width, height) else (w, h)
    return None


def decode_frames(
    content: VideoSource,
    indices: Sequence[int] | np.ndarray,
    *,
    frame_pts: Sequence[int] | np.ndarray | None = None,
    keyframes: Sequence[int] | np.ndarray | None = None,
    size: tuple[int, int] | None = None,
    short_side: int | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Decode the frames at presentation ``indices`` of the first video stream of ``content``.

    Args:
        content: mp4 bytes, a path or a binary file-like.
        indices: presentation indices (any order, repeats allowed), each in
            ``[0, num_frames)``.
        frame_pts: pts of every frame in presentation order (the record's ``frame_pts``);
            read from the container (demux only) when None.
        keyframes: presentation indices of keyframes (the record's ``keyframes``); read from
            the container when None (or when ``frame_pts`` is None).
        size: output ``(width, height)``; or
        short_side: output short side, aspect kept. Neither: native resolution.
        name: video id used in error messages (defaults to the path or a byte count).

    Returns:
        uint8 ``(len(indices), H, W, 3)`` RGB frames, ``out[i]`` being frame ``indices[i]``.

    Raises:
        ValueError: bad arguments or an index out of range.
        DecodeError: the video could not be decoded; the message names the video.
    """
    label = name or describe_source(content)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ValueError(f"no frame indices requested for {label}")
    pts_table, key_table = _frame_tables(content, frame_pts, keyframes, label)
    num_frames = int(pts_table.shape[0])
    if idx.min() < 0 or idx.max() >= num_frames:
        raise ValueError(
            f"frame indices of {label} must be in [0, {num_frames}), "
            f"got [{int(idx.min())}, {int(idx.max())}]"
        )
    wanted = np.unique(idx)
    frames = _decode_wanted(content, wanted, pts_table, key_table, size, short_side, label)
    out = np.stack(frames)
    return out[np.searchsorted(wanted, idx)]


def _frame_tables(
    content: VideoSource,
    frame_pts: Sequence[int] | np.ndarray | None,
    keyframes: Sequence[int] | np.ndarray | None,
    label: str,
) -> tuple[np.ndarray, np.ndarray]:
    """``(pts, keyframes)`` as int64 arrays: the given ones, or read from the container."""
    if frame_pts is not None and keyframes is not None:
        return np.asarray(frame_pts, dtype=np.int64), np.asarray(keyframes, dtype=np.int64)
    try:
        table = read_frame_table(content)
    except ValueError as exc:
        raise DecodeError(f"{label}: {exc}") from exc
    if hasattr(content, "seek"):
        content.seek(0)
    return table.pts, table.keyframes


def _decode_wanted(
    content: VideoSource,
    wanted: np.ndarray,
    pts_table: np.ndarray,
    key_table: np.ndarray,
    size: tuple[int, int] | None,
    short_side: int | None,
    label: str,
) -> list[np.ndarray]:
    """Decode the frames at the sorted, unique indices ``wanted``, in that order.

    Seeks to the last keyframe at or before the first wanted frame; if the demuxer lands past
    it, decodes again from the start. Raises DecodeError when a wanted frame never comes out.
    """
    import av  # heavy; imported where a video is decoded (training-only hosts have no PyAV)

    first, last = int(wanted[0]), int(wanted[-1])
    k = int(np.searchsorted(key_table, first, side="right")) - 1
    seek_index = int(key_table[k]) if k >= 0 else 0
    want_pts = {int(pts_table[i]): j for j, i in enumerate(wanted)}
    last_pts = int(pts_table[last])
    try:
        frames = _decode_span(content, seek_index, pts_table, want_pts, last_pts, size, short_side)
        if frames is None:  # the seek overshot the first needed frame: decode from the start
            if hasattr(content, "seek"):
                content.seek(0)
            frames = _decode_span(content, 0, pts_table, want_pts, last_pts, size, short_side)
    except av.FFmpegError as exc:
        raise DecodeError(f"cannot decode {label}: {exc}") from exc
    missing = [int(wanted[j]) for j, f in enumerate(frames or []) if f is None]
    if frames is None or missing:
        raise DecodeError(
            f"{label}: frames {missing[:8]} were not produced by the decoder "
            f"(frame_pts/keyframes do not match the content?)"
        )
    return frames


def _decode_span(
    content: VideoSource,
    seek_index: int,
    pts_table: np.ndarray,
    want_pts: dict[int, int],
    last_pts: int,
    size: tuple[int, int] | None,
    short_side: int | None,
) -> list[np.ndarray | None] | None:
    """Decode from the keyframe at ``seek_index`` to ``last_pts``; None if the seek overshot."""
    out: list[np.ndarray | None] = [None] * len(want_pts)
    first_pts = min(want_pts)
    with open_container(content) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        target = _output_size(width, height, size, short_side)
        if seek_index > 0:
            container.seek(
                int(pts_table[seek_index]), backward=True, any_frame=False, stream=stream
            )
        remaining = len(want_pts)
        started = False
        for frame in container.decode(stream):
            pts = frame.pts
            if pts is None:
                continue
            if not started:
                started = True
                if pts > first_pts:
                    return None
            j = want_pts.get(int(pts))
            if j is not None and out[j] is None:
                if target is None:
                    out[j] = frame.to_ndarray(format="rgb24")
                else:
                    out[j] = frame.to_ndarray(width=target[0], height=target[1], format="rgb24")
                remaining -= 1
            if remaining == 0 or pts >= last_pts:
                break
    return out


def decode_clip(
    record: Mapping[str, Any],
    *,
    fast_idx: Sequence[int] | np.ndarray | None = None,
    slow_idx: Sequence[int] | np.ndarray | None = None,
    size: tuple[int, int] | None = None,
    short_side: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the Slow and Fast frames of one clip record, decoding their union once.

    Args:
        record: a clip record (``content``, ``fast_idx``, ``slow_idx`` and, when present,
            ``frame_pts``, ``keyframes``, ``video_id``).
        fast_idx, slow_idx: override the record's indices (e.g. a window recomputed at load).
        size, short_side: output size (see :func:`decode_frames`); native when both None.

    Returns:
        ``(slow, fast)``: uint8 ``(T, H, W, 3)`` and ``(alpha*T, H, W, 3)``, no augmentation.
    """
    fast = np.asarray(record["fast_idx"] if fast_idx is None else fast_idx, dtype=np.int64)
    slow = np.asarray(record["slow_idx"] if slow_idx is None else slow_idx, dtype=np.int64)
    union = np.union1d(fast, slow)
    frames = decode_frames(
        record["content"],
        union,
        frame_pts=record.get("frame_pts"),
        keyframes=record.get("keyframes"),
        size=size,
        short_side=short_side,
        name=str(record.get("video_id") or "") or None,
    )
    return frames[np.searchsorted(union, slow)], frames[np.searchsorted(union, fast)]
