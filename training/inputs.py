"""Device-side feeding: uint8 clip batches -> the normalised ``[slow, fast]`` tensors a model
takes.

The loader ships uint8 ``(B, T, H, W, 3)`` pathway arrays (4x smaller than float32 through the
object store and over PCIe); they are moved to the training device first and converted there:
``(x / 255 - mean) / std`` per RGB channel, laid out ``(B, 3, T, H, W)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from raysf.clip_spec import KINETICS_MEAN, KINETICS_STD, ClipSpec


def spec_inputs(
    batch: Mapping[str, Any], spec: ClipSpec, device: Any, channels_last: bool = False
) -> list[torch.Tensor]:
    """:func:`to_model_inputs` with the mean and std of ``spec``."""
    return to_model_inputs(batch, spec.mean, spec.std, device, channels_last=channels_last)


def to_model_inputs(
    batch: Mapping[str, Any],
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    device: Any = "cpu",
    channels_last: bool = False,
    keys: Sequence[str] = ("slow", "fast"),
) -> list[Any]:
    """uint8 ``(B, T, H, W, 3)`` pathway arrays -> normalised float ``(B, 3, T, H, W)`` tensors.

    The uint8 data is moved to ``device`` first and converted there:
    ``(x / 255 - mean) / std`` per RGB channel.

    Args:
        batch: dict with ``keys`` holding numpy arrays or torch tensors (uint8).
        mean, std: per-channel statistics on [0, 1] pixels (3 values each).
        device: torch device (or its name).
        channels_last: return tensors in ``torch.channels_last_3d`` memory format.
        keys: pathway entries, in model input order.

    Returns:
        ``[slow, fast]`` float32 tensors on ``device``.
    """
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise ValueError(f"mean and std need 3 values (std > 0), got {mean}, {std}")
    device = torch.device(device)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1, 1)
    scale_t, offset_t = 1.0 / (255.0 * std_t), mean_t / std_t  # (x/255 - m)/s = x*scale - off
    out = []
    for key in keys:
        if key not in batch:
            raise ValueError(f"batch has no {key!r} entry (keys: {sorted(batch)})")
        x = batch[key]
        x = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
        if x.dtype != torch.uint8 or x.ndim != 5 or x.shape[-1] != 3:
            raise ValueError(f"{key} must be uint8 (B, T, H, W, 3), got {x.dtype} {tuple(x.shape)}")
        x = x.to(device, non_blocking=True).permute(0, 4, 1, 2, 3).float()
        x = x * scale_t - offset_t
        fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
        x = x.contiguous(memory_format=fmt)
        out.append(x)
    return out
