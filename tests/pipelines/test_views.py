"""The test views of a video file (prediction): every window of the clip spec, every crop; and
the windows of a timeline (``predict --timeline``, the service's ``/v1/timeline``)."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines import sampling
from pipelines.decode.frames import decode_frames
from pipelines.synth.generate import generate
from pipelines.views import spatial_views, timeline_views, timeline_windows, video_views
from raysf.clip_spec import ClipSpec


def test_video_views_cut_every_window_and_crop(tmp_path):
    video = generate(tmp_path, classes=1, videos_per_class=1, seed=5, frames=64, size=(80, 64))[0]
    spec = ClipSpec(
        slow_frames=4,
        tau=4,
        alpha=2,
        num_val_clips=1,
        num_test_clips=3,
        crop_size=32,
        short_side_range=(32, 40),
        test_short_side=40,
    )
    views = video_views(video.path, spec)
    # only the Fast frames are cut: the Slow ones are positions of them
    assert views.fast.shape == (9, 8, 32, 32, 3)
    assert list(views.batch()) == ["fast"]
    assert views.clip_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert views.spatial_index.tolist() == [0, 1, 2] * 3
    # the last window's right crop is exactly those frames, decoded alone
    start = int(sampling.uniform_starts(64, sampling.window_span(4, 4), 3)[-1])
    fast_idx, slow_idx = sampling.clip_indices(start, 64, slow_frames=4, tau=4, alpha=2)
    frames = decode_frames(video.path, fast_idx, short_side=40)  # 50x40 (w x h)
    np.testing.assert_array_equal(views.fast[-1], frames[:, 4:36, 18:50])
    slow = decode_frames(video.path, slow_idx, short_side=40)[:, 4:36, 18:50]
    np.testing.assert_array_equal(views.fast[-1][sampling.slow_positions(4, 2)], slow)


def test_one_test_crop_is_the_centre_one():
    clip = [np.zeros((2, 40, 60, 3), np.uint8), np.zeros((4, 40, 60, 3), np.uint8)]
    spec = ClipSpec(crop_size=32, short_side_range=(32, 40), test_short_side=40, num_test_crops=1)
    ((view, index),) = spatial_views(clip, spec)
    assert index == 1 and view[0].shape == (2, 32, 32, 3)
    assert [i for _, i in spatial_views(clip, spec, num_crops=3)] == [0, 1, 2]


def test_stride_starts_cover_the_video_while_a_window_fits():
    assert sampling.stride_starts(64, 16, 16).tolist() == [0, 16, 32, 48]
    assert sampling.stride_starts(64, 16, 10).tolist() == [0, 10, 20, 30, 40]  # 50.. would not fit
    assert sampling.stride_starts(10, 16, 4).tolist() == [0]  # shorter than one window
    with pytest.raises(ValueError, match="stride"):
        sampling.stride_starts(64, 16, 0)


def test_timeline_windows_times_and_stride_rounding():
    spec = ClipSpec(slow_frames=4, tau=4, alpha=2, num_val_clips=1, num_test_clips=2)
    windows = timeline_windows(64, 16.0, spec)  # span 16 frames = 1 s, default stride a span
    assert windows.starts.tolist() == [0, 16, 32, 48] and windows.window_s == 1.0
    assert windows.times() == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]
    half = timeline_windows(64, 16.0, spec, stride_s=0.52)  # 8.32 frames -> 8
    assert half.stride == 8 and half.starts.tolist() == list(range(0, 49, 8))
    short = timeline_windows(10, 16.0, spec, stride_s=0.01)  # stride at least one frame
    assert short.stride == 1 and short.times() == [(0.0, 0.625)]  # the end is the video's


def test_timeline_views_decode_each_window_in_chunks(tmp_path):
    video = generate(tmp_path, classes=1, videos_per_class=1, seed=3, frames=64, size=(80, 64))[0]
    spec = ClipSpec(
        slow_frames=4,
        tau=4,
        alpha=2,
        num_val_clips=1,
        num_test_clips=2,
        crop_size=32,
        short_side_range=(32, 40),
        test_short_side=40,
        num_test_crops=1,
    )
    windows, chunks = timeline_views(video.path, spec, stride_s=None, chunk=3)
    chunks = list(chunks)
    assert windows.starts.tolist() == [0, 16, 32, 48]
    assert [c.clip_index.tolist() for c in chunks] == [[0, 1, 2], [3]]
    assert all(c.spatial_index.tolist() == [1] * len(c.clip_index) for c in chunks)
    # window 3 (in the second chunk) is exactly its frames decoded alone, centre crop
    fast_idx, _ = sampling.clip_indices(48, 64, slow_frames=4, tau=4, alpha=2)
    frames = decode_frames(video.path, fast_idx, short_side=40)  # 50x40 (w x h)
    np.testing.assert_array_equal(chunks[1].fast[0], frames[:, 4:36, 9:41])
