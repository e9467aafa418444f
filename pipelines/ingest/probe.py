"""Probe a video with PyAV and decide whether it can be ingested.

:func:`probe_video` reads the container (no file system access: it takes the bytes), demuxes
the frame table (:mod:`pipelines.decode.frame_table`) and decodes enough frames to prove the stream
decodes. Anything unusable raises :class:`RejectError` with a *reason category* from
:data:`REJECT_CATEGORIES`; the ingest job turns that into one row of the rejects table instead
of failing.

**Only allow-listed containers are opened.** The first bytes must be the signature of a
container of :data:`ALLOWED_CONTAINERS` (ISO-BMFF mp4/mov, Matroska/WebM, AVI, FLV, MPEG-TS),
and FFmpeg is told to use no other demuxer (``format_whitelist``): an FFmpeg ``ffconcat``
script, an HLS/DASH playlist or anything that names other files or network URLs is rejected as
``container_not_allowed`` before FFmpeg reads it, so a record never holds another file's video.
A still image is ``image``; bytes without a known signature are ``unreadable``. The frame size
(``max_pixels``) and the declared duration (``max_duration_s``) are checked before any frame
is decoded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import numpy as np

from pipelines.decode.frame_table import FrameTable, read_frame_table
from pipelines.decode.orientation import UPRIGHT, Orientation

#: Reason categories of the rejects table, with their meaning (documented in docs/data.md).
REJECT_CATEGORIES: dict[str, str] = {
    "bad_entry": "the listing entry itself is unusable (file name not UTF-8, a Kinetics "
    "youtube_id or split that is empty or holds a path separator or '..')",
    "missing": "the listed file does not exist",
    "not_regular_file": "the path is not a regular file (a directory, FIFO, device or socket)",
    "file_too_large": "the file is larger than limits.max_bytes",
    "read_error": "the file exists but reading it is refused (permission denied)",
    "empty": "the file has zero bytes",
    "unreadable": "not a media container FFmpeg recognises (e.g. random bytes)",
    "container_not_allowed": "a container or script outside the allowlist (ffconcat, HLS/DASH "
    "playlists, Ogg, ASF, MPEG-PS ...)",
    "truncated": "a container header is present but the file is cut short "
    "(index lost, or fewer packets than declared)",
    "no_video": "the container has no video stream (e.g. audio only)",
    "image": "a still image (e.g. a PNG/JPEG renamed .mp4), not a video",
    "frame_too_large": "width x height above limits.max_pixels",
    "too_long": "duration above limits.max_duration_s",
    "undecodable": "the video stream does not decode (no decoder for the codec, "
    "or a corrupt codec configuration)",
    "too_short": "fewer frames than the minimum (by default one sampling window)",
    "timeout": "processing the video took longer than limits.timeout_s",
    "unknown_label": "the label is empty or not in the class list",
    "duplicate": "the same video id appears more than once in a split",
    "split_leak": "the same bytes are also a video of another split "
    "(with checks.split_leaks: reject)",
    "processing_error": "re-encoding or segment extraction failed unexpectedly",
}

#: The containers ingest opens, and FFmpeg's names of their demuxers (its ``format_whitelist``).
ALLOWED_CONTAINERS: dict[str, str] = {
    "mp4/mov": "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska/webm": "matroska,webm",
    "avi": "avi",
    "flv": "flv",
    "mpegts": "mpegts",
}
_FORMAT_WHITELIST = ",".join(ALLOWED_CONTAINERS.values())

# (offset, magic, container) of the allowed containers: a file that starts like one of these
# but does not open is cut short, not foreign.
_CONTAINER_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    *((4, atom, "mp4/mov") for atom in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")),
    (0, b"\x1a\x45\xdf\xa3", "matroska/webm"),
    (0, b"FLV\x01", "flv"),
)
# (offset, magic, what, reject category) of media we recognise and never open.
_REFUSED_MAGIC: tuple[tuple[int, bytes, str, str], ...] = (
    *(
        (off, magic, what, "image")
        for off, magic, what in (
            (0, b"\x89PNG", "PNG"),
            (0, b"\xff\xd8\xff", "JPEG"),
            (0, b"GIF8", "GIF"),
            (0, b"II*\x00", "TIFF"),
            (0, b"MM\x00*", "TIFF"),
            (8, b"WEBP", "WebP"),
        )
    ),
    *(
        (0, magic, what, "container_not_allowed")
        for magic, what in (
            (b"ffconcat", "an FFmpeg concat script"),
            (b"#EXTM3U", "an HLS playlist"),
            (b"<?xml", "an XML document (DASH manifest?)"),
            (b"<MPD", "a DASH manifest"),
            (b"OggS", "Ogg"),
            (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "ASF/WMV"),
            (b"\x00\x00\x01\xba", "MPEG program stream"),
            (b"\x00\x00\x01\xb3", "MPEG video elementary stream"),
            (b"RIFF", "a RIFF file that is not AVI"),
        )
    ),
)
#: A file whose container declares a duration but no frame count (Matroska/WebM) is
#: ``truncated`` when its frames' timestamps end short of that duration by more than this share
#: (and by more than two frames): the slack covers a last frame's duration and rounding.
DURATION_SLACK = 0.02

_IMAGE_CODECS = frozenset({"png", "bmp", "tiff", "webp", "gif", "jpeg2000", "jpegls"})


class RejectError(Exception):
    """An input that cannot be ingested; ``category`` is a key of :data:`REJECT_CATEGORIES`."""

    def __init__(self, category: str, message: str) -> None:
        if category not in REJECT_CATEGORIES:
            raise ValueError(f"unknown reject category {category!r}")
        super().__init__(f"{category}: {message}")
        self.category = category
        self.message = message


@dataclass(frozen=True)
class ProbeResult:
    """What ingest needs to know about a decodable video.

    Attributes:
        codec: codec of the video stream (e.g. ``"h264"``, ``"vp9"``, ``"av1"``).
        fps: average frame rate.
        num_frames: frames found by demuxing (presentation order).
        width, height: coded size in pixels (:attr:`display_size` is the upright one).
        orientation: what the display matrix asks for (upright when there is none); the
            decoder applies it (:mod:`pipelines.decode.orientation`).
        duration_s: ``num_frames / fps``.
        has_audio: the container also holds an audio stream (dropped at ingest).
        table: the demuxed :class:`FrameTable`.
    """

    codec: str
    fps: float
    num_frames: int
    width: int
    height: int
    orientation: Orientation
    duration_s: float
    has_audio: bool
    table: FrameTable

    @property
    def rotation(self) -> int:
        """Counter-clockwise display rotation in degrees (0, 90, 180, 270)."""
        return self.orientation.rotation

    @property
    def display_size(self) -> tuple[int, int]:
        """``(width, height)`` of the upright picture."""
        return self.orientation.display_size(self.width, self.height)


def sniff_container(data: bytes) -> str | None:
    """The allowed container whose signature ``data`` starts with (``"mp4/mov"`` ...), or None."""
    for off, magic, name in _CONTAINER_MAGIC:
        if data[off : off + len(magic)] == magic:
            return name
    if data[:4] == b"RIFF" and data[8:12] in (b"AVI ", b"AVIX"):
        return "avi"
    if len(data) > 188 and data[0] == 0x47 and data[188] == 0x47:
        return "mpegts"
    return None


def looks_like_container(data: bytes) -> bool:
    """True if ``data`` starts with the signature of an allowed container."""
    return sniff_container(data) is not None


def _reject_unopenable(data: bytes, name: str) -> None:
    """Raise the reject of bytes that are no allowed container (image, foreign, unknown)."""
    for off, magic, what, category in _REFUSED_MAGIC:
        if data[off : off + len(magic)] == magic:
            detail = "a still image" if category == "image" else "outside the allowlist"
            raise RejectError(category, f"{name}: {what}, {detail}")
    raise RejectError(
        "unreadable",
        f"{name}: not a media container of {sorted(ALLOWED_CONTAINERS)} (first bytes {data[:8]!r})",
    )


def open_allowed(data: bytes, name: str) -> av.container.InputContainer:
    """Open ``data`` with PyAV, allowing only :data:`ALLOWED_CONTAINERS` (see module docstring)."""
    if sniff_container(data) is None:
        _reject_unopenable(data, name)
    try:
        return av.open(io.BytesIO(data), mode="r", options={"format_whitelist": _FORMAT_WHITELIST})
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise RejectError("truncated", f"{name}: container does not open: {exc}") from exc


def probe_video(
    data: bytes,
    name: str = "<bytes>",
    *,
    decode_all: bool = False,
    max_pixels: int | None = None,
    max_duration_s: float | None = None,
) -> ProbeResult:
    """Probe the video in ``data``; raise :class:`RejectError` if it cannot be ingested.

    Args:
        data: the whole file.
        name: used in messages (the source URI).
        decode_all: decode every frame (slow, thorough) instead of only the first one.
        max_pixels: reject frames of more than this many pixels (``frame_too_large``) before
            any frame is decoded.
        max_duration_s: reject videos longer than this (``too_long``): the declared duration
            is checked before demuxing, the demuxed one after.
    """
    if len(data) == 0:
        raise RejectError("empty", f"{name} has zero bytes")
    container = open_allowed(data, name)
    with container:
        stream = _video_stream(container, name)
        # The codec's own name (``av1``), not its decoder's (``libdav1d``).
        codec = stream.codec_context.codec.canonical_name
        check_caps(container, stream, name, max_pixels, max_duration_s)
        has_audio = bool(container.streams.audio)
        # Demux before decoding: a cut-off file shows as missing packets, which is a clearer
        # reason than the decoder error it would cause.
        table = _demuxed_table(data, _declared(container, stream), name)
        _check_duration(table.num_frames / table.fps, max_duration_s, name)
        orientation, decoded = _decode_check(container, stream, name, decode_all)
    if decode_all:
        _check_all_decoded(decoded, table, name)
    return ProbeResult(
        codec=codec,
        fps=table.fps,
        num_frames=table.num_frames,
        width=table.width,
        height=table.height,
        orientation=orientation,
        duration_s=table.num_frames / table.fps,
        has_audio=has_audio,
        table=table,
    )


def _declared(container, stream) -> tuple[int, float | None]:
    """What the container says the video stream holds: a frame count (MP4, MOV, AVI; 0 when
    absent) and a duration in seconds (Matroska/WebM, which count no frames: the stream's
    ``DURATION`` tag, else the file's duration when the video is its only stream; None when
    neither is known)."""
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(stream.frames or 0), int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass  # an unreadable tag: fall back to the file's duration
    alone = len(container.streams) == 1
    seconds = container.duration / 1e6 if container.duration and alone else None
    return int(stream.frames or 0), seconds


def _demuxed_table(data: bytes, declared: tuple[int, float | None], name: str) -> FrameTable:
    """The frame table of ``data``; ``truncated`` when it does not demux, holds fewer frames
    than declared, or (no declared count) its timestamps end short of the declared duration by
    more than :data:`DURATION_SLACK` of it and two frames (a variable rate is not a cut)."""
    try:
        table = read_frame_table(data)
    except ValueError as exc:
        raise RejectError("truncated", f"{name}: {exc}") from exc
    frames, seconds = declared
    if frames and table.num_frames < frames:
        msg = f"{name}: {table.num_frames} frames demuxed, container declares {frames}"
        raise RejectError("truncated", msg)
    times = (table.pts - table.pts[0]) * float(table.time_base)
    step = float(np.median(np.diff(times))) if table.num_frames > 1 else 1.0 / table.fps
    found = float(times[-1]) + step  # the end of the last frame
    if not frames and seconds and found + max(2 * step, DURATION_SLACK * seconds) < seconds:
        raise RejectError(
            "truncated",
            f"{name}: {table.num_frames} frames demuxed, ending at {found:.2f} s, container "
            f"declares {seconds:.2f} s",
        )
    return table


def _check_all_decoded(decoded: int, table: FrameTable, name: str) -> None:
    """``undecodable`` when fewer than every demuxed frame of ``table`` decoded."""
    if decoded < table.num_frames:
        raise RejectError(
            "undecodable", f"{name}: only {decoded} of {table.num_frames} frames decode"
        )


def _video_stream(container, name: str):
    """The first video stream; ``no_video``, ``image`` or ``undecodable`` when there is none
    that this FFmpeg can decode as a video."""
    fmt, streams = container.format.name, container.streams
    if not streams.video:
        kinds = sorted({s.type for s in streams}) or ["none"]
        raise RejectError("no_video", f"{name}: no video stream (streams: {kinds})")
    stream = streams.video[0]
    codec = stream.codec_context.name
    if fmt == "image2" or fmt.endswith("_pipe") or codec in _IMAGE_CODECS:
        raise RejectError("image", f"{name}: a still image ({fmt}/{codec}), not a video")
    try:
        av.codec.Codec(codec, "r")
    except Exception as exc:
        raise RejectError("undecodable", f"{name}: no decoder for codec {codec!r}") from exc
    return stream


def check_caps(
    container, stream, name: str, max_pixels: int | None, max_duration_s: float | None
) -> None:
    """``frame_too_large`` / ``too_long`` from the container's header, before any decoding."""
    width, height = int(stream.codec_context.width), int(stream.codec_context.height)
    if max_pixels is not None and width * height > max_pixels:
        raise RejectError(
            "frame_too_large",
            f"{name}: {width}x{height} = {width * height} pixels per frame, "
            f"limits.max_pixels is {max_pixels}",
        )
    declared = None
    if container.duration is not None and container.duration > 0:
        declared = container.duration / av.time_base
    elif stream.duration is not None and stream.time_base is not None:
        declared = float(stream.duration * stream.time_base)
    if declared is not None:
        _check_duration(declared, max_duration_s, name)


def _check_duration(seconds: float, max_duration_s: float | None, name: str) -> None:
    if max_duration_s is not None and seconds > max_duration_s:
        raise RejectError(
            "too_long", f"{name}: {seconds:.1f} s long, limits.max_duration_s is {max_duration_s}"
        )


def decode_every_frame(data: bytes, name: str) -> None:
    """Raise ``RejectError("undecodable")`` unless every demuxed frame of ``data`` decodes
    (``checks.decode_all`` on a val/test record's segment)."""
    table = read_frame_table(data)
    with open_allowed(data, name) as container:
        _, decoded = _decode_check(container, container.streams.video[0], name, True)
    _check_all_decoded(decoded, table, name)


def _decode_check(
    container: av.container.InputContainer, stream, name: str, decode_all: bool
) -> tuple[Orientation, int]:
    """Decode the first frame (or all); return (its display orientation, frames decoded).
    A display matrix that is no multiple of 90 degrees is ``undecodable`` (named)."""
    orientation = UPRIGHT
    decoded = 0
    try:
        for frame in container.decode(stream):
            if decoded == 0:
                orientation = Orientation.of_frame(frame, name)
            decoded += 1
            if not decode_all:
                break
    except av.FFmpegError as exc:
        raise RejectError(
            "undecodable", f"{name}: decoding failed after {decoded} frames: {exc}"
        ) from exc
    except ValueError as exc:  # a display matrix that is no multiple of 90 degrees
        raise RejectError("undecodable", str(exc)) from exc
    if decoded == 0:
        raise RejectError("undecodable", f"{name}: no frame decodes")
    return orientation, decoded


def validate_length(result: ProbeResult, min_frames: int, name: str = "<bytes>") -> None:
    """Raise ``RejectError("too_short")`` when the video has fewer than ``min_frames`` frames."""
    if result.num_frames < min_frames:
        raise RejectError(
            "too_short", f"{name}: {result.num_frames} frames, at least {min_frames} needed"
        )
