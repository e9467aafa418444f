"""``raysf export``: every fusion type and Slow-only against eager PyTorch.

TorchScript traces every variant. ExportedProgram and ONNX (whose exporter is ``torch.export``
with an ATen-to-ONNX translation) run on the variants whose graphs hold different operators: the
reshapes of time-to-channel, the strided slices of time-strided sampling, the pooling, flow and
resized laterals of the half-resolution flow network, and Slow-only's unused Fast input. The
time-strided conv (with time differences) is one more strided conv3d, exported as an
ExportedProgram by the command test below, and no-lateral (gray) is a sub-graph of the others: two
ONNX exports more would cost CI half a minute for no new operator.

The exported model takes the normalised ``(slow, fast)`` pair; its logits must match the eager
network's within 1e-4 (fp32) on a batch of a size it was not traced with. ONNX runs through
onnxruntime (the ``onnx`` extra, installed by the project's set-up).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import slowfast_model
from jobs import export as export_job
from raysf.clip_spec import ClipSpec
from training.checkpoints import TrainingState, save_state
from training.inference.export import (
    FORMATS,
    example_inputs,
    export_checkpoint,
    export_model,
    load_exported,
)

SPEC = ClipSpec(slow_frames=4, tau=4, alpha=4, crop_size=32, num_val_clips=1, num_test_clips=2)
VARIANTS = {
    "time_to_channel": {"fusion": "time_to_channel"},
    "time_strided_sampling": {"fusion": "time_strided_sampling"},
    "time_strided_conv": {"fusion": "time_strided_conv", "fast_input": "time_diff"},
    "no_lateral": {"fusion": "none", "fast_input": "gray"},
    # both new Fast inputs in one network (one export each format: the CI's time): the Fast
    # frames pooled 2 x 2, their flow, laterals brought up to the Slow maps
    "flow_half_res": {"fast_input": "flow", "fast_spatial_scale": 0.5, "beta_inv": 4},
    "slow_only": None,
}


def _model(variant: str) -> torch.nn.Module:
    overrides = VARIANTS[variant]
    if overrides is None:
        return slowfast_model.create_model("slow_tiny", num_classes=5, slow_frames=4).eval()
    return slowfast_model.create_model(
        "slowfast_tiny", num_classes=5, slow_frames=4, alpha=4, **overrides
    ).eval()


def _eval_bn_stats(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics, so a dropped or reordered norm shows in the logits."""
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model


#: The variants ExportedProgram and ONNX run on (see the module docstring).
GRAPH_VARIANTS = ("time_to_channel", "time_strided_sampling", "flow_half_res", "slow_only")
CASES = [
    (variant, fmt)
    for fmt in FORMATS
    for variant in VARIANTS
    if fmt == "torchscript" or variant in GRAPH_VARIANTS
]


@pytest.mark.parametrize(("variant", "fmt"), CASES)
def test_exported_logits_match_eager(variant, fmt, tmp_path):
    torch.manual_seed(0)
    model = _eval_bn_stats(_model(variant))
    out = tmp_path / f"model-{variant}.{fmt}"
    result = export_model(model, SPEC, fmt, out, classes=list("abcde"), source="test")
    assert result.path == out and out.stat().st_size > 10_000
    assert result.max_abs_diff <= 1e-4

    run = load_exported(out, fmt)
    for batch, seed in ((1, 5), (4, 6)):  # neither is the traced batch of 2
        slow, fast = example_inputs(SPEC, batch=batch, seed=seed)
        with torch.no_grad():
            expected = model([slow, fast]).numpy()
        got = run(slow.numpy(), fast.numpy())
        assert got.shape == (batch, 5)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
        assert np.abs(expected).max() > 1e-3  # the logits are not all ~0

    meta = json.loads(result.metadata_path.read_text())
    assert result.metadata_path.name == out.name + ".json"
    assert meta["format"] == fmt and meta["classes"] == list("abcde")
    assert [i["name"] for i in meta["inputs"]] == ["slow", "fast"]
    assert meta["inputs"][1]["shape"] == ["batch", 3, 16, 32, 32]
    assert meta["output"]["shape"] == ["batch", 5]
    assert ClipSpec.from_dict(meta["clip_spec"]) == SPEC
    config = model.config
    assert (meta["fast_input"], meta["fast_spatial_scale"]) == (
        config.fast_input,
        config.fast_scale,
    )


def test_export_command_writes_the_checkpoints_model_and_spec(tmp_path, capsys):
    model = _model("time_strided_conv")
    state = TrainingState(
        model=model.state_dict(),
        model_config=model.config.to_dict(),
        clip_spec=SPEC,
        classes=["a", "b", "c", "d", "e"],
        job_config={"model": {"preset": "slowfast_tiny"}},
    )
    ckpt = tmp_path / "ckpt"
    save_state(state, ckpt)
    out = tmp_path / "served" / "model.pt2"
    code = export_job.main(
        [str(ckpt), "--format", "exported-program", "--out", str(out), "--log-dir", str(tmp_path)]
    )
    assert code == 0 and out.exists()
    printed = capsys.readouterr().out
    assert f"exported {ckpt} as exported-program: {out}" in printed
    meta = json.loads((tmp_path / "served" / "model.pt2.json").read_text())
    assert meta["source_checkpoint"] == str(ckpt) and meta["pathways"] == "slowfast"

    result = export_checkpoint(str(ckpt / "state.pt"), "torchscript", tmp_path / "m.pt")
    slow, fast = example_inputs(SPEC, batch=2, seed=9)
    with torch.no_grad():
        expected = model.eval()([slow, fast]).numpy()
    np.testing.assert_allclose(
        load_exported(result.path, "torchscript")(slow, fast), expected, atol=1e-4
    )


def test_unknown_format_is_an_error_naming_the_choices(tmp_path):
    with pytest.raises(ValueError, match="torchscript, exported-program, onnx"):
        export_model(_model("slow_only"), SPEC, "tensorrt", tmp_path / "m")
