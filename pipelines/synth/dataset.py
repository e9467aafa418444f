"""A SynthMotion dataset generated and ingested once: the data of the smoke tests, the demo and
the benchmarks.

:func:`ensure_synth_dataset` writes the videos under ``<root>/videos`` and ingests them into
``<root>/dataset`` with Ray Data, reusing both when they already exist with the same
:class:`SynthDataset` (the manifest is written last, so its presence means the ingest finished).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines.ingest.config import IngestConfig, ReencodeConfig
from pipelines.ingest.run import run_ingest
from pipelines.ingest.shards import PLAN_NAME
from pipelines.synth.generate import generate
from pipelines.synth.spec import FLIP_PAIRS, class_names
from raysf.clip_spec import ClipSpec
from raysf.config import with_overrides
from raysf.flip_labels import FlipLabels


@dataclass(frozen=True)
class SynthDataset:
    """What to generate and how to cut it.

    Attributes:
        classes, videos_per_class, frames, seed, splits: the SynthMotion videos (see
            :func:`pipelines.synth.generate.generate`; ``splits`` None = 70/15/15 % train/val/test).
        clip: the window written into the records and the windows per val/test video.
        shard_size: videos per ingest shard.
        reencode: ingest's re-encode (None: the generated streams are kept), e.g. the
            training profile (``ReencodeConfig(profile="train", ...)``).
    """

    classes: int
    videos_per_class: int
    frames: int
    clip: ClipSpec
    seed: int = 0
    shard_size: int = 16
    reencode: ReencodeConfig | None = None
    splits: dict[str, float] | None = None

    def videos_key(self) -> dict[str, object]:
        """What determines the generated videos (reused when equal); ``splits`` only when set,
        so that the sets generated before it existed are still reused."""
        keys = ("classes", "videos_per_class", "frames", "seed")
        key: dict[str, object] = {k: v for k, v in asdict(self).items() if k in keys}
        if self.splits is not None:
            key["splits"] = dict(self.splits)
        return key


#: The smoke tests' set: 3 classes x 6 videos of 40 frames, T=4, tau=4, alpha=2, 2 test windows.
SMOKE_DATA = SynthDataset(
    classes=3,
    videos_per_class=6,
    frames=40,
    clip=ClipSpec(slow_frames=4, tau=4, alpha=2, num_val_clips=1, num_test_clips=2),
    shard_size=8,
)

#: The ablation sweeps' set (``jobs/ablations/``): all 8 classes x 60 videos of 64 frames, split
#: 50/40/10 % so that validation (the sweeps' metric) has 24 videos per class, not 6 as the
#: demo's; the demo's sampling (T=4, tau=8, alpha=4), 2 test windows.
ABLATION_DATA = SynthDataset(
    classes=8,
    videos_per_class=60,
    frames=64,
    clip=ClipSpec(slow_frames=4, tau=8, alpha=4, num_val_clips=1, num_test_clips=2),
    splits={"train": 0.5, "val": 0.4, "test": 0.1},
)


def ensure_synth_dataset(root: str | os.PathLike, data: SynthDataset) -> str:
    """SynthMotion videos under ``root/videos`` ingested into ``root/dataset``; its URI.

    Two processes that ask for the same ``root`` at once (two smoke runs on one machine) take
    turns on ``root/.lock``: the second finds the first's dataset complete."""
    root = Path(root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return _ensure_synth_dataset(root, data)


def _ensure_synth_dataset(root: Path, data: SynthDataset) -> str:
    videos, dataset = root / "videos", root / "dataset"
    stamp = root / "synth-params.json"
    if not stamp.exists() or json.loads(stamp.read_text()) != data.videos_key():
        generate(
            videos,
            classes=data.classes,
            videos_per_class=data.videos_per_class,
            seed=data.seed,
            frames=data.frames,
            splits=data.splits,
        )
        stamp.write_text(json.dumps(data.videos_key()))
    cfg = with_overrides(
        IngestConfig(
            videos=str(videos),
            format="kinetics",
            out=str(dataset),
            shard_size=data.shard_size,
            clip=data.clip,
            reencode=data.reencode,
            flip=synth_flip_labels(data.classes),
        )
    )
    _drop_stale_dataset(dataset, cfg)
    run_ingest(cfg)
    return str(dataset)


def synth_flip_labels(classes: int) -> FlipLabels:
    """SynthMotion's flip rule for its first ``classes`` classes: the pairs of
    :data:`~pipelines.synth.spec.FLIP_PAIRS` it holds both of."""
    names = set(class_names(classes))
    return FlipLabels(pairs=tuple(p for p in FLIP_PAIRS if set(p) <= names))


def _drop_stale_dataset(dataset: Path, cfg: IngestConfig) -> None:
    """Delete a generated dataset ingested with another record config (an older version of
    this project): it is rebuilt, where ingest would refuse to continue it."""
    plan = dataset / PLAN_NAME
    if plan.is_file():
        stored = json.loads(plan.read_text()).get("config")
        if stored != json.loads(json.dumps(cfg.record_config())):
            shutil.rmtree(dataset)


__all__ = ["ABLATION_DATA", "SMOKE_DATA", "SynthDataset", "ensure_synth_dataset"]
