"""The paper's test protocol as Ray Data batch inference: :func:`evaluate_checkpoint`.

Every test video contributes ``num_test_clips`` uniform temporal windows (cut at ingest) x
``num_test_crops`` spatial crops (:func:`pipelines.views.spatial_views`, through the loader's test
mode); a pool of model actors scores the views, the softmax scores of a video's views are
averaged, and video-level top-1/top-5 are reported (clip-level view accuracy too). The
checkpoint carries its own :class:`~raysf.clip_spec.ClipSpec`, so nothing else is needed.
The views travel as the loader's rows (the Fast frames; the Slow ones are taken on the device),
and on a GPU the actors score them with bf16 autocast and ``channels_last_3d``
(:func:`training.device.settings.resolve_device_settings` with ``inference=True``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from pipelines.loader.dataset import RGB_COLUMNS, build_clip_dataset
from pipelines.loader.decode_errors import (
    DecodeErrorSink,
    start_decode_error_log,
    take_decode_errors,
)
from pipelines.loader.options import DecodeOptions
from raysf import display, runtime
from raysf.storage import S3Config, StorageLocation, resolve_location
from training.artifacts import build_model_from_state
from training.checkpoints import TrainingState, load_state
from training.config import resolve_path
from training.device.inputs import DeviceInputs
from training.device.settings import Precision, Switch, resolve_device_settings
from training.tracking import RunTarget


@dataclass(frozen=True)
class EvalRequest:
    """What to evaluate, where, and with how many actors.

    Attributes:
        checkpoint: checkpoint directory or ``state.pt`` (local or ``s3://``).
        dataset: dataset URI (default: the one the checkpoint was trained on).
        split: the split to score.
        storage: S3 settings of an ``s3://`` dataset (unset: the AWS environment's).
        batch_size: views per inference batch.
        num_crops: override the checkpoint's ``num_test_crops`` (1 or 3).
        concurrency: model actors.
        use_gpu: one GPU per actor.
        decode: where and how the decode tasks run (``decode.num_cpus=2``: CPUs per task).
        precision, channels_last: the actors' settings; ``auto`` is bf16 and
            ``channels_last_3d`` on a GPU, fp32 contiguous on a CPU.
    """

    #: Keys of earlier versions: a request that sets one fails naming its replacement.
    REPLACED_KEYS: ClassVar[dict[str, str]] = {"decode_cpus": "decode.num_cpus"}

    checkpoint: str
    dataset: str | None = None
    split: str = "test"
    storage: S3Config = field(default_factory=S3Config)
    batch_size: int = 8
    num_crops: int | None = None
    concurrency: int = 1
    use_gpu: bool = False
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    precision: Precision = "auto"
    channels_last: Switch = "auto"

    def dataset_location(self, state: TrainingState) -> StorageLocation:
        """Where the dataset to score lives: ``dataset``, else the one ``state`` (the
        checkpoint) was trained on."""
        dataset = self.dataset or state.job_config.get("data", {}).get("dataset")
        if not dataset:
            raise ValueError(
                f"{self.checkpoint}: no dataset given and none saved in the checkpoint"
            )
        return resolve_location(resolve_path(dataset), self.storage)


class ViewScorer:
    """Ray Data callable class: loads the model once per actor, scores batches of views."""

    def __init__(
        self, checkpoint_uri: str, use_gpu: bool = False, precision="auto", channels_last="auto"
    ):
        state = load_state(checkpoint_uri)
        device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.settings = resolve_device_settings(
            device, precision, channels_last, False, inference=True
        )
        self.model = self.settings.place(build_model_from_state(state), device)
        self.inputs = DeviceInputs.for_spec(state.clip_spec, device, self.settings.channels_last)

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = self.inputs.inputs(batch)
        with self.settings.autocast():
            logits = self.model(inputs).float()
        probs = torch.softmax(logits, dim=1).cpu().numpy()
        return {"video_id": batch["video_id"], "label": batch["label"], "probs": probs}


@dataclass
class VideoScores:
    """Per-video sums of view scores, with the view-level hit counts seen on the way."""

    sums: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    view_top1: int = 0

    def add(self, batch: dict[str, np.ndarray]) -> None:
        for vid, label, p in zip(batch["video_id"], batch["label"], batch["probs"], strict=True):
            vid = str(vid)
            self.sums[vid] = self.sums[vid] + p if vid in self.sums else p.astype(np.float64)
            self.labels[vid] = int(label)
            self.counts[vid] += 1
            self.view_top1 += int(np.argmax(p) == label)

    def mean(self, vid: str) -> np.ndarray:
        return self.sums[vid] / self.counts[vid]


def accumulate_views(batches) -> VideoScores:
    scores = VideoScores()
    for batch in batches:
        scores.add(batch)
    if not scores.sums:
        raise ValueError("no test views were produced: is the split empty?")
    return scores


def aggregate_views(batches) -> dict[str, float]:
    """Average view scores per video; video- and view-level top-1/top-5, and the video-level
    top-1 of each label id present (``test_top1_class_<id>``)."""
    scores = accumulate_views(batches)
    hits = np.zeros(2)
    per_class: dict[int, list[bool]] = defaultdict(list)
    for vid, total in scores.sums.items():
        top = np.argsort(-total)
        hits += [top[0] == scores.labels[vid], scores.labels[vid] in top[:5]]
        per_class[scores.labels[vid]].append(bool(top[0] == scores.labels[vid]))
    n = len(scores.sums)
    if not n:
        raise ValueError("no view was scored: the split is empty or none of its records decodes")
    n_views = sum(scores.counts.values())
    return {
        "test_top1": float(hits[0] / n),
        "test_top5": float(hits[1] / n),
        "test_view_top1": float(scores.view_top1 / n_views),
        "test_videos": float(n),
        "test_views": float(n_views),
        "test_views_per_video": float(n_views / n),
        **{f"test_top1_class_{k}": float(np.mean(v)) for k, v in sorted(per_class.items())},
    }


def score_views(request: EvalRequest, errors=None):
    """Ray Dataset of per-view softmax scores (``video_id``, ``label``, ``probs``) of a split;
    with ``errors`` (a :class:`~pipelines.loader.decode_errors.DecodeErrorSink`) a record that fails
    to decode is dropped and counted there instead of failing the evaluation."""
    state = load_state(request.checkpoint)
    spec = state.clip_spec
    if request.num_crops is not None:
        spec = spec.replace(num_test_crops=request.num_crops)
    runtime.init_ray()
    views = build_clip_dataset(
        request.dataset_location(state),
        split=request.split,
        mode="test",
        spec=spec,
        decode=request.decode,
        errors=errors,
    ).select_columns([*RGB_COLUMNS, "label", "video_id"])
    return views.map_batches(
        ViewScorer,
        fn_constructor_args=(
            request.checkpoint,
            request.use_gpu,
            request.precision,
            request.channels_last,
        ),
        batch_size=request.batch_size,
        concurrency=request.concurrency,
        num_gpus=1 if request.use_gpu else 0,
    )


def evaluate_checkpoint(request: EvalRequest, run: RunTarget | None = None) -> dict[str, float]:
    """Run the test protocol of :func:`score_views`; log the metrics to ``run`` when given.

    A record that fails to decode is dropped (the video's other views still count) and counted
    in ``test_decode_errors``, so a damaged test record never fails a finished training run."""
    state = load_state(request.checkpoint)
    runtime.init_ray()
    log = start_decode_error_log()
    scored = score_views(request, errors=DecodeErrorSink(log, request.split))
    shown = display.Progress(f"evaluating {request.split}", expected_views(request, state), "views")
    metrics = aggregate_views(
        counted(scored.iter_batches(batch_size=256, batch_format="numpy"), shown)
    )
    metrics["test_decode_errors"] = float(sum(take_decode_errors(log)["counts"].values()))
    dropped = int(metrics["test_decode_errors"])
    shown.close(
        f"{request.split}: top-1 {100 * metrics['test_top1']:.1f}% · top-5 "
        f"{100 * metrics['test_top5']:.1f}% · {metrics['test_videos']:.0f} videos x "
        f"{metrics['test_views_per_video']:.0f} views"
        + (f" · {dropped} records not decodable" if dropped else "")
        + f" · {display.format_duration(time.monotonic() - shown.started)}"
    )
    if run is not None:
        run.log_metrics(metrics, step=max(state.epoch, 0))
    return metrics


def counted(batches, shown: display.Progress):
    """Pass the batches through, advancing the display by each batch's rows."""
    for batch in batches:
        shown.update(advance=len(batch["video_id"]))
        yield batch


def expected_views(request: EvalRequest, state: TrainingState) -> int | None:
    """Test views of the split (windows cut at ingest x spatial crops); ``None`` if unknown."""
    try:
        manifest = runtime.read_manifest(request.dataset_location(state))
    except (OSError, ValueError):
        return None
    crops = request.num_crops or state.clip_spec.num_test_crops
    return manifest.clips_in(request.split) * crops
