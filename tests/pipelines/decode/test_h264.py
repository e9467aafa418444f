"""pipelines.decode.h264: non-reference pictures read from NAL headers, checked against x264 output."""

from __future__ import annotations

import io
from dataclasses import replace

import av
import numpy as np
import pytest
from av.video.frame import PictureType

from pipelines.decode.h264 import avcc_length_size, is_non_reference
from pipelines.ingest.segment import REENCODE_PROFILES, reencode_video
from pipelines.synth.generate import encode_mp4, render_frames, sample_spec


def _nal(header: int, payload: bytes = b"\x88\x84") -> bytes:
    body = bytes([header]) + payload
    return len(body).to_bytes(4, "big") + body


def test_nal_headers():
    assert is_non_reference(_nal(0x01), 4)  # non-IDR slice, nal_ref_idc 0
    assert is_non_reference(_nal(0x06) + _nal(0x01), 4)  # SEI then a non-reference slice
    assert not is_non_reference(_nal(0x21), 4)  # nal_ref_idc 1
    assert not is_non_reference(_nal(0x65), 4)  # IDR slice
    assert not is_non_reference(_nal(0x01) + _nal(0x41), 4)  # one slice is a reference
    assert not is_non_reference(_nal(0x06), 4)  # no slice at all
    assert not is_non_reference(_nal(0x01)[:-1], 4)  # length runs past the end
    assert not is_non_reference(b"", 4)
    two = (3).to_bytes(2, "big") + b"\x01\x88\x84"
    assert is_non_reference(two, 2)


def test_avcc_length_size():
    assert avcc_length_size(None) is None
    assert avcc_length_size(b"") is None
    assert avcc_length_size(b"\x00\x00\x00\x01\x67\x42") is None  # Annex-B start code
    assert avcc_length_size(bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0])) == 4
    assert avcc_length_size(bytes([1, 0x64, 0, 0x1F, 0xFD, 0xE1, 0])) == 2


def _flags(content: bytes) -> tuple[dict[int, str], set[int]]:
    """pts -> picture type, and the pts of the packets flagged non-reference."""
    with av.open(io.BytesIO(content)) as c:
        stream = c.streams.video[0]
        size = avcc_length_size(stream.codec_context.extradata)
        assert size == 4
        nonref = {int(p.pts) for p in c.demux(stream) if p.pts is not None and p.size and
                  is_non_reference(p, size)}  # fmt: skip
    with av.open(io.BytesIO(content)) as c:
        types = {int(f.pts): PictureType(f.pict_type).name for f in c.decode(video=0)}
    return types, nonref


@pytest.fixture(scope="module")
def source() -> bytes:
    spec = sample_spec(np.random.default_rng(4), "orbit", num_frames=60, size=(96, 64))
    return encode_mp4(render_frames(spec), 30, gop=30, bframes=3)


def _settings(b_pyramid: bool):
    """The archive profile's x264 settings, closed GOPs of 32, at most 3 B-frames."""
    return replace(REENCODE_PROFILES["archive"], gop=32, bframes=3, b_pyramid=b_pyramid)


def test_nonref_packets_are_exactly_the_b_frames_without_pyramid(source):
    out = reencode_video(source, _settings(b_pyramid=False), short_side=64, fps=30)
    types, nonref = _flags(out)
    b_frames = {pts for pts, t in types.items() if t == "B"}
    assert len(b_frames) >= 20
    assert nonref == b_frames


def test_pyramid_b_frames_that_are_references_are_kept(source):
    out = reencode_video(source, _settings(b_pyramid=True), short_side=64, fps=30)
    types, nonref = _flags(out)
    b_frames = {pts for pts, t in types.items() if t == "B"}
    assert nonref < b_frames  # some B-frames are references in a pyramid
    assert all(types[pts] == "B" for pts in nonref)
