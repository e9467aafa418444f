"""The validation batches a worker keeps in memory (``training.worker.val_cache``), without Ray."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.worker.val_cache import ValCache, batch_nbytes


def _batches(n: int, nbytes: int = 100) -> list[dict]:
    return [{"fast": np.zeros(nbytes, np.uint8), "label": torch.tensor([i])} for i in range(n)]


def _reader(batches: list[dict], calls: list[int]):
    def read():
        calls.append(1)
        return iter(batches)

    return read


def test_batch_nbytes_counts_arrays_and_tensors():
    batch = {"fast": np.zeros((2, 3), np.uint8), "label": torch.zeros(2, dtype=torch.int64), "k": 1}
    assert batch_nbytes(batch) == 6 + 16


def test_a_pass_that_fits_everywhere_is_kept_and_later_passes_read_nothing():
    batches, calls = _batches(3), []
    cache = ValCache(budget_bytes=10_000)
    assert list(cache.batches(_reader(batches, calls))) == batches and not cache.active
    assert cache.settle(lambda fits: fits) and cache.active
    assert cache.kept_bytes == 3 * (100 + 8)
    for _ in range(2):
        assert [b["label"].item() for b in cache.batches(_reader(batches, calls))] == [0, 1, 2]
    assert len(calls) == 1  # the first pass only


def test_a_pass_over_the_budget_streams_and_stops_trying():
    batches, calls = _batches(3), []
    cache = ValCache(budget_bytes=250)  # two batches fit, the third does not
    assert len(list(cache.batches(_reader(batches, calls)))) == 3  # every batch still comes out
    assert not cache.settle(lambda fits: fits) and cache.budget == 0
    assert len(list(cache.batches(_reader(batches, calls)))) == 3 and len(calls) == 2

    def no_collective(fits):
        raise AssertionError("settle must not all-reduce once the cache is off")

    assert not cache.settle(no_collective)


def test_one_rank_over_the_budget_switches_the_cache_off_on_all():
    """``all_agree`` stands for the all-reduce: another rank's share did not fit."""
    batches, calls = _batches(2), []
    cache = ValCache(budget_bytes=10_000)
    list(cache.batches(_reader(batches, calls)))
    seen = []
    assert not cache.settle(lambda fits: seen.append(fits) or False)
    assert seen == [True] and not cache.active
    list(cache.batches(_reader(batches, calls)))
    assert len(calls) == 2


def test_budget_zero_never_keeps_and_a_negative_budget_is_refused():
    batches, calls = _batches(2), []
    cache = ValCache(budget_bytes=0)
    for _ in range(2):
        assert len(list(cache.batches(_reader(batches, calls)))) == 2
        assert not cache.settle(lambda fits: pytest.fail("no all-reduce with the cache off"))
    assert len(calls) == 2
    with pytest.raises(ValueError, match="budget_bytes must be >= 0"):
        ValCache(-1)
