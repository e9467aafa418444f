"""Device-side feeding: uint8 batches to normalised pathway tensors, the Slow frames taken on
the device from the Fast ones, and the feed that brings them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines import sampling
from pipelines.decode.frame_table import read_frame_table
from pipelines.decode.frames import decode_clip
from pipelines.synth.generate import generate
from raysf.clip_spec import ClipSpec
from training.device.inputs import (
    CLIP_STD_FLOOR,
    DeviceFeed,
    DeviceInputs,
    standardise_clips,
    to_model_inputs,
)

CUDA = torch.cuda.is_available()


POSITIONS = [0, 4, 8, 12]  # the stride rule's, T=4, alpha=4


def _batch(rng, b=2, t=4, alpha=4, side=8):
    return {
        "fast": rng.integers(0, 256, size=(b, alpha * t, side, side, 3), dtype=np.uint8),
        "label": np.arange(b, dtype=np.int64),
    }


def test_to_model_inputs_layout_and_values():
    batch = _batch(np.random.default_rng(0))
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.25, 0.5)
    slow, fast = to_model_inputs(batch, mean, std, "cpu", slow_positions=POSITIONS)
    assert slow.shape == (2, 3, 4, 8, 8) and fast.shape == (2, 3, 16, 8, 8)
    assert slow.dtype == torch.float32 and fast.is_contiguous()
    for c in range(3):
        expected = (batch["fast"][..., c].astype(np.float64) / 255 - mean[c]) / std[c]
        np.testing.assert_allclose(fast[:, c].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(slow, fast[:, :, POSITIONS])
    cl = to_model_inputs(
        {k: torch.from_numpy(v) for k, v in batch.items()},
        mean,
        std,
        channels_last=True,
        slow_positions=POSITIONS,
    )
    assert cl[1].is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(cl[0], slow)
    with pytest.raises(ValueError, match="uint8"):
        to_model_inputs({"fast": batch["fast"].astype(np.float32)}, slow_positions=POSITIONS)


def test_a_fast_only_batch_gets_its_slow_frames_by_the_spec_positions():
    batch = _batch(np.random.default_rng(1), t=4, alpha=4)
    for rule in ("stride", "linspace"):
        spec = ClipSpec(slow_frames=4, tau=8, alpha=4, rule=rule, num_val_clips=1, num_test_clips=1)
        feed = DeviceInputs.for_spec(spec, "cpu")
        slow_u8, fast_u8 = feed.uint8_pathways({"fast": batch["fast"]})
        positions = sampling.slow_positions(4, 4, rule)
        assert torch.equal(slow_u8, torch.from_numpy(batch["fast"][:, positions]))
        assert torch.equal(fast_u8, torch.from_numpy(batch["fast"]))
        # normalised: the Slow frames are the normalised Fast ones at the positions
        slow, fast = feed.inputs({"fast": batch["fast"]})
        assert torch.equal(slow, fast[:, :, positions])


def _clip_spec(**changes):
    spec = ClipSpec(slow_frames=4, tau=8, alpha=4, num_val_clips=1, num_test_clips=1, crop_size=8)
    return spec.replace(**changes)


def test_per_clip_normalisation_is_each_clips_own_mean_and_std_on_0_1_pixels():
    batch = _batch(np.random.default_rng(3), b=3)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.25, 0.5)  # the fixed step cancels out
    spec = _clip_spec(normalise="clip", mean=mean, std=std)
    for channels_last in (False, True):
        slow, fast = DeviceInputs.for_spec(spec, "cpu", channels_last).inputs(batch)
        x = batch["fast"].astype(np.float64) / 255  # (B, T, H, W, C)
        m = x.mean(axis=(1, 2, 3), keepdims=True)
        s = x.std(axis=(1, 2, 3), keepdims=True)
        expected = np.moveaxis((x - m) / (s + CLIP_STD_FLOOR), -1, 1)
        np.testing.assert_allclose(fast.numpy(), expected, rtol=1e-4, atol=1e-4)
        assert torch.equal(slow, fast[:, :, POSITIONS])  # the Slow frames share the statistics
        if channels_last:
            assert fast.is_contiguous(memory_format=torch.channels_last_3d)
            assert slow.is_contiguous(memory_format=torch.channels_last_3d)
    # without it (the default) nothing changes
    assert ClipSpec().normalise == "fixed"
    with pytest.raises(ValueError, match=r"ClipSpec.normalise='instance'"):
        _clip_spec(normalise="instance")


def test_per_clip_normalisation_removes_a_clips_colour_and_keeps_its_motion():
    rng = np.random.default_rng(4)
    batch = _batch(rng, b=2)
    batch["fast"] = (batch["fast"] // 2).astype(np.uint8)  # room for an offset
    shifted = {"fast": batch["fast"].copy()}
    shifted["fast"][0, ..., 1] += 90  # clip 0 greener, clip 1 brighter: same content
    shifted["fast"][1] += np.uint8(40)
    feed = DeviceInputs.for_spec(_clip_spec(normalise="clip"), "cpu")
    for a, b in zip(feed.inputs(batch), feed.inputs(shifted), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    fixed = DeviceInputs.for_spec(_clip_spec(), "cpu")
    assert not torch.allclose(fixed.inputs(batch)[1], fixed.inputs(shifted)[1])
    # a flat clip (no content, no motion) stays zero, not noise blown up by a tiny std
    flat = torch.full((1, 3, 4, 2, 2), 0.3)
    assert torch.equal(standardise_clips(flat, 0.1), torch.zeros_like(flat))


def test_feeding_errors_name_what_is_missing():
    batch = _batch(np.random.default_rng(2))
    with pytest.raises(ValueError, match="no Slow positions were given"):
        DeviceInputs().inputs({"fast": batch["fast"]})
    with pytest.raises(ValueError, match="batch has no 'fast' entry"):
        DeviceInputs(slow_positions=[0]).inputs({"label": batch["label"]})
    with pytest.raises(ValueError, match="need 17 Fast frames, the batch has 16"):
        DeviceInputs(slow_positions=[0, 16]).inputs({"fast": batch["fast"]})
    with pytest.raises(ValueError, match="mean and std need 3 values"):
        DeviceInputs(std=(0.2, 0.0, 0.2))


@pytest.mark.parametrize("rule", ["stride", "linspace"])
def test_slow_frames_taken_on_the_device_equal_the_decoded_ones_bit_for_bit(tmp_path, rule):
    video = generate(tmp_path, classes=1, videos_per_class=1, seed=2, frames=48, size=(48, 40))[0]
    table = read_frame_table(video.path)
    spec = ClipSpec(slow_frames=4, tau=4, alpha=4, rule=rule, num_val_clips=1, num_test_clips=1)
    fast_idx, slow_idx = sampling.clip_indices(
        5, table.num_frames, slow_frames=4, tau=4, alpha=4, rule=rule
    )
    record = {"content": video.path, "fast_idx": fast_idx, "slow_idx": slow_idx}
    decoded_slow, decoded_fast = decode_clip(record, short_side=40)
    device = "cuda" if CUDA else "cpu"
    feed = DeviceInputs.for_spec(spec, device)
    slow, fast = feed.uint8_pathways({"fast": decoded_fast[None]})
    assert slow.device.type == device and slow.dtype == torch.uint8
    np.testing.assert_array_equal(slow[0].cpu().numpy(), decoded_slow)
    np.testing.assert_array_equal(fast[0].cpu().numpy(), decoded_fast)


def test_the_cpu_feed_yields_inputs_and_labels_batch_by_batch():
    rng = np.random.default_rng(3)
    batches = [_batch(rng) for _ in range(3)]
    feed = DeviceFeed(DeviceInputs(slow_positions=POSITIONS))
    assert feed.stream is None  # nothing to overlap on a CPU
    out = list(feed(iter(batches)))
    assert len(out) == 3
    (slow, fast), labels = out[2]
    assert slow.shape == (2, 3, 4, 8, 8) and fast.shape == (2, 3, 16, 8, 8)
    assert labels.tolist() == [0, 1] and labels.dtype == torch.int64


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_the_cuda_feed_copies_one_batch_ahead_and_hands_out_the_same_tensors():
    rng = np.random.default_rng(4)
    host = [{k: torch.from_numpy(v).pin_memory() for k, v in _batch(rng).items()} for _ in range(4)]
    inputs = DeviceInputs("cuda", slow_positions=[0, 4, 8, 12], channels_last=True)
    overlapped = list(DeviceFeed(inputs, overlap=True)(host))
    inline = list(DeviceFeed(inputs, overlap=False)(host))
    assert DeviceFeed(inputs).stream is not None and len(overlapped) == 4
    for (a_in, a_lab), (b_in, b_lab) in zip(overlapped, inline, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(a_in, b_in, strict=True))
        assert torch.equal(a_lab, b_lab) and a_in[1].is_contiguous(
            memory_format=torch.channels_last_3d
        )
