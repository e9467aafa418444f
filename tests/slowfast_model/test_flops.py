"""FLOP counting agrees with fvcore (multiply-adds, eval-mode BN counted)."""

from __future__ import annotations

import pytest
import torch
from fvcore.nn import FlopCountAnalysis

import slowfast_model as sm


def fvcore_gflops(model: torch.nn.Module, inputs: list[torch.Tensor]) -> float:
    analysis = FlopCountAnalysis(model.eval(), (inputs,))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return analysis.total() / inputs[0].shape[0] / 1e9


@pytest.mark.slow
def test_8x8_r50_matches_fvcore_on_pytorchvideo(create_slowfast) -> None:
    inputs = sm.example_inputs(sm.get_config("slowfast_8x8_r50"), batch=1, crop=224)
    ours = sm.count_flops(sm.create_model("slowfast_8x8_r50"), inputs)
    theirs = fvcore_gflops(create_slowfast(), inputs)
    assert ours == pytest.approx(theirs, rel=0.01)
    assert ours == pytest.approx(50.58, abs=0.05)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"fusion": "time_to_channel"},
        {"depth": 50, "nonlocal_res4": True},
        {"pathways": "slow_only", "fusion": "none"},
    ],
)
def test_tiny_variants_match_fvcore_on_our_model(overrides: dict) -> None:
    model = sm.create_model("slowfast_tiny", **overrides)
    inputs = sm.example_inputs(model.config, batch=2, crop=64)
    assert sm.count_flops(model, inputs) == pytest.approx(fvcore_gflops(model, inputs), rel=0.01)


def test_count_flops_defaults_and_restores_mode() -> None:
    model = sm.create_model("slowfast_tiny").train()
    small, large = sm.count_flops(model, crop=64), sm.count_flops(model, crop=128)
    assert model.training
    assert large == pytest.approx(4 * small, rel=0.05)  # ~quadratic in crop
    assert sm.count_flops(model, crop=64, include_bn=False) < small
    with pytest.raises(ValueError, match="inputs"):
        sm.count_flops(torch.nn.Linear(2, 2))


@pytest.mark.parametrize(
    "fusion", ["time_to_channel", "time_strided_sampling", "time_strided_conv"]
)
def test_a_larger_alpha_costs_more_for_every_fusion(fusion: str) -> None:
    """More Fast frames, more computation: what a sweep's GFLOPs column shows for alpha 2 vs 4."""
    cost = {
        a: sm.count_flops(sm.create_model("slowfast_tiny", alpha=a, fusion=fusion), crop=32)
        for a in (2, 4)
    }
    assert cost[4] > cost[2] > 0
