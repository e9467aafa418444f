"""Rendering a SynthMotion :class:`~pipelines.synth.spec.VideoSpec` to frames and H.264 bytes.

Both steps are deterministic: the frames are a pure function of the spec, and libx264 runs
single-threaded without macroblock-tree rate control, so the same frames give the same bytes.
"""

from __future__ import annotations

import io

import av
import numpy as np

from pipelines.synth.spec import VideoSpec, object_state


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Static smooth texture: a few random plane waves per channel, float32 ``(H, W, 3)``."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 190, size=3).astype(np.float32)
    img = np.broadcast_to(base, (height, width, 3)).copy()
    for _ in range(3):
        fx, fy = rng.uniform(-0.25, 0.25, size=2)
        amp = rng.uniform(4, 12, size=3).astype(np.float32)
        wave = np.sin(fx * xx + fy * yy + rng.uniform(0, 2 * np.pi))
        img += wave[..., None] * amp
    return img


def _mask(shape: str, size: int) -> np.ndarray:
    """Boolean ``(size, size)`` mask of a square, disc or diamond."""
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size]
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    if shape == "disc":
        return (xx - c) ** 2 + (yy - c) ** 2 <= (size / 2.0) ** 2
    return np.abs(xx - c) + np.abs(yy - c) <= size / 2.0


def render_frames(spec: VideoSpec) -> np.ndarray:
    """Render the raw frames of ``spec``: uint8 ``(num_frames, height, width, 3)``."""
    rng = np.random.default_rng(spec.seed)
    background = _background(rng, spec.width, spec.height)
    frames = np.empty((spec.num_frames, spec.height, spec.width, 3), dtype=np.uint8)
    for t in range(spec.num_frames):
        state = object_state(spec, t)
        img = background.copy()
        x0, y0 = state.x, state.y
        x1, y1 = min(x0 + state.size, spec.width), min(y0 + state.size, spec.height)
        cx0, cy0 = max(x0, 0), max(y0, 0)
        if x1 > cx0 and y1 > cy0:
            mask = _mask(spec.shape, state.size)[cy0 - y0 : y1 - y0, cx0 - x0 : x1 - x0]
            region = img[cy0:y1, cx0:x1]
            region[mask] = np.asarray(state.color, dtype=np.float32)
        img += rng.normal(0.0, spec.noise, size=img.shape).astype(np.float32)
        frames[t] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return frames


def encode_mp4(
    frames: np.ndarray, fps: int, *, gop: int = 48, bframes: int = 2, crf: int = 20
) -> bytes:
    """Encode RGB frames ``(N, H, W, 3)`` uint8 to H.264 mp4 bytes (yuv420p, one thread).

    ``gop`` is the keyframe interval (scene-cut keyframes disabled so it is exact) and
    ``bframes`` the maximum number of consecutive B-frames.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    _, height, width, _ = frames.shape
    if width % 2 or height % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {width}x{height}")
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "g": str(gop),
            "keyint_min": str(gop),
            "sc_threshold": "0",
            "bf": str(bframes),
            "threads": "1",
            "crf": str(crf),
            "preset": "veryfast",
            # x264's macroblock-tree rate control gave different bytes from run to run on
            # identical input (seen at 80x80); without it the output is byte-reproducible.
            "x264-params": "mbtree=0",
        }
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()
