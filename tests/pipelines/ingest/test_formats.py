"""Real-download containers and codecs: every kind Kinetics mirrors serve is remuxed into a
record that decodes to exactly the source's frames (no Ray: the segment step alone; the whole
ingest of them is in test_ingest.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.decode.frame_table import read_frame_table
from pipelines.ingest.probe import RejectError, probe_video
from pipelines.ingest.segment import RemuxError, extract_segment, remux_video


def _write(ingest_media, tmp_path, kind: str, **kwargs) -> bytes:
    return ingest_media.write_format(tmp_path / f"v.{kind}", kind, **kwargs).read_bytes()


@pytest.mark.parametrize(
    "kind",
    [
        "vp9.webm",
        "av1.mkv",
        "av1.mp4",
        "h264.mkv",
        "mpeg4.avi",
        "hevc.mp4",
        "mjpeg.mov",
        "h264.ts",
        "h264.flv",
        "vp9-alpha.webm",
        "hevc10.mp4",
        "av1-10.mkv",
    ],
)
def test_whole_video_remux_is_frame_exact(tmp_path, ingest_media, kind):
    """The train-split record of every kind: all frames, the source's pixels, the source's
    timing (timestamps compared in seconds, each in its own time base)."""
    data = _write(ingest_media, tmp_path, kind)
    table = read_frame_table(data)
    seg = remux_video(data, table, name=kind)
    assert seg.first_frame == 0 and seg.table.num_frames == table.num_frames == 40
    source, record = ingest_media.decode(data), ingest_media.decode(seg.content)
    assert len(record) == len(source) == 40
    assert all(np.array_equal(a, b) for a, b in zip(record, source, strict=True))
    seconds = (seg.table.pts - seg.table.pts[0]) * float(seg.table.time_base)
    expected = (table.pts - table.pts[0]) * float(table.time_base)
    assert np.allclose(seconds, expected, atol=float(table.time_base) / 2 + 1e-9)


def test_a_codec_mp4_cannot_hold_is_a_remux_error_naming_it(tmp_path, ingest_media):
    """VP8 (old WebM downloads) has no MP4 mapping: the remux says so, as a RemuxError (the
    ingest then re-encodes the video, test_fallback.py)."""
    data = _write(ingest_media, tmp_path, "vp8.webm")
    with pytest.raises(RemuxError, match="vp8"):
        remux_video(data, read_frame_table(data), name="v.webm")


@pytest.mark.parametrize("kind", ["vp9.webm", "mpeg4.avi"])
def test_segment_of_a_matroska_or_avi_source_holds_its_gops(tmp_path, ingest_media, kind):
    """A val/test segment (whole GOPs around a window) of a source whose time base is not the
    MP4's: frame i of the segment is source frame ``first_frame + i``."""
    data = _write(ingest_media, tmp_path, kind, gop=10)
    table = read_frame_table(data)
    seg = extract_segment(data, table, 14, 21, name=kind)
    assert seg.first_frame <= 14 and seg.first_frame + seg.table.num_frames > 21
    assert seg.table.num_frames < table.num_frames
    source, record = ingest_media.decode(data), ingest_media.decode(seg.content)
    for i, frame in enumerate(record):
        assert np.array_equal(frame, source[seg.first_frame + i])


@pytest.mark.parametrize("kind", ["vp9.webm", "h264.mkv", "mpeg4.avi"])
def test_a_download_cut_at_half_is_truncated_naming_what_was_declared(tmp_path, ingest_media, kind):
    """Matroska declares a duration, not a frame count: a cut WebM/MKV is found from it (as an
    MP4 or AVI is from its frame count), and the whole file passes."""
    data = _write(ingest_media, tmp_path, kind, num_frames=60)
    assert probe_video(data, name=kind).num_frames == 60
    with pytest.raises(RejectError, match="declares") as caught:
        probe_video(data[: len(data) // 2], name=kind)
    assert caught.value.category == "truncated"
    assert ("2.40 s" if kind != "mpeg4.avi" else "declares 60") in str(caught.value)


def test_format_bench_smoke_reports_every_format_against_h264_mp4():
    """benchmarks/format_ingest_bench.py runs end to end (tiny videos): every format ingested,
    each rate given as a ratio to H.264 MP4 measured in the same run."""
    script = Path(__file__).resolve().parents[3] / "benchmarks" / "format_ingest_bench.py"
    done = subprocess.run(
        [sys.executable, str(script), "--smoke-test", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert set(report["formats"]) == {
        "h264.mp4",
        "vp9.webm",
        "av1.mkv",
        "h264.mkv",
        "mpeg4.avi",
        "vp8.webm",
    }
    assert report["formats"]["h264.mp4"]["train_over_h264_mp4"] == 1.0
    for row in report["formats"].values():
        assert row["train_videos_per_s"] > 0 and row["test_videos_per_s"] > 0


def test_odd_sized_and_variable_rate_webm_is_frame_exact(tmp_path, ingest_media):
    """A 321x241 VP9 WebM whose frames come at uneven intervals (1, 2, 3 ticks of 40 ms): the
    record holds every frame, the source's pixels and the source's uneven timing."""
    data = ingest_media.write_vfr(tmp_path / "vfr.webm").read_bytes()
    # Fewer frames than duration x rate is a variable rate, not a cut; half the file is a cut.
    assert probe_video(data, "vfr.webm").num_frames == 30
    with pytest.raises(RejectError, match="truncated: vfr.webm: .* ending at .* declares"):
        probe_video(data[: len(data) // 2], "vfr.webm")
    table = read_frame_table(data)
    gaps = np.diff(table.pts) * float(table.time_base)
    assert np.allclose(sorted(set(np.round(gaps, 3))), [0.04, 0.08, 0.12])
    seg = remux_video(data, table, name="vfr.webm")
    source, record = ingest_media.decode(data), ingest_media.decode(seg.content)
    assert len(record) == len(source) == 30 and record[0].shape == (241, 321, 3)
    assert all(np.array_equal(a, b) for a, b in zip(record, source, strict=True))
    seconds = (seg.table.pts - seg.table.pts[0]) * float(seg.table.time_base)
    assert np.allclose(seconds, (table.pts - table.pts[0]) * float(table.time_base), atol=1e-3)
