"""What a pathway can tell apart on SynthMotion, in principle: the top-1 ceiling of a sampling.

A pathway samples a clip every ``stride`` native frames. A class whose object looks the same at
every sample of such a window (``still``, and the classes whose motion period divides the
stride: ``vibrate`` and ``flicker`` at period 4, ``vibrate_slow`` at 8) cannot be told from
the other such classes by that pathway, whatever it learns: they form one *blind group*, of
which a classifier can name at best one class right. Every other class is *seen*. With as many
test videos per class, the best top-1 is then ``(seen + 1) / classes`` when the blind group is
not empty (``seen / classes`` + one blind class), and per class: 1 for a seen class, ``1 / k``
on average over a blind group of ``k`` (one class all right, the others all wrong).

For the demo's sampling (T = 4, tau = 8, alpha = 4, native frames) on its six classes: the Slow
pathway (stride 8) sees ``drift_right`` and ``drift_left`` only, ceiling (2 + 1) / 6 = 0.5;
the Fast pathway (stride 2) sees every class, ceiling 1. Decided from
:func:`~pipelines.synth.spec.object_state` itself (the state the renderer draws), over random
videos and window starts, not from a list kept by hand.

The ceiling bounds what the *motion* tells; a network can pass it on static cues the generator
leaks (a vibrating object's wider range of positions, ``flicker``'s contrasting second colour:
docs/data-loading.md, "Aliasing argument").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.synth.spec import object_state, sample_spec


def seen_at_stride(label: str, stride: int, samples: int = 4, trials: int = 24) -> bool:
    """Whether ``samples`` frames ``stride`` apart show the object of ``label`` changing, in
    some of ``trials`` random videos and window starts (a seen class changes in all of them)."""
    if stride < 1 or samples < 2:
        raise ValueError(f"stride must be >= 1 and samples >= 2, got {stride}, {samples}")
    rng = np.random.default_rng(0)
    frames = stride * (samples - 1) + 8
    for _ in range(trials):
        spec = sample_spec(rng, label, num_frames=frames + 8)
        start = int(rng.integers(0, 8))
        states = {object_state(spec, start + k * stride) for k in range(samples)}
        if len(states) > 1:
            return True
    return False


@dataclass(frozen=True)
class Ceiling:
    """What one sampling can tell apart among ``classes``: the seen classes, the blind group,
    the best top-1 and the best mean accuracy of each class."""

    classes: tuple[str, ...]
    stride: int
    seen: tuple[str, ...]
    blind: tuple[str, ...]

    @property
    def top1(self) -> float:
        return (len(self.seen) + (1 if self.blind else 0)) / len(self.classes)

    def class_ceiling(self, label: str) -> float:
        """1 for a seen class; ``1 / k`` for a member of a blind group of ``k``."""
        return 1.0 if label in self.seen else 1.0 / len(self.blind)


def ceiling(classes: Sequence[str], stride: int, samples: int = 4) -> Ceiling:
    """The :class:`Ceiling` of sampling ``samples`` frames ``stride`` native frames apart."""
    seen = tuple(c for c in classes if c != "still" and seen_at_stride(c, stride, samples))
    blind = tuple(c for c in classes if c not in seen)
    return Ceiling(tuple(classes), stride, seen, blind)
