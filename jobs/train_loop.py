"""The per-worker training function run by Ray Train's ``TorchTrainer``.

Each worker builds the model, wraps it with ``prepare_model`` (DDP over NCCL on GPU, gloo on CPU),
streams its shard of the training clips, validates on its shard of the validation clips (metrics
summed across ranks), and reports once per epoch. Rank 0 writes the checkpoint and logs to
MLflow. A restarted worker group resumes from the latest reported checkpoint, so finished epochs
are never repeated.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from dataclasses import asdict
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from jobs.checkpoints import TrainingState, load_state, save_state, unwrap_model
from jobs.config import TrainJobConfig
from jobs.schedule import lr_factor, scaled_lr


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


def param_digest(model: torch.nn.Module) -> str:
    """SHA-1 of all parameters and buffers: equal on every rank when DDP keeps them in sync."""
    import hashlib

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
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for buf in unwrap_model(model).buffers():
            dist.broadcast(buf.data, src=0)


def _all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


def _autocast(device: torch.device, precision: str):
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if use_bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _inputs(batch: dict[str, Any], job: TrainJobConfig, device: torch.device):
    from pipelines.transforms import to_model_inputs

    return to_model_inputs(
        batch, job.data.mean, job.data.std, device, channels_last=job.train.channels_last
    )


def train_one_epoch(model, optimizer, scheduler, batches, job, device, max_steps):
    """One pass over the worker's shard. Returns summed loss/sample counts and timings."""
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64)
    samples = 0
    steps = 0
    wait = 0.0
    start = time.perf_counter()
    it = iter(batches)
    while max_steps is None or steps < max_steps:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            break
        wait += time.perf_counter() - t0
        inputs = _inputs(batch, job, device)
        labels = torch.as_tensor(batch["label"]).to(device, non_blocking=True).long()
        with _autocast(device, job.train.precision):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=job.optim.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if job.optim.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), job.optim.grad_clip_norm)
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach().double().cpu() * labels.shape[0]
        samples += labels.shape[0]
        steps += 1
    elapsed = time.perf_counter() - start
    return {
        "loss_sum": float(loss_sum),
        "samples": samples,
        "steps": steps,
        "elapsed": elapsed,
        "wait": wait,
    }


@torch.no_grad()
def validate(model, batches, job, device, num_classes):
    """Clip-level loss, top-1/top-5 and confusion matrix, summed across ranks."""
    model.eval()
    stats = torch.zeros(4, dtype=torch.float64)  # loss_sum, top1, top5, n
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for batch in batches:
        inputs = _inputs(batch, job, device)
        labels = torch.as_tensor(batch["label"]).to(device).long()
        with _autocast(device, job.train.precision):
            logits = model(inputs).float()
        stats[0] += float(F.cross_entropy(logits, labels, reduction="sum"))
        top1, top5 = topk_correct(logits, labels)
        stats[1] += top1
        stats[2] += top5
        stats[3] += labels.shape[0]
        pred = logits.argmax(1).cpu()
        confusion.index_put_((labels.cpu(), pred), torch.ones_like(pred), accumulate=True)
    stats = _all_reduce(stats.to(device)).cpu()
    confusion = _all_reduce(confusion.to(device)).cpu()
    n = max(float(stats[3]), 1.0)
    return {
        "val_loss": float(stats[0]) / n,
        "val_top1": float(stats[1]) / n,
        "val_top5": float(stats[2]) / n,
        "val_clips": int(stats[3]),
    }, confusion


def train_func(loop_config: dict[str, Any]) -> None:
    """Entry point of every Ray Train worker (``train_loop_per_worker``)."""
    import ray.train
    import ray.train.torch

    import slowfast_model

    job: TrainJobConfig = loop_config["job"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(job.train.seed)

    model_cfg = slowfast_model.SlowFastConfig(**loop_config["model_config"])
    model = slowfast_model.build_model(model_cfg)
    init_state = loop_config.get("init_state")
    if init_state is not None:
        model.load_state_dict(init_state, strict=True)
    if job.train.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    model = ray.train.torch.prepare_model(model)

    global_batch = job.train.batch_size * world
    peak_lr = scaled_lr(job.optim.base_lr, global_batch, job.optim.reference_batch)
    optimizer = torch.optim.SGD(
        build_param_groups(model, job.optim.weight_decay, job.optim.bn_weight_decay),
        lr=peak_lr,
        momentum=job.optim.momentum,
        nesterov=job.optim.nesterov and job.optim.momentum > 0,
    )
    steps_per_epoch = max(1, int(loop_config["steps_per_epoch"]))

    def factor(step: int) -> float:
        return lr_factor(
            step / steps_per_epoch,
            epochs=job.train.epochs,
            warmup_epochs=job.optim.warmup_epochs,
            warmup_start_factor=job.optim.warmup_start_factor,
            min_factor=job.optim.min_lr_factor,
        )

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    start_epoch = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            state = load_state(ckpt_dir, map_location="cpu")
        unwrap_model(model).load_state_dict(state.model)
        if state.optimizer:
            optimizer.load_state_dict(state.optimizer)
        if state.scheduler:
            scheduler.load_state_dict(state.scheduler)
        start_epoch = state.epoch + 1
        print(f"[rank {rank}] resumed from checkpoint of epoch {state.epoch}", flush=True)

    train_model = torch.compile(model) if job.train.compile else model
    tracking_uri = loop_config.get("tracking_uri")
    run_id = loop_config.get("mlflow_run_id")
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")
    max_steps = job.train.max_steps_per_epoch
    num_classes = model_cfg.num_classes

    for epoch in range(start_epoch, job.train.epochs):
        batches = train_shard.iter_torch_batches(
            batch_size=job.train.batch_size,
            drop_last=True,
            local_shuffle_buffer_size=job.data.shuffle_buffer or None,
            local_shuffle_seed=job.train.seed + epoch * 1000 + rank,
        )
        lr_now = optimizer.param_groups[0]["lr"]
        tr = train_one_epoch(train_model, optimizer, scheduler, batches, job, device, max_steps)
        sums = _all_reduce(
            torch.tensor(
                [tr["loss_sum"], tr["samples"], tr["elapsed"], tr["wait"]],
                dtype=torch.float64,
                device=device,
            )
        ).cpu()
        sync_buffers(model)
        val_batches = val_shard.iter_torch_batches(batch_size=job.train.batch_size)
        val_metrics, confusion = validate(
            unwrap_model(model), val_batches, job, device, num_classes
        )
        mean_elapsed = float(sums[2]) / world
        metrics = {
            "epoch": epoch,
            "train_loss": float(sums[0]) / max(float(sums[1]), 1.0),
            "lr": lr_now,
            "clips_per_s": float(sums[1]) / max(mean_elapsed, 1e-9),
            "data_wait_frac": float(sums[3]) / max(float(sums[2]), 1e-9),
            "steps": tr["steps"],
            "world_size": world,
            "param_digest": param_digest(model),
            **val_metrics,
        }
        if rank == 0 and tracking_uri and run_id:
            from jobs.tracking import log_metrics

            log_metrics(
                tracking_uri, run_id, {k: v for k, v in metrics.items() if k != "epoch"}, step=epoch
            )
        last = epoch == job.train.epochs - 1
        want_ckpt = (epoch + 1) % job.checkpoint.every_n_epochs == 0 or last
        if want_ckpt and rank == 0:
            state = TrainingState(
                model={k: v.detach().cpu() for k, v in unwrap_model(model).state_dict().items()},
                model_config=asdict(model_cfg),
                preprocessing=loop_config["preprocessing"],
                classes=list(loop_config["classes"]),
                epoch=epoch,
                global_step=int(scheduler.last_epoch),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                job_config=loop_config["job_dict"],
                metrics={k: float(v) for k, v in metrics.items() if k != "param_digest"},
                confusion=confusion.tolist(),
            )
            with tempfile.TemporaryDirectory() as tmp:
                save_state(state, tmp)
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        else:
            ray.train.report(metrics)
        if rank == 0:
            print(
                f"epoch {epoch}: loss {metrics['train_loss']:.4f} val_top1 "
                f"{metrics['val_top1']:.3f} clips/s {metrics['clips_per_s']:.1f} "
                f"wait {metrics['data_wait_frac']:.2f}",
                flush=True,
            )
        if math.isnan(metrics["train_loss"]):
            raise FloatingPointError(f"training loss is NaN at epoch {epoch}")
