"""pipelines.decode.frames does less work per clip and stays frame-accurate: skipped non-reference
B-frames, no decoding past the window, one decoder thread or FFmpeg's choice."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from av.video.frame import PictureType

from pipelines.decode import frames as decode_module
from pipelines.decode.frame_table import read_frame_table
from pipelines.decode.frames import decode_av_frames, decode_frames
from pipelines.ingest.segment import EncodeSettings, reencode_video
from pipelines.synth.generate import encode_mp4, render_frames, sample_spec

NUM_FRAMES = 120
GOP = 32


def _reference(content: bytes) -> tuple[np.ndarray, list[str]]:
    """Every frame in order (no seek, one thread) and its picture type."""
    with av.open(io.BytesIO(content)) as c:
        frames = list(c.decode(video=0))
    return np.stack([f.to_ndarray(format="rgb24") for f in frames]), [
        PictureType(f.pict_type).name for f in frames
    ]


@pytest.fixture(scope="module")
def video():
    """A training-profile-like encode: non-reference B-frames, closed GOPs of 32."""
    spec = sample_spec(np.random.default_rng(7), "vibrate", num_frames=NUM_FRAMES, size=(96, 64))
    source = encode_mp4(render_frames(spec), 30, gop=NUM_FRAMES, bframes=2)
    settings = EncodeSettings(
        gop=GOP, crf=23, preset="veryfast", tune="fastdecode", bframes=3, b_pyramid=False
    )
    content = reencode_video(source, settings, short_side=64, fps=30)
    frames, types = _reference(content)
    return content, read_frame_table(content), frames, types


@pytest.mark.parametrize("threads", [1, 0])
def test_random_index_sets_match_sequential_decode(video, threads):
    content, table, reference, _ = video
    rng = np.random.default_rng(threads)
    for _ in range(20):
        start = int(rng.integers(0, NUM_FRAMES - 40))
        idx = np.unique(start + np.sort(rng.choice(40, size=int(rng.integers(1, 20)))))
        got = decode_frames(
            content, idx, frame_pts=table.pts, keyframes=table.keyframes, threads=threads
        )
        np.testing.assert_array_equal(got, reference[idx], err_msg=f"indices {idx.tolist()}")


def _spy(monkeypatch) -> list[int]:
    """Pts of every frame the decoder produces (wraps the collector of decode_av_frames)."""
    seen: list[int] = []
    original = decode_module._collect

    def collect(frames, want_pts, out):
        frames = list(frames)
        seen.extend(int(f.pts) for f in frames)
        original(frames, want_pts, out)

    monkeypatch.setattr(decode_module, "_collect", collect)
    return seen


@pytest.mark.parametrize("start", [40, 41])
def test_fast_window_skips_unshown_b_frames_and_stops_at_the_window(video, monkeypatch, start):
    content, table, reference, types = video
    idx = np.arange(start, start + 32, 2)  # a Fast pathway at stride 2
    seen = _spy(monkeypatch)
    frames = decode_av_frames(
        content, idx, frame_pts=table.pts, keyframes=table.keyframes, threads=1
    )
    np.testing.assert_array_equal(
        np.stack([f.to_ndarray(format="rgb24") for f in frames]), reference[idx]
    )
    decoded = sorted(table.index_of_pts(p) for p in seen)
    keyframe = table.keyframe_at_or_before(start)
    wanted = set(idx.tolist())
    unshown_b = [i for i in decoded if types[i] == "B" and i not in wanted]
    assert unshown_b == []  # every B-frame no pathway shows was skipped
    assert decoded[0] == keyframe
    # Past the window only the reference that the last B-frames need (x264: <= 3 B in a row).
    assert max(decoded) <= idx[-1] + 4
    skipped_b = [i for i in range(keyframe, idx[-1]) if types[i] == "B" and i not in wanted]
    assert len(skipped_b) >= 5 and len(decoded) == len(set(decoded))


def test_decode_av_frames_checks_its_arguments(video):
    content, table, _, _ = video
    kwargs = dict(frame_pts=table.pts, keyframes=table.keyframes, name="clip-3")
    with pytest.raises(ValueError, match="clip-3.*sorted and unique"):
        decode_av_frames(content, [5, 4], **kwargs)
    with pytest.raises(ValueError, match="clip-3"):
        decode_av_frames(content, [], **kwargs)
    with pytest.raises(ValueError, match="threads must be >= 0"):
        decode_av_frames(content, [4], threads=-1, **kwargs)
    assert [f.pts for f in decode_av_frames(content, [0, 33], **kwargs)] == [
        int(table.pts[0]),
        int(table.pts[33]),
    ]
