"""Display orientation: the rotation and mirroring a video's display matrix asks for.

A phone stores a portrait video as landscape pictures plus a *display matrix* (MP4/MOV
``tkhd``, FFmpeg's ``AV_FRAME_DATA_DISPLAYMATRIX`` side data on every decoded frame) that
says how to turn them upright. FFmpeg's players apply it; PyAV hands out the coded pictures.
This module turns decoded frames upright exactly as the ``ffmpeg`` command line does (its
``autorotate``): every orientation a matrix can hold (90/180/270 degree rotations, with or
without a mirror) is a transpose and/or horizontal and vertical flips of the pixels, done in
libavfilter (``transpose``, ``hflip``, ``vflip``) on the decoded frame, before any scaling or
colour conversion, so that every consumer (RGB conversion, crop boxes, 4:2:0 plane cuts) sees
the upright picture and its size. Pixels are moved, never resampled: the upright frame holds
the same samples. Rotations that are not a multiple of 90 degrees are refused.

Matrix convention (checked against the ``ffmpeg`` CLI for all eight orientations, see
tests/pipelines/decode/test_orientation.py): with ``m = [a, b, u, c, d, v, x, y, w]`` a coded
pixel at column ``p``, row ``q`` is shown at column ``a*p + c*q``, row ``b*p + d*q`` (plus an
offset). ``a != 0`` keeps the axes (flip columns if ``a < 0``, rows if ``d < 0``); ``a == 0``
swaps them (a transpose, then columns flipped if ``c < 0`` and rows if ``b < 0``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from pipelines.decode.convert import plane_array

if TYPE_CHECKING:
    import av


@dataclass(frozen=True)
class Orientation:
    """The pixel moves that make a coded picture upright, applied in this order.

    Attributes:
        transpose: swap rows and columns.
        hflip: then reverse the columns (a mirror left-right).
        vflip: then reverse the rows.
    """

    transpose: bool = False
    hflip: bool = False
    vflip: bool = False

    @classmethod
    def from_matrix(cls, matrix: tuple[int, ...] | list[int], name: str = "video") -> Orientation:
        """The orientation of a display matrix (nine 16.16 / 2.30 fixed-point integers)."""
        if len(matrix) != 9:
            raise ValueError(f"{name}: a display matrix has 9 entries, got {len(matrix)}")
        a, b, c, d = (int(matrix[i]) for i in (0, 1, 3, 4))
        if b == 0 and c == 0 and a != 0 and d != 0:
            return cls(False, a < 0, d < 0)
        if a == 0 and d == 0 and b != 0 and c != 0:
            return cls(True, c < 0, b < 0)
        raise ValueError(
            f"{name}: display matrix {list(matrix)} is not a multiple of 90 degrees "
            "(only 0/90/180/270 rotations, with or without a mirror, are supported)"
        )

    @classmethod
    def of_frame(cls, frame: av.VideoFrame, name: str = "video") -> Orientation:
        """The orientation of a decoded frame's display matrix (upright when it has none)."""
        sides = frame.side_data  # PyAV >= 18: a mapping of type -> side data; before, a list
        for side in sides.values() if hasattr(sides, "values") else sides:
            if "DISPLAYMATRIX" in str(side.type):
                return cls.from_matrix(struct.unpack("<9i", bytes(side)[:36]), name)
        return UPRIGHT

    @property
    def is_upright(self) -> bool:
        return not (self.transpose or self.hflip or self.vflip)

    @property
    def rotation(self) -> int:
        """The counter-clockwise rotation in degrees (0, 90, 180, 270) of the display, after
        the mirror (:attr:`mirrored`) — FFmpeg's ``rotation`` for unmirrored matrices."""
        return _DECOMPOSED[self][0]

    @property
    def mirrored(self) -> bool:
        """Whether the display is a mirror image of the coded picture."""
        return _DECOMPOSED[self][1]

    def display_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` of the upright picture of a ``width x height`` coded one."""
        return (height, width) if self.transpose else (width, height)

    def array(self, pixels: np.ndarray) -> np.ndarray:
        """The upright view of ``(H, W, ...)`` pixels (numpy, no copy)."""
        out = np.swapaxes(pixels, 0, 1) if self.transpose else pixels
        if self.hflip:
            out = out[:, ::-1]
        return out[::-1] if self.vflip else out

    def filters(self) -> list[tuple[str, str | None]]:
        """The libavfilter chain of :meth:`array` (``transpose=cclock_flip`` is the plain
        transpose)."""
        chain: list[tuple[str, str | None]] = []
        if self.transpose:
            chain.append(("transpose", "cclock_flip"))
        if self.hflip:
            chain.append(("hflip", None))
        if self.vflip:
            chain.append(("vflip", None))
        return chain


UPRIGHT = Orientation()


def _decompose(o: Orientation) -> tuple[int, bool]:
    """``(counter-clockwise degrees, mirrored)`` with ``o.array == rot90(k) after mirror``."""
    probe = np.arange(6).reshape(2, 3)
    for mirrored in (False, True):
        source = probe[:, ::-1] if mirrored else probe
        for k in range(4):
            if np.array_equal(o.array(probe), np.rot90(source, k)):
                return 90 * k, mirrored
    raise AssertionError(o)  # the eight orientations are the eight rot90/mirror pairs


_DECOMPOSED = {
    o: _decompose(o)
    for o in (
        Orientation(t, h, v) for t in (False, True) for h in (False, True) for v in (False, True)
    )
}


#: Formats whose planes are 8-bit and subsampled alike in both directions, so each plane is
#: turned on its own (numpy, about twice as fast as libavfilter's ``transpose``).
_PLANAR_8BIT = frozenset({"yuv420p", "yuvj420p", "yuv444p", "yuvj444p", "gbrp", "gray"})


def upright_frames(frames: list[av.VideoFrame], name: str = "video") -> list[av.VideoFrame]:
    """``frames`` (of one stream) turned upright by their display matrix; the same list when
    the first frame has none (a stream's matrix is one for all its frames)."""
    if not frames:
        return frames
    orientation = Orientation.of_frame(frames[0], name)
    if orientation.is_upright:
        return frames
    if frames[0].format.name in _PLANAR_8BIT:
        return [turn_planes(frame, orientation) for frame in frames]
    return _FilterChain(frames[0], orientation).apply(frames)


def turn_planes(frame: av.VideoFrame, orientation: Orientation) -> av.VideoFrame:
    """A new frame holding ``frame``'s planes turned (8-bit planar formats of
    :data:`_PLANAR_8BIT`): the samples of :meth:`Orientation.array`, plane by plane."""
    import av  # heavy; imported where a frame is turned (training-only hosts have no PyAV)

    width, height = orientation.display_size(frame.width, frame.height)
    out = av.VideoFrame(width, height, frame.format.name)
    for src, dst in zip(frame.planes, out.planes, strict=True):
        turned = orientation.array(plane_array(src)[: src.height, : src.width])
        plane_array(dst)[: dst.height, : dst.width] = turned
    out.colorspace, out.color_range = frame.colorspace, frame.color_range
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    return out


class _FilterChain:
    """One libavfilter graph (buffer -> transpose/hflip/vflip -> sink) for frames of one
    format and size."""

    def __init__(self, like: av.VideoFrame, orientation: Orientation) -> None:
        import av  # heavy; imported where a frame is turned (training-only hosts have no PyAV)

        self.graph = av.filter.Graph()
        node = self.graph.add_buffer(template=like, time_base=like.time_base or Fraction(1, 1000))
        chain = orientation.filters()
        if chain and chain[-1][0] == "vflip":
            # vflip alone only moves pointers (negative line sizes, which plane readers such
            # as :func:`pipelines.decode.convert.plane_array` do not take): two mirrors after
            # it write a plain frame.
            chain += [("hflip", None), ("hflip", None)]
        for name, args in chain:
            step = self.graph.add(name, args)
            node.link_to(step)
            node = step
        sink = self.graph.add("buffersink")
        node.link_to(sink)
        self.graph.configure()

    def apply(self, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        out = []
        for frame in frames:
            self.graph.push(frame)
            out.append(self.graph.pull())
        return out
