"""The views a network sees of a clip: the training view, the test views, and the test views of
a whole video file — one home for the crops of the loader, the evaluation and the prediction.

- **train**: a random short side in ``spec.short_side_range`` (applied by the decoder, see
  :func:`pipelines.decode.frames.decode_clip`), one random ``crop_size`` crop and, when
  ``spec.flip``, a random horizontal flip, the same for both pathways. With ``crop_first``
  the decoder scales only the crop's source region (:func:`pipelines.transforms.source_box`):
  the same crop of the same scaled picture from the same random draws, 2-3x fewer pixels
  through swscale, not bit-identical when the short side differs from the stored one (see
  :mod:`pipelines.decode.convert`). :func:`train_clips` cuts several such views (each its own crop
  and flip, one short side) from one decode of the window.
- **test**: the window at ``spec.test_short_side``, cut into ``num_crops`` crops along the
  long side (left/top, centre, right/bottom; a single crop is the centre one, index 1).
- **a video file** (prediction): its ``spec.num_test_clips`` uniform windows, decoded once,
  each cut into its test views: the protocol the evaluation applies to ingested test records.
- **a timeline of a video file** (``predict --timeline``, the service's ``/v1/timeline``):
  windows of the model's clip span every ``stride_s`` seconds (:class:`TimelineWindows`), each
  cut into the test crops, decoded a few windows at a time (:func:`timeline_views`) so a long
  video never holds more than one chunk of frames.

:func:`train_clip` gives a ``[slow, fast]`` view (the decoder's pair), :func:`train_clips`
such views with their flips (:class:`TrainClip`: a flip may change the label);
the loader ships only ``fast``, the test views of :func:`video_views` and the plane views of
:func:`train_planes` hold only the Fast frames: with every index rule the Slow frames are
positions of the Fast ones (:func:`pipelines.sampling.slow_positions`) and the training device
takes them. Crops and flips apply to every pathway of a view alike.

Random draws come from the caller's generator, in a fixed order (window, short side, crop,
flip), so a seeded loader is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from pipelines import sampling
from pipelines.decode.convert import scaled_size
from pipelines.decode.frame_table import FrameTable, VideoSource, read_frame_table
from pipelines.decode.frames import (
    decode_av_frames,
    decode_clip,
    decode_clip_boxes,
    decode_clip_planes,
    decode_frames,
)
from pipelines.decode.planes import PlaneCutter, PlaneView, plane_side
from pipelines.transforms import (
    crop_origin,
    draw_flip,
    horizontal_flip,
    random_crop,
    random_short_side,
    source_box,
    spatial_crop,
)
from raysf.clip_spec import ClipSpec

Clip = list[np.ndarray]  # pathway arrays (T_i, H, W, 3) uint8 with one H, W


class TrainClip(NamedTuple):
    """One training view and whether it was flipped (a flip may change its label:
    :mod:`raysf.flip_labels`)."""

    clip: Clip
    flip: bool


def train_view(clip: Clip, spec: ClipSpec, rng: np.random.Generator) -> TrainClip:
    """One random crop (and flip, when ``spec.flip``) applied to both pathways."""
    view = random_crop(clip, spec.crop_size, rng)
    flip = bool(spec.flip and draw_flip(rng))
    return TrainClip(horizontal_flip(view) if flip else view, flip)


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
    (:func:`pipelines.decode.frames.decode_frames`).
    """
    return train_clips(
        record, fast_idx, slow_idx, spec, rng, count=1, crop_first=crop_first, threads=threads
    )[0].clip


def train_clips(
    record: Mapping[str, Any],
    fast_idx: np.ndarray,
    slow_idx: np.ndarray,
    spec: ClipSpec,
    rng: np.random.Generator,
    *,
    count: int = 1,
    crop_first: bool = False,
    threads: int = 1,
) -> list[TrainClip]:
    """``count`` training views of one window from one decode: one short side for all, then
    each view's own crop and flip (draws in that order: short side, then crop and flip of the
    first view, of the second...; ``count=1`` is :func:`train_clip`). Without ``crop_first``
    the window is scaled once and cropped ``count`` times; with it, the decoded frames are
    kept and each view's region is converted (:func:`pipelines.decode.frames.decode_clip_boxes`)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    short = random_short_side(rng, *spec.short_side_range)
    if not crop_first:
        clip = decode_clip(
            record, fast_idx=fast_idx, slow_idx=slow_idx, short_side=short, threads=threads
        )
        return [train_view(list(clip), spec, rng) for _ in range(count)]
    boxes, flips = _boxes_and_flips(record, spec, short, count, rng)
    size = (spec.crop_size, spec.crop_size)
    clips = decode_clip_boxes(
        record, fast_idx=fast_idx, slow_idx=slow_idx, size=size, boxes=boxes, threads=threads
    )
    return [
        TrainClip(horizontal_flip(clip) if flip else list(clip), flip)
        for clip, flip in zip(clips, flips, strict=True)
    ]


def train_planes(
    record: Mapping[str, Any],
    fast_idx: np.ndarray,
    slow_idx: np.ndarray,
    spec: ClipSpec,
    rng: np.random.Generator,
    *,
    count: int = 1,
    threads: int = 1,
) -> list[PlaneView]:
    """``count`` training views of one window in plane form (:mod:`pipelines.decode.planes`): the
    draws of :func:`train_clips` with ``crop_first`` (short side, then each view's crop and
    flip), each view's source box copied out of the decoded 4:2:0 planes; the training device
    scales, flips and converts them (:mod:`training.device.yuv_to_rgb`). A view holds the Fast
    frames only (the device takes the Slow ones from them)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    short = random_short_side(rng, *spec.short_side_range)
    boxes, flips = _boxes_and_flips(record, spec, short, count, rng)
    side = plane_side(spec.crop_size, spec.short_side_range)
    cutters = [PlaneCutter(box, side) for box in boxes]
    cut = decode_clip_planes(
        record, fast_idx=fast_idx, slow_idx=slow_idx, cutters=cutters, threads=threads
    )
    return [
        PlaneView(fast[0], fast[1], cutter.region, flip, code)
        for (_, fast, code), cutter, flip in zip(cut, cutters, flips, strict=True)
    ]


def _boxes_and_flips(
    record: Mapping[str, Any], spec: ClipSpec, short: int, count: int, rng: np.random.Generator
) -> tuple[list[tuple[int, int, int, int]], list[bool]]:
    """The source boxes and flips of ``count`` views at short side ``short`` (draws: crop,
    then flip, view after view)."""
    width, height = _frame_size(record)
    scaled = scaled_size(width, height, short)
    boxes, flips = [], []
    for _ in range(count):
        y, x = crop_origin(rng, scaled[1], scaled[0], spec.crop_size)
        boxes.append(source_box(width, height, scaled, y, x, spec.crop_size))
        flips.append(bool(spec.flip and draw_flip(rng)))
    return boxes, flips


def _frame_size(record: Mapping[str, Any]) -> tuple[int, int]:
    """``(width, height)`` of a record's upright video: its columns, or read from the content
    (the first frame, decoded and turned upright)."""
    width, height = record.get("width"), record.get("height")
    if width is not None and height is not None:
        return int(width), int(height)
    table = read_frame_table(record["content"])
    first = decode_av_frames(
        record["content"], [0], frame_pts=table.pts, keyframes=table.keyframes, threads=1
    )[0]
    return first.width, first.height


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
    """The test views of one video: ``fast`` uint8 ``(V, alpha*T, crop, crop, 3)`` (the device
    takes the Slow frames from it), and for each view its window and crop index."""

    fast: np.ndarray
    clip_index: np.ndarray
    spatial_index: np.ndarray

    def batch(self) -> dict[str, np.ndarray]:
        """The views as a batch of the loader's row form."""
        return {"fast": self.fast}


def video_views(
    content: VideoSource, spec: ClipSpec, name: str | None = None, table: FrameTable | None = None
) -> VideoViews:
    """Decode the frames of every test window of a video file once and cut its test views
    (``table``: its frame table when the caller demuxed it already, e.g. a probe's)."""
    table = table or read_frame_table(content)
    windows = video_windows(table.num_frames, table.fps, spec)
    return _cut_views(content, table, spec, windows, 0, name)


@dataclass(frozen=True)
class TimelineWindows:
    """The windows of a timeline: ``starts`` (native frames, int32 ``(W,)``, ``stride`` apart),
    each ``span`` frames long, of a video of ``num_frames`` frames at ``fps``; times are frame
    index / fps."""

    starts: np.ndarray
    span: int
    stride: int
    num_frames: int
    fps: float

    @property
    def window_s(self) -> float:
        return self.span / self.fps

    def times(self) -> list[tuple[float, float]]:
        """``(start_s, end_s)`` of each window (the end clamped to the video's end)."""
        end = self.num_frames / self.fps
        return [(s / self.fps, min((s + self.span) / self.fps, end)) for s in self.starts.tolist()]


def timeline_windows(
    num_frames: int, fps: float, spec: ClipSpec, stride_s: float | None = None
) -> TimelineWindows:
    """The windows of the model's clip span every ``stride_s`` seconds (default: one span, so
    windows touch without overlapping); the stride is rounded to whole frames (at least one)."""
    span = window_span(spec, fps)
    stride = span if stride_s is None else max(1, round(stride_s * fps))
    starts = sampling.stride_starts(num_frames, span, stride)
    return TimelineWindows(starts, span, stride, num_frames, fps)


def timeline_views(
    content: VideoSource,
    spec: ClipSpec,
    stride_s: float | None = None,
    *,
    chunk: int = 8,
    name: str | None = None,
    table: FrameTable | None = None,
) -> tuple[TimelineWindows, Iterator[VideoViews]]:
    """The windows of a video's timeline and a lazy iterator over their test views, ``chunk``
    windows per item (``clip_index``: the window's number in the timeline)."""
    table = table or read_frame_table(content)
    windows = timeline_windows(table.num_frames, table.fps, spec, stride_s)

    def chunks() -> Iterator[VideoViews]:
        for first in range(0, len(windows.starts), chunk):
            starts = windows.starts[first : first + chunk]
            indices = [window_indices(spec, s, table.num_frames, table.fps) for s in starts]
            yield _cut_views(content, table, spec, indices, first, name)

    return windows, chunks()


def _cut_views(content, table, spec: ClipSpec, windows, first: int, name) -> VideoViews:
    """Decode the frames of ``windows`` (``(fast_idx, slow_idx)`` pairs) once and cut their
    test views; window ``i`` is reported as ``clip_index`` ``first + i``."""
    needed = np.unique(np.concatenate([fast_idx for fast_idx, _ in windows]))
    frames = decode_frames(
        content,
        needed,
        frame_pts=table.pts,
        keyframes=table.keyframes,
        short_side=spec.test_short_side,
        name=name,
    )
    views, clips, crops = [], [], []
    for clip_index, (fast_idx, _) in enumerate(windows, start=first):
        clip = [frames[np.searchsorted(needed, fast_idx)]]
        for view, spatial_index in spatial_views(clip, spec):
            views.append(view[0])
            clips.append(clip_index)
            crops.append(spatial_index)
    return VideoViews(
        fast=np.stack(views),
        clip_index=np.asarray(clips, dtype=np.int32),
        spatial_index=np.asarray(crops, dtype=np.int32),
    )
