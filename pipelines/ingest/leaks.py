"""The same video in two splits ("split leaks"), found from the shards' content hashes.

Every shard marker lists the sha256 of each video's bytes (computed where the bytes are read,
:mod:`pipelines.ingest.clips`). :func:`find_split_leaks` groups the videos whose bytes are
identical across two or more splits; the manifest lists them under ``split_leaks``.

With ``checks.split_leaks: reject`` the copies outside the *held-out* split are rejected as
``split_leak`` (:func:`leak_rejects`): the copies in ``test`` stay, else those in ``val``, else
those in the first other split by name; ``train`` copies never stay when another split has the
video, because the evaluation sets are the fixed ones and the training data is what one
controls. A shard with such copies is rewritten (:func:`apply_leak_rejects`): its clip rows of
those videos are removed, reject rows added, its marker recomputed (its per-format counts,
:mod:`pipelines.ingest.formats`, count those videos as rejected instead of stored). The
rewrite is idempotent (rejects first, then clips, then the marker), so a killed run or a
rerun ends in the same files.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.ingest import formats, shards
from pipelines.ingest.config import IngestConfig
from pipelines.schema import reject_table
from raysf import storage


def find_split_leaks(markers: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[{"sha256", "copies": [{"split", "video_id", "shard"}]}]`` for every content hash
    found in more than one split, sorted by hash, copies by ``(split, video_id)``."""
    by_hash: dict[str, list[dict[str, str]]] = defaultdict(list)
    for marker in markers:
        for split, video_id, digest in marker.get("hashes", []):
            by_hash[digest].append({"split": split, "video_id": video_id, "shard": marker["shard"]})
    return [
        {"sha256": digest, "copies": sorted(copies, key=lambda c: (c["split"], c["video_id"]))}
        for digest, copies in sorted(by_hash.items())
        if len({c["split"] for c in copies}) > 1
    ]


def kept_split(splits: Iterable[str]) -> str:
    """The split whose copies of a leaked video stay: test, val, other held-out, train."""

    def rank(split: str) -> tuple[int, str]:
        return {"test": (0, ""), "val": (1, ""), "train": (3, "")}.get(split, (2, split))

    return min(splits, key=rank)


def leak_rejects(leaks: Sequence[dict[str, Any]]) -> dict[str, list[tuple[str, str, str]]]:
    """``{shard: [(split, video_id, message)]}``: the copies that ``reject`` removes."""
    out: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for leak in leaks:
        keep = kept_split(c["split"] for c in leak["copies"])
        kept = [f"{c['split']}/{c['video_id']}" for c in leak["copies"] if c["split"] == keep]
        for copy in leak["copies"]:
            if copy["split"] != keep:
                message = f"same bytes (sha256 {leak['sha256'][:16]}) as {', '.join(kept)}"
                out[copy["shard"]].append((copy["split"], copy["video_id"], message))
    return dict(out)


def manifest_leaks(leaks: Sequence[dict[str, Any]], rejected: bool) -> list[dict[str, Any]]:
    """The manifest's ``split_leaks``: hash and copies, each marked ``rejected`` or not."""
    out = []
    for leak in leaks:
        keep = kept_split(c["split"] for c in leak["copies"])
        copies = [
            {
                "split": c["split"],
                "video_id": c["video_id"],
                "rejected": rejected and c["split"] != keep,
            }
            for c in leak["copies"]
        ]
        out.append({"sha256": leak["sha256"], "copies": copies})
    return out


def apply_leak_rejects(
    fs: pafs.FileSystem,
    root: str,
    marker: dict[str, Any],
    drops: Sequence[tuple[str, str, str]],
    cfg: IngestConfig,
) -> dict[str, Any]:
    """Reject ``drops`` (``(split, video_id, message)``) of a committed shard; returns the new
    marker (the old one when they are rejected already)."""
    done = {tuple(key) for key in marker.get("leak_rejects", [])}
    todo = {(split, vid): msg for split, vid, msg in drops if (split, vid) not in done}
    if not todo:
        return marker
    shard = marker["shard"]
    clips = _read_table(fs, shards.clips_path(root, shard))
    rejects = _read_table(fs, shards.rejects_path(root, shard)).to_pylist()
    meta = clips.select(["split", "video_id", "label", "source_uri"]).to_pylist()
    rejected = {(r["split"], r["video_id"]) for r in rejects}
    moved = set()
    for row in meta:
        key = (row["split"], row["video_id"])
        if key in todo and key not in rejected:
            rejected.add(key)
            moved.add(key)
            rejects.append(
                {
                    "path": row["source_uri"],
                    "video_id": row["video_id"],
                    "split": row["split"],
                    "label": row["label"],
                    "reason": "split_leak",
                    "message": todo[key],
                }
            )
    keep = [(r["split"], r["video_id"]) not in todo for r in meta]
    kept = clips.filter(pa.array(keep, type=pa.bool_()))
    inputs = Counter({split: c["inputs"] for split, c in marker["per_split"].items()})
    kept_meta = [r for r, k in zip(meta, keep, strict=True) if k]
    new = shards.shard_marker(shard, inputs, kept_meta, rejects, marker["transient_inputs"])
    # The records keep no source format: the old marker's counts, these videos moved.
    new.update(formats.leak_rejected(marker, moved))
    new["hashes"] = marker["hashes"]
    new["leak_rejects"] = sorted([list(k) for k in done | set(todo)])
    shards.write_shard(fs, root, new, kept, reject_table(rejects), cfg)
    return new


def _read_table(fs: pafs.FileSystem, path: str) -> pa.Table:
    return pq.read_table(io.BytesIO(storage.read_bytes(fs, path)))
