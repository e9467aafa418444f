"""Top-5 predictions for video files, folders and ingested datasets.

Each video is scored with the test protocol of the checkpoint's
:class:`~raysf.clip_spec.ClipSpec` (``num_test_clips`` uniform windows x ``num_test_crops``
crops at ``test_short_side``, softmax averaged; :func:`pipelines.views.video_views`), with
bf16 autocast and ``channels_last_3d`` on a GPU (:mod:`training.device`, ``inference=True``). A folder
runs as Ray Data batch inference and writes a Parquet file; an ingested dataset (a split of it)
is scored through the evaluation's view pipeline.

Checkpoints: this project's (``state.pt`` or its directory) and converted PyTorchVideo /
PySlowFast / mmaction2 ones (``source``; their clip spec defaults to the Kinetics recipe of the
``preset`` and the class names to a class file or ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

import slowfast_model
from pipelines.views import video_views
from raysf import runtime
from raysf.clip_spec import ClipSpec
from training.artifacts import build_model_from_state
from training.checkpoints import load_state
from training.device import DeviceSettings, resolve_device_settings
from training.evaluate import EvalRequest, accumulate_views, score_views
from training.inputs import DeviceInputs

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a checkpoint and how to read it.

    Attributes:
        checkpoint: ``state.pt`` / checkpoint directory, or an external ``.pyth``/``.pth``.
        source: ``raysf`` or the project it was trained with (``pytorchvideo``,
            ``pyslowfast``, ``mmaction2``).
        preset: architecture preset of an external checkpoint (default: inferred).
        classes_file: class names, one per line (default: the checkpoint's, or ids).
    """

    checkpoint: str
    source: str = "raysf"
    preset: str | None = None
    classes_file: str | None = None


@dataclass
class Predictor:
    """A model with its clip spec, class names and device settings."""

    model: torch.nn.Module
    spec: ClipSpec
    classes: list[str]
    device: torch.device
    settings: DeviceSettings

    def __post_init__(self) -> None:
        self.inputs = DeviceInputs.for_spec(self.spec, self.device, self.settings.channels_last)

    @torch.no_grad()
    def video_scores(self, content: bytes | str, name: str = "video") -> np.ndarray:
        """Softmax scores averaged over the test views of one video: ``(num_classes,)``."""
        views = video_views(content, self.spec, name=name)
        inputs = self.inputs.inputs(views.batch())
        with self.settings.autocast():
            logits = self.model(inputs).float()
        return torch.softmax(logits, dim=1).mean(0).cpu().numpy()

    def top_k(self, scores: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-scores)[:k]
        return [
            (self.classes[i] if i < len(self.classes) else str(i), float(scores[i])) for i in order
        ]


def external_clip_spec(cfg: slowfast_model.SlowFastConfig, source: str) -> ClipSpec:
    """The Kinetics recipe of an external checkpoint's network: its T, tau and alpha at 30 fps,
    PySlowFast's index rule for its checkpoints, the 10x3-view test."""
    return ClipSpec(
        slow_frames=cfg.slow_frames,
        tau=cfg.default_tau,
        alpha=cfg.alpha,
        rule="linspace" if source == "pyslowfast" else "stride",
        target_fps=30.0,
        num_val_clips=1,
        num_test_clips=10,
    )


def load_predictor(model: ModelSource, device: str = "cpu") -> Predictor:
    """Model, clip spec and class names from our checkpoint, or from a converted external one,
    placed on ``device`` in its inference settings (bf16 + ``channels_last_3d`` on CUDA)."""
    if model.source == "raysf":
        state = load_state(model.checkpoint)
        net, spec, classes = build_model_from_state(state), state.clip_spec, state.classes
    else:
        base = slowfast_model.get_config(model.preset) if model.preset else None
        net = slowfast_model.build_from_checkpoint(model.checkpoint, model.source, base=base)
        spec = external_clip_spec(net.config, model.source)
        classes = [str(i) for i in range(net.config.num_classes)]
    if model.classes_file:
        lines = Path(model.classes_file).read_text().splitlines()
        classes = [line.strip() for line in lines if line.strip()]
    dev = torch.device(device)
    settings = resolve_device_settings(dev, inference=True)
    return Predictor(settings.place(net, dev).eval(), spec, classes, dev, settings)


class _VideoScorer:
    """Ray Data callable class scoring whole videos (one model per actor)."""

    def __init__(self, model: ModelSource, use_gpu: bool = False):
        self.predictor = load_predictor(model, "cuda" if use_gpu else "cpu")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        top_labels, top_scores = [], []
        for path in batch["path"]:
            top = self.predictor.top_k(self.predictor.video_scores(str(path), name=str(path)))
            top_labels.append([t[0] for t in top])
            top_scores.append([t[1] for t in top])
        return {
            "path": batch["path"],
            "top5_labels": np.array(top_labels, dtype=object),
            "top5_scores": np.array(top_scores, dtype=np.float32),
        }


def predict_folder(
    model: ModelSource, folder: str, out: str, *, concurrency: int = 1, use_gpu: bool = False
) -> int:
    """Score every video under ``folder`` with Ray Data (one GPU per actor with ``use_gpu``);
    write a Parquet file to ``out``."""
    import ray.data  # heavy; single files are scored without Ray

    paths = sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    runtime.init_ray()
    ds = ray.data.from_items([{"path": p} for p in paths]).map_batches(
        _VideoScorer,
        fn_constructor_args=(model, use_gpu),
        batch_size=4,
        concurrency=concurrency,
        num_gpus=1 if use_gpu else 0,
    )
    rows = ds.take_all()
    table = pa.table(
        {
            "path": [r["path"] for r in rows],
            "top1_label": [str(r["top5_labels"][0]) for r in rows],
            "top5_labels": [[str(x) for x in r["top5_labels"]] for r in rows],
            "top5_scores": [[float(x) for x in r["top5_scores"]] for r in rows],
        }
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return len(rows)


def predict_dataset(request: EvalRequest, out: str) -> int:
    """Score a split of an ingested dataset with its test views; write per-video Parquet."""
    classes = load_state(request.checkpoint).classes
    scores = accumulate_views(
        score_views(request).iter_batches(batch_size=256, batch_format="numpy")
    )
    rows = {"video_id": [], "label_id": [], "top1_label": [], "top5_labels": [], "top5_scores": []}
    for vid in sorted(scores.sums):
        mean = scores.mean(vid)
        top = np.argsort(-mean)[:5]
        rows["video_id"].append(vid)
        rows["label_id"].append(scores.labels[vid])
        rows["top1_label"].append(classes[top[0]])
        rows["top5_labels"].append([classes[i] for i in top])
        rows["top5_scores"].append([float(mean[i]) for i in top])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), out)
    return len(rows["video_id"])


def is_dataset(uri: str) -> bool:
    """True for an ``s3://`` URI or a local folder holding a ``manifest.json``."""
    return uri.startswith("s3://") or (Path(uri) / "manifest.json").is_file()
