"""The paper's test protocol as Ray Data batch inference: ``python -m jobs.evaluate CHECKPOINT``.

Every test video contributes ``num_test_clips`` uniform temporal windows (written at ingest) x
``num_crops`` spatial crops; a pool of model actors scores the views, the softmax scores of a
video's views are averaged, and video-level top-1/top-5 are reported (clip-level view accuracy
too). The checkpoint carries its own preprocessing, so nothing else is needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from jobs.checkpoints import Preprocessing, load_state


class ViewScorer:
    """Ray Data callable class: loads the model once per actor, scores batches of views."""

    def __init__(self, checkpoint_uri: str, use_gpu: bool = False):
        from jobs.artifacts import build_model_from_state

        state = load_state(checkpoint_uri)
        self.prep: Preprocessing = state.preprocessing
        self.device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
        self.model = build_model_from_state(state).to(self.device)

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from pipelines.transforms import to_model_inputs

        inputs = to_model_inputs(
            {"slow": torch.as_tensor(batch["slow"]), "fast": torch.as_tensor(batch["fast"])},
            self.prep.mean,
            self.prep.std,
            self.device,
        )
        ctx = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.device.type == "cuda"
            else torch.autocast("cpu", enabled=False)
        )
        with ctx:
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
    """Average view scores per video; video- and view-level top-1/top-5."""
    scores = accumulate_views(batches)
    hits = np.zeros(2)
    for vid, total in scores.sums.items():
        top = np.argsort(-total)
        hits += [top[0] == scores.labels[vid], scores.labels[vid] in top[:5]]
    n = len(scores.sums)
    n_views = sum(scores.counts.values())
    return {
        "test_top1": float(hits[0] / n),
        "test_top5": float(hits[1] / n),
        "test_view_top1": float(scores.view_top1 / n_views),
        "test_videos": float(n),
        "test_views": float(n_views),
        "test_views_per_video": float(n_views / n),
    }


def score_views(
    checkpoint_uri: str,
    *,
    dataset: str | None = None,
    split: str = "test",
    endpoint_url: str | None = None,
    batch_size: int = 8,
    num_crops: int | None = None,
    concurrency: int = 1,
    use_gpu: bool = False,
    decode_cpus: float = 1.0,
):
    """Ray Dataset of per-view softmax scores (``video_id``, ``label``, ``probs``) of a split."""
    import ray

    from jobs.config import resolve_path
    from jobs.train import dataset_filesystem
    from pipelines.loader import build_clip_dataset

    state = load_state(checkpoint_uri)
    prep = state.preprocessing
    if dataset is None:
        dataset = state.job_config.get("data", {}).get("dataset")
        if not dataset:
            raise ValueError(f"{checkpoint_uri}: no dataset given and none saved in the checkpoint")
    if not ray.is_initialized():
        ray.init()
    views = build_clip_dataset(
        resolve_path(dataset),
        split=split,
        mode="test",
        slow_frames=prep.slow_frames,
        tau=prep.tau,
        alpha=prep.alpha,
        rule=prep.rule,
        target_fps=prep.target_fps,
        crop_size=prep.crop_size,
        short_side_range=prep.short_side_range,
        test_short_side=prep.test_short_side,
        num_spatial_crops=num_crops or prep.num_test_crops,
        decode_num_cpus=decode_cpus,
        filesystem=dataset_filesystem(dataset, endpoint_url),
    ).select_columns(["slow", "fast", "label", "video_id"])
    return views.map_batches(
        ViewScorer,
        fn_constructor_args=(checkpoint_uri, use_gpu),
        batch_size=batch_size,
        concurrency=concurrency,
        num_gpus=1 if use_gpu else 0,
    )


def evaluate_checkpoint(
    checkpoint_uri: str,
    *,
    tracking_uri: str | None = None,
    run_id: str | None = None,
    **kwargs,
) -> dict[str, float]:
    """Run the 10x3 protocol (see :func:`score_views` for the arguments); log to MLflow."""
    scored = score_views(checkpoint_uri, **kwargs)
    metrics = aggregate_views(scored.iter_batches(batch_size=256, batch_format="numpy"))
    if tracking_uri and run_id:
        from jobs.tracking import log_metrics

        log_metrics(tracking_uri, run_id, metrics, step=max(load_state(checkpoint_uri).epoch, 0))
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.evaluate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("checkpoint", nargs="?", help="checkpoint directory or state.pt (local/s3)")
    parser.add_argument("--dataset", default=None, help="dataset URI (default: the training one)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-crops", type=int, default=None, choices=(1, 3))
    parser.add_argument("--concurrency", type=int, default=1, help="model actors")
    parser.add_argument("--use-gpu", action="store_true")
    parser.add_argument("--endpoint-url", default=None, help="S3 endpoint for s3:// URIs")
    parser.add_argument(
        "--smoke-test",
        action="store_true",
        help="train a tiny model on generated data first, then evaluate it",
    )
    args = parser.parse_args(argv)
    checkpoint, dataset = args.checkpoint, args.dataset
    if args.smoke_test and checkpoint is None:
        from jobs.smoke import smoke_checkpoint

        checkpoint, dataset = smoke_checkpoint()
    if checkpoint is None:
        parser.error("CHECKPOINT is required (or --smoke-test)")
    metrics = evaluate_checkpoint(
        checkpoint,
        dataset=dataset,
        split=args.split,
        endpoint_url=args.endpoint_url,
        batch_size=args.batch_size,
        num_crops=args.num_crops,
        concurrency=args.concurrency,
        use_gpu=args.use_gpu,
    )
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
