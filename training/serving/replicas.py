"""The work of the service's two back-end deployments, as plain classes (no Ray here: the
application (:mod:`training.serving.app`) makes deployments of them, and tests call them
directly).

- :class:`VideoDecoder` (CPU replicas): bytes in, the ingest's probe with its limits, then
  uint8 test views out (:func:`pipelines.views.video_views` for a classification, chunks of
  :func:`pipelines.views.timeline_views` for a timeline). Refusals are
  :class:`~training.serving.admission.RequestError`; a stream that fails to decode after the
  probe is 422 ``undecodable``.
- :class:`ModelReplica` (CPU or one GPU): the same :class:`~training.inference.predict.Predictor`
  as ``raysf predict`` (checkpoint, export or converted external checkpoint, its clip spec and
  device settings), warmed up once; :meth:`ModelReplica.score_batch` scores the views of
  several requests in one forward pass (the application batches it with ``@serve.batch``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from pipelines.decode.frame_table import FrameTable
from pipelines.views import timeline_views, video_views
from raysf.clip_spec import ClipSpec
from training.inference.predict import ModelSource, load_predictor
from training.inference.timeline import CHUNK_WINDOWS, TimelineOptions
from training.serving.admission import RequestError, ServeLimits, probe


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


class VideoDecoder:
    """Probe and cut the views of one video (module docstring)."""

    def __init__(self, spec: ClipSpec, limits: ServeLimits) -> None:
        self.spec, self.limits = spec, limits

    def classify_views(self, data: bytes, name: str) -> dict[str, Any]:
        """``{"fast": uint8 (V, alpha*T, H, W, 3), "video": {...}, "decode_ms": ...}``: the
        ``num_test_clips`` x ``num_test_crops`` test views of ``predict``."""
        start = time.perf_counter()
        video, table = self._probe(data, name)
        try:
            views = video_views(data, self.spec, name=name, table=table)
        except (ValueError, RuntimeError, OSError) as exc:
            raise RequestError(422, "undecodable", " ".join(str(exc).split())) from exc
        return {"fast": views.fast, "video": video, "decode_ms": _ms(start)}

    def timeline_chunks(
        self, data: bytes, name: str, options: TimelineOptions
    ) -> Iterator[dict[str, Any]]:
        """First ``{"windows": TimelineWindows, "video": {...}}``, then per chunk of windows
        ``{"fast", "clip_index", "decode_ms"}``; 413 ``too_many_windows`` over the limit."""
        start = time.perf_counter()
        video, table = self._probe(data, name)
        windows, chunks = timeline_views(
            data, self.spec, options.stride_s, chunk=CHUNK_WINDOWS, name=name, table=table
        )
        if len(windows.starts) > self.limits.max_windows:
            raise RequestError(
                413,
                "too_many_windows",
                f"{name}: {len(windows.starts)} windows, the limit is {self.limits.max_windows} "
                "(a larger stride_s gives fewer)",
            )
        yield {"windows": windows, "video": video, "decode_ms": _ms(start)}
        while True:
            start = time.perf_counter()
            try:
                views = next(chunks, None)
            except (ValueError, RuntimeError, OSError) as exc:
                raise RequestError(422, "undecodable", " ".join(str(exc).split())) from exc
            if views is None:
                return
            yield {"fast": views.fast, "clip_index": views.clip_index, "decode_ms": _ms(start)}

    def _probe(self, data: bytes, name: str) -> tuple[dict[str, Any], FrameTable]:
        """The input's description and its frame table (demuxed once, here)."""
        result = probe(data, self.limits, name)
        width, height = result.display_size
        video = {
            "codec": result.codec,
            "fps": round(result.fps, 3),
            "num_frames": result.num_frames,
            "duration_s": round(result.duration_s, 3),
            "width": width,
            "height": height,
        }
        return video, result.table


class ModelReplica:
    """One model on its device, scoring batches of views (module docstring)."""

    def __init__(self, model: ModelSource, device: str = "cpu") -> None:
        self.source = model
        self.predictor = load_predictor(model, device)
        spec = self.predictor.spec
        warm = np.zeros((1, spec.fast_frames, spec.crop_size, spec.crop_size, 3), np.uint8)
        self.predictor.view_scores(warm)
        self.batches = 0
        self.clips = 0

    def info(self) -> dict[str, Any]:
        """The model's classes, clip spec and device settings, where it came from, and the
        batches this replica has run."""
        return {
            **self.predictor.describe(),
            "checkpoint": self.source.checkpoint,
            "source": self.source.source,
            "batches": self.batches,
            "clips": self.clips,
        }

    def score_batch(self, items: list[np.ndarray]) -> list[np.ndarray]:
        """Softmax scores of each item's views (``(V_i, C)``), from one forward pass."""
        sizes = np.cumsum([len(x) for x in items])[:-1]
        scores = self.predictor.view_scores(np.concatenate(items))
        self.batches += 1
        self.clips += len(scores)
        return np.split(scores, sizes)
