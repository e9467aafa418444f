"""pipelines.ingest.run: config validation, sharding, and end-to-end runs (local, S3, kill+rerun)."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs import ingest as ingest_job
from pipelines import sampling
from pipelines.decode.frames import decode_frames
from pipelines.ingest import config as ingest_config
from pipelines.ingest import run as ingest
from pipelines.schema import CLIP_SCHEMA, check_clip_table
from raysf.config import ConfigError
from raysf.runtime import read_manifest
from raysf.storage import resolve_location

REPO = Path(__file__).resolve().parents[3]
SMALL = [
    "clip.slow_frames=4",
    "clip.tau=4",
    "clip.alpha=2",
    "clip.target_fps=null",
    "clip.num_test_clips=3",
    "segment.pad_frames=4",
]


def _cfg(videos, out, *extra):
    keys = [f"videos={json.dumps(str(videos))}", f"out={json.dumps(str(out))}"]
    return ingest_config.load_ingest_config(None, keys + SMALL + list(extra))


def _read_clips(out) -> list[dict]:
    rows = []
    for f in sorted(glob.glob(os.path.join(out, "clips", "*.parquet"))):
        table = pq.read_table(f)
        check_clip_table(table)
        rows += table.to_pylist()
    return sorted(rows, key=lambda r: (r["split"], r["video_id"], r["clip_index"]))


def _read_rejects(out) -> list[dict]:
    rows = []
    for f in sorted(glob.glob(os.path.join(out, "rejects", "*.parquet"))):
        rows += pq.read_table(f).to_pylist()
    return rows


# ---------------------------------------------------------------------------- config / plan


def test_default_yaml_matches_dataclass_defaults():
    cfg = ingest_config.load_ingest_config(str(REPO / "jobs" / "ingest.yaml"))
    assert cfg == ingest_config.IngestConfig()
    assert (cfg.clip.slow_frames, cfg.clip.tau, cfg.clip.alpha) == (8, 4 * 2, 4)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("clip.taus=3", r"clip.taus: unknown key \(did you mean 'tau'\?\)"),
        ("shard_size=big", "shard_size: expected an integer"),
        ("format=csv", r"format: 'csv' is not one of"),
        ("clip.alpha=0", "alpha=0: must be an integer >= 1"),
        ("reencode.gop=0", "gop must be >= 1"),
    ],
)
def test_config_errors_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        ingest_config.load_ingest_config(None, [override])


def test_reencode_override_builds_typed_section():
    cfg = ingest_config.load_ingest_config(None, ["reencode.short_side=128", "reencode.fps=15"])
    assert cfg.reencode == ingest_config.ReencodeConfig(short_side=128, fps=15.0)


def _kinetics_tree(root: Path, M, rows: list[tuple[str, str, str]]):
    """rows: (label, youtube_id, split); writes annotations/all.csv; returns the CSV path."""
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    lines = ["label,youtube_id,time_start,time_end,split"]
    lines += [f"{label},{yid},0,2,{split}" for label, yid, split in rows]
    (ann / "all.csv").write_text("\n".join(lines) + "\n")
    return ann / "all.csv"


def test_plan_is_deterministic_and_flags_duplicates(tmp_path, ingest_media):
    _kinetics_tree(tmp_path, ingest_media, [("a", f"v{i}", "train") for i in (3, 1, 2, 1)])
    cfg = _cfg(tmp_path, tmp_path / "out", "shard_size=3")
    listing, tasks = ingest.prepare(cfg)
    assert [t.shard for t in tasks] == ["shard-00000", "shard-00001"]
    flat = [(e.video_id, dup) for t in tasks for e, _, dup in t.items]
    assert flat == [
        ("v1_000000_000002", False),
        ("v1_000000_000002", True),
        ("v2_000000_000002", False),
        ("v3_000000_000002", False),
    ]
    assert ingest.prepare(cfg)[1] == tasks


def test_flip_pairs_must_name_listed_classes(tmp_path, ingest_media):
    _kinetics_tree(tmp_path, ingest_media, [("a", "v1", "train"), ("b", "v2", "train")])
    cfg = _cfg(tmp_path, tmp_path / "out", "flip.pairs=[[a, b]]")
    assert cfg.flip.label_map(["a", "b"]) == (1, 0)
    ingest.prepare(cfg)
    bad = _cfg(tmp_path, tmp_path / "out", "flip.pairs=[[a, c]]")
    with pytest.raises(ConfigError, match="flip.pairs: class 'c' is not one of"):
        ingest.prepare(bad)
    with pytest.raises(ConfigError, match="flip.pairs: class 'a' is in two pairs"):
        _cfg(tmp_path, tmp_path / "out", "flip.pairs=[[a, b], [a, c]]")


def test_missing_out_or_videos_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="out: required"):
        ingest.prepare(ingest_config.load_ingest_config(None, [f"videos={tmp_path}"]))


# ---------------------------------------------------------------------------- integration


@pytest.fixture(scope="module")
def ray_local(ingest_s3_endpoint):
    """A local Ray whose workers start with the S3 credentials in their environment, as a
    node's would: a worker started before them signs no request (the SDK then sends
    anonymous aws-chunked uploads, which moto stores with their framing)."""
    import ray

    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


GOOD = [("a", "tr0", "train"), ("b", "tr1", "train"), ("a", "tr2", "train")]
GOOD += [("b", "va0", "val"), ("a", "te0", "test")]


@pytest.fixture(scope="module")
def kinetics_with_bad(tmp_path_factory, ingest_media):
    """Kinetics layout with 5 good videos and one input of every reject category."""
    M = ingest_media
    root = tmp_path_factory.mktemp("kin")
    scratch = tmp_path_factory.mktemp("scratch")
    rows = list(GOOD)
    for i, (_, yid, split) in enumerate(GOOD):
        M.write_mp4(root / split / f"{yid}_000000_000002.mp4", num_frames=48 + 6 * i, gop=12)
    expected = {}
    for kind in M.bad_kinds:
        M.write_bad(kind, root / "train" / f"bad_{kind}_000000_000002.mp4", scratch)
        rows.append(("a", f"bad_{kind}", "train"))
        expected[f"bad_{kind}_000000_000002"] = {
            "empty": "empty",
            "truncated": "truncated",
            "random": "unreadable",
            "audio_only": "no_video",
            "image": "image",
            "too_short": "too_short",
            "undecodable": "undecodable",
        }[kind]
    rows.append(("a", "gone", "test"))  # listed, never written
    expected["gone_000000_000002"] = "missing"
    M.write_mp4(root / "val" / "odd_000000_000002.mp4")
    rows.append(("zebra", "odd", "val"))  # label not in classes.txt
    expected["odd_000000_000002"] = "unknown_label"
    rows.append(("b", "tr1", "train"))  # listed twice
    expected["tr1_000000_000002"] = "duplicate"
    _kinetics_tree(root, M, rows)
    (root / "classes.txt").write_text("a\nb\n")
    return root, expected, len(rows)


@pytest.mark.slow
def test_ingest_local_records_and_rejects(tmp_path, ray_local, kinetics_with_bad, ingest_media):
    root, expected, num_inputs = kinetics_with_bad
    out = tmp_path / "ds"
    classes = f"classes={json.dumps(str(root / 'classes.txt'))}"
    cfg = _cfg(root, out, classes, "shard_size=4", "checks.max_reject_fraction=1.0")
    manifest = ingest.run_ingest(cfg)

    assert manifest == read_manifest(str(out))
    counts = manifest["counts"]
    rejects = len(expected)
    assert counts == {
        "inputs": num_inputs,
        "videos": 5,
        "rejects": rejects,
        "clips": 7,
        "transient": 0,
    }
    assert counts["videos"] + counts["rejects"] == counts["inputs"]
    assert manifest["classes"] == [{"label_id": 0, "name": "a"}, {"label_id": 1, "name": "b"}]
    assert manifest["per_split"]["test"] == {"inputs": 2, "videos": 1, "clips": 3, "rejects": 1}
    assert manifest["per_class"] == {"a": {"train": 2, "test": 1}, "b": {"train": 1, "val": 1}}

    rejects = _read_rejects(out)
    assert {r["video_id"]: r["reason"] for r in rejects} == expected
    assert all(r["message"] and r["path"] for r in rejects)

    clips = _read_clips(out)
    assert len(clips) == 7
    assert [c["clip_index"] for c in clips if c["split"] == "test"] == [0, 1, 2]
    span = sampling.window_span(4, 4)
    for c in clips:
        assert c["span"] == span == 16
        assert c["label_id"] == {"a": 0, "b": 1}[c["label"]]
        assert len(c["fast_idx"]) == 8 and len(c["slow_idx"]) == 4
        assert c["fast_idx"][0] == c["start_frame"] and c["fast_idx"][1] - c["fast_idx"][0] == 2
        assert c["slow_idx"] == c["fast_idx"][::2]
        assert len(c["frame_pts"]) == c["num_frames"]
        assert c["keyframes"][0] == 0 and c["codec"] == "h264" and c["rotation"] == 0
        src = Path(c["source_uri"]).read_bytes()
        src_frames = ingest_media.decode(src)
        seg_frames = ingest_media.decode(c["content"])
        assert len(seg_frames) == c["num_frames"]
        if c["split"] == "train":
            assert c["source_start_frame"] == 0 and c["num_frames"] == len(src_frames)
            assert c["start_frame"] == sampling.center_start(c["num_frames"], span)
        else:
            assert c["num_frames"] < len(src_frames)
        # Frame-accurate: record frames at its indices == source frames at source indices.
        for i in c["fast_idx"]:
            assert np.array_equal(seg_frames[i], src_frames[c["source_start_frame"] + i])
    starts = [c["source_start_frame"] + c["start_frame"] for c in clips if c["split"] == "test"]
    n_test = len(ingest_media.decode((root / "test" / "te0_000000_000002.mp4").read_bytes()))
    assert starts == sampling.uniform_starts(n_test, span, 3).tolist()

    # A rerun is a no-op that gives the same manifest.
    mtimes = {f: os.path.getmtime(f) for f in glob.glob(str(out / "clips" / "*"))}
    assert ingest.run_ingest(cfg) == manifest
    assert mtimes == {f: os.path.getmtime(f) for f in glob.glob(str(out / "clips" / "*"))}
    # Another config on the same output is refused.
    with pytest.raises(ValueError, match="another listing or config"):
        ingest.run_ingest(_cfg(root, out, "shard_size=5"))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["list", "folders"])
def test_ingest_list_and_folder_formats(tmp_path, ray_local, ingest_media, fmt):
    root = tmp_path / "videos"
    for split, cls, name in [("train", "cat", "x"), ("train", "dog", "y"), ("val", "dog", "z")]:
        ingest_media.write_mp4(root / split / cls / f"{name}.mp4", num_frames=40)
    extra = [f"format={fmt}"]
    if fmt == "list":
        lists = tmp_path / "lists"
        lists.mkdir()
        (lists / "train.csv").write_text("train/cat/x.mp4 0\ntrain/dog/y.mp4 1\n")
        (lists / "val.csv").write_text(f"{root}/val/dog/z.mp4 1\n")
        extra.append(f"annotations={json.dumps(str(lists))}")
    manifest = ingest.run_ingest(_cfg(root, tmp_path / "out", *extra))
    names = ["0", "1"] if fmt == "list" else ["cat", "dog"]
    assert [c["name"] for c in manifest["classes"]] == names
    assert manifest["counts"] == {
        "inputs": 3,
        "videos": 3,
        "rejects": 0,
        "clips": 3,
        "transient": 0,
    }
    clips = _read_clips(tmp_path / "out")
    # path-derived ids: below <split>/ for folders, the listed path (below --videos) for lists
    ids = ["train/cat/x.mp4", "train/dog/y.mp4", "val/dog/z.mp4"]
    if fmt == "folders":
        ids = [i.split("/", 1)[1] for i in ids]
    assert [(c["video_id"], c["label"], c["label_id"]) for c in clips] == [
        (ids[0], names[0], 0),
        (ids[1], names[1], 1),
        (ids[2], names[1], 1),
    ]


#: (class, youtube id, split, kind, file name) of the downloads ingest_formats writes: the
#: containers and codecs Kinetics mirrors serve, named as the crawler (cut clips) and yt-dlp
#: (``<id>.<ext>``) name them.
DOWNLOADS = [
    ("a", "vp", "train", "vp9.webm", "vp_000000_000002.webm"),
    ("b", "av", "train", "av1.mkv", "av.mkv"),
    ("a", "hm", "val", "h264.mkv", "hm_000000_000002.mkv"),
    ("b", "mp", "test", "mpeg4.avi", "mp.avi"),
]


@pytest.mark.slow
def test_ingest_takes_webm_av1_mkv_and_avi_downloads_frame_exact(tmp_path, ray_local, ingest_media):
    """A Kinetics CSV over WebM/VP9, MKV/AV1, MKV/H.264 and AVI/MPEG-4 files in both download
    layouts: every video ingested (none rejected), each record's frames the source's."""
    root = tmp_path / "videos"
    for _, _, split, kind, name in DOWNLOADS:
        ingest_media.write_format(root / split / name, kind, num_frames=40, gop=10)
    _kinetics_tree(root, ingest_media, [(c, y, s) for c, y, s, _, _ in DOWNLOADS])
    manifest = ingest.run_ingest(_cfg(root, tmp_path / "out"))
    assert manifest["counts"]["rejects"] == 0 and manifest["counts"]["videos"] == len(DOWNLOADS)
    clips = _read_clips(tmp_path / "out")
    codecs = {c["video_id"].split("_")[0]: c["codec"] for c in clips}
    assert codecs == {"vp": "vp9", "av": "av1", "hm": "h264", "mp": "mpeg4"}
    for c in clips:
        src = ingest_media.decode(Path(c["source_uri"]).read_bytes())
        seg = ingest_media.decode(c["content"])
        for i in c["fast_idx"]:
            assert np.array_equal(seg[i], src[c["source_start_frame"] + i])


#: (split, class, file name, kind) of the mixed download folder: every kind stored as it is
#: but VP8 (no MP4 mapping: re-encoded), and a WebM cut at half (rejected); a phone video
#: (H.264 with a 90-degree display matrix) and a variable-rate odd-sized WebM.
MIXED = [
    ("train", "a", "phone.mp4", "phone"),
    ("train", "b", "vfr.webm", "vfr"),
    ("train", "a", "vp9.webm", "vp9.webm"),
    ("train", "b", "av1.mkv", "av1.mkv"),
    ("train", "a", "mpeg4.avi", "mpeg4.avi"),
    ("val", "b", "vp8.webm", "vp8.webm"),
    ("train", "b", "h264.mp4", None),
    ("train", "a", "cut.webm", "vp9.webm"),
]


@pytest.mark.slow
def test_cli_ingest_counts_each_container_and_codec(tmp_path, ray_local, ingest_media, capsys):
    """``raysf ingest`` (in process, on this module's Ray) over class folders of mixed
    downloads: the manifest and the summary line count each ``<container>/<codec>``; the VP8
    video alone is re-encoded, listed with its reason; the cut WebM is a truncated reject."""
    root = tmp_path / "videos"
    for split, cls, name, kind in MIXED:
        path = root / split / cls / name
        if kind is None:
            ingest_media.write_mp4(path, num_frames=40)
        elif kind == "phone":
            ingest_media.write_mp4(path, num_frames=40, width=64, height=48, rotation=90)
        elif kind == "vfr":
            ingest_media.write_vfr(path, num_frames=40)
        else:
            ingest_media.write_format(path, kind, num_frames=60 if name == "cut.webm" else 40)
    cut = root / "train" / "a" / "cut.webm"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    out = tmp_path / "out"
    argv = ["--videos", str(root), "--out", str(out), "--format", "folders"]
    argv += ["--log-dir", str(tmp_path / "logs"), *SMALL, "checks.max_reject_fraction=0.5"]
    assert ingest_job.main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["inputs"] == 8 and summary["rejects"] == 1, summary
    assert summary["formats"] == {
        "avi/mpeg4": {"inputs": 1, "copied": 1},
        "mkv/av1": {"inputs": 1, "copied": 1},
        "mp4/h264": {"inputs": 2, "copied": 2},
        "webm/unknown": {"inputs": 1, "rejected": 1},
        "webm/vp8": {"inputs": 1, "reencoded": 1},
        "webm/vp9": {"inputs": 2, "copied": 2},
    }
    manifest = read_manifest(str(out))
    assert manifest.formats["webm/vp8"] == {
        "inputs": 1,
        "copied": 0,
        "reencoded": 1,
        "rejected": 0,
        "transient": 0,
    }
    [reencoded] = manifest.reencoded
    assert (reencoded["split"], reencoded["video_id"]) == ("val", "b/vp8.webm")
    assert "vp8" in reencoded["reason"] and reencoded["path"].endswith("vp8.webm")
    assert [r["reason"] for r in _read_rejects(out)] == ["truncated"]
    clips = _read_clips(out)
    vp8 = [c for c in clips if c["video_id"] == "b/vp8.webm"]
    assert vp8 and all(c["codec"] == "h264" for c in vp8)
    [phone] = [c for c in clips if c["video_id"] == "a/phone.mp4"]
    assert (phone["width"], phone["height"], phone["rotation"]) == (48, 64, 90)
    [vfr] = [c for c in clips if c["video_id"] == "b/vfr.webm"]
    source = ingest_media.decode(Path(vfr["source_uri"]).read_bytes())
    assert all(
        np.array_equal(a, b)
        for a, b in zip(ingest_media.decode(vfr["content"]), source, strict=True)
    )
    assert np.array_equal(
        decode_frames(phone["content"], [5])[0],
        np.rot90(ingest_media.decode(Path(phone["source_uri"]).read_bytes())[5]),
    )


@pytest.mark.slow
def test_ingest_s3_to_s3(tmp_path, ray_local, ingest_media, ingest_s3_endpoint, monkeypatch):
    import boto3
    import pyarrow.dataset as pads

    s3 = boto3.client("s3", endpoint_url=ingest_s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="ingest-in")
    s3.create_bucket(Bucket="ingest-out")
    csv = ["label,youtube_id,time_start,time_end,split"]
    for i, split in enumerate(["train", "train", "test"]):
        path = ingest_media.write_mp4(tmp_path / f"v{i}.mp4", num_frames=40)
        s3.upload_file(str(path), "ingest-in", f"kin/{split}/v{i}_000000_000002.mp4")
        csv.append(f"c{i % 2},v{i},0,2,{split}")
    csv.append("c0,gone,0,2,train")
    s3.put_object(Bucket="ingest-in", Key="kin/annotations/all.csv", Body="\n".join(csv).encode())
    monkeypatch.setenv("AWS_ENDPOINT_URL", ingest_s3_endpoint)
    cfg = ingest_config.load_ingest_config(
        None,
        [
            "videos=s3://ingest-in/kin",
            "out=s3://ingest-out/ds",
            "shard_size=2",
            "checks.max_reject_fraction=0.5",
            *SMALL,
        ],
    )
    manifest = ingest.run_ingest(cfg)
    counts = {"inputs": 4, "videos": 3, "rejects": 1, "clips": 5, "transient": 0}
    assert manifest["counts"] == counts
    assert (
        read_manifest("s3://ingest-out/ds")["listing_fingerprint"]
        == (manifest["listing_fingerprint"])
    )
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="ingest-out")["Contents"]}
    assert {
        "ds/manifest.json",
        "ds/clips/shard-00000.parquet",
        "ds/_shards/shard-00001.json",
    } <= keys
    clips = resolve_location("s3://ingest-out/ds/clips")
    fs, path = clips.filesystem, clips.path
    table = pads.dataset(path, filesystem=fs, format="parquet", schema=CLIP_SCHEMA).to_table()
    assert table.num_rows == 5
    for row in table.to_pylist():
        frames = ingest_media.decode(row["content"])
        assert len(frames) == row["num_frames"] and row["source_uri"].startswith("s3://ingest-in/")


@pytest.mark.slow
def test_kill_and_rerun_gives_the_clean_result(tmp_path, ingest_media):
    from pipelines.synth.generate import generate

    videos = tmp_path / "videos"
    generate(videos, classes=3, videos_per_class=6, seed=3, frames=40, short_side=(64, 64))
    overrides = [
        "shard_size=1",
        "resources.num_cpus=2",
        *SMALL,
    ]
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}

    def cli(out, *, kill_after_first_shard=False):
        cmd = [sys.executable, "-m", "jobs.ingest", "--videos", str(videos)]
        cmd += ["--out", str(out), *overrides]
        log_file = open(tmp_path / f"{out.name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            if kill_after_first_shard:
                deadline = time.monotonic() + 120
                while not glob.glob(str(out / "_shards" / "*.json")):
                    assert proc.poll() is None, "ingest exited before committing a shard"
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return None
            return proc.wait(timeout=240)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log_file.close()

    killed = tmp_path / "killed"
    cli(killed, kill_after_first_shard=True)
    committed = len(glob.glob(str(killed / "_shards" / "*.json")))
    assert not (killed / "manifest.json").exists()
    assert 1 <= committed < 18
    assert cli(killed) == 0, (tmp_path / "killed.log").read_text()[-3000:]
    clean = tmp_path / "clean"
    assert cli(clean) == 0, (tmp_path / "clean.log").read_text()[-3000:]
    a, b = _read_clips(killed), _read_clips(clean)
    assert len(a) == len(b) > 0
    for ra, rb in zip(a, b, strict=True):
        assert ra == rb  # every column, content bytes included
    keys = [(r["split"], r["video_id"], r["clip_index"]) for r in a]
    assert len(keys) == len(set(keys))
    ma, mb = read_manifest(str(killed)), read_manifest(str(clean))
    assert ma["counts"] == mb["counts"] and ma["counts"]["inputs"] == 18
    assert ma["listing_fingerprint"] == mb["listing_fingerprint"]


@pytest.mark.slow
def test_reencoded_records_are_byte_identical_across_runs(tmp_path, ray_local):
    """Resumability relies on rebuilt shards equalling the originals, re-encode included."""
    from pipelines.synth.generate import generate

    videos = tmp_path / "videos"
    generate(videos, classes=2, videos_per_class=4, seed=5, frames=40, short_side=(64, 96))
    runs = []
    for name in ("a", "b"):
        cfg = ingest_config.load_ingest_config(
            None,
            [
                f"videos={videos}",
                f"out={tmp_path / name}",
                "shard_size=2",
                "reencode.short_side=48",
                "reencode.fps=20",
                "reencode.gop=8",
                *SMALL,
            ],
        )
        ingest.run_ingest(cfg)
        runs.append(_read_clips(tmp_path / name))
    assert len(runs[0]) == len(runs[1]) > 0
    for ra, rb in zip(*runs, strict=True):
        assert min(ra["height"], ra["width"]) == 48 and ra["fps"] == 20
        assert ra == rb  # every column, re-encoded content bytes included
