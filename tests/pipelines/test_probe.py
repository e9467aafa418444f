"""pipelines.probe: metadata of good videos, reason category of every kind of bad input."""

from __future__ import annotations

import pytest

from pipelines.probe import REJECT_CATEGORIES, RejectError, probe_video, validate_length

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
