"""Spatial transforms keep Slow and Fast aligned; normalisation values and layout."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.transforms import (
    center_crop,
    horizontal_flip,
    random_crop,
    random_horizontal_flip,
    random_short_side,
    spatial_crop,
    three_crops,
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
