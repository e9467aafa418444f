"""Frame-accurate decoding of the frames at given presentation indices.

Strategy (one pass per clip, :func:`decode_av_frames`):

1. Seek (backward, to a keyframe) on the pts of the last keyframe at or before the first
   needed frame, so nothing before that GOP is decoded.
2. Feed the decoder packet by packet and stop reading once the packet of every needed frame
   has been sent, then flush the decoder: no frame past the window is decoded, whatever the
   decoder's reorder delay or thread count.
3. Drop, unread by the decoder, every packet that no other frame references and that no
   pathway shows (H.264 pictures with ``nal_ref_idc == 0``, see :mod:`pipelines.decode.h264`, e.g.
   the B-frames between Fast samples of a ``b-pyramid=none`` encode). Dropping them changes
   no other decoded frame.
4. Identify each decoded frame by its pts (looked up in the clip's ``frame_pts`` table), never
   by counting frames from the seek point: with B-frames, open GOPs or a demuxer that lands on
   an earlier keyframe, counting silently shifts the clip.
5. Turn the frames upright when the stream has a display matrix (rotation/mirror:
   :mod:`pipelines.decode.orientation`), a move of the samples, no resampling.
6. Convert to RGB only the frames that are needed, scaling inside libswscale straight to the
   output size (no full-resolution RGB frame is ever built and resized in Python), with one
   swscale context and one swscale thread per call (:mod:`pipelines.decode.convert`); or, for
   training views converted on the device, copy out the crop's box of the 4:2:0 planes
   (:func:`decode_clip_planes`, :mod:`pipelines.decode.planes`).

Decoder threads: ``threads=1`` decodes on the calling thread (the loader's choice: its tasks
already fill the cores, and frame threads only add start-up latency and synchronisation to a
short clip); ``threads=0`` lets FFmpeg pick (one per core), for one-off decodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.decode.convert import Box, FrameConverter, scaled_size
from pipelines.decode.frame_table import (
    VideoSource,
    describe_source,
    open_container,
    read_frame_table,
)
from pipelines.decode.h264 import avcc_length_size, is_non_reference
from pipelines.decode.orientation import upright_frames
from pipelines.decode.planes import PlaneCutter

if TYPE_CHECKING:
    import av

__all__ = [
    "Box",
    "DecodeError",
    "decode_av_frames",
    "decode_clip",
    "decode_clip_boxes",
    "decode_clip_planes",
    "decode_frames",
    "scaled_size",
]


class DecodeError(RuntimeError):
    """A video could not be decoded; the message names the video (id or path)."""


def decode_frames(
    content: VideoSource,
    indices: Sequence[int] | np.ndarray,
    *,
    frame_pts: Sequence[int] | np.ndarray | None = None,
    keyframes: Sequence[int] | np.ndarray | None = None,
    size: tuple[int, int] | None = None,
    short_side: int | None = None,
    box: Box | None = None,
    threads: int = 0,
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
        box: keep only this ``(x, y, width, height)`` region of the source frame, scaled to
            ``size`` (required with ``box``); see :class:`pipelines.decode.convert.FrameConverter`.
        threads: decoder threads (1: the calling thread only; 0: FFmpeg's choice).
        name: video id used in error messages (defaults to the path or a byte count).

    Returns:
        uint8 ``(len(indices), H, W, 3)`` RGB frames, ``out[i]`` being frame ``indices[i]``.

    Raises:
        ValueError: bad arguments or an index out of range.
        DecodeError: the video could not be decoded; the message names the video.
    """
    convert = FrameConverter(size=size, short_side=short_side, box=box)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    wanted = np.unique(idx)
    frames = decode_av_frames(
        content, wanted, frame_pts=frame_pts, keyframes=keyframes, threads=threads, name=name
    )
    out = _converted(frames, convert, name or describe_source(content))
    if np.array_equal(idx, wanted):  # sorted, unique: no second copy
        return out
    return out[np.searchsorted(wanted, idx)]


def _converted(frames: list[av.VideoFrame], convert: FrameConverter, label: str) -> np.ndarray:
    """The frames through ``convert``, in one array; a conversion error names the video.

    Each converted frame is copied into the output as soon as it is made and its swscale
    buffer freed before the next one is converted, so one buffer is reused (stacking a list
    of converted frames keeps every buffer alive: fresh memory, page faults and a second
    pass over the pixels)."""
    try:
        first = convert(frames[0])
        out = np.empty((len(frames), *first.shape), dtype=first.dtype)
        out[0] = first
        del first
        for i in range(1, len(frames)):
            out[i] = convert(frames[i])
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from exc
    return out


def decode_av_frames(
    content: VideoSource,
    wanted: Sequence[int] | np.ndarray,
    *,
    frame_pts: Sequence[int] | np.ndarray | None = None,
    keyframes: Sequence[int] | np.ndarray | None = None,
    threads: int = 0,
    name: str | None = None,
) -> list[av.VideoFrame]:
    """The decoded, unconverted frames at the sorted, unique presentation indices ``wanted``.

    Steps 1-5 of the module docstring (upright frames: sizes, boxes and crops are the displayed
    picture's); arguments as in :func:`decode_frames`. The benchmarks' decode-only ceiling.
    """
    import av  # heavy; imported where a video is decoded (training-only hosts have no PyAV)

    label = name or describe_source(content)
    want = np.asarray(wanted, dtype=np.int64).reshape(-1)
    if want.size == 0:
        raise ValueError(f"no frame indices requested for {label}")
    if np.any(np.diff(want) <= 0):
        raise ValueError(f"wanted indices of {label} must be sorted and unique")
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0: FFmpeg's choice), got {threads}")
    pts_table, key_table = _frame_tables(content, frame_pts, keyframes, label)
    num_frames = int(pts_table.shape[0])
    if want[0] < 0 or want[-1] >= num_frames:
        raise ValueError(
            f"frame indices of {label} must be in [0, {num_frames}), "
            f"got [{int(want[0])}, {int(want[-1])}]"
        )
    k = int(np.searchsorted(key_table, int(want[0]), side="right")) - 1
    seek_pts = int(pts_table[int(key_table[k]) if k >= 0 else 0])
    want_pts = {int(pts_table[i]): j for j, i in enumerate(want)}
    try:
        frames = _decode_span(content, seek_pts if k > 0 else None, want_pts, threads)
        if frames is None:  # the seek overshot the first needed frame: decode from the start
            if hasattr(content, "seek"):
                content.seek(0)
            frames = _decode_span(content, None, want_pts, threads)
    except av.FFmpegError as exc:
        raise DecodeError(f"cannot decode {label}: {exc}") from exc
    missing = [int(want[j]) for j, f in enumerate(frames or []) if f is None]
    if frames is None or missing:
        raise DecodeError(
            f"{label}: frames {missing[:8]} were not produced by the decoder "
            f"(frame_pts/keyframes do not match the content?)"
        )
    return upright_frames(frames, label)


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


def _decode_span(
    content: VideoSource, seek_pts: int | None, want_pts: dict[int, int], threads: int
) -> list[av.VideoFrame | None] | None:
    """Decode from the keyframe at ``seek_pts`` (None: the start) until every frame of
    ``want_pts`` (pts -> output slot) is out; None if the seek landed past ``seek_pts``."""
    out: list[av.VideoFrame | None] = [None] * len(want_pts)
    unsent = set(want_pts)
    with open_container(content) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        if threads != 1:
            stream.thread_type = "AUTO"
        context.thread_count = threads
        length_size = avcc_length_size(context.extradata) if context.name == "h264" else None
        if seek_pts is not None:
            container.seek(seek_pts, backward=True, any_frame=False, stream=stream)
        first_pts = min(want_pts) if seek_pts is not None else None
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            pts = int(packet.pts)
            if first_pts is not None:  # the first packet is the keyframe the seek landed on
                if pts > first_pts:
                    return None
                first_pts = None
            if pts in unsent:
                unsent.discard(pts)
            elif length_size is not None and is_non_reference(packet, length_size):
                continue
            _collect(context.decode(packet), want_pts, out)
            if not unsent:
                break
        _collect(context.decode(None), want_pts, out)
    return out


def _collect(frames, want_pts: dict[int, int], out: list[av.VideoFrame | None]) -> None:
    """Keep the decoded frames whose pts is wanted, in their output slot."""
    for frame in frames:
        if frame.pts is None:
            continue
        j = want_pts.get(int(frame.pts))
        if j is not None and out[j] is None:
            out[j] = frame


def decode_clip(
    record: Mapping[str, Any],
    *,
    fast_idx: Sequence[int] | np.ndarray | None = None,
    slow_idx: Sequence[int] | np.ndarray | None = None,
    size: tuple[int, int] | None = None,
    short_side: int | None = None,
    box: Box | None = None,
    threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the Slow and Fast frames of one clip record, decoding their union once.

    Args:
        record: a clip record (``content``, ``fast_idx``, ``slow_idx`` and, when present,
            ``frame_pts``, ``keyframes``, ``video_id``).
        fast_idx, slow_idx: override the record's indices (e.g. a window recomputed at load).
        size, short_side, box: output size and region (see :func:`decode_frames`); native
            when all None.
        threads: decoder threads (see :func:`decode_frames`).

    Returns:
        ``(slow, fast)``: uint8 ``(T, H, W, 3)`` and ``(alpha*T, H, W, 3)``, no augmentation.
    """
    convert = FrameConverter(size=size, short_side=short_side, box=box)
    return _decode_clip_views(record, fast_idx, slow_idx, [convert], threads)[0]


def decode_clip_boxes(
    record: Mapping[str, Any],
    *,
    fast_idx: Sequence[int] | np.ndarray,
    slow_idx: Sequence[int] | np.ndarray,
    size: tuple[int, int],
    boxes: Sequence[Box],
    threads: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Several regions of one clip from one decode: the union of its Slow and Fast frames is
    decoded once and each of ``boxes`` is converted at ``size`` (as ``decode_clip(...,
    size=size, box=box)`` would, pixel for pixel).

    Returns:
        one ``(slow, fast)`` pair per box, in the order of ``boxes``.
    """
    converters = [FrameConverter(size=size, box=box) for box in boxes]
    return _decode_clip_views(record, fast_idx, slow_idx, converters, threads)


def decode_clip_planes(
    record: Mapping[str, Any],
    *,
    fast_idx: Sequence[int] | np.ndarray,
    slow_idx: Sequence[int] | np.ndarray,
    cutters: Sequence[PlaneCutter],
    threads: int = 0,
) -> list[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], int]]:
    """Several boxes of one clip from one decode, as 4:2:0 planes (no colour conversion; see
    :mod:`pipelines.decode.planes`).

    Returns:
        one ``((slow_y, slow_uv), (fast_y, fast_uv), yuv_code)`` per cutter, in their order.
    """
    fast, slow, union = _clip_indices(record, fast_idx, slow_idx)
    frames = _record_frames(record, union, threads)
    out = []
    for cutter in cutters:
        try:
            y, uv, code = cutter.cut(frames)
        except ValueError as exc:
            label = str(record.get("video_id") or "") or describe_source(record["content"])
            raise ValueError(f"{label}: {exc}") from exc
        slow_y, fast_y = _split(y, union, fast, slow)
        slow_uv, fast_uv = _split(uv, union, fast, slow)
        out.append(((slow_y, slow_uv), (fast_y, fast_uv), code))
    return out


def _record_frames(record: Mapping[str, Any], union: np.ndarray, threads: int) -> list:
    """The decoded frames of ``union`` (sorted, unique) of a clip record."""
    return decode_av_frames(
        record["content"],
        union,
        frame_pts=record.get("frame_pts"),
        keyframes=record.get("keyframes"),
        threads=threads,
        name=str(record.get("video_id") or "") or None,
    )


def _decode_clip_views(
    record: Mapping[str, Any],
    fast_idx,
    slow_idx,
    converters: Sequence[FrameConverter],
    threads: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The union of a clip's frames decoded once, then ``(slow, fast)`` through each converter."""
    fast, slow, union = _clip_indices(record, fast_idx, slow_idx)
    frames = _record_frames(record, union, threads)
    label = str(record.get("video_id") or "") or describe_source(record["content"])
    return [_split(_converted(frames, c, label), union, fast, slow) for c in converters]


def _clip_indices(
    record: Mapping[str, Any], fast_idx, slow_idx
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fast, slow, union)``: the given indices (else the record's) and their sorted union."""
    fast = np.asarray(record["fast_idx"] if fast_idx is None else fast_idx, dtype=np.int64)
    slow = np.asarray(record["slow_idx"] if slow_idx is None else slow_idx, dtype=np.int64)
    return fast, slow, np.union1d(fast, slow)


def _split(
    frames: np.ndarray, union: np.ndarray, fast: np.ndarray, slow: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(slow, fast)`` frames out of the frames of ``union``: views of ``frames`` where the
    indices are every k-th frame of the union (the Fast frames are the union and the Slow
    ones every alpha-th of them for both index rules), copies otherwise."""
    return _pick(frames, union, slow), _pick(frames, union, fast)


def _pick(frames: np.ndarray, union: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The frames of ``idx`` (a sorted subset of ``union``): a strided view when they are
    evenly spaced in ``union``, else a copy."""
    pos = np.searchsorted(union, idx)
    step = int(pos[1] - pos[0]) if pos.size > 1 else 1
    if pos.size and step > 0 and np.array_equal(pos, pos[0] + step * np.arange(pos.size)):
        return frames[int(pos[0]) :: step][: pos.size]
    return frames[pos]
