"""Display matrices: the decoder turns every frame upright as the ``ffmpeg`` CLI shows it."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from pipelines.decode.frames import decode_frames
from pipelines.decode.orientation import UPRIGHT, Orientation
from pipelines.ingest.probe import RejectError, probe_video
from tests.video_helpers import write_lossless_rgb

F = 1 << 16
H, W = 6, 10
CODED = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)

#: Display matrix (a, b, c, d) -> the picture FFmpeg 9's command line shows for CODED
#: (``ffmpeg -i m.mov -frames:v 1 -f rawvideo -pix_fmt rgb24 -`` with its default
#: ``autorotate``), found by matching its output against the eight pixel moves.
FFMPEG_DISPLAY = {
    (1, 0, 0, 1): lambda p: p,
    (-1, 0, 0, 1): lambda p: p[:, ::-1],
    (1, 0, 0, -1): lambda p: p[::-1],
    (-1, 0, 0, -1): lambda p: p[::-1, ::-1],
    (0, 1, 1, 0): lambda p: p.transpose(1, 0, 2),
    (0, -1, 1, 0): lambda p: p.transpose(1, 0, 2)[::-1],
    (0, 1, -1, 0): lambda p: p.transpose(1, 0, 2)[:, ::-1],
    (0, -1, -1, 0): lambda p: p.transpose(1, 0, 2)[::-1, ::-1],
}


def _lossless_mov(path: Path, *, matrix=None, rotation=None, frames=3) -> Path:
    """CODED as lossless RGB H.264 in MOV: pixels compare exactly."""
    if matrix is not None:
        a, b, c, d = matrix
        matrix = [a * F, b * F, 0, c * F, d * F, 0, 0, 0, 1 << 30]
    return write_lossless_rgb(path, [CODED] * frames, matrix=matrix, rotation=rotation)


@pytest.mark.parametrize("matrix", list(FFMPEG_DISPLAY))
def test_decoded_frames_are_what_ffmpeg_displays(tmp_path, matrix):
    path = _lossless_mov(tmp_path / "m.mov", matrix=matrix)
    frames = decode_frames(str(path), [0, 2], threads=1)
    expected = FFMPEG_DISPLAY[matrix](CODED)
    assert frames.shape == (2, *expected.shape)
    assert all(np.array_equal(f, expected) for f in frames)
    probe = probe_video(path.read_bytes(), "m.mov")
    assert probe.display_size == (expected.shape[1], expected.shape[0])
    assert np.array_equal(probe.orientation.array(CODED), expected)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_is_ffmpegs_counter_clockwise_angle(tmp_path, degrees):
    """``set_display_rotation(r)`` (FFmpeg's ``av_display_rotation_set``) reads back as r,
    unmirrored, and shows CODED turned r degrees counter-clockwise."""
    path = _lossless_mov(tmp_path / "r.mov", rotation=degrees)
    probe = probe_video(path.read_bytes(), "r.mov")
    assert (probe.rotation, probe.orientation.mirrored) == (degrees, False)
    frame = decode_frames(str(path), [1], threads=1)[0]
    assert np.array_equal(frame, np.rot90(CODED, degrees // 90))


def test_scaled_decode_of_a_portrait_phone_video_is_portrait(tmp_path, ingest_media):
    path = ingest_media.write_mp4(tmp_path / "phone.mp4", width=64, height=48, rotation=90)
    frames = decode_frames(str(path), [0, 5], short_side=24, threads=1)
    assert frames.shape == (2, 32, 24, 3)  # 48x64 upright, short side 24


def test_orientation_decomposition_and_errors():
    assert UPRIGHT.is_upright and (UPRIGHT.rotation, UPRIGHT.mirrored) == (0, False)
    assert Orientation(hflip=True).mirrored and Orientation(hflip=True).rotation == 0
    assert Orientation(True, False, True).display_size(64, 48) == (48, 64)
    with pytest.raises(ValueError, match="clip.mp4: display matrix .* not a multiple of 90"):
        Orientation.from_matrix([46341, -46341, 0, 46341, 46341, 0, 0, 0, 1 << 30], "clip.mp4")


def test_a_45_degree_matrix_is_a_clear_reject(tmp_path):
    path = _lossless_mov(tmp_path / "tilt.mov", rotation=45)
    with pytest.raises(RejectError, match="undecodable: tilt.mov: display matrix"):
        probe_video(path.read_bytes(), "tilt.mov")


@pytest.mark.parametrize("fmt", ["yuv420p", "yuvj420p", "yuv444p", "gbrp", "gray"])
def test_plane_turn_moves_the_samples_libavfilter_moves(fmt):
    """The numpy turn of 8-bit planar frames equals libavfilter's ``transpose``/``hflip``/
    ``vflip`` (the path of every other format) plane by plane, odd sizes included."""
    from pipelines.decode.convert import plane_array
    from pipelines.decode.orientation import _DECOMPOSED, _FilterChain, turn_planes

    rgb = np.random.default_rng(1).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=fmt)
    for orientation in _DECOMPOSED:
        want = _FilterChain(frame, orientation).apply([frame])[0]
        got = turn_planes(frame, orientation)
        assert (got.width, got.height) == orientation.display_size(11, 7)
        assert got.format.name == want.format.name == fmt
        for a, b in zip(got.planes, want.planes, strict=True):
            assert (a.width, a.height) == (b.width, b.height)
            assert np.array_equal(
                plane_array(a)[: a.height, : a.width], plane_array(b)[: b.height, : b.width]
            )


def test_libavfilter_turns_write_plain_frames():
    """Formats turned by libavfilter (here 10-bit 4:2:2, whose chroma is halved one way only)
    come out with positive line sizes for every orientation (``vflip`` alone would not), and
    their pictures are the turned picture."""
    from pipelines.decode.orientation import _DECOMPOSED, _FilterChain

    rgb = np.random.default_rng(2).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p16le")
    source = frame.to_ndarray(format="rgb24")
    for orientation in _DECOMPOSED:
        out = _FilterChain(frame, orientation).apply([frame])[0]
        assert all(p.line_size > 0 for p in out.planes), orientation
        assert np.array_equal(out.to_ndarray(format="rgb24"), orientation.array(source))
