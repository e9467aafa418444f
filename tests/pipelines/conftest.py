"""Fixtures that write tiny real videos (good and broken) for the ingest tests, and the clip
record of the training-view tests.

The ingest fixtures' names are prefixed ``ingest_`` to stay clear of the loader's fixtures.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipelines.decode.frame_table import read_frame_table
from pipelines.synth.generate import encode_mp4, render_frames, sample_spec


def ingest_frame(index: int, width: int, height: int) -> np.ndarray:
    """RGB uint8 ``(height, width, 3)`` frame whose content identifies ``index``.

    A bright square moves one step per frame over a background whose level encodes
    ``index``, so neighbouring frames decode to clearly different images.
    """
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[..., 0] = (index * 37) % 200
    img[..., 1] = (index * 11) % 160 + 40
    img[..., 2] = 90
    side = max(4, min(width, height) // 4)
    x = (index * 3) % max(1, width - side)
    y = (index * 2) % max(1, height - side)
    img[y : y + side, x : x + side] = 255
    return img


def write_ingest_mp4(
    path: str | os.PathLike,
    *,
    num_frames: int = 48,
    fps: int = 30,
    width: int = 64,
    height: int = 48,
    gop: int = 12,
    bframes: int = 2,
    rotation: int = 0,
    audio: bool = False,
    faststart: bool = False,
) -> Path:
    """Write an H.264 mp4 (optionally with an AAC track and a rotation matrix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", format="mp4", options=options) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = bframes
        stream.options = {"preset": "ultrafast", "crf": "20", "threads": "1"}
        stream.options = {
            **stream.options,
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}",
        }
        if rotation:
            stream.set_display_rotation(rotation)
        astream = out.add_stream("aac", rate=16000) if audio else None
        _encode_frames(out, stream, num_frames, fps)
        if astream is not None:
            _write_tone(out, astream, seconds=num_frames / fps)
    return path


#: (container format, encoder, pixel format, encoder options) of the real-download kinds the
#: ingest must take: Kinetics mirrors serve WebM/VP9 mostly, some AV1 and MKV; older sets AVI
#: and WebM/VP8.
FORMAT_KINDS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "vp9.webm": ("webm", "libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8"}),
    "av1.mkv": ("matroska", "libsvtav1", "yuv420p", {"preset": "12"}),
    "av1.mp4": ("mp4", "libsvtav1", "yuv420p", {"preset": "12"}),
    "h264.mkv": ("matroska", "libx264", "yuv420p", {"preset": "ultrafast"}),
    "mpeg4.avi": ("avi", "mpeg4", "yuv420p", {}),
    "hevc.mp4": (
        "mp4",
        "libx265",
        "yuv420p",
        {"preset": "ultrafast", "x265-params": "log-level=0"},
    ),
    "mjpeg.mov": ("mov", "mjpeg", "yuvj420p", {}),
    # VP9 with an alpha plane (WebM keeps it beside the picture; decoders show the picture),
    # and 10-bit streams (the wheel's libvpx has no 10-bit VP9 encoder: HEVC Main10, AV1).
    "vp9-alpha.webm": ("webm", "libvpx-vp9", "yuva420p", {"deadline": "realtime", "cpu-used": "8"}),
    "hevc10.mp4": (
        "mp4",
        "libx265",
        "yuv420p10le",
        {"preset": "ultrafast", "x265-params": "log-level=0"},
    ),
    "av1-10.mkv": ("matroska", "libsvtav1", "yuv420p10le", {"preset": "12"}),
    "h264.ts": ("mpegts", "libx264", "yuv420p", {"preset": "ultrafast"}),
    "h264.flv": ("flv", "libx264", "yuv420p", {"preset": "ultrafast"}),
    # Codecs an MP4 cannot hold (old Kinetics WebM downloads are VP8; the rest older or camera
    # files): ingest re-encodes them.
    "vp8.webm": ("webm", "libvpx", "yuv420p", {"deadline": "realtime", "cpu-used": "8"}),
    "wmv2.avi": ("avi", "wmv2", "yuv420p", {}),
    "flv1.flv": ("flv", "flv", "yuv420p", {}),
    "huffyuv.avi": ("avi", "huffyuv", "yuv422p", {}),
    "rawvideo.avi": ("avi", "rawvideo", "yuv420p", {}),
    "prores.mov": ("mov", "prores_ks", "yuv422p10le", {}),
    "qtrle.mov": ("mov", "qtrle", "rgb24", {}),
}


def write_format_video(
    path: str | os.PathLike,
    kind: str,
    *,
    num_frames: int = 40,
    fps: int = 25,
    width: int = 64,
    height: int = 48,
    gop: int = 12,
) -> Path:
    """Encode :func:`ingest_frame` frames as ``kind`` (a key of :data:`FORMAT_KINDS`)."""
    container, codec, pix_fmt, options = FORMAT_KINDS[kind]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.gop_size = gop
        stream.options = dict(options)
        _encode_frames(out, stream, num_frames, fps)
    return path


def write_vfr_webm(
    path: str | os.PathLike, *, num_frames: int = 30, width: int = 321, height: int = 241
) -> Path:
    """A VP9 WebM (odd size by default) whose frames come at uneven intervals: 1, 2, 3 ticks
    of 40 ms, over and over."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="webm") as out:
        stream = out.add_stream("libvpx-vp9", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"deadline": "realtime", "cpu-used": "8"}
        pts = 0
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(ingest_frame(i, width, height), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 25)
            pts += 1 + i % 3
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _encode_frames(out: av.container.OutputContainer, stream, num_frames: int, fps: int) -> None:
    """Encode and mux ``num_frames`` :func:`ingest_frame` frames at ``fps``, then flush."""
    for i in range(num_frames):
        image = ingest_frame(i, stream.width, stream.height)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = i
        frame.time_base = Fraction(1, fps)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def _write_tone(out: av.container.OutputContainer, stream, seconds: float) -> None:
    rate = stream.codec_context.sample_rate
    samples = np.sin(np.arange(int(rate * seconds)) * 0.05).astype(np.float32)
    frame_size = stream.codec_context.frame_size or 1024
    for start in range(0, samples.shape[0], frame_size):
        chunk = samples[start : start + frame_size]
        chunk = np.pad(chunk, (0, frame_size - chunk.shape[0]))[None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def write_audio_only_mp4(path: str | os.PathLike, seconds: float = 1.0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as out:
        _write_tone(out, out.add_stream("aac", rate=16000), seconds)
    return path


def write_png_as_mp4(path: str | os.PathLike) -> Path:
    """A real PNG image saved under an .mp4 name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="image2pipe") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "rgb24"
        frame = av.VideoFrame.from_ndarray(ingest_frame(3, 32, 24), format="rgb24")
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def corrupt_avcc(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy an H.264 mp4 with its codec configuration (the ``avcC`` box's SPS) garbled.

    The container stays valid and demuxes, but the decoder cannot configure itself, so no
    frame decodes: a real "undecodable codec config" input.
    """
    data = bytearray(Path(src).read_bytes())
    at = data.find(b"avcC")
    if at < 0:
        raise ValueError(f"no avcC box in {src}")
    size = struct.unpack(">I", data[at - 4 : at])[0]
    body = at + 4
    # avcC: version, profile, compat, level, lengthSize, numSPS, spsLen(2), SPS...
    sps_len = struct.unpack(">H", data[body + 6 : body + 8])[0]
    sps = body + 8
    end = min(sps + sps_len, at - 4 + size)
    data[sps + 1 : end] = bytes((0xFF ^ b) for b in data[sps + 1 : end])
    # the PPS follows: garble it too
    pps_hdr = end + 1
    if pps_hdr + 2 <= at - 4 + size:
        pps_len = struct.unpack(">H", data[pps_hdr : pps_hdr + 2])[0]
        p0 = pps_hdr + 2
        data[p0 + 1 : p0 + pps_len] = bytes((0x5A ^ b) for b in data[p0 + 1 : p0 + pps_len])
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


def rot_middle(data: bytes) -> bytes:
    """``data`` (an mp4 with ``moov`` after ``mdat``) with the last two thirds of its ``mdat``
    payload zeroed: bit rot after the first GOP. The container still opens and demuxes, the
    first frames decode, a later packet fails with ``InvalidDataError``."""
    mdat, moov = data.find(b"mdat"), data.find(b"moov")
    if not 0 <= mdat < moov:
        raise ValueError("expected an mp4 with mdat before moov")
    start, end = mdat + 4, moov - 4
    cut = start + (end - start) // 3
    return data[:cut] + bytes(end - cut) + data[end:]


BAD_KINDS = (
    "empty",
    "truncated",
    "random",
    "audio_only",
    "image",
    "too_short",
    "undecodable",
)


def write_bad_input(kind: str, path: str | os.PathLike, tmp_dir: str | os.PathLike) -> Path:
    """Write one broken input of ``kind`` (see ``BAD_KINDS``) at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        good = write_ingest_mp4(Path(tmp_dir) / f"_full_{path.name}", num_frames=90)
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "audio_only":
        write_audio_only_mp4(path)
    elif kind == "image":
        write_png_as_mp4(path)
    elif kind == "too_short":
        write_ingest_mp4(path, num_frames=10, gop=5)
    elif kind == "undecodable":
        good = write_ingest_mp4(Path(tmp_dir) / f"_good_{path.name}", num_frames=48)
        corrupt_avcc(good, path)
    else:
        raise ValueError(f"unknown bad input kind {kind!r}")
    return path


@pytest.fixture
def ingest_write_mp4() -> Callable[..., Path]:
    """``write(path, **kw)``: a tiny H.264 mp4 (see :func:`write_ingest_mp4`)."""
    return write_ingest_mp4


@pytest.fixture
def ingest_write_bad(tmp_path) -> Callable[[str, str | os.PathLike], Path]:
    """``write(kind, path)``: a broken input of one of ``BAD_KINDS``."""
    scratch = tmp_path / "_scratch"
    scratch.mkdir(exist_ok=True)
    return lambda kind, path: write_bad_input(kind, path, scratch)


def decode_all_frames(data: bytes) -> list[np.ndarray]:
    """Every frame of the first video stream, RGB, in presentation order."""
    import io

    with av.open(io.BytesIO(data)) as c:
        pairs = [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(c.streams.video[0])]
    return [img for _, img in sorted(pairs, key=lambda p: p[0])]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ingest_s3_endpoint():
    """A real moto S3 server on 127.0.0.1 (own process group, killed at teardown).

    Yields the endpoint URL; AWS credentials/region env vars are set for the session.
    """
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                os.killpg(proc.pid, signal.SIGKILL)
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.2)
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def ingest_media():
    """The helpers of this module, for tests (``from conftest import`` is ambiguous when
    several test folders have a conftest): ``write_mp4``, ``write_format(path, kind)`` (``format_kinds``), ``write_vfr``, ``write_bad(kind, path, scratch)``,
    ``decode`` (all frames), ``bad_kinds``, ``corrupt_avcc``, ``rot_middle``."""
    import types

    return types.SimpleNamespace(
        write_mp4=write_ingest_mp4,
        write_format=write_format_video,
        write_vfr=write_vfr_webm,
        format_kinds=tuple(FORMAT_KINDS),
        write_bad=write_bad_input,
        decode=decode_all_frames,
        bad_kinds=BAD_KINDS,
        corrupt_avcc=corrupt_avcc,
        rot_middle=rot_middle,
    )


#: Size of :func:`orbit_record`'s video.
ORBIT_W, ORBIT_H = 128, 72


@pytest.fixture(scope="session")
def orbit_record() -> dict:
    """One clip record of an 80-frame 128x72 SynthMotion "orbit" video (GOP 40, 3 B-frames),
    with its frame tables and size: the training-view tests' input."""
    spec = sample_spec(np.random.default_rng(5), "orbit", num_frames=80, size=(ORBIT_W, ORBIT_H))
    content = encode_mp4(render_frames(spec), 30, gop=40, bframes=3)
    table = read_frame_table(content)
    return {
        "content": content,
        "video_id": "vid",
        "clip_index": 0,
        "label_id": 2,
        "fps": table.fps,
        "num_frames": table.num_frames,
        "start_frame": 10,
        "span": 32,
        "frame_pts": table.pts,
        "keyframes": table.keyframes,
        "width": ORBIT_W,
        "height": ORBIT_H,
    }
