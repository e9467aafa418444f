"""Checkpoint conversion: PyTorchVideo (executed), PySlowFast and mmaction2 (key layouts
from their published source), round trips, file loading and strict errors."""

from __future__ import annotations

import pytest
import torch

import slowfast_model as sm
from slowfast_model.checkpoints import detect_source, their_key

# ---------------------------------------------------------------------- PyTorchVideo


def test_full_r50_matches_pytorchvideo_defaults_and_converts_strictly(create_slowfast) -> None:
    torch.manual_seed(0)
    reference = create_slowfast()  # 8x8 R50 defaults: fusion kernel 7, 400 classes
    theirs = reference.state_dict()
    model = sm.create_model("slowfast_8x8_r50", num_classes=400)
    assert model.num_params() == sum(p.numel() for p in reference.parameters()) == 34_566_488
    inferred = sm.infer_config_from_state_dict(theirs, "pytorchvideo", base="slowfast_8x8_r50")
    assert inferred == model.config
    converted = sm.convert_state_dict(theirs, "pytorchvideo")
    assert set(converted) == set(model.state_dict())  # nothing left over, nothing missing
    sm.load_pretrained(model, theirs, source="pytorchvideo", strict=True)
    key = "slow.stages.3.blocks.2.conv_c.weight"
    assert torch.equal(model.state_dict()[key], theirs[their_key(key, "pytorchvideo", "slowfast")])
    assert torch.equal(sm.export_state_dict(model.state_dict(), "pytorchvideo")[
        "blocks.0.multipathway_fusion.conv_fast_to_slow.weight"
    ], theirs["blocks.0.multipathway_fusion.conv_fast_to_slow.weight"])  # fmt: skip


@pytest.mark.parametrize("kernel", [5, 7])
def test_pytorchvideo_logits_match(create_slowfast, randomize_bn_stats, kernel: int) -> None:
    """Reduced-width R50 (same structure), random weights and BN statistics, eval mode."""
    torch.manual_seed(kernel)
    reference = create_slowfast(
        model_depth=50,
        stem_dim_outs=(16, 2),
        slowfast_channel_reduction_ratio=(8,),
        slowfast_fusion_conv_kernel_size=(kernel, 1, 1),
        model_num_class=7,
        head_pool_kernel_sizes=((4, 2, 2), (16, 2, 2)),  # T=4, alpha=4, 64^2 crop
    )
    randomize_bn_stats(reference, seed=kernel)
    config = sm.infer_config_from_state_dict(
        reference.state_dict(), "pytorchvideo", base="slowfast_tiny"
    )
    assert (config.fusion_kernel, config.width, config.beta_inv, config.depth) == (
        kernel,
        16,
        8,
        50,
    )
    model = sm.build_model(config)
    sm.load_pretrained(model, reference.state_dict(), source="pytorchvideo")
    reference.eval(), model.eval()
    inputs = [torch.randn(2, 3, 4, 64, 64), torch.randn(2, 3, 16, 64, 64)]
    with torch.no_grad():
        expected = reference([t.clone() for t in inputs])
        got = model(inputs)
    assert (got - expected).abs().max().item() < 1e-4


def test_pytorchvideo_slow_only_layout_round_trip() -> None:
    model = sm.create_model("slow_tiny")
    exported = sm.export_state_dict(model.state_dict(), "pytorchvideo")
    assert "blocks.0.conv.weight" in exported and "blocks.5.proj.weight" in exported
    assert "blocks.3.res_blocks.0.branch2.conv_a.weight" in exported
    assert_round_trip(model, "pytorchvideo")


# ---------------------------------------------------------------------- PySlowFast / mmaction2


def assert_round_trip(model: sm.SlowFast, target: str) -> dict[str, torch.Tensor]:
    ours = model.state_dict()
    theirs = sm.export_state_dict(ours, target)
    back = sm.convert_state_dict(theirs, target, config=model.config)
    assert set(back) == set(ours)
    assert all(torch.equal(back[k], ours[k]) for k in ours)
    inferred = sm.infer_config_from_state_dict(theirs, target, base=model.config)
    assert inferred == model.config
    return theirs


# From facebookresearch/SlowFast video_model_builder.py / resnet_helper.py / stem_helper.py /
# head_helper.py (SLOWFAST_8x8_R50: alpha 4, beta_inv 8, FUSION_KERNEL_SZ 7).
PYSLOWFAST_8X8_R50 = {
    "s1.pathway0_stem.conv.weight": (64, 3, 1, 7, 7),
    "s1.pathway1_stem.conv.weight": (8, 3, 5, 7, 7),
    "s1.pathway0_stem.bn.running_mean": (64,),
    "s1_fuse.conv_f2s.weight": (16, 8, 7, 1, 1),
    "s1_fuse.bn.weight": (16,),
    "s2.pathway0_res0.branch1.weight": (256, 80, 1, 1, 1),
    "s2.pathway0_res0.branch1_bn.running_var": (256,),
    "s2.pathway0_res0.branch2.a.weight": (64, 80, 1, 1, 1),
    "s2.pathway0_res0.branch2.b.weight": (64, 64, 1, 3, 3),
    "s2.pathway0_res0.branch2.c_bn.weight": (256,),
    "s2.pathway1_res0.branch2.a.weight": (8, 8, 3, 1, 1),
    "s4.pathway0_res0.branch2.a.weight": (256, 640, 3, 1, 1),
    "s4_fuse.conv_f2s.weight": (256, 128, 7, 1, 1),
    "s5.pathway0_res2.branch2.c.weight": (2048, 512, 1, 1, 1),
    "head.projection.weight": (400, 2304),
}

# From open-mmlab/mmaction2 resnet3d_slowfast.py / resnet3d.py / heads/slowfast_head.py
# (slowfast_r50: lateral ConvModule without norm/act, fusion_kernel 5).
MMACTION2_SLOWFAST_R50 = {
    "backbone.slow_path.conv1.conv.weight": (64, 3, 1, 7, 7),
    "backbone.slow_path.conv1.bn.weight": (64,),
    "backbone.slow_path.conv1_lateral.conv.weight": (16, 8, 5, 1, 1),
    "backbone.slow_path.layer1.0.conv1.conv.weight": (64, 80, 1, 1, 1),
    "backbone.slow_path.layer1.0.downsample.conv.weight": (256, 80, 1, 1, 1),
    "backbone.slow_path.layer1.0.downsample.bn.running_mean": (256,),
    "backbone.slow_path.layer3.0.conv1.conv.weight": (256, 640, 3, 1, 1),
    "backbone.slow_path.layer3_lateral.conv.weight": (256, 128, 5, 1, 1),
    "backbone.fast_path.conv1.conv.weight": (8, 3, 5, 7, 7),
    "backbone.fast_path.layer1.0.conv1.conv.weight": (8, 8, 3, 1, 1),
    "backbone.fast_path.layer4.2.conv3.bn.weight": (256,),
    "cls_head.fc_cls.weight": (400, 2304),
}


@pytest.fixture(scope="module")
def r50_kernel7() -> sm.SlowFast:
    return sm.create_model("slowfast_8x8_r50", num_classes=400, fusion_kernel=7)


def test_pyslowfast_layout(r50_kernel7: sm.SlowFast) -> None:
    theirs = assert_round_trip(r50_kernel7, "pyslowfast")
    for key, shape in PYSLOWFAST_8X8_R50.items():
        assert tuple(theirs[key].shape) == shape, key
    assert not any("pathway0_pool" in k for k in theirs)  # parameter-free in PySlowFast too


def test_mmaction2_layout() -> None:
    model = sm.create_model(
        "slowfast_8x8_r50", num_classes=400, fusion_kernel=5, lateral_norm=False
    )
    theirs = assert_round_trip(model, "mmaction2")
    for key, shape in MMACTION2_SLOWFAST_R50.items():
        assert tuple(theirs[key].shape) == shape, key
    assert not any("lateral.bn" in k for k in theirs)


def test_mmaction2_cannot_hold_lateral_bn(r50_kernel7: sm.SlowFast) -> None:
    with pytest.raises(ValueError, match=r"laterals\.0\.bn\.weight"):
        sm.export_state_dict(r50_kernel7.state_dict(), "mmaction2")


def test_pyslowfast_nonlocal_round_trip() -> None:
    model = sm.create_model("slowfast_tiny", depth=101, nonlocal_res4=True, res4_temporal_blocks=6)
    theirs = assert_round_trip(model, "pyslowfast")
    assert tuple(theirs["s4.pathway0_nonlocal6.conv_theta.weight"].shape) == (64, 128, 1, 1, 1)
    assert "s4.pathway0_nonlocal20.bn.running_var" in theirs
    assert tuple(theirs["s4.pathway0_res6.branch2.a.weight"].shape)[2] == 1  # 50_50 variant
    assert tuple(theirs["s4.pathway0_res5.branch2.a.weight"].shape)[2] == 3


@pytest.mark.parametrize("target", ["pyslowfast", "mmaction2", "pytorchvideo"])
@pytest.mark.parametrize(
    "overrides",
    [
        {"fusion": "time_to_channel", "alpha": 2},
        {"fusion": "time_strided_sampling"},
        {"pathways": "fast_only", "fusion": "none", "fast_input": "gray"},
        {"fusion": "time_strided_conv", "lateral_norm": False},
    ],
)
def test_round_trips_of_variants(target: str, overrides: dict) -> None:
    assert_round_trip(sm.create_model("slowfast_tiny", **overrides), target)


# ---------------------------------------------------------------------- files and loading


def test_load_checkpoint_file_unwraps_and_detects(tmp_path, r50_kernel7) -> None:
    ours = r50_kernel7.state_dict()
    pyslowfast = tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save({"model_state": sm.export_state_dict(ours, "pyslowfast"), "epoch": 196}, pyslowfast)
    mm = tmp_path / "slowfast_r50.pth"
    model = sm.create_model("slowfast_tiny", lateral_norm=False)
    torch.save({"state_dict": sm.export_state_dict(model.state_dict(), "mmaction2"),
                "meta": {"epoch": 3}}, mm)  # fmt: skip
    loaded = sm.load_checkpoint_file(pyslowfast)
    assert detect_source(sm.export_state_dict(ours, "pyslowfast")) == "pyslowfast"
    assert set(loaded) == set(ours) and all(torch.equal(loaded[k], ours[k]) for k in ours)
    loaded_mm = sm.load_checkpoint_file(mm, source="mmaction2")
    fresh = sm.create_model("slowfast_tiny", lateral_norm=False)
    sm.load_pretrained(fresh, loaded_mm, source="ours")
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="expected a .pyth"):
        sm.load_checkpoint_file(tmp_path / "weights.bin")
    ddp = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, ddp)
    fresh2 = sm.create_model("slowfast_tiny", lateral_norm=False)
    sm.load_pretrained(fresh2, str(ddp))
    assert torch.equal(fresh2.head.weight, model.head.weight)


def test_load_pretrained_is_strict_and_lists_keys() -> None:
    source = sm.create_model("slowfast_tiny")
    state = source.state_dict()
    missing = dict(state)
    del missing["slow.stages.1.blocks.0.bn_b.running_mean"]
    with pytest.raises(ValueError, match=r"missing keys \['slow\.stages\.1\.blocks\.0\.bn_b"):
        sm.load_pretrained(sm.create_model("slowfast_tiny"), missing)
    extra = dict(state, **{"bogus.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"unexpected keys \['bogus\.weight'\]"):
        sm.load_pretrained(sm.create_model("slowfast_tiny"), extra)
    target = sm.create_model("slowfast_tiny", num_classes=3)
    with pytest.raises(ValueError, match="shape mismatches"):
        sm.load_pretrained(target, state)
    head_before = target.head.weight.clone()
    left = sm.load_pretrained(target, state, skip_head=True)
    assert left == ["head.weight", "head.bias"]
    assert torch.equal(target.head.weight, head_before)
    assert torch.equal(target.slow.stem.conv.weight, source.slow.stem.conv.weight)


def test_build_from_checkpoint_infers_architecture() -> None:
    model = sm.create_model("slowfast_tiny", fusion_kernel=3, num_classes=6)
    theirs = sm.export_state_dict(model.state_dict(), "pyslowfast")
    rebuilt = sm.build_from_checkpoint({"model_state": theirs}, "pyslowfast", base="slowfast_tiny")
    assert rebuilt.config.fusion_kernel == 3 and rebuilt.config.num_classes == 6
