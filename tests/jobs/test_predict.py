"""Fine-tuning from a converted external checkpoint, then prediction on files, folders, datasets.

One tiny model is fine-tuned (new number of classes) from a PySlowFast-layout checkpoint with
Ray Train, then used by ``jobs.predict`` in its three input modes, and a PyTorchVideo-layout file
is used for prediction directly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import slowfast_model
from jobs import predict
from pipelines.views import video_views
from raysf.config import with_overrides
from tests.video_helpers import write_lossless_rgb
from training.checkpoints import load_state
from training.config import load_train_config
from training.inference.evaluate import EvalRequest, evaluate_checkpoint
from training.recipes.smoke import smoke_train_job
from training.run.trainer import run_training

TRAIN_YAML = Path(__file__).resolve().parents[2] / "jobs" / "train.yaml"

pytestmark = pytest.mark.slow

TINY = dict(alpha=2, num_classes=5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, smoke_data):
    import ray

    root = tmp_path_factory.mktemp("predict")
    dataset = smoke_data
    # A "published" checkpoint in PySlowFast's layout, with 5 classes.
    source_model = slowfast_model.create_model("slowfast_tiny", **TINY)
    external = root / "external_pyslowfast.pyth"
    torch.save(
        {"model_state": slowfast_model.export_state_dict(source_model.state_dict(), "pyslowfast")},
        external,
    )
    job = with_overrides(
        smoke_train_job(load_train_config(TRAIN_YAML), dataset),
        [
            f"storage.path={root / 'results'}",
            "mlflow.enabled=false",
            "eval.after_training=false",
            "train.epochs=1",
            "optim.base_lr=1e-6",
            f"model.pretrained={{path: {external}, source: pyslowfast, skip_head: true}}",
        ],
    )
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        outcome = run_training(job)
        # the smoke set's root: its videos (videos/<split>/) next to the ingested dataset
        yield Path(dataset).parent, dataset, outcome.checkpoint_uri, source_model
    finally:
        ray.shutdown()


def test_finetune_starts_from_converted_checkpoint(trained):
    _, _, ckpt, source_model = trained
    state = load_state(ckpt)
    assert state.model_config["num_classes"] == 3  # the new dataset's classes
    src = source_model.state_dict()
    # With a negligible learning rate the backbone is still the published one...
    stem = next(k for k in src if k.endswith("weight") and "head" not in k)
    assert torch.allclose(state.model[stem], src[stem], atol=1e-4)
    # ...and the head was replaced to fit the new classes.
    head = [k for k in state.model if k.startswith("head.") and k.endswith("weight")][0]
    assert state.model[head].shape[0] == 3 and src[head].shape[0] == 5


def test_predict_video_files_prints_top5(trained, capsys):
    root, _, ckpt, _ = trained
    videos = sorted((root / "videos" / "test").glob("*.mp4"))[:2]
    assert predict.main([ckpt, *map(str, videos)]) == 0
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    assert [line["video"] for line in lines] == list(map(str, videos))
    for line in lines:
        scores = [t["score"] for t in line["top5"]]
        assert len(scores) == 3  # only 3 classes exist
        assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-3
        assert {t["label"] for t in line["top5"]} == {"drift_right", "drift_left", "still"}


def test_predict_sees_a_phone_video_upright(trained, tmp_path, capsys):
    """A test video stored as a phone stores portrait video (turned clockwise, a 90-degree
    display matrix) gets the scores of the same pictures stored upright. The control is what
    predict feeds the network: the phone video's views are the upright ones, those of the same
    pictures stored sideways (no matrix) are not. (The scores of this barely trained network
    are too flat to tell sideways from upright reliably.)"""
    import av

    root, _, ckpt, _ = trained
    video = sorted((root / "videos" / "test").glob("*.mp4"))[0]
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    turned = [np.rot90(f, -1) for f in frames]
    paths = [
        str(write_lossless_rgb(tmp_path / "upright.mp4", frames)),
        str(write_lossless_rgb(tmp_path / "phone.mp4", turned, rotation=90)),
        str(write_lossless_rgb(tmp_path / "sideways.mp4", turned)),
    ]
    assert predict.main([ckpt, *paths[:2]]) == 0
    out = capsys.readouterr().out.splitlines()
    upright, phone = (
        {t["label"]: t["score"] for t in json.loads(line)["top5"]}
        for line in out
        if line.startswith("{")
    )
    assert phone.keys() == upright.keys()
    assert all(abs(phone[k] - upright[k]) < 1e-5 for k in upright)
    spec = load_state(ckpt).clip_spec
    views = [video_views(path, spec).fast for path in paths]
    assert np.array_equal(views[1], views[0]) and not np.array_equal(views[2], views[0])


def test_predict_folder_and_dataset_write_parquet(trained, tmp_path):
    root, dataset, ckpt, _ = trained  # the fixture's local Ray is still up
    folder_out = tmp_path / "folder.parquet"
    assert predict.main([ckpt, str(root / "videos" / "val"), "--out", str(folder_out)]) == 0
    table = pq.read_table(folder_out).to_pylist()
    assert len(table) == len(list((root / "videos" / "val").glob("*.mp4")))
    assert all(len(r["top5_labels"]) == 3 for r in table)

    ds_out = tmp_path / "dataset.parquet"
    assert predict.main([ckpt, dataset, "--out", str(ds_out), "--split", "test"]) == 0
    rows = pq.read_table(ds_out).to_pylist()
    assert len(rows) == len(list((root / "videos" / "test").glob("*.mp4")))
    assert all(r["top1_label"] == r["top5_labels"][0] for r in rows)


def test_predict_accepts_converted_pytorchvideo_checkpoint(trained, tmp_path, capsys):
    root, _, _, source_model = trained
    path = tmp_path / "ptv.pyth"
    torch.save(
        {
            "model_state": slowfast_model.export_state_dict(
                source_model.state_dict(), "pytorchvideo"
            )
        },
        path,
    )
    video = sorted((root / "videos" / "test").glob("*.mp4"))[0]
    assert (
        predict.main(
            [str(path), str(video), "--source", "pytorchvideo", "--preset", "slowfast_tiny"]
        )
        == 0
    )
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(line["top5"]) == 5 and {t["label"] for t in line["top5"]} <= set("01234")


# ---------------------------------------------------------------------------- faults


def test_predict_folder_from_a_fresh_process(trained, tmp_path):
    """Issue case 9: ``python -m jobs.predict CHECKPOINT DIR`` failed on a folder of good videos
    (``cannot pickle '_Classes' object``)."""
    import subprocess
    import sys

    root, _, ckpt, _ = trained
    folder = tmp_path / "videos"
    folder.mkdir()
    for video in sorted((root / "videos" / "val").glob("*.mp4"))[:2]:
        (folder / video.name).write_bytes(video.read_bytes())
    out = tmp_path / "preds.parquet"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.predict", ckpt, str(folder), "--out", str(out)],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 2 and all(len(r["top5_labels"]) == 3 and not r["error"] for r in rows)


def test_a_bad_file_gets_a_row_and_the_others_are_written(trained, tmp_path, capsys):
    root, _, ckpt, _ = trained
    folder = tmp_path / "videos"
    folder.mkdir()
    good = sorted((root / "videos" / "val").glob("*.mp4"))[:2]
    for video in good:
        (folder / video.name).write_bytes(video.read_bytes())
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(300))
    out = tmp_path / "preds.parquet"
    assert predict.main([ckpt, str(folder), "--out", str(out)]) == 1
    assert "1 failed" in capsys.readouterr().out
    rows = {Path(r["path"]).name: r for r in pq.read_table(out).to_pylist()}
    assert set(rows) == {"broken.mp4", *(v.name for v in good)}
    assert rows["broken.mp4"]["error"] and rows["broken.mp4"]["top5_labels"] == []
    assert all(len(rows[v.name]["top5_labels"]) == 3 and not rows[v.name]["error"] for v in good)

    # the same, one JSON line per file
    files = [str(folder / "broken.mp4"), str(folder / good[0].name)]
    assert predict.main([ckpt, *files]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [bool(line.get("error")) for line in lines] == [True, False]
    assert lines[0]["top5"] == [] and len(lines[1]["top5"]) == 3


def test_a_damaged_dataset_record_gets_its_error(trained, tmp_path):
    import glob
    import shutil

    import numpy as np
    import pyarrow as pa

    _, dataset, ckpt, _ = trained
    copy = tmp_path / "dataset"
    shutil.copytree(dataset, copy)
    damaged = None
    for path in sorted(glob.glob(str(copy / "clips" / "*.parquet"))):
        table = pq.read_table(path)
        splits = table.column("split").to_pylist()
        if "test" not in splits:
            continue
        ids = table.column("video_id").to_pylist()
        content = table.column("content").to_pylist()
        damaged = ids[splits.index("test")]
        windows = 0
        for i, (split, vid) in enumerate(zip(splits, ids, strict=True)):
            if split == "test" and vid == damaged:  # every window of one video
                content[i] = np.random.default_rng(i).bytes(len(content[i]))
                windows += 1
        col = table.schema.get_field_index("content")
        table = table.set_column(col, table.schema.field(col), pa.array(content, pa.binary()))
        pq.write_table(table, path)
        break
    out = tmp_path / "ds.parquet"
    assert predict.main([ckpt, str(copy), "--out", str(out), "--split", "test"]) == 1
    rows = {r["video_id"]: r for r in pq.read_table(out).to_pylist()}
    assert len(rows) == len(list((Path(dataset).parent / "videos" / "test").glob("*.mp4")))
    assert "window 0" in rows[damaged]["error"] and rows[damaged]["top5_labels"] == []
    assert all(
        not r["error"] and len(r["top5_labels"]) == 3 for v, r in rows.items() if v != damaged
    )
    # the test protocol drops the same records and counts them, the other videos are scored
    metrics = evaluate_checkpoint(EvalRequest(checkpoint=ckpt, dataset=str(copy), split="test"))
    assert metrics["test_decode_errors"] == windows >= 1
    assert metrics["test_videos"] == len(rows) - 1


def test_checkpoint_errors_name_the_file(tmp_path, capfd):
    """The error line goes to the terminal's stderr (file descriptor 2), where the console
    writes it while the libraries' stderr goes to the log folder."""
    bad = tmp_path / "ckpt" / "state.pt"
    bad.parent.mkdir()
    bad.write_bytes(b"garbage")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    logs = ["--log-dir", str(tmp_path / "logs")]
    assert predict.main([str(bad.parent), str(video), *logs]) == 2
    err = capfd.readouterr().err
    assert f"{bad}: not a readable checkpoint" in err and "Traceback" not in err
    gone = [str(tmp_path / "gone.pyth"), str(video), "--source", "pyslowfast", *logs]
    assert predict.main(gone) == 1
    assert "gone.pyth" in capfd.readouterr().err
