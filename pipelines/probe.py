"""Probe a video with PyAV and decide whether it can be ingested.

:func:`probe_video` reads the container (no file system access: it takes the bytes), demuxes
the frame table (:mod:`pipelines.frame_table`) and decodes enough frames to prove the stream
decodes. Anything unusable raises :class:`RejectError` with a *reason category* from
:data:`REJECT_CATEGORIES`; the ingest job turns that into one row of the rejects table instead
of failing.
"""

from __future__ import annotations

from dataclasses import dataclass

import av

from pipelines.frame_table import FrameTable, open_container, read_frame_table

#: Reason categories of the rejects table, with their meaning (documented in docs/data.md).
REJECT_CATEGORIES: dict[str, str] = {
    "missing": "the listed file does not exist",
    "read_error": "the file exists but could not be read (I/O error after retries)",
    "empty": "the file has zero bytes",
    "unreadable": "not a media container FFmpeg recognises (e.g. random bytes)",
    "truncated": "a container header is present but the file is cut short "
    "(index lost, or fewer packets than declared)",
    "no_video": "the container has no video stream (e.g. audio only)",
    "image": "a still image (e.g. a PNG/JPEG renamed .mp4), not a video",
    "undecodable": "the video stream does not decode (no decoder for the codec, "
    "or a corrupt codec configuration)",
    "too_short": "fewer frames than the minimum (by default one sampling window)",
    "unknown_label": "the label is empty or not in the class list",
    "duplicate": "the same video id appears more than once in a split",
    "processing_error": "re-encoding or segment extraction failed unexpectedly",
}

# Containers whose first bytes we recognise: a file that starts like one of these but does not
# open is cut short, not foreign.
_CONTAINER_MAGIC: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"),  # ISO-BMFF (mp4/mov)
    (4, b"moov"),
    (4, b"mdat"),
    (4, b"free"),
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM
    (0, b"RIFF"),  # AVI
    (0, b"FLV"),
)
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
        codec: decoder name of the video stream (e.g. ``"h264"``).
        fps: average frame rate.
        num_frames: frames found by demuxing (presentation order).
        width, height: coded size in pixels.
        rotation: display rotation in degrees (from the display matrix; 0 when absent).
        duration_s: ``num_frames / fps``.
        has_audio: the container also holds an audio stream (dropped at ingest).
        table: the demuxed :class:`FrameTable`.
    """

    codec: str
    fps: float
    num_frames: int
    width: int
    height: int
    rotation: int
    duration_s: float
    has_audio: bool
    table: FrameTable


def looks_like_container(data: bytes) -> bool:
    """True if ``data`` starts with the signature of a container we know."""
    return any(data[off : off + len(magic)] == magic for off, magic in _CONTAINER_MAGIC)


def probe_video(data: bytes, name: str = "<bytes>", *, decode_all: bool = False) -> ProbeResult:
    """Probe the video in ``data``; raise :class:`RejectError` if it cannot be ingested.

    Args:
        data: the whole file.
        name: used in messages (the source URI).
        decode_all: decode every frame (slow, thorough) instead of only the first one.
    """
    if len(data) == 0:
        raise RejectError("empty", f"{name} has zero bytes")
    try:
        container = open_container(data)
    except (av.FFmpegError, OSError, ValueError) as exc:
        if looks_like_container(data):
            raise RejectError("truncated", f"{name}: container does not open: {exc}") from exc
        raise RejectError("unreadable", f"{name}: not a media container: {exc}") from exc
    with container:
        fmt = container.format.name
        streams = container.streams
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
        declared = int(stream.frames or 0)
        has_audio = bool(streams.audio)
        # Demux before decoding: a cut-off file shows as missing packets, which is a clearer
        # reason than the decoder error it would cause.
        try:
            table = read_frame_table(data)
        except ValueError as exc:
            raise RejectError("truncated", f"{name}: {exc}") from exc
        if declared and table.num_frames < declared:
            raise RejectError(
                "truncated",
                f"{name}: {table.num_frames} frames demuxed, container declares {declared}",
            )
        rotation, decoded = _decode_check(container, stream, name, decode_all)
    if decode_all and decoded < table.num_frames:
        raise RejectError(
            "undecodable", f"{name}: only {decoded} of {table.num_frames} frames decode"
        )
    return ProbeResult(
        codec=codec,
        fps=table.fps,
        num_frames=table.num_frames,
        width=table.width,
        height=table.height,
        rotation=rotation,
        duration_s=table.num_frames / table.fps,
        has_audio=has_audio,
        table=table,
    )


def _decode_check(
    container: av.container.InputContainer, stream, name: str, decode_all: bool
) -> tuple[int, int]:
    """Decode the first frame (or all); return (rotation in degrees, frames decoded)."""
    rotation = 0
    decoded = 0
    try:
        for frame in container.decode(stream):
            if decoded == 0:
                rotation = int(round(frame.rotation or 0)) % 360
            decoded += 1
            if not decode_all:
                break
    except av.FFmpegError as exc:
        raise RejectError(
            "undecodable", f"{name}: decoding failed after {decoded} frames: {exc}"
        ) from exc
    if decoded == 0:
        raise RejectError("undecodable", f"{name}: no frame decodes")
    return rotation, decoded


def validate_length(result: ProbeResult, min_frames: int, name: str = "<bytes>") -> None:
    """Raise ``RejectError("too_short")`` when the video has fewer than ``min_frames`` frames."""
    if result.num_frames < min_frames:
        raise RejectError(
            "too_short", f"{name}: {result.num_frames} frames, at least {min_frames} needed"
        )
