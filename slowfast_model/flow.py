"""Dense optical flow in plain torch: coarse-to-fine Lucas-Kanade with warping.

The estimator behind ``fast_input="flow"``. It runs inside the network, on whatever device the
network runs on, so training, evaluation, prediction, serving and every export compute the
same flow from the same normalised frames (docs/model.md, "Fast pathway inputs", says why this
estimator and not OpenCV's). It has no parameters and no data-dependent control flow, so
``torch.jit.trace``, ``torch.export`` and the ONNX exporter capture it as it is.

For each pair ``(prev, nxt)`` of ``(N, 1, H, W)`` intensity images, the flow ``(u, v)`` in
pixels satisfies ``nxt(x + u, y + v) ~ prev(x, y)``:

1. a pyramid of ``levels`` images, each 2x2-averaged from the one below, while both sides stay
   at least :data:`MIN_LEVEL_SIDE`;
2. from the coarsest level up: the flow so far (x2, bilinear) warps ``nxt`` towards ``prev``;
   a Lucas-Kanade step solves the 2x2 normal equations of the brightness-constancy residual
   over a ``window x window`` box around each pixel (Tikhonov term ``reg`` on the diagonal, so
   flat regions get ~0 instead of noise), adds the correction and smooths the flow over a
   ``smooth x smooth`` box; ``warps`` steps per level. Without the smoothing, per-pixel
   corrections never damp the flow's pixel-to-pixel noise and every further warp makes it
   worse (tests/slowfast_model/test_flow.py measures the error on known translations).

Only ops that autocast leaves in float32 are used (pooling, running sums, ``grid_sample``,
element-wise), and the input is cast to float32 first: bf16 training computes the same flow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: The pyramid stops before a side would fall below this (the box window needs room).
MIN_LEVEL_SIDE = 8
#: Flow is clipped to +-this many pixels and divided by it (the two-stream literature's
#: convention for TV-L1 flow: Simonyan & Zisserman 2014, Carreira & Zisserman 2017).
FLOW_CLIP_PX = 20.0


def _box_1d(x: torch.Tensor, window: int, dim: int) -> torch.Tensor:
    """Mean over ``window`` neighbours along ``dim`` (-1 or -2) from a running sum (its cost
    does not grow with the window); at the borders, the mean of those that exist."""
    n, pad = x.shape[dim], window // 2
    sums = F.pad(x, (pad + 1, pad) if dim == -1 else (0, 0, pad + 1, pad)).cumsum(dim)
    total = sums.narrow(dim, window, n) - sums.narrow(dim, 0, n)
    index = torch.arange(n, device=x.device)
    count = (torch.clamp(index + pad, max=n - 1) - torch.clamp(index - pad, min=0) + 1).to(x.dtype)
    return total / (count if dim == -1 else count.view(n, 1))


def _box(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over a ``window x window`` box (border boxes average what lies inside), as a row
    pass and a column pass: exact, since a border box's count is the product of the two."""
    return _box_1d(_box_1d(x, window, -1), window, -2)


def _gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences along W and H of ``(N, 1, H, W)`` (one-sided at the border)."""
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]) * 0.5
    gy = (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]) * 0.5
    return gx, gy


def _warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``x`` sampled at ``(col + u, row + v)`` (bilinear, border values outside)."""
    _, _, h, w = x.shape
    rows = torch.arange(h, dtype=x.dtype, device=x.device).view(1, h, 1)
    cols = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, w)
    # grid_sample's coordinates: -1 and 1 are the centres of the first and last pixels
    gx = (cols + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (rows + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _lucas_kanade_step(
    prev: torch.Tensor, warped: torch.Tensor, window: int, reg: float
) -> torch.Tensor:
    """The flow correction ``(N, 2, H, W)`` that best explains ``warped - prev`` per box."""
    gx, gy = _gradients((prev + warped) * 0.5)
    gt = warped - prev
    products = torch.cat((gx * gx, gy * gy, gx * gy, gx * gt, gy * gt), dim=1)
    sxx, syy, sxy, sxt, syt = _box(products, window).unbind(dim=1)
    sxx, syy = sxx + reg, syy + reg
    det = sxx * syy - sxy * sxy
    du = (sxy * syt - syy * sxt) / det
    dv = (sxy * sxt - sxx * syt) / det
    return torch.stack((du, dv), dim=1)


def _pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``[finest, ..., coarsest]``: at most ``levels`` images, sides >= MIN_LEVEL_SIDE."""
    out = [x]
    while len(out) < levels and min(out[-1].shape[-2:]) >= 2 * MIN_LEVEL_SIDE:
        out.append(F.avg_pool2d(out[-1], 2, ceil_mode=True))
    return out


def lucas_kanade(
    prev: torch.Tensor,
    nxt: torch.Tensor,
    levels: int = 3,
    warps: int = 1,
    window: int = 9,
    reg: float = 1e-3,
    smooth: int = 5,
) -> torch.Tensor:
    """Dense flow ``(N, 2, H, W)`` in pixels (channel 0: along W, 1: along H) from ``prev`` to
    ``nxt``, both ``(N, 1, H, W)``; float32 whatever their dtype. See the module docstring."""
    if prev.shape != nxt.shape or prev.dim() != 4 or prev.shape[1] != 1:
        raise ValueError(f"flow: expected two (N, 1, H, W) images, got {prev.shape}, {nxt.shape}")
    prevs = _pyramid(prev.float(), levels)
    nxts = _pyramid(nxt.float(), levels)
    flow = torch.zeros_like(prevs[-1]).repeat(1, 2, 1, 1)
    for level in range(len(prevs) - 1, -1, -1):
        p, n = prevs[level], nxts[level]
        if flow.shape[-2:] != p.shape[-2:]:
            flow = 2.0 * F.interpolate(flow, size=p.shape[-2:], mode="bilinear")
        for _ in range(warps):
            flow = _box(flow + _lucas_kanade_step(p, _warp(n, flow), window, reg), smooth)
    return flow


def clip_flow(luma: torch.Tensor) -> torch.Tensor:
    """The Fast pathway's flow input: ``(B, 1, T, H, W)`` intensity -> ``(B, 2, T, H, W)``.

    Frame ``t`` holds the flow from frame ``t-1`` to ``t`` (frame 0: zero, as ``time_diff``),
    clipped to +-:data:`FLOW_CLIP_PX` pixels and divided by it, so values lie in [-1, 1].
    """
    b, _, t, h, w = luma.shape
    frames = luma.detach().float().transpose(1, 2)  # (B, T, 1, H, W)
    prev = frames[:, :-1].reshape(-1, 1, h, w)
    nxt = frames[:, 1:].reshape(-1, 1, h, w)
    flow = lucas_kanade(prev, nxt).reshape(b, t - 1, 2, h, w).transpose(1, 2)
    flow = torch.clamp(flow, -FLOW_CLIP_PX, FLOW_CLIP_PX) / FLOW_CLIP_PX
    first = torch.zeros_like(flow[:, :, :1])
    return torch.cat((first, flow), dim=2).to(luma.dtype)
