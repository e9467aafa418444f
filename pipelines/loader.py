"""Clip records -> Ray Dataset of decoded, augmented ``(slow, fast, label)`` rows.

``build_clip_dataset`` reads the clip-record Parquet written by :mod:`pipelines.ingest`
(``<root>/clips``, split filter pushed down to the Parquet reader), then decodes and augments
clips in ``map_batches`` tasks (one CPU each by default, optionally pinned to decode nodes by
a custom resource). Rows are uint8 so they travel through the object store 4x smaller than
floats; :func:`pipelines.transforms.to_model_inputs` normalises them on the training device.

Windows are recomputed at load time from each record's ``num_frames``/``fps`` with the run's
``(T, tau, alpha, rule, target_fps)``, which may differ from those the records were written
with (``manifest.json``): a sweep over ``alpha`` or ``tau`` never re-ingests.

- ``train``: random window (temporal jitter), random short side in ``short_side_range``
  (scaled by libswscale at decode), random ``crop_size`` crop, random horizontal flip. Every
  iteration of the dataset draws new windows (fresh OS entropy per task) unless ``seed`` is
  given, in which case each record's augmentation is a fixed function of ``(seed, video_id,
  clip_index)``.
- ``val``: the record's window re-centred for the run's span, short side
  ``test_short_side``, centre crop.
- ``test``: as ``val`` but ``num_spatial_crops`` crops (left/centre/right along the long
  side), one output row per (clip, crop).

Shuffling: ``train`` randomises block order; add ``local_shuffle_buffer_size=...`` to
``iter_torch_batches``/``iter_batches`` for row-level mixing (no full ``random_shuffle``).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from pipelines import sampling
from pipelines.decode import decode_clip
from pipelines.transforms import (
    random_crop,
    random_horizontal_flip,
    random_short_side,
    spatial_crop,
)

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


def clip_nbytes(slow_frames: int, alpha: int, crop_size: int) -> int:
    """Bytes of one decoded output row (uint8 slow + fast): ``(T + alpha*T) * crop^2 * 3``.

    Decoded rows are far larger than the compressed records they come from (a 64-frame
    224x224 clip is ~9.6 MB against tens of KB of H.264); size ``decode_batch_size`` and the
    object store with this figure.
    """
    return (slow_frames + alpha * slow_frames) * crop_size * crop_size * 3


def read_manifest(source: str | os.PathLike, filesystem: Any = None) -> dict[str, Any]:
    """Parse ``<root>/manifest.json`` of a dataset root (local path or ``s3://`` URI)."""
    fs, root = _resolve(source, filesystem)
    path = f"{root.rstrip('/')}/manifest.json"
    try:
        with fs.open_input_stream(path) as f:
            return json.loads(f.read().decode("utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(f"no manifest.json in dataset root {os.fspath(source)!r}") from exc


def _resolve(source: str | os.PathLike, filesystem: Any) -> tuple[Any, str]:
    """(pyarrow filesystem, path) for a dataset root; ``filesystem`` wins when given."""
    text = os.fspath(source)
    if filesystem is not None:
        return filesystem, text.split("://", 1)[-1] if text.startswith("s3://") else text
    from pipelines.storage import resolve_filesystem

    return resolve_filesystem(text)


def _check_args(
    mode: str,
    slow_frames: int,
    tau: int,
    alpha: int,
    rule: str,
    crop_size: int,
    short_side_range: tuple[int, int],
    test_short_side: int,
    num_spatial_crops: int,
    decode_batch_size: int,
) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    for name, value in (
        ("slow_frames", slow_frames),
        ("tau", tau),
        ("alpha", alpha),
        ("crop_size", crop_size),
        ("decode_batch_size", decode_batch_size),
    ):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if rule not in sampling.RULES:
        raise ValueError(f"rule must be one of {sampling.RULES}, got {rule!r}")
    lo, hi = short_side_range
    if not crop_size <= lo <= hi:
        raise ValueError(
            f"short_side_range must satisfy crop_size <= low <= high, got {short_side_range} "
            f"with crop_size {crop_size}"
        )
    if test_short_side < crop_size:
        raise ValueError(f"test_short_side {test_short_side} is smaller than crop_size {crop_size}")
    if num_spatial_crops not in (1, 3):
        raise ValueError(f"num_spatial_crops must be 1 or 3, got {num_spatial_crops}")


def build_clip_dataset(
    source: Any,
    *,
    split: str,
    mode: str,
    slow_frames: int,
    tau: int,
    alpha: int,
    rule: str = "stride",
    target_fps: float | None = None,
    crop_size: int = 224,
    short_side_range: tuple[int, int] = (256, 320),
    test_short_side: int = 256,
    num_spatial_crops: int = 3,
    flip: bool = True,
    decode_num_cpus: float = 1,
    decode_batch_size: int = 8,
    seed: int | None = None,
    filesystem: Any = None,
    limit: int | None = None,
    resources: dict[str, float] | None = None,
):
    """Ray Dataset of decoded clips for one split.

    Args:
        source: dataset root (local path or ``s3://`` URI holding ``clips/`` and
            ``manifest.json``) or a ``ray.data.Dataset`` of clip records.
        split: records to keep (``"train"``, ``"val"``, ``"test"``...).
        mode: ``"train"`` | ``"val"`` | ``"test"`` (augmentation, see module docstring).
        slow_frames, tau, alpha, rule, target_fps: the run's sampling
            (see :mod:`pipelines.sampling`).
        crop_size: output side. short_side_range: train scale jitter (inclusive).
        test_short_side: short side in val/test. num_spatial_crops: 1 or 3 (test mode).
        flip: random horizontal flip in train mode.
        decode_num_cpus, resources: per decode task (``resources={"decode": 1}`` places
            decoding on nodes that advertise a custom ``decode`` resource).
        decode_batch_size: records per decode task call.
        seed: fixed augmentation per record (default: new randomness every iteration).
        filesystem: pyarrow filesystem for ``source`` (default: from
            :func:`pipelines.storage.resolve_filesystem`).
        limit: keep at most this many records (smoke tests).

    Returns:
        ``ray.data.Dataset`` with rows ``slow`` uint8 ``(T, crop, crop, 3)``, ``fast`` uint8
        ``(alpha*T, crop, crop, 3)``, ``label`` int64, ``video_id`` str, ``clip_index``
        int32, ``spatial_index`` int32 (-1 for train's random crop).
    """
    import ray.data

    _check_args(
        mode,
        slow_frames,
        tau,
        alpha,
        rule,
        crop_size,
        short_side_range,
        test_short_side,
        num_spatial_crops,
        decode_batch_size,
    )
    from ray.data.expressions import col

    if isinstance(source, ray.data.Dataset):
        ds = source
    else:
        fs, root = _resolve(source, filesystem)
        read_manifest(source, fs)  # fail early on a root that is not a dataset
        ds = ray.data.read_parquet(f"{root.rstrip('/')}/clips", filesystem=fs)
    # An expression filter: Ray's optimizer pushes it down into the Parquet reader.
    ds = ds.filter(expr=col("split") == split)
    columns = [c for c in RECORD_COLUMNS if c in ds.schema().names]
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise ValueError(f"clip records lack required columns {missing}")
    ds = ds.select_columns(columns)
    if limit is not None:
        ds = ds.limit(int(limit))
    if mode == "train":
        ds = ds.randomize_block_order(seed=seed)
    options = {
        "mode": mode,
        "slow_frames": int(slow_frames),
        "tau": int(tau),
        "alpha": int(alpha),
        "rule": rule,
        "target_fps": target_fps,
        "crop_size": int(crop_size),
        "short_side_range": (int(short_side_range[0]), int(short_side_range[1])),
        "test_short_side": int(test_short_side),
        "num_spatial_crops": int(num_spatial_crops) if mode == "test" else 1,
        "flip": bool(flip),
        "seed": seed,
    }
    remote: dict[str, Any] = {"num_cpus": decode_num_cpus}
    if resources:
        remote["resources"] = dict(resources)
    return ds.map_batches(
        decode_batch,
        batch_size=int(decode_batch_size),
        batch_format="numpy",
        fn_kwargs={"options": options},
        **remote,
    )


def record_rng(seed: int | None, video_id: str, clip_index: int) -> np.random.Generator:
    """Per-record generator: fixed by ``(seed, video_id, clip_index)``, or fresh entropy."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng([int(seed), zlib.crc32(video_id.encode()), int(clip_index)])


def clip_window(
    record: Mapping[str, Any], options: Mapping[str, Any], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(fast_idx, slow_idx)`` of the run's window for one record (see module docstring)."""
    fps, num_frames = float(record["fps"]), int(record["num_frames"])
    span = sampling.window_span(options["slow_frames"], options["tau"], fps, options["target_fps"])
    if options["mode"] == "train":
        start = sampling.random_start(rng, num_frames, span)
    else:
        old_span = record.get("span")
        old_span = span if old_span is None else int(old_span)
        start = sampling.rewindow(int(record["start_frame"]), old_span, span, num_frames)
    return sampling.clip_indices(
        start,
        num_frames,
        slow_frames=options["slow_frames"],
        tau=options["tau"],
        alpha=options["alpha"],
        fps=fps,
        target_fps=options["target_fps"],
        rule=options["rule"],
    )


def decode_batch(batch: Mapping[str, np.ndarray], options: Mapping[str, Any]) -> dict:
    """``map_batches`` UDF: records -> decoded, augmented rows (see module docstring)."""
    out: dict[str, list] = {k: [] for k in ("slow", "fast", "label", "video_id")}
    out.update(clip_index=[], spatial_index=[])
    n = len(batch["video_id"])
    for i in range(n):
        record = {k: batch[k][i] for k in batch}
        video_id, clip_index = str(record["video_id"]), int(record["clip_index"])
        rng = record_rng(options["seed"], video_id, clip_index)
        fast_idx, slow_idx = clip_window(record, options, rng)
        crop_size = options["crop_size"]
        if options["mode"] == "train":
            short = random_short_side(rng, *options["short_side_range"])
            slow, fast = decode_clip(record, fast_idx=fast_idx, slow_idx=slow_idx, short_side=short)
            views = [(random_crop([slow, fast], crop_size, rng), -1)]
            if options["flip"]:
                views = [(random_horizontal_flip(v, rng), s) for v, s in views]
        else:
            short = options["test_short_side"]
            slow, fast = decode_clip(record, fast_idx=fast_idx, slow_idx=slow_idx, short_side=short)
            k = options["num_spatial_crops"]
            index = range(k) if k == 3 else [0]
            views = [(spatial_crop([slow, fast], crop_size, s, k), s) for s in index]
            if k == 1:
                views = [(v, 1) for v, _ in views]  # the centre crop is crop 1 of 3
        for (s_view, f_view), spatial_index in views:
            out["slow"].append(s_view)
            out["fast"].append(f_view)
            out["label"].append(int(record["label_id"]))
            out["video_id"].append(video_id)
            out["clip_index"].append(clip_index)
            out["spatial_index"].append(spatial_index)
    return {
        "slow": np.stack(out["slow"]),
        "fast": np.stack(out["fast"]),
        "label": np.asarray(out["label"], dtype=np.int64),
        "video_id": np.asarray(out["video_id"], dtype=object),
        "clip_index": np.asarray(out["clip_index"], dtype=np.int32),
        "spatial_index": np.asarray(out["spatial_index"], dtype=np.int32),
    }
