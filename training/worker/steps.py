"""The math of one epoch on one worker: optimisation steps, validation, and what is summed
across ranks. No Ray here: the worker loop (:mod:`training.worker.loop`) feeds these functions with
batches and a device.

A step never waits on the host: the batch arrives through a :class:`~training.device.inputs.DeviceFeed`
(next batch copied while this one runs), the loss is summed on the device
(:class:`DeviceSums`), and nothing calls ``.item()``, ``.cpu()`` or ``float()`` on a device
value inside the loop; the sums are read once per epoch. Per-epoch sums travel between ranks as
typed records (:class:`EpochStats`, :class:`ValStats`) packed into one float64 tensor per
all-reduce, field by field in declaration order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.nn.functional as F

from raysf.clip_spec import ClipSpec
from training.checkpoints import unwrap_model
from training.device.inputs import Batch, DeviceFeed, DeviceInputs
from training.device.settings import DeviceSettings

S = TypeVar("S", bound="Summable")
# on_step(stats so far, the step's detached loss, seconds since the epoch's first step)
StepCallback = Callable[["EpochStats", torch.Tensor, float], None]


class Summable:
    """A dataclass of numbers that can be all-reduced (summed over ranks) in one tensor."""

    def all_reduce(self: S, device: torch.device) -> S:
        values = [float(getattr(self, f.name)) for f in dataclasses.fields(self)]
        tensor = _all_reduce(torch.tensor(values, dtype=torch.float64, device=device)).cpu()
        return type(self)(*(t.item() for t in tensor))


@dataclass
class EpochStats(Summable):
    """One worker's training epoch: summed loss, clips, steps and seconds (wall, data wait,
    and of that wait the first batch's: the start-up of the epoch's data pipeline)."""

    loss_sum: float = 0.0
    samples: float = 0.0
    steps: float = 0.0
    elapsed: float = 0.0
    wait: float = 0.0
    first_wait: float = 0.0

    def metrics(self, world: int) -> dict[str, float]:
        """Epoch metrics from stats summed over ``world`` ranks."""
        mean_elapsed = self.elapsed / world
        return {
            "train_loss": self.loss_sum / max(self.samples, 1.0),
            "clips_per_s": self.samples / max(mean_elapsed, 1e-9),
            "data_wait_frac": self.wait / max(self.elapsed, 1e-9),
            "first_batch_s": self.first_wait / world,
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


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> list[torch.Tensor]:
    """Number of samples whose label is among the top-k logits, for each k (k capped at C), as
    0-d tensors on the logits' device (read them with the epoch's sums, not one by one)."""
    maxk = min(max(ks), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices
    hits = top.eq(labels.view(-1, 1))
    return [hits[:, : min(k, maxk)].any(dim=1).sum() for k in ks]


class DeviceSums:
    """Named running sums kept on the device: adding never waits for the GPU, and
    :meth:`read` brings them all to the host in one copy, the one host sync of an epoch."""

    def __init__(self, names: tuple[str, ...], device: torch.device):
        self.names = names
        self.values = torch.zeros(len(names), dtype=torch.float64, device=device)
        self.reads = 0

    def add(self, **terms: torch.Tensor | float) -> None:
        """Add each term (a device tensor or a host number) to its sum, without a host sync."""
        for name, term in terms.items():
            self.values[self.names.index(name)] += term

    def read(self) -> dict[str, float]:
        """The sums on the host (waits for the device to finish what was queued)."""
        self.reads += 1
        return dict(zip(self.names, self.values.tolist(), strict=True))


@dataclass(frozen=True)
class StepSettings:
    """What a training step needs besides the model and the batch."""

    spec: ClipSpec
    device: torch.device
    settings: DeviceSettings
    label_smoothing: float = 0.0
    grad_clip_norm: float | None = None

    def feed(self, overlap: bool = True) -> DeviceFeed:
        """The feed of these settings: the spec's normalisation and Slow positions, the memory
        format, the next batch copied on a side stream on CUDA (unless ``overlap`` is off)."""
        inputs = DeviceInputs.for_spec(self.spec, self.device, self.settings.channels_last)
        return DeviceFeed(inputs, overlap=overlap)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    inputs: list[torch.Tensor],
    labels: torch.Tensor,
    step: StepSettings,
) -> torch.Tensor:
    """One optimisation step on inputs already on the device; returns the detached loss, unread
    (nothing here waits for the device)."""
    with step.settings.autocast():
        logits = model(list(inputs))  # a fresh list: PyTorchVideo's models write into theirs
    loss = F.cross_entropy(logits.float(), labels, label_smoothing=step.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if step.grad_clip_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), step.grad_clip_norm)
    optimizer.step()
    scheduler.step()
    return loss.detach()


def train_steps(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batches: Iterable[Batch],
    step: StepSettings,
    sums: DeviceSums,
    max_steps: int | None = None,
    on_step: StepCallback | None = None,
) -> EpochStats:
    """The steps of an epoch over fed batches; the loss is summed into ``sums`` on the device.

    Nothing here reads a device value: the returned stats hold the host-side counts (steps,
    clips, seconds waiting for a batch), ``loss_sum`` stays in ``sums``. ``on_step(stats so
    far, this step's loss tensor, seconds since the first step began)`` is called after every
    step; it must read the loss only rarely (the console's reporter does every few seconds).
    """
    stats = EpochStats()
    start = time.perf_counter()
    it = iter(batches)
    while max_steps is None or stats.steps < max_steps:
        t0 = time.perf_counter()
        try:
            inputs, labels = next(it)
        except StopIteration:
            break
        waited = time.perf_counter() - t0
        stats.wait += waited
        if not stats.steps:
            stats.first_wait = waited
        loss = train_step(model, optimizer, scheduler, inputs, labels, step)
        sums.add(loss_sum=loss * labels.shape[0])
        stats.samples += labels.shape[0]
        stats.steps += 1
        if on_step is not None:
            on_step(stats, loss, time.perf_counter() - start)
    return stats


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    batches: Iterable[Mapping[str, Any]],
    step: StepSettings,
    max_steps: int | None = None,
    feed: DeviceFeed | None = None,
    on_step: StepCallback | None = None,
) -> EpochStats:
    """One pass over the worker's uint8 host batches (at most ``max_steps`` steps), fed to the
    device by ``feed`` (default: ``step.feed()``); returns its sums, read once at the end.
    ``on_step`` is :func:`train_steps`'s (the console's progress)."""
    model.train()
    feed = feed or step.feed()
    sums = DeviceSums(("loss_sum",), step.device)
    start = time.perf_counter()
    stats = train_steps(
        model, optimizer, scheduler, feed(batches), step, sums, max_steps, on_step=on_step
    )
    stats.loss_sum = sums.read()["loss_sum"]  # the epoch's one host sync
    stats.elapsed = time.perf_counter() - start
    return stats


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    batches: Iterable[Mapping[str, Any]],
    step: StepSettings,
    num_classes: int,
    feed: DeviceFeed | None = None,
) -> tuple[ValStats, torch.Tensor]:
    """Clip-level sums and the confusion matrix over this worker's shard, summed across ranks
    (accumulated on the device, read once)."""
    model.eval()
    sums = DeviceSums(tuple(f.name for f in dataclasses.fields(ValStats)), step.device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=step.device)
    for inputs, labels in (feed or step.feed())(batches):
        with step.settings.autocast():
            logits = model(inputs).float()
        top1, top5 = topk_correct(logits, labels)
        loss_sum = F.cross_entropy(logits, labels, reduction="sum")
        sums.add(loss_sum=loss_sum, top1=top1, top5=top5, clips=labels.shape[0])
        confusion.scatter_add_(0, labels * num_classes + logits.argmax(1), torch.ones_like(labels))
    stats = ValStats(**sums.read())
    confusion = _all_reduce(confusion.view(num_classes, num_classes)).cpu()
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


def all_ranks_agree(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on every rank (a MIN all-reduce; ``flag`` alone when not
    distributed). Every rank must call it."""
    tensor = torch.tensor([int(flag)], dtype=torch.int32, device=device)
    if _distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return bool(tensor.item())
