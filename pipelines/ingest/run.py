"""Ingest a video collection into self-contained clip records (sharded Parquet) with Ray Data.

Entry point: ``python -m jobs.ingest --videos ROOT --out URI [key=value ...]``
(:mod:`jobs.ingest`); the configuration is :class:`pipelines.ingest.config.IngestConfig`.

Pipeline: the listing is read and validated on the driver (:mod:`pipelines.ingest.sources`), sorted
and cut into fixed-size shards (shard ``k`` = entries ``[k*S, (k+1)*S)``), so the assignment of
videos to shards is a pure function of the listing. A Ray Dataset holds one row per shard not
yet committed; ``map`` runs, per video, read -> probe (PyAV) -> validate -> optional re-encode
-> clip records (:mod:`pipelines.ingest.clips`), then writes the shard's clips and rejects
Parquet files and finally its commit marker (:mod:`pipelines.ingest.shards`). The driver shows the
committed shards as a progress display (:mod:`raysf.display`), logs one line per shard and
writes ``manifest.json`` last.

One row per shard (rather than per video) keeps the shard boundaries fixed, which is what
makes a killed run resumable: a rerun skips shards that have a marker and rewrites the others
from scratch, byte-identically (remuxing and single-threaded x264 are deterministic).

**Nothing is lost to a passing fault.** An input that could not be read for a reason that may
pass (I/O error, S3 throttling after the retries) is kept in its shard's marker as *transient*,
never rejected; a shard whose files cannot be written stays uncommitted. The manifest is then
written with ``complete: false`` and :class:`IngestIncomplete` is raised: rerunning the same
command rebuilds exactly those shards. The same happens, without any rebuild, when more than
``checks.max_reject_fraction`` of the inputs are rejected. Videos whose bytes appear in two
splits are listed as ``split_leaks`` (and rejected with ``checks.split_leaks: reject``,
:mod:`pipelines.ingest.leaks`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import replace
from typing import Any

from pipelines.ingest import leaks, shards
from pipelines.ingest.config import IngestConfig
from pipelines.ingest.sources import Listing, SourceEntry, read_class_names, read_listing
from raysf import console, display, runtime, storage
from raysf.config import ConfigError
from raysf.errors import ExpectedError
from raysf.manifest import MANIFEST_NAME, Manifest, parse_manifest
from raysf.storage import TransientStorageError as TransientError

log = logging.getLogger("pipelines.ingest.run")


class IngestIncomplete(ExpectedError):
    """Inputs failed transiently or shards could not be committed: rerunning the same command
    finishes the dataset (``manifest.json``, when written, says ``complete: false`` and why)."""

    exit_code = 3


class TooManyRejects(ExpectedError):
    """More than ``checks.max_reject_fraction`` of the inputs were rejected (``manifest.json``
    says ``complete: false`` and why)."""


def prepare(cfg: IngestConfig) -> tuple[Listing, list[shards.ShardTask]]:
    """Read and validate the listing (errors before any work) and plan the shards."""
    if not cfg.videos:
        raise ConfigError("videos: required (--videos ROOT)")
    if not cfg.out:
        raise ConfigError("out: required (--out URI)")
    videos, annotations = cfg.location(cfg.videos), None
    for where in (videos, cfg.location(cfg.out)):
        storage.check_s3_endpoint(where)
    if cfg.annotations:
        annotations = cfg.location(cfg.annotations)
        storage.check_s3_endpoint(annotations)
    classes = read_class_names(cfg.location(cfg.classes)) if cfg.classes else None
    listing = read_listing(videos, format=cfg.format, annotations=annotations, classes=classes)
    if not listing.entries:
        raise ValueError(f"the listing of {cfg.videos} is empty")
    try:
        cfg.flip.check_classes(listing.classes)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return listing, shards.plan_shards(listing, cfg.shard_size)


def run_ingest(cfg: IngestConfig) -> Manifest:
    """Run (or resume) the ingest described by ``cfg``; returns the manifest it wrote.

    Joins the Ray cluster of ``resources.address`` (else ``RAY_ADDRESS``) or starts a local
    instance of ``resources.num_cpus`` CPUs, unless this process is connected already
    (:func:`raysf.runtime.init_ray`).
    """
    # Resolve S3 settings once on the driver so every task uses the same endpoint and region.
    cfg = replace(cfg, storage=cfg.storage.with_environment())
    listing, tasks = prepare(cfg)
    out = cfg.location(cfg.out)
    fs, root = out.filesystem, out.path
    _check_plan(fs, root, cfg, listing, len(tasks))
    done = shards.done_shards(fs, root)
    pending = [t for t in tasks if t.shard not in done]
    log.info(
        "ingest %s -> %s: %d inputs, %d shards (%d already committed)",
        cfg.videos,
        cfg.out,
        len(listing.entries),
        len(tasks),
        len(tasks) - len(pending),
    )
    failed: dict[str, str] = {}
    if pending:
        runtime.init_ray(cfg.resources.address, num_cpus=cfg.resources.num_cpus, dashboard=False)
        failed = _run_shards(pending, cfg, out, total=len(tasks))
    else:
        console.line(
            f"ingest {display.short_path(cfg.out)}: all {len(tasks)} shards committed already"
        )
    uncommitted = sorted(set(failed) | {t.shard for t in tasks} - shards.committed_shards(fs, root))
    if uncommitted:
        raise IngestIncomplete(
            f"{len(uncommitted)} shard(s) of {cfg.out} could not be committed "
            f"({'; '.join(failed.get(s, s) for s in uncommitted[:3])}); rerun the same command "
            "to build them"
        )
    document = summarize(fs, root, cfg, listing, [t.shard for t in tasks])
    shards.write_json(fs, storage.join(root, MANIFEST_NAME), document)
    log.info("wrote %s: %s", storage.join(cfg.out, MANIFEST_NAME), document["counts"])
    if not document["complete"]:
        error = IngestIncomplete if document["counts"]["transient"] else TooManyRejects
        raise error(f"{cfg.out}: {document['incomplete_reason']}")
    return parse_manifest(json.loads(json.dumps(document)), cfg.out)


def summarize(fs, root: str, cfg: IngestConfig, listing: Listing, names: list[str]) -> dict:
    """The manifest document from the committed shards: split leaks found (and rejected with
    ``checks.split_leaks: reject``), counts summed, the completeness checks applied."""
    markers = [shards.read_json(fs, shards.marker_path(root, name)) for name in names]
    found = leaks.find_split_leaks(markers)
    reject = cfg.checks.split_leaks == "reject"
    if reject:
        drops = leaks.leak_rejects(found)
        markers = [
            leaks.apply_leak_rejects(fs, root, m, drops[m["shard"]], cfg)
            if m["shard"] in drops
            else m
            for m in markers
        ]
    document = shards.build_manifest(
        markers=markers,
        classes=listing.classes,
        listing_fingerprint=listing.fingerprint(),
        config=cfg.record_config(),
        num_inputs=len(listing.entries),
    )
    document["format"] = cfg.format
    document["flip"] = cfg.flip.to_dict()
    document["source"] = {"videos": cfg.videos, "annotations": cfg.annotations}
    document["split_leaks"] = leaks.manifest_leaks(found, rejected=reject)
    if found:
        log.warning("%d video(s) appear in more than one split (split_leaks)", len(found))
    document["incomplete_reason"] = _incomplete_reason(document, cfg)
    document["complete"] = not document["incomplete_reason"]
    return document


def _incomplete_reason(document: dict[str, Any], cfg: IngestConfig) -> str:
    """Why the dataset is not usable yet (``""`` when it is)."""
    counts = document["counts"]
    if counts["transient"]:
        first = document["transient"][0]
        return (
            f"{counts['transient']} input(s) failed with errors that may pass (first: "
            f"{first['message']}); rerun the same command to retry them"
        )
    fraction = counts["rejects"] / max(counts["inputs"], 1)
    limit = cfg.checks.max_reject_fraction
    if fraction > limit:
        top = ", ".join(f"{k}: {v}" for k, v in Counter(document["reject_reasons"]).most_common(3))
        return (
            f"{counts['rejects']} of {counts['inputs']} inputs rejected ({fraction:.1%} > "
            f"checks.max_reject_fraction {limit:.1%}; {top}); see rejects/*.parquet, fix the "
            "inputs or rerun with a higher checks.max_reject_fraction"
        )
    return ""


def _check_plan(fs, root: str, cfg: IngestConfig, listing: Listing, num_shards: int) -> None:
    """Write the ingest's plan, or check that an earlier run at ``root`` had the same one."""
    plan = {
        "listing_fingerprint": listing.fingerprint(),
        "config": cfg.record_config(),
        "num_inputs": len(listing.entries),
        "num_shards": num_shards,
    }
    plan_path = storage.join(root, shards.PLAN_NAME)
    if not storage.is_file(fs, plan_path):
        shards.write_json(fs, plan_path, plan)
        return
    if shards.read_json(fs, plan_path) != json.loads(json.dumps(plan)):
        raise ValueError(
            f"{cfg.out} holds an ingest of another listing or config "
            f"({shards.PLAN_NAME} differs); use a new --out or delete it"
        )


def _run_shards(
    pending: list[shards.ShardTask], cfg: IngestConfig, out: storage.StorageLocation, total: int
) -> dict[str, str]:
    """One Ray Data row per pending shard; ``map`` builds and commits it. Returns the shards
    whose files could not be written, with the error."""
    import ray.data  # heavy; the listing and planning above run without it

    rows = [{"shard": t.shard, "task": _encode_task(t)} for t in pending]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    ds = ds.map(
        _build_shard_row,
        fn_kwargs={"cfg": cfg, "out": out},
        num_cpus=cfg.resources.cpus_per_task,
        # No credentials travel with the tasks (no AWS_* env vars: Ray prints a task's
        # runtime_env in its logs and state API): each worker finds its node's own
        # (raysf.storage, "credentials").
    )
    committed = total - len(pending)
    started = time.monotonic()
    videos = sum(len(t.items) for t in pending)
    shown = display.Progress(f"ingest {display.short_path(cfg.out)}", total=videos, unit="videos")
    clips = rejects = 0
    failed: dict[str, str] = {}
    for row in ds.iter_rows():
        if row["error"]:
            failed[row["shard"]] = row["error"]
            log.warning("%s not committed: %s", row["shard"], row["error"])
            continue
        committed += 1
        clips, rejects = clips + row["clips"], rejects + row["rejects"]
        shown.update(advance=row["videos"], note=f"shard {committed}/{total}")
        log.info(
            "committed %s (%d/%d): %d clips, %d rejects, %d transient, %.1fs",
            row["shard"],
            committed,
            total,
            row["clips"],
            row["rejects"],
            row["transient"],
            time.monotonic() - started,
        )
    shown.close(
        f"ingest {display.short_path(cfg.out)}: {videos} videos in {len(pending)} shards -> "
        f"{clips} clips, {rejects} rejects"
        + (f", {len(failed)} shards not committed" if failed else "")
        + f" · {display.format_duration(time.monotonic() - started)}"
    )
    return failed


def _encode_task(task: shards.ShardTask) -> str:
    """JSON text of a shard task (keeps the Ray Data rows plain Arrow strings)."""
    return json.dumps(
        [
            [e.uri, e.video_id, e.split, e.label, e.error, label_id, dup]
            for e, label_id, dup in task.items
        ]
    )


def _decode_task(shard: str, text: str) -> shards.ShardTask:
    items = tuple(
        (SourceEntry(u, v, s, lab, error=err), label_id, bool(dup))
        for u, v, s, lab, err, label_id, dup in json.loads(text)
    )
    return shards.ShardTask(shard, items)


def _build_shard_row(
    row: dict[str, Any], cfg: IngestConfig, out: storage.StorageLocation
) -> dict[str, Any]:
    videos = len(json.loads(row["task"]))
    try:
        marker = shards.build_shard(_decode_task(row["shard"], row["task"]), cfg, out)
    except TransientError as exc:  # its files could not be written: uncommitted, rerun
        return {
            "shard": row["shard"],
            "videos": videos,
            "clips": 0,
            "rejects": 0,
            "transient": 0,
            "error": str(exc),
        }
    return {
        "shard": marker["shard"],
        "videos": videos,
        "clips": marker["clips"],
        "rejects": marker["rejects"],
        "transient": len(marker["transient_inputs"]),
        "error": "",
    }
