"""Pure index math for dual-rate (Slow/Fast) clip sampling.

Every function here takes plain numbers and returns plain numbers or int32 arrays: no config
objects, no I/O. Frame numbers are 0-based presentation-order indices in the *stored* video.

Vocabulary (paper notation):

- ``T`` (``slow_frames``): frames seen by the Slow pathway.
- ``tau``: Slow temporal stride, in frames at ``target_fps`` (16 in the paper).
- ``alpha``: speed ratio; the Fast pathway sees ``alpha * T`` frames at stride ``tau / alpha``.
- ``span``: number of native frames one window covers, ``T * tau * fps / target_fps``.

Two index rules are offered:

- ``"stride"``: fast frame ``i`` is ``start + round(i * tau / alpha * r)`` with
  ``r = fps / target_fps`` and the slow frames are every ``alpha``-th fast frame. With ``r == 1``
  and ``tau % alpha == 0`` the strides are exact, as in the paper.
- ``"linspace"``: PySlowFast's rule (``temporal_sampling`` + ``pack_pathway_output``):
  ``alpha * T`` points spread by ``linspace`` over ``[start, start + span - 1]`` and truncated,
  the slow frames picked from them by a second truncated ``linspace``. Needed to reproduce the
  accuracy of checkpoints trained with PySlowFast.

In both rules the slow indices are a subset of the fast ones, and indices past the end of a
short video are clamped to its last frame (the frame is repeated, as PySlowFast does). Which
positions of the Fast list are the Slow frames depends only on ``(T, alpha, rule)``
(:func:`slow_positions`): the loader ships only the Fast frames and the training device takes
the Slow ones from them by these positions (``training.device.inputs``).
"""

from __future__ import annotations

import math

import numpy as np

RULES = ("stride", "linspace")


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if value is None or value <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")


def fps_ratio(fps: float, target_fps: float | None) -> float:
    """Native frames per target frame: ``fps / target_fps`` (1.0 when ``target_fps`` is None)."""
    _check_positive(fps=fps)
    if target_fps is None:
        return 1.0
    _check_positive(target_fps=target_fps)
    return float(fps) / float(target_fps)


def window_span(
    slow_frames: int, tau: int, fps: float = 30.0, target_fps: float | None = None
) -> int:
    """Native frames covered by one window: ``ceil(T * tau * fps / target_fps)``.

    Example: T=8, tau=8 at 30 fps with ``target_fps=None`` covers 64 frames.
    """
    _check_positive(slow_frames=slow_frames, tau=tau)
    return max(1, math.ceil(slow_frames * tau * fps_ratio(fps, target_fps) - 1e-9))


def slow_positions(slow_frames: int, alpha: int, rule: str = "stride") -> np.ndarray:
    """Positions in the Fast index list of the Slow frames: ``slow_idx == fast_idx[positions]``.

    A pure function of ``(T, alpha, rule)``, the same for every window, frame rate and video
    length (clamping at the end of a short video repeats frames in both lists alike):

    - ``"stride"``: every ``alpha``-th Fast frame, ``[0, alpha, 2*alpha, ...]``;
    - ``"linspace"``: PySlowFast's ``pack_pathway_output``, ``T`` points spread by a truncated
      ``linspace`` over ``[0, alpha*T - 1]``.

    Every rule's Slow frames are such positions (a rule must keep it so: the loader ships only
    the Fast frames).

    Returns:
        int64 ``(T,)`` non-decreasing positions in ``[0, alpha*T)``.
    """
    _check_positive(slow_frames=slow_frames, alpha=alpha)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    return _pick_positions(slow_frames, alpha, rule)


def _pick_positions(slow_frames: int, alpha: int, rule: str) -> np.ndarray:
    """The positions of a subset rule (:func:`slow_positions`)."""
    n_fast = alpha * slow_frames
    if rule == "stride":
        return np.arange(0, n_fast, alpha, dtype=np.int64)
    return np.linspace(0, n_fast - 1, slow_frames).astype(np.int64)


def clip_indices(
    start: int,
    num_frames: int,
    *,
    slow_frames: int,
    tau: int,
    alpha: int,
    fps: float = 30.0,
    target_fps: float | None = None,
    rule: str = "stride",
) -> tuple[np.ndarray, np.ndarray]:
    """Fast and slow frame indices of the window that starts at ``start``.

    Args:
        start: first native frame of the window (>= 0).
        num_frames: frames in the stored video; indices are clamped to ``num_frames - 1``.
        slow_frames, tau, alpha: ``T``, Slow stride and speed ratio.
        fps, target_fps: native frame rate and the rate at which ``tau`` is measured.
        rule: ``"stride"`` or ``"linspace"`` (see module docstring).

    Returns:
        ``(fast_idx, slow_idx)``: int32 arrays of shapes ``(alpha*T,)`` and ``(T,)``, both
        non-decreasing, with ``slow_idx`` a subset of ``fast_idx``.
    """
    _check_positive(slow_frames=slow_frames, tau=tau, alpha=alpha, num_frames=num_frames)
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    n_fast = alpha * slow_frames
    ratio = fps_ratio(fps, target_fps)
    if rule == "stride":
        step = tau / alpha * ratio
        fast = start + np.floor(np.arange(n_fast) * step + 0.5)
    else:
        span = slow_frames * tau * ratio
        fast = np.linspace(start, start + span - 1, n_fast)
    fast = np.clip(fast, 0, num_frames - 1).astype(np.int32)
    return fast, fast[_pick_positions(slow_frames, alpha, rule)]


def max_start(num_frames: int, span: int) -> int:
    """Largest start such that the window fits: ``max(num_frames - span, 0)``."""
    return max(int(num_frames) - int(span), 0)


def center_start(num_frames: int, span: int) -> int:
    """Start of the centred window (the default window written at ingest for training)."""
    return max_start(num_frames, span) // 2


def random_start(rng: np.random.Generator, num_frames: int, span: int) -> int:
    """Uniform random start in ``[0, num_frames - span]``: temporal jitter for training."""
    return int(rng.integers(0, max_start(num_frames, span) + 1))


def uniform_starts(num_frames: int, span: int, num_clips: int) -> np.ndarray:
    """Starts of ``num_clips`` windows spread uniformly over the video (test protocol).

    The first window starts at frame 0 and the last ends at the last frame; one clip is centred.
    Windows overlap when the video is shorter than ``num_clips * span``. Returns int32
    ``(num_clips,)``.
    """
    _check_positive(num_clips=num_clips)
    delta = max_start(num_frames, span)
    if num_clips == 1:
        return np.array([delta // 2], dtype=np.int32)
    return np.floor(np.arange(num_clips) * delta / (num_clips - 1) + 0.5).astype(np.int32)


def stride_starts(num_frames: int, span: int, stride: int) -> np.ndarray:
    """Starts of the windows of a timeline: ``0, stride, 2*stride, ...`` while the window fits
    (``start + span <= num_frames``); a video shorter than one window has one window at 0
    (its indices clamp to the last frame, as :func:`clip_indices` does). The frames after the
    last window (fewer than ``stride``) are not covered. Returns int32 ``(W,)``."""
    _check_positive(num_frames=num_frames, span=span, stride=stride)
    return np.arange(0, max_start(num_frames, span) + 1, stride, dtype=np.int32)


def rewindow(start: int, old_span: int, new_span: int, num_frames: int) -> int:
    """Move a window written for ``old_span`` to ``new_span`` keeping its centre.

    Used when a run samples with another ``tau``/``alpha``/``target_fps`` than the records were
    written with: the new window is centred where the old one was, then shifted to fit in
    ``[0, num_frames)``.
    """
    center = start + old_span / 2.0
    new_start = int(math.floor(center - new_span / 2.0 + 0.5))
    return min(max(new_start, 0), max_start(num_frames, new_span))
