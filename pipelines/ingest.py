"""Ingest a video collection into self-contained clip records (sharded Parquet) with Ray Data.

    python -m pipelines.ingest --videos ROOT [--annotations FILE] [--format kinetics|list|folders]
        --out URI [--config jobs/ingest.yaml] [--classes FILE] [dotted.key=value ...]
        [--smoke-test]

Pipeline: the listing is read and validated on the driver (:mod:`pipelines.sources`), sorted
and cut into fixed-size shards (shard ``k`` = entries ``[k*S, (k+1)*S)``), so the assignment of
videos to shards is a pure function of the listing. A Ray Dataset holds one row per shard not
yet committed; ``map`` runs, per video, read -> probe (PyAV) -> validate -> optional re-encode
-> clip records, then writes the shard's clips and rejects Parquet files and finally its commit
marker. The driver logs one line per committed shard and writes ``manifest.json`` last.

One row per shard (rather than per video) keeps the shard boundaries fixed, which is what
makes a killed run resumable: a rerun skips shards that have a marker and rewrites the others
from scratch, byte-identically (remuxing and single-threaded x264 are deterministic).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pyarrow.parquet as pq

from pipelines import manifest as mf
from pipelines import sampling, storage
from pipelines.probe import ProbeResult, RejectError, probe_video, validate_length
from pipelines.records import clip_table, reject_table
from pipelines.segment import extract_segment, reencode_video, remux_video
from pipelines.sources import FORMATS, Listing, SourceEntry, read_class_names, read_listing
from raysf.config import ConfigError, load_config, to_dict

log = logging.getLogger("pipelines.ingest")
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(__file__)), "jobs", "ingest.yaml")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingConfig:
    """Default window and indices written into the records (paper notation)."""

    slow_frames: int = 8
    tau: int = 8
    alpha: int = 4
    rule: Literal["stride", "linspace"] = "stride"
    target_fps: float | None = 30.0
    num_val_clips: int = 1
    num_test_clips: int = 10

    def validate(self) -> None:
        for name in ("slow_frames", "tau", "alpha", "num_val_clips", "num_test_clips"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.target_fps is not None and self.target_fps <= 0:
            raise ValueError(f"target_fps must be positive or null, got {self.target_fps}")


@dataclass(frozen=True)
class SegmentConfig:
    """Val/test segments: extra frames kept on each side of the window (rounded to GOPs)."""

    pad_frames: int = 32

    def validate(self) -> None:
        if self.pad_frames < 0:
            raise ValueError(f"pad_frames must be >= 0, got {self.pad_frames}")


@dataclass(frozen=True)
class ReencodeConfig:
    """Canonical re-encode (libx264) applied before records are cut."""

    short_side: int | None = 256
    fps: float | None = 30.0
    gop: int = 16
    crf: int = 23
    preset: str = "veryfast"

    def validate(self) -> None:
        if self.short_side is not None and self.short_side < 2:
            raise ValueError(f"short_side must be >= 2, got {self.short_side}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.gop < 1:
            raise ValueError(f"gop must be >= 1, got {self.gop}")


@dataclass(frozen=True)
class ChecksConfig:
    """Validation policy."""

    min_frames: int | None = None
    short_policy: Literal["reject", "keep"] = "reject"
    decode_all: bool = False


@dataclass(frozen=True)
class StorageConfig:
    """S3 settings (null: from AWS_ENDPOINT_URL[_S3] / AWS_DEFAULT_REGION)."""

    endpoint_url: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class ResourcesConfig:
    """Ray resources."""

    num_cpus: int | None = None
    cpus_per_task: float = 1.0
    address: str | None = None

    def validate(self) -> None:
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ValueError(f"num_cpus must be >= 1 or null, got {self.num_cpus}")
        if self.cpus_per_task <= 0:
            raise ValueError(f"cpus_per_task must be positive, got {self.cpus_per_task}")


@dataclass(frozen=True)
class IngestConfig:
    """Everything the ingest job reads; built once at the entry point."""

    videos: str | None = None
    annotations: str | None = None
    format: Literal["kinetics", "list", "folders"] = "kinetics"
    classes: str | None = None
    out: str | None = None
    shard_size: int = 32
    row_group_size: int = 16
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    reencode: ReencodeConfig | None = None
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)

    def validate(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.row_group_size < 1:
            raise ValueError(f"row_group_size must be >= 1, got {self.row_group_size}")

    def record_config(self) -> dict[str, Any]:
        """The part of the config that determines the records (must match to resume)."""
        return {
            "sampling": to_dict(self.sampling),
            "segment": to_dict(self.segment),
            "reencode": to_dict(self.reencode) if self.reencode else None,
            "checks": to_dict(self.checks),
            "shard_size": self.shard_size,
            "row_group_size": self.row_group_size,
        }


def load_ingest_config(path: str | None, overrides: list[str] = ()) -> IngestConfig:
    """Read ``path`` (default ``jobs/ingest.yaml`` when it exists) with dotted overrides."""
    if path is None and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    return load_config(IngestConfig, path, list(overrides))


# --------------------------------------------------------------------------------------------
# Per-video work (pure functions of the bytes; no Ray)
# --------------------------------------------------------------------------------------------


def window_span(cfg: SamplingConfig, fps: float) -> int:
    return sampling.window_span(cfg.slow_frames, cfg.tau, fps, cfg.target_fps)


def clips_for_video(
    entry: SourceEntry,
    label_id: int,
    data: bytes,
    probe: ProbeResult,
    cfg: IngestConfig,
) -> list[dict[str, Any]]:
    """Clip records of one probed video (train: 1 whole video; val/test: 1 per window)."""
    s = cfg.sampling
    span = window_span(s, probe.fps)
    n = probe.num_frames
    common = {
        "video_id": entry.video_id,
        "label": entry.label,
        "label_id": label_id,
        "split": entry.split,
        "fps": probe.fps,
        "span": span,
        "source_uri": entry.uri,
        "rotation": probe.rotation,
        "codec": probe.codec,
    }
    if entry.split == "train":
        segments = [(0, remux_video(data, probe.table, name=entry.uri), None)]
    else:
        k = s.num_test_clips if entry.split == "test" else s.num_val_clips
        segments = []
        for clip_index, start in enumerate(sampling.uniform_starts(n, span, k)):
            start = int(start)
            last = min(start + span, n) - 1
            seg = extract_segment(
                data, probe.table, start, last, pad=cfg.segment.pad_frames, name=entry.uri
            )
            segments.append((clip_index, seg, start))
    rows = []
    for clip_index, seg, source_start in segments:
        seg_n = seg.table.num_frames
        if source_start is None:  # train: the whole video, default window centred
            start = sampling.center_start(seg_n, span)
        else:  # val/test: the window's start, relative to the segment
            start = source_start - seg.first_frame
        fast, slow = sampling.clip_indices(
            start,
            seg_n,
            slow_frames=s.slow_frames,
            tau=s.tau,
            alpha=s.alpha,
            fps=probe.fps,
            target_fps=s.target_fps,
            rule=s.rule,
        )
        rows.append(
            {
                **common,
                "clip_index": clip_index,
                "num_frames": seg_n,
                "height": seg.table.height,
                "width": seg.table.width,
                "start_frame": start,
                "fast_idx": fast,
                "slow_idx": slow,
                "content": seg.content,
                "frame_pts": seg.table.pts,
                "keyframes": seg.table.keyframes,
                "source_start_frame": seg.first_frame,
            }
        )
    return rows


def process_video(
    entry: SourceEntry, label_id: int | None, duplicate: bool, cfg: IngestConfig
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Clip rows of one input, or ``([], reject_row)``; never raises for a bad input."""
    try:
        if duplicate:
            raise RejectError("duplicate", f"{entry.video_id} already listed in {entry.split}")
        if label_id is None:
            raise RejectError("unknown_label", f"label {entry.label!r} is not in the class list")
        data = _read_input(entry.uri, cfg)
        probe = probe_video(data, entry.uri, decode_all=cfg.checks.decode_all)
        if cfg.reencode is not None:
            r = cfg.reencode
            try:
                data = reencode_video(
                    data,
                    short_side=r.short_side,
                    fps=r.fps,
                    gop=r.gop,
                    crf=r.crf,
                    preset=r.preset,
                    name=entry.uri,
                )
            except ValueError as exc:
                raise RejectError("processing_error", str(exc)) from exc
            probe = replace(probe_video(data, entry.uri), rotation=probe.rotation)
        min_frames = cfg.checks.min_frames or window_span(cfg.sampling, probe.fps)
        if cfg.checks.short_policy == "reject":
            validate_length(probe, min_frames, entry.uri)
        try:
            return clips_for_video(entry, label_id, data, probe, cfg), None
        except (ValueError, OSError) as exc:
            raise RejectError("processing_error", str(exc)) from exc
    except RejectError as exc:
        return [], _reject_row(entry, exc.category, exc.message)
    except Exception as exc:  # noqa: BLE001 - one bad file must never fail the job
        return [], _reject_row(entry, "processing_error", f"{type(exc).__name__}: {exc}")


def _reject_row(entry: SourceEntry, reason: str, message: str) -> dict[str, Any]:
    return {
        "path": entry.uri,
        "video_id": entry.video_id,
        "split": entry.split,
        "label": entry.label,
        "reason": reason,
        "message": message,
    }


def _read_input(uri: str, cfg: IngestConfig) -> bytes:
    fs, path = storage.resolve_filesystem(uri, cfg.storage.endpoint_url, cfg.storage.region)
    try:
        return storage.read_bytes(fs, path)
    except FileNotFoundError as exc:
        raise RejectError("missing", f"{uri} does not exist") from exc
    except OSError as exc:
        if not storage.exists(fs, path):
            raise RejectError("missing", f"{uri} does not exist") from exc
        raise RejectError("read_error", f"{uri}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Shards
# --------------------------------------------------------------------------------------------


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
        ShardTask(mf.shard_name(k), tuple(items[i : i + shard_size]))
        for k, i in enumerate(range(0, len(items), shard_size))
    ]


def build_shard(task: ShardTask, cfg: IngestConfig, root: str) -> dict[str, Any]:
    """Process every input of ``task``, write its Parquet files, then its commit marker.

    Returns the marker (shard counts). ``root`` is the output path in the output filesystem.
    """
    import av

    av.logging.set_level(av.logging.PANIC)
    fs, _ = storage.resolve_filesystem(cfg.out, cfg.storage.endpoint_url, cfg.storage.region)
    clips: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    per_split: dict[str, Counter] = {}
    per_class: dict[str, Counter] = {}
    for entry, label_id, duplicate in task.items:
        rows, reject = process_video(entry, label_id, duplicate, cfg)
        split_counts = per_split.setdefault(entry.split, Counter())
        split_counts["inputs"] += 1
        if reject is not None:
            rejects.append(reject)
            split_counts["rejects"] += 1
            continue
        clips.extend(rows)
        split_counts["videos"] += 1
        split_counts["clips"] += len(rows)
        per_class.setdefault(entry.label, Counter())[entry.split] += 1
    _write_parquet(fs, mf.clips_path(root, task.shard), clip_table(clips), cfg.row_group_size)
    _write_parquet(fs, mf.rejects_path(root, task.shard), reject_table(rejects), 1024)
    marker = {
        "shard": task.shard,
        "inputs": len(task.items),
        "videos": len(task.items) - len(rejects),
        "clips": len(clips),
        "rejects": len(rejects),
        "per_split": {k: dict(v) for k, v in per_split.items()},
        "per_class": {k: dict(v) for k, v in per_class.items()},
        "reject_reasons": dict(Counter(r["reason"] for r in rejects)),
    }
    mf.write_json(fs, mf.marker_path(root, task.shard), marker)
    return marker


def _write_parquet(fs, path: str, table, row_group_size: int) -> None:
    buffer = io.BytesIO()
    compression = {name: ("none" if name == "content" else "zstd") for name in table.column_names}
    pq.write_table(table, buffer, row_group_size=row_group_size, compression=compression)
    storage.write_bytes_atomic(fs, path, buffer.getvalue())


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def prepare(cfg: IngestConfig) -> tuple[Listing, list[ShardTask]]:
    """Read and validate the listing (errors before any work) and plan the shards."""
    if not cfg.videos:
        raise ConfigError("videos: required (--videos ROOT)")
    if not cfg.out:
        raise ConfigError("out: required (--out URI)")
    for uri in (cfg.videos, cfg.out, cfg.annotations):
        if uri:
            storage.check_s3_endpoint(uri, cfg.storage.endpoint_url)
    classes = read_class_names(cfg.classes, cfg.storage.endpoint_url) if cfg.classes else None
    listing = read_listing(
        cfg.videos,
        format=cfg.format,
        annotations=cfg.annotations,
        classes=classes,
        endpoint_url=cfg.storage.endpoint_url,
    )
    if not listing.entries:
        raise ValueError(f"the listing of {cfg.videos} is empty")
    return listing, plan_shards(listing, cfg.shard_size)


def run_ingest(cfg: IngestConfig) -> dict[str, Any]:
    """Run (or resume) the ingest described by ``cfg``; returns the manifest.

    Starts a local Ray instance (``resources.num_cpus``) unless Ray is already initialised or
    ``resources.address`` (else ``RAY_ADDRESS``) names a cluster.
    """
    import ray

    # Resolve S3 settings once on the driver so every task uses the same endpoint and region.
    cfg = replace(
        cfg,
        storage=StorageConfig(
            endpoint_url=cfg.storage.endpoint_url or storage.env_endpoint_url(),
            region=cfg.storage.region or storage.env_region(),
        ),
    )
    listing, tasks = prepare(cfg)
    fs, root = storage.resolve_filesystem(cfg.out, cfg.storage.endpoint_url, cfg.storage.region)
    fingerprint = listing.fingerprint()
    plan = {
        "listing_fingerprint": fingerprint,
        "config": cfg.record_config(),
        "num_inputs": len(listing.entries),
        "num_shards": len(tasks),
    }
    plan_path = storage.join(root, mf.PLAN_NAME)
    if storage.is_file(fs, plan_path):
        previous = mf.read_json(fs, plan_path)
        if previous != json.loads(json.dumps(plan)):
            raise ValueError(
                f"{cfg.out} holds an ingest of another listing or config "
                f"({mf.PLAN_NAME} differs); use a new --out or delete it"
            )
    else:
        mf.write_json(fs, plan_path, plan)
    done = mf.committed_shards(fs, root)
    pending = [t for t in tasks if t.shard not in done]
    log.info(
        "ingest %s -> %s: %d inputs, %d shards (%d already committed)",
        cfg.videos,
        cfg.out,
        len(listing.entries),
        len(tasks),
        len(tasks) - len(pending),
    )
    if pending:
        if not ray.is_initialized():
            # A driver of ``ray job submit`` gets RAY_ADDRESS: join that cluster, whose GCS holds
            # the job's working directory, rather than start a second Ray beside it.
            address = cfg.resources.address or os.environ.get("RAY_ADDRESS")
            if address:
                ray.init(address=address)
            else:
                # address="local": always a fresh instance, never a cluster found on the host.
                ray.init(address="local", num_cpus=cfg.resources.num_cpus, include_dashboard=False)
        _run_shards(pending, cfg, root, total=len(tasks))
    markers = [mf.read_json(fs, mf.marker_path(root, t.shard)) for t in tasks]
    manifest = mf.build_manifest(
        markers=markers,
        classes=listing.classes,
        listing_fingerprint=fingerprint,
        config=cfg.record_config(),
        num_inputs=len(listing.entries),
    )
    manifest["format"] = cfg.format
    manifest["source"] = {"videos": cfg.videos, "annotations": cfg.annotations}
    mf.write_json(fs, storage.join(root, mf.MANIFEST_NAME), manifest)
    log.info("wrote %s: %s", storage.join(cfg.out, mf.MANIFEST_NAME), manifest["counts"])
    return manifest


def _run_shards(pending: list[ShardTask], cfg: IngestConfig, root: str, total: int) -> None:
    """One Ray Data row per pending shard; ``map`` builds and commits it."""
    import ray

    rows = [{"shard": t.shard, "task": _encode_task(t)} for t in pending]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    ds = ds.map(
        _build_shard_row,
        fn_kwargs={"cfg": cfg, "root": root},
        num_cpus=cfg.resources.cpus_per_task,
        # Credentials travel as the driver's AWS_* variables, never in the config.
        runtime_env={"env_vars": _aws_env()},
    )
    committed = total - len(pending)
    started = time.monotonic()
    for row in ds.iter_rows():
        committed += 1
        log.info(
            "committed %s (%d/%d): %d clips, %d rejects, %.1fs",
            row["shard"],
            committed,
            total,
            row["clips"],
            row["rejects"],
            time.monotonic() - started,
        )


def _aws_env() -> dict[str, str]:
    """The driver's ``AWS_*`` environment variables (credentials, profile, CA bundle)."""
    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


def _encode_task(task: ShardTask) -> str:
    """JSON text of a shard task (keeps the Ray Data rows plain Arrow strings)."""
    return json.dumps(
        [[e.uri, e.video_id, e.split, e.label, label_id, dup] for e, label_id, dup in task.items]
    )


def _decode_task(shard: str, text: str) -> ShardTask:
    items = tuple(
        (SourceEntry(uri=u, video_id=v, split=s, label=lab), label_id, bool(dup))
        for u, v, s, lab, label_id, dup in json.loads(text)
    )
    return ShardTask(shard, items)


def _build_shard_row(row: dict[str, Any], cfg: IngestConfig, root: str) -> dict[str, Any]:
    marker = build_shard(_decode_task(row["shard"], row["task"]), cfg, root)
    return {"shard": marker["shard"], "clips": marker["clips"], "rejects": marker["rejects"]}


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", help="video root (local path or s3:// prefix)")
    parser.add_argument("--annotations", help="annotation CSV / list file or folder")
    parser.add_argument("--format", choices=FORMATS, help="input listing format")
    parser.add_argument("--classes", help="class-name file (one per line, line i = label id i)")
    parser.add_argument("--out", help="output dataset URI (local path or s3://)")
    parser.add_argument("--config", help=f"YAML config (default {DEFAULT_CONFIG})")
    parser.add_argument(
        "--smoke-test", action="store_true", help="tiny SynthMotion set, smallest settings"
    )
    parser.add_argument("overrides", nargs="*", help="dotted.key=value config overrides")
    args = parser.parse_intermixed_args(argv)
    overrides = []
    for key in ("videos", "annotations", "format", "classes", "out"):
        value = getattr(args, key)
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    return args, overrides + list(args.overrides)


SMOKE_OVERRIDES = [
    "shard_size=4",
    "sampling.slow_frames=4",
    "sampling.tau=4",
    "sampling.alpha=2",
    "sampling.num_test_clips=2",
    "resources.num_cpus=2",
]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args, overrides = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ingest-smoke-") as tmp:
        if args.smoke_test:
            overrides = SMOKE_OVERRIDES + overrides
            if args.videos is None:
                from pipelines.synth import generate

                videos = os.path.join(tmp, "videos")
                generate(videos, classes=3, videos_per_class=4, seed=0, frames=32)
                overrides += [f"videos={json.dumps(videos)}", "format=kinetics"]
            if args.out is None:
                overrides.append(f"out={json.dumps(os.path.join(tmp, 'dataset'))}")
        try:
            cfg = load_ingest_config(args.config, overrides)
            manifest = run_ingest(cfg)
        except (ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(json.dumps({"out": cfg.out, **manifest["counts"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
