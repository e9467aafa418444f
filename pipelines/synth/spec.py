"""SynthMotion's classes and the random, per-video specification a video is rendered from.

A :class:`VideoSpec` is everything about one video (size, frame rate, GOP, object, motion,
noise, seed); :func:`object_state` is the pure motion model that renders it and that the
aliasing tests check. See :mod:`pipelines.synth.generate` for the dataset and ``docs/data-loading.md``
("SynthMotion") for the aliasing argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Fixed class order: ``--classes K`` takes the first K. The first six are the demo classes and
#: include the four that alias to "static" at any Slow stride that is a multiple of 8.
CLASS_NAMES: tuple[str, ...] = (
    "drift_right",  # moves right at constant speed: visible to Slow and Fast
    "drift_left",  # moves left: visible to Slow and Fast
    "still",  # static object
    "vibrate",  # horizontal square wave, period 4 frames (+A,+A,-A,-A): Fast only
    "vibrate_slow",  # horizontal square wave, period 8 frames (+A x4, -A x4): Fast only
    "flicker",  # colour square wave between two colours, period 4 frames: Fast only
    "grow",  # size grows linearly: visible to Slow and Fast
    "orbit",  # circular motion, period 24..48 frames: visible to Slow and Fast
)

#: Classes a horizontal flip turns into each other (declared in the manifest, so a flipped
#: ``drift_right`` clip trains as ``drift_left``: :mod:`raysf.flip_labels`).
FLIP_PAIRS: tuple[tuple[str, str], ...] = (("drift_right", "drift_left"),)

#: Classes whose motion has a period dividing 8 native frames: at a Slow stride that is a
#: multiple of 8 the sampled frames all show the same state, so Slow-only sees "still".
ALIASING_CLASSES: tuple[str, ...] = ("vibrate", "vibrate_slow", "flicker")

SHAPES = ("square", "disc", "diamond")
FRAME_RATES = (24, 25, 30)
ASPECTS = (4 / 3, 16 / 9, 1.0, 3 / 4)
#: (keyframe interval g, max B-frames) choices: long GOPs with B-frames are common on purpose.
GOP_CHOICES = ((48, 2), (48, 3), (32, 2), (250, 2), (12, 0))


@dataclass(frozen=True)
class VideoSpec:
    """Everything needed to render and encode one video (a pure function of it).

    Positions are in pixels of the top-left corner of the object's bounding box; ``size`` is
    the bounding-box side. ``phase`` shifts the square waves; ``speed`` is pixels per frame
    (drift), per-frame size growth (grow) or radians per frame (orbit).
    """

    label: str
    width: int
    height: int
    fps: int
    num_frames: int
    gop: int
    bframes: int
    shape: str
    size: int
    x0: float
    y0: float
    color: tuple[int, int, int]
    color2: tuple[int, int, int]
    amplitude: int
    phase: int
    speed: float
    noise: float
    seed: int


@dataclass(frozen=True)
class ObjectState:
    """State of the object in one frame: bounding box top-left ``(x, y)``, side, RGB colour."""

    x: int
    y: int
    size: int
    color: tuple[int, int, int]


def class_names(num_classes: int) -> list[str]:
    """The first ``num_classes`` names of :data:`CLASS_NAMES`."""
    if not 1 <= num_classes <= len(CLASS_NAMES):
        raise ValueError(f"classes must be in [1, {len(CLASS_NAMES)}], got {num_classes}")
    return list(CLASS_NAMES[:num_classes])


def square_wave(t: int, period: int, phase: int) -> int:
    """+1 for the first half of each period, -1 for the second half (integer frames)."""
    return 1 if ((t + phase) % period) < period // 2 else -1


def object_state(spec: VideoSpec, t: int) -> ObjectState:
    """The object's state at native frame ``t`` (pure: used to render and to test aliasing)."""
    x, y, size, color = spec.x0, spec.y0, spec.size, spec.color
    if spec.label == "drift_right":
        x = spec.x0 + spec.speed * t
    elif spec.label == "drift_left":
        x = spec.x0 - spec.speed * t
    elif spec.label == "vibrate":
        x = spec.x0 + spec.amplitude * square_wave(t, 4, spec.phase)
    elif spec.label == "vibrate_slow":
        x = spec.x0 + spec.amplitude * square_wave(t, 8, spec.phase)
    elif spec.label == "flicker":
        color = spec.color if square_wave(t, 4, spec.phase) > 0 else spec.color2
    elif spec.label == "grow":
        size = spec.size + spec.speed * t
    elif spec.label == "orbit":
        angle = spec.speed * t + spec.phase
        x = spec.x0 + spec.amplitude * math.cos(angle)
        y = spec.y0 + spec.amplitude * math.sin(angle)
    elif spec.label != "still":
        raise ValueError(f"unknown SynthMotion label {spec.label!r}")
    return ObjectState(int(round(x)), int(round(y)), int(round(size)), color)


def _random_color(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(30, 226, size=3))  # type: ignore[return-value]


def _contrasting_color(
    rng: np.random.Generator, other: tuple[int, int, int], min_distance: float = 120.0
) -> tuple[int, int, int]:
    """A random colour at least ``min_distance`` (RGB Euclidean) from ``other``."""
    for _ in range(100):
        color = _random_color(rng)
        if np.linalg.norm(np.subtract(color, other)) >= min_distance:
            return color
    return tuple(255 - c for c in other)


def sample_spec(
    rng: np.random.Generator,
    label: str,
    *,
    num_frames: int = 64,
    short_side: tuple[int, int] = (64, 112),
    size: tuple[int, int] | None = None,
) -> VideoSpec:
    """Draw a random :class:`VideoSpec` of class ``label``.

    Args:
        rng: the generator (one per video, derived from the dataset seed).
        num_frames: frames in the video.
        short_side: inclusive range of the short side when ``size`` is None (sides are even,
            as yuv420p requires).
        size: fixed ``(width, height)`` (rounded down to even) instead of a random short side
            and aspect.
    """
    if label not in CLASS_NAMES:
        raise ValueError(f"label must be one of {CLASS_NAMES}, got {label!r}")
    width, height = _frame_size(rng, short_side, size)
    short = min(width, height)
    obj = int(rng.integers(int(0.22 * short), int(0.32 * short) + 1))
    amplitude = max(4, int(round(rng.uniform(0.12, 0.18) * short)))
    speed, amplitude, (x_lo, x_hi), (y_lo, y_hi) = _motion(
        rng, label, width, height, obj, amplitude, num_frames
    )
    gop, bframes = GOP_CHOICES[int(rng.integers(len(GOP_CHOICES)))]
    color = _random_color(rng)
    return VideoSpec(
        label=label,
        width=width,
        height=height,
        fps=int(FRAME_RATES[int(rng.integers(len(FRAME_RATES)))]),
        num_frames=int(num_frames),
        gop=gop,
        bframes=bframes,
        shape=SHAPES[int(rng.integers(len(SHAPES)))],
        size=obj,
        x0=float(rng.uniform(x_lo, max(x_lo, x_hi))),
        y0=float(rng.uniform(y_lo, max(y_lo, y_hi))),
        color=color,
        color2=_contrasting_color(rng, color),
        amplitude=amplitude,
        phase=int(rng.integers(0, 8)),
        speed=float(speed),
        noise=float(rng.uniform(1.0, 4.0)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def _frame_size(
    rng: np.random.Generator, short_side: tuple[int, int], size: tuple[int, int] | None
) -> tuple[int, int]:
    """Even ``(width, height)``: ``size`` rounded down, else a random short side and aspect."""
    if size is None:
        short = int(rng.integers(-(-short_side[0] // 2), short_side[1] // 2 + 1)) * 2
        aspect = float(ASPECTS[int(rng.integers(len(ASPECTS)))])
        long = max(short, int(round(short * max(aspect, 1 / aspect) / 2)) * 2)
        width, height = (long, short) if aspect >= 1 else (short, long)
    else:
        width, height = int(size[0]) // 2 * 2, int(size[1]) // 2 * 2
    if min(width, height) < 32:
        raise ValueError(f"size must be at least 32 pixels on the short side, got {width}x{height}")
    return width, height


def _motion(
    rng: np.random.Generator,
    label: str,
    width: int,
    height: int,
    obj: int,
    amplitude: int,
    num_frames: int,
) -> tuple[float, int, tuple[float, float], tuple[float, float]]:
    """``(speed, amplitude, (x_lo, x_hi), (y_lo, y_hi))`` of ``label``'s motion.

    The ranges bound the start position so the object stays in the frame all video long.
    """
    short = min(width, height)
    speed = 0.0
    margin = amplitude + 1
    x_lo, x_hi = margin, width - obj - margin
    y_lo, y_hi = margin, height - obj - margin
    if label in ("drift_right", "drift_left"):
        travel = rng.uniform(0.4, 0.8) * (width - obj - 2)
        speed = travel / max(num_frames - 1, 1)
        x_lo, x_hi = (
            (1, width - obj - 1 - travel)
            if label == "drift_right"
            else (1 + travel, width - obj - 1)
        )
    elif label == "grow":
        grow_to = rng.uniform(1.8, 2.5) * obj
        speed = (grow_to - obj) / max(num_frames - 1, 1)
        x_hi, y_hi = width - grow_to - 1, height - grow_to - 1
        x_lo, y_lo = 1, 1
    elif label == "orbit":
        speed = 2 * math.pi / float(rng.integers(24, 49))
        amplitude = max(4, int(round(rng.uniform(0.12, 0.2) * short)))
        x_lo, x_hi = amplitude + 1, width - obj - amplitude - 1
        y_lo, y_hi = amplitude + 1, height - obj - amplitude - 1
    return speed, amplitude, (x_lo, x_hi), (y_lo, y_hi)
