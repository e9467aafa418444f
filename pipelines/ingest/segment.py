"""Stream-copy (remux, no re-encode) whole GOPs of a video into a self-contained mp4.

A val/test clip record stores only the part of the video its window needs: the GOPs that
cover the window plus some padding, so the loader can still re-window for another
``tau``/``alpha`` (:func:`pipelines.sampling.rewindow`). Copying whole closed GOPs keeps every
packet's references inside the segment, so the segment decodes on its own and its frame ``i``
is exactly frame ``first_frame + i`` of the source (bit-identical decoded pixels).

Only the first video stream is copied; audio and other streams are dropped.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType

from pipelines.decode.frame_table import FrameTable, open_container, read_frame_table
from pipelines.decode.orientation import upright_frames


class RemuxError(ValueError):
    """The stream cannot be stored as it is in an MP4: the muxer refuses its codec (VP8,
    WMV, FLV1, ProRes, raw video ...) or the copied packets do not keep the source's frames
    and timing. Ingest then re-encodes the video (:mod:`pipelines.ingest.clips`)."""


@dataclass(frozen=True)
class EncodeSettings:
    """The x264 settings of a re-encode, resolved from a profile and its overrides.

    Attributes:
        gop: keyframe interval in output frames (closed GOPs, no scene-cut keyframes).
        crf, preset: x264 quality (lower: better, larger) and speed preset.
        tune: x264 tune (``fastdecode``: CAVLC instead of CABAC, no deblocking, no weighted
            prediction), or None.
        bframes: maximum consecutive B-frames (None: the preset's, 3 for ``veryfast``).
        b_pyramid: whether B-frames may be references; False lets the loader skip every
            B-frame a clip does not show (:mod:`pipelines.decode.frames`).
    """

    gop: int
    crf: int
    preset: str
    tune: str | None
    bframes: int | None
    b_pyramid: bool


#: Encoder settings of the re-encode profiles (see ``jobs/ingest.yaml`` and docs/data.md,
#: "Re-encode profiles", for their measured bytes, quality and decode speed).
REENCODE_PROFILES: dict[str, EncodeSettings] = {
    # An archive-like H.264: CABAC, deblocking, B-frame pyramid (x264 veryfast defaults).
    "archive": EncodeSettings(
        gop=16, crf=23, preset="veryfast", tune=None, bframes=None, b_pyramid=True
    ),
    # Chosen for the loader's decode speed: no CABAC and no deblocking (tune=fastdecode), B-frames
    # that are never references (skipped when no pathway shows them), one keyframe per window
    # span (64 frames: SlowFast 8x8 and 4x16 at 30 fps), CRF 26 (fewer bits to decode and
    # store). Measured choice by choice in benchmarks/kinetics_decode_bench.py.
    "train": EncodeSettings(
        gop=64, crf=26, preset="veryfast", tune="fastdecode", bframes=3, b_pyramid=False
    ),
}


@dataclass(frozen=True)
class Segment:
    """A remuxed part of a video.

    Attributes:
        content: self-contained mp4 bytes (video stream only).
        first_frame: source presentation index of the segment's frame 0.
        table: frame table of ``content`` (``table.num_frames`` frames).
    """

    content: bytes
    first_frame: int
    table: FrameTable


def gop_bounds(table: FrameTable, first: int, last: int) -> tuple[int, int]:
    """Source frame range ``[begin, end)`` of the whole GOPs covering frames ``first..last``.

    ``begin`` is the last keyframe at or before ``first``; ``end`` is the first keyframe after
    ``last`` (or the number of frames).
    """
    n = table.num_frames
    if not 0 <= first <= last < n:
        raise ValueError(f"frame range [{first}, {last}] outside [0, {n - 1}]")
    begin = table.keyframe_at_or_before(first)
    after = table.keyframes[table.keyframes > last]
    end = int(after[0]) if after.size else n
    return begin, end


def extract_segment(
    data: bytes,
    table: FrameTable,
    first: int,
    last: int,
    *,
    pad: int = 0,
    name: str = "<bytes>",
) -> Segment:
    """Remux the GOPs covering source frames ``[first - pad, last + pad]`` (clipped).

    Args:
        data: the whole source file.
        table: its frame table (:func:`pipelines.decode.frame_table.read_frame_table`).
        first, last: inclusive presentation indices the segment must contain.
        pad: extra frames wanted on each side (rounded out to whole GOPs).
        name: used in error messages.

    Returns:
        :class:`Segment` whose frame ``i`` is source frame ``first_frame + i``.

    Raises:
        ValueError: the range is invalid.
        RemuxError: the stream cannot be copied into an MP4, or the remuxed segment does not
            hold exactly the expected frames (e.g. open GOPs whose B-frames reference the
            previous GOP).
    """
    lo_frame = max(0, first - pad)
    hi_frame = min(table.num_frames - 1, last + pad)
    begin, end = gop_bounds(table, lo_frame, hi_frame)
    lo_pts = int(table.pts[begin])
    hi_pts = int(table.pts[end]) if end < table.num_frames else None
    content = _remux_range(data, lo_pts, hi_pts, name)
    seg_table = read_frame_table(content)
    expected = table.pts[begin:end] - lo_pts
    got = seg_table.pts - int(seg_table.pts[0])
    if seg_table.num_frames != end - begin or not _same_timing(
        got, seg_table.time_base, expected, table.time_base
    ):
        raise RemuxError(
            f"{name}: segment of frames [{begin}, {end}) remuxed to {seg_table.num_frames} "
            "frames with different timing (open GOP or broken timestamps?)"
        )
    return Segment(content=content, first_frame=begin, table=seg_table)


def remux_video(data: bytes, table: FrameTable, *, name: str = "<bytes>") -> Segment:
    """The whole video stream, stream-copied without audio (the train-split record content)."""
    return extract_segment(data, table, 0, table.num_frames - 1, name=name)


def _same_timing(a: np.ndarray, tb_a, b: np.ndarray, tb_b) -> bool:
    """Relative timestamps ``a`` (in ``tb_a``) and ``b`` (in ``tb_b``) agree within half a tick
    of the coarser time base: each array is compared in seconds, in its own time base (a WebM's
    milliseconds against the remuxed MP4's 1/16000 s, an AVI's frame ticks against 1/12800 s)."""
    if a.shape != b.shape:
        return False
    sec_a = a.astype(np.float64) * float(tb_a)
    sec_b = b.astype(np.float64) * float(tb_b)
    tol = 0.5 * max(float(tb_a), float(tb_b))
    return bool(np.all(np.abs(sec_a - sec_b) <= tol + 1e-9))


def _remux_range(data: bytes, lo_pts: int, hi_pts: int | None, name: str) -> bytes:
    """Copy video packets with ``lo_pts <= pts < hi_pts`` into a new mp4, shifted to start at 0.

    :class:`RemuxError` when the mp4 muxer refuses the codec or a packet."""
    buffer = io.BytesIO()
    try:
        with open_container(data) as src:
            vin = src.streams.video[0]
            with av.open(buffer, mode="w", format="mp4") as dst:
                # opaque: copy the codec parameters without looking up an encoder of the
                # decoder's name (AV1 decodes with libdav1d, which has no encoder).
                try:
                    vout = dst.add_stream_from_template(vin, opaque=True)
                except ValueError as exc:  # "'mp4' format does not support 'vp8' codec"
                    raise RemuxError(f"{name}: {exc}") from exc
                for packet in src.demux(vin):
                    if packet.pts is None or packet.size == 0:
                        continue
                    if packet.pts < lo_pts or (hi_pts is not None and packet.pts >= hi_pts):
                        continue
                    packet.pts -= lo_pts
                    if packet.dts is not None:
                        packet.dts -= lo_pts
                    packet.stream = vout
                    dst.mux(packet)
    except av.FFmpegError as exc:
        raise RemuxError(f"{name}: remux failed: {exc}") from exc
    return buffer.getvalue()


def reencode_video(
    data: bytes,
    settings: EncodeSettings,
    *,
    short_side: int | None = None,
    fps: float | None = None,
    extra_params: Sequence[str] = (),
    name: str = "<bytes>",
) -> bytes:
    """Decode the first video stream and re-encode it upright with libx264 (no audio).

    Args:
        settings: the x264 settings (a :data:`REENCODE_PROFILES` entry, or one with overrides).
        short_side: resize so the shorter side has this many pixels (even sizes; None keeps
            the size).
        fps: output frame rate; frames are picked by nearest-earlier timestamp (dropped or
            repeated). None keeps every frame at the source rate.
        extra_params: further x264 parameters (``"cabac=0"``, ``"no-deblock=1"``...), applied
            last.

    Output is deterministic for a given input (single-threaded x264).
    """
    frames, src_fps = _decode_timed(data, name)
    width, height = frames[0][1].width, frames[0][1].height
    out_w, out_h = _scaled_size(width, height, short_side)
    out_fps = fps or src_fps
    times = np.array([t for t, _ in frames]) - frames[0][0]
    picks = list(range(len(frames))) if fps is None else _resample(times, out_fps, src_fps)
    chosen = [frames[int(i)][1] for i in picks]
    options = x264_options(
        gop=settings.gop,
        crf=settings.crf,
        preset=settings.preset,
        tune=settings.tune,
        bframes=settings.bframes,
        b_pyramid=settings.b_pyramid,
        extra_params=extra_params,
    )
    return _encode_x264(chosen, out_w, out_h, out_fps, gop=settings.gop, options=options)


def _decode_timed(data: bytes, name: str) -> tuple[list[tuple[float, av.VideoFrame]], float]:
    """Every frame of the first video stream with its time in seconds, sorted by time.

    Returns ``(frames, source fps)``; frames without a pts are timed by their decode order.
    """
    frames: list[tuple[float, av.VideoFrame]] = []
    try:
        with open_container(data) as src:
            vin = src.streams.video[0]
            rate = vin.average_rate or vin.guessed_rate
            src_fps = float(rate) if rate else 30.0
            for frame in src.decode(vin):
                t = float(frame.pts * frame.time_base) if frame.pts is not None else None
                frames.append((t if t is not None else len(frames) / src_fps, frame))
    except av.FFmpegError as exc:
        raise ValueError(f"{name}: decode for re-encoding failed: {exc}") from exc
    if not frames:
        raise ValueError(f"{name}: no frame to re-encode")
    frames.sort(key=lambda tf: tf[0])
    upright = upright_frames([frame for _, frame in frames], name)
    return [(t, frame) for (t, _), frame in zip(frames, upright, strict=True)], src_fps


def _resample(times: np.ndarray, out_fps: float, src_fps: float) -> np.ndarray:
    """For each output frame at ``out_fps``, the index of the source frame it shows.

    That is the latest source frame (at ``times`` seconds from 0) at or before the output
    frame's time, so source frames are dropped or repeated.
    """
    duration = times[-1] + 1.0 / src_fps
    count = max(1, int(np.floor(duration * out_fps + 1e-6)))
    targets = np.arange(count) / out_fps
    return np.clip(np.searchsorted(times, targets + 1e-6, side="right") - 1, 0, None)


def _encode_x264(
    frames: Sequence[av.VideoFrame],
    width: int,
    height: int,
    fps: float,
    *,
    gop: int,
    options: dict[str, str],
) -> bytes:
    """Encode ``frames``, scaled to ``width`` x ``height``, as H.264 mp4 at ``fps``."""
    rate_q = _rational(fps)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as dst:
        vout = dst.add_stream("libx264", rate=rate_q)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.codec_context.gop_size = gop
        vout.options = options
        for j, source in enumerate(frames):
            # Through a fresh ndarray: a clean frame (no padding bytes, flags or side data
            # inherited from the decoder), so the encoder's input depends only on the pixels.
            pixels = source.reformat(width=width, height=height, format="yuv420p")
            frame = av.VideoFrame.from_ndarray(pixels.to_ndarray(), format="yuv420p")
            frame.pict_type = PictureType.NONE  # do not force the source keyframes
            frame.pts = j
            frame.time_base = 1 / rate_q
            dst.mux(vout.encode(frame))
        dst.mux(vout.encode(None))
    return buffer.getvalue()


def x264_options(
    *,
    gop: int,
    crf: int,
    preset: str,
    tune: str | None = None,
    bframes: int | None = None,
    b_pyramid: bool = True,
    extra_params: Sequence[str] = (),
) -> dict[str, str]:
    """libx264 options of :func:`reencode_video`: closed GOPs of exactly ``gop`` frames, one
    thread, no macroblock-tree (it made bytes differ from run to run), and the given choices."""
    params = [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0", "open-gop=0", "mbtree=0"]
    if bframes is not None:
        params.append(f"bframes={int(bframes)}")
    if not b_pyramid:
        params.append("b-pyramid=none")
    params.extend(extra_params)
    options = {"preset": preset, "crf": str(crf), "threads": "1"}
    if tune:
        options["tune"] = tune
    options["x264-params"] = ":".join(params)
    return options


def _scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Size with the shorter side == ``short_side``, both rounded to even numbers."""
    if short_side is None:
        return width - width % 2, height - height % 2
    scale = short_side / min(width, height)
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def _rational(value: float):
    return Fraction(value).limit_denominator(1001)
