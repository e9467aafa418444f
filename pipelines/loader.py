"""Clip records -> Ray Dataset of decoded, augmented ``(slow, fast, label)`` rows.

``build_clip_dataset`` reads the clip-record Parquet written by :mod:`pipelines.ingest`
(``<root>/clips``, split filter pushed down to the Parquet reader), then decodes and augments
clips in ``map_batches`` tasks (:class:`DecodeOptions`: one CPU each by default, optionally
pinned to decode nodes by a custom resource). Rows are uint8 so they travel through the object
store 4x smaller than floats; the training side normalises them on its device.

Every clip is cut as a resolved :class:`~raysf.clip_spec.ClipSpec` says. Windows are
recomputed at load time from each record's ``num_frames``/``fps`` with the spec's
``(T, tau, alpha, rule, target_fps)``, which may differ from those the records were written with
(``manifest.json``): a sweep over ``alpha`` or ``tau`` never re-ingests.

- ``train``: random window (temporal jitter), then the training view of
  :mod:`pipelines.views` (random short side at decode, random crop, random flip). Every
  iteration of the dataset draws new windows (fresh OS entropy per task) unless ``seed`` is
  given, in which case each record's augmentation is a fixed function of ``(seed, video_id,
  clip_index)``.
- ``val``: the record's window re-centred for the run's span, short side
  ``test_short_side``, centre crop.
- ``test``: as ``val`` but the ``num_test_crops`` test views, one output row per (clip, crop).

Shuffling: ``train`` randomises block order; add ``local_shuffle_buffer_size=...`` to
``iter_torch_batches``/``iter_batches`` for row-level mixing (no full ``random_shuffle``).

A record that fails to decode fails its task unless the dataset was built with ``errors`` (a
:class:`~pipelines.decode_errors.DecodeErrorSink`): then the record is dropped, the others of
its batch go on, and the failure is counted in the run's log (:mod:`pipelines.decode_errors`).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines import sampling
from pipelines.decode import decode_clip
from pipelines.decode_errors import DecodeErrorSink
from pipelines.transforms import random_short_side
from pipelines.views import spatial_views, train_view, window_indices, window_span
from raysf import storage
from raysf.clip_spec import ClipSpec
from raysf.runtime import read_manifest, resolve_filesystem

MODES = ("train", "val", "test")

#: Record columns the loader reads (``frame_pts``/``keyframes`` are used when present).
RECORD_COLUMNS = (
    "video_id",
    "label_id",
    "clip_index",
    "fps",
    "num_frames",
    "start_frame",
    "span",
    "content",
    "frame_pts",
    "keyframes",
)
_REQUIRED = ("video_id", "label_id", "clip_index", "fps", "num_frames", "start_frame", "content")


@dataclass(frozen=True)
class DecodeOptions:
    """Where and how the decode tasks run (Ray Data ``map_batches``).

    Attributes:
        num_cpus: CPUs reserved per decode task.
        batch_size: records per task call.
        resources: extra Ray resources per task (``{"decode_node": 0.001}`` places decoding on
            nodes that advertise a custom ``decode_node`` resource).
    """

    num_cpus: float = 1.0
    batch_size: int = 8
    resources: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_cpus <= 0:
            raise ValueError(f"DecodeOptions.num_cpus must be positive, got {self.num_cpus}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"DecodeOptions.batch_size must be >= 1, got {self.batch_size!r}")


def build_clip_dataset(
    source: Any,
    *,
    split: str,
    mode: str,
    spec: ClipSpec,
    decode: DecodeOptions = DecodeOptions(),
    seed: int | None = None,
    endpoint_url: str | None = None,
    limit: int | None = None,
    errors: DecodeErrorSink | None = None,
):
    """Ray Dataset of decoded clips for one split.

    Args:
        source: dataset root (local path or ``s3://`` URI holding ``clips/`` and
            ``manifest.json``) or a ``ray.data.Dataset`` of clip records.
        split: records to keep (``"train"``, ``"val"``, ``"test"``...).
        mode: ``"train"`` | ``"val"`` | ``"test"`` (augmentation, see module docstring).
        spec: how clips are cut and fed; must be resolved (:meth:`ClipSpec.resolve`).
        decode: where and how the decode tasks run.
        seed: fixed augmentation per record (default: new randomness every iteration).
        endpoint_url: S3 endpoint of an ``s3://`` source (default: the AWS environment).
        limit: keep at most this many records (smoke tests).
        errors: drop a record that fails to decode and count it there (default: the failure
            fails the task).

    Returns:
        ``ray.data.Dataset`` with rows ``slow`` uint8 ``(T, crop, crop, 3)``, ``fast`` uint8
        ``(alpha*T, crop, crop, 3)``, ``label`` int64, ``video_id`` str, ``clip_index``
        int32, ``spatial_index`` int32 (-1 for train's random crop).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    spec.require_resolved("build_clip_dataset")
    ds = _records(source, split, endpoint_url)
    if limit is not None:
        ds = ds.limit(int(limit))
    if mode == "train":
        ds = ds.randomize_block_order(seed=seed)
    remote: dict[str, Any] = {"num_cpus": decode.num_cpus}
    if decode.resources:
        remote["resources"] = dict(decode.resources)
    return ds.map_batches(
        decode_batch,
        batch_size=decode.batch_size,
        batch_format="numpy",
        fn_kwargs={"spec": spec, "mode": mode, "seed": seed, "errors": errors},
        **remote,
    )


def _records(source: Any, split: str, endpoint_url: str | None):
    """The clip records of ``split`` (the columns the loader reads) as a Ray Dataset."""
    # heavy; the decode functions below (what the Ray tasks run) work without them
    import ray.data
    from ray.data.expressions import col

    if isinstance(source, ray.data.Dataset):
        ds = source
    else:
        read_manifest(str(source), endpoint_url)  # fail early on a root that is not a dataset
        fs, root = resolve_filesystem(str(source), endpoint_url)
        ds = ray.data.read_parquet(storage.join(root, "clips"), filesystem=fs)
    # An expression filter: Ray's optimizer pushes it down into the Parquet reader.
    ds = ds.filter(expr=col("split") == split)
    columns = [c for c in RECORD_COLUMNS if c in ds.schema().names]
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise ValueError(f"clip records lack required columns {missing}")
    return ds.select_columns(columns)


def record_rng(seed: int | None, video_id: str, clip_index: int) -> np.random.Generator:
    """Per-record generator: fixed by ``(seed, video_id, clip_index)``, or fresh entropy."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng([int(seed), zlib.crc32(video_id.encode()), int(clip_index)])


def clip_window(
    record: Mapping[str, Any], spec: ClipSpec, mode: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(fast_idx, slow_idx)`` of the run's window for one record (see module docstring)."""
    fps, num_frames = float(record["fps"]), int(record["num_frames"])
    span = window_span(spec, fps)
    if mode == "train":
        start = sampling.random_start(rng, num_frames, span)
    else:
        old_span = record.get("span")
        old_span = span if old_span is None else int(old_span)
        start = sampling.rewindow(int(record["start_frame"]), old_span, span, num_frames)
    return window_indices(spec, start, num_frames, fps)


def record_views(
    record: Mapping[str, Any], spec: ClipSpec, mode: str, seed: int | None = None
) -> list[tuple[list[np.ndarray], int]]:
    """The ``(view, spatial_index)`` pairs one record yields: one in train/val, the
    ``num_test_crops`` test views in test mode (see :mod:`pipelines.views`)."""
    rng = record_rng(seed, str(record["video_id"]), int(record["clip_index"]))
    fast_idx, slow_idx = clip_window(record, spec, mode, rng)
    if mode == "train":
        short = random_short_side(rng, *spec.short_side_range)
        clip = decode_clip(record, fast_idx=fast_idx, slow_idx=slow_idx, short_side=short)
        return [(train_view(list(clip), spec, rng), -1)]
    clip = decode_clip(
        record, fast_idx=fast_idx, slow_idx=slow_idx, short_side=spec.test_short_side
    )
    return spatial_views(list(clip), spec, num_crops=None if mode == "test" else 1)


def views_or_drop(
    record: Mapping[str, Any],
    spec: ClipSpec,
    mode: str,
    seed: int | None,
    errors: DecodeErrorSink | None,
) -> list[tuple[list[np.ndarray], int]]:
    """:func:`record_views`, or ``[]`` after telling ``errors`` when the record fails (without
    ``errors`` the failure propagates)."""
    try:
        return record_views(record, spec, mode, seed)
    except Exception as exc:
        if errors is None:
            raise
        errors.record(record, exc)
        return []


def empty_rows(spec: ClipSpec) -> dict[str, np.ndarray]:
    """A batch of zero rows with the loader's columns (every record of a batch failed)."""
    crop = spec.crop_size
    return {
        "slow": np.zeros((0, spec.slow_frames, crop, crop, 3), dtype=np.uint8),
        "fast": np.zeros((0, spec.fast_frames, crop, crop, 3), dtype=np.uint8),
        "label": np.zeros(0, dtype=np.int64),
        "video_id": np.zeros(0, dtype=object),
        "clip_index": np.zeros(0, dtype=np.int32),
        "spatial_index": np.zeros(0, dtype=np.int32),
    }


def decode_batch(
    batch: Mapping[str, np.ndarray],
    spec: ClipSpec,
    mode: str,
    seed: int | None,
    errors: DecodeErrorSink | None = None,
):
    """``map_batches`` UDF: records -> decoded, augmented rows (see module docstring)."""
    out: dict[str, list] = {k: [] for k in ("slow", "fast", "label", "video_id")}
    out.update(clip_index=[], spatial_index=[])
    for i in range(len(batch["video_id"])):
        record = {k: batch[k][i] for k in batch}
        for (slow, fast), spatial_index in views_or_drop(record, spec, mode, seed, errors):
            out["slow"].append(slow)
            out["fast"].append(fast)
            out["label"].append(int(record["label_id"]))
            out["video_id"].append(str(record["video_id"]))
            out["clip_index"].append(int(record["clip_index"]))
            out["spatial_index"].append(spatial_index)
    if not out["label"]:
        return empty_rows(spec)
    return {
        "slow": np.stack(out["slow"]),
        "fast": np.stack(out["fast"]),
        "label": np.asarray(out["label"], dtype=np.int64),
        "video_id": np.asarray(out["video_id"], dtype=object),
        "clip_index": np.asarray(out["clip_index"], dtype=np.int32),
        "spatial_index": np.asarray(out["spatial_index"], dtype=np.int32),
    }
