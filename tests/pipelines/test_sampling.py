"""Pure index math of pipelines.sampling."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines import sampling


def _pyslowfast_linspace(start, end, n_fast, n_slow, num_frames):
    """PySlowFast's temporal_sampling + pack_pathway_output, written out independently."""
    fast = [int(v) for v in np.linspace(start, end, n_fast)]
    fast = [min(max(v, 0), num_frames - 1) for v in fast]
    slow_pos = [int(v) for v in np.linspace(0, n_fast - 1, n_slow)]
    return fast, [fast[p] for p in slow_pos]


def test_stride_rule_exact_strides_and_slow_subset():
    fast, slow = sampling.clip_indices(10, 300, slow_frames=8, tau=16, alpha=8)
    np.testing.assert_array_equal(fast, 10 + 2 * np.arange(64))
    np.testing.assert_array_equal(slow, 10 + 16 * np.arange(8))
    assert set(slow.tolist()) <= set(fast.tolist())
    assert fast.dtype == np.int32 and slow.dtype == np.int32


def test_linspace_rule_matches_pyslowfast():
    for start, T, tau, alpha, n in [(0, 8, 8, 4, 300), (17, 4, 16, 8, 100), (5, 8, 8, 8, 40)]:
        fast, slow = sampling.clip_indices(
            start, n, slow_frames=T, tau=tau, alpha=alpha, rule="linspace"
        )
        ref_fast, ref_slow = _pyslowfast_linspace(start, start + T * tau - 1, alpha * T, T, n)
        assert fast.tolist() == ref_fast and slow.tolist() == ref_slow


def test_video_shorter_than_window_repeats_last_frame():
    span = sampling.window_span(8, 8)
    assert span == 64 and sampling.max_start(40, span) == 0
    fast, slow = sampling.clip_indices(0, 40, slow_frames=8, tau=8, alpha=4)
    assert fast.max() == 39 and slow[-1] == 39 and np.all(np.diff(fast) >= 0)
    assert sampling.uniform_starts(40, span, 10).tolist() == [0] * 10


def test_fps_mismatch_scales_strides():
    # 60 fps video, tau measured at 30 fps: twice the native stride.
    assert sampling.window_span(8, 8, fps=60, target_fps=30) == 128
    fast, slow = sampling.clip_indices(
        0, 1000, slow_frames=8, tau=8, alpha=4, fps=60, target_fps=30
    )
    np.testing.assert_array_equal(fast, 4 * np.arange(32))
    np.testing.assert_array_equal(slow, 16 * np.arange(8))
    # 25 fps with target 30: non-integer stride, still monotone and inside the span.
    fast, _ = sampling.clip_indices(0, 1000, slow_frames=8, tau=8, alpha=4, fps=25, target_fps=30)
    assert np.all(np.diff(fast) >= 1) and fast[-1] < sampling.window_span(8, 8, 25, 30)


def test_alpha_tau_changed_at_load_time_recentres_window():
    old_span, new_span = sampling.window_span(4, 8), sampling.window_span(8, 16)
    start = sampling.rewindow(100, old_span, new_span, 400)
    assert start + new_span / 2 == 100 + old_span / 2
    assert sampling.rewindow(0, old_span, new_span, 400) == 0  # shifted to fit
    assert sampling.rewindow(368, old_span, new_span, 400) == 400 - new_span
    for alpha in (2, 4, 8):
        fast, slow = sampling.clip_indices(start, 400, slow_frames=8, tau=16, alpha=alpha)
        assert len(fast) == 8 * alpha and set(slow.tolist()) <= set(fast.tolist())


def test_uniform_test_windows_cover_start_and_end():
    starts = sampling.uniform_starts(300, 64, 10)
    assert starts[0] == 0 and starts[-1] + 64 == 300
    assert np.all(np.diff(starts) > 0)
    assert sampling.uniform_starts(300, 64, 1).tolist() == [sampling.center_start(300, 64)]


def test_random_start_range_and_errors():
    rng = np.random.default_rng(0)
    starts = {sampling.random_start(rng, 100, 32) for _ in range(500)}
    assert min(starts) == 0 and max(starts) == 68
    with pytest.raises(ValueError, match="rule"):
        sampling.clip_indices(0, 10, slow_frames=2, tau=2, alpha=2, rule="nope")
    with pytest.raises(ValueError, match="tau"):
        sampling.window_span(4, 0)


@pytest.mark.parametrize("rule", ["stride", "linspace"])
def test_slow_frames_are_the_fast_ones_at_positions_of_the_spec_alone(rule):
    positions = sampling.slow_positions(8, 4, rule)
    assert positions.shape == (8,) and positions.dtype == np.int64
    if rule == "stride":
        assert positions.tolist() == [0, 4, 8, 12, 16, 20, 24, 28]
    else:  # PySlowFast's pack_pathway_output over 32 frames
        assert positions.tolist() == [int(v) for v in np.linspace(0, 31, 8)]
    # the same positions whatever the window, frame rate or video length (clamped or not)
    for start, n, fps, target in [(0, 300, 30, None), (7, 40, 25, 30), (0, 12, 60, 30)]:
        fast, slow = sampling.clip_indices(
            start, n, slow_frames=8, tau=8, alpha=4, fps=fps, target_fps=target, rule=rule
        )
        np.testing.assert_array_equal(fast[positions], slow)
    assert sampling.slow_positions(4, 8, rule).shape == (4,)
    with pytest.raises(ValueError, match="rule must be one of"):
        sampling.slow_positions(8, 4, "every_other")


@pytest.mark.parametrize("rule", sampling.RULES)
def test_every_rule_takes_its_slow_frames_from_its_fast_ones(rule):
    """What lets the loader ship only the Fast frames: for every rule, T, alpha, tau and frame
    rate, the Slow indices are the Fast indices at ``slow_positions`` (positions in range)."""
    for slow_frames in (1, 2, 3, 4, 8, 16):
        for alpha in (1, 2, 3, 4, 8):
            positions = sampling.slow_positions(slow_frames, alpha, rule)
            assert positions.shape == (slow_frames,)
            assert positions.min() >= 0 and positions.max() < alpha * slow_frames
            assert np.all(np.diff(positions) >= 0)
            for tau, start, n, fps, target in [
                (alpha * 2, 0, 500, 30, None),
                (16, 5, 40, 25, 30),
                (3, 0, 7, 60, 30),
            ]:
                fast, slow = sampling.clip_indices(
                    start, n, slow_frames=slow_frames, tau=tau, alpha=alpha, fps=fps,
                    target_fps=target, rule=rule,
                )  # fmt: skip
                np.testing.assert_array_equal(fast[positions], slow)
                assert set(slow.tolist()) <= set(fast.tolist())
