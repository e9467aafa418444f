"""Validation batches kept in each worker's memory after the first pass.

The validation split is cut the same way every epoch (fixed windows, centre crop, no flip), so
its uint8 batches are the same every epoch. On a small split, decoding them again costs little
but starting Ray Data's execution for them costs seconds per epoch (a large share of an epoch
of a small ablation). When every worker's share of one pass fits in ``data.val_cache_mb``, the
workers keep those batches and validate from memory in later epochs: no Ray Data execution, no
decode. A split that does not fit (Kinetics' val split on any budget one would choose) streams
every epoch as before; ``val_cache_mb: 0`` always streams.

The metrics are those of the whole split either way: Ray Data hands a pass's blocks to the
workers dynamically, so which clips a worker holds depends on that pass, but the shares of one
pass are disjoint and cover the split, and validation sums over the workers.

The decision is collective (:meth:`ValCache.settle` all-reduces "my share fitted"): every
worker must stop reading its val shard in the same epoch, since a streaming split only runs
while all of its consumers read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

HostBatch = Mapping[str, Any]


def batch_nbytes(batch: HostBatch) -> int:
    """Bytes of the arrays and tensors of one host batch."""
    total = 0
    for value in batch.values():
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
        elif isinstance(value, np.ndarray):
            total += value.nbytes
    return total


class ValCache:
    """One worker's validation batches: streamed until a pass fits on every worker, then kept.

    Args:
        budget_bytes: the most a worker keeps (``0``: never keep, stream every epoch).
    """

    def __init__(self, budget_bytes: int):
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes must be >= 0, got {budget_bytes}")
        self.budget = budget_bytes
        self._kept: list[HostBatch] | None = None
        self._pass: list[HostBatch] | None = None
        self.kept_bytes = 0

    @property
    def active(self) -> bool:
        """True once the batches are kept (later passes read no shard)."""
        return self._kept is not None

    def batches(self, read: Callable[[], Iterable[HostBatch]]) -> Iterator[HostBatch]:
        """The kept batches, or those of ``read()`` (recorded while they fit the budget)."""
        if self._kept is not None:
            yield from self._kept
            return
        recording: list[HostBatch] | None = [] if self.budget > 0 else None
        size = 0
        self._pass = None
        for batch in read():
            if recording is not None:
                size += batch_nbytes(batch)
                if size <= self.budget:
                    recording.append(batch)
                else:
                    recording = None  # over the budget: this pass streams through
            yield batch
        self._pass = recording
        self.kept_bytes = size if recording is not None else 0

    def settle(self, all_agree: Callable[[bool], bool]) -> bool:
        """After a complete pass (on every worker alike): keep its batches when every worker's
        share fitted, else stop trying. ``all_agree(fits)`` is True when ``fits`` on every
        worker (an all-reduce). Returns whether the batches are kept from now on."""
        if self._kept is not None or self.budget == 0:
            return self.active
        fits = self._pass is not None
        if all_agree(fits):
            self._kept = self._pass
        else:
            self.budget = 0
            self.kept_bytes = 0
        self._pass = None
        return self.active
