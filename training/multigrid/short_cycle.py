"""The steps of a short cycle, fed from batches of one size: step ``i`` of a phase takes
``micro_batches`` consecutive host batches of the phase's batch size, concatenated
(:func:`group_batches`), and its clips are scaled on the device from the phase's crop to the
step's (:func:`scale_inputs`). Scaling a crop down is what PySlowFast's short cycle does at
decode (a smaller crop over a proportionally larger field of view), without a second
dataset per size.

Both functions follow the step index alone, so every rank (holding as many batches as the
others: Ray Train splits the datasets equally) trains the same shape at the same step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training.multigrid.schedule import ShortStep

Batch = tuple[list[torch.Tensor], torch.Tensor]


def concat_batches(batches: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Host batches (tensors or arrays per column) joined along the clip axis."""
    out: dict[str, Any] = {}
    for key, first in batches[0].items():
        parts = [batch[key] for batch in batches]
        out[key] = torch.cat(parts) if isinstance(first, torch.Tensor) else np.concatenate(parts)
    return out


def group_batches(
    batches: Iterable[Mapping[str, Any]], steps: Sequence[ShortStep], start: int = 0
) -> Iterator[Mapping[str, Any]]:
    """Step ``i`` gets ``steps[(start + i) % len(steps)].micro_batches`` consecutive batches
    joined; a last step that cannot get its count is dropped."""
    pending: list[Mapping[str, Any]] = []
    index = start
    for batch in batches:
        pending.append(batch)
        if len(pending) == steps[index % len(steps)].micro_batches:
            yield pending[0] if len(pending) == 1 else concat_batches(pending)
            pending, index = [], index + 1


def resize_clips(x: torch.Tensor, crop: int) -> torch.Tensor:
    """Float ``(B, C, T, H, W)`` scaled to ``crop x crop`` (frames kept; memory format kept)."""
    if x.shape[-2:] == (crop, crop):
        return x
    channels_last = x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()
    y = F.interpolate(x, size=(x.shape[2], crop, crop), mode="trilinear", align_corners=False)
    return y.contiguous(memory_format=torch.channels_last_3d) if channels_last else y


def scale_inputs(
    fed: Iterable[Batch], steps: Sequence[ShortStep], start: int = 0
) -> Iterator[Batch]:
    """The fed steps of :func:`group_batches`, each pathway scaled to its step's crop."""
    for index, (inputs, labels) in enumerate(fed, start):
        crop = steps[index % len(steps)].crop
        yield [resize_clips(x, crop) for x in inputs], labels


class ShortCycleFeed:
    """A device feed (``host batches -> fed batches``) for the steps of one phase: the host
    batches grouped (:func:`group_batches`), fed, then scaled (:func:`scale_inputs`). With a
    one-step cycle of one batch at the phase's crop (the plain schedule) it is the feed itself.
    ``start``: the cycle's step the epoch begins with (the cycle runs on across a phase)."""

    def __init__(self, feed, steps: Sequence[ShortStep], start: int = 0):
        self.feed, self.steps, self.start = feed, tuple(steps), start
        self.plain = len(self.steps) == 1 and self.steps[0].micro_batches == 1

    def __call__(self, batches: Iterable[Mapping[str, Any]]) -> Iterator[Batch]:
        if self.plain:
            return self.feed(batches)
        grouped = group_batches(batches, self.steps, self.start)
        return scale_inputs(self.feed(grouped), self.steps, self.start)
