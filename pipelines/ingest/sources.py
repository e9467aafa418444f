"""Read a video listing in one of three formats into a sorted, fingerprinted :class:`Listing`.

Formats (``videos`` is a local root or an ``s3://`` prefix):

- ``kinetics``: official annotation CSVs with the columns
  ``label,youtube_id,time_start,time_end,split`` (extra columns are ignored); the file of a row
  is ``<videos>/<split>/{youtube_id}_{time_start:06d}_{time_end:06d}.<ext>`` or
  ``<videos>/<split>/{youtube_id}.<ext>``, any video extension
  (:mod:`pipelines.ingest.kinetics_files`; two candidates for one row are a ``bad_entry``).
  ``annotations`` is one CSV or a folder of ``*.csv`` (default ``<videos>/annotations``).
- ``list``: PySlowFast / PyTorchVideo lists, one ``<path> <label_id>`` per line (path relative
  to ``videos`` or absolute / ``s3://``). The split is the list file's stem (``train.csv`` ->
  ``train``). ``annotations`` is one list file or a folder of ``*.csv``/``*.txt`` lists.
  Class names are the ids (``"0"``, ``"1"`` ...) unless a class-name file is given.
- ``folders``: ``<videos>/<split>/<class>/<file>``; every file is an input (a stray non-video,
  a FIFO or a device lands in the rejects table). Files directly under ``<split>/`` have no
  label; hidden files and a top-level ``annotations/`` folder are skipped.

**Video ids** are unique per input within a split: Kinetics ids are
``{youtube_id}_{start:06d}_{end:06d}``; folder and list ids are derived from the path
(:func:`path_video_id`: ``cat/a.mp4`` below ``<split>/`` for folders, the listed path for lists),
so ``train/cat/a.mp4`` and ``train/dog/a.mp4`` are two videos, never a duplicate.

Problems with the listing itself (unreadable annotation file, missing column, malformed line,
unknown format) raise ``ValueError`` naming the file and line/column before any video is read.
A bad *entry* -- a file name that is not UTF-8, a Kinetics ``youtube_id`` or ``split`` that is
empty or holds a path separator or ``..`` -- never fails the listing: it becomes an entry with
``error`` set, which the ingest turns into a ``bad_entry`` reject naming it. Problems with one
video (missing file, unknown label) are the ingest job's rejects. Annotation and list files are
read as UTF-8 with or without a byte-order mark (what spreadsheet exports write).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, replace

import pyarrow.fs as pafs

from pipelines.ingest.kinetics_files import clip_stem, find_clip_file, index_videos
from raysf import storage
from raysf.storage import StorageLocation

FORMATS = ("kinetics", "list", "folders")
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
_LIST_SUFFIXES = (".csv", ".txt", ".lst")


@dataclass(frozen=True)
class SourceEntry:
    """One input video.

    Attributes:
        uri: where the file is (absolute local path or ``s3://bucket/key``).
        video_id: id unique within its split (Kinetics: ``{youtube_id}_{start:06d}_{end:06d}``;
            folders and lists: the path, see :func:`path_video_id`).
        split: ``train``, ``val``, ``test`` or whatever the listing names.
        label: class name as listed (``""`` when the listing has none).
        error: why the entry itself is unusable (``""`` for a good entry); the ingest rejects
            it as ``bad_entry`` without reading anything.
    """

    uri: str
    video_id: str
    split: str
    label: str
    error: str = ""


@dataclass(frozen=True)
class Listing:
    """All inputs, sorted by ``(split, video_id, uri)``, and the class list.

    ``classes[i]`` is the name of label id ``i``.
    """

    format: str
    entries: tuple[SourceEntry, ...]
    classes: tuple[str, ...]

    def label_id(self, label: str) -> int | None:
        """Label id of a class name, or None when it is not in the class list."""
        try:
            return self.classes.index(label)
        except ValueError:
            return None

    def fingerprint(self) -> str:
        """sha256 of the format, the sorted entries and the class list."""
        payload = {
            "format": self.format,
            "classes": list(self.classes),
            "entries": [[e.uri, e.video_id, e.split, e.label, e.error] for e in self.entries],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def read_class_names(where: StorageLocation | str) -> tuple[str, ...]:
    """Class-name file: one name per line, line ``i`` (blank lines skipped) names label id ``i``.

    A JSON file holding a list of names or a ``{name: id}`` mapping is also accepted.
    """
    where = storage.as_location(where)
    uri = where.uri
    text = _read_listing_file(where.filesystem, where.path, uri)
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{uri}: invalid JSON class list: {exc}") from exc
        if isinstance(data, dict):
            names = [name for name, _ in sorted(data.items(), key=lambda kv: int(kv[1]))]
            if sorted(int(v) for v in data.values()) != list(range(len(names))):
                raise ValueError(f"{uri}: class ids must be 0..{len(names) - 1}")
        else:
            names = [str(n) for n in data]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{uri}: class-name file is empty")
    if len(set(names)) != len(names):
        raise ValueError(f"{uri}: class names are not unique")
    return tuple(names)


def read_listing(
    videos: StorageLocation | str,
    *,
    format: str,
    annotations: StorageLocation | str | None = None,
    classes: tuple[str, ...] | None = None,
) -> Listing:
    """Read the listing of ``videos`` in ``format`` (see module docstring).

    Args:
        videos: root folder or ``s3://`` prefix of the videos (a location; a path or URI is
            resolved with the AWS environment's S3 settings, as is ``annotations``).
        format: one of :data:`FORMATS`.
        annotations: annotation/list file or folder (``kinetics``, ``list``).
        classes: class names in label-id order; when None they are derived from the listing
            (sorted names; for ``list``, ``"0"..str(max id)``).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown input format {format!r}; expected one of {list(FORMATS)}")
    videos = storage.as_location(videos)
    fs, root = videos.filesystem, videos.path
    if not videos.exists():
        raise ValueError(f"video root {videos.uri} does not exist")
    if format == "kinetics":
        ann = annotations or videos.join("annotations")
        entries = _read_kinetics(fs, root, _annotation_files(ann, (".csv",)))
    elif format == "list":
        if not annotations:
            raise ValueError("format 'list' needs --annotations (a list file or folder)")
        files = _annotation_files(annotations, _LIST_SUFFIXES)
        entries = _read_lists(fs, root, files)
        if classes is None:
            ids = [int(e.label) for e in entries]
            classes = tuple(str(i) for i in range(max(ids) + 1)) if ids else ()
        else:
            entries = [_name_list_label(e, classes) for e in entries]
    else:
        entries = _read_folders(fs, root)
    if classes is None:
        classes = tuple(sorted({e.label for e in entries if e.label}))
    entries.sort(key=lambda e: (e.split, e.video_id, e.uri))
    return Listing(format=format, entries=tuple(entries), classes=tuple(classes))


def _annotation_files(
    where: StorageLocation | str, suffixes: tuple[str, ...]
) -> list[tuple[pafs.FileSystem, str, str]]:
    """(fs, path, uri) of the annotation file ``where`` or of the matching files in that
    folder."""
    where = storage.as_location(where)
    fs, path, uri = where.filesystem, where.path, where.uri
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise ValueError(f"annotation file or folder {uri} does not exist")
    if info.type == pafs.FileType.File:
        return [(fs, path, uri)]
    files = [p for p in storage.list_files(fs, path, recursive=False) if p.endswith(suffixes)]
    if not files:
        raise ValueError(f"no annotation files ({', '.join(suffixes)}) in {uri}")
    return [(fs, p, storage.to_uri(fs, p)) for p in files]


def _read_listing_file(fs: pafs.FileSystem, path: str, uri: str) -> str:
    """UTF-8 text of an annotation/list/class file; a leading byte-order mark is dropped."""
    try:
        return storage.read_text(fs, path, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read annotation file {uri}: {exc}") from exc


def _file_uri(fs: pafs.FileSystem, root: str, path: str) -> str:
    """URI of ``path`` (relative to ``root`` unless absolute / s3://)."""
    if storage.is_s3(path):
        return path
    if isinstance(fs, pafs.LocalFileSystem):
        return path if os.path.isabs(path) else os.path.normpath(os.path.join(root, path))
    return storage.to_uri(fs, storage.join(root, path))


def _read_kinetics(
    fs: pafs.FileSystem, root: str, files: list[tuple[pafs.FileSystem, str, str]]
) -> list[SourceEntry]:
    entries: list[SourceEntry] = []
    folders: dict[str, dict[str, list[str]]] = {}  # split -> its video files by name stem
    for afs, apath, auri in files:
        text = _read_listing_file(afs, apath, auri)
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in KINETICS_COLUMNS if c not in header]
        if missing:
            raise ValueError(
                f"{auri}: missing column(s) {missing}; Kinetics CSVs need {list(KINETICS_COLUMNS)}"
                f" (found {header})"
            )
        reader.fieldnames = header
        for line, row in enumerate(reader, start=2):
            try:
                start = int(float(row["time_start"]))
                end = int(float(row["time_end"]))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{auri}:{line}: time_start/time_end must be numbers") from exc
            split = (row["split"] or "").strip()
            if split not in folders and not bad_name_part(split, "split"):
                folders[split] = _split_videos(fs, root, split)
            entries.append(
                _kinetics_entry(
                    fs, root, row, (start, end), folders.get(split, {}), f"{auri}:{line}"
                )
            )
    return entries


def _split_videos(fs: pafs.FileSystem, root: str, split: str) -> dict[str, list[str]]:
    """The video files directly in ``<root>/<split>/`` by name stem (one listing a split)."""
    folder = storage.join(root, split)
    if not storage.exists(fs, folder):
        return {}
    return index_videos(storage.list_files(fs, folder, recursive=False))


def _kinetics_entry(
    fs: pafs.FileSystem,
    root: str,
    row: dict,
    times: tuple[int, int],
    videos: dict[str, list[str]],
    where: str,
) -> SourceEntry:
    """The entry of one Kinetics row, its file found in ``videos`` (its split's files by
    stem); a bad ``youtube_id``/``split``, or two candidate files, give an entry with ``error``
    set (its ``uri`` is the annotation line: nothing is read for it). With no file, the uri is
    the ``.mp4`` name, which the ingest rejects as missing."""
    youtube_id = (row["youtube_id"] or "").strip()
    split = (row["split"] or "").strip()
    label = (row["label"] or "").strip()
    video_id = clip_stem(youtube_id, *times)
    problem = bad_name_part(youtube_id, "youtube_id") or bad_name_part(split, "split")
    path, ambiguous = (None, "") if problem else find_clip_file(videos, youtube_id, *times)
    if problem or ambiguous:
        return SourceEntry(where, video_id, split, label, error=f"{where}: {problem or ambiguous}")
    uri = storage.to_uri(fs, path) if path else _file_uri(fs, root, f"{split}/{video_id}.mp4")
    return SourceEntry(uri=uri, video_id=video_id, split=split, label=label)


def bad_name_part(value: str, what: str) -> str:
    """Why ``value`` cannot be one component of a file path (``""`` when it can)."""
    if not value:
        return f"empty {what}"
    if "/" in value or "\\" in value or value in (".", ".."):
        return f"{what} {value!r} holds a path separator or is '.'/'..'"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return f"{what} {value!r} holds a control character"
    return ""


def _read_lists(
    fs: pafs.FileSystem, root: str, files: list[tuple[pafs.FileSystem, str, str]]
) -> list[SourceEntry]:
    entries: list[SourceEntry] = []
    for afs, apath, auri in files:
        split = os.path.splitext(os.path.basename(apath))[0]
        text = _read_listing_file(afs, apath, auri)
        for line_no, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(None, 1)
            if len(parts) != 2:
                raise ValueError(f"{auri}:{line_no}: expected '<path> <label_id>', got {line!r}")
            path, label = parts
            try:
                label_id = int(label)
            except ValueError as exc:
                raise ValueError(f"{auri}:{line_no}: label id {label!r} is not an integer") from exc
            if label_id < 0:
                raise ValueError(f"{auri}:{line_no}: label id {label_id} is negative")
            uri = _file_uri(fs, root, path)
            video_id = path_video_id(storage.to_uri(fs, root), uri)
            entries.append(SourceEntry(uri=uri, video_id=video_id, split=split, label=label))
    return entries


def path_video_id(root_uri: str, uri: str) -> str:
    """The id of a listed file: its path below ``root_uri`` (``train/cat/a.mp4``), or the whole
    URI for a file outside it; unique per file, unlike the bare file name."""
    prefix = root_uri.rstrip("/") + "/"
    if uri.startswith(prefix):
        return uri[len(prefix) :]
    return uri


def _name_list_label(entry: SourceEntry, classes: tuple[str, ...]) -> SourceEntry:
    """Replace a list entry's numeric label by its class name ("" when out of range)."""
    label_id = int(entry.label)
    name = classes[label_id] if label_id < len(classes) else ""
    return replace(entry, label=name)


def _read_folders(fs: pafs.FileSystem, root: str) -> list[SourceEntry]:
    entries: list[SourceEntry] = []
    for rel, error in _folder_files(fs, root):
        parts = rel.split("/")
        if any(p.startswith(".") for p in parts) or len(parts) < 2 or parts[0] == "annotations":
            continue  # hidden files, files at the root, the annotations folder
        split = parts[0]
        label = parts[1] if len(parts) >= 3 else ""
        uri = storage.to_uri(fs, storage.join(root, rel))
        entries.append(SourceEntry(uri, "/".join(parts[1:]), split, label, error=error))
    if not entries:
        raise ValueError(f"no files under {storage.to_uri(fs, root)}/<split>/<class>/")
    return entries


def _folder_files(fs: pafs.FileSystem, root: str) -> list[tuple[str, str]]:
    """``(path relative to root, error)`` of every non-directory below ``root``.

    Local folders are walked with ``os.walk`` so that a file name that is not UTF-8 (which
    pyarrow's listing fails on, for the whole folder) becomes one entry with ``error`` set, its
    undecodable bytes shown as ``\\xNN`` escapes; FIFOs, devices and sockets are listed too
    (the ingest rejects them as ``not_regular_file``). S3 keys are always UTF-8.
    """
    if not isinstance(fs, pafs.LocalFileSystem):
        return [(p[len(root) :].lstrip("/"), "") for p in storage.list_files(fs, root)]
    out = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), root)
            shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
            error = "" if shown == rel else f"file name {shown!r} is not valid UTF-8"
            out.append((shown.replace(os.sep, "/"), error))
    return sorted(out)
