"""Table 5c's Fast inputs: half resolution (``fast_spatial_scale``) and optical flow, beside
RGB, gray and time difference: config rules, shapes and exact parameter counts at two presets,
the half-size laterals lined up with the Slow maps, FLOPs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import slowfast_model as sm
from slowfast_model.config import FAST_INPUTS, SlowFastConfig
from slowfast_model.fusion import to_slow_grid

#: Weights of a Fast stem's conv (5 x 7 x 7) per input channel and Fast stem channel.
STEM_WEIGHTS = 5 * 7 * 7
#: Parameters with an RGB Fast input; gray drops 2 stem input channels, flow 1.
RGB_PARAMS = {("slowfast_tiny", 8): 314_398, ("slowfast_4x16_r50", 8): 34_480_216,
              ("slowfast_4x16_r50", 4): 37_940_960}  # fmt: skip
DROPPED_STEM_CHANNELS = {"rgb": 0, "gray": 2, "time_diff": 0, "half_res": 0, "flow": 1}


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"fast_spatial_scale": 0.3}, "fast_spatial_scale=0.3: must be 1/k"),
        ({"fast_spatial_scale": 1.5}, r"fast_spatial_scale=1.5: must be None or a number in"),
        ({"fast_spatial_scale": "0.5"}, "fast_spatial_scale='0.5'"),
        ({"fast_spatial_scale": 0.0}, "fast_spatial_scale=0.0"),
        ({"fast_input": "half_res", "fast_spatial_scale": 0.25}, "fast_spatial_scale=0.25: fast_"),
        ({"fast_input": "flow", "in_channels": 1}, r"in_channels=1: fast_input='flow' needs RGB"),
        ({"fast_input": "flow", "alpha": 1, "slow_frames": 1}, "alpha=1: fast_input='flow'"),
        (
            {"pathways": "slow_only", "fusion": "none", "fast_spatial_scale": 0.5},
            "fast_spatial_scale=0.5: a slow_only model has no Fast pathway",
        ),
    ],
)
def test_invalid_fast_inputs_name_the_key(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=rf"SlowFastConfig\.{match}"):
        SlowFastConfig(**overrides)


def test_half_res_is_a_scale_of_one_half_and_travels_with_the_config() -> None:
    assert SlowFastConfig(fast_input="half_res").fast_scale == 0.5
    assert SlowFastConfig(fast_input="half_res", fast_spatial_scale=0.5).fast_downsample == 2
    assert SlowFastConfig(fast_spatial_scale=0.25).fast_downsample == 4
    assert SlowFastConfig(fast_input="flow").fast_scale == 1.0
    config = sm.get_config("slowfast_tiny", fast_input="flow", fast_spatial_scale=0.5)
    assert SlowFastConfig.from_dict(config.to_dict()) == config
    assert config.fast_in_channels == 2


@pytest.mark.parametrize("fast_input", FAST_INPUTS)
@pytest.mark.parametrize(("preset", "beta_inv"), [("slowfast_tiny", 8), ("slowfast_4x16_r50", 8)])
def test_parameter_counts_and_shapes_at_two_presets(preset, beta_inv, fast_input) -> None:
    config = sm.get_config(preset, fast_input=fast_input, beta_inv=beta_inv, num_classes=7)
    model = sm.build_model(config).eval()
    head_delta = (config.num_classes - sm.get_config(preset).num_classes) * (model.num_features + 1)
    expected = RGB_PARAMS[(preset, beta_inv)] + head_delta
    expected -= DROPPED_STEM_CHANNELS[fast_input] * STEM_WEIGHTS * config.fast_width
    assert model.num_params() == expected
    assert model.fast.stem.conv.in_channels == config.fast_in_channels
    inputs = sm.example_inputs(config, batch=1, crop=64)
    fast_in = model.fast_input(inputs[1])
    k = 2 if fast_input == "half_res" else 1
    assert fast_in.shape == (1, config.fast_in_channels, config.fast_frames, 64 // k, 64 // k)
    with torch.no_grad():
        slow, fast = model.forward_features(inputs)
        assert model.forward_head([slow, fast]).shape == (1, 7)
    assert slow.shape == (1, 32 * config.width, config.slow_frames, 2, 2)
    assert fast.shape == (1, 32 * config.width // beta_inv, config.fast_frames, 2 // k, 2 // k)


def test_the_paper_pairs_half_res_with_beta_one_quarter() -> None:
    half = sm.create_model("slowfast_4x16_r50_half_res")
    assert (half.config.fast_scale, half.config.beta_inv) == (0.5, 4)
    assert half.num_params() == RGB_PARAMS[("slowfast_4x16_r50", 4)]
    flow = sm.get_config("slowfast_4x16_r50_flow")
    assert flow.fast_in_channels == 2 and flow.beta_inv == 8


def test_half_res_is_two_by_two_average_pooling() -> None:
    model = sm.build_model(sm.get_config("slowfast_tiny", fast_input="half_res"))
    fast = torch.rand(2, 3, 4, 8, 6)
    expected = F.avg_pool2d(fast.transpose(1, 2).reshape(-1, 3, 8, 6), 2).reshape(2, 4, 3, 4, 3)
    torch.testing.assert_close(model.fast_input(fast), expected.transpose(1, 2))


def _lateral_and_slow_maps(model: sm.SlowFast, crop: int):
    """(raw lateral output, Slow map it joins) sizes per lateral, and the eval logits."""
    laterals, slows = [], []
    for lateral in model.laterals:
        lateral.register_forward_hook(lambda _m, _i, out: laterals.append(out))
    for module in (model.slow.stem, *model.slow.stages[:3]):
        module.register_forward_hook(lambda _m, _i, out: slows.append(out))
    with torch.no_grad():
        logits = model.eval()(sm.example_inputs(model.config, batch=2, crop=crop))
    return list(zip(laterals, slows, strict=True)), logits


@pytest.mark.parametrize("stem_pool", [True, False])
@pytest.mark.parametrize(
    "fusion", ["time_to_channel", "time_strided_sampling", "time_strided_conv"]
)
def test_half_res_laterals_line_up_with_the_slow_maps(fusion: str, stem_pool: bool) -> None:
    """64-pixel crops: every Fast map is exactly half the Slow one and the lateral repeats each
    cell 2 x 2; 48 pixels with the pool (res4: Slow 3 x 3, Fast 2 x 2): nearest cells."""
    config = sm.get_config(
        "slowfast_tiny", fast_input="half_res", beta_inv=4, fusion=fusion, stem_pool=stem_pool
    )
    for crop in (64, 48):
        pairs, logits = _lateral_and_slow_maps(sm.build_model(config), crop)
        assert logits.shape == (2, config.num_classes) and torch.isfinite(logits).all()
        for lateral, slow in pairs:
            joined = to_slow_grid(lateral, slow)
            assert joined.shape[0] == slow.shape[0] and joined.shape[2:] == slow.shape[2:]
            if crop == 64 or not stem_pool:
                assert lateral.shape[-2:] == (slow.shape[-2] // 2, slow.shape[-1] // 2)
                repeated = lateral.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
                assert torch.equal(joined, repeated)
        if crop == 48 and stem_pool:
            assert pairs[-1][0].shape[-2:] == (2, 2) and pairs[-1][1].shape[-2:] == (3, 3)


def test_full_size_laterals_are_left_alone() -> None:
    x, slow = torch.rand(1, 4, 2, 3, 3), torch.rand(1, 8, 2, 3, 3)
    assert to_slow_grid(x, slow) is x


def test_half_res_flops_with_beta_one_quarter_about_match_rgb_with_one_eighth() -> None:
    """Twice the channels (4x the multiply-adds) on a quarter of the pixels."""
    rgb, half, half8 = (
        sm.count_flops(sm.create_model("slowfast_tiny", **o), crop=64)
        for o in ({}, {"fast_input": "half_res", "beta_inv": 4}, {"fast_input": "half_res"})
    )
    assert 0.8 < half / rgb < 1.2, (half, rgb)
    assert half8 < 0.8 * rgb


@pytest.mark.parametrize(
    ("overrides", "base", "expected"),
    [
        ({"fast_input": "flow"}, "slowfast_tiny", "flow"),
        (
            {"fast_input": "flow", "pathways": "fast_only", "fusion": "none"},
            "slowfast_tiny",
            "flow",
        ),
        ({"fast_input": "half_res"}, "slowfast_tiny", "rgb"),  # the weights cannot tell
        ({"fast_input": "half_res", "beta_inv": 4}, "slowfast_4x16_r50_half_res", "half_res"),
    ],
)
def test_checkpoints_infer_the_fast_input(overrides: dict, base: str, expected: str) -> None:
    model = sm.create_model("slowfast_tiny", **overrides)
    source = "pyslowfast" if model.config.pathways == "slowfast" else "ours"
    state = model.state_dict()
    theirs = sm.export_state_dict(state, source) if source != "ours" else state
    config = sm.infer_config_from_state_dict(theirs, source, base=base)
    assert config.fast_input == expected and config.in_channels == 3
    rebuilt = sm.build_model(config)
    assert rebuilt.fast.stem.conv.weight.shape == model.fast.stem.conv.weight.shape
