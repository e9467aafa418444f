"""Top-5 predictions for video files, folders and ingested datasets.

Each video is scored with the test protocol of the checkpoint's
:class:`~raysf.clip_spec.ClipSpec` (``num_test_clips`` uniform windows x ``num_test_crops``
crops at ``test_short_side``, softmax averaged; :func:`pipelines.views.video_views`), with
bf16 autocast and ``channels_last_3d`` on a GPU (:mod:`training.device.settings`, ``inference=True``). A folder
runs as Ray Data batch inference and writes a Parquet file; an ingested dataset (a split of it)
is scored through the evaluation's view pipeline.

Models: an export of ``raysf export`` (TorchScript or ExportedProgram: a model file with its
``.json`` metadata beside it), this project's checkpoints (``state.pt`` or its directory) and converted PyTorchVideo /
PySlowFast / mmaction2 ones (``source``; their clip spec defaults to the Kinetics recipe of the
``preset`` and the class names to a class file or ids). A checkpoint that cannot be read or
does not fit its network fails with the file named.

One bad video never costs the others: it gets a row (or JSON line) with its ``error`` and
empty predictions, and every other video is scored and written.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

import slowfast_model
from pipelines.loader.decode_errors import (
    DecodeErrorSink,
    start_decode_error_log,
    take_decode_errors,
)
from pipelines.views import video_views
from raysf import runtime
from raysf.clip_spec import ClipSpec
from slowfast_model.checkpoints import SOURCES
from training.artifacts import build_model_from_state
from training.checkpoints import load_state
from training.device.inputs import DeviceInputs
from training.device.settings import DeviceSettings, resolve_device_settings
from training.inference.evaluate import EvalRequest, VideoScores, score_views
from training.inference.export import is_export, load_export_network
from training.inference.timeline import TimelineOptions, video_timeline

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

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelSource:
        """The source of a command line with :func:`add_model_source_arguments`."""
        return cls(args.checkpoint, args.source, args.preset, args.classes)


def add_model_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--source``, ``--preset``, ``--classes``: how to read a command's checkpoint."""
    parser.add_argument("--source", default="raysf", choices=("raysf", *SOURCES))
    parser.add_argument("--preset", default=None, help="architecture preset (external sources)")
    parser.add_argument("--classes", default=None, help="class names, one per line")


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
    def view_scores(self, fast: np.ndarray) -> np.ndarray:
        """Softmax scores ``(V, num_classes)`` of uint8 views ``(V, alpha*T, H, W, 3)``."""
        inputs = self.inputs.inputs({"fast": fast})
        with self.settings.autocast():
            logits = self.model(inputs).float()
        return torch.softmax(logits, dim=1).cpu().numpy()

    def video_scores(self, content: bytes | str, name: str = "video") -> np.ndarray:
        """Softmax scores averaged over the test views of one video: ``(num_classes,)``."""
        return self.view_scores(video_views(content, self.spec, name=name).fast).mean(0)

    def describe(self) -> dict[str, object]:
        """What ``GET /v1/model`` says of the model: classes, clip spec, device settings."""
        return {
            "classes": list(self.classes),
            "clip_spec": self.spec.to_dict(),
            "device": str(self.device),
            "device_settings": self.settings.describe(),
        }

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
    placed on ``device`` in its inference settings (bf16 + ``channels_last_3d`` on CUDA);
    ``ValueError`` naming the checkpoint file when it does not build its network."""
    if model.source == "raysf" and is_export(model.checkpoint):
        net, spec, classes = load_export_network(model.checkpoint)
    elif model.source == "raysf":
        state = load_state(model.checkpoint)
        try:
            net = build_model_from_state(state)
        except (ValueError, RuntimeError, TypeError, KeyError) as exc:
            raise ValueError(f"{model.checkpoint}: does not build its network: {exc}") from exc
        spec, classes = state.clip_spec, state.classes
    else:
        net = _external_model(model)
        spec = external_clip_spec(net.config, model.source)
        classes = [str(i) for i in range(net.config.num_classes)]
    if model.classes_file:
        lines = Path(model.classes_file).read_text().splitlines()
        classes = [line.strip() for line in lines if line.strip()]
    dev = torch.device(device)
    settings = resolve_device_settings(dev, inference=True)
    if is_export(model.checkpoint):  # traced fp32 graphs: no autocast, the layout they traced
        settings = replace(settings, precision="fp32", channels_last=False)
    return Predictor(settings.place(net, dev).eval(), spec, classes, dev, settings)


def _external_model(model: ModelSource) -> torch.nn.Module:
    """A converted external checkpoint's network; errors name the file."""
    try:
        base = slowfast_model.get_config(model.preset) if model.preset else None
        return slowfast_model.build_from_checkpoint(model.checkpoint, model.source, base=base)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{model.checkpoint}: no such checkpoint") from exc
    except (ValueError, RuntimeError, TypeError, KeyError, OSError) as exc:
        raise ValueError(
            f"{model.checkpoint}: not a loadable {model.source} checkpoint: {exc}"
        ) from exc


def score_video(predictor: Predictor, video: str) -> dict[str, object]:
    """``{"top5": [(label, score)], "error": ""}`` of one video file, or its error (one line)
    with no predictions: a bad file never stops the others."""
    try:
        return {"top5": predictor.top_k(predictor.video_scores(video, name=video)), "error": ""}
    except Exception as exc:  # noqa: BLE001 - reported in the video's own row
        return {"top5": [], "error": " ".join(f"{type(exc).__name__}: {exc}".split())}


def score_timeline(
    predictor: Predictor, video: str, options: TimelineOptions, name: str | None = None
) -> dict[str, object]:
    """``{"timeline": ..., "error": ""}`` of one video file (:mod:`training.inference.timeline`),
    or its error (one line) with no timeline."""
    try:
        timeline = video_timeline(
            video, predictor.spec, predictor.classes, predictor.view_scores, options, name or video
        )
        return {"timeline": timeline, "error": ""}
    except Exception as exc:  # noqa: BLE001 - reported in the video's own row
        return {"timeline": None, "error": " ".join(f"{type(exc).__name__}: {exc}".split())}


class _VideoScorer:
    """Ray Data callable class scoring whole videos (one model per actor): their top-5, or
    their timelines (as JSON) when ``timeline`` options are given."""

    def __init__(
        self, model: ModelSource, use_gpu: bool = False, timeline: TimelineOptions | None = None
    ):
        self.predictor = load_predictor(model, "cuda" if use_gpu else "cpu")
        self.timeline = timeline

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(path) for path in batch["path"]]
        if self.timeline is None:
            scored = [score_video(self.predictor, p) for p in paths]
            key, values = "top5", [json.dumps(s["top5"]) for s in scored]
        else:
            scored = [score_timeline(self.predictor, p, self.timeline) for p in paths]
            key, values = (
                "timeline",
                [json.dumps(s["timeline"]) if s["timeline"] else "" for s in scored],
            )
        return {
            "path": batch["path"],
            key: np.array(values, dtype=object),
            "error": np.array([s["error"] for s in scored], dtype=object),
        }


def predict_folder(
    model: ModelSource,
    folder: str,
    out: str,
    *,
    concurrency: int = 1,
    use_gpu: bool = False,
    timeline: TimelineOptions | None = None,
) -> int:
    """Score every video under ``folder`` with Ray Data (one GPU per actor with ``use_gpu``);
    write a Parquet file to ``out``: top-5 columns, or with ``timeline`` a ``timeline`` column
    holding each video's timeline as JSON (the service's answer)."""
    import ray.data  # heavy; single files are scored without Ray

    paths = sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    runtime.init_ray()
    ds = ray.data.from_items([{"path": p} for p in paths]).map_batches(
        _VideoScorer,
        fn_constructor_args=(model, use_gpu, timeline),
        batch_size=4,
        concurrency=concurrency,
        num_gpus=1 if use_gpu else 0,
    )
    rows = sorted(ds.take_all(), key=lambda r: str(r["path"]))
    if timeline is not None:
        return _write_timelines(rows, out)
    tops = [json.loads(r["top5"]) for r in rows]
    table = pa.table(
        {
            "path": [str(r["path"]) for r in rows],
            "top1_label": [top[0][0] if top else None for top in tops],
            "top5_labels": [[str(label) for label, _ in top] for top in tops],
            "top5_scores": [[float(score) for _, score in top] for top in tops],
            "error": [str(r["error"]) for r in rows],
        }
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return len(rows)


def _write_timelines(rows: list[dict], out: str) -> int:
    table = pa.table(
        {
            "path": [str(r["path"]) for r in rows],
            "timeline": [str(r["timeline"]) for r in rows],
            "error": [str(r["error"]) for r in rows],
        }
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return len(rows)


def predict_dataset(request: EvalRequest, out: str) -> int:
    """Score a split of an ingested dataset with its test views; write per-video Parquet.

    A record that fails to decode is dropped and named in its video's ``error``: a video with
    no window left gets a row with the error and no predictions (``label_id`` null)."""
    classes = load_state(request.checkpoint).classes
    runtime.init_ray()
    log = start_decode_error_log()
    views = score_views(request, errors=DecodeErrorSink(log, request.split))
    scores = VideoScores()
    for batch in views.iter_batches(batch_size=256, batch_format="numpy"):
        scores.add(batch)
    failed: dict[str, list[str]] = defaultdict(list)
    for f in take_decode_errors(log)["examples"]:
        failed[f["video_id"]].append(f"window {f['clip_index']}: {f['message']}")
    if not scores.sums and not failed:
        raise ValueError(f"{request.dataset}: split {request.split!r} has no records")
    rows: dict[str, list] = {k: [] for k in ("video_id", "label_id", "top1_label")}
    rows.update(top5_labels=[], top5_scores=[], error=[])
    for vid in sorted(set(scores.sums) | set(failed)):
        top = np.argsort(-scores.mean(vid))[:5] if vid in scores.sums else []
        rows["video_id"].append(vid)
        rows["label_id"].append(scores.labels.get(vid))
        rows["top1_label"].append(classes[top[0]] if len(top) else None)
        rows["top5_labels"].append([classes[i] for i in top])
        rows["top5_scores"].append([float(scores.mean(vid)[i]) for i in top])
        rows["error"].append("; ".join(failed.get(vid, [])))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), out)
    return len(rows["video_id"])


def failed_rows(out: str) -> int:
    """Rows of a prediction Parquet file whose ``error`` is set."""
    return sum(1 for e in pq.read_table(out, columns=["error"]).column("error").to_pylist() if e)


def is_dataset(uri: str) -> bool:
    """True for an ``s3://`` URI or a local folder holding a ``manifest.json``."""
    return uri.startswith("s3://") or (Path(uri) / "manifest.json").is_file()
