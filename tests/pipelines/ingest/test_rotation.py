"""A phone's portrait video (landscape pictures + a 90-degree display matrix) is ingested,
loaded and predicted upright: its records, training views, test views and whole-file views
equal those of the same content stored upright (no Ray: the per-video ingest step)."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

from pipelines.decode.frames import decode_frames
from pipelines.decode.orientation import Orientation
from pipelines.ingest import config as ingest_config
from pipelines.ingest.clips import process_video
from pipelines.ingest.segment import _decode_timed
from pipelines.ingest.sources import SourceEntry
from pipelines.views import train_clip, train_planes, video_views
from tests.video_helpers import write_lossless_rgb

W, H, N = 32, 48, 40  # the upright (displayed) picture: portrait


def _upright_frame(i: int) -> np.ndarray:
    """A portrait picture with a square moving down and a colour ramp (no symmetry)."""
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = np.linspace(0, 200, W, dtype=np.uint8)[None, :]
    img[..., 2] = np.linspace(0, 250, H, dtype=np.uint8)[:, None]
    y = (2 * i) % (H - 8)
    img[y : y + 8, 4:12, 1] = 255
    return img


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    """``(upright.mp4, phone.mp4)``: the same content, the phone's stored turned clockwise
    with a 90-degree (counter-clockwise) display matrix."""
    root = tmp_path_factory.mktemp("rotation")
    upright = [_upright_frame(i) for i in range(N)]
    coded = [np.rot90(img, -1) for img in upright]
    return (
        write_lossless_rgb(root / "upright.mp4", upright, gop=10),
        write_lossless_rgb(root / "phone.mp4", coded, rotation=90, gop=10),
    )


def _cfg(*overrides: str) -> ingest_config.IngestConfig:
    base = ["clip.slow_frames=4", "clip.tau=4", "clip.alpha=2", "clip.target_fps=null"]
    base += ["clip.crop_size=24", "clip.short_side_range=[24,40]", "clip.test_short_side=28"]
    base += ["clip.num_val_clips=1", "clip.num_test_clips=2"]
    return ingest_config.load_ingest_config(None, [*base, *overrides])


def _rows(path: Path, split: str, cfg) -> list[dict]:
    rows, reject = process_video(SourceEntry(str(path), path.stem, split, "a"), 0, False, cfg)
    assert reject is None, reject
    return rows


@pytest.mark.parametrize("split", ["train", "test"])
def test_records_decode_to_the_upright_frames(pair, split):
    upright, phone = pair
    cfg = _cfg()
    for a, b in zip(_rows(upright, split, cfg), _rows(phone, split, cfg), strict=True):
        assert (b["width"], b["height"], b["rotation"]) == (W, H, 90)
        assert a["rotation"] == 0 and np.array_equal(a["fast_idx"], b["fast_idx"])
        frames = [decode_frames(r["content"], r["fast_idx"], threads=1) for r in (a, b)]
        assert frames[1].shape[1:] == (H, W, 3)
        np.testing.assert_array_equal(frames[0], frames[1])


def test_training_and_prediction_views_are_upright(pair):
    upright, phone = pair
    cfg = _cfg()
    spec = cfg.clip
    (a,), (b,) = _rows(upright, "train", cfg), _rows(phone, "train", cfg)
    fast, slow = np.asarray(a["fast_idx"]), np.asarray(a["slow_idx"])
    for crop_first in (False, True):
        views = [
            train_clip(r, fast, slow, spec, np.random.default_rng(5), crop_first=crop_first)
            for r in (a, b)
        ]
        np.testing.assert_array_equal(views[0][1], views[1][1])
    planes = [train_planes(r, fast, slow, spec, np.random.default_rng(6))[0] for r in (a, b)]
    np.testing.assert_array_equal(planes[0].y, planes[1].y)
    assert planes[0].region == planes[1].region
    predicted = [video_views(str(p), spec) for p in (upright, phone)]
    assert predicted[1].fast.shape[2:] == (24, 24, 3)
    np.testing.assert_array_equal(predicted[0].fast, predicted[1].fast)


def test_an_h264_phone_video_is_its_coded_frames_turned(tmp_path, ingest_media):
    """The usual phone video (4:2:0 H.264): the record's frames are exactly the coded frames
    turned as the matrix says (the turn moves 4:2:0 samples before the RGB conversion)."""
    path = ingest_media.write_mp4(tmp_path / "p.mp4", num_frames=40, rotation=270)
    (row,) = _rows(path, "train", _cfg())
    assert (row["width"], row["height"], row["rotation"]) == (48, 64, 270)
    with av.open(str(path)) as container:
        coded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    turn = Orientation(True, True, False)  # FFmpeg's 270: transpose, then mirror columns
    got = decode_frames(row["content"], [0, 17, 39], threads=1)
    for frame, i in zip(got, (0, 17, 39), strict=True):
        np.testing.assert_array_equal(frame, turn.array(coded[i]))


def test_a_reencoded_phone_video_is_stored_upright(pair):
    """The re-encode profiles write upright pictures (the matrix is applied, not copied): the
    encoder is given exactly the upright video's pictures, and the stored video is as close to
    them as the upright video's own re-encode (not the same bytes: swscale's RGB -> 4:2:0
    conversion depends on the input buffers' layout)."""
    upright, phone = pair
    given = [_decode_timed(p.read_bytes(), p.name)[0] for p in (upright, phone)]
    for (ta, fa), (tb, fb) in zip(*given, strict=True):
        assert ta == tb and np.array_equal(
            fa.to_ndarray(format="rgb24"), fb.to_ndarray(format="rgb24")
        )
    cfg = _cfg("reencode.profile=train", "reencode.short_side=null", "reencode.fps=null")
    (a,), (b,) = _rows(upright, "train", cfg), _rows(phone, "train", cfg)
    assert (b["width"], b["height"], b["rotation"]) == (W, H, 90)
    with av.open(io.BytesIO(b["content"])) as container:
        first = next(container.decode(video=0))
    assert Orientation.of_frame(first).is_upright and (first.width, first.height) == (W, H)
    want = np.stack([_upright_frame(i) for i in range(N)]).astype(np.float64)
    psnr = [_psnr(decode_frames(r["content"], np.arange(N), threads=1), want) for r in (a, b)]
    assert psnr[1] > 20 and abs(psnr[1] - psnr[0]) < 3.0, psnr  # sideways: ~10 dB


def _psnr(got: np.ndarray, want: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((got.astype(np.float64) - want) ** 2)))
