"""The device side of plane-form training views (training.device.yuv_to_rgb): the YUV -> RGB matrices,
the resampling geometry against torch's own bilinear resize, and DeviceInputs on plane
batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipelines.decode.planes import YUV_CODES
from raysf.clip_spec import ClipSpec
from training.device.inputs import DeviceInputs, standardise_clips
from training.device.yuv_to_rgb import PlaneConverter, yuv_tables

IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)  # normalised output == 0-255 RGB


def _rgb(code: int, y: float, u: float, v: float) -> np.ndarray:
    mats, offs = yuv_tables()
    return (mats[code] @ torch.tensor([y, u, v], dtype=torch.float64) + offs[code]).numpy()


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_limited_and_full_range_greys_and_primaries(matrix):
    limited, full = YUV_CODES[(matrix, "limited")], YUV_CODES[(matrix, "full")]
    np.testing.assert_allclose(_rgb(limited, 16, 128, 128), [0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(_rgb(limited, 235, 128, 128), [255, 255, 255], atol=1e-9)
    np.testing.assert_allclose(_rgb(full, 77, 128, 128), [77, 77, 77], atol=1e-9)
    kr, kb = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}[matrix]
    # pure red in full range: Y = 255 kr, Cr at its top (V = 128 + 127.5), Cb = -kr / (2(1-kb))
    y, u = 255 * kr, 128 - 127.5 * kr / (1 - kb)
    np.testing.assert_allclose(_rgb(full, y, u, 255.5), [255, 0, 0], atol=1e-6)


def test_bt601_limited_matches_libswscale_within_two_levels():
    # libswscale's rgb24 output of uniform yuv420p frames (PyAV to_ndarray), measured once
    swscale = {(128, 128, 128): (130, 130, 130), (81, 90, 240): (253, 0, 0),
               (100, 100, 150): (132, 89, 40), (145, 54, 34): (0, 254, 0)}  # fmt: skip
    for (y, u, v), rgb in swscale.items():
        got = np.clip(_rgb(YUV_CODES[("bt601", "limited")], y, u, v), 0, 255)
        assert np.abs(got - rgb).max() <= 2.0, (y, u, v, got)


def _plane_batch(b=2, t=3, side=20, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "y": torch.from_numpy(rng.integers(16, 236, size=(b, t, side, side), dtype=np.uint8)),
        "uv": torch.full((b, t, 2, side // 2, side // 2), 128, dtype=torch.uint8),
    }


def _converter(crop: int) -> PlaneConverter:
    inputs = DeviceInputs(**IDENTITY, crop_size=crop)
    return inputs.planes


def test_an_unscaled_box_is_sampled_at_pixel_centres_and_flipped():
    p = _plane_batch()
    region = torch.tensor([[1, 1, 8, 8], [0, 0, 8, 8]], dtype=torch.int32)
    flip = torch.tensor([False, True])
    yuv = torch.zeros(2, dtype=torch.int8)
    out = _converter(8)(p["y"], p["uv"], region, flip, yuv)  # grey chroma: R = G = B
    assert out.shape == (2, 3, 3, 8, 8)
    luma = (p["y"].double() - 16) * 255 / 219
    torch.testing.assert_close(out[0, 0].double(), luma[0, :, 1:9, 1:9], atol=1e-3, rtol=0)
    torch.testing.assert_close(out[1, 2].double(), luma[1, :, :8, :8].flip(-1), atol=1e-3, rtol=0)


def test_a_scaled_box_is_torch_bilinear_resize_of_its_region():
    p = _plane_batch(b=1, side=24)
    region = torch.tensor([[1, 0, 10, 14]], dtype=torch.int32)
    out = _converter(16)(p["y"], p["uv"], region, torch.tensor([False]), torch.zeros(1))
    luma = (p["y"][:, :, 0:14, 1:11].double() - 16) * 255 / 219
    want = F.interpolate(luma, size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out[0, 1].double(), want[0], atol=1e-3, rtol=0)


def test_chroma_is_left_sited_and_scaled_with_luma():
    """A chroma step between columns 3 and 4 of a 4:2:0 buffer is at luma x = 7 (left-sited:
    chroma column c sits on luma column 2c); an unscaled box shows it there."""
    b, t, side = 1, 1, 16
    y = torch.full((b, t, side, side), 126, dtype=torch.uint8)
    uv = torch.full((b, t, 2, side // 2, side // 2), 128, dtype=torch.uint8)
    uv[:, :, 1, :, 4:] = 160  # V: a red step in chroma column 4 = luma column 8
    region = torch.tensor([[0, 0, 16, 16]], dtype=torch.int32)
    out = _converter(16)(y, uv, region, torch.tensor([False]), torch.zeros(1))
    red = out[0, 0, 0, 8].numpy()  # one row of R
    assert np.allclose(red[:7], red[0]) and np.allclose(red[8:], red[15])
    assert red[6] < red[7] < red[8] and np.isclose(red[7], (red[0] + red[8]) / 2, atol=0.5)


def test_device_inputs_plane_batch_takes_slow_from_fast_in_the_memory_format():
    spec = ClipSpec(slow_frames=2, tau=8, alpha=2, num_val_clips=1, num_test_clips=1, crop_size=8)
    inputs = DeviceInputs.for_spec(spec, "cpu", channels_last=True)
    p = _plane_batch(b=2, t=4, side=12)
    batch = {
        "fast_y": p["y"].numpy(),
        "fast_uv": p["uv"].numpy(),
        "region": np.asarray([[0, 0, 10, 10], [1, 1, 8, 8]], np.int32),
        "flip": np.asarray([True, False]),
        "yuv": np.asarray([0, 2], np.int8),
        "label": np.asarray([0, 1]),
    }
    slow, fast = inputs.inputs(batch)
    assert fast.shape == (2, 3, 4, 8, 8) and slow.shape == (2, 3, 2, 8, 8)
    assert fast.is_contiguous(memory_format=torch.channels_last_3d)
    assert slow.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(slow, fast[:, :, [0, 2]])
    with pytest.raises(ValueError, match="without a crop_size"):
        DeviceInputs().inputs(batch)
    # normalise: clip standardises the converted Fast frames, then takes the Slow ones
    per_clip = DeviceInputs.for_spec(spec.replace(normalise="clip"), "cpu", channels_last=True)
    slow_c, fast_c = per_clip.inputs(batch)
    torch.testing.assert_close(fast_c, standardise_clips(fast, per_clip.floor))
    torch.testing.assert_close(slow_c, fast_c[:, :, [0, 2]])
    assert fast_c.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_cuda_conversion_matches_the_cpu_one():
    p = _plane_batch(b=3, t=4, side=24, seed=3)
    p["uv"] = torch.from_numpy(
        np.random.default_rng(4).integers(16, 241, (3, 4, 2, 12, 12), np.uint8)
    )
    region = torch.tensor([[1, 0, 21, 17], [0, 1, 12, 12], [0, 0, 22, 22]], dtype=torch.int32)
    flip, yuv = torch.tensor([True, False, True]), torch.tensor([0, 2, 3], dtype=torch.int8)
    cpu = _converter(16)(p["y"], p["uv"], region, flip, yuv)
    inputs = DeviceInputs("cuda", **IDENTITY, crop_size=16, channels_last=True)
    cuda = inputs.planes(*(x.cuda() for x in (p["y"], p["uv"], region, flip, yuv)))
    assert cuda.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-2, rtol=0)
