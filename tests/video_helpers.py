"""Videos the tests write whose decoded pixels compare exactly: lossless RGB H.264."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np


def write_lossless_rgb(
    path: str | Path,
    frames: Sequence[np.ndarray],
    *,
    rotation: int | None = None,
    matrix: Sequence[int] | None = None,
    gop: int | None = None,
) -> Path:
    """``frames`` (uint8 ``(H, W, 3)``, one size) as lossless RGB H.264 (libx264rgb, qp 0) at
    25 fps, in the container ``path``'s extension names, with a display rotation (degrees,
    FFmpeg's ``av_display_rotation_set``) or a whole display matrix (nine integers) when given,
    and a keyframe every ``gop`` frames (None: x264's default)."""
    path = Path(path)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=25)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "rgb24"
        stream.options = {"qp": "0", "preset": "ultrafast", "threads": "1"}
        if gop is not None:
            stream.options = {**stream.options, "g": str(gop)}
        if matrix is not None:
            stream.set_display_matrix(list(matrix))
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
