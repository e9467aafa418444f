"""Spatial augmentation (crop, flip) and normalisation for dual-pathway clips.

A clip is a list of pathway arrays (``[slow, fast]``), each uint8 ``(T_i, H, W, 3)`` with the
same ``H, W``. Every spatial function applies *one* crop / flip to all pathways of a clip, so
Slow and Fast always see the same pixels. Scale augmentation (random short side) is done at
decode time by libswscale (see :func:`pipelines.decode.frames.decode_frames`), so nothing here
resizes; :func:`source_box` gives the source region of a crop, for a decoder that scales only
that region.

Normalisation happens on the training device (:mod:`training.device.inputs`): uint8 batches travel
(4x smaller than float32) and become normalised ``(B, 3, T, H, W)`` floats there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check_clip(clip: Sequence[np.ndarray]) -> tuple[int, int]:
    if len(clip) == 0:
        raise ValueError("clip must hold at least one pathway array")
    shapes = {tuple(a.shape[1:3]) for a in clip}
    if any(a.ndim != 4 or a.shape[-1] != 3 for a in clip) or len(shapes) != 1:
        raise ValueError(
            f"pathways must be (T, H, W, 3) with one H, W, got {[a.shape for a in clip]}"
        )
    h, w = shapes.pop()
    return int(h), int(w)


def random_short_side(rng: np.random.Generator, low: int, high: int) -> int:
    """Uniform integer short side in ``[low, high]`` (scale jitter, applied at decode)."""
    if not 0 < low <= high:
        raise ValueError(f"short side range must satisfy 0 < low <= high, got ({low}, {high})")
    return int(rng.integers(low, high + 1))


def crop(clip: Sequence[np.ndarray], y: int, x: int, size: int) -> list[np.ndarray]:
    """The same ``size x size`` window at ``(y, x)`` of every pathway (views, no copy)."""
    h, w = _check_clip(clip)
    if not (0 <= y <= h - size and 0 <= x <= w - size):
        raise ValueError(f"crop {size} at (y={y}, x={x}) does not fit in {h}x{w}")
    return [a[:, y : y + size, x : x + size] for a in clip]


def crop_origin(rng: np.random.Generator, height: int, width: int, size: int) -> tuple[int, int]:
    """Uniform ``(y, x)`` of a ``size x size`` crop of a ``height x width`` frame (y drawn
    first: :func:`random_crop` and the loader's box conversion draw the same crop)."""
    if size > min(height, width):
        raise ValueError(f"crop_size {size} is larger than the frames ({height}x{width})")
    y = int(rng.integers(0, height - size + 1))
    x = int(rng.integers(0, width - size + 1))
    return y, x


def random_crop(
    clip: Sequence[np.ndarray], size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """One uniformly placed ``size x size`` crop applied to every pathway of the clip."""
    h, w = _check_clip(clip)
    y, x = crop_origin(rng, h, w, size)
    return crop(clip, y, x, size)


def source_box(
    width: int, height: int, scaled: tuple[int, int], y: int, x: int, size: int
) -> tuple[int, int, int, int]:
    """The ``(x, y, width, height)`` region of a ``width x height`` source frame that the
    ``size x size`` crop at ``(y, x)`` of the frame scaled to ``scaled = (W, H)`` shows.

    Rounded to even pixels (4:2:0 chroma samples cover 2x2 pixels) and kept inside the frame;
    when ``scaled`` is the source size the box is exactly the crop. The loader's box conversion
    (:class:`pipelines.decode.convert.FrameConverter`) scales this region to ``size x size``.
    """
    if (scaled[0], scaled[1]) == (width, height):
        return x, y, size, size
    fx, fy = width / scaled[0], height / scaled[1]
    box_w = min(max(2, _even(size * fx)), width - width % 2)
    box_h = min(max(2, _even(size * fy)), height - height % 2)
    box_x = min(_even(x * fx), (width - box_w) & ~1)
    box_y = min(_even(y * fy), (height - box_h) & ~1)
    return box_x, box_y, box_w, box_h


def _even(value: float) -> int:
    """Nearest even integer."""
    return int(round(value / 2.0)) * 2


def spatial_crop(
    clip: Sequence[np.ndarray], size: int, spatial_index: int = 1, num_crops: int = 3
) -> list[np.ndarray]:
    """Test-time crop number ``spatial_index`` of ``num_crops`` along the long side.

    As in PySlowFast's 3-crop test: index 0 is the left (or top) crop, 1 the centre, 2 the
    right (or bottom); the short side is centred. ``num_crops == 1`` is a centre crop.
    """
    h, w = _check_clip(clip)
    if size > min(h, w):
        raise ValueError(f"crop_size {size} is larger than the frames ({h}x{w})")
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    if not 0 <= spatial_index < num_crops:
        raise ValueError(f"spatial_index must be in [0, {num_crops}), got {spatial_index}")
    y, x = (h - size) // 2, (w - size) // 2
    if num_crops == 3:
        if h > w:
            y = (0, (h - size) // 2, h - size)[spatial_index]
        else:
            x = (0, (w - size) // 2, w - size)[spatial_index]
    return crop(clip, y, x, size)


def center_crop(clip: Sequence[np.ndarray], size: int) -> list[np.ndarray]:
    """Centre ``size x size`` crop of every pathway."""
    return spatial_crop(clip, size, 0, 1)


def three_crops(clip: Sequence[np.ndarray], size: int) -> list[list[np.ndarray]]:
    """The three test crops (left/top, centre, right/bottom) of a clip."""
    return [spatial_crop(clip, size, i, 3) for i in range(3)]


def horizontal_flip(clip: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Mirror every pathway left-right (views)."""
    _check_clip(clip)
    return [a[:, :, ::-1] for a in clip]


def draw_flip(rng: np.random.Generator, p: float = 0.5) -> bool:
    """Whether a clip is flipped: one draw, true with probability ``p``."""
    return bool(rng.random() < p)


def random_horizontal_flip(
    clip: Sequence[np.ndarray], rng: np.random.Generator, p: float = 0.5
) -> list[np.ndarray]:
    """With probability ``p`` flip *all* pathways of the clip (one draw per clip)."""
    return horizontal_flip(clip) if draw_flip(rng, p) else list(clip)
