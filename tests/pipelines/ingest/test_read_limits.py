"""The ingest's read path and per-video limits, without Ray: regular files only, byte cap,
retries of errors that may pass, the per-video time limit."""

from __future__ import annotations

import errno
import os
import time

import pytest

from pipelines.ingest import config as ingest_config
from pipelines.ingest.clips import TransientError, process_video, read_input, time_limit
from pipelines.ingest.probe import RejectError
from pipelines.ingest.sources import SourceEntry
from raysf import storage


def _cfg(*overrides: str) -> ingest_config.IngestConfig:
    small = ["clip.slow_frames=4", "clip.tau=4", "clip.alpha=2", "clip.target_fps=null"]
    return ingest_config.load_ingest_config(None, ["retries.backoff_s=0", *small, *overrides])


def _category(uri: str, cfg=None) -> str:
    with pytest.raises(RejectError) as info:
        read_input(uri, cfg or _cfg())
    return info.value.category


def test_special_files_are_rejected_without_reading(tmp_path):
    """Issue case 6: /dev/zero or a FIFO listed as a video exhausted memory or blocked forever."""
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    link = tmp_path / "zero.mp4"
    link.symlink_to("/dev/zero")
    started = time.monotonic()
    assert _category(str(fifo)) == "not_regular_file"  # would block forever if opened
    assert _category(str(link)) == "not_regular_file"  # would never end
    assert _category("/dev/zero") == "not_regular_file"
    assert _category(str(tmp_path)) == "not_regular_file"
    assert _category(str(tmp_path / "gone.mp4")) == "missing"
    assert time.monotonic() - started < 5
    with pytest.raises(RejectError, match="is a FIFO"):
        read_input(str(fifo), _cfg())


def test_byte_cap(tmp_path):
    path = tmp_path / "v.mp4"
    path.write_bytes(b"x" * 1000)
    assert read_input(str(path), _cfg("limits.max_bytes=1000")) == b"x" * 1000
    assert _category(str(path), _cfg("limits.max_bytes=999")) == "file_too_large"


def test_retry_transient_retries_then_gives_up():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError(errno.EIO, "Input/output error")
        return "ok"

    assert storage.retry_transient(flaky, what="x", attempts=4, backoff_s=0) == "ok"
    assert len(calls) == 3

    def always():
        calls.append(1)
        raise OSError(errno.EIO, "Input/output error")

    calls.clear()
    with pytest.raises(storage.TransientStorageError, match="x: .*after 2 attempts"):
        storage.retry_transient(always, what="x", attempts=2, backoff_s=0)
    assert len(calls) == 2


def test_permanent_errors_are_not_retried():
    calls = []

    def missing():
        calls.append(1)
        raise FileNotFoundError("no such file")

    with pytest.raises(FileNotFoundError):
        storage.retry_transient(missing, what="x", attempts=5, backoff_s=0)
    assert len(calls) == 1
    assert storage.is_permanent(OSError("AWS Error ACCESS_DENIED during GetObject"))
    assert not storage.is_permanent(OSError("AWS Error SLOW_DOWN during GetObject"))
    assert not storage.is_permanent(OSError(errno.EIO, "Input/output error"))


def test_time_limit_interrupts_a_long_block():
    started = time.monotonic()
    with pytest.raises(RejectError, match="limits.timeout_s=0.2") as info, time_limit(0.2, "v"):
        while True:
            time.sleep(0.01)
    assert info.value.category == "timeout"
    assert time.monotonic() - started < 2
    with time_limit(5.0, "v") as timer:  # a quick block passes, the timer is disarmed
        pass
    assert not timer.expired
    time.sleep(0.05)


def test_time_limit_rejects_a_slow_video(tmp_path, ingest_media):
    path = ingest_media.write_mp4(tmp_path / "train" / "v.mp4", num_frames=48)
    entry = SourceEntry(str(path), "v.mp4", "train", "a")
    rows, reject = process_video(entry, 0, False, _cfg("limits.timeout_s=0.000001"))
    assert rows == [] and reject["reason"] == "timeout"
    rows, reject = process_video(entry, 0, False, _cfg())
    assert reject is None and rows and len(rows[0]["source_sha256"]) == 64


def test_bad_entry_is_rejected_without_reading():
    entry = SourceEntry("ann.csv:3", "x", "train", "a", error="ann.csv:3: empty youtube_id")
    rows, reject = process_video(entry, 0, False, _cfg())
    assert rows == [] and reject["reason"] == "bad_entry" and "ann.csv:3" in reject["message"]


def test_memory_errors_are_transient(tmp_path, ingest_media, monkeypatch):
    from pipelines.ingest import clips as clip_records

    def boom(*args, **kwargs):
        raise MemoryError

    path = ingest_media.write_mp4(tmp_path / "v.mp4", num_frames=48)
    monkeypatch.setattr(clip_records, "probe_video", boom)
    with pytest.raises(TransientError, match="out of memory"):
        process_video(SourceEntry(str(path), "v.mp4", "train", "a"), 0, False, _cfg())
