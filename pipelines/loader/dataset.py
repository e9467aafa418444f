"""Clip records -> Ray Dataset of decoded, augmented ``(fast, label)`` rows.

``build_clip_dataset`` takes a split's clip records in epoch order, cut into blocks of
``DecodeOptions.batch_size`` records (:mod:`pipelines.loader.blocks`), then decodes and augments
them in ``map_batches`` tasks (:class:`DecodeOptions`: one CPU each by default, optionally
pinned to decode nodes by a custom resource). Rows are uint8 so they travel through the object
store 4x smaller than floats; the training side normalises them on its device.

**Fast frames only.** With both index rules the Slow frames are positions of the Fast ones
(:func:`pipelines.sampling.slow_positions`, a pure function of the spec's ``T``, ``alpha`` and
rule), so a row carries only ``fast`` and the training device takes the Slow frames from it
(``training.device.inputs``): for alpha=8 that is 1/9 fewer bytes through the object store and over
PCIe, for alpha=4 1/5. A rule whose Slow frames were not a subset would ship ``slow`` as well
(:func:`pipelines.views.pathway_columns`); every consumer reads both forms.

Every clip is cut as a resolved :class:`~raysf.clip_spec.ClipSpec` says. Windows are
recomputed at load time from each record's ``num_frames``/``fps`` with the spec's
``(T, tau, alpha, rule, target_fps)``, which may differ from those the records were written with
(``manifest.json``): a sweep over ``alpha`` or ``tau`` never re-ingests.

- ``train``: random window (temporal jitter), then the training view of
  :mod:`pipelines.views` (random short side at decode, random crop, random flip);
  ``DecodeOptions.clips_per_decode`` views per record, cut from one decode; with
  ``DecodeOptions.convert_on_device`` as 4:2:0 planes of the crop's region, which the
  training device scales and converts (:mod:`pipelines.decode.planes`). Every
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines import sampling
from pipelines.decode.frames import decode_clip
from pipelines.decode.planes import PlaneView, empty_plane_rows, plane_rows
from pipelines.loader.blocks import record_blocks
from pipelines.loader.decode_errors import DecodeErrorSink
from pipelines.views import (
    pathway_columns,
    spatial_views,
    train_clips,
    train_planes,
    window_indices,
    window_span,
)
from raysf.clip_spec import ClipSpec

MODES = ("train", "val", "test")


@dataclass(frozen=True)
class DecodeOptions:
    """Where and how the decode tasks run (Ray Data ``map_batches``).

    Attributes:
        num_cpus: CPUs reserved per decode task.
        batch_size: records per task call.
        resources: extra Ray resources per task (``{"decode_node": 0.001}`` places decoding on
            nodes that advertise a custom ``decode_node`` resource).
        threads: decoder threads per task; None: one per reserved CPU (``num_cpus`` rounded
            down, at least 1), so the tasks together use the cores Ray gave them and no more.
        crop_first: train mode scales only the crop's source region (2-3x fewer pixels
            through swscale; see :mod:`pipelines.views`). Off: the whole frame is scaled, then
            cropped, bit-identical to earlier versions.
        clips_per_decode: train mode cuts this many rows (each its own random crop and flip,
            one window and short side) from each record's one decode; an epoch then has this
            many times the records' rows (:func:`pipelines.views.train_clips`). Val and test
            are unchanged.
        convert_on_device: train mode ships each view's source box as 4:2:0 planes, with no
            scaling or colour conversion on the CPU (:mod:`pipelines.decode.planes`); the training
            device turns them into the view (:mod:`training.device.yuv_to_rgb`). The same draws as
            ``crop_first``, which it replaces. Val and test rows stay RGB.
    """

    num_cpus: float = 1.0
    batch_size: int = 8
    resources: Mapping[str, float] = field(default_factory=dict)
    threads: int | None = None
    crop_first: bool = False
    clips_per_decode: int = 1
    convert_on_device: bool = False

    def __post_init__(self) -> None:
        if self.num_cpus <= 0:
            raise ValueError(f"DecodeOptions.num_cpus must be positive, got {self.num_cpus}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"DecodeOptions.batch_size must be >= 1, got {self.batch_size!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"DecodeOptions.threads must be >= 1 or None, got {self.threads!r}")
        if not isinstance(self.clips_per_decode, int) or self.clips_per_decode < 1:
            raise ValueError(
                f"DecodeOptions.clips_per_decode must be an int >= 1, got {self.clips_per_decode!r}"
            )
        if self.crop_first and self.convert_on_device:
            raise ValueError(
                "DecodeOptions: crop_first and convert_on_device are alternatives (the device "
                "conversion already scales only the crop's region); set one of them"
            )

    @property
    def decoder_threads(self) -> int:
        """Decoder threads per task (``threads``, or one per reserved CPU)."""
        return self.threads if self.threads is not None else max(1, int(self.num_cpus))

    def task_args(self) -> dict[str, Any]:
        """The decode function's keyword arguments that come from these options."""
        return dict(
            threads=self.decoder_threads,
            crop_first=self.crop_first,
            clips_per_decode=self.clips_per_decode,
            convert_on_device=self.convert_on_device,
        )

    def remote_args(self) -> dict[str, Any]:
        """The decode task's Ray resource arguments (``num_cpus``, custom ``resources``)."""
        remote: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.resources:
            remote["resources"] = dict(self.resources)
        return remote


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

    Returns:
        ``ray.data.Dataset`` with rows ``fast`` uint8 ``(alpha*T, crop, crop, 3)``, ``label``
        int64, ``video_id`` str, ``clip_index`` int32, ``spatial_index`` int32 (-1 for train's
        random crop); plus ``slow`` uint8 ``(T, crop, crop, 3)`` only for a rule whose Slow
        frames are not positions of the Fast ones (:func:`~pipelines.views.pathway_columns`).
        Train rows of ``decode.convert_on_device`` carry ``<pathway>_y``, ``<pathway>_uv``,
        ``region``, ``flip`` and ``yuv`` instead of the RGB pathways
        (:func:`pipelines.decode.planes.plane_rows`).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    spec.require_resolved("build_clip_dataset")
    ds = record_blocks(
        source,
        split,
        shuffled=mode == "train",
        seed=seed,
        block_rows=decode.batch_size,
        limit=limit,
    )
    udf_args = dict(spec=spec, mode=mode, seed=seed, errors=errors, **decode.task_args())
    ds = ds.map_batches(
        decode_batch,
        batch_size=decode.batch_size,
        batch_format="numpy",
        fn_kwargs=udf_args,
        **decode.remote_args(),
    )
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


def record_views(
    record: Mapping[str, Any],
    spec: ClipSpec,
    mode: str,
    seed: int | None = None,
    pathways: tuple[str, ...] = ("slow", "fast"),
    *,
    threads: int = 1,
    crop_first: bool = False,
    clips_per_decode: int = 1,
    convert_on_device: bool = False,
    iteration: int = 0,
) -> list[tuple[list[np.ndarray], int]] | list[PlaneView]:
    """The ``(view, spatial_index)`` pairs one record yields: ``clips_per_decode`` in train,
    one in val, the ``num_test_crops`` test views in test mode (see :mod:`pipelines.views`).
    A view holds the ``pathways`` asked for, in that order (the loader asks for
    :func:`pathway_columns`); ``threads``, ``crop_first``, ``clips_per_decode`` and
    ``convert_on_device`` (train views as :class:`~pipelines.decode.planes.PlaneView`) as in
    :class:`DecodeOptions`; ``iteration`` (the dataset's execution, i.e. the epoch) changes a
    seeded record's draws every epoch."""
    rng = record_rng(seed, str(record["video_id"]), int(record["clip_index"]), iteration)
    fast_idx, slow_idx = clip_window(record, spec, mode, rng)
    if mode == "train" and convert_on_device:
        return train_planes(
            record,
            fast_idx,
            slow_idx,
            spec,
            rng,
            count=clips_per_decode,
            pathways=pathways,
            threads=threads,
        )
    if mode == "train":
        clips = train_clips(
            record,
            fast_idx,
            slow_idx,
            spec,
            rng,
            count=clips_per_decode,
            crop_first=crop_first,
            threads=threads,
        )
        return [
            ([{"slow": slow, "fast": fast}[name] for name in pathways], -1) for slow, fast in clips
        ]
    slow, fast = decode_clip(
        record,
        fast_idx=fast_idx,
        slow_idx=slow_idx,
        short_side=spec.test_short_side,
        threads=threads,
    )
    clip = [{"slow": slow, "fast": fast}[name] for name in pathways]
    return spatial_views(clip, spec, num_crops=None if mode == "test" else 1)


def views_or_drop(
    record: Mapping[str, Any], errors: DecodeErrorSink | None, **view_args: Any
) -> list[tuple[list[np.ndarray], int]]:
    """:func:`record_views` (``view_args`` are its arguments), or ``[]`` after telling
    ``errors`` when the record fails (without ``errors`` the failure propagates)."""
    try:
        return record_views(record, **view_args)
    except Exception as exc:
        if errors is None:
            raise
        errors.record(record, exc)
        return []


def empty_rows(spec: ClipSpec, pathways: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A batch of zero rows with the loader's columns (every record of a batch failed)."""
    crop = spec.crop_size
    frames = {"slow": spec.slow_frames, "fast": spec.fast_frames}
    rows = {name: np.zeros((0, frames[name], crop, crop, 3), np.uint8) for name in pathways}
    rows.update(
        label=np.zeros(0, dtype=np.int64),
        video_id=np.zeros(0, dtype=object),
        clip_index=np.zeros(0, dtype=np.int32),
        spatial_index=np.zeros(0, dtype=np.int32),
    )
    return rows


def decode_batch(
    batch: Mapping[str, np.ndarray],
    spec: ClipSpec,
    mode: str,
    seed: int | None,
    *,
    threads: int = 1,
    crop_first: bool = False,
    clips_per_decode: int = 1,
    convert_on_device: bool = False,
    errors: DecodeErrorSink | None = None,
):
    """``map_batches`` UDF: records -> decoded, augmented rows (see module docstring)."""
    pathways = pathway_columns(spec)
    planes = convert_on_device and mode == "train"
    views: list = []
    meta: dict[str, list] = {"label": [], "video_id": [], "clip_index": []}
    iteration = _iteration() if seed is not None and mode == "train" else 0
    for i in range(len(batch["video_id"])):
        record = {k: batch[k][i] for k in batch}
        views_of = views_or_drop(
            record,
            errors,
            spec=spec,
            mode=mode,
            seed=seed,
            pathways=pathways,
            threads=threads,
            crop_first=crop_first,
            clips_per_decode=clips_per_decode,
            convert_on_device=planes,
            iteration=iteration,
        )
        for view in views_of:
            views.append(view)
            meta["label"].append(int(record["label_id"]))
            meta["video_id"].append(str(record["video_id"]))
            meta["clip_index"].append(int(record["clip_index"]))
    if planes:
        return plane_rows(views, pathways, meta) if views else empty_plane_rows(spec, pathways)
    if not views:
        return empty_rows(spec, pathways)
    return view_rows(views, pathways, meta)


def view_rows(
    views: list[tuple[list[np.ndarray], int]],
    pathways: tuple[str, ...],
    meta: Mapping[str, list],
) -> dict[str, np.ndarray]:
    """The loader's row batch: one stacked uint8 column per pathway, the label and ids."""
    rows = {name: np.stack([view[j] for view, _ in views]) for j, name in enumerate(pathways)}
    rows.update(
        label=np.asarray(meta["label"], dtype=np.int64),
        video_id=np.asarray(meta["video_id"], dtype=object),
        clip_index=np.asarray(meta["clip_index"], dtype=np.int32),
        spatial_index=np.asarray([s for _, s in views], dtype=np.int32),
    )
    return rows
