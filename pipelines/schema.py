"""Arrow schemas of the clip records and the rejects table (documented in docs/data.md).

One clip record is one row: the clip's metadata, its default sampling indices and its video
content inline (``content``), so training reads Parquet row groups and never opens the
original files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

#: Bumped whenever a column is added, removed or changes meaning.
SCHEMA_VERSION = 2

CLIP_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("label_id", pa.int32(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("clip_index", pa.int32(), nullable=False),
        pa.field("fps", pa.float64(), nullable=False),
        pa.field("num_frames", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("start_frame", pa.int32(), nullable=False),
        pa.field("fast_idx", pa.list_(pa.int32()), nullable=False),
        pa.field("slow_idx", pa.list_(pa.int32()), nullable=False),
        pa.field("content", pa.binary(), nullable=False),
        pa.field("frame_pts", pa.list_(pa.int64()), nullable=False),
        pa.field("keyframes", pa.list_(pa.int32()), nullable=False),
        pa.field("span", pa.int32(), nullable=False),
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("rotation", pa.int32(), nullable=False),
        pa.field("codec", pa.string(), nullable=False),
        pa.field("source_start_frame", pa.int32(), nullable=False),
    ],
    metadata={"raysf.schema_version": str(SCHEMA_VERSION)},
)

REJECT_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
    ],
    metadata={"raysf.schema_version": str(SCHEMA_VERSION)},
)

_LIST_COLUMNS = {"fast_idx": np.int32, "slow_idx": np.int32, "frame_pts": np.int64}


def clip_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows (dicts with every :data:`CLIP_SCHEMA` column) -> Arrow table in schema order.

    Raises ``ValueError`` naming the column when a row lacks one.
    """
    return _table(rows, CLIP_SCHEMA)


def reject_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows with every :data:`REJECT_SCHEMA` column -> Arrow table."""
    return _table(rows, REJECT_SCHEMA)


def _table(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    columns = {}
    for field in schema:
        values = []
        for i, row in enumerate(rows):
            if field.name not in row:
                raise ValueError(f"record {i} has no column {field.name!r}")
            value = row[field.name]
            if isinstance(value, np.ndarray):
                value = value.tolist()
            values.append(value)
        columns[field.name] = pa.array(values, type=field.type)
    return pa.Table.from_pydict(columns, schema=schema)


def check_clip_table(table: pa.Table) -> None:
    """Raise ``ValueError`` naming the column if ``table`` does not match :data:`CLIP_SCHEMA`."""
    for field in CLIP_SCHEMA:
        if field.name not in table.column_names:
            raise ValueError(f"clip table has no column {field.name!r}")
        got = table.schema.field(field.name).type
        if got != field.type:
            raise ValueError(f"clip column {field.name!r} has type {got}, expected {field.type}")
