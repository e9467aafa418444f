"""A stream an MP4 cannot hold as it is is re-encoded, that video alone, and said so; every
input is counted under its ``<container>/<codec>`` (no Ray: one video at a time, and the shard
markers and manifest from hand-made rows; the whole ingest of a mixed folder is in
test_ingest.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import pipelines.ingest.clips as clips_module
from pipelines.ingest import config as ingest_config
from pipelines.ingest import formats, shards
from pipelines.ingest.clips import process_video
from pipelines.ingest.probe import probe_video
from pipelines.ingest.sources import SourceEntry

SMALL = ["clip.slow_frames=4", "clip.tau=4", "clip.alpha=2", "clip.target_fps=null"]


def _cfg(*overrides: str) -> ingest_config.IngestConfig:
    return ingest_config.load_ingest_config(None, [*SMALL, "clip.num_test_clips=2", *overrides])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_vp8_webm_is_reencoded_and_said_so(tmp_path, ingest_media, split):
    """VP8 has no MP4 mapping: the video is re-encoded (H.264, the fallback profile, its own
    size and every frame), not rejected; the rows name why and what came in, and the record's
    frames are the source's up to the re-encode's loss."""
    path = ingest_media.write_format(tmp_path / "v.webm", "vp8.webm")
    rows, reject = process_video(SourceEntry(str(path), "v", split, "a"), 0, False, _cfg())
    assert reject is None and len(rows) == (1 if split == "train" else 2)
    source = ingest_media.decode(path.read_bytes())
    for row in rows:
        assert row["stored_as"] == "reencoded" and "vp8" in row["stored_reason"]
        assert str(path) not in row["stored_reason"]  # the path is listed beside it
        assert row["source_format"] == "webm/vp8" and row["codec"] == "h264"
        assert (row["width"], row["height"]) == (64, 48)
        record = ingest_media.decode(row["content"])
        assert len(record) == row["num_frames"]
        for i, frame in enumerate(record):
            assert _psnr(frame, source[row["source_start_frame"] + i]) > 35
    if split == "train":  # every source frame, at the source's rate
        assert rows[0]["num_frames"] == 40 and rows[0]["fps"] == 25.0


@pytest.mark.parametrize(
    ("kind", "codec"),
    [
        ("wmv2.avi", "wmv2"),
        ("flv1.flv", "flv"),
        ("huffyuv.avi", "huffyuv"),
        ("rawvideo.avi", "rawvideo"),
        ("prores.mov", "prores"),
        ("qtrle.mov", "qtrle"),
    ],
)
def test_other_codecs_mp4_cannot_hold_are_reencoded(tmp_path, ingest_media, kind, codec):
    """The reason is the muxer's own (it names FFmpeg's codec id: ``flv`` for FLV1)."""
    path = ingest_media.write_format(tmp_path / f"v.{kind}", kind, num_frames=20)
    rows, reject = process_video(SourceEntry(str(path), "v", "train", "a"), 0, False, _cfg())
    assert reject is None, reject
    assert rows[0]["stored_as"] == "reencoded" and rows[0]["codec"] == "h264"
    assert rows[0]["stored_reason"] == f"'mp4' format does not support '{codec}' codec"
    assert rows[0]["source_format"] == EXPECTED_FORMATS[kind]
    assert rows[0]["num_frames"] == 20


@pytest.mark.parametrize(
    ("overrides", "stored_as", "reason"),
    [
        ((), "copied", ""),
        (("reencode.profile=train",), "reencoded", "ingest.reencode profile train"),
    ],
)
def test_an_h264_mp4_is_copied_unless_the_config_reencodes(
    tmp_path, ingest_media, overrides, stored_as, reason
):
    path = ingest_media.write_mp4(tmp_path / "v.mp4", num_frames=40)
    entry = SourceEntry(str(path), "v", "train", "a")
    rows, reject = process_video(entry, 0, False, _cfg(*overrides))
    assert reject is None and len(rows) == 1
    assert (rows[0]["stored_as"], rows[0]["stored_reason"]) == (stored_as, reason)
    assert rows[0]["source_format"] == "mp4/h264"


def test_a_failed_fallback_reencode_is_a_processing_error(tmp_path, ingest_media, monkeypatch):
    def refuse(*args, **kwargs):
        raise ValueError("no frame to re-encode")

    monkeypatch.setattr(clips_module, "reencode_video", refuse)
    path = ingest_media.write_format(tmp_path / "v.webm", "vp8.webm")
    rows, reject = process_video(SourceEntry(str(path), "v", "train", "a"), 0, False, _cfg())
    assert rows == [] and reject["reason"] == "processing_error"
    assert reject["source_format"] == "webm/vp8"


def test_reject_rows_say_what_was_known_of_the_format(tmp_path, ingest_media):
    """Never read: ``unread``; read but not probed to a codec: ``<container>/unknown``."""
    cfg = _cfg()
    cut = ingest_media.write_format(tmp_path / "full.webm", "vp9.webm", num_frames=60)
    (tmp_path / "cut.webm").write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    seen: dict[str, str] = {}
    got = {}
    for name in ("missing.webm", "cut.webm", "noise.mp4"):
        entry = SourceEntry(str(tmp_path / name), name, "train", "a")
        _, reject = process_video(entry, 0, False, cfg, seen)
        got[name] = (reject["reason"], reject["source_format"], seen["source_format"])
    assert got == {
        "missing.webm": ("missing", "unread", "unread"),
        "cut.webm": ("truncated", "webm/unknown", "webm/unknown"),
        "noise.mp4": ("unreadable", "unknown/unknown", "unknown/unknown"),
    }


EXPECTED_FORMATS = {
    "vp9.webm": "webm/vp9",
    "vp9-alpha.webm": "webm/vp9",
    "hevc10.mp4": "mp4/hevc",
    "av1-10.mkv": "mkv/av1",
    "vp8.webm": "webm/vp8",
    "av1.mkv": "mkv/av1",
    "av1.mp4": "mp4/av1",
    "h264.mkv": "mkv/h264",
    "mpeg4.avi": "avi/mpeg4",
    "hevc.mp4": "mp4/hevc",
    "mjpeg.mov": "mov/mjpeg",
    "h264.ts": "mpegts/h264",
    "h264.flv": "flv/h264",
    "wmv2.avi": "avi/wmv2",
    "flv1.flv": "flv/flv1",
    "huffyuv.avi": "avi/huffyuv",
    "rawvideo.avi": "avi/rawvideo",
    "prores.mov": "mov/prores",
    "qtrle.mov": "mov/qtrle",
}


def test_every_kind_is_named_by_its_container_and_codec(tmp_path, ingest_media):
    assert set(EXPECTED_FORMATS) == set(ingest_media.format_kinds)
    for kind, expected in EXPECTED_FORMATS.items():
        data = ingest_media.write_format(tmp_path / f"v.{kind}", kind, num_frames=12).read_bytes()
        assert formats.source_format(data, probe_video(data, kind).codec) == expected, kind
    mp4 = ingest_media.write_mp4(tmp_path / "v.mp4", num_frames=12).read_bytes()
    assert formats.source_format(mp4, "h264") == "mp4/h264"
    assert formats.container_of(b"FLV\x01\x05" + bytes(200)) == "flv"
    assert formats.container_of((b"\x47" + bytes(187)) * 2) == "mpegts"
    assert formats.source_format(b"\x00" * 64, None) == "unknown/unknown"


def _clip(vid: str, split: str, fmt: str, how: str = "copied", reason: str = "") -> dict:
    return {
        "split": split,
        "video_id": vid,
        "label": "a",
        "source_uri": f"/v/{vid}",
        "source_format": fmt,
        "stored_as": how,
        "stored_reason": reason,
    }


def _reject(vid: str, split: str, fmt: str, reason: str = "truncated") -> dict:
    return {"split": split, "video_id": vid, "label": "a", "reason": reason, "source_format": fmt}


def test_markers_and_manifest_count_inputs_per_format():
    """Each video once (a test video's windows are one input); the fallback re-encodes are
    listed, the config's are only counted."""
    clips = [_clip("t1", "test", "webm/vp9")] * 3 + [
        _clip("a", "train", "webm/vp8", "reencoded", "'mp4' format does not support 'vp8' codec"),
        _clip("b", "train", "mp4/h264", "reencoded", formats.configured_reason("train")),
    ]
    rejects = [_reject("c", "train", "webm/unknown"), _reject("d", "train", "unread", "missing")]
    transient = [_reject("e", "train", "unread", "transient")]
    one = shards.shard_marker("shard-00000", Counter(train=5, test=1), clips, rejects, transient)
    two = shards.shard_marker(
        "shard-00001", Counter(train=1), [_clip("f", "train", "webm/vp9")], [], []
    )
    assert one["formats"]["webm/vp9"] == {
        "inputs": 1,
        "copied": 1,
        "reencoded": 0,
        "rejected": 0,
        "transient": 0,
    }
    assert one["formats"]["unread"] == {
        "inputs": 2,
        "copied": 0,
        "reencoded": 0,
        "rejected": 1,
        "transient": 1,
    }
    assert one["reencoded"] == [
        {
            "split": "train",
            "video_id": "a",
            "path": "/v/a",
            "reason": "'mp4' format does not support 'vp8' codec",
        }
    ]
    manifest = shards.build_manifest(
        markers=[two, one],
        classes=["a"],
        listing_fingerprint="x",
        config={"clip_spec": {}, "segment": {}, "reencode": None},
        num_inputs=7,
    )
    counts = manifest["formats"]
    assert sorted(counts) == ["mp4/h264", "unread", "webm/unknown", "webm/vp8", "webm/vp9"]
    assert counts["webm/vp9"]["inputs"] == counts["webm/vp9"]["copied"] == 2
    assert counts["mp4/h264"]["reencoded"] == counts["webm/vp8"]["reencoded"] == 1
    assert sum(c["inputs"] for c in counts.values()) == manifest["counts"]["inputs"] == 7
    for c in counts.values():
        assert c["inputs"] == c["copied"] + c["reencoded"] + c["rejected"] + c["transient"]
    assert [r["video_id"] for r in manifest["reencoded"]] == ["a"]
    assert formats.compact(counts)["webm/vp9"] == {"inputs": 2, "copied": 2}


def test_a_leak_rejected_video_moves_from_stored_to_rejected():
    clips = [
        _clip("a", "train", "webm/vp8", "reencoded", "no vp8 in mp4"),
        _clip("b", "train", "webm/vp9"),
    ]
    marker = shards.shard_marker("shard-00000", Counter(train=2), clips, [], [])
    moved = formats.leak_rejected(marker, {("train", "a")})
    assert moved["formats"]["webm/vp8"] == {
        "inputs": 1,
        "copied": 0,
        "reencoded": 0,
        "rejected": 1,
        "transient": 0,
    }
    assert moved["formats"]["webm/vp9"]["copied"] == 1
    assert moved["reencoded"] == [] and moved["stored"] == [["train", "b", "webm/vp9", "copied"]]
