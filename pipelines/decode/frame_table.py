"""Frame table of a video: presentation timestamps and keyframes, read by demuxing only.

The loader addresses frames by their presentation index (0-based, in display order). With
B-frames, packets arrive in decode order, so the table is built by sorting the packet pts.
No frame is decoded here, which makes it cheap enough to run at ingest for every clip (the
result is stored in the ``frame_pts``/``keyframes`` record columns) and as a fallback in
:mod:`pipelines.decode.frames` when those columns are absent.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:
    import av

VideoSource = bytes | bytearray | memoryview | str | os.PathLike | BinaryIO


@dataclass(frozen=True)
class FrameTable:
    """Presentation-order timing of the first video stream of a container.

    Attributes:
        pts: int64 ``(num_frames,)`` pts of every frame, sorted (presentation order), in
            ``time_base`` units.
        keyframes: int32 ``(num_keyframes,)`` presentation indices of the keyframes, sorted.
        time_base: stream time base (seconds per pts unit).
        fps: average frame rate of the stream (frames per second).
        width, height: coded frame size in pixels (before any rotation metadata).
    """

    pts: np.ndarray
    keyframes: np.ndarray
    time_base: Fraction
    fps: float
    width: int
    height: int

    @property
    def num_frames(self) -> int:
        return int(self.pts.shape[0])

    def index_of_pts(self, pts: int) -> int:
        """Presentation index of the frame with this exact pts; ``ValueError`` if absent."""
        i = int(np.searchsorted(self.pts, pts))
        if i >= self.pts.shape[0] or int(self.pts[i]) != int(pts):
            raise ValueError(f"pts {pts} is not a frame of this video")
        return i

    def keyframe_at_or_before(self, index: int) -> int:
        """Presentation index of the last keyframe at or before frame ``index``.

        Falls back to frame 0 when no keyframe precedes ``index`` (the first frame of a
        well-formed stream is always a keyframe).
        """
        k = int(np.searchsorted(self.keyframes, index, side="right")) - 1
        return int(self.keyframes[k]) if k >= 0 else 0


def open_container(source: VideoSource) -> av.container.InputContainer:
    """Open ``source`` (bytes, a path or a binary file-like) for reading with PyAV."""
    import av  # heavy; imported where a video is opened (training-only hosts have no PyAV)

    if isinstance(source, (bytes, bytearray, memoryview)):
        return av.open(io.BytesIO(bytes(source)), mode="r")
    if isinstance(source, (str, os.PathLike)):
        return av.open(os.fspath(source), mode="r")
    return av.open(source, mode="r")


def describe_source(source: VideoSource) -> str:
    """Short human-readable name of a source for error messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes in memory>"
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return repr(getattr(source, "name", source))


def read_frame_table(source: VideoSource) -> FrameTable:
    """Demux (without decoding) the first video stream of ``source`` into a :class:`FrameTable`.

    Packets without a pts (the empty flush packets the demuxer yields at the end, and any
    packet without timing) are skipped: they carry no frame.

    Raises:
        ValueError: the source has no video stream or no timed video packet (the message
            names the source).
    """
    import av  # heavy; imported where a video is opened (training-only hosts have no PyAV)

    name = describe_source(source)
    try:
        container = open_container(source)
    except (av.FFmpegError, OSError) as exc:
        raise ValueError(f"cannot open video {name}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise ValueError(f"no video stream in {name}")
        stream = container.streams.video[0]
        pts, keyframes = _frame_times(container, stream, name)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if rate is None or float(rate) <= 0:
            raise ValueError(f"cannot determine the frame rate of {name}")
        time_base = stream.time_base
        if time_base is None:
            raise ValueError(f"video stream of {name} has no time base")
        return FrameTable(
            pts=pts,
            keyframes=np.unique(keyframes).astype(np.int32),
            time_base=Fraction(time_base.numerator, time_base.denominator),
            fps=float(rate),
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
        )


def _frame_times(container, stream, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct pts of ``stream``'s timed packets and the indices of its keyframes
    among them (frame 0 always counts as one), by demuxing without decoding."""
    import av  # heavy; imported where a video is opened (training-only hosts have no PyAV)

    pts_list: list[int] = []
    key_pts: list[int] = []
    try:
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            pts_list.append(int(packet.pts))
            if packet.is_keyframe:
                key_pts.append(int(packet.pts))
    except av.FFmpegError as exc:
        raise ValueError(f"cannot demux video {name}: {exc}") from exc
    if not pts_list:
        raise ValueError(f"no timed video packets in {name}")
    pts = np.unique(np.asarray(pts_list, dtype=np.int64))
    keyframes = np.searchsorted(pts, np.asarray(sorted(set(key_pts)), dtype=np.int64))
    if keyframes.size == 0 or keyframes[0] != 0:
        # A stream whose first presented frame is not flagged as key still decodes from
        # its first packet; treat frame 0 as the entry point.
        keyframes = np.concatenate([[0], keyframes])
    return pts, keyframes
