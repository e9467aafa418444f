"""Top-5 predictions for video files: ``python -m jobs.predict CHECKPOINT VIDEO...``.

Each video is scored with the test protocol saved in the checkpoint (``num_test_clips`` uniform
windows x ``num_test_crops`` crops at ``test_short_side``, softmax averaged). Given video files it
prints the top-5 classes per video; given a folder or an ingested dataset URI (a split of it, ``--split``) it runs as
Ray Data batch inference and writes a Parquet file of predictions (``--out``).

Checkpoints: this project's (``state.pt`` or its directory) and converted PyTorchVideo /
PySlowFast / mmaction2 ones (``--source``; their preprocessing defaults to the Kinetics recipe of
the ``--preset`` and the class names to ``--classes`` or ids).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jobs.checkpoints import Preprocessing, load_state
from pipelines import sampling

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")


@dataclass
class Predictor:
    """A model with its preprocessing and class names."""

    model: torch.nn.Module
    prep: Preprocessing
    classes: list[str]
    device: torch.device

    @torch.no_grad()
    def video_scores(self, content: bytes | str, name: str = "video") -> np.ndarray:
        """Softmax scores averaged over the 10 x 3 views of one video: ``(num_classes,)``."""
        from pipelines.decode import decode_frames
        from pipelines.frame_table import read_frame_table
        from pipelines.transforms import spatial_crop, to_model_inputs

        p = self.prep
        table = read_frame_table(content)
        span = sampling.window_span(p.slow_frames, p.tau, table.fps, p.target_fps)
        windows = [
            sampling.clip_indices(
                int(s),
                table.num_frames,
                slow_frames=p.slow_frames,
                tau=p.tau,
                alpha=p.alpha,
                fps=table.fps,
                target_fps=p.target_fps,
                rule=p.rule,
            )
            for s in sampling.uniform_starts(table.num_frames, span, p.num_test_clips)
        ]
        needed = np.unique(np.concatenate([f for f, _ in windows]))
        frames = decode_frames(
            content,
            needed,
            frame_pts=table.pts,
            keyframes=table.keyframes,
            short_side=p.test_short_side,
            name=name,
        )
        pos = {int(i): k for k, i in enumerate(needed)}
        slows, fasts = [], []
        for fast_idx, slow_idx in windows:
            clip = [
                frames[[pos[int(i)] for i in slow_idx]],
                frames[[pos[int(i)] for i in fast_idx]],
            ]
            for crop in range(p.num_test_crops):
                slow, fast = spatial_crop(clip, p.crop_size, crop, p.num_test_crops)
                slows.append(slow)
                fasts.append(fast)
        inputs = to_model_inputs(
            {"slow": np.stack(slows), "fast": np.stack(fasts)}, p.mean, p.std, self.device
        )
        logits = self.model(inputs).float()
        return torch.softmax(logits, dim=1).mean(0).cpu().numpy()

    def top_k(self, scores: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-scores)[:k]
        return [
            (self.classes[i] if i < len(self.classes) else str(i), float(scores[i])) for i in order
        ]


def load_predictor(
    checkpoint: str,
    source: str = "raysf",
    preset: str | None = None,
    classes_file: str | None = None,
    device: str = "cpu",
) -> Predictor:
    """Model + preprocessing from our checkpoint, or from a converted external one."""
    import slowfast_model

    dev = torch.device(device)
    if source == "raysf":
        from jobs.artifacts import build_model_from_state

        state = load_state(checkpoint)
        model, prep, classes = build_model_from_state(state), state.preprocessing, state.classes
    else:
        base = slowfast_model.get_config(preset) if preset else None
        model = slowfast_model.build_from_checkpoint(checkpoint, source, base=base).eval()
        cfg = model.config
        prep = Preprocessing(
            slow_frames=cfg.slow_frames,
            tau=cfg.default_tau,
            alpha=cfg.alpha,
            rule="linspace" if source == "pyslowfast" else "stride",
            target_fps=30.0,
        )
        classes = [str(i) for i in range(cfg.num_classes)]
    if classes_file:
        classes = [
            line.strip() for line in Path(classes_file).read_text().splitlines() if line.strip()
        ]
    return Predictor(model.to(dev).eval(), prep, classes, dev)


class _VideoScorer:
    """Ray Data callable class scoring whole videos (one model per actor)."""

    def __init__(self, checkpoint: str, source: str, preset: str | None, classes_file: str | None):
        self.predictor = load_predictor(checkpoint, source, preset, classes_file)

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
    checkpoint: str,
    folder: str,
    out: str,
    *,
    source: str = "raysf",
    preset: str | None = None,
    classes_file: str | None = None,
    concurrency: int = 1,
) -> int:
    """Score every video under ``folder`` with Ray Data; write a Parquet file to ``out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    paths = sorted(str(p) for p in Path(folder).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    if not ray.is_initialized():
        ray.init()
    ds = ray.data.from_items([{"path": p} for p in paths]).map_batches(
        _VideoScorer,
        fn_constructor_args=(checkpoint, source, preset, classes_file),
        batch_size=4,
        concurrency=concurrency,
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


def predict_dataset(
    checkpoint: str,
    dataset: str,
    out: str,
    *,
    split: str = "test",
    endpoint_url: str | None = None,
    concurrency: int = 1,
) -> int:
    """Score a split of an ingested dataset with the 10x3 views; write per-video Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.evaluate import accumulate_views, score_views

    classes = load_state(checkpoint).classes
    scored = score_views(
        checkpoint, dataset=dataset, split=split, endpoint_url=endpoint_url, concurrency=concurrency
    )
    scores = accumulate_views(scored.iter_batches(batch_size=256, batch_format="numpy"))
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


def _is_dataset(uri: str) -> bool:
    if uri.startswith("s3://"):
        return True
    return (Path(uri) / "manifest.json").is_file()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.predict", description=__doc__.split("\n")[0]
    )
    parser.add_argument("checkpoint", help="state.pt / checkpoint dir, or an external .pyth/.pth")
    parser.add_argument("videos", nargs="+", help="video files, or one folder")
    parser.add_argument(
        "--source", default="raysf", choices=("raysf", "pytorchvideo", "pyslowfast", "mmaction2")
    )
    parser.add_argument("--preset", default=None, help="architecture preset (external sources)")
    parser.add_argument("--classes", default=None, help="class names, one per line")
    parser.add_argument("--out", default="predictions.parquet", help="Parquet (folder input)")
    parser.add_argument("--concurrency", type=int, default=1, help="model actors (folder input)")
    parser.add_argument("--split", default="test", help="split to score (dataset input)")
    parser.add_argument("--endpoint-url", default=None, help="S3 endpoint (dataset input)")
    args = parser.parse_args(argv)
    if len(args.videos) == 1 and _is_dataset(args.videos[0]):
        n = predict_dataset(
            args.checkpoint,
            args.videos[0],
            args.out,
            split=args.split,
            endpoint_url=args.endpoint_url,
            concurrency=args.concurrency,
        )
        print(f"wrote {n} video predictions to {args.out}")
        return 0
    if len(args.videos) == 1 and os.path.isdir(args.videos[0]):
        n = predict_folder(
            args.checkpoint,
            args.videos[0],
            args.out,
            source=args.source,
            preset=args.preset,
            classes_file=args.classes,
            concurrency=args.concurrency,
        )
        print(f"wrote {n} predictions to {args.out}")
        return 0
    predictor = load_predictor(args.checkpoint, args.source, args.preset, args.classes)
    for video in args.videos:
        top = predictor.top_k(predictor.video_scores(video, name=video))
        print(
            json.dumps(
                {"video": video, "top5": [{"label": lbl, "score": round(s, 4)} for lbl, s in top]}
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
