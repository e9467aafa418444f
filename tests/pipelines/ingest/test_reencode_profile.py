"""The training re-encode profile: config (profile + overrides, resume key), the x264 stream
ingest writes with it, and the loader skipping its B-frames."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pipelines.decode.frame_table import read_frame_table
from pipelines.ingest import config as ingest_config
from pipelines.ingest.clips import process_video
from pipelines.ingest.segment import REENCODE_PROFILES, EncodeSettings
from pipelines.ingest.sources import SourceEntry
from raysf.config import ConfigError


def _load(*overrides: str) -> ingest_config.IngestConfig:
    return ingest_config.load_ingest_config(None, list(overrides))


def test_profile_and_overrides_resolve_to_settings():
    train = _load("reencode.profile=train").reencode
    assert train.settings() == REENCODE_PROFILES["train"]
    assert train.settings() == EncodeSettings(
        gop=64, crf=26, preset="veryfast", tune="fastdecode", bframes=3, b_pyramid=False
    )
    custom = _load("reencode.profile=train", "reencode.gop=32", "reencode.tune=none").reencode
    assert (custom.settings().gop, custom.settings().tune) == (32, None)
    assert custom.settings().b_pyramid is False
    archive = _load("reencode.short_side=128").reencode
    assert archive.settings() == REENCODE_PROFILES["archive"]


def test_record_dict_keeps_the_archive_keys_of_earlier_versions():
    archive = _load("reencode.short_side=128").reencode
    assert archive.record_dict() == {
        "short_side": 128,
        "fps": 30.0,
        "gop": 16,
        "crf": 23,
        "preset": "veryfast",
    }
    train = _load("reencode.profile=train").record_config()["reencode"]
    assert train["tune"] == "fastdecode" and train["bframes"] == 3
    assert train["b_pyramid"] is False and train["gop"] == 64


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("reencode.profile=fast", "reencode.profile: 'fast' is not one of"),
        ("reencode.crf=60", r"crf must be in \[0, 51\]"),
        ("reencode.bframes=-1", r"bframes must be in \[0, 16\]"),
        ("reencode.gop=0", "gop must be >= 1"),
    ],
)
def test_profile_errors_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        _load(override)


def test_ingest_writes_the_training_profile(tmp_path, ingest_media):
    path = ingest_media.write_mp4(tmp_path / "v.mp4", num_frames=150, width=96, height=64)
    cfg = _load(
        "reencode.profile=train",
        "reencode.short_side=48",
        "clip.slow_frames=4",
        "clip.tau=4",
        "clip.target_fps=null",
    )
    entry = SourceEntry(uri=str(path), video_id="v", split="train", label="a")
    rows, reject = process_video(entry, 0, False, cfg)
    assert reject is None and len(rows) == 1
    content = rows[0]["content"]
    # x264 writes its settings into the stream (an SEI message): read them back.
    options = dict(re.findall(rb" (\w+)=([\w:.]+)", content.split(b"options:")[1][:2000]))
    assert options[b"cabac"] == b"0" and options[b"deblock"].startswith(b"0:")
    assert options[b"bframes"] == b"3" and options[b"b_pyramid"] == b"0"
    assert options[b"keyint"] == b"64"
    table = read_frame_table(content)
    assert (table.width, table.height, table.num_frames) == (72, 48, 150)
    np.testing.assert_array_equal(table.keyframes, [0, 64, 128])
