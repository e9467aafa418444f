"""Forward/backward over every fusion x pathway x fast_input, and the (alpha, beta, T) grid."""

from __future__ import annotations

import itertools

import pytest
import torch

import slowfast_model as sm
from slowfast_model.config import FAST_INPUTS, FUSIONS, PATHWAYS

CROP = 32


def tiny(**overrides) -> sm.SlowFastConfig:
    base = {"depth": 18, "width": 16, "beta_inv": 8, "slow_frames": 2, "alpha": 2,
            "num_classes": 5, "dropout": 0.0, "zero_init_residual": False}  # fmt: skip
    base.update(overrides)
    return sm.SlowFastConfig(**base)


def check_forward_backward(config: sm.SlowFastConfig, batch: int = 2) -> None:
    torch.manual_seed(0)
    model = sm.build_model(config)
    inputs = sm.example_inputs(config, batch=batch, crop=CROP)
    logits = model(inputs)
    assert logits.shape == (batch, config.num_classes)
    assert torch.isfinite(logits).all()
    logits.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


VALID = [
    (fusion, pathways, fast_input)
    for fusion, pathways, fast_input in itertools.product(FUSIONS, PATHWAYS, FAST_INPUTS)
    if (pathways == "slowfast" or fusion == "none")
    and not (pathways == "slow_only" and fast_input != "rgb")
]
INVALID = [c for c in itertools.product(FUSIONS, PATHWAYS, FAST_INPUTS) if c not in VALID]


@pytest.mark.parametrize(("fusion", "pathways", "fast_input"), VALID)
def test_every_valid_combination_trains(fusion: str, pathways: str, fast_input: str) -> None:
    check_forward_backward(
        tiny(fusion=fusion, pathways=pathways, fast_input=fast_input, alpha=4, slow_frames=4)
    )


@pytest.mark.parametrize(("fusion", "pathways", "fast_input"), INVALID)
def test_every_invalid_combination_names_a_field(fusion, pathways, fast_input) -> None:
    with pytest.raises(ValueError, match=r"SlowFastConfig\.(fusion|fast_input)="):
        tiny(fusion=fusion, pathways=pathways, fast_input=fast_input)


# L9 orthogonal array: every pair of (alpha, beta_inv, T) levels appears once per fusion.
LEVELS_ALPHA, LEVELS_BETA_INV, LEVELS_T = (2, 4, 8), (4, 8, 16), (2, 4, 8)
GRID = [
    (LEVELS_ALPHA[i], LEVELS_BETA_INV[j], LEVELS_T[(i + j) % 3]) for i in range(3) for j in range(3)
]


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize(("alpha", "beta_inv", "slow_frames"), GRID)
def test_alpha_beta_t_grid(fusion: str, alpha: int, beta_inv: int, slow_frames: int) -> None:
    config = tiny(fusion=fusion, alpha=alpha, beta_inv=beta_inv, slow_frames=slow_frames)
    model = sm.build_model(config)
    slow, fast = sm.example_inputs(config, batch=1, crop=CROP)
    features = model.forward_features([slow, fast])
    # No temporal downsampling in either pathway; spatial stride 32.
    assert features[0].shape == (1, 32 * 16, slow_frames, 1, 1)
    assert features[1].shape == (1, 32 * 16 // beta_inv, alpha * slow_frames, 1, 1)
    pre = model.forward_head(features, pre_logits=True)
    assert pre.shape == (1, model.num_features)
    assert model.forward_head(features).shape == (1, 5)


def test_grid_gradients_at_extremes() -> None:
    check_forward_backward(tiny(fusion="time_to_channel", alpha=8, beta_inv=16, slow_frames=8))
    check_forward_backward(tiny(fusion="time_strided_conv", alpha=2, beta_inv=4, slow_frames=2))
    # beta_inv not dividing the width: every Fast layer rounded down (16 // 6 = 2, 64 // 6 = 10)
    config = tiny(fusion="time_to_channel", alpha=4, beta_inv=6, slow_frames=2)
    check_forward_backward(config)
    model = sm.build_model(config)
    _, fast = model.forward_features(sm.example_inputs(config, batch=1, crop=CROP))
    assert fast.shape[1] == 16 * 32 // 6


def test_forward_does_not_mutate_inputs() -> None:
    model = sm.build_model(tiny(fusion="time_strided_conv", fast_input="time_diff"))
    inputs = sm.example_inputs(model.config, batch=1, crop=CROP)
    snapshot = [t.clone() for t in inputs]
    ids = [id(t) for t in inputs]
    model(inputs)
    assert [id(t) for t in inputs] == ids and len(inputs) == 2
    assert all(torch.equal(a, b) for a, b in zip(inputs, snapshot, strict=True))


def test_single_pathway_models_accept_own_tensor_or_pair() -> None:
    for pathways in ("slow_only", "fast_only"):
        model = sm.build_model(tiny(pathways=pathways, fusion="none")).eval()
        slow, fast = sm.example_inputs(model.config, batch=1, crop=CROP)
        own = slow if pathways == "slow_only" else fast
        torch.testing.assert_close(model([own]), model([slow, fast]))


def test_slow_only_is_full_width_without_laterals() -> None:
    slow_only = sm.build_model(tiny(pathways="slow_only", fusion="none"))
    assert slow_only.fast is None and len(slow_only.laterals) == 0
    assert slow_only.slow.stem.conv.out_channels == 16
    assert slow_only.slow.stages[0].blocks[0].conv_a.in_channels == 16
    fast_only = sm.build_model(tiny(pathways="fast_only", fusion="none"))
    assert fast_only.slow is None and fast_only.fast.stem.conv.out_channels == 2


def test_fast_input_weakening_is_inside_the_model() -> None:
    gray = sm.build_model(tiny(fast_input="gray"))
    assert gray.fast.stem.conv.in_channels == 1
    fast = torch.rand(1, 3, 4, 8, 8)
    luma = gray.fast_input(fast)
    expected = 0.299 * fast[:, 0] + 0.587 * fast[:, 1] + 0.114 * fast[:, 2]
    torch.testing.assert_close(luma[:, 0], expected)
    diff = sm.build_model(tiny(fast_input="time_diff")).fast_input(fast)
    assert diff.shape == fast.shape
    assert torch.equal(diff[:, :, 0], torch.zeros_like(diff[:, :, 0]))
    torch.testing.assert_close(diff[:, :, 2], fast[:, :, 2] - fast[:, :, 1])


def test_fusion_transforms_shapes_and_values() -> None:
    from slowfast_model.fusion import TimeStridedConv, TimeStridedSampling, TimeToChannel

    x = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(1, 2, 8, 1, 3)  # (B, C, aT, H, W)
    t2c = TimeToChannel(alpha=4)(x)
    assert t2c.shape == (1, 8, 2, 1, 3)
    # channel c*alpha + k of slow step t is fast frame t*alpha + k of channel c
    torch.testing.assert_close(t2c[0, 1 * 4 + 3, 1], x[0, 1, 7])
    sampled = TimeStridedSampling(alpha=4)(x)
    torch.testing.assert_close(sampled, x[:, :, ::4])
    conv = TimeStridedConv(2, alpha=4, kernel=5)
    assert conv(x).shape == (1, 4, 2, 1, 3)


def test_mismatched_fast_frames_raise() -> None:
    model = sm.build_model(tiny(fusion="time_to_channel", alpha=4, slow_frames=2))
    slow, fast = sm.example_inputs(model.config, batch=1, crop=CROP)
    with pytest.raises(ValueError, match="alpha=4"):
        model([slow, fast[:, :, :6]])
    with pytest.raises(ValueError, match="inputs"):
        model([slow])


def test_zero_init_residual_zeroes_last_bn() -> None:
    model = sm.build_model(tiny(zero_init_residual=True))
    for block in model.slow.stages[0].blocks:
        assert torch.count_nonzero(block.bn_c.weight) == 0
        assert torch.count_nonzero(block.bn_a.weight) > 0


def test_channels_last_3d_and_bf16_autocast() -> None:
    model = sm.build_model(tiny()).eval()
    inputs = sm.example_inputs(model.config, batch=2, crop=CROP)
    reference = model(inputs)
    model_cl = model.to(memory_format=torch.channels_last_3d)
    inputs_cl = [t.to(memory_format=torch.channels_last_3d) for t in inputs]
    torch.testing.assert_close(model_cl(inputs_cl), reference, atol=1e-4, rtol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model_cl(inputs_cl)
    assert low.dtype == torch.bfloat16 and low.shape == reference.shape


@pytest.mark.slow
def test_torch_compile_tiny_preset() -> None:
    model = sm.create_model("slowfast_tiny", dropout=0.0).eval()
    inputs = sm.example_inputs(model.config, batch=1, crop=32)
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(inputs), model(inputs), atol=1e-4, rtol=1e-4)


def test_nonlocal_model_runs() -> None:
    config = tiny(depth=50, nonlocal_res4=True)
    model = sm.build_model(config)
    assert sorted(model.slow.stages[2].nonlocal_blocks) == ["1", "3", "5"]
    check_forward_backward(config)


@pytest.mark.parametrize("pathways", ["slowfast", "slow_only", "fast_only"])
def test_without_the_stem_pool_res2_keeps_twice_the_resolution(pathways) -> None:
    """``stem_pool=False``: the same weights (a checkpoint loads either way), res2 and every
    stage after it at twice the height and width, the laterals still aligned, 4x the stages'
    multiply-adds."""
    fusion = "time_strided_conv" if pathways == "slowfast" else "none"
    pooled, unpooled = (
        sm.build_model(tiny(pathways=pathways, fusion=fusion, stem_pool=pool))
        for pool in (True, False)
    )
    assert pooled.state_dict().keys() == unpooled.state_dict().keys()
    unpooled.load_state_dict(pooled.state_dict())
    sizes = {}
    for name, model in (("pooled", pooled), ("unpooled", unpooled)):
        pathway = model.slow or model.fast
        pathway.stages[0].register_forward_hook(
            lambda _m, _i, out, name=name: sizes.__setitem__(name, out.shape[-2:])
        )
        model.eval()(sm.example_inputs(model.config, batch=1, crop=CROP))
    assert tuple(sizes["pooled"]) == (CROP // 4, CROP // 4)
    assert tuple(sizes["unpooled"]) == (CROP // 2, CROP // 2)
    ratio = sm.count_flops(unpooled, crop=CROP) / sm.count_flops(pooled, crop=CROP)
    # the stages cost 4x, the stem conv the same (the larger share of a 2-channel Fast-only net)
    assert (1.3 if pathways == "fast_only" else 2.5) < ratio < 4.0, ratio
    check_forward_backward(tiny(pathways=pathways, fusion=fusion, stem_pool=False))


def test_stem_pool_is_validated_and_travels_with_the_config() -> None:
    with pytest.raises(ValueError, match="stem_pool"):
        tiny(stem_pool="no")
    config = tiny(stem_pool=False)
    assert sm.SlowFastConfig.from_dict(config.to_dict()).stem_pool is False
    assert sm.SlowFastConfig.from_dict(
        {k: v for k, v in tiny().to_dict().items() if k != "stem_pool"}
    ).stem_pool
