"""The dataset manifest (``manifest.json``) and per-shard commit markers.

Layout at the output URI::

    _ingest.json                 plan: listing fingerprint + config, written before any shard
    _shards/shard-00000.json     commit marker of one shard (written after its Parquet files)
    clips/shard-00000.parquet    clip records
    rejects/shard-00000.parquet  one row per unusable input
    manifest.json                written last, from the markers: the dataset is complete

A shard is committed iff its marker exists; the marker holds the shard's counts, so the
manifest is a pure function of the markers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow.fs as pafs

from pipelines import storage
from pipelines.records import SCHEMA_VERSION

MANIFEST_NAME = "manifest.json"
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
    """Sum the shard markers into the manifest and check ``inputs == videos + rejects``.

    Raises ``ValueError`` when the counts do not add up (a shard is missing or counted twice).
    """
    videos = sum(m["videos"] for m in markers)
    rejects = sum(m["rejects"] for m in markers)
    inputs = sum(m["inputs"] for m in markers)
    if inputs != num_inputs or videos + rejects != num_inputs:
        raise ValueError(
            f"shard counts do not add up: listing has {num_inputs} inputs, shards hold "
            f"{inputs} inputs = {videos} videos + {rejects} rejects"
        )
    per_split = _merge_nested(m["per_split"] for m in markers)
    per_class = _merge_nested(m["per_class"] for m in markers)
    reasons = Counter()
    for m in markers:
        reasons.update(m["reject_reasons"])
    return {
        "schema_version": SCHEMA_VERSION,
        "complete": True,
        "classes": [{"label_id": i, "name": name} for i, name in enumerate(classes)],
        "num_classes": len(classes),
        "counts": {
            "inputs": num_inputs,
            "videos": videos,
            "rejects": rejects,
            "clips": sum(m["clips"] for m in markers),
        },
        "per_split": per_split,
        "per_class": per_class,
        "reject_reasons": dict(sorted(reasons.items())),
        "sampling": config["sampling"],
        "segment": config["segment"],
        "reencode": config["reencode"],
        "listing_fingerprint": listing_fingerprint,
        "config": config,
        "shards": [
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
        ],
    }


def _merge_nested(items: Iterable[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """Sum ``{outer: {inner: count}}`` dicts."""
    out: dict[str, Counter] = {}
    for item in items:
        for outer, counts in item.items():
            out.setdefault(outer, Counter()).update(counts)
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def read_manifest(uri: str, endpoint_url: str | None = None) -> dict[str, Any]:
    """Read ``manifest.json`` of a dataset URI; ``ValueError`` if absent or of another version."""
    fs, root = storage.resolve_filesystem(uri, endpoint_url)
    path = storage.join(root, MANIFEST_NAME)
    if not storage.is_file(fs, path):
        raise ValueError(f"{uri} has no {MANIFEST_NAME} (ingest not run or not finished)")
    manifest = read_json(fs, path)
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{uri}: manifest schema_version {manifest.get('schema_version')!r}, "
            f"expected {SCHEMA_VERSION}"
        )
    return manifest
