"""The ``train.multigrid`` section of a training job: :class:`MultigridConfig`, validated once.

Factors are relative to the plain run's clip (``T`` Slow frames, crop ``S``); the resolved
shapes, epochs and batches come from :func:`training.multigrid.schedule.multigrid_schedule`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SQRT1_2 = math.sqrt(0.5)


@dataclass(frozen=True)
class MultigridConfig:
    """Multigrid training (Wu et al., CVPR 2020), used when ``train.schedule: multigrid``.

    Attributes:
        long_cycle: the long cycle's base shapes ``(T factor, S factor)`` in training order,
            relative to the plain clip; the batch grows so that ``B*T*S^2`` stays constant and
            ``tau`` grows so that the window's span ``T*tau`` stays the same.
        short_cycle: spatial factors of the extra steps of each short cycle, relative to the
            *current* long-cycle crop; each step takes ``(S/s)^2`` times the batch, and a cycle
            ends with a step at the long-cycle shape itself.
        long_cycles: how often the long cycle repeats before the fine-tune (PySlowFast runs it
            once per step of its stepwise learning rate: 3; our cosine has no steps).
        epoch_factor: the run trains ``round(train.epochs * epoch_factor)`` epochs in all.
        finetune_fraction: the share of those epochs at the end spent at the full shape,
            plain batch and no short cycle (at least one epoch when above 0).
        bn_group: BatchNorm statistics over groups of this many clips of the long-cycle batch
            (sub-batch BN; a short-cycle step's groups hold its factor times more clips).
        crop_multiple: every crop is rounded to a multiple of this (at least one multiple).
    """

    long_cycle: tuple[tuple[float, float], ...] = (
        (0.25, SQRT1_2),
        (0.5, SQRT1_2),
        (0.5, 1.0),
        (1.0, 1.0),
    )
    short_cycle: tuple[float, ...] = (0.5, SQRT1_2)
    long_cycles: int = 3
    epoch_factor: float = 1.5
    finetune_fraction: float = 0.08
    bn_group: int = 8
    crop_multiple: int = 8

    def validate(self) -> None:
        """``ValueError`` starting with the field's name (the config prefixes the section)."""
        if not self.long_cycle:
            raise ValueError("long_cycle: needs at least one (T factor, S factor) shape")
        for i, (t, s) in enumerate(self.long_cycle):
            if not (0 < t <= 1 and 0 < s <= 1):
                raise ValueError(f"long_cycle: shape {i} {[t, s]}: factors must be in (0, 1]")
        for f in self.short_cycle:
            if not 0 < f < 1:
                raise ValueError(f"short_cycle: factor {f} must be in (0, 1)")
        if self.long_cycles < 1:
            raise ValueError(f"long_cycles: must be >= 1, got {self.long_cycles}")
        if self.epoch_factor <= 0:
            raise ValueError(f"epoch_factor: must be positive, got {self.epoch_factor}")
        if not 0 <= self.finetune_fraction < 1:
            raise ValueError(f"finetune_fraction: must be in [0, 1), got {self.finetune_fraction}")
        if self.bn_group < 1:
            raise ValueError(f"bn_group: must be >= 1, got {self.bn_group}")
        if self.crop_multiple < 1:
            raise ValueError(f"crop_multiple: must be >= 1, got {self.crop_multiple}")
