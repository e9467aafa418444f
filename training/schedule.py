"""Learning-rate recipe of the paper: linear scaling, linear warm-up, half-period cosine.

Pure functions of numbers, so the schedule can be unit-tested and plotted without a model.
"""

from __future__ import annotations

import math


def scaled_lr(base_lr: float, global_batch: int, reference_batch: int) -> float:
    """Linear scaling rule (Goyal et al.): ``base_lr * global_batch / reference_batch``."""
    if global_batch <= 0 or reference_batch <= 0:
        raise ValueError("global_batch and reference_batch must be positive")
    return base_lr * global_batch / reference_batch


def lr_factor(
    epoch: float,
    *,
    epochs: float,
    warmup_epochs: float,
    warmup_start_factor: float,
    min_factor: float = 0.0,
) -> float:
    """Multiplier of the peak learning rate at fractional ``epoch``.

    Half-period cosine from 1 at epoch 0 to ``min_factor`` at ``epochs``; during the first
    ``warmup_epochs`` the factor rises linearly from ``warmup_start_factor`` to the cosine value
    at the end of the warm-up (PySlowFast's recipe).
    """
    if epochs <= 0:
        raise ValueError("epochs must be positive")

    def cosine(e: float) -> float:
        e = min(max(e, 0.0), epochs)
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * e / epochs))

    if warmup_epochs > 0 and epoch < warmup_epochs:
        end = cosine(warmup_epochs)
        return warmup_start_factor + (end - warmup_start_factor) * epoch / warmup_epochs
    return cosine(epoch)
