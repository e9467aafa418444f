"""pipelines.ingest.probe: metadata of good videos, reason category of every kind of bad input."""

from __future__ import annotations

import pytest

from pipelines.ingest.probe import REJECT_CATEGORIES, RejectError, probe_video, validate_length

EXPECTED = {
    "empty": "empty",
    "truncated": "truncated",
    "random": "unreadable",
    "audio_only": "no_video",
    "image": "image",
    "undecodable": "undecodable",
}


def test_probe_good_video_metadata(tmp_path, ingest_media):
    M = ingest_media
    path = M.write_mp4(
        tmp_path / "v.mp4", num_frames=40, fps=25, width=64, height=48, rotation=90, audio=True
    )
    result = probe_video(path.read_bytes(), str(path), decode_all=True)
    assert (result.codec, result.num_frames, result.fps) == ("h264", 40, 25.0)
    assert (result.width, result.height, result.rotation) == (64, 48, 90)
    assert result.has_audio
    assert result.duration_s == pytest.approx(1.6)
    assert result.table.keyframes.tolist() == [0, 12, 24, 36]


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_probe_rejects_bad_input_with_category(tmp_path, kind, ingest_media):
    M = ingest_media
    path = M.write_bad(kind, tmp_path / f"{kind}.mp4", tmp_path)
    with pytest.raises(RejectError) as info:
        probe_video(path.read_bytes(), str(path))
    assert info.value.category == EXPECTED[kind]
    assert info.value.category in REJECT_CATEGORIES


def test_truncated_faststart_is_truncated_not_undecodable(tmp_path, ingest_media):
    M = ingest_media
    data = M.write_mp4(tmp_path / "fs.mp4", num_frames=90, faststart=True).read_bytes()
    with pytest.raises(RejectError, match="declares 90") as info:
        probe_video(data[: len(data) // 2], "fs", decode_all=True)
    assert info.value.category == "truncated"


def test_too_short_is_a_length_check(tmp_path, ingest_media):
    M = ingest_media
    path = M.write_bad("too_short", tmp_path / "short.mp4", tmp_path)
    result = probe_video(path.read_bytes())
    assert result.num_frames == 10
    validate_length(result, 10)
    with pytest.raises(RejectError) as info:
        validate_length(result, 11, "short.mp4")
    assert info.value.category == "too_short"
    assert set(M.bad_kinds) == set(EXPECTED) | {"too_short"}


def test_unknown_category_is_a_programming_error():
    with pytest.raises(ValueError, match="nope"):
        RejectError("nope", "x")


# ---------------------------------------------------------------------------- input limits


def test_ffconcat_script_is_not_opened(tmp_path, ingest_media, monkeypatch):
    """Issue case 6: a 45-byte ``ffconcat`` text named .mp4 made FFmpeg open another file
    (relative to the working folder), whose video then ended up in the record."""
    ingest_media.write_mp4(tmp_path / "other.mp4", num_frames=30)
    monkeypatch.chdir(tmp_path)
    data = b"ffconcat version 1.0\nfile other.mp4\n"
    assert len(data) < 64
    with pytest.raises(RejectError, match="concat script") as info:
        probe_video(data, "evil.mp4")
    assert info.value.category == "container_not_allowed"


@pytest.mark.parametrize(
    ("data", "category"),
    [
        (
            b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10,\nhttp://127.0.0.1:1/seg.ts\n",
            "container_not_allowed",
        ),
        (b"<?xml version='1.0'?><MPD></MPD>", "container_not_allowed"),
        (b"OggS" + bytes(60), "container_not_allowed"),
        (b"\x89PNG\r\n\x1a\n" + bytes(60), "image"),
        (b"hello, not a video at all", "unreadable"),
    ],
)
def test_only_allowlisted_containers_are_opened(data, category):
    with pytest.raises(RejectError) as info:
        probe_video(data, "x.mp4")
    assert info.value.category == category


def test_frame_size_over_the_default_cap_is_rejected_before_decoding(tmp_path, ingest_media):
    """Issue case 6: an 8192x8192 video was accepted (one clip's decode grew memory by 660 MiB);
    the default ``limits.max_pixels`` (4096x2160) rejects anything larger from the header."""
    from pipelines.ingest.config import LimitsConfig

    path = ingest_media.write_mp4(
        tmp_path / "big.mp4", num_frames=1, width=4352, height=2048, gop=1
    )
    with pytest.raises(RejectError, match="4352x2048 = 8912896 pixels") as info:
        probe_video(path.read_bytes(), "big.mp4", max_pixels=LimitsConfig().max_pixels)
    assert info.value.category == "frame_too_large"


def test_duration_cap(tmp_path, ingest_media):
    path = ingest_media.write_mp4(tmp_path / "v.mp4", num_frames=48, fps=30)
    assert probe_video(path.read_bytes(), max_duration_s=2.0).num_frames == 48
    with pytest.raises(RejectError, match="1.6 s long") as info:
        probe_video(path.read_bytes(), "v.mp4", max_duration_s=1.0)
    assert info.value.category == "too_long"


def test_decode_every_frame_finds_damage_after_the_first_frame(tmp_path, ingest_media):
    """Bit rot in the middle of a file: the first frame (all the default probe decodes) is
    fine, a later GOP is not."""
    from pipelines.ingest.probe import decode_every_frame

    data = ingest_media.write_mp4(tmp_path / "v.mp4", num_frames=48, gop=12).read_bytes()
    decode_every_frame(data, "v.mp4")
    rotten = ingest_media.rot_middle(data)
    probe_video(rotten, "rotten.mp4")  # the first frame still decodes
    with pytest.raises(RejectError) as info:
        decode_every_frame(rotten, "rotten.mp4")
    assert info.value.category == "undecodable"
