"""Where the video file of a Kinetics annotation row is, as downloads name it.

Kinetics downloaders name a clip ``<split>/<youtube_id>_<start:06d>_<end:06d>.<ext>`` (the
official crawler's cut clips) or ``<split>/<youtube_id>.<ext>`` (yt-dlp's default name, an
uncut download), with whatever container the site served: mostly WebM, also MP4 and MKV. A
row's file is found among the files of its split folder by name stem, for any extension in
:data:`VIDEO_SUFFIXES`, without renaming anything. Pure functions of names: the listing is read
once per split folder by :mod:`pipelines.ingest.sources`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

#: File extensions taken for videos (lower case; a name's extension is compared lower-cased).
VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".3gp", ".ogv",
)  # fmt: skip


def clip_stem(youtube_id: str, start: int, end: int) -> str:
    """The cut clip's name stem (and video id): ``{youtube_id}_{start:06d}_{end:06d}``."""
    return f"{youtube_id}_{start:06d}_{end:06d}"


def index_videos(paths: Iterable[str]) -> dict[str, list[str]]:
    """Video files by name stem (``a/b/xyz_000010_000020.webm`` under ``xyz_000010_000020``);
    files without a video extension are left out. Each list is sorted."""
    index: dict[str, list[str]] = {}
    for path in paths:
        stem, ext = posixpath.splitext(posixpath.basename(path))
        if ext.lower() in VIDEO_SUFFIXES:
            index.setdefault(stem, []).append(path)
    for found in index.values():
        found.sort()
    return index


def find_clip_file(
    index: dict[str, list[str]], youtube_id: str, start: int, end: int
) -> tuple[str | None, str]:
    """``(path, "")`` of the row's one file; ``(None, "")`` when there is none (the ingest
    rejects the missing file); ``(None, why)`` when two or more files could be it (naming them)."""
    candidates = index.get(clip_stem(youtube_id, start, end), []) + index.get(youtube_id, [])
    if len(candidates) > 1:
        names = ", ".join(posixpath.basename(p) for p in candidates)
        return None, f"{len(candidates)} files could be this row's video ({names}): keep one"
    return (candidates[0] if candidates else None), ""
