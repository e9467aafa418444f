"""The dataset manifest (``manifest.json``): the contract between ingest and everything that
reads a dataset.

Ingest (:mod:`pipelines.ingest.run`) writes it last, so its presence means the dataset is complete;
:func:`raysf.runtime.read_manifest` is the one reader. :class:`Manifest` is its typed view:
the classes, the clip counts per split and the :class:`~raysf.clip_spec.ClipSpec` the records
were cut with; ``data`` keeps the whole JSON document (reject reasons, shards, config ...).

Versions: 2 stores the spec as ``clip_spec``; 1 (still read) stored the sampling part only, as
``sampling``. Anything else is refused with the version named.

Fields added within version 2 (absent from older documents, read with their defaults):
``counts.transient`` and ``transient`` (inputs that failed with errors that may pass, retried by
the next run), ``incomplete_reason`` (why ``complete`` is false: transient inputs left, or more
rejects than ``checks.max_reject_fraction``), ``split_leaks`` (videos whose bytes appear in
two splits), ``formats`` (``{"<container>/<codec>": {"inputs", "copied", "reencoded",
"rejected", "transient"}}``), ``reencoded`` (``[{"split", "video_id", "path", "reason"}]``:
the videos re-encoded because their stream could not be stored as it is) and ``flip`` (what a
horizontal flip does to the labels, :mod:`raysf.flip_labels`; absent: allowed, no pairs).
``complete`` always existed; since these fields it may be false, and
:func:`raysf.runtime.read_manifest` refuses such a dataset (naming the reason).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from raysf.clip_spec import ClipSpec
from raysf.flip_labels import FlipLabels

MANIFEST_NAME = "manifest.json"
#: Written by this version of ingest.
MANIFEST_VERSION = 2
#: Read by this version of the project.
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class Manifest:
    """Typed view of a dataset's ``manifest.json``.

    Attributes:
        uri: the dataset root it was read from.
        schema_version: the document's version (see the module docstring).
        classes: class names; position = label id.
        clip_spec: the spec the records were cut with (T, tau, alpha, windows per val/test
            video, ...), resolved.
        per_split: ``{split: {"inputs", "videos", "clips", "rejects"}}``.
        counts: dataset totals ``{"inputs", "videos", "rejects", "clips"}``.
        flip: what a horizontal flip does to the labels.
        data: the whole JSON document.
    """

    uri: str
    schema_version: int
    classes: tuple[str, ...]
    clip_spec: ClipSpec
    per_split: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    flip: FlipLabels = field(default_factory=FlipLabels)
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def complete(self) -> bool:
        """False while inputs failed transiently or the reject limit is exceeded."""
        return bool(self.data.get("complete", True))

    @property
    def incomplete_reason(self) -> str:
        return str(self.data.get("incomplete_reason") or "")

    @property
    def formats(self) -> dict[str, dict[str, int]]:
        """Inputs per source format and how they were stored (``{}`` in older manifests)."""
        return {k: dict(v) for k, v in self.data.get("formats", {}).items()}

    @property
    def reencoded(self) -> list[dict[str, str]]:
        """The videos re-encoded because their stream could not be stored as it is."""
        return [dict(r) for r in self.data.get("reencoded", [])]

    def clips_in(self, split: str) -> int:
        """Clip records of ``split`` (0 for a split the dataset does not have)."""
        return int(self.per_split.get(split, {}).get("clips", 0))

    def __getitem__(self, key: str) -> Any:
        """The raw document's ``key`` (``manifest["reject_reasons"]``)."""
        return self.data[key]


def parse_manifest(data: Mapping[str, Any], uri: str) -> Manifest:
    """The typed view of a manifest document; ``ValueError`` naming ``uri`` when it is not one
    this version reads."""
    version = data.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise ValueError(
            f"{uri}: manifest schema_version {version!r}, this version reads {READABLE_VERSIONS}"
        )
    try:
        classes = sorted(data["classes"], key=lambda c: c["label_id"])
        if version == 1:
            spec = ClipSpec.from_legacy(data["sampling"], f"{uri}: sampling")
        else:
            spec = ClipSpec.from_dict(data["clip_spec"], f"{uri}: clip_spec")
        flip = FlipLabels.from_dict(data.get("flip"), f"{uri}: flip")
        flip.check_classes([c["name"] for c in classes], f"{uri}: flip.pairs")
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{uri}: malformed manifest ({type(exc).__name__}: {exc})") from exc
    return Manifest(
        uri=uri,
        schema_version=int(version),
        classes=tuple(c["name"] for c in classes),
        clip_spec=spec,
        per_split=data.get("per_split", {}),
        counts=data.get("counts", {}),
        flip=flip,
        data=data,
    )
