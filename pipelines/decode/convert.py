"""Decoded frame -> uint8 RGB array, in libswscale: the whole frame at an output size, or one
region of it (a *box*) scaled to the output size.

The whole-frame conversion is what every caller got so far, and its pixels are unchanged: one
``VideoReformatter`` per call site (one swscale context, kept across the frames of a clip
instead of one per frame) and one swscale thread (PyAV's default is one per core, which on a
16-core host running 16 decode tasks oversubscribes every core 16 times) give bit-identical
results to ``frame.to_ndarray(width=..., height=..., format="rgb24")``.

A box converts only the source region a crop shows. The training view keeps a
``crop_size x crop_size`` window of a frame scaled to a random short side; scaling the whole
frame and cropping it afterwards converts 2-3x the pixels that are kept, and swscale's
scaling to packed RGB costs more than decoding the frame. With a box:

- when the box is the output size (no scaling), the whole frame is converted and sliced:
  bit-identical to cropping the whole-frame conversion;
- otherwise the region (rounded to even pixels for 4:2:0 chroma, see
  :func:`pipelines.transforms.source_box`) is copied out of the decoded planes, scaled to the
  output size in 4:2:0 and converted to RGB without scaling: the same part of the picture at
  the same scale, but not the same bits as scaling the whole frame into RGB and cropping
  (swscale's filter phases depend on the sizes it is given, the box is rounded to even pixels,
  and chroma is upsampled from the scaled 4:2:0 planes: a sub-pixel resampling, a few grey
  levels at edges). Formats other than 8-bit 4:2:0, and odd sizes, fall back to scaling the
  whole frame and slicing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av

#: A region of a source frame: ``(x, y, width, height)`` in pixels.
Box = tuple[int, int, int, int]

_PLANAR_420 = ("yuv420p", "yuvj420p")


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
    """The output size, or None when it is the frame's own (no scaling)."""
    if size is not None:
        w, h = int(size[0]), int(size[1])
        return None if (w, h) == (width, height) else (w, h)
    if short_side is not None:
        w, h = scaled_size(width, height, int(short_side))
        return None if (w, h) == (width, height) else (w, h)
    return None


class FrameConverter:
    """Converts decoded frames of one clip to uint8 ``(H, W, 3)`` RGB arrays.

    Args:
        size: output ``(width, height)``; or
        short_side: output short side, aspect kept. Neither: native resolution.
        box: convert only this ``(x, y, width, height)`` region of the source frame, scaled
            to ``size`` (required with a box; see the module docstring).
    """

    def __init__(
        self,
        *,
        size: tuple[int, int] | None = None,
        short_side: int | None = None,
        box: Box | None = None,
    ) -> None:
        if size is not None and short_side is not None:
            raise ValueError("give at most one of size and short_side")
        if size is not None and (int(size[0]) <= 0 or int(size[1]) <= 0):
            raise ValueError(f"size must be positive (width, height), got {size}")
        if box is not None:
            if size is None:
                raise ValueError(f"a box needs an output size, got box={box} and size=None")
            if len(box) != 4 or box[2] <= 0 or box[3] <= 0 or box[0] < 0 or box[1] < 0:
                raise ValueError(f"box must be (x, y, width, height) inside the frame, got {box}")
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.short_side = short_side
        self.box = None if box is None else tuple(int(v) for v in box)
        # heavy; imported where a frame is converted (training-only hosts have no PyAV)
        from av.video.reformatter import VideoReformatter

        self._reformatter = VideoReformatter()
        self._scaler = VideoReformatter()  # box path: its own context, kept across frames
        self._sub: _SubFrame | None = None

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        if self.box is None:
            target = _output_size(frame.width, frame.height, self.size, self.short_side)
            return self._rgb(frame, target)
        return self._region(frame)

    def _rgb(self, frame: av.VideoFrame, target: tuple[int, int] | None) -> np.ndarray:
        if target is None:
            out = self._reformatter.reformat(frame, format="rgb24", threads=1)
        else:
            out = self._reformatter.reformat(
                frame, width=target[0], height=target[1], format="rgb24", threads=1
            )
        return out.to_ndarray()

    def _region(self, frame: av.VideoFrame) -> np.ndarray:
        x, y, w, h = self.box
        out_w, out_h = self.size
        if x + w > frame.width or y + h > frame.height:
            raise ValueError(f"box {self.box} is outside the {frame.width}x{frame.height} frame")
        if (w, h) == (out_w, out_h):
            return self._rgb(frame, None)[y : y + h, x : x + w]
        if frame.format.name in _PLANAR_420 and not (x | y | w | h | out_w | out_h) & 1:
            if self._sub is None or not self._sub.fits(frame):
                self._sub = _SubFrame(frame, w, h)
            box = self._sub.cut(frame, x, y)
            # Scale in 4:2:0, then convert without scaling: swscale's planar scaler and its
            # unscaled YUV->RGB path are both SIMD, ~2x faster than scaling into packed RGB.
            scaled = self._scaler.reformat(box, width=out_w, height=out_h, threads=1)
            return self._rgb(scaled, None)
        # Not 8-bit 4:2:0 or an odd box: scale the whole frame by the box's factor, slice.
        fx, fy = out_w / w, out_h / h
        full_w, full_h = max(out_w, round(frame.width * fx)), max(out_h, round(frame.height * fy))
        x0, y0 = min(round(x * fx), full_w - out_w), min(round(y * fy), full_h - out_h)
        return self._rgb(frame, (full_w, full_h))[y0 : y0 + out_h, x0 : x0 + out_w]


def plane_array(plane) -> np.ndarray:
    """A frame plane as a ``(height, line_size)`` uint8 view (no copy)."""
    count = plane.line_size * plane.height
    return np.frombuffer(plane, dtype=np.uint8, count=count).reshape(plane.height, -1)


class _SubFrame:
    """A reusable ``w x h`` frame into which the box of 8-bit 4:2:0 frames is copied (the
    frame is allocated once per clip; each cut copies ~1.5 bytes per box pixel)."""

    def __init__(self, like: av.VideoFrame, w: int, h: int) -> None:
        import av  # heavy; see FrameConverter

        self.frame = av.VideoFrame(w, h, like.format.name)
        self.frame.colorspace = like.colorspace
        self.frame.color_range = like.color_range
        self.format, self.colorspace, self.color_range = (
            like.format.name,
            like.colorspace,
            like.color_range,
        )
        self.size = (w, h)
        self._planes = [plane_array(p) for p in self.frame.planes]

    def fits(self, frame: av.VideoFrame) -> bool:
        return (frame.format.name, frame.colorspace, frame.color_range) == (
            self.format,
            self.colorspace,
            self.color_range,
        )

    def cut(self, frame: av.VideoFrame, x: int, y: int) -> av.VideoFrame:
        """The ``(x, y)`` box of ``frame`` (even ``x``, ``y``), copied into this frame."""
        w, h = self.size
        luma, cb, cr = (plane_array(p) for p in frame.planes[:3])
        self._planes[0][:h, :w] = luma[y : y + h, x : x + w]
        cy, cx, ch, cw = y // 2, x // 2, h // 2, w // 2
        self._planes[1][:ch, :cw] = cb[cy : cy + ch, cx : cx + cw]
        self._planes[2][:ch, :cw] = cr[cy : cy + ch, cx : cx + cw]
        return self.frame
