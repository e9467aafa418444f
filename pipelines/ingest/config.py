"""Typed configuration of the ingest job (``jobs/ingest.yaml``), built once at the entry point.

The window written into the records and the number of windows per val/test video come from
``clip``, a :class:`~raysf.clip_spec.ClipSpec`; it is stored in ``manifest.json`` so that
training, evaluation and prediction cut clips the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pipelines.ingest.segment import REENCODE_PROFILES, EncodeSettings
from raysf.clip_spec import DATASET_FIELDS, MODEL_FIELDS, ClipSpec
from raysf.config import load_config, to_dict
from raysf.flip_labels import FlipLabels
from raysf.storage import S3Config, StorageLocation, resolve_location

DEFAULT_CONFIG = os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", "..", "jobs", "ingest.yaml")
)

#: The SlowFast 8x8 window at 30 fps, one val window and ten test windows per video.
DEFAULT_CLIP = ClipSpec(
    slow_frames=8, tau=8, alpha=4, target_fps=30.0, num_val_clips=1, num_test_clips=10
)


@dataclass(frozen=True)
class SegmentConfig:
    """Val/test segments: extra frames kept on each side of the window (rounded to GOPs)."""

    pad_frames: int = 32

    def validate(self) -> None:
        if self.pad_frames < 0:
            raise ValueError(f"pad_frames must be >= 0, got {self.pad_frames}")


@dataclass(frozen=True)
class ReencodeConfig:
    """Canonical re-encode (libx264) applied before records are cut.

    ``profile`` picks the encoder settings (:data:`REENCODE_PROFILES`); ``gop`` ... ``b_pyramid``
    override single settings of it (null: the profile's; ``tune: none`` removes the profile's
    tune).
    """

    profile: Literal["archive", "train"] = "archive"
    short_side: int | None = 256
    fps: float | None = 30.0
    gop: int | None = None
    crf: int | None = None
    preset: str | None = None
    tune: str | None = None
    bframes: int | None = None
    b_pyramid: bool | None = None

    def validate(self) -> None:
        if self.short_side is not None and self.short_side < 2:
            raise ValueError(f"short_side must be >= 2, got {self.short_side}")
        if self.fps is not None and self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if self.gop is not None and self.gop < 1:
            raise ValueError(f"gop must be >= 1, got {self.gop}")
        if self.crf is not None and not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {self.crf}")
        if self.bframes is not None and not 0 <= self.bframes <= 16:
            raise ValueError(f"bframes must be in [0, 16], got {self.bframes}")

    def settings(self) -> EncodeSettings:
        """The profile's encoder settings with this config's overrides applied."""
        base = REENCODE_PROFILES[self.profile]
        changes = {
            name: getattr(self, name)
            for name in ("gop", "crf", "preset", "bframes", "b_pyramid")
            if getattr(self, name) is not None
        }
        if self.tune is not None:
            changes["tune"] = None if self.tune == "none" else self.tune
        return replace(base, **changes)

    def record_dict(self) -> dict[str, Any]:
        """What determines the re-encoded bytes (part of the resume check): the archive
        profile's keys as earlier versions wrote them, plus any setting that differs."""
        s = self.settings()
        out: dict[str, Any] = {
            "short_side": self.short_side,
            "fps": self.fps,
            "gop": s.gop,
            "crf": s.crf,
            "preset": s.preset,
        }
        if s.tune is not None:
            out["tune"] = s.tune
        if s.bframes is not None:
            out["bframes"] = s.bframes
        if not s.b_pyramid:
            out["b_pyramid"] = False
        return out


@dataclass(frozen=True)
class ChecksConfig:
    """Validation policy.

    ``decode_all``: ``false`` decodes the first frame of every input; ``"eval"`` (default) also
    every frame of each val/test record's segment (short: the windows plus padding, about what
    one evaluation pass decodes); ``true`` every frame of every input (a full decode pass over
    the collection, the most expensive step of an ingest without re-encoding).
    ``split_leaks``: identical bytes in two splits are listed in the manifest (``report``) or
    also rejected (``reject``: the copies outside the held-out split are rejected, see
    docs/data.md). ``max_reject_fraction``: the ingest fails when more of the inputs are
    rejected (it does not change the records, so a rerun with a higher value finishes at once).
    """

    min_frames: int | None = None
    short_policy: Literal["reject", "keep"] = "reject"
    decode_all: bool | Literal["eval"] = "eval"
    split_leaks: Literal["report", "reject"] = "report"
    max_reject_fraction: float = 0.1

    def validate(self) -> None:
        if not 0.0 <= self.max_reject_fraction <= 1.0:
            raise ValueError(
                f"max_reject_fraction must be in [0, 1], got {self.max_reject_fraction}"
            )


@dataclass(frozen=True)
class LimitsConfig:
    """Per-input caps; an input over one is rejected with its reason (docs/data.md)."""

    max_bytes: int = 1 << 30
    max_pixels: int = 4096 * 2160
    max_duration_s: float = 600.0
    timeout_s: float | None = 300.0

    def validate(self) -> None:
        if self.max_bytes < 1 or self.max_pixels < 1 or self.max_duration_s <= 0:
            raise ValueError("max_bytes, max_pixels and max_duration_s must be positive")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive or null, got {self.timeout_s}")


@dataclass(frozen=True)
class RetryConfig:
    """Reads and writes that fail with errors that may pass are tried again inside the task."""

    attempts: int = 4
    backoff_s: float = 0.5

    def validate(self) -> None:
        if self.attempts < 1 or self.backoff_s < 0:
            raise ValueError("attempts must be >= 1 and backoff_s >= 0")


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
    clip: ClipSpec = field(default_factory=lambda: DEFAULT_CLIP)
    # What a horizontal flip does to the labels (written to the manifest; not in the records).
    flip: FlipLabels = field(default_factory=FlipLabels)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    reencode: ReencodeConfig | None = None
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    retries: RetryConfig = field(default_factory=RetryConfig)
    # S3 settings of the inputs and the output (null: from the AWS environment).
    storage: S3Config = field(default_factory=S3Config)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)

    def validate(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.row_group_size < 1:
            raise ValueError(f"row_group_size must be >= 1, got {self.row_group_size}")
        unset = [n for n in (*MODEL_FIELDS, *DATASET_FIELDS) if getattr(self.clip, n) is None]
        if unset:
            raise ValueError(f"clip: ingest cuts windows, so {unset} must be set")

    def location(self, uri: str) -> StorageLocation:
        """Where ``uri`` (an input, the listing files or the output) lives, with ``storage``'s
        S3 settings."""
        return resolve_location(uri, self.storage)

    def record_config(self) -> dict[str, Any]:
        """The part of the config that determines the records and rejects (must match to
        resume); ``checks.max_reject_fraction`` and ``retries`` do not."""
        checks = to_dict(self.checks)
        del checks["max_reject_fraction"]
        return {
            "clip_spec": self.clip.to_dict(),
            "segment": to_dict(self.segment),
            "reencode": self.reencode.record_dict() if self.reencode else None,
            "checks": checks,
            "limits": to_dict(self.limits),
            "shard_size": self.shard_size,
            "row_group_size": self.row_group_size,
        }


def load_ingest_config(path: str | None, overrides: list[str] = ()) -> IngestConfig:
    """Read ``path`` (default ``jobs/ingest.yaml`` when it exists) with dotted overrides."""
    if path is None and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    return load_config(IngestConfig, path, list(overrides))
