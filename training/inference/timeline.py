"""Action timelines: what happens when in a long video, one answer for batch and online.

A timeline scores windows of the model's clip span every ``stride_s`` seconds
(:func:`pipelines.views.timeline_windows`), each window by its test crops (softmax averaged over
the crops), optionally smooths the window scores with a centred moving average of ``smooth``
windows, and keeps each window's top-k. The video-level top-5 is the mean of the (unsmoothed)
window scores: every part of the video counts alike, which is not the ``num_test_clips``
protocol of ``predict`` without ``--timeline``.

``raysf predict --timeline`` (:func:`video_timeline`, the model called in this process) and the
service's ``POST /v1/timeline`` (decoder and model in separate deployments) both build their
answer with :func:`timeline_result` from the same windows, so they answer alike
(``tests/training/serving/test_service.py`` checks it). The answer::

    {"video": NAME, "window_s": 0.53, "stride_s": 0.53, "smooth": 1, "num_windows": 3,
     "windows": [{"start_s": 0.0, "end_s": 0.53, "top": [{"label": "still", "score": 0.91},
     ...]}, ...], "top5": [{"label": "still", "score": 0.88}, ...]}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.views import TimelineWindows, VideoSource, timeline_views
from raysf.clip_spec import ClipSpec

#: Bounds of the options (an answer stays small, a request cannot ask for a million windows).
MAX_STRIDE_S = 3600.0
MAX_SMOOTH = 31
MAX_TOP_K = 20
#: Windows decoded (and sent to the model) at a time.
CHUNK_WINDOWS = 8


@dataclass(frozen=True)
class TimelineOptions:
    """How a timeline is cut: ``stride_s`` between window starts (None: one window span),
    ``smooth`` windows in the moving average (odd; 1: none), ``top_k`` labels per window."""

    stride_s: float | None = None
    smooth: int = 1
    top_k: int = 5

    def __post_init__(self) -> None:
        if self.stride_s is not None and not 0 < self.stride_s <= MAX_STRIDE_S:
            raise ValueError(f"stride_s must be in (0, {MAX_STRIDE_S:g}], got {self.stride_s}")
        if not (1 <= self.smooth <= MAX_SMOOTH and self.smooth % 2 == 1):
            raise ValueError(
                f"smooth must be an odd number in [1, {MAX_SMOOTH}], got {self.smooth}"
            )
        if not 1 <= self.top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be in [1, {MAX_TOP_K}], got {self.top_k}")


def window_scores(view_scores: np.ndarray, clip_index: np.ndarray, num_windows: int) -> np.ndarray:
    """``(W, C)`` mean of the ``(V, C)`` view scores of each window (``clip_index``: each view's
    window); ``ValueError`` when a window has no view."""
    sums = np.zeros((num_windows, view_scores.shape[1]), dtype=np.float64)
    np.add.at(sums, clip_index, view_scores)
    counts = np.bincount(clip_index, minlength=num_windows)
    if len(counts) != num_windows or np.any(counts == 0):
        raise ValueError(f"views of {num_windows} windows expected, got counts {counts.tolist()}")
    return sums / counts[:, None]


def smooth_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average of ``k`` (odd) rows; a row near an end averages the rows there."""
    if k == 1:
        return scores
    half = k // 2
    cum = np.vstack([np.zeros((1, scores.shape[1])), np.cumsum(scores, axis=0)])
    rows = np.arange(len(scores))
    lo, hi = np.maximum(rows - half, 0), np.minimum(rows + half + 1, len(scores))
    return (cum[hi] - cum[lo]) / (hi - lo)[:, None]


def top_labels(scores: np.ndarray, classes: Sequence[str], k: int) -> list[dict[str, Any]]:
    """The ``k`` best ``{"label", "score"}`` of ``(C,)`` scores (scores to 6 decimals)."""
    order = np.argsort(-scores, kind="stable")[:k]
    return [
        {"label": classes[i] if i < len(classes) else str(i), "score": round(float(scores[i]), 6)}
        for i in order
    ]


def timeline_result(
    scores: np.ndarray,
    windows: TimelineWindows,
    classes: Sequence[str],
    options: TimelineOptions,
    video: str,
) -> dict[str, Any]:
    """The answer (module docstring) from the ``(W, C)`` window scores of ``windows``."""
    shown = smooth_scores(scores, options.smooth)
    rows = [
        {
            "start_s": round(t0, 3),
            "end_s": round(t1, 3),
            "top": top_labels(s, classes, options.top_k),
        }
        for (t0, t1), s in zip(windows.times(), shown, strict=True)
    ]
    return {
        "video": video,
        "window_s": round(windows.window_s, 3),
        "stride_s": round(windows.stride / windows.fps, 3),
        "smooth": options.smooth,
        "num_windows": len(rows),
        "windows": rows,
        "top5": top_labels(scores.mean(0), classes, 5),
    }


def video_timeline(
    content: VideoSource,
    spec: ClipSpec,
    classes: Sequence[str],
    score: Callable[[np.ndarray], np.ndarray],
    options: TimelineOptions,
    name: str = "video",
) -> dict[str, Any]:
    """The timeline of one video, ``score`` mapping uint8 views ``(V, alpha*T, H, W, 3)`` to
    their softmax scores ``(V, C)`` (``Predictor.view_scores``)."""
    windows, chunks = timeline_views(
        content, spec, options.stride_s, chunk=CHUNK_WINDOWS, name=name
    )
    parts, index = [], []
    for views in chunks:
        parts.append(score(views.fast))
        index.append(views.clip_index)
    per_window = window_scores(np.concatenate(parts), np.concatenate(index), len(windows.starts))
    return timeline_result(per_window, windows, classes, options, name)
