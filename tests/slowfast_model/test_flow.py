"""The optical flow of ``fast_input="flow"``: known translations recovered, the Fast input's
normalisation, flat images, bf16 autocast."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import slowfast_model as sm
from slowfast_model import flow as flow_module
from slowfast_model.flow import FLOW_CLIP_PX, clip_flow, lucas_kanade

SIDE = 48
#: Border pixels left out of the error (the shifted image's edge is made up there).
BORDER = 8


def textured(side: int = 2 * SIDE, seed: int = 0) -> torch.Tensor:
    """A smooth random texture ``(1, 1, side, side)`` (blobs of ~4 pixels)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, 1, side // 4, side // 4, generator=gen)
    return F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False)


def shifted(image: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """``image`` moved by ``(dx, dy)`` pixels (right, down): ``out(x, y) = image(x-dx, y-dy)``."""
    _, _, h, w = image.shape
    cols = torch.arange(w, dtype=torch.float32).view(1, 1, w).expand(1, h, w)
    rows = torch.arange(h, dtype=torch.float32).view(1, h, 1).expand(1, h, w)
    grid = torch.stack(((cols - dx) * 2 / (w - 1) - 1, (rows - dy) * 2 / (h - 1) - 1), dim=-1)
    return F.grid_sample(image, grid, align_corners=True, padding_mode="border")


def center(x: torch.Tensor) -> torch.Tensor:
    """The middle ``SIDE x SIDE`` of a ``2 * SIDE`` image (the crop a clip would see)."""
    lo = SIDE // 2
    return x[..., lo : lo + SIDE, lo : lo + SIDE]


@pytest.mark.parametrize(("dx", "dy"), [(2.0, -1.0), (-1.5, 2.5), (0.5, 0.3), (3.0, 0.0)])
def test_a_translation_is_recovered(dx: float, dy: float) -> None:
    image = textured()
    flow = lucas_kanade(center(image), center(shifted(image, dx, dy)))
    assert flow.shape == (1, 2, SIDE, SIDE) and flow.dtype == torch.float32
    inner = flow[..., BORDER:-BORDER, BORDER:-BORDER]
    u, v = inner[:, 0].median().item(), inner[:, 1].median().item()
    assert math.hypot(u, v) == pytest.approx(math.hypot(dx, dy), rel=0.05, abs=0.05)
    off = math.atan2(v, u) - math.atan2(dy, dx)
    assert abs(math.remainder(off, 2 * math.pi)) < math.radians(3)  # the direction
    endpoint_error = torch.hypot(inner[:, 0] - dx, inner[:, 1] - dy)
    assert endpoint_error.median().item() < 0.15
    assert (endpoint_error < 0.5).float().mean().item() > 0.95


def test_no_motion_and_flat_images_give_no_flow() -> None:
    image = center(textured(seed=1))
    assert lucas_kanade(image, image).abs().max().item() < 1e-4
    flat = torch.full((2, 1, 20, 30), 0.7)
    assert lucas_kanade(flat, flat + 0.01).abs().max().item() < 1e-3


def test_the_fast_input_is_clipped_flow_between_consecutive_frames() -> None:
    """A clip drifting 2 px right per frame: channel 0 is 2/20 from frame 1 on, frame 0 zero."""
    image = textured()
    frames = [center(shifted(image, 2.0 * t, 0.0)) for t in range(4)]
    luma = torch.stack(frames, dim=2)  # (1, 1, 4, H, W)
    out = clip_flow(luma)
    assert out.shape == (1, 2, 4, SIDE, SIDE)
    assert torch.equal(out[:, :, 0], torch.zeros_like(out[:, :, 0]))
    inner = out[..., BORDER:-BORDER, BORDER:-BORDER]
    assert inner[:, 0, 1:].median().item() == pytest.approx(2.0 / FLOW_CLIP_PX, abs=0.01)
    assert inner[:, 1, 1:].median().item() == pytest.approx(0.0, abs=0.01)
    assert out.abs().max().item() <= 1.0
    fast = (luma * 3).expand(1, 3, 4, SIDE, SIDE) / 3  # grey RGB whose luma is `luma`
    model = sm.build_model(sm.get_config("slowfast_tiny", fast_input="flow"))
    torch.testing.assert_close(model.fast_input(fast), out, atol=1e-4, rtol=0)


def test_motion_beyond_the_clip_is_one(monkeypatch) -> None:
    def estimate(prev, nxt):  # +-60 px: beyond +-FLOW_CLIP_PX
        return torch.cat((prev * 0 + 60.0, prev * 0 - 60.0), dim=1)

    monkeypatch.setattr(flow_module, "lucas_kanade", estimate)
    out = clip_flow(torch.zeros(1, 1, 3, 8, 8))
    assert torch.equal(out[:, 0, 1:], torch.ones(1, 2, 8, 8))
    assert torch.equal(out[:, 1, 1:], -torch.ones(1, 2, 8, 8))


def test_bf16_autocast_computes_the_same_flow() -> None:
    image = textured()
    luma = torch.stack([center(shifted(image, 1.5 * t, -t)) for t in range(3)], dim=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = clip_flow(luma)
    torch.testing.assert_close(low.float(), clip_flow(luma), atol=1e-5, rtol=0)


def test_mismatched_images_raise() -> None:
    with pytest.raises(ValueError, match=r"flow: expected two \(N, 1, H, W\) images"):
        lucas_kanade(torch.zeros(1, 1, 8, 8), torch.zeros(1, 3, 8, 8))
