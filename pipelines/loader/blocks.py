"""Clip records -> the Ray Dataset of one split, in epoch order, cut into decode-sized blocks.

:func:`record_blocks` is the first half of the loader (:mod:`pipelines.loader.dataset` decodes what it
returns). It reads the Parquet records that ingest wrote (``<root>/clips``, the split filter
pushed down into the reader, only the columns the loader reads), or takes a ``ray.data.Dataset``
of records as given.

- **Epoch order** (``shuffled``, train mode): the record files are read in a new random order
  every execution of the dataset (``read_parquet``'s file shuffle with
  ``reseed_after_execution``): streaming, so decoding starts with the first file, not after the
  whole split has been read. A seed fixes the sequence of orders. A given Dataset, or one cut to
  ``limit`` records, has its blocks permuted instead (``randomize_block_order``, seeded the same
  way). Until this module, train mode permuted *read blocks*; a read block holds up to 128 MB of
  records, so a dataset of that size or less was one block and came in the same order every
  epoch.
- **Reader**: Ray Data's first Parquet datasource (:func:`read_record_files`). Ray 2.60 sends
  ``read_parquet`` through its DataSourceV2 by default, whose file listing provisions a pool of
  footer-reading actors (32 by default) in every execution of the dataset, that is every epoch
  of train and of val, and kills them after: on a 2-CPU machine that cost 2-5 s an execution
  of three record files (most of a short epoch), against 0.35 s through the first datasource.
- **Blocks of ``block_rows`` records**: a streaming repartition (no shuffle) before the decode
  ``map_batches``, so the decode tasks of an epoch run in parallel on every CPU Ray gives them
  and the first rows reach training after one task, not after a whole read block.
"""

from __future__ import annotations

from typing import Any

from raysf import storage
from raysf.runtime import read_manifest
from raysf.storage import StorageLocation

#: Record columns the loader cannot do without.
REQUIRED_COLUMNS = (
    "video_id",
    "label_id",
    "clip_index",
    "fps",
    "num_frames",
    "start_frame",
    "content",
)
#: Every record column the loader reads (the optional ones are used when present).
RECORD_COLUMNS = (*REQUIRED_COLUMNS, "span", "frame_pts", "keyframes", "width", "height")


def record_blocks(
    source: Any,
    split: str,
    *,
    shuffled: bool,
    seed: int | None,
    block_rows: int,
    limit: int | None = None,
):
    """The records of ``split`` as a Ray Dataset of ``block_rows``-record blocks (see the
    module docstring); ``source``: a dataset root (its :class:`~raysf.storage.StorageLocation`;
    a path or URI is resolved with the AWS environment's S3 settings) or a Ray Dataset of
    records; ``shuffled``: a new order every epoch (``seed`` fixes the sequence)."""
    file_shuffled = shuffled and limit is None and is_path(source)
    ds = _records(source, split, file_shuffle(seed) if file_shuffled else None)
    if limit is not None:
        ds = ds.limit(int(limit))
    if shuffled and not file_shuffled:
        ds = ds.randomize_block_order(seed=block_order_seed(seed))
    return ds.repartition(target_num_rows_per_block=int(block_rows))


def is_path(source: Any) -> bool:
    """A dataset root (location, local path or URI), not a ``ray.data.Dataset`` of records."""
    return isinstance(source, (str, bytes, StorageLocation)) or hasattr(source, "__fspath__")


def file_shuffle(seed: int | None):
    """Read-time file order: new every execution (a seed fixes the sequence of orders)."""
    from ray.data import FileShuffleConfig  # heavy; the decode tasks never need it

    return FileShuffleConfig(seed=None if seed is None else int(seed), reseed_after_execution=True)


def block_order_seed(seed: int | None):
    """A block-order seed that changes with every execution of the dataset (None: unseeded)."""
    if seed is None:
        return None
    from ray.data import RandomSeedConfig  # heavy; the decode tasks never need it

    return RandomSeedConfig(seed=int(seed), reseed_after_execution=True)


def _records(source: Any, split: str, shuffle: Any):
    """The records of ``split`` (the columns the loader reads); ``shuffle``: ``read_parquet``'s
    file shuffle for a dataset root (a Dataset is taken as given)."""
    import ray.data  # heavy; the decode tasks never need it
    from ray.data.expressions import col

    if isinstance(source, ray.data.Dataset):
        ds = source
    else:
        root = storage.as_location(source)
        read_manifest(root)  # fail early on a root that is not a dataset
        ds = read_record_files(root.join("clips").path, root.filesystem, shuffle)
    # An expression filter: Ray's optimizer pushes it down into the Parquet reader.
    ds = ds.filter(expr=col("split") == split)
    columns = [c for c in RECORD_COLUMNS if c in ds.schema().names]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"clip records lack required columns {missing}")
    return ds.select_columns(columns)


def read_record_files(path: str, filesystem: Any = None, shuffle: Any = None):
    """The record files under ``path``: ``ray.data.read_parquet`` through Ray Data's first
    Parquet datasource (see the module docstring); the process's ``DataContext`` is left as it
    was."""
    import ray.data  # heavy; the decode tasks never need it

    context = ray.data.DataContext.get_current()
    previous = getattr(context, "use_datasource_v2", False)  # False: a Ray without DataSourceV2
    context.use_datasource_v2 = False
    try:
        return ray.data.read_parquet(path, filesystem=filesystem, shuffle=shuffle)
    finally:
        context.use_datasource_v2 = previous
