"""SynthMotion -> pipelines.ingest.run -> pipelines.loader.dataset -> batches, on a local Ray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.synth.generate import generate

pytestmark = pytest.mark.slow

T, TAU, ALPHA = 4, 8, 4


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_synth_ingest_loader_batches(tmp_path, ray_local):
    from pipelines.ingest.config import IngestConfig
    from pipelines.ingest.run import run_ingest
    from pipelines.loader.dataset import build_clip_dataset
    from raysf.clip_spec import ClipSpec
    from raysf.runtime import read_manifest

    videos = generate(
        tmp_path / "synth",
        classes=6,
        videos_per_class=3,
        seed=11,
        frames=64,
        splits={"train": 0.34, "val": 0.33, "test": 0.33},
    )
    cfg = IngestConfig(
        videos=str(tmp_path / "synth"),
        annotations=str(tmp_path / "synth" / "annotations"),
        format="kinetics",
        out=str(tmp_path / "ds"),
        clip=ClipSpec(
            slow_frames=T, tau=TAU, alpha=ALPHA, target_fps=None, num_val_clips=1, num_test_clips=2
        ),
    )
    run_ingest(cfg)
    manifest = read_manifest(str(tmp_path / "ds"))
    assert manifest.clip_spec == cfg.clip and manifest.schema_version == 2
    label_ids = {name: i for i, name in enumerate(manifest.classes)}
    # ingest names clips by the Kinetics file stem (youtube_id_start_end).
    truth = {Path(v.path).stem: label_ids[v.label] for v in videos}

    spec = manifest.clip_spec.replace(crop_size=48, short_side_range=(56, 64), test_short_side=56)
    train = build_clip_dataset(str(tmp_path / "ds"), split="train", mode="train", spec=spec)
    n = 0
    for batch in train.iter_batches(batch_size=4, batch_format="numpy"):
        # Fast-only rows: the Slow frames are positions of the Fast ones (sampling.slow_positions)
        assert "slow" not in batch and batch["fast"].dtype == np.uint8
        assert batch["fast"].shape[1:] == (ALPHA * T, 48, 48, 3)
        assert [truth[v] for v in batch["video_id"]] == batch["label"].tolist()
        n += len(batch["label"])
    assert n == sum(v.split == "train" for v in videos)

    test = build_clip_dataset(str(tmp_path / "ds"), split="test", mode="test", spec=spec)
    rows = test.take_all()
    n_test = sum(v.split == "test" for v in videos)
    assert len(rows) == n_test * 2 * 3  # 2 temporal clips x 3 spatial crops per video
    assert {r["spatial_index"] for r in rows} == {0, 1, 2}
