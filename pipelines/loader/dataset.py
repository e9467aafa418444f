"""Clip records -> Ray Dataset of decoded, augmented ``(fast, label)`` rows.

``build_clip_dataset`` takes a split's clip records in epoch order, cut into blocks of
``DecodeOptions.batch_size`` records (:mod:`pipelines.loader.blocks`), then decodes and augments
them in ``map_batches`` tasks (:class:`~pipelines.loader.options.DecodeOptions`: one CPU each by default, optionally
pinned to decode nodes by a custom resource). Rows are uint8 so they travel through the object
store 4x smaller than floats; the training side normalises them on its device.

**Fast frames only.** With both index rules the Slow frames are positions of the Fast ones
(:func:`pipelines.sampling.slow_positions`, a pure function of the spec's ``T``, ``alpha`` and
rule), so a row carries only ``fast`` and the training device takes the Slow frames from it
(``training.device.inputs``): for alpha=8 that is 1/9 fewer bytes through the object store and over
PCIe, for alpha=4 1/5. Every index rule must keep its Slow frames a subset of its Fast ones.

Every clip is cut as a resolved :class:`~raysf.clip_spec.ClipSpec` says. Windows are
recomputed at load time from each record's ``num_frames``/``fps`` with the spec's
``(T, tau, alpha, rule, target_fps)``, which may differ from those the records were written with
(``manifest.json``): a sweep over ``alpha`` or ``tau`` never re-ingests.

- ``train``: random window (temporal jitter), then the training view of
  :mod:`pipelines.views` (random short side at decode, random crop, random flip: a flipped
  view of a class the dataset pairs trains with the other class's label, ``flip_map``);
  ``DecodeOptions.clips_per_decode`` views per record, cut from one decode, in the form
  ``DecodeOptions.train_view`` names (one dispatch, :data:`TRAIN_VIEWS`): RGB, RGB scaled from
  the crop's region only, or 4:2:0 planes of the crop's region, which the training device
  scales and converts (:mod:`pipelines.decode.planes`). Every
  iteration of the dataset (every epoch) draws new windows: from fresh OS entropy per task, or,
  when ``seed`` is given, as a fixed function of ``(seed, iteration, video_id, clip_index)``
  where ``iteration`` counts the executions of the dataset (Ray Data's execution index, the one
  its seeded ``random()`` expression uses). A seeded dataset also orders its files by the seed
  (again per iteration) and hands rows out in that order (``preserve_order``): the same seed
  gives the same epochs, row for row. Ray Train replaces a dataset's execution options with its
  ``DataConfig``'s: pass :func:`seeded_execution_options` there.
- ``val``: the record's window re-centred for the run's span, short side
  ``test_short_side``, centre crop.
- ``test``: as ``val`` but the ``num_test_crops`` test views, one output row per (clip, crop).

Shuffling: ``train`` reads the record files in a new random order every epoch
(:mod:`pipelines.loader.blocks`); add ``local_shuffle_buffer_size=...`` to
``iter_torch_batches``/``iter_batches`` for row-level mixing (no full ``random_shuffle``).

A record that fails to decode fails its task unless the dataset was built with ``errors`` (a
:class:`~pipelines.loader.decode_errors.DecodeErrorSink`): then the record is dropped, the others of
its batch go on, and the failure is counted in the run's log (:mod:`pipelines.loader.decode_errors`).
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

from pipelines import sampling
from pipelines.decode.frames import decode_clip
from pipelines.decode.planes import PLANE_COLUMNS, PlaneView, empty_plane_rows, plane_rows
from pipelines.loader.blocks import record_blocks
from pipelines.loader.decode_errors import DecodeErrorSink
from pipelines.loader.options import DecodeOptions
from pipelines.views import spatial_views, train_clips, train_planes, window_indices, window_span
from raysf.clip_spec import ClipSpec

MODES = ("train", "val", "test")
#: The pixel column of RGB rows (val, test, and train with ``train_view`` ``rgb``/``crop_first``).
RGB_COLUMNS = ("fast",)

V = TypeVar("V")


class RgbView(NamedTuple):
    """An RGB view: ``fast`` uint8 ``(alpha*T, crop, crop, 3)``, its test crop index (-1: a
    random training crop) and whether it was flipped (as :class:`PlaneView`'s ``flip``)."""

    fast: np.ndarray
    spatial_index: int
    flip: bool = False


Window = tuple[np.ndarray, np.ndarray]  # (fast_idx, slow_idx), clip_window


def build_clip_dataset(
    source: Any,
    *,
    split: str,
    mode: str,
    spec: ClipSpec,
    decode: DecodeOptions = DecodeOptions(),
    seed: int | None = None,
    limit: int | None = None,
    errors: DecodeErrorSink | None = None,
    flip_map: tuple[int, ...] | None = None,
):
    """Ray Dataset of decoded clips for one split.

    Args:
        source: dataset root holding ``clips/`` and ``manifest.json`` (its
            :class:`~raysf.storage.StorageLocation`; a local path or ``s3://`` URI is resolved
            with the AWS environment's S3 settings) or a ``ray.data.Dataset`` of clip records.
        split: records to keep (``"train"``, ``"val"``, ``"test"``...).
        mode: ``"train"`` | ``"val"`` | ``"test"`` (augmentation, see module docstring).
        spec: how clips are cut and fed; must be resolved (:meth:`ClipSpec.resolve`).
        decode: where and how the decode tasks run.
        seed: fixed augmentation per record (default: new randomness every iteration).
        limit: keep at most this many records (smoke tests).
        errors: drop a record that fails to decode and count it there (default: the failure
            fails the task).
        flip_map: the label a flipped training view gets, by label id (the dataset's
            :meth:`raysf.flip_labels.FlipLabels.label_map`; None: flips keep labels).

    Returns:
        ``ray.data.Dataset`` with rows ``fast`` uint8 ``(alpha*T, crop, crop, 3)``, ``label``
        int64, ``video_id`` str, ``clip_index`` int32, ``spatial_index`` int32 (-1 for train's
        random crop). Train rows of ``decode.train_view`` ``planes`` carry ``fast_y``,
        ``fast_uv``, ``region``, ``flip`` and ``yuv`` instead of ``fast``
        (:func:`pipelines.decode.planes.plane_rows`); :func:`view_kind` names the columns.
    """
    view_kind(mode, decode)  # checks the mode
    spec.require_resolved("build_clip_dataset")
    blocks = dict(block_rows=decode.batch_size, limit=limit)
    ds = record_blocks(source, split, shuffled=mode == "train", seed=seed, **blocks)
    udf_args = dict(spec=spec, mode=mode, seed=seed, decode=decode, errors=errors)
    udf_args["flip_map"] = flip_map
    tasks = dict(batch_size=decode.batch_size, batch_format="numpy", fn_kwargs=udf_args)
    ds = ds.map_batches(decode_batch, **tasks, **decode.remote_args())
    if seed is not None:
        # Rows in input order, not in the order the decode tasks finish.
        ds.context.execution_options.preserve_order = True
    return ds


def seeded_execution_options():
    """Ray Data execution options for a seeded dataset under Ray Train: the driver's defaults
    (as Ray Train's own ``default_ingest_options``) with ``preserve_order``."""
    from ray.data.context import DataContext  # heavy; the decode functions work without it

    options = copy.deepcopy(DataContext.get_current().execution_options)
    options.preserve_order = True
    return options


def _iteration() -> int:
    """How many times the dataset being decoded has been executed before (0 on the first).

    Read from the Ray Data context the task runs with; Ray Data increments it after each
    execution, as its seeded ``random()`` expression relies on. Outside Ray Data: 0.
    """
    from ray.data.context import DataContext  # runs inside a Ray Data task

    return int(getattr(DataContext.get_current(), "_execution_idx", 0))


def record_rng(
    seed: int | None, video_id: str, clip_index: int, iteration: int = 0
) -> np.random.Generator:
    """Per-record generator: fixed by ``(seed, iteration, video_id, clip_index)``, or fresh
    entropy without a seed."""
    if seed is None:
        return np.random.default_rng()
    key = [int(seed), zlib.crc32(video_id.encode()), int(clip_index)]
    return np.random.default_rng(key + ([int(iteration)] if iteration else []))


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


@dataclass(frozen=True)
class ViewKind(Generic[V]):
    """One form of the views a record yields: where its window comes from (``mode``), how the
    views are cut from it, and how they are stacked into the loader's row batch."""

    mode: str  # "train" (a random window) or "val"/"test" (the record's window re-centred)
    cut: Callable[
        [Mapping[str, Any], Window, ClipSpec, np.random.Generator, DecodeOptions], list[V]
    ]
    rows: Callable[[list[V], Mapping[str, list]], dict[str, np.ndarray]]
    empty: Callable[[ClipSpec], dict[str, np.ndarray]]  # the columns of rows, zero of them
    columns: tuple[str, ...]  # the pixel columns of its rows


def _train_rgb(
    record: Mapping[str, Any],
    window: Window,
    spec: ClipSpec,
    rng: np.random.Generator,
    decode: DecodeOptions,
    *,
    crop_first: bool,
) -> list[RgbView]:
    """``clips_per_decode`` RGB training views (:func:`pipelines.views.train_clips`)."""
    count, threads = decode.clips_per_decode, decode.decoder_threads
    clips = train_clips(
        record, *window, spec, rng, count=count, crop_first=crop_first, threads=threads
    )
    return [RgbView(clip[1], -1, flip) for clip, flip in clips]


def _train_planes(
    record: Mapping[str, Any],
    window: Window,
    spec: ClipSpec,
    rng: np.random.Generator,
    decode: DecodeOptions,
) -> list[PlaneView]:
    """``clips_per_decode`` training views as planes (:func:`pipelines.views.train_planes`)."""
    count, threads = decode.clips_per_decode, decode.decoder_threads
    return train_planes(record, *window, spec, rng, count=count, threads=threads)


def _test_views(
    record: Mapping[str, Any],
    window: Window,
    spec: ClipSpec,
    rng: np.random.Generator,
    decode: DecodeOptions,
    *,
    num_crops: int | None,
) -> list[RgbView]:
    """The test views of the window at ``test_short_side`` (``num_crops`` None: the spec's)."""
    fast_idx, slow_idx = window
    _, fast = decode_clip(
        record,
        fast_idx=fast_idx,
        slow_idx=slow_idx,
        short_side=spec.test_short_side,
        threads=decode.decoder_threads,
    )
    return [RgbView(view[0], s) for view, s in spatial_views([fast], spec, num_crops=num_crops)]


def view_rows(views: list[RgbView], meta: Mapping[str, list]) -> dict[str, np.ndarray]:
    """The loader's row batch of RGB views: the stacked uint8 ``fast``, the label and ids."""
    return {
        "fast": np.stack([view.fast for view in views]),
        "label": np.asarray(meta["label"], dtype=np.int64),
        "video_id": np.asarray(meta["video_id"], dtype=object),
        "clip_index": np.asarray(meta["clip_index"], dtype=np.int32),
        "spatial_index": np.asarray([view.spatial_index for view in views], dtype=np.int32),
    }


def empty_rows(spec: ClipSpec) -> dict[str, np.ndarray]:
    """A batch of zero RGB rows with the loader's columns (every record of a batch failed)."""
    crop = spec.crop_size
    return {
        "fast": np.zeros((0, spec.fast_frames, crop, crop, 3), np.uint8),
        "label": np.zeros(0, dtype=np.int64),
        "video_id": np.zeros(0, dtype=object),
        "clip_index": np.zeros(0, dtype=np.int32),
        "spatial_index": np.zeros(0, dtype=np.int32),
    }


def _rgb(mode: str, cut: Callable[..., list[RgbView]]) -> ViewKind[RgbView]:
    return ViewKind(mode, cut, view_rows, empty_rows, RGB_COLUMNS)


#: The one dispatch on ``DecodeOptions.train_view``: the kind of train mode's views.
TRAIN_VIEWS: dict[str, ViewKind] = {
    "rgb": _rgb("train", partial(_train_rgb, crop_first=False)),
    "crop_first": _rgb("train", partial(_train_rgb, crop_first=True)),
    "planes": ViewKind("train", _train_planes, plane_rows, empty_plane_rows, PLANE_COLUMNS),
}
EVAL_VIEWS: dict[str, ViewKind[RgbView]] = {
    "val": _rgb("val", partial(_test_views, num_crops=1)),
    "test": _rgb("test", partial(_test_views, num_crops=None)),
}


def view_kind(mode: str, decode: DecodeOptions) -> ViewKind:
    """The kind of views ``mode`` cuts: train's by ``decode.train_view``; val and test RGB."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return TRAIN_VIEWS[decode.train_view] if mode == "train" else EVAL_VIEWS[mode]


def record_views(
    record: Mapping[str, Any],
    kind: ViewKind[V],
    spec: ClipSpec,
    decode: DecodeOptions,
    *,
    seed: int | None = None,
    iteration: int = 0,
) -> list[V]:
    """The views one record yields: ``decode.clips_per_decode`` in train, one in val, the
    ``num_test_crops`` test views in test mode (see :mod:`pipelines.views`), cut as ``kind``
    says (:func:`view_kind`); ``iteration`` (the dataset's execution, i.e. the epoch) changes a
    seeded record's draws every epoch."""
    rng = record_rng(seed, str(record["video_id"]), int(record["clip_index"]), iteration)
    window = clip_window(record, spec, kind.mode, rng)
    return kind.cut(record, window, spec, rng, decode)


def views_or_drop(
    record: Mapping[str, Any], errors: DecodeErrorSink | None, *view_args: Any, **view_kwargs: Any
) -> list:
    """:func:`record_views` (``view_args``, ``view_kwargs`` are its other arguments), or ``[]``
    after telling ``errors`` when the record fails (without ``errors`` the failure propagates)."""
    try:
        return record_views(record, *view_args, **view_kwargs)
    except Exception as exc:
        if errors is None:
            raise
        errors.record(record, exc)
        return []


def decode_batch(
    batch: Mapping[str, np.ndarray],
    spec: ClipSpec,
    mode: str,
    seed: int | None,
    *,
    decode: DecodeOptions = DecodeOptions(),
    errors: DecodeErrorSink | None = None,
    flip_map: tuple[int, ...] | None = None,
) -> dict[str, np.ndarray]:
    """``map_batches`` UDF: records -> decoded, augmented rows (see module docstring); a
    flipped view's label is ``flip_map[label_id]`` (None: flips keep labels)."""
    kind = view_kind(mode, decode)
    views: list = []
    meta: dict[str, list] = {"label": [], "video_id": [], "clip_index": []}
    iteration = _iteration() if seed is not None and mode == "train" else 0
    for i in range(len(batch["video_id"])):
        record = {k: batch[k][i] for k in batch}
        for view in views_or_drop(
            record, errors, kind, spec, decode, seed=seed, iteration=iteration
        ):
            views.append(view)
            label = int(record["label_id"])
            meta["label"].append(flip_map[label] if flip_map and view.flip else label)
            meta["video_id"].append(str(record["video_id"]))
            meta["clip_index"].append(int(record["clip_index"]))
    return kind.rows(views, meta) if views else kind.empty(spec)
