"""The math of one epoch on one worker: optimisation steps, validation, and what is summed
across ranks. No Ray here: the worker loop (:mod:`training.worker`) feeds these functions with
batches and a device.

Per-epoch sums travel between ranks as typed records (:class:`EpochStats`, :class:`ValStats`)
packed into one float64 tensor per all-reduce, field by field in declaration order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.nn.functional as F

from raysf.clip_spec import ClipSpec
from training.checkpoints import unwrap_model
from training.device import autocast
from training.inputs import spec_inputs

S = TypeVar("S", bound="Summable")


class Summable:
    """A dataclass of numbers that can be all-reduced (summed over ranks) in one tensor."""

    def all_reduce(self: S, device: torch.device) -> S:
        values = [float(getattr(self, f.name)) for f in dataclasses.fields(self)]
        tensor = _all_reduce(torch.tensor(values, dtype=torch.float64, device=device)).cpu()
        return type(self)(*(t.item() for t in tensor))


@dataclass
class EpochStats(Summable):
    """One worker's training epoch: summed loss, clips, steps and seconds (wall, data wait)."""

    loss_sum: float = 0.0
    samples: float = 0.0
    steps: float = 0.0
    elapsed: float = 0.0
    wait: float = 0.0

    def metrics(self, world: int) -> dict[str, float]:
        """Epoch metrics from stats summed over ``world`` ranks."""
        mean_elapsed = self.elapsed / world
        return {
            "train_loss": self.loss_sum / max(self.samples, 1.0),
            "clips_per_s": self.samples / max(mean_elapsed, 1e-9),
            "data_wait_frac": self.wait / max(self.elapsed, 1e-9),
        }


@dataclass
class ValStats(Summable):
    """Clip-level validation sums: loss, top-1 and top-5 hits, clips."""

    loss_sum: float = 0.0
    top1: float = 0.0
    top5: float = 0.0
    clips: float = 0.0

    def metrics(self) -> dict[str, float]:
        n = max(self.clips, 1.0)
        return {
            "val_loss": self.loss_sum / n,
            "val_top1": self.top1 / n,
            "val_top5": self.top5 / n,
            "val_clips": int(self.clips),
        }


@dataclass
class DecodeErrorStats(Summable):
    """Records dropped by the decode tasks in one epoch (read by rank 0, summed to all ranks
    so that every rank takes the same decision)."""

    train: float = 0.0
    val: float = 0.0

    def metrics(self) -> dict[str, int]:
        return {"decode_errors": int(self.train), "val_decode_errors": int(self.val)}

    def over_limit(self, train_clips: float, val_clips: float, limit: float) -> str:
        """Why the run must stop (``""`` when it may go on): a share of dropped records above
        ``limit`` (``data.max_decode_error_fraction``) in train or val."""
        for name, errors, clips in (
            ("train", self.train, train_clips),
            ("val", self.val, val_clips),
        ):
            fraction = errors / max(errors + clips, 1.0)
            if errors and fraction > limit:
                return (
                    f"{int(errors)} {name} records failed to decode in one epoch ({fraction:.2%} "
                    f"> data.max_decode_error_fraction {limit:.2%}); the dataset is damaged: "
                    "re-ingest it (checks.decode_all: true finds such records at ingest)"
                )
        return ""


def build_param_groups(model: torch.nn.Module, weight_decay: float, bn_weight_decay: float):
    """Two groups: norm layers and biases (``bn_weight_decay``) and the rest (``weight_decay``)."""
    norm, other = [], []
    for module in model.modules():
        is_norm = isinstance(
            module, (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm)
        )
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            (norm if is_norm or name == "bias" else other).append(param)
    return [
        {"params": other, "weight_decay": weight_decay},
        {"params": norm, "weight_decay": bn_weight_decay},
    ]


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list[int]:
    """Number of samples whose label is among the top-k logits, for each k (k capped at C)."""
    maxk = min(max(ks), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices
    hits = top.eq(labels.view(-1, 1))
    return [int(hits[:, : min(k, maxk)].any(dim=1).sum()) for k in ks]


@dataclass(frozen=True)
class StepSettings:
    """What a training step needs besides the model and the batch."""

    spec: ClipSpec
    device: torch.device
    precision: str = "auto"
    channels_last: bool = False
    label_smoothing: float = 0.0
    grad_clip_norm: float | None = None


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batches: Iterable[Mapping[str, Any]],
    step: StepSettings,
    max_steps: int | None = None,
) -> EpochStats:
    """One pass over the worker's shard (at most ``max_steps`` steps); returns its sums."""
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64)
    stats = EpochStats()
    start = time.perf_counter()
    it = iter(batches)
    while max_steps is None or stats.steps < max_steps:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            break
        stats.wait += time.perf_counter() - t0
        inputs = spec_inputs(batch, step.spec, step.device, channels_last=step.channels_last)
        labels = torch.as_tensor(batch["label"]).to(step.device, non_blocking=True).long()
        with autocast(step.device, step.precision):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=step.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), step.grad_clip_norm)
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach().double().cpu() * labels.shape[0]
        stats.samples += labels.shape[0]
        stats.steps += 1
    stats.loss_sum = float(loss_sum)
    stats.elapsed = time.perf_counter() - start
    return stats


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, Any]],
    step: StepSettings,
    num_classes: int,
) -> tuple[ValStats, torch.Tensor]:
    """Clip-level sums and the confusion matrix over this worker's shard, summed across ranks."""
    model.eval()
    stats = ValStats()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for batch in batches:
        inputs = spec_inputs(batch, step.spec, step.device, channels_last=step.channels_last)
        labels = torch.as_tensor(batch["label"]).to(step.device).long()
        with autocast(step.device, step.precision):
            logits = model(inputs).float()
        stats.loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        top1, top5 = topk_correct(logits, labels)
        stats.top1 += top1
        stats.top5 += top5
        stats.clips += labels.shape[0]
        pred = logits.argmax(1).cpu()
        confusion.index_put_((labels.cpu(), pred), torch.ones_like(pred), accumulate=True)
    confusion = _all_reduce(confusion.to(step.device)).cpu()
    return stats.all_reduce(step.device), confusion


def param_digest(model: torch.nn.Module) -> str:
    """SHA-1 of all parameters and buffers: equal on every rank when DDP keeps them in sync.

    Costs a pass over every weight; the worker computes it only when
    ``train.log_param_digest`` asks (the DDP test does).
    """
    h = hashlib.sha1()
    for name, tensor in sorted(unwrap_model(model).state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def sync_buffers(model: torch.nn.Module) -> None:
    """Broadcast rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers at the start of each forward, so after the last training step every
    rank holds statistics updated by its own last batch; this makes validation and the
    checkpoint use one set.
    """
    if _distributed():
        for buf in unwrap_model(model).buffers():
            dist.broadcast(buf.data, src=0)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.all_reduce(tensor)
    return tensor
