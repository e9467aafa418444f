"""pipelines.ingest.segment: GOP-aligned stream-copy segments decode frame-accurately."""

from __future__ import annotations

import io
from dataclasses import replace

import av
import numpy as np
import pytest

from pipelines.decode.frame_table import read_frame_table
from pipelines.ingest.probe import probe_video
from pipelines.ingest.segment import (
    REENCODE_PROFILES,
    extract_segment,
    gop_bounds,
    reencode_video,
    remux_video,
)


@pytest.fixture(scope="module")
def source(tmp_path_factory, ingest_media):
    M = ingest_media
    path = M.write_mp4(
        tmp_path_factory.mktemp("seg") / "src.mp4", num_frames=60, gop=10, bframes=2, audio=True
    )
    data = path.read_bytes()
    return data, read_frame_table(data), M.decode(data)


def test_gop_bounds(source):
    _, table, _ = source
    assert gop_bounds(table, 13, 25) == (10, 30)
    assert gop_bounds(table, 10, 19) == (10, 20)
    assert gop_bounds(table, 55, 59) == (50, 60)
    with pytest.raises(ValueError, match="outside"):
        gop_bounds(table, 5, 60)


@pytest.mark.parametrize(
    ("first", "last", "pad"), [(13, 25, 0), (0, 5, 0), (30, 59, 3), (21, 22, 12)]
)
def test_segment_frames_equal_source_frames(source, first, last, pad, ingest_media):
    M = ingest_media
    data, table, frames = source
    seg = extract_segment(data, table, first, last, pad=pad)
    begin, end = gop_bounds(table, max(0, first - pad), min(59, last + pad))
    assert seg.first_frame == begin
    assert seg.table.num_frames == end - begin
    seg_frames = M.decode(seg.content)
    assert len(seg_frames) == end - begin
    for i, img in enumerate(seg_frames):
        assert np.array_equal(img, frames[begin + i]), f"segment frame {i}"
    assert seg.table.keyframes[0] == 0
    assert len(seg.content) < len(data)


def test_remux_video_keeps_every_frame_and_drops_audio(source, ingest_media):
    M = ingest_media
    data, table, frames = source
    whole = remux_video(data, table)
    assert whole.first_frame == 0 and whole.table.num_frames == 60
    with av.open(io.BytesIO(whole.content)) as c:
        assert [s.type for s in c.streams] == ["video"]
    assert all(np.array_equal(a, b) for a, b in zip(M.decode(whole.content), frames, strict=True))


def _archive(gop: int):
    """The archive profile (the x264 settings re-encodes used by default) at ``gop``."""
    return replace(REENCODE_PROFILES["archive"], gop=gop)


def test_reencode_size_rate_gop_and_determinism(source):
    data = source[0]
    out = reencode_video(data, _archive(8), short_side=32, fps=15)
    result = probe_video(out, decode_all=True)
    assert (result.width, result.height) == (42, 32)
    assert result.fps == 15.0
    assert result.num_frames == 30
    assert result.table.keyframes.tolist() == [0, 8, 16, 24]
    assert not result.has_audio
    assert reencode_video(data, _archive(8), short_side=32, fps=15) == out
    keep = probe_video(reencode_video(data, _archive(30)))
    assert (keep.num_frames, keep.width, keep.height) == (60, 64, 48)
