"""Spatial transforms keep Slow and Fast aligned; normalisation values and layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.transforms import (
    center_crop,
    horizontal_flip,
    random_crop,
    random_horizontal_flip,
    random_short_side,
    spatial_crop,
    three_crops,
    to_model_inputs,
)


def _clip(h=40, w=60, t_slow=4, alpha=4):
    """Fast frames whose pixel values encode (t, y, x); slow = every alpha-th fast frame."""
    t, y, x = np.meshgrid(np.arange(t_slow * alpha), np.arange(h), np.arange(w), indexing="ij")
    fast = np.stack([t * 10 % 256, y * 3 % 256, x * 4 % 256], axis=-1).astype(np.uint8)
    return [fast[::alpha].copy(), fast]


def test_random_crop_same_window_on_slow_and_fast():
    rng = np.random.default_rng(0)
    for _ in range(20):
        slow, fast = random_crop(_clip(), 24, rng)
        assert slow.shape == (4, 24, 24, 3) and fast.shape == (16, 24, 24, 3)
        np.testing.assert_array_equal(slow, fast[::4])
    corners = {
        (int(s[0, 0, 0, 1]) // 3, int(s[0, 0, 0, 2]) // 4)
        for s, _ in (random_crop(_clip(), 24, rng) for _ in range(50))
    }
    assert len(corners) > 10  # the crop position really varies


def test_three_crops_cover_left_centre_right_along_long_side():
    left, centre, right = three_crops(_clip(h=40, w=60), 40)
    xs = [int(c[1][0, 0, 0, 2]) // 4 for c in (left, centre, right)]
    assert xs == [0, 10, 20]
    top, mid, bottom = three_crops(_clip(h=60, w=40), 40)
    ys = [int(c[1][0, 0, 0, 1]) // 3 for c in (top, mid, bottom)]
    assert ys == [0, 10, 20]
    np.testing.assert_array_equal(center_crop(_clip(), 40)[1], centre[1])
    with pytest.raises(ValueError, match="spatial_index"):
        spatial_crop(_clip(), 20, 3, 3)
    with pytest.raises(ValueError, match="larger than the frames"):
        center_crop(_clip(), 41)


def test_flip_is_the_same_for_both_pathways():
    slow, fast = horizontal_flip(_clip())
    np.testing.assert_array_equal(fast[:, :, 0], _clip()[1][:, :, -1])
    np.testing.assert_array_equal(slow, fast[::4])
    rng = np.random.default_rng(1)
    flipped = 0
    for _ in range(40):
        s, f = random_horizontal_flip(_clip(), rng)
        np.testing.assert_array_equal(s, f[::4])
        flipped += int(f[0, 0, 0, 2] != 0)
    assert 5 < flipped < 35


def test_random_short_side_in_range():
    rng = np.random.default_rng(0)
    values = {random_short_side(rng, 256, 320) for _ in range(300)}
    assert min(values) >= 256 and max(values) <= 320 and len(values) > 30
    with pytest.raises(ValueError):
        random_short_side(rng, 300, 256)


def test_to_model_inputs_layout_and_values():
    rng = np.random.default_rng(0)
    batch = {
        "slow": rng.integers(0, 256, size=(2, 4, 8, 8, 3), dtype=np.uint8),
        "fast": rng.integers(0, 256, size=(2, 16, 8, 8, 3), dtype=np.uint8),
    }
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.25, 0.5)
    slow, fast = to_model_inputs(batch, mean, std, "cpu")
    assert slow.shape == (2, 3, 4, 8, 8) and fast.shape == (2, 3, 16, 8, 8)
    assert slow.dtype == torch.float32
    for c in range(3):
        expected = (batch["fast"][..., c].astype(np.float64) / 255 - mean[c]) / std[c]
        np.testing.assert_allclose(fast[:, c].numpy(), expected, rtol=1e-5, atol=1e-5)
    cl = to_model_inputs(
        {k: torch.from_numpy(v) for k, v in batch.items()}, mean, std, channels_last=True
    )
    assert cl[0].is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(cl[0], slow)
    with pytest.raises(ValueError, match="uint8"):
        to_model_inputs({"slow": batch["slow"].astype(np.float32), "fast": batch["fast"]})
