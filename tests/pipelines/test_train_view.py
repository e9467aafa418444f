"""views.train_clip(s) in both modes, and the loader's DecodeOptions (threads, train_view,
clips_per_decode) reaching the decode tasks' function."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pipelines import views
from pipelines.decode.frames import decode_frames
from pipelines.loader.dataset import clip_window, decode_batch, record_rng
from pipelines.loader.options import DecodeOptions
from pipelines.views import train_clip, train_clips, window_indices
from raysf.clip_spec import ClipSpec

W, H = 128, 72  # the orbit_record fixture's video (conftest.py)


@pytest.fixture
def record(orbit_record) -> dict:
    return orbit_record


def _spec(**changes) -> ClipSpec:
    base = ClipSpec(
        slow_frames=4, tau=8, alpha=4, num_val_clips=1, num_test_clips=2, crop_size=48
    ).replace(short_side_range=(48, 64), test_short_side=48)
    return base.replace(**changes)


def test_unscaled_crop_first_is_bit_identical_and_draws_the_same(record):
    spec = _spec(short_side_range=(H, H))  # the stored size: no scaling
    fast, slow = window_indices(spec, 20, record["num_frames"], record["fps"])
    for seed in range(8):
        a_rng, b_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        exact = train_clip(record, fast, slow, spec, a_rng)
        first = train_clip(record, fast, slow, spec, b_rng, crop_first=True)
        for a, b in zip(exact, first, strict=True):
            np.testing.assert_array_equal(a, b)
        assert a_rng.integers(1 << 30) == b_rng.integers(1 << 30)  # same number of draws


def test_scaled_crop_first_shows_the_same_region(record):
    spec = _spec(flip=False)
    fast, slow = window_indices(spec, 20, record["num_frames"], record["fps"])
    for seed in range(6):
        a_rng, b_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        exact = train_clip(record, fast, slow, spec, a_rng)
        first = train_clip(record, fast, slow, spec, b_rng, crop_first=True)
        assert [x.shape for x in first] == [(4, 48, 48, 3), (16, 48, 48, 3)]
        diff = np.abs(exact[1].astype(np.int32) - first[1].astype(np.int32)).mean()
        assert diff < 6.0
        np.testing.assert_array_equal(first[0], first[1][::4])
        assert a_rng.integers(1 << 30) == b_rng.integers(1 << 30)


def test_frame_size_read_from_the_content_without_columns(record):
    spec = _spec()
    bare = {k: v for k, v in record.items() if k not in ("width", "height")}
    fast, slow = window_indices(spec, 20, record["num_frames"], record["fps"])
    a = train_clip(bare, fast, slow, spec, np.random.default_rng(3), crop_first=True)
    b = train_clip(record, fast, slow, spec, np.random.default_rng(3), crop_first=True)
    np.testing.assert_array_equal(a[1], b[1])


def test_decode_options_threads():
    assert DecodeOptions().decoder_threads == 1
    assert DecodeOptions(num_cpus=4).decoder_threads == 4
    assert DecodeOptions(num_cpus=0.5).decoder_threads == 1
    assert DecodeOptions(num_cpus=4, threads=2).decoder_threads == 2
    with pytest.raises(ValueError, match="threads: must be an int >= 1 or null"):
        DecodeOptions(threads=0)
    with pytest.raises(ValueError, match="train_view: must be one of"):
        DecodeOptions(train_view="crop")  # type: ignore[arg-type]


@pytest.mark.parametrize("train_view", ["rgb", "crop_first"])
def test_decode_batch_train_with_options(record, train_view):
    batch = {k: np.array([record[k], record[k]], dtype=object) for k in record}
    batch["clip_index"] = np.array([0, 1], dtype=object)
    decode = DecodeOptions(threads=1, train_view=train_view)
    out = decode_batch(batch, _spec(), "train", 11, decode=decode)
    # Slow is a subset of Fast under every rule: only the Fast frames are shipped
    assert set(out) == {"fast", "label", "video_id", "clip_index", "spatial_index"}
    assert out["fast"].shape == (2, 16, 48, 48, 3)
    assert out["label"].tolist() == [2, 2] and out["spatial_index"].tolist() == [-1, -1]
    again = decode_batch(batch, _spec(), "train", 11, decode=replace(decode, threads=2))
    np.testing.assert_array_equal(out["fast"], again["fast"])  # threads never change pixels
    # the rows are the Fast pathway of views.train_clips with the same draws, bit for bit
    rng = record_rng(11, str(record["video_id"]), 0)
    window = clip_window(record, _spec(), "train", rng)
    [(clip, _)] = train_clips(record, *window, _spec(), rng, crop_first=train_view == "crop_first")
    np.testing.assert_array_equal(out["fast"][0], clip[1])


def test_val_mode_threads_one_is_exact(record):
    batch = {k: np.array([record[k]], dtype=object) for k in record}
    spec = _spec()
    out = decode_batch(batch, spec, "val", None, decode=DecodeOptions(threads=1))
    fast, _ = window_indices(spec, 10, record["num_frames"], record["fps"])
    full = decode_frames(record["content"], fast, short_side=48)
    x = (full.shape[2] - 48) // 2
    np.testing.assert_array_equal(out["fast"][0], full[:, :, x : x + 48])


@pytest.mark.parametrize("crop_first", [False, True])
def test_one_of_train_clips_is_train_clip(record, crop_first):
    spec = _spec()
    fast, slow = window_indices(spec, 20, record["num_frames"], record["fps"])
    a_rng, b_rng = np.random.default_rng(4), np.random.default_rng(4)
    [(many, _)] = train_clips(record, fast, slow, spec, a_rng, count=1, crop_first=crop_first)
    one = train_clip(record, fast, slow, spec, b_rng, crop_first=crop_first)
    for a, b in zip(many, one, strict=True):
        np.testing.assert_array_equal(a, b)
    assert a_rng.integers(1 << 30) == b_rng.integers(1 << 30)


@pytest.mark.parametrize("crop_first", [False, True])
def test_train_clips_decode_once_and_each_view_is_a_train_clip(record, crop_first, monkeypatch):
    """Three views from one decode: each is the view train_clip gives for the same short side
    and its own crop and flip draws; the decoder runs once."""
    spec = _spec()
    fast, slow = window_indices(spec, 20, record["num_frames"], record["fps"])
    calls = []
    real = views.decode_clip_boxes if crop_first else views.decode_clip
    name = "decode_clip_boxes" if crop_first else "decode_clip"
    monkeypatch.setattr(views, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    views_ = train_clips(record, fast, slow, spec, np.random.default_rng(9), count=3,
                         crop_first=crop_first)  # fmt: skip
    clips = [v.clip for v in views_]
    assert len(calls) == 1 and len(clips) == 3
    assert all([x.shape for x in c] == [(4, 48, 48, 3), (16, 48, 48, 3)] for c in clips)
    assert not np.array_equal(clips[0][1], clips[1][1])  # their own crops (or flips)
    monkeypatch.undo()
    # Replay the draws: the short side once, then each view's crop and flip.
    rng = np.random.default_rng(9)
    short = views.random_short_side(rng, *spec.short_side_range)
    fixed = spec.replace(short_side_range=(short, short))
    for clip in clips:
        state = rng.bit_generator.state
        replay = np.random.default_rng()
        replay.bit_generator.state = state
        replay.integers(short, short + 1)  # stands in for the short-side draw
        expected = train_clip(record, fast, slow, fixed, replay, crop_first=crop_first)
        for a, b in zip(clip, expected, strict=True):
            np.testing.assert_array_equal(a, b)
        rng = replay  # past this view's crop and flip


def test_train_clips_needs_a_positive_count(record):
    spec = _spec()
    fast, slow = window_indices(spec, 20, record["num_frames"], record["fps"])
    with pytest.raises(ValueError, match="count must be >= 1"):
        train_clips(record, fast, slow, spec, np.random.default_rng(0), count=0)
    with pytest.raises(ValueError, match="clips_per_decode: must be an int >= 1"):
        DecodeOptions(clips_per_decode=0)


def test_decode_batch_cuts_clips_per_decode_rows_per_record(record):
    batch = {k: np.array([record[k], record[k]], dtype=object) for k in record}
    batch["clip_index"] = np.array([0, 1], dtype=object)
    three = DecodeOptions(threads=1, clips_per_decode=3)
    out = decode_batch(batch, _spec(), "train", 11, decode=three)
    assert out["fast"].shape == (6, 16, 48, 48, 3)
    assert out["clip_index"].tolist() == [0, 0, 0, 1, 1, 1]
    assert out["label"].tolist() == [2] * 6 and out["spatial_index"].tolist() == [-1] * 6
    one = decode_batch(batch, _spec(), "train", 11, decode=DecodeOptions(threads=1))
    np.testing.assert_array_equal(out["fast"][[0, 3]], one["fast"])  # first view: K=1's row
    val = decode_batch(batch, _spec(), "val", None, decode=three)
    assert val["fast"].shape[0] == 2  # val and test: one row per record as before
