"""Run artifacts logged to MLflow after training: resolved config, the training curves (PNG),
confusion matrix, per-class accuracy and the final model (``mlflow.pytorch``, with an input
example)."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np
import torch

import slowfast_model
from pipelines import sampling
from raysf.config import dump_yaml
from training.checkpoints import TrainingState, load_state
from training.config import recorded_job
from training.tracking import RunTarget, get_client, mlflow_uri


class SingleTensorSlowFast(torch.nn.Module):
    """Serving wrapper: one normalised fast clip ``(B, 3, alpha*T, H, W)`` in, logits out.

    The Slow frames are the Fast ones at the clip spec's positions
    (:func:`pipelines.sampling.slow_positions`: every ``alpha``-th for the ``stride`` rule,
    PySlowFast's ``linspace`` pick for its rule), so one tensor carries both pathways; this is
    the signature of the model logged to MLflow.
    """

    def __init__(self, model: torch.nn.Module, slow_positions: np.ndarray):
        super().__init__()
        self.model = model
        positions = torch.as_tensor(np.asarray(slow_positions, dtype=np.int64))
        self.register_buffer("slow_positions", positions, persistent=False)

    def forward(self, fast: torch.Tensor) -> torch.Tensor:
        slow = fast.index_select(2, self.slow_positions)
        return self.model([slow, fast])


def confusion_png(confusion: np.ndarray, classes: list[str], path: Path) -> None:
    import matplotlib  # heavy; only the summary plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg"): no display needed

    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * n + 2), max(4, 0.5 * n + 2)))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(confusion[i, j]), ha="center", va="center", fontsize=7)
    ax.set_title("validation confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


#: The panels of ``training_curves.png``: title, y label, (metric, legend) per line.
CURVE_PANELS = (
    ("loss", "cross-entropy", (("train_loss", "train"), ("val_loss", "val"))),
    ("accuracy", "clip top-k (%)", (("val_top1", "val top-1"), ("val_top5", "val top-5"))),
    ("throughput", "clips/s", (("clips_per_s", "train clips/s"),)),
    ("data wait", "fraction of step time", (("data_wait_frac", "data wait"),)),
)
CURVE_METRICS = tuple(m for _, _, lines in CURVE_PANELS for m, _ in lines)


def curves_png(history: dict[str, list[tuple[int, float]]], title: str, path: Path) -> None:
    """Per-epoch curves (``history[metric] = [(epoch, value), ...]``) in four panels: loss,
    top-1/top-5 (in percent), clips/s and the data-wait fraction."""
    import matplotlib  # heavy; only the summary plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg"): no display needed

    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5))
    for ax, (name, ylabel, lines) in zip(axes.flat, CURVE_PANELS, strict=True):
        for metric, legend in lines:
            points = sorted(history.get(metric, []))
            scale = 100.0 if metric.startswith("val_top") else 1.0
            if points:
                xs = [epoch + 1 for epoch, _ in points]
                ax.plot(xs, [scale * v for _, v in points], marker="o", ms=3, label=legend)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def metric_histories(client, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """The per-epoch MLflow histories of :data:`CURVE_METRICS` (step = epoch)."""
    return {
        key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
        for key in CURVE_METRICS
    }


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    totals = confusion.sum(axis=1)
    return np.divide(np.diag(confusion), totals, out=np.zeros(len(totals)), where=totals > 0)


def build_model_from_state(state: TrainingState) -> torch.nn.Module:
    """The network of a checkpoint, its weights loaded, in eval mode."""
    model = slowfast_model.build_model(slowfast_model.SlowFastConfig(**state.model_config))
    model.load_state_dict(state.model)
    return model.eval()


def log_training_artifacts(
    run: RunTarget, job, checkpoint_uri: str, log_model: bool = True
) -> None:
    """The resolved config, the clip spec, the training curves and the confusion matrix (PNG)
    and per-class accuracy (CSV) of the final checkpoint; the model itself with ``log_model``."""
    state = load_state(checkpoint_uri)
    client = get_client(run.tracking_uri)
    run_id = run.run_id
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "resolved_config.yaml").write_text(dump_yaml(recorded_job(job)))
        (out / "clip_spec.yaml").write_text(dump_yaml(state.clip_spec.to_dict()))
        history = metric_histories(client, run_id)
        if any(history.values()):
            curves_png(history, f"{job.model.preset}: training curves", out / "training_curves.png")
        if state.confusion is not None:
            conf = np.asarray(state.confusion)
            confusion_png(conf, state.classes, out / "confusion_matrix.png")
            acc = per_class_accuracy(conf)
            with open(out / "per_class_accuracy.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["label_id", "label", "accuracy", "support"])
                for i, name in enumerate(state.classes):
                    w.writerow([i, name, f"{acc[i]:.4f}", int(conf[i].sum())])
        for path in sorted(out.iterdir()):
            client.log_artifact(run_id, str(path))
        client.set_tag(run_id, "checkpoint_uri", checkpoint_uri)
    if log_model:
        log_pytorch_model(run, state)


def log_pytorch_model(run: RunTarget, state: TrainingState) -> None:
    """Log the final model with ``mlflow.pytorch`` and a normalised-clip input example."""
    import mlflow  # heavy; only the driver logs the model

    spec = state.clip_spec
    positions = sampling.slow_positions(spec.slow_frames, spec.alpha, spec.rule)
    if positions is None:
        raise ValueError(f"rule {spec.rule!r}: the Slow frames are no subset of the Fast ones")
    model = SingleTensorSlowFast(build_model_from_state(state), positions).eval()
    example = np.zeros((1, 3, spec.fast_frames, spec.crop_size, spec.crop_size), dtype=np.float32)
    mlflow.set_tracking_uri(mlflow_uri(run.tracking_uri))
    with mlflow.start_run(run_id=run.run_id):
        mlflow.pytorch.log_model(
            model, name="model", input_example=example, pip_requirements=model_requirements()
        )


def model_requirements() -> list[str]:
    """What the logged model needs (the exported graph: torch; its input example: numpy), at
    the versions that trained it. Stated, not inferred: MLflow's inference imports the model in
    a subprocess, 15 of the 20 s a tiny model took to log on a 2-core machine."""
    return [f"torch=={torch.__version__}", f"numpy=={np.__version__}"]
