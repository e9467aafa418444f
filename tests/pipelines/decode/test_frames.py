"""Frame accuracy of pipelines.decode.frames and the demux-only frame table."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from pipelines.decode.frame_table import read_frame_table
from pipelines.decode.frames import DecodeError, decode_clip, decode_frames, scaled_size
from pipelines.synth.generate import encode_mp4, render_frames, sample_spec

NUM_FRAMES = 150


def _video(gop: int, bframes: int, seed: int = 0, size=(96, 64)) -> bytes:
    spec = sample_spec(np.random.default_rng(seed), "orbit", num_frames=NUM_FRAMES, size=size)
    return encode_mp4(render_frames(spec), 25, gop=gop, bframes=bframes)


def _sequential(content: bytes, size=None) -> np.ndarray:
    """Reference: decode every frame in order, no seeking, no threads."""
    with av.open(io.BytesIO(content)) as c:
        out = []
        for f in c.decode(video=0):
            if size is None:
                out.append(f.to_ndarray(format="rgb24"))
            else:
                out.append(f.to_ndarray(width=size[0], height=size[1], format="rgb24"))
    return np.stack(out)


@pytest.fixture(scope="module", params=[(48, 2), (64, 3)], ids=["g48bf2", "g64bf3"])
def video(request):
    gop, bframes = request.param
    content = _video(gop, bframes)
    return gop, content, _sequential(content)


def test_frame_table_has_bframes_reordered_and_keyframes(video):
    gop, content, reference = video
    table = read_frame_table(content)
    assert table.num_frames == NUM_FRAMES == reference.shape[0]
    assert np.all(np.diff(table.pts) > 0)
    np.testing.assert_array_equal(table.keyframes, np.arange(0, NUM_FRAMES, gop))
    assert (table.width, table.height, table.fps) == (96, 64, 25.0)
    # B-frames: decode order differs from presentation order.
    with av.open(io.BytesIO(content)) as c:
        pts = [p.pts for p in c.demux(video=0) if p.pts is not None]
    assert pts != sorted(pts)
    assert table.keyframe_at_or_before(gop + 5) == gop
    assert table.index_of_pts(int(table.pts[7])) == 7


def test_frame_table_same_from_path_and_filelike(video, tmp_path):
    _, content, _ = video
    path = tmp_path / "v.mp4"
    path.write_bytes(content)
    a, b = read_frame_table(str(path)), read_frame_table(io.BytesIO(content))
    np.testing.assert_array_equal(a.pts, b.pts)
    np.testing.assert_array_equal(a.keyframes, b.keyframes)


def test_frame_table_rejects_garbage():
    with pytest.raises(ValueError, match="bytes in memory"):
        read_frame_table(b"not a video at all" * 10)


def test_random_index_sets_match_sequential_decode(video):
    gop, content, reference = video
    table = read_frame_table(content)
    rng = np.random.default_rng(0)
    for trial in range(25):
        n = int(rng.integers(1, 33))
        span = int(rng.integers(n, 80))
        start = int(rng.integers(0, NUM_FRAMES - span + 1))
        idx = np.sort(rng.integers(start, start + span, size=n))
        if trial % 3 == 0:  # start mid-GOP, past the keyframe, on a B-frame position
            idx = np.sort(np.clip(idx - idx[0] + gop + 3, 0, NUM_FRAMES - 1))
        got = decode_frames(content, idx, frame_pts=table.pts, keyframes=table.keyframes)
        assert got.shape == (n, 64, 96, 3) and got.dtype == np.uint8
        np.testing.assert_array_equal(got, reference[idx], err_msg=f"indices {idx.tolist()}")


def test_repeated_and_unsorted_indices_keep_request_order(video):
    _, content, reference = video
    idx = np.array([70, 12, 12, 149, 70, 0])
    np.testing.assert_array_equal(decode_frames(content, idx), reference[idx])


def test_scaled_output_equals_swscale_of_the_same_frame(video):
    _, content, _ = video
    idx = np.array([50, 52, 54, 99])
    w, h = scaled_size(96, 64, 40)
    assert (w, h) == (60, 40)
    expected = _sequential(content, size=(w, h))[idx]
    np.testing.assert_array_equal(decode_frames(content, idx, short_side=40), expected)
    np.testing.assert_array_equal(decode_frames(content, idx, size=(w, h)), expected)


def test_decode_clip_returns_slow_subset_of_fast(video):
    _, content, reference = video
    fast = np.arange(60, 92, 2, dtype=np.int32)
    slow = fast[::4]
    record = {"content": content, "fast_idx": fast, "slow_idx": slow, "video_id": "abc"}
    s, f = decode_clip(record)
    assert s.shape == (4, 64, 96, 3) and f.shape == (16, 64, 96, 3)
    np.testing.assert_array_equal(s, reference[slow])
    np.testing.assert_array_equal(f, reference[fast])
    # every 4th Fast frame: the Slow frames are a view of the Fast ones, not a second copy
    assert np.shares_memory(s, f)


@pytest.mark.parametrize(
    "fast, slow",
    [
        ([60, 62, 64, 66, 68, 70, 72, 74], [61, 65, 69, 73]),  # Slow frames between Fast ones
        ([60, 62, 64, 66, 68, 68, 68, 68], [60, 64, 68, 68]),  # the window runs off the end
        ([60, 62, 64, 66, 68, 70, 72, 74], [60, 62, 70, 74]),  # not evenly spaced
        ([60, 61, 64, 66, 69, 70, 72, 74], [74]),
    ],
)
def test_decode_clip_picks_each_pathway_frames_whatever_their_spacing(video, fast, slow):
    _, content, reference = video
    record = {"content": content, "fast_idx": np.array(fast), "slow_idx": np.array(slow)}
    s, f = decode_clip(record, size=(48, 32))
    expected = _sequential(content, size=(48, 32))
    np.testing.assert_array_equal(s, expected[slow])
    np.testing.assert_array_equal(f, expected[fast])


def test_errors_name_the_video(video):
    _, content, _ = video
    with pytest.raises(ValueError, match=r"clip-7.*\[0, 150\)"):
        decode_frames(content, [0, 150], name="clip-7")
    table = read_frame_table(content)
    with pytest.raises(DecodeError, match="clip-8"):
        # A frame table that does not belong to the content.
        decode_frames(
            content, [3], frame_pts=table.pts + 1, keyframes=table.keyframes, name="clip-8"
        )
    with pytest.raises(DecodeError, match="clip-9"):
        decode_frames(b"\x00" * 1000, [0], name="clip-9")
