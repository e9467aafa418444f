"""pipelines.decode.convert: whole-frame conversion is bit-identical to PyAV's to_ndarray; a box is
exact without scaling and the same picture region with scaling; transforms.source_box."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from pipelines.decode.convert import FrameConverter, scaled_size
from pipelines.synth.generate import encode_mp4, render_frames, sample_spec
from pipelines.transforms import source_box

W, H = 160, 96


@pytest.fixture(scope="module")
def frames() -> list[av.VideoFrame]:
    spec = sample_spec(np.random.default_rng(2), "drift_right", num_frames=12, size=(W, H))
    content = encode_mp4(render_frames(spec), 25, gop=6, bframes=2)
    with av.open(io.BytesIO(content)) as c:
        return list(c.decode(video=0))


@pytest.mark.parametrize("size", [None, (W, H), (107, 64), (133, 80), (213, 128), (61, 37)])
def test_whole_frame_is_bit_identical_to_to_ndarray(frames, size):
    convert = FrameConverter(size=size)
    for frame in frames:
        kwargs = {} if size is None else {"width": size[0], "height": size[1]}
        np.testing.assert_array_equal(convert(frame), frame.to_ndarray(format="rgb24", **kwargs))


def test_short_side_is_scaled_size(frames):
    assert FrameConverter(short_side=80)(frames[0]).shape == (80, 133, 3)
    assert scaled_size(W, H, 80) == (133, 80)


@pytest.mark.parametrize("box", [(0, 0, 48, 48), (33, 17, 48, 48), (112, 48, 48, 48)])
def test_unscaled_box_is_the_crop_of_the_whole_frame(frames, box):
    x, y, w, h = box
    convert = FrameConverter(size=(w, h), box=box)
    for frame in frames[:4]:
        whole = frame.to_ndarray(format="rgb24")
        np.testing.assert_array_equal(convert(frame), whole[y : y + h, x : x + w])


def _mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int32) - b.astype(np.int32)).mean())


@pytest.mark.parametrize(("short", "y", "x"), [(64, 8, 40), (80, 20, 60), (128, 50, 120)])
def test_scaled_box_shows_the_crop_of_the_scaled_frame(frames, short, y, x):
    """Same region at the same scale: closer to the exact crop than any crop 3+ px away."""
    size = 48
    scaled = scaled_size(W, H, short)
    box = source_box(W, H, scaled, y, x, size)
    convert = FrameConverter(size=(size, size), box=box)
    for frame in frames[::4]:
        got = convert(frame)
        assert got.shape == (size, size, 3) and got.dtype == np.uint8
        whole = frame.to_ndarray(format="rgb24", width=scaled[0], height=scaled[1])
        exact = _mean_diff(got, whole[y : y + size, x : x + size])
        for dy, dx in ((3, 0), (0, 3), (-3, 0), (0, -3), (4, 4)):
            yy, xx = min(max(y + dy, 0), scaled[1] - size), min(max(x + dx, 0), scaled[0] - size)
            if (yy, xx) != (y, x):
                assert exact < _mean_diff(got, whole[yy : yy + size, xx : xx + size])
        assert exact < 6.0


def test_other_pixel_formats_fall_back_to_whole_frame_scaling(frames):
    frame = frames[3].reformat(format="yuv444p")
    box = source_box(W, H, (213, 128), 50, 120, 48)
    got = FrameConverter(size=(48, 48), box=box)(frame)
    ref = FrameConverter(size=(48, 48), box=box)(frames[3])
    assert got.shape == (48, 48, 3) and _mean_diff(got, ref) < 6.0


def test_converter_errors():
    with pytest.raises(ValueError, match="a box needs an output size"):
        FrameConverter(box=(0, 0, 8, 8))
    with pytest.raises(ValueError, match="at most one of size and short_side"):
        FrameConverter(size=(8, 8), short_side=8)
    with pytest.raises(ValueError, match=r"box must be"):
        FrameConverter(size=(8, 8), box=(0, 0, 0, 8))


def test_box_outside_the_frame_is_named(frames):
    with pytest.raises(ValueError, match=r"box \(150, 0, 20, 20\) is outside the 160x96"):
        FrameConverter(size=(20, 20), box=(150, 0, 20, 20))(frames[0])


def test_source_box():
    assert source_box(456, 256, (456, 256), 17, 33, 224) == (33, 17, 224, 224)
    rng = np.random.default_rng(0)
    for _ in range(200):
        w, h = int(rng.integers(100, 1300)), int(rng.integers(100, 800))
        short = int(rng.integers(64, 400))
        scaled = scaled_size(w, h, short)
        size = int(rng.integers(16, min(scaled) + 1))
        y, x = (
            int(rng.integers(0, scaled[1] - size + 1)),
            int(rng.integers(0, scaled[0] - size + 1)),
        )
        bx, by, bw, bh = source_box(w, h, scaled, y, x, size)
        if scaled == (w, h):
            assert (bx, by, bw, bh) == (x, y, size, size)
            continue
        assert bx % 2 == by % 2 == bw % 2 == bh % 2 == 0
        assert min(bx, by) >= 0 and bx + bw <= w and by + bh <= h
        fx, fy = w / scaled[0], h / scaled[1]
        assert abs(bw - size * fx) <= 1 + 1e-9 or bw == w - w % 2
        assert abs(bh - size * fy) <= 1 + 1e-9 or bh == h - h % 2
        assert abs(bx - x * fx) <= 1 + 1e-9 or bx + bw >= w - 2
        assert abs(by - y * fy) <= 1 + 1e-9 or by + bh >= h - 2
