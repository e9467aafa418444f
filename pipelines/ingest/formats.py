"""What came in and how it was stored: each input's ``<container>/<codec>`` and its counts.

Every input is counted under its *source format* (:func:`source_format`), e.g. ``webm/vp9``,
``mkv/av1``, ``mp4/h264``, ``mov/mjpeg``, ``avi/mpeg4``: the container read from the first
bytes (ISO-BMFF's ``ftyp`` brand ``qt`` -> ``mov``, else ``mp4``; Matroska's EBML DocType
``webm`` or ``matroska`` -> ``webm`` / ``mkv``; ``avi``, ``flv``, ``mpegts``) and the codec of
its video stream as probed. What was not known when an input was rejected is named so:
``unread`` (the bytes were never read), ``<container>/unknown`` or ``unknown/unknown`` (the
probe failed before the codec was known).

A stored video is ``copied`` (its packets remuxed as they are) or ``reencoded``: every video
when the config asks for it (``ingest.reencode``; reason ``ingest.reencode profile <name>``),
else only a video whose stream an MP4 cannot hold as it is (VP8, WMV, FLV1, ProRes ...), with
the :data:`FALLBACK_PROFILE` and the remux error as its reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from pipelines.ingest.probe import sniff_container

#: The re-encode profile (:data:`pipelines.ingest.segment.REENCODE_PROFILES`) of a video whose
#: stream cannot be stored as it is: H.264 at the source's size and every source frame.
FALLBACK_PROFILE = "train"
#: The source format of an input whose bytes were never read.
UNREAD = "unread"
#: The per-format counters of the manifest's ``formats``.
COUNTERS = ("inputs", "copied", "reencoded", "rejected", "transient")
_CONFIGURED = "ingest.reencode profile "


def container_of(data: bytes) -> str:
    """``mp4``, ``mov``, ``webm``, ``mkv``, ``avi``, ``flv``, ``mpegts`` or ``unknown``: the
    probe's container family (:func:`~pipelines.ingest.probe.sniff_container`), told apart
    within ISO-BMFF and Matroska."""
    family = sniff_container(data)
    if family == "mp4/mov":
        # QuickTime files before ISO-BMFF have no ftyp
        return "mp4" if data[4:8] == b"ftyp" and data[8:12] != b"qt  " else "mov"
    if family == "matroska/webm":
        return "webm" if _ebml_doctype(data[:64]) == b"webm" else "mkv"
    return family or "unknown"


def _ebml_doctype(header: bytes) -> bytes:
    """The DocType string (element ``0x4282``) of an EBML header, or ``b""``."""
    at = header.find(b"\x42\x82")
    if at < 0 or at + 2 >= len(header):
        return b""
    first = header[at + 2]
    width = 1
    while width <= 8 and not first & (0x80 >> (width - 1)):
        width += 1
    if width > 8:
        return b""
    size = first & (0xFF >> width)
    for byte in header[at + 3 : at + 2 + width]:
        size = (size << 8) | byte
    start = at + 2 + width
    return header[start : start + size]


def source_format(data: bytes, codec: str | None) -> str:
    """``<container>/<codec>`` of an input (``codec`` None: not known, ``unknown``)."""
    return f"{container_of(data)}/{codec or 'unknown'}"


def configured_reason(profile: str) -> str:
    """The ``stored_reason`` of a video re-encoded because the config re-encodes every video."""
    return f"{_CONFIGURED}{profile}"


def shard_formats(
    clips: Sequence[dict[str, Any]],
    rejects: Iterable[dict[str, Any]],
    transient: Iterable[dict[str, Any]],
) -> dict[str, Any]:
    """A shard marker's ``formats`` (``{format: {counter: n}}``), ``stored`` (``[split,
    video_id, format, stored_as]`` per stored video) and ``reencoded`` (``{split, video_id,
    path, reason}`` per video re-encoded by the fallback, not by the config)."""
    videos = {(r["split"], r["video_id"]): r for r in clips}
    counts: dict[str, Counter] = {}
    stored, reencoded = [], []
    for (split, video_id), row in sorted(videos.items()):
        fmt, how = row.get("source_format", "unknown/unknown"), row.get("stored_as", "copied")
        counts.setdefault(fmt, Counter()).update(inputs=1, **{how: 1})
        stored.append([split, video_id, fmt, how])
        reason = row.get("stored_reason", "")
        if how == "reencoded" and not reason.startswith(_CONFIGURED):
            reencoded.append(
                {"split": split, "video_id": video_id, "path": row["source_uri"], "reason": reason}
            )
    for rows, counter in ((rejects, "rejected"), (transient, "transient")):
        for row in rows:
            fmt = row.get("source_format", UNREAD)
            counts.setdefault(fmt, Counter()).update(inputs=1, **{counter: 1})
    formats = {fmt: _full(c) for fmt, c in sorted(counts.items())}
    return {"formats": formats, "stored": stored, "reencoded": reencoded}


def leak_rejected(marker: dict[str, Any], moved: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``marker``'s :func:`shard_formats` keys with the stored videos ``moved`` (``(split,
    video_id)``, rejected as split leaks) counted as rejected instead."""
    moved = set(moved)
    formats = {fmt: Counter(c) for fmt, c in marker.get("formats", {}).items()}
    stored = []
    for split, video_id, fmt, how in marker.get("stored", []):
        if (split, video_id) in moved:
            formats[fmt].update({how: -1, "rejected": 1})
        else:
            stored.append([split, video_id, fmt, how])
    reencoded = [r for r in marker.get("reencoded", []) if (r["split"], r["video_id"]) not in moved]
    return {
        "formats": {fmt: _full(c) for fmt, c in sorted(formats.items())},
        "stored": stored,
        "reencoded": reencoded,
    }


def sum_formats(markers: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The manifest's ``formats``: the markers' counts summed, by format."""
    total: dict[str, Counter] = {}
    for marker in markers:
        for fmt, counts in marker.get("formats", {}).items():
            total.setdefault(fmt, Counter()).update(counts)
    return {fmt: _full(c) for fmt, c in sorted(total.items())}


def all_reencoded(markers: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The manifest's ``reencoded``: the markers' lists, by ``(split, video_id)``."""
    rows = [r for marker in markers for r in marker.get("reencoded", [])]
    return sorted(rows, key=lambda r: (r["split"], r["video_id"]))


def compact(formats: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """``formats`` without its zero counters (the ingest's summary line)."""
    return {fmt: {k: n for k, n in c.items() if n} for fmt, c in formats.items()}


def _full(counts: Counter) -> dict[str, int]:
    return {name: int(counts.get(name, 0)) for name in COUNTERS}
