"""Lateral connections: transforms that bring Fast features to the Slow pathway's shape.

Fast features are (B, beta*C, alpha*T, H, W); each transform returns (B, C_lat, T, H, W),
which `SlowFast` concatenates onto the Slow features along channels. A Fast pathway at 1/k of
the Slow pathway's size (`fast_spatial_scale`, `half_res`) has maps k times smaller at every
stage; `to_slow_grid` brings a lateral's output up to the Slow map it joins (nearest
neighbour, no parameters): a spatial stride of 1/k, applied after the transform so the
time-strided conv runs on the small map. With crops divisible by 16k (8k without the stem
pool) that is exact k-fold repetition; otherwise the nearest Fast cell of each Slow cell.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slowfast_model.config import FUSION_CONV_CHANNEL_RATIO, SlowFastConfig


class TimeToChannel(nn.Module):
    """Pack every alpha consecutive frames into channels: {aT, S^2, bC} -> {T, S^2, abC}.

    (B, C, alpha*T, H, W) -> (B, alpha*C, T, H, W); no parameters. Output channel
    `c * alpha + k` holds channel c of frame k of each group of alpha frames.
    """

    def __init__(self, alpha: int) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        if t % self.alpha:
            raise ValueError(
                f"time_to_channel: fast frames {t} not divisible by alpha={self.alpha}"
            )
        x = x.reshape(b, c, t // self.alpha, self.alpha, h, w).transpose(2, 3)
        return x.reshape(b, c * self.alpha, t // self.alpha, h, w)


class TimeStridedSampling(nn.Module):
    """Keep one frame in alpha: (B, C, alpha*T, H, W) -> (B, C, T, H, W); no parameters."""

    def __init__(self, alpha: int) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.alpha]


class TimeStridedConv(nn.Module):
    """Conv k x 1^2, stride alpha, 2*C outputs, then BN + ReLU (when `norm`).

    (B, C, alpha*T, H, W) -> (B, 2C, T, H, W).
    """

    def __init__(self, channels: int, alpha: int, kernel: int, norm: bool = True) -> None:
        super().__init__()
        out = FUSION_CONV_CHANNEL_RATIO * channels
        self.conv = nn.Conv3d(
            channels,
            out,
            (kernel, 1, 1),
            stride=(alpha, 1, 1),
            padding=(kernel // 2, 0, 0),
            bias=False,
        )
        self.bn = nn.BatchNorm3d(out) if norm else None
        self.relu = nn.ReLU(inplace=True) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.relu(self.bn(x))
        return x


def build_lateral(config: SlowFastConfig, fast_channels: int) -> nn.Module:
    """The lateral transform of `config.fusion` reading `fast_channels` Fast channels."""
    if config.fusion == "time_to_channel":
        return TimeToChannel(config.alpha)
    if config.fusion == "time_strided_sampling":
        return TimeStridedSampling(config.alpha)
    if config.fusion == "time_strided_conv":
        return TimeStridedConv(
            fast_channels, config.alpha, config.fusion_kernel, norm=config.lateral_norm
        )
    raise ValueError(f"fusion={config.fusion!r}: no lateral for this fusion")


def to_slow_grid(lateral: torch.Tensor, slow: torch.Tensor) -> torch.Tensor:
    """``lateral`` (B, C, T, h, w) resized to the Slow map's (H, W) by nearest neighbour; the
    tensor itself when the sizes already agree (every full-size Fast pathway)."""
    if lateral.shape[-2:] == slow.shape[-2:]:
        return lateral
    size = (lateral.shape[2], slow.shape[3], slow.shape[4])
    return F.interpolate(lateral, size=size, mode="nearest")
