"""Multiply-add counting (fvcore's convention) and dummy inputs built from a config.

fvcore counts one "flop" per multiply-add of conv / linear / matmul, plus `numel * 2` for an
affine batch norm in eval mode; pooling and element-wise ops are free. `count_flops` follows
the same rules with forward hooks, so it needs no tracing and works on any input size.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from slowfast_model.config import SlowFastConfig
from slowfast_model.layers import NonLocal


def example_inputs(
    config: SlowFastConfig,
    batch: int = 1,
    crop: int = 224,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> list[torch.Tensor]:
    """Random `[slow, fast]` inputs for `config`: slow (batch, C, T, crop, crop), fast
    (batch, C, alpha*T, crop, crop). Single-pathway models accept the pair too."""
    shape = (batch, config.in_channels)
    slow = torch.randn(*shape, config.slow_frames, crop, crop, dtype=dtype, device=device)
    fast = torch.randn(*shape, config.fast_frames, crop, crop, dtype=dtype, device=device)
    return [slow, fast]


def _conv_macs(module: nn.Conv3d, output: torch.Tensor) -> int:
    per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
    return output.numel() * per_output


@torch.no_grad()
def count_flops(
    model: nn.Module,
    inputs: list[torch.Tensor] | None = None,
    crop: int = 224,
    include_bn: bool = True,
) -> float:
    """GFLOPs (10^9 multiply-adds) per view of `model` on `inputs`.

    Args:
        model: any module built from Conv3d / Linear / BatchNorm3d / NonLocal (e.g. SlowFast).
        inputs: model inputs; default `example_inputs(model.config, batch=1, crop=crop)`.
        crop: spatial size of the default inputs.
        include_bn: count eval-mode affine BN as 2 flops per element (fvcore's default).

    The model is run once in eval mode (its mode is restored). Batch size divides the total.
    """
    if inputs is None:
        config = getattr(model, "config", None)
        if not isinstance(config, SlowFastConfig):
            raise ValueError("inputs: required when the model has no SlowFastConfig `config`")
        device = next(model.parameters()).device
        inputs = example_inputs(config, batch=1, crop=crop, device=device)
    total = 0

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv3d):
            total += _conv_macs(module, output)
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features
        elif isinstance(module, nn.BatchNorm3d) and include_bn:
            total += args[0].numel() * (2 if module.affine else 1)
        elif isinstance(module, NonLocal):
            total += module.macs(args[0].shape)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv3d, nn.Linear, nn.BatchNorm3d, NonLocal))
    ]
    was_training = model.training
    model.eval()
    try:
        model(inputs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total / inputs[0].shape[0] / 1e9
