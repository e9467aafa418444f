"""The ingest's shards: their planning, commit markers, and the manifest summed from them.

Layout at the output URI::

    _ingest.json                 plan: listing fingerprint + config, written before any shard
    _shards/shard-00000.json     commit marker of one shard (written after its Parquet files)
    clips/shard-00000.parquet    clip records
    rejects/shard-00000.parquet  one row per unusable input
    manifest.json                written last, from the markers: the dataset is complete

A shard is committed iff its marker exists; the marker holds the shard's counts, so the
manifest (its format: :mod:`raysf.manifest`) is a pure function of the markers.

An input that failed for a reason that may pass (:class:`~pipelines.ingest.clips.
TransientError`) is listed in its marker under ``transient_inputs``, never as a reject: such a
shard counts as *not done*, and the next run rebuilds it (:func:`done_shards`). The marker also
holds the sha256 of every video's bytes (``hashes``), from which the manifest lists the same
video in two splits (:mod:`pipelines.ingest.leaks`). The Parquet files and the marker are written with
the retries of :func:`raysf.storage.retry_transient`; a shard whose files still cannot be
written stays uncommitted.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import av
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.ingest import formats
from pipelines.ingest.clips import TransientError, process_video, reject_row
from pipelines.ingest.config import IngestConfig
from pipelines.ingest.sources import Listing, SourceEntry
from pipelines.schema import clip_table, reject_table
from raysf import storage
from raysf.manifest import MANIFEST_VERSION
from raysf.storage import StorageLocation

PLAN_NAME = "_ingest.json"
MARKER_DIR = "_shards"


def shard_name(index: int) -> str:
    """``shard-00042`` for shard 42 (fixed width keeps lexical order == numeric order)."""
    return f"shard-{index:05d}"


def marker_path(root: str, shard: str) -> str:
    return storage.join(root, MARKER_DIR, f"{shard}.json")


def clips_path(root: str, shard: str) -> str:
    return storage.join(root, "clips", f"{shard}.parquet")


def rejects_path(root: str, shard: str) -> str:
    return storage.join(root, "rejects", f"{shard}.parquet")


def write_json(fs: pafs.FileSystem, path: str, data: dict[str, Any]) -> None:
    storage.write_bytes_atomic(fs, path, json.dumps(data, indent=1, sort_keys=True).encode())


def read_json(fs: pafs.FileSystem, path: str) -> dict[str, Any]:
    try:
        return json.loads(storage.read_text(fs, path))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{storage.to_uri(fs, path)}: invalid JSON: {exc}") from exc


def done_shards(fs: pafs.FileSystem, root: str) -> set[str]:
    """Committed shards without transient failures: the ones a rerun skips."""
    return {
        name
        for name in committed_shards(fs, root)
        if not read_json(fs, marker_path(root, name)).get("transient_inputs")
    }


def committed_shards(fs: pafs.FileSystem, root: str) -> set[str]:
    """Names of the shards whose commit marker exists."""
    prefix = storage.join(root, MARKER_DIR)
    names = set()
    for path in storage.list_files(fs, prefix, recursive=False):
        base = path.rsplit("/", 1)[-1]
        if base.startswith("shard-") and base.endswith(".json"):
            names.add(base[: -len(".json")])
    return names


def build_manifest(
    *,
    markers: Sequence[dict[str, Any]],
    classes: Sequence[str],
    listing_fingerprint: str,
    config: dict[str, Any],
    num_inputs: int,
) -> dict[str, Any]:
    """Sum the shard markers into the manifest; ``inputs == videos + rejects + transient``
    (else ``ValueError``: a shard missing or counted twice). ``complete``: nothing transient
    (the ingest also unsets it above ``checks.max_reject_fraction``). ``formats`` counts the
    inputs per source format, ``reencoded`` lists the videos re-encoded because their stream
    could not be stored as it is (:mod:`pipelines.ingest.formats`)."""
    videos = sum(m["videos"] for m in markers)
    rejects = sum(m["rejects"] for m in markers)
    inputs = sum(m["inputs"] for m in markers)
    transient = [t for m in markers for t in m.get("transient_inputs", [])]
    _check_counts(num_inputs, inputs, videos, rejects, len(transient))
    per_split = _merge_nested(m["per_split"] for m in markers)
    per_class = _merge_nested(m["per_class"] for m in markers)
    reasons = Counter()
    for m in markers:
        reasons.update(m["reject_reasons"])
    return {
        "schema_version": MANIFEST_VERSION,
        "complete": not transient,
        "classes": [{"label_id": i, "name": name} for i, name in enumerate(classes)],
        "num_classes": len(classes),
        "counts": {
            "inputs": num_inputs,
            "videos": videos,
            "rejects": rejects,
            "clips": sum(m["clips"] for m in markers),
            "transient": len(transient),
        },
        "transient": sorted(transient, key=lambda t: (t["split"], t["video_id"])),
        "per_split": per_split,
        "per_class": per_class,
        "reject_reasons": dict(sorted(reasons.items())),
        "formats": formats.sum_formats(markers),
        "reencoded": formats.all_reencoded(markers),
        "clip_spec": config["clip_spec"],
        "segment": config["segment"],
        "reencode": config["reencode"],
        "listing_fingerprint": listing_fingerprint,
        "config": config,
        "shards": _shard_entries(markers),
    }


def _check_counts(num_inputs: int, inputs: int, videos: int, rejects: int, transient: int) -> None:
    """``ValueError`` unless the shards hold every input of the listing exactly once."""
    if inputs != num_inputs or videos + rejects + transient != num_inputs:
        raise ValueError(
            f"shard counts do not add up: listing has {num_inputs} inputs, shards hold "
            f"{inputs} inputs = {videos} videos + {rejects} rejects + {transient} transient"
        )


def _shard_entries(markers: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The manifest's ``shards`` list: each shard's files and counts, by shard name."""
    return [
        {
            "name": m["shard"],
            "clips": f"clips/{m['shard']}.parquet",
            "rejects": f"rejects/{m['shard']}.parquet",
            "inputs": m["inputs"],
            "videos": m["videos"],
            "clips_count": m["clips"],
            "rejects_count": m["rejects"],
        }
        for m in sorted(markers, key=lambda m: m["shard"])
    ]


def _merge_nested(items: Iterable[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """Sum ``{outer: {inner: count}}`` dicts."""
    out: dict[str, Counter] = {}
    for item in items:
        for outer, counts in item.items():
            out.setdefault(outer, Counter()).update(counts)
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


@dataclass(frozen=True)
class ShardTask:
    """One shard to build: its name and its inputs (with label ids / duplicate flags)."""

    shard: str
    items: tuple[tuple[SourceEntry, int | None, bool], ...]


def plan_shards(listing: Listing, shard_size: int) -> list[ShardTask]:
    """Cut the sorted listing into fixed-size shards (deterministic)."""
    seen: set[tuple[str, str]] = set()
    items = []
    for entry in listing.entries:
        key = (entry.split, entry.video_id)
        items.append((entry, listing.label_id(entry.label), key in seen))
        seen.add(key)
    return [
        ShardTask(shard_name(k), tuple(items[i : i + shard_size]))
        for k, i in enumerate(range(0, len(items), shard_size))
    ]


def build_shard(task: ShardTask, cfg: IngestConfig, out: StorageLocation) -> dict[str, Any]:
    """Process every input of ``task``, write its Parquet files, then its commit marker.

    Returns the marker (shard counts). ``out`` is the output location (``cfg.out``, resolved).
    Raises :class:`~pipelines.ingest.clips.TransientError` when a file cannot be written even
    after the retries (the shard then stays uncommitted).
    """
    av.logging.set_level(av.logging.PANIC)
    fs, root = out.filesystem, out.path
    clips: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    transient: list[dict[str, Any]] = []
    hashes: list[list[str]] = []
    for entry, label_id, duplicate in task.items:
        seen: dict[str, str] = {}
        try:
            rows, reject = process_video(entry, label_id, duplicate, cfg, seen)
        except TransientError as exc:
            row = reject_row(entry, "transient", str(exc))
            transient.append({**row, "source_format": seen["source_format"]})
            continue
        if reject is not None:
            rejects.append(reject)
            continue
        hashes.append([entry.split, entry.video_id, rows[0]["source_sha256"]])
        clips.extend(rows)
    inputs = Counter(entry.split for entry, _, _ in task.items)
    marker = shard_marker(task.shard, inputs, clips, rejects, transient)
    marker["hashes"] = hashes
    write_shard(fs, root, marker, clip_table(clips), reject_table(rejects), cfg)
    return marker


def shard_marker(
    shard: str,
    inputs: Counter,
    clips: Sequence[dict[str, Any]],
    rejects: Sequence[dict[str, Any]],
    transient: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """The counts of a shard: ``inputs`` per split and its clip, reject and transient rows
    (each a dict with at least ``split``, ``video_id``, ``label``; the per-format counts of
    :func:`~pipelines.ingest.formats.shard_formats` from their ``source_format`` and
    ``stored_as``)."""
    per_split: dict[str, Counter] = {split: Counter(inputs=n) for split, n in inputs.items()}
    per_class: dict[str, Counter] = {}
    for row in rejects:
        per_split[row["split"]]["rejects"] += 1
    for row in transient:
        per_split[row["split"]]["transient"] += 1
    for split, _, label in sorted({(r["split"], r["video_id"], r["label"]) for r in clips}):
        per_split[split]["videos"] += 1
        per_class.setdefault(label, Counter())[split] += 1
    for row in clips:
        per_split[row["split"]]["clips"] += 1
    total = sum(inputs.values())
    return {
        "shard": shard,
        "inputs": total,
        "videos": total - len(rejects) - len(transient),
        "clips": len(clips),
        "rejects": len(rejects),
        "per_split": {k: dict(v) for k, v in per_split.items()},
        "per_class": {k: dict(v) for k, v in per_class.items()},
        "reject_reasons": dict(Counter(r["reason"] for r in rejects)),
        "transient_inputs": list(transient),
        **formats.shard_formats(clips, rejects, transient),
    }


def write_shard(fs, root: str, marker: dict[str, Any], clips, rejects, cfg: IngestConfig) -> None:
    """Write a shard's rejects and clips tables, then its marker (each with retries).

    Rejects go first: a rewrite that removes clip rows (:mod:`pipelines.ingest.leaks`) and is killed
    half-way never leaves a video in neither table.
    """
    shard = marker["shard"]
    retries = {"attempts": cfg.retries.attempts, "backoff_s": cfg.retries.backoff_s}
    for path, table, group in (
        (rejects_path(root, shard), rejects, 1024),
        (clips_path(root, shard), clips, cfg.row_group_size),
    ):
        storage.retry_transient(
            lambda path=path, table=table, group=group: _write_parquet(fs, path, table, group),
            what=f"write {storage.to_uri(fs, path)}",
            **retries,
        )
    path = marker_path(root, shard)
    storage.retry_transient(
        lambda: write_json(fs, path, marker), what=f"write {storage.to_uri(fs, path)}", **retries
    )


def _write_parquet(fs, path: str, table, row_group_size: int) -> None:
    buffer = io.BytesIO()
    compression = {name: ("none" if name == "content" else "zstd") for name in table.column_names}
    pq.write_table(table, buffer, row_group_size=row_group_size, compression=compression)
    storage.write_bytes_atomic(fs, path, buffer.getvalue())
