"""Timelines as pure math: per-window scores, smoothing, the answer's schema, the options."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.synth.generate import generate
from pipelines.views import TimelineWindows
from raysf.clip_spec import ClipSpec
from training.inference.timeline import (
    TimelineOptions,
    smooth_scores,
    timeline_result,
    top_labels,
    video_timeline,
    window_scores,
)


def test_window_scores_average_each_windows_crops():
    views = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]])
    got = window_scores(views, np.array([0, 0, 1, 1]), 2)
    np.testing.assert_allclose(got, [[0.5, 0.5], [0.35, 0.65]])
    with pytest.raises(ValueError, match="windows expected"):
        window_scores(views, np.array([0, 0, 0, 0]), 2)  # window 1 has no view


def test_smoothing_is_a_centred_moving_average_with_short_ends():
    scores = np.array([[0.0], [3.0], [6.0], [9.0]])
    np.testing.assert_allclose(smooth_scores(scores, 1), scores)
    np.testing.assert_allclose(smooth_scores(scores, 3), [[1.5], [3.0], [6.0], [7.5]])
    np.testing.assert_allclose(smooth_scores(scores, 31), [[4.5]] * 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stride_s": 0.0}, "stride_s"),
        ({"stride_s": -1.0}, "stride_s"),
        ({"smooth": 2}, "smooth"),
        ({"smooth": 33}, "smooth"),
        ({"top_k": 0}, "top_k"),
    ],
)
def test_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TimelineOptions(**kwargs)


def test_result_schema_and_video_level_top5():
    windows = TimelineWindows(np.array([0, 8, 16]), span=16, stride=8, num_frames=30, fps=8.0)
    scores = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    out = timeline_result(scores, windows, ["a", "b", "c"], TimelineOptions(top_k=2), "v.mp4")
    assert out["video"] == "v.mp4" and out["num_windows"] == 3 and out["smooth"] == 1
    assert out["window_s"] == 2.0 and out["stride_s"] == 1.0
    assert [(w["start_s"], w["end_s"]) for w in out["windows"]] == [(0, 2), (1, 3), (2, 3.75)]
    assert [[t["label"] for t in w["top"]] for w in out["windows"]] == [
        ["a", "b"],
        ["b", "a"],
        ["c", "a"],
    ]
    assert out["top5"] == top_labels(scores.mean(0), ["a", "b", "c"], 5)
    assert out["top5"][0] == {"label": "b", "score": 0.366667}


def test_video_timeline_scores_every_window_once(tmp_path):
    video = generate(tmp_path, classes=1, videos_per_class=1, seed=1, frames=80, size=(64, 48))[0]
    spec = ClipSpec(
        slow_frames=4,
        tau=2,
        alpha=2,
        num_val_clips=1,
        num_test_clips=2,
        crop_size=32,
        short_side_range=(32, 40),
        test_short_side=32,
    )
    seen = []

    def score(fast):  # class 0's score: the view's mean brightness, class 1 its complement
        seen.append(fast.shape)
        level = fast.reshape(len(fast), -1).mean(1) / 255.0
        return np.stack([level, 1 - level], axis=1)

    out = video_timeline(video.path, spec, ["bright", "dark"], score, TimelineOptions(), "v")
    assert out["num_windows"] == 10  # 80 frames, windows of 8
    # 8 windows per chunk, 3 crops each
    assert seen == [(24, 8, 32, 32, 3), (6, 8, 32, 32, 3)]
    assert all(len(w["top"]) == 2 for w in out["windows"])
    assert abs(sum(t["score"] for t in out["top5"]) - 1) < 1e-5
