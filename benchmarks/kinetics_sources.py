"""Kinetics-like source videos for the decode benchmarks, rendered and encoded here.

SynthMotion's flat backgrounds compress to ~60 kbit/s at 360p, far below what Kinetics files
carry, and decode cost grows with the bits. These sources are built to decode like YouTube
video instead:

- **content**: a camera panning over a textured scene (noise at 64, 16, 4 and 1 pixel scales,
  so there is detail at every scale, as in natural images), three textured objects moving on
  their own, and sensor noise; 10 s per video.
- **raw** (``k400-raw-*``, as YouTube serves Kinetics): H.264 High profile from x264 preset
  ``faster`` with CABAC, deblocking, 3 B-frames with pyramid, at an average bit rate of
  600 kbit/s for 640x360 and 1800 kbit/s for 1280x720 (Kinetics-400 averages ~1.2 Mbit/s),
  keyframes every 2-5 s, 25 or 30 fps.
- **re-encodes**: :func:`pipelines.ingest.segment.reencode_video` of the raw videos with the settings
  of a profile (:data:`pipelines.ingest.config.REENCODE_PROFILES`) or of one encoding choice.

Everything is a function of the seed (x264 runs single-threaded, without mb-tree). Rendering
and encoding take about a minute on one core; ``cache`` keeps the bytes in a folder so that a
second run skips it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass

import av
import numpy as np

from pipelines.ingest.segment import EncodeSettings, reencode_video


@dataclass(frozen=True)
class RawSource:
    """One raw source video: size, frame rate, keyframe interval (s), bit rate (kbit/s)."""

    width: int
    height: int
    fps: int
    keyint_s: float
    kbps: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.height}p{self.fps}-k{self.keyint_s:g}s"


#: The raw sources: two at 640x360, two at 1280x720, 25/30 fps, keyframes every 2-5 s.
RAW_SOURCES: tuple[RawSource, ...] = (
    RawSource(640, 360, 30, 5.0, 600, seed=1),
    RawSource(640, 360, 25, 2.0, 600, seed=2),
    RawSource(1280, 720, 30, 3.0, 1800, seed=3),
    RawSource(1280, 720, 25, 5.0, 1800, seed=4),
)
SECONDS = 10


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """float32 ``(H, W, 3)`` texture: smoothed noise at 64, 16, 4 and 1 pixel scales."""
    img = np.zeros((height, width, 3), np.float32)
    for scale, amp in ((64, 40.0), (16, 25.0), (4, 12.0), (1, 6.0)):
        small = rng.normal(0, 1, (height // scale + 2, width // scale + 2, 3)).astype(np.float32)
        big = np.repeat(np.repeat(small, scale, 0), scale, 1)[:height, :width]
        if scale > 1:  # soften the blocks: average with copies shifted by half a block
            k = scale // 2
            big = (big + np.roll(big, k, 0) + np.roll(big, k, 1) + np.roll(big, (k, k), (0, 1))) / 4
        img += big * amp
    return img + rng.uniform(70, 180, 3).astype(np.float32)


def render_scene(width: int, height: int, num_frames: int, seed: int) -> np.ndarray:
    """uint8 ``(num_frames, height, width, 3)``: a panning textured scene with moving objects."""
    rng = np.random.default_rng(seed)
    pan_x, pan_y = int(rng.integers(1, 4)), int(rng.integers(0, 2))
    scene = _texture(rng, height + pan_y * num_frames + 1, width + pan_x * num_frames + 1)
    objects = []
    for _ in range(3):
        side = int(rng.integers(height // 6, height // 3))
        start = rng.uniform(0, [width - side, height - side])
        objects.append((_texture(rng, side, side), start, rng.uniform(-4, 4, 2), side))
    noise = rng.normal(0, 2.5, (8, height, width, 3)).astype(np.float32)
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        img = scene[pan_y * t : pan_y * t + height, pan_x * t : pan_x * t + width].copy()
        for tex, start, velocity, side in objects:
            x = int(start[0] + velocity[0] * t) % max(1, width - side)
            y = int(start[1] + velocity[1] * t) % max(1, height - side)
            img[y : y + side, x : x + side] = tex
        img += noise[t % len(noise)]
        frames[t] = np.clip(img, 0, 255)
    return frames


def encode_raw(frames: np.ndarray, source: RawSource) -> bytes:
    """YouTube-like H.264 of ``frames`` (see the module docstring)."""
    buffer = io.BytesIO()
    keyint = int(round(source.keyint_s * source.fps))
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=source.fps)
        stream.width, stream.height, stream.pix_fmt = source.width, source.height, "yuv420p"
        stream.bit_rate = source.kbps * 1000
        stream.options = {
            "preset": "faster",
            "threads": "1",
            "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=3:mbtree=0",
        }
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def _cached(cache: str | None, key: dict, make) -> bytes:
    """``make()``, kept under ``cache`` by a hash of ``key`` (no cache: always made)."""
    if cache is None:
        return make()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(cache, f"{digest}.mp4")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    data = make()
    os.makedirs(cache, exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    return data


def raw_video(source: RawSource, cache: str | None = None) -> bytes:
    """The raw mp4 of ``source`` (rendered and encoded, or read from ``cache``)."""
    key = {"raw": asdict(source), "seconds": SECONDS, "version": 1}

    def make() -> bytes:
        frames = render_scene(source.width, source.height, SECONDS * source.fps, source.seed)
        return encode_raw(frames, source)

    return _cached(cache, key, make)


def reencoded(
    raw: bytes,
    settings: EncodeSettings,
    *,
    short_side: int = 256,
    fps: float = 30.0,
    extra_params: tuple[str, ...] = (),
    cache: str | None = None,
) -> bytes:
    """``raw`` re-encoded as ingest would with ``settings`` (plus ``extra_params``)."""
    key = {
        "raw": hashlib.sha256(raw).hexdigest(),
        "settings": asdict(settings),
        "short_side": short_side,
        "fps": fps,
        "extra": list(extra_params),
    }

    def make() -> bytes:
        return reencode_video(
            raw, settings, short_side=short_side, fps=fps, extra_params=extra_params
        )

    return _cached(cache, key, make)
