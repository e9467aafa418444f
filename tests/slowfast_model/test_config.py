"""Config validation, presets and exact parameter counts."""

from __future__ import annotations

import dataclasses

import pytest

import slowfast_model as sm
from slowfast_model.config import SlowFastConfig, StageSpec


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"depth": 34}, "depth"),
        ({"alpha": 0}, "alpha"),
        ({"beta_inv": 128}, "beta_inv"),  # width 64 // 128 = 0 Fast channels
        ({"slow_frames": 0}, "slow_frames"),
        ({"fusion": "sum"}, "fusion"),
        ({"fusion_kernel": 4}, "fusion_kernel"),
        ({"pathways": "both"}, "pathways"),
        ({"fast_input": "tvl1_flow"}, "fast_input"),
        ({"width": 0}, "width"),
        ({"num_classes": 0}, "num_classes"),
        ({"dropout": 1.0}, "dropout"),
        ({"pathways": "slow_only", "fusion": "time_strided_conv"}, "fusion"),
        ({"pathways": "fast_only", "fusion": "time_to_channel"}, "fusion"),
        ({"pathways": "slow_only", "fusion": "none", "fast_input": "gray"}, "fast_input"),
        ({"pathways": "fast_only", "fusion": "none", "nonlocal_res4": True}, "nonlocal_res4"),
        ({"res4_temporal_blocks": 7}, "res4_temporal_blocks"),
        ({"nonlocal_res4": 1}, "nonlocal_res4"),
        ({"alpha": 2.5}, "alpha"),
    ],
)
def test_invalid_values_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"SlowFastConfig\.{field}="):
        SlowFastConfig(**overrides)


def test_unknown_override_is_rejected() -> None:
    with pytest.raises(ValueError, match="no field"):
        sm.get_config("slowfast_8x8_r50", fusion_kernal=5)
    with pytest.raises(ValueError, match="unknown"):
        sm.create_model("slowfast_9x9_r50")


def test_config_is_frozen_and_round_trips_as_dict() -> None:
    config = sm.get_config("slowfast_16x8_r101_nl")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.alpha = 2  # type: ignore[misc]
    assert SlowFastConfig.from_dict(config.to_dict()) == config
    assert config.beta == pytest.approx(1 / 8)
    assert config.fast_frames == 64


def test_stage_specs_follow_table_1() -> None:
    config = sm.get_config("slowfast_8x8_r50")
    slow, fast = config.stage_specs("slow"), config.stage_specs("fast")
    assert all(isinstance(s, StageSpec) for s in slow + fast)
    assert [s.num_blocks for s in slow] == [3, 4, 6, 3]
    assert [s.temporal_kernel for s in slow] == [1, 1, 3, 3]  # temporal only in res4, res5
    assert [s.temporal_kernel for s in fast] == [3, 3, 3, 3]
    assert [s.out for s in slow] == [256, 512, 1024, 2048]
    assert [s.out for s in fast] == [32, 64, 128, 256]
    assert [s.spatial_stride for s in slow] == [1, 2, 2, 2]
    r101 = sm.get_config("slowfast_16x8_r101_nl").stage_specs("slow")[2]
    assert r101.nonlocal_after == (6, 13, 20) and r101.temporal_blocks == 6


def test_beta_not_dividing_width_rounds_every_fast_layer_down_as_pyslowfast() -> None:
    # PySlowFast's SlowFast builds each Fast layer as width_per_group * k // BETA_INV: at
    # beta = 1/6 (Table 5b) the stem has 64 // 6 = 10 channels and res2 outputs 256 // 6 = 42.
    config = sm.get_config("slowfast_8x8_r50", beta_inv=6)
    fast = config.stage_specs("fast")
    assert config.fast_width == 10
    assert [s.inner for s in fast] == [10, 21, 42, 85]
    assert [s.out for s in fast] == [42, 85, 170, 341]
    tiny32 = sm.get_config("slowfast_tiny", width=32, beta_inv=32)
    assert tiny32.fast_width == 1 and [s.out for s in tiny32.stage_specs("fast")] == [4, 8, 16, 32]


def test_presets_listed_and_expose_sampling() -> None:
    names = sm.list_models()
    for required in [
        "slowfast_4x16_r50", "slowfast_8x8_r50", "slowfast_8x8_r101", "slowfast_16x8_r101",
        "slowfast_16x8_r101_nl", "slow_8x8_r50", "fast_only_r50", "slowfast_tiny", "slow_tiny",
    ]:  # fmt: skip
        assert required in names
    s = sm.sampling("slowfast_4x16_r50")
    assert (s.slow_frames, s.tau, s.alpha, s.fast_frames, s.clip_span) == (4, 16, 8, 32, 64)
    tiny = sm.get_config("slowfast_tiny")
    assert (tiny.slow_frames, tiny.alpha) == (4, 4)
    assert sm.sampling(tiny) == sm.Sampling(4, tiny.default_tau, 4)


def test_exact_parameter_counts_match_pytorchvideo_defaults() -> None:
    """pytorchvideo's create_slowfast() defaults: 8x8 R50, fusion kernel 7, 400 classes."""
    assert sm.create_model("slowfast_8x8_r50", num_classes=400, fusion_kernel=7).num_params() == (
        34_566_488
    )
    assert sm.create_model("slowfast_8x8_r50", num_classes=400, fusion_kernel=5).num_params() == (
        34_480_216
    )


@pytest.mark.parametrize("name", ["slowfast_tiny", "slow_tiny"])
def test_tiny_presets_are_small(name: str) -> None:
    model = sm.create_model(name)
    assert model.num_params() < 330_000
    assert model.config.depth == 18 and model.config.width == 8
