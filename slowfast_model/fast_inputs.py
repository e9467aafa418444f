"""What the Fast pathway sees: the RGB Fast clip turned into ``config.fast_input``.

The one home of the paper's Table 5c inputs. The network always takes the normalised RGB Fast
clip ``(B, 3, alpha*T, H, W)`` and :class:`FastInput` (its first op) makes the pathway's input
from it, on the network's device; so training, evaluation, prediction, serving and the exports
(which trace the network) all feed the same thing, and a loader or exporter never needs to
know which input a network was trained on. In order:

1. ``fast_scale`` 1/k < 1 (``half_res``: 1/2): k x k average pooling, (H, W) -> (H/k, W/k)
   (rounded down). The loader ships the Fast frames at full size anyway (the Slow frames are
   taken from them on the device), so pooling on the device is the cheapest place;
2. ``gray``: ITU-R BT.601 luma, 1 channel; ``time_diff``: ``x_t - x_{t-1}`` (frame 0: zero);
   ``flow``: optical flow from frame ``t-1`` to ``t`` of the luma, 2 channels in [-1, 1]
   (:func:`slowfast_model.flow.clip_flow`); ``rgb`` and ``half_res``: the frames as they are.

No parameters and no persistent buffers: a checkpoint's keys do not depend on the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slowfast_model.config import SlowFastConfig
from slowfast_model.flow import clip_flow

#: ITU-R BT.601 luma weights (``gray``, and the intensity ``flow`` is estimated on).
LUMA = (0.299, 0.587, 0.114)


class FastInput(nn.Module):
    """``(B, 3, aT, H, W)`` normalised RGB -> ``(B, config.fast_in_channels, aT, H/k, W/k)``."""

    def __init__(self, config: SlowFastConfig) -> None:
        super().__init__()
        self.kind = config.fast_input
        self.downsample = config.fast_downsample
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1, 1), persistent=False)

    def forward(self, fast: torch.Tensor) -> torch.Tensor:
        if self.downsample > 1:
            k = self.downsample
            fast = F.avg_pool3d(fast, (1, k, k), stride=(1, k, k))
        if self.kind == "gray":
            return self.gray(fast)
        if self.kind == "time_diff":
            return torch.diff(fast, dim=2, prepend=fast[:, :, :1])
        if self.kind == "flow":
            return clip_flow(self.gray(fast))
        return fast

    def gray(self, fast: torch.Tensor) -> torch.Tensor:
        """Luma ``(B, 1, T, H, W)`` of RGB ``(B, 3, T, H, W)``."""
        return (fast * self.luma.to(fast.dtype)).sum(dim=1, keepdim=True)
