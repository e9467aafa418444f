"""How a model runs on its device: the one place that decides mixed precision.

``precision: auto`` is bf16 autocast on CUDA and fp32 elsewhere; ``bf16`` asks for autocast
explicitly (on CUDA); ``fp32`` never autocasts. Training, evaluation and prediction all run
their forward passes under :func:`autocast`.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

Precision = Literal["auto", "fp32", "bf16"]


def uses_bf16(precision: str, device: torch.device) -> bool:
    """True when forward passes on ``device`` run under bf16 autocast."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    return device.type == "cuda" and precision in ("auto", "bf16")


def autocast(device: torch.device, precision: str = "auto"):
    """The autocast context of ``precision`` on ``device`` (a no-op context for fp32)."""
    if uses_bf16(precision, device):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
