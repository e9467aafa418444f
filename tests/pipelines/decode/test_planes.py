"""Training views in plane form (pipelines.decode.planes): the box copied out of the decoded 4:2:0
planes bit for bit, the draws of crop-first, the loader's plane rows, and the picture the
training device makes of them against the loader's RGB paths."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from pipelines.decode.frames import decode_av_frames
from pipelines.decode.planes import (
    PLANE_COLUMNS,
    YUV_CODES,
    PlaneCutter,
    empty_plane_rows,
    plane_side,
    yuv_code,
)
from pipelines.loader.dataset import decode_batch
from pipelines.loader.options import DecodeOptions
from pipelines.transforms import source_box
from pipelines.views import train_clip, train_planes, window_indices
from raysf.clip_spec import ClipSpec
from training.device.inputs import DeviceInputs

W, H = 128, 72  # the orbit_record fixture's video (conftest.py)


@pytest.fixture
def record(orbit_record) -> dict:
    return orbit_record


def _spec(**changes) -> ClipSpec:
    base = ClipSpec(
        slow_frames=4, tau=8, alpha=4, num_val_clips=1, num_test_clips=2, crop_size=48
    ).replace(short_side_range=(48, 64), test_short_side=48)
    return base.replace(**changes)


def _planes(frame) -> list[np.ndarray]:
    return [
        np.frombuffer(p, np.uint8, count=p.line_size * p.height).reshape(p.height, -1)
        for p in frame.planes
    ]


def test_plane_side_holds_the_largest_box_plus_an_odd_offset():
    assert plane_side(224, (256, 320)) == 282  # 224 * 320 / 256 = 280, + 2
    assert plane_side(48, (48, 64)) == 66
    assert plane_side(48, (72, 72)) == 50


def test_cutter_copies_the_box_bit_for_bit_with_its_odd_offset(record):
    frames = decode_av_frames(record["content"], [12, 13, 20], threads=1)
    cutter = PlaneCutter((7, 5, 48, 40), 54)
    assert cutter.region == (1, 1, 48, 40) and not cutter.scaled
    y, uv, code = cutter.cut(frames)
    assert y.shape == (3, 54, 54) and uv.shape == (3, 2, 27, 27)
    assert code == YUV_CODES[("bt601", "limited")] == yuv_code(frames[0])
    for i, frame in enumerate(frames):
        luma, cb, cr = _planes(frame)
        np.testing.assert_array_equal(y[i, 1:41, 1:49], luma[5:45, 7:55])  # the box
        np.testing.assert_array_equal(y[i, :42, :50], luma[4:46, 6:56])  # its even cut
        np.testing.assert_array_equal(uv[i, 0, :21, :25], cb[2:23, 3:28])
        np.testing.assert_array_equal(uv[i, 1, :21, :25], cr[2:23, 3:28])
        assert not y[i, 42:].any() and not y[i, :, 50:].any()  # zero outside the copy
        assert not uv[i, :, 21:].any() and not uv[i, :, :, 25:].any()


def test_a_box_larger_than_the_buffer_is_scaled_down_to_fit(record):
    frames = decode_av_frames(record["content"], [30], threads=1)
    cutter = PlaneCutter((10, 4, 64, 60), 50)
    assert cutter.scaled and cutter.region == (0, 0, 50, 46)
    y, uv, _ = cutter.cut(frames)
    luma = _planes(frames[0])[0][4:64, 10:74].astype(np.float32)
    small = torch.nn.functional.interpolate(
        torch.from_numpy(luma)[None, None], size=(46, 50), mode="bilinear", antialias=True
    )[0, 0].numpy()
    assert np.abs(y[0, :46, :50] - small).mean() < 3.0  # the same picture, scaled
    assert not y[0, 46:].any() and uv[0, 0, :23, :25].any()


def test_bad_boxes_and_sides_are_refused(record):
    with pytest.raises(ValueError, match="box must be"):
        PlaneCutter((-2, 0, 8, 8), 50)
    with pytest.raises(ValueError, match="even and > 2"):
        PlaneCutter((0, 0, 8, 8), 51)
    frames = decode_av_frames(record["content"], [3], threads=1)
    with pytest.raises(ValueError, match="outside the 128x72 frame"):
        PlaneCutter((100, 0, 48, 48), 50).cut(frames)


def _convert(view, crop: int) -> np.ndarray:
    """The device's picture of a plane view's Fast frames, as 0-255 RGB ``(T, H, W, 3)``."""
    inputs = DeviceInputs(mean=(0, 0, 0), std=(1 / 255,) * 3, slow_positions=[0], crop_size=crop)
    y, uv = view.y, view.uv
    batch = {
        "fast_y": y[None],
        "fast_uv": uv[None],
        "region": np.asarray([view.region], np.int32),
        "flip": np.asarray([view.flip]),
        "yuv": np.asarray([view.yuv], np.int8),
    }
    return inputs.inputs(batch)[1][0].permute(1, 2, 3, 0).numpy()


@pytest.mark.parametrize("jitter", [(48, 64), (72, 72)])
def test_plane_views_draw_as_crop_first_and_show_the_same_picture(record, jitter):
    spec = _spec(short_side_range=jitter)
    fast, slow = window_indices(spec, 20, record["num_frames"], record["fps"])
    flips = set()
    for seed in range(6):
        a_rng, b_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        exact = train_clip(record, fast, slow, spec, a_rng)
        (view,) = train_planes(record, fast, slow, spec, b_rng)
        assert a_rng.integers(1 << 30) == b_rng.integers(1 << 30)  # the same draws
        assert view.y.shape[0] == view.uv.shape[0] == 16  # the Fast frames only
        picture = _convert(view, spec.crop_size)
        assert picture.shape == exact[1].shape == (16, 48, 48, 3)
        # as close to the exact path as crop-first is (sharp synthetic edges: a few levels)
        assert np.abs(picture - exact[1]).mean() < 4.0
        mirrored = _convert(replace(view, flip=not view.flip), 48)
        assert np.abs(mirrored[:, :, ::-1] - exact[1]).mean() < 4.0
        flips.add(view.flip)
    assert flips == {True, False}


def test_plane_view_regions_are_the_crop_first_boxes(record):
    spec = _spec()
    fast, slow = window_indices(spec, 20, record["num_frames"], record["fps"])
    views = train_planes(record, fast, slow, spec, np.random.default_rng(4), count=3)
    rng = np.random.default_rng(4)
    short = int(rng.integers(48, 65))
    scaled = (round(W * short / H), short)
    for view in views:
        y0 = int(rng.integers(0, scaled[1] - 48 + 1))
        x0 = int(rng.integers(0, scaled[0] - 48 + 1))
        box = source_box(W, H, scaled, y0, x0, 48)
        assert view.region == (box[0] & 1, box[1] & 1, box[2], box[3])
        assert view.flip == bool(rng.random() < 0.5)
        assert view.y.shape == (16, 66, 66) and view.uv.shape == (16, 2, 33, 33)


def test_decode_batch_ships_plane_rows_in_train_mode_only(record):
    batch = {k: np.array([record[k], record[k]], dtype=object) for k in record}
    batch["clip_index"] = np.array([0, 1], dtype=object)
    planes = DecodeOptions(threads=1, train_view="planes")
    out = decode_batch(batch, _spec(), "train", 11, decode=planes)
    ids = {"label", "video_id", "clip_index", "spatial_index"}
    assert set(out) == set(PLANE_COLUMNS) | ids  # what the trainer selects
    assert out["fast_y"].shape == (2, 16, 66, 66) and out["fast_uv"].shape == (2, 16, 2, 33, 33)
    assert out["region"].shape == (2, 4) and out["flip"].dtype == np.bool_
    assert out["yuv"].tolist() == [0, 0] and out["spatial_index"].tolist() == [-1, -1]
    two = decode_batch(batch, _spec(), "train", 11, decode=replace(planes, clips_per_decode=2))
    assert two["fast_y"].shape[0] == 4 and two["label"].tolist() == [2] * 4
    val = decode_batch(batch, _spec(), "val", None, decode=planes)
    assert val["fast"].shape == (2, 16, 48, 48, 3) and "fast_y" not in val
    empty = empty_plane_rows(_spec())  # what a batch of failed records gives
    assert set(empty) == set(out) and empty["fast_y"].shape == (0, 16, 66, 66)
    assert empty["fast_uv"].shape == (0, 16, 2, 33, 33) and empty["region"].shape == (0, 4)


def test_decode_batch_dispatches_on_train_view_once(record):
    """One value picks the train views' cut and rows: planes rows only for ``planes``."""
    batch = {k: np.array([record[k]], dtype=object) for k in record}
    for train_view, column in (("rgb", "fast"), ("crop_first", "fast"), ("planes", "fast_y")):
        out = decode_batch(batch, _spec(), "train", 3, decode=DecodeOptions(train_view=train_view))
        assert column in out and ("fast" in out) != ("fast_y" in out)
