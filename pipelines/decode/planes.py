"""Training views shipped as 4:2:0 planes: the crop's source region of each decoded frame,
copied out of the decoder's planes, and converted to RGB on the training device.

Why: the loader's CPU cost per training clip is decoding plus libswscale (scaling and colour
conversion). Scaling the whole frame into packed RGB costs more than decoding it on the
training profile, and even the crop-first path spends about a fifth of the clip there
(docs/cluster.md, "Conversion copies"). With ``DecodeOptions.train_view: planes`` the decode task
does no colour conversion at all: for each view it copies the source box of the crop
(:func:`pipelines.transforms.source_box`, the same draws as the other paths) out of the
decoded Y, U and V planes into fixed-size buffers; the training device scales, flips and
converts them in one batched resampling (:mod:`training.device.yuv_to_rgb`).

A view in plane form (:class:`PlaneView`) holds the Fast frames' ``y`` uint8 ``(alpha*T, S, S)``
and ``uv`` uint8 ``(alpha*T, 2, S/2, S/2)`` (the device takes the Slow frames from them), where ``S`` is :func:`plane_side` (fixed by the clip spec,
so rows of any source size stack into one batch). The copy sits at the buffers' top-left and
``region = (x, y, w, h)`` says where in it the box is (``x, y``: 0 or 1, the box's offset from
the even pixel the copy starts at). A box larger than ``S`` (a source whose short side is above
the top of the scale jitter) is first scaled down to fit, in 4:2:0, by libswscale: the only CPU
resampling left, and only for such sources. 8-bit 4:2:0 is shipped as it is; other pixel
formats are converted to it first.

The colour matrix and range travel with the row (``yuv``, :data:`YUV_CODES`), read from the
frame's tags: BT.709 when tagged so, else BT.601 (libswscale's default; its rarer matrices,
such as BT.2020, are not carried); full range for ``yuvj`` formats or a ``jpeg`` range tag,
else limited.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipelines.decode.convert import Box, plane_array
from raysf.clip_spec import ClipSpec

if TYPE_CHECKING:
    import av

#: ``yuv`` column values: (matrix, range) of the frames a row was cut from.
YUV_CODES = {("bt601", "limited"): 0, ("bt601", "full"): 1, ("bt709", "limited"): 2,
             ("bt709", "full"): 3}  # fmt: skip
#: The per-row columns of plane rows besides the planes (how to convert them).
PER_ROW = ("region", "flip", "yuv")
#: The pixel columns of plane rows (:func:`plane_rows`), with the per-row ``region``, ``flip``
#: and ``yuv`` the device needs to convert them. Only the Fast frames: the Slow ones are
#: positions of them (:func:`pipelines.sampling.slow_positions`), taken on the device.
PLANE_COLUMNS = ("fast_y", "fast_uv", *PER_ROW)
_PLANAR_420 = ("yuv420p", "yuvj420p")
_AVCOL_SPC_BT709 = 1
_AVCOL_RANGE_JPEG = 2


def plane_side(crop_size: int, short_side_range: tuple[int, int]) -> int:
    """Side ``S`` of the plane buffers: the source box of a crop at the bottom of the scale
    jitter on a source whose short side is its top (``crop * high / low``), rounded up to
    even, plus 2 (an odd box starts one pixel into its even-aligned cut). Sources up to that
    short side are never scaled on the CPU."""
    low, high = short_side_range
    return _even_up(math.ceil(crop_size * high / low)) + 2


def _even_up(value: int) -> int:
    return value + (value & 1)


@dataclass(frozen=True)
class PlaneView:
    """One training view in plane form (see the module docstring)."""

    y: np.ndarray  # uint8 (alpha*T, S, S): the Fast frames' luma
    uv: np.ndarray  # uint8 (alpha*T, 2, S/2, S/2): their chroma
    region: tuple[int, int, int, int]  # (x, y, w, h) of the box in the buffers
    flip: bool
    yuv: int  # a value of YUV_CODES


def yuv_code(frame: av.VideoFrame) -> int:
    """The :data:`YUV_CODES` value of a decoded frame's tags."""
    matrix = "bt709" if int(frame.colorspace) == _AVCOL_SPC_BT709 else "bt601"
    full = frame.format.name == "yuvj420p" or int(frame.color_range) == _AVCOL_RANGE_JPEG
    return YUV_CODES[(matrix, "full" if full else "limited")]


class PlaneCutter:
    """Copies the box of decoded frames into ``(y, uv)`` buffers of side ``side``.

    The copy starts at the even pixel at or before the box (4:2:0 chroma covers 2x2 pixels),
    so the box sits at ``region[:2]`` (0 or 1) in the buffer. A box that does not fit is
    rounded to even pixels and scaled down in 4:2:0 (libswscale) so that its long side fits;
    its region then starts at 0. One cutter per view and clip: it keeps one swscale context
    and one scratch frame for that case.
    """

    def __init__(self, box: Box, side: int) -> None:
        x, y, w, h = (int(v) for v in box)
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise ValueError(f"box must be (x, y, width, height) inside the frame, got {box}")
        if side <= 2 or side & 1:
            raise ValueError(f"plane side must be even and > 2, got {side}")
        self.box, self.side = (x, y, w, h), side
        x0, y0 = x & ~1, y & ~1
        if x - x0 + w <= side and y - y0 + h <= side:
            self.cut_box = (x0, y0, _even_up(x - x0 + w), _even_up(y - y0 + h))
            self.region = (x - x0, y - y0, w, h)
            self.scaled = False
        else:
            cw, ch = _even_up(x - x0 + w), _even_up(y - y0 + h)
            f = side / max(cw, ch)
            rw, rh = (min(side, max(2, 2 * round(v * f / 2))) for v in (cw, ch))
            self.cut_box = (x0, y0, cw, ch)
            self.region = (0, 0, rw, rh)
            self.scaled = True
        self._scaler = None
        self._scratch = None

    def cut(self, frames: Sequence[av.VideoFrame]) -> tuple[np.ndarray, np.ndarray, int]:
        """``(y, uv, yuv code)`` of ``frames``; the buffers are zero outside the copy."""
        side = self.side
        y_out = np.zeros((len(frames), side, side), np.uint8)
        uv_out = np.zeros((len(frames), 2, side // 2, side // 2), np.uint8)
        code = yuv_code(frames[0])
        for i, frame in enumerate(frames):
            luma, cb, cr = self._box_planes(frame)
            y_out[i, : luma.shape[0], : luma.shape[1]] = luma
            uv_out[i, 0, : cb.shape[0], : cb.shape[1]] = cb
            uv_out[i, 1, : cr.shape[0], : cr.shape[1]] = cr
        return y_out, uv_out, code

    def _box_planes(self, frame: av.VideoFrame) -> tuple[np.ndarray, ...]:
        """The cut's Y, U, V arrays (views of the frame's planes unless scaled)."""
        bx, by, bw, bh = self.box
        if bx + bw > frame.width or by + bh > frame.height:
            raise ValueError(f"box {self.box} is outside the {frame.width}x{frame.height} frame")
        if frame.format.name not in _PLANAR_420:
            frame = frame.reformat(format="yuv420p", threads=1)
        x, y, w, h = self.cut_box
        w, h = min(w, frame.width - x), min(h, frame.height - y)  # an odd frame's last pixel
        luma, cb, cr = (plane_array(p) for p in frame.planes[:3])
        cx, cy, cw, ch = x // 2, y // 2, (w + 1) // 2, (h + 1) // 2
        planes = (luma[y : y + h, x : x + w], cb[cy : cy + ch, cx : cx + cw],
                  cr[cy : cy + ch, cx : cx + cw])  # fmt: skip
        return self._scaled(frame, planes) if self.scaled else planes

    def _scaled(
        self, like: av.VideoFrame, planes: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, ...]:
        """The cut scaled down to the region, in 4:2:0 (libswscale, one thread)."""
        import av  # heavy; imported where a frame is cut (training-only hosts have no PyAV)
        from av.video.reformatter import VideoReformatter

        w, h = planes[0].shape[1] & ~1, planes[0].shape[0] & ~1
        if self._scratch is None:
            self._scratch = av.VideoFrame(w, h, "yuv420p")
            self._scratch.colorspace, self._scratch.color_range = like.colorspace, like.color_range
            self._scaler = VideoReformatter()
        dst = [plane_array(p) for p in self._scratch.planes[:3]]
        sizes = ((h, w), (h // 2, w // 2), (h // 2, w // 2))
        for d, s, (ph, pw) in zip(dst, planes, sizes, strict=True):
            d[:ph, :pw] = s[:ph, :pw]
        _, _, rw, rh = self.region
        scaled = self._scaler.reformat(self._scratch, width=rw, height=rh, threads=1)
        luma, cb, cr = (plane_array(p) for p in scaled.planes[:3])
        return luma[:rh, :rw], cb[: rh // 2, : rw // 2], cr[: rh // 2, : rw // 2]


def plane_rows(views: Sequence[PlaneView], meta: dict[str, list]) -> dict[str, np.ndarray]:
    """The loader's row batch of plane views: :data:`PLANE_COLUMNS` and the label and ids
    (``spatial_index`` -1: random crops)."""
    rows = {
        "fast_y": np.stack([v.y for v in views]),
        "fast_uv": np.stack([v.uv for v in views]),
        "region": np.asarray([v.region for v in views], dtype=np.int32).reshape(-1, 4),
        "flip": np.asarray([v.flip for v in views], dtype=np.bool_),
        "yuv": np.asarray([v.yuv for v in views], dtype=np.int8),
    }
    rows.update(
        label=np.asarray(meta["label"], dtype=np.int64),
        video_id=np.asarray(meta["video_id"], dtype=object),
        clip_index=np.asarray(meta["clip_index"], dtype=np.int32),
        spatial_index=np.full(len(views), -1, dtype=np.int32),
    )
    return rows


def empty_plane_rows(spec: ClipSpec) -> dict[str, np.ndarray]:
    """A batch of zero plane rows with the loader's columns (every record of a batch failed)."""
    side, frames = plane_side(spec.crop_size, spec.short_side_range), spec.fast_frames
    return {
        "fast_y": np.zeros((0, frames, side, side), np.uint8),
        "fast_uv": np.zeros((0, frames, 2, side // 2, side // 2), np.uint8),
        "region": np.zeros((0, 4), np.int32),
        "flip": np.zeros(0, np.bool_),
        "yuv": np.zeros(0, np.int8),
        "label": np.zeros(0, dtype=np.int64),
        "video_id": np.zeros(0, dtype=object),
        "clip_index": np.zeros(0, dtype=np.int32),
        "spatial_index": np.zeros(0, dtype=np.int32),
    }
