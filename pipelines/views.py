"""The views a network sees of a clip: the training view, the test views, and the test views of
a whole video file — one home for the crops of the loader, the evaluation and the prediction.

- **train**: a random short side in ``spec.short_side_range`` (applied by the decoder, see
  :func:`pipelines.decode.decode_clip`), one random ``crop_size`` crop and, when
  ``spec.flip``, a random horizontal flip, the same for both pathways. With ``crop_first``
  the decoder scales only the crop's source region (:func:`pipelines.transforms.source_box`):
  the same crop of the same scaled picture from the same random draws, 2-3x fewer pixels
  through swscale, not bit-identical when the short side differs from the stored one (see
  :mod:`pipelines.convert`).
- **test**: the window at ``spec.test_short_side``, cut into ``num_crops`` crops along the
  long side (left/top, centre, right/bottom; a single crop is the centre one, index 1).
- **a video file** (prediction): its ``spec.num_test_clips`` uniform windows, decoded once,
  each cut into its test views: the protocol the evaluation applies to ingested test records.

Random draws come from the caller's generator, in a fixed order (window, short side, crop,
flip), so a seeded loader is reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines import sampling
from pipelines.convert import scaled_size
from pipelines.decode import decode_clip, decode_frames
from pipelines.frame_table import VideoSource, read_frame_table
from pipelines.transforms import (
    crop_origin,
    random_crop,
    random_horizontal_flip,
    random_short_side,
    source_box,
    spatial_crop,
)
from raysf.clip_spec import ClipSpec

Clip = list[np.ndarray]  # [slow (T, H, W, 3), fast (alpha*T, H, W, 3)], uint8


def train_view(clip: Clip, spec: ClipSpec, rng: np.random.Generator) -> Clip:
    """One random crop (and flip, when ``spec.flip``) applied to both pathways."""
    view = random_crop(clip, spec.crop_size, rng)
    return random_horizontal_flip(view, rng) if spec.flip else view


def train_clip(
    record: Mapping[str, Any],
    fast_idx: np.ndarray,
    slow_idx: np.ndarray,
    spec: ClipSpec,
    rng: np.random.Generator,
    *,
    crop_first: bool = False,
    threads: int = 1,
) -> Clip:
    """Decode the training view of one window of a clip record (see the module docstring).

    Draws, in order: the short side, the crop, the flip; ``crop_first`` changes which pixels
    swscale computes, not the draws. ``threads``: decoder threads
    (:func:`pipelines.decode.decode_frames`).
    """
    short = random_short_side(rng, *spec.short_side_range)
    if not crop_first:
        clip = decode_clip(
            record, fast_idx=fast_idx, slow_idx=slow_idx, short_side=short, threads=threads
        )
        return train_view(list(clip), spec, rng)
    width, height = _frame_size(record)
    scaled = scaled_size(width, height, short)
    y, x = crop_origin(rng, scaled[1], scaled[0], spec.crop_size)
    box = source_box(width, height, scaled, y, x, spec.crop_size)
    size = (spec.crop_size, spec.crop_size)
    clip = decode_clip(
        record, fast_idx=fast_idx, slow_idx=slow_idx, size=size, box=box, threads=threads
    )
    return random_horizontal_flip(list(clip), rng) if spec.flip else list(clip)


def _frame_size(record: Mapping[str, Any]) -> tuple[int, int]:
    """``(width, height)`` of a record's video: its columns, or read from the content."""
    width, height = record.get("width"), record.get("height")
    if width is not None and height is not None:
        return int(width), int(height)
    table = read_frame_table(record["content"])
    return table.width, table.height


def spatial_views(
    clip: Clip, spec: ClipSpec, num_crops: int | None = None
) -> list[tuple[Clip, int]]:
    """The ``(view, spatial_index)`` test crops of one window (``spec.num_test_crops`` unless
    ``num_crops`` is given); a single crop is the centre one, reported as index 1 of 3."""
    k = spec.num_test_crops if num_crops is None else num_crops
    if k == 1:
        return [(spatial_crop(clip, spec.crop_size, 0, 1), 1)]
    return [(spatial_crop(clip, spec.crop_size, s, k), s) for s in range(k)]


def window_span(spec: ClipSpec, fps: float) -> int:
    """Native frames one window of ``spec`` covers at ``fps`` (:func:`sampling.window_span`)."""
    return sampling.window_span(spec.slow_frames, spec.tau, fps, spec.target_fps)


def window_indices(
    spec: ClipSpec, start: int, num_frames: int, fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(fast_idx, slow_idx)`` of the window of ``spec`` starting at ``start``
    (:func:`sampling.clip_indices` with the spec's T, tau, alpha, rule and target fps)."""
    return sampling.clip_indices(
        int(start),
        num_frames,
        slow_frames=spec.slow_frames,
        tau=spec.tau,
        alpha=spec.alpha,
        fps=fps,
        target_fps=spec.target_fps,
        rule=spec.rule,
    )


def video_windows(num_frames: int, fps: float, spec: ClipSpec) -> list[tuple[np.ndarray, ...]]:
    """``(fast_idx, slow_idx)`` of the ``spec.num_test_clips`` uniform windows of a video."""
    spec.require_resolved("video_windows")
    starts = sampling.uniform_starts(num_frames, window_span(spec, fps), spec.num_test_clips)
    return [window_indices(spec, start, num_frames, fps) for start in starts]


@dataclass(frozen=True)
class VideoViews:
    """The test views of one video: ``slow`` uint8 ``(V, T, crop, crop, 3)``, ``fast``
    ``(V, alpha*T, crop, crop, 3)``, and for each view its window and crop index."""

    slow: np.ndarray
    fast: np.ndarray
    clip_index: np.ndarray
    spatial_index: np.ndarray


def video_views(content: VideoSource, spec: ClipSpec, name: str | None = None) -> VideoViews:
    """Decode the frames of every test window of a video file once and cut its test views."""
    table = read_frame_table(content)
    windows = video_windows(table.num_frames, table.fps, spec)
    needed = np.unique(np.concatenate([idx for window in windows for idx in window]))
    frames = decode_frames(
        content,
        needed,
        frame_pts=table.pts,
        keyframes=table.keyframes,
        short_side=spec.test_short_side,
        name=name,
    )
    slows, fasts, clips, crops = [], [], [], []
    for clip_index, (fast_idx, slow_idx) in enumerate(windows):
        clip = [
            frames[np.searchsorted(needed, slow_idx)],
            frames[np.searchsorted(needed, fast_idx)],
        ]
        for (slow, fast), spatial_index in spatial_views(clip, spec):
            slows.append(slow)
            fasts.append(fast)
            clips.append(clip_index)
            crops.append(spatial_index)
    return VideoViews(
        slow=np.stack(slows),
        fast=np.stack(fasts),
        clip_index=np.asarray(clips, dtype=np.int32),
        spatial_index=np.asarray(crops, dtype=np.int32),
    )
