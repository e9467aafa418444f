"""Shared helpers for the model tests: PyTorchVideo without torchvision."""

from __future__ import annotations

import sys
import types

import pytest
import torch


def install_torchvision_stub() -> None:
    """PyTorchVideo imports `torchvision.ops.RoIAlign` at import time for detection heads that
    classification never builds. There is no torchvision here: register a minimal stand-in
    (only if the real one is absent)."""
    if "torchvision" in sys.modules:
        return
    try:
        import torchvision  # noqa: F401

        return
    except ImportError:
        pass
    torchvision = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")

    class RoIAlign(torch.nn.Module):  # pragma: no cover - never instantiated
        def __init__(self, *args, **kwargs) -> None:
            raise RuntimeError("torchvision stub: RoIAlign is unavailable")

    ops.RoIAlign = RoIAlign
    torchvision.ops = ops
    sys.modules["torchvision"] = torchvision
    sys.modules["torchvision.ops"] = ops


def _randomize_bn_stats(model: torch.nn.Module, seed: int = 0) -> None:
    """Random BN affine params and running stats, so conversion errors show in the logits."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)


@pytest.fixture(scope="session")
def randomize_bn_stats():
    """``randomize_bn_stats(model, seed=0)``: random BN affine params and running stats."""
    return _randomize_bn_stats


@pytest.fixture(scope="session")
def create_slowfast():
    """PyTorchVideo's `create_slowfast`, importable without torchvision."""
    install_torchvision_stub()
    from pytorchvideo.models.slowfast import create_slowfast

    return create_slowfast
