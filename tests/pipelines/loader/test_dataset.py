"""pipelines.loader.dataset through a real local Ray on a small Parquet of SynthMotion clip records."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipelines import sampling
from pipelines.decode.frame_table import read_frame_table
from pipelines.decode.frames import decode_frames
from pipelines.loader.dataset import build_clip_dataset, clip_window, decode_batch
from pipelines.loader.options import DecodeOptions
from pipelines.synth.generate import generate
from raysf.clip_spec import ClipSpec

T, TAU, ALPHA = 4, 8, 4  # the demo's sampling: span 32 native frames
SIDE = 64  # square videos so that crop == frame: train-mode differences are temporal only


def spec(**changes) -> ClipSpec:
    """The records' spec (T, TAU, ALPHA; 2 test windows) with ``changes``."""
    base = ClipSpec(slow_frames=T, tau=TAU, alpha=ALPHA, num_val_clips=1, num_test_clips=2)
    return base.replace(**changes)


def write_records(root, videos, *, num_test_clips=2) -> list[dict]:
    """Minimal clip records (whole video as content) + manifest, as ingest would write them."""
    classes = sorted({v.label for v in videos})
    span = sampling.window_span(T, TAU)
    rows = []
    for v in videos:
        content = Path(v.path).read_bytes()
        table = read_frame_table(content)
        starts = (
            sampling.uniform_starts(table.num_frames, span, num_test_clips)
            if v.split == "test"
            else [sampling.center_start(table.num_frames, span)]
        )
        for clip_index, start in enumerate(starts):
            fast, slow = sampling.clip_indices(
                int(start), table.num_frames, slow_frames=T, tau=TAU, alpha=ALPHA
            )
            rows.append(
                {
                    "video_id": v.youtube_id,
                    "label": v.label,
                    "label_id": classes.index(v.label),
                    "split": v.split,
                    "clip_index": clip_index,
                    "fps": table.fps,
                    "num_frames": table.num_frames,
                    "height": table.height,
                    "width": table.width,
                    "start_frame": int(start),
                    "fast_idx": fast.tolist(),
                    "slow_idx": slow.tolist(),
                    "content": content,
                    "frame_pts": table.pts.tolist(),
                    "keyframes": table.keyframes.tolist(),
                    "span": span,
                }
            )
    (root / "clips").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), root / "clips" / "part-00000.parquet")
    manifest = {  # a version-1 manifest: still read
        "schema_version": 1,
        "sampling": {
            "slow_frames": T,
            "tau": TAU,
            "alpha": ALPHA,
            "rule": "stride",
            "target_fps": None,
            "num_val_clips": 1,
            "num_test_clips": num_test_clips,
        },
        "classes": [{"name": c, "label_id": i} for i, c in enumerate(classes)],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return rows


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    base = tmp_path_factory.mktemp("loader")
    videos = generate(
        base / "videos",
        classes=6,
        videos_per_class=3,
        seed=3,
        frames=64,
        size=(SIDE, SIDE),
        splits={"train": 0.34, "val": 0.33, "test": 0.33},
    )
    rows = write_records(base / "ds", videos)
    return base / "ds", rows


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _rows(ds) -> list[dict]:
    out = []
    for batch in ds.iter_batches(batch_size=4, batch_format="numpy"):
        for i in range(len(batch["label"])):
            out.append({k: batch[k][i] for k in batch})
    return out


def _records(rows, split):
    return {(r["video_id"], r["clip_index"]): r for r in rows if r["split"] == split}


def test_clip_window_train_jitters_val_recentres():
    record = {"fps": 25.0, "num_frames": 100, "start_frame": 34, "span": 32}
    run = spec(slow_frames=4, tau=16, alpha=8)
    starts = {
        int(clip_window(record, run, "train", np.random.default_rng(s))[0][0]) for s in range(30)
    }
    assert len(starts) > 10 and min(starts) >= 0 and max(starts) <= 100 - 64
    fast, slow = clip_window(record, run, "val", np.random.default_rng(0))
    assert fast.shape == (32,) and slow.shape == (4,)
    assert fast[0] == 34 + 16 - 32  # centre 50 kept with the new span 64
    np.testing.assert_array_equal(np.diff(fast), 2)


@pytest.mark.parametrize("rule", ["stride", "linspace"])
def test_decode_batch_without_ray_test_mode_three_crops_fast_only(dataset, rule):
    _, rows = dataset
    rec = next(r for r in rows if r["split"] == "test")
    batch = {k: np.array([rec[k]], dtype=object) for k in rec}
    run = spec(crop_size=40, short_side_range=(48, 48), test_short_side=48, flip=False, rule=rule)
    out = decode_batch(batch, run, "test", None)
    assert "slow" not in out and out["fast"].shape == (3, 16, 40, 40, 3)
    assert out["spatial_index"].tolist() == [0, 1, 2]
    # the Slow frames are positions of the shipped Fast ones, bit for bit the decoded ones
    fast_idx, slow_idx = clip_window(rec, run, "test", np.random.default_rng(0))
    full = decode_frames(rec["content"], slow_idx, short_side=48)
    positions = sampling.slow_positions(T, ALPHA, rule)
    np.testing.assert_array_equal(out["fast"][0][positions], full[:, 4:44, 0:40])  # left crop
    assert run.clip_nbytes() == out["fast"][0].nbytes


@pytest.mark.slow
def test_train_batches_shapes_labels_and_frame_accuracy(dataset, ray_local):
    root, rows = dataset
    records = _records(rows, "train")
    ds = build_clip_dataset(
        str(root),
        split="train",
        mode="train",
        spec=spec(crop_size=SIDE, short_side_range=(SIDE, SIDE), test_short_side=SIDE, flip=False),
        decode=DecodeOptions(batch_size=2),
    )
    first = _rows(ds)
    assert len(first) == len(records) == 6
    for r in first:
        rec = records[(r["video_id"], int(r["clip_index"]))]
        assert "slow" not in r  # only the Fast frames travel
        assert r["fast"].shape == (ALPHA * T, SIDE, SIDE, 3) and r["fast"].dtype == np.uint8
        assert int(r["label"]) == rec["label_id"] and r["label"].dtype == np.int64
        # The rows are exactly the frames of some valid window of the video.
        span = sampling.window_span(T, TAU)
        frames = decode_frames(rec["content"], np.arange(rec["num_frames"]))
        matches = [
            s
            for s in range(sampling.max_start(rec["num_frames"], span) + 1)
            if np.array_equal(
                r["fast"],
                frames[
                    sampling.clip_indices(
                        s, rec["num_frames"], slow_frames=T, tau=TAU, alpha=ALPHA
                    )[0]
                ],
            )
        ]
        assert matches, "fast frames are not a window of the video"
    # Temporal jitter: a second pass over the same dataset draws other windows.
    second = {(r["video_id"], int(r["clip_index"])): r for r in _rows(ds)}
    changed = sum(
        not np.array_equal(r["fast"], second[(r["video_id"], int(r["clip_index"]))]["fast"])
        for r in first
    )
    assert changed >= 3


@pytest.mark.slow
def test_clips_per_decode_yields_that_many_rows_of_one_window(dataset, ray_local):
    """DecodeOptions.clips_per_decode reaches the decode tasks: two rows per record, and with
    crop == frame the two are one window, unflipped or mirrored (their own flip draws)."""
    root, rows = dataset
    ds = build_clip_dataset(
        str(root),
        split="train",
        mode="train",
        spec=spec(crop_size=SIDE, short_side_range=(SIDE, SIDE), test_short_side=SIDE),
        decode=DecodeOptions(batch_size=2, clips_per_decode=2),
    )
    by_clip: dict[tuple, list[np.ndarray]] = {}
    for r in _rows(ds):
        by_clip.setdefault((r["video_id"], int(r["clip_index"])), []).append(r["fast"])
    assert len(by_clip) == len(_records(rows, "train")) == 6
    for a, b in by_clip.values():
        assert np.array_equal(a, b) or np.array_equal(a, b[:, :, ::-1])


@pytest.mark.slow
def test_seeded_train_is_deterministic_and_torch_batches(dataset, ray_local):
    root, _ = dataset
    kwargs = dict(
        split="train",
        mode="train",
        spec=spec(alpha=2, crop_size=32, short_side_range=(40, 56), test_short_side=40),
        seed=7,
        decode=DecodeOptions(batch_size=4),
    )
    a = sorted(_rows(build_clip_dataset(str(root), **kwargs)), key=lambda r: r["video_id"])
    b = sorted(_rows(build_clip_dataset(str(root), **kwargs)), key=lambda r: r["video_id"])
    assert a[0]["fast"].shape == (2 * T, 32, 32, 3)  # alpha changed at load time
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["fast"], y["fast"])
    ds = build_clip_dataset(str(root), **kwargs).drop_columns(["video_id"])
    batch = next(iter(ds.iter_torch_batches(batch_size=3, local_shuffle_buffer_size=4)))
    assert (
        tuple(batch["fast"].shape) == (3, 2 * T, 32, 32, 3)
        and str(batch["label"].dtype) == "torch.int64"
        and "slow" not in batch
    )


@pytest.mark.slow
def test_seeded_train_draws_new_views_every_epoch_and_repeats_them_row_for_row(dataset, ray_local):
    # A seeded dataset is a fixed sequence of epochs: iterating it again (the next epoch)
    # draws new windows and crops, a dataset built again with the same seed repeats every
    # epoch in the same row order (preserve_order), another seed gives other epochs.
    root, _ = dataset
    kwargs = dict(
        split="train",
        mode="train",
        spec=spec(alpha=2, crop_size=32, short_side_range=(40, 56), test_short_side=40),
        decode=DecodeOptions(batch_size=2),
    )

    def epochs(seed: int, n: int = 2) -> list[list[dict]]:
        ds = build_clip_dataset(str(root), seed=seed, **kwargs)
        assert ds.context.execution_options.preserve_order
        return [_rows(ds) for _ in range(n)]

    first, again, other = epochs(5), epochs(5), epochs(6, n=1)
    for a, b in zip(first, again, strict=True):
        assert [r["video_id"] for r in a] == [r["video_id"] for r in b]  # same order
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x["fast"], y["fast"])
    by_video = [{r["video_id"]: r["fast"] for r in epoch} for epoch in (*first, *other)]
    assert set(by_video[0]) == set(by_video[1]) == set(by_video[2])
    changed = sum(not np.array_equal(by_video[0][v], by_video[1][v]) for v in by_video[0])
    assert changed >= len(by_video[0]) - 1  # epoch 2 re-draws (a window may repeat by chance)
    assert any(not np.array_equal(by_video[0][v], by_video[2][v]) for v in by_video[0])


def test_train_reads_files_in_a_seeded_order_per_epoch_and_decodes_per_batch(
    dataset, ray_local, tmp_path
):
    from ray.data import DataContext

    reader_choice = DataContext.get_current().use_datasource_v2
    # One record per file: the train files are read in a new order every epoch (the same
    # sequence of orders for the same seed), and the records are decoded ``batch_size`` per
    # task (one-record read blocks combined), not a read block per task.
    root, _ = dataset
    sharded = tmp_path / "ds"
    (sharded / "clips").mkdir(parents=True)
    shutil.copy(root / "manifest.json", sharded / "manifest.json")
    table = pq.read_table(root / "clips" / "part-00000.parquet")
    train = table.filter(pc.equal(table["split"], "train"))
    for i in range(train.num_rows):
        pq.write_table(train.slice(i, 1), sharded / "clips" / f"part-{i:05d}.parquet")
    kwargs = dict(
        split="train",
        mode="train",
        spec=spec(alpha=2, crop_size=32, short_side_range=(40, 56), test_short_side=40),
        decode=DecodeOptions(batch_size=2),
    )
    ds = build_clip_dataset(str(sharded), seed=5, **kwargs)
    epochs = [[r["video_id"] for r in _rows(ds)] for _ in range(2)]
    assert train.num_rows >= 4 and sorted(epochs[0]) == sorted(epochs[1])
    assert epochs[0] != epochs[1]  # a new file order in the second epoch
    stats = ds.stats()
    assert f"decode_batch): {math.ceil(train.num_rows / 2)} tasks executed" in stats
    # Read by Ray Data's first Parquet datasource: no ListFiles operator, whose footer-reading
    # actor pool DataSourceV2 would start in every epoch; the process's choice is left as it was.
    assert "ReadParquet" in stats and "ListFiles" not in stats, stats
    assert DataContext.get_current().use_datasource_v2 == reader_choice
    again = build_clip_dataset(str(sharded), seed=5, **kwargs)
    assert [[r["video_id"] for r in _rows(again)] for _ in range(2)] == epochs


@pytest.mark.slow
def test_val_and_test_modes(dataset, ray_local):
    root, rows = dataset
    common = dict(spec=spec(crop_size=48, short_side_range=(48, 56), test_short_side=56))
    val = _rows(build_clip_dataset(str(root), split="val", mode="val", **common))
    val_records = _records(rows, "val")
    assert len(val) == len(val_records)
    positions = sampling.slow_positions(T, ALPHA, common["spec"].rule)
    for r in val:
        assert "slow" not in r  # the Slow frames are positions of the Fast ones
        rec = val_records[(r["video_id"], int(r["clip_index"]))]
        full = decode_frames(rec["content"], rec["slow_idx"], short_side=56)
        np.testing.assert_array_equal(r["fast"][positions], full[:, 4:52, 4:52])  # centre crop
        assert int(r["spatial_index"]) == 1
    test = _rows(build_clip_dataset(str(root), split="test", mode="test", **common))
    test_records = _records(rows, "test")
    per_clip = Counter((r["video_id"], int(r["clip_index"])) for r in test)
    assert set(per_clip) == set(test_records) and set(per_clip.values()) == {3}
    assert Counter(int(r["spatial_index"]) for r in test) == {
        i: len(test_records) for i in range(3)
    }
    assert {int(r["label"]) for r in test} <= {rec["label_id"] for rec in test_records.values()}


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="mode"):
        build_clip_dataset("/nowhere", split="train", mode="eval", spec=spec())
    with pytest.raises(ValueError, match=r"unset: \['num_val_clips', 'num_test_clips'\]"):
        build_clip_dataset("/nowhere", split="train", mode="train", spec=ClipSpec(1, 2, 3))
    with pytest.raises(ValueError, match="short_side_range"):
        spec(crop_size=224, short_side_range=(200, 300))
    with pytest.raises(ValueError, match="manifest"):
        build_clip_dataset("/nowhere", split="train", mode="train", spec=spec())
    with pytest.raises(ValueError, match="batch_size"):
        DecodeOptions(batch_size=0)


@pytest.mark.slow
def test_plane_rows_through_ray_data_show_the_seeded_rgb_rows(dataset, ray_local):
    """Plane rows (DecodeOptions.train_view planes) go through Ray Data and the device feed, and
    show what the RGB rows of the same seed show (the same draws), as closely as crop-first."""
    import torch

    from training.device.inputs import DeviceInputs

    root, _ = dataset
    kwargs = dict(
        split="train",
        mode="train",
        spec=spec(crop_size=48, short_side_range=(48, 64), test_short_side=48),
        seed=7,
    )

    def rows(**options) -> dict[str, np.ndarray]:
        ds = build_clip_dataset(str(root), decode=DecodeOptions(batch_size=2, **options), **kwargs)
        return {r["video_id"]: r["fast"].astype(np.float32) for r in _rows(ds)}

    exact, crop_first = rows(), rows(train_view="crop_first")
    planes = build_clip_dataset(
        str(root), decode=DecodeOptions(batch_size=2, train_view="planes"), **kwargs
    )
    inputs = DeviceInputs(mean=(0, 0, 0), std=(1 / 255,) * 3, slow_positions=[0], crop_size=48)
    seen = 0
    for batch in planes.iter_batches(batch_size=4, batch_format="numpy"):  # epoch 0, as above
        assert batch["fast_y"].shape[1:] == (4 * T, 66, 66)  # 48 * 64 / 48 + 2
        _, fast = inputs.inputs(batch)
        for i, video_id in enumerate(batch["video_id"]):
            picture = fast[i].permute(1, 2, 3, 0).numpy()
            error = np.abs(picture - exact[video_id]).mean()
            assert error < np.abs(crop_first[video_id] - exact[video_id]).mean() + 2.0
            seen += 1
    assert seen == len(exact) == 6
    torch_batch = next(iter(planes.drop_columns(["video_id"]).iter_torch_batches(batch_size=4)))
    assert torch_batch["fast_uv"].dtype == torch.uint8 and "fast" not in torch_batch
    assert tuple(inputs.inputs(torch_batch)[1].shape) == (4, 3, 4 * T, 48, 48)
