"""Building blocks: stem, bottleneck, residual stage, non-local block.

Every module documents its tensor shapes as (B, C, T, H, W). Blocks own their
initialisation (`init_weights`), so `SlowFast` only walks them.
"""

from __future__ import annotations

import torch
from torch import nn

from slowfast_model.config import StageSpec


def conv3d(cin: int, cout: int, kernel: tuple[int, int, int], stride=(1, 1, 1)) -> nn.Conv3d:
    """Bias-free Conv3d with 'same' padding (k // 2) on every axis."""
    padding = tuple(k // 2 for k in kernel)
    return nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False)


class Stem(nn.Module):
    """conv1 (kt x 7 x 7, stride 1x2x2) -> BN -> ReLU -> max pool 1x3x3 stride 1x2x2.

    (B, C_in, T, H, W) -> (B, C_out, T, H/4, W/4); without the pool (``pool=False``), H/2, W/2.
    """

    def __init__(self, cin: int, cout: int, temporal_kernel: int, pool: bool = True) -> None:
        super().__init__()
        self.conv = conv3d(cin, cout, (temporal_kernel, 7, 7), stride=(1, 2, 2))
        self.bn = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.pool = (
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)) if pool else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class Bottleneck(nn.Module):
    """Residual bottleneck: kt x 1^2 -> 1 x 3^2 (spatial stride) -> 1 x 1^2, plus shortcut.

    (B, cin, T, H, W) -> (B, cout, T, H/stride, W/stride). The shortcut is a strided 1x1x1
    conv + BN when the shape changes, identity otherwise.
    """

    def __init__(self, cin: int, inner: int, cout: int, temporal_kernel: int, stride: int) -> None:
        super().__init__()
        self.conv_a = conv3d(cin, inner, (temporal_kernel, 1, 1))
        self.bn_a = nn.BatchNorm3d(inner)
        self.conv_b = conv3d(inner, inner, (1, 3, 3), stride=(1, stride, stride))
        self.bn_b = nn.BatchNorm3d(inner)
        self.conv_c = conv3d(inner, cout, (1, 1, 1))
        self.bn_c = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.proj_conv: nn.Conv3d | None = None
        self.proj_bn: nn.BatchNorm3d | None = None
        if cin != cout or stride != 1:
            self.proj_conv = conv3d(cin, cout, (1, 1, 1), stride=(1, stride, stride))
            self.proj_bn = nn.BatchNorm3d(cout)

    def init_weights(self, zero_init_last: bool) -> None:
        if zero_init_last:
            nn.init.zeros_(self.bn_c.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj_conv is None else self.proj_bn(self.proj_conv(x))
        y = self.relu(self.bn_a(self.conv_a(x)))
        y = self.relu(self.bn_b(self.conv_b(y)))
        y = self.bn_c(self.conv_c(y))
        return self.relu(y + shortcut)


class NonLocal(nn.Module):
    """Dot-product non-local block (Wang et al. 2018) with a residual connection.

    theta, phi, g: 1x1x1 convs to dim/2 channels; phi and g are max-pooled 1x2x2 (as
    PySlowFast). Affinity = theta^T phi / N, output = BN(conv_out(affinity * g)) + x.
    (B, C, T, H, W) -> (B, C, T, H, W).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        inner = dim // 2
        self.conv_theta = nn.Conv3d(dim, inner, 1)
        self.conv_phi = nn.Conv3d(dim, inner, 1)
        self.conv_g = nn.Conv3d(dim, inner, 1)
        self.pool = nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2))
        self.conv_out = nn.Conv3d(inner, dim, 1)
        self.bn = nn.BatchNorm3d(dim)

    def init_weights(self, zero_init_last: bool) -> None:
        if zero_init_last:
            nn.init.zeros_(self.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        theta = self.conv_theta(x).flatten(2)  # (B, C', THW)
        phi = self.conv_phi(self.pool(x)).flatten(2)  # (B, C', N)
        g = self.conv_g(self.pool(x)).flatten(2)  # (B, C', N)
        affinity = torch.einsum("bct,bcn->btn", theta, phi) / phi.shape[-1]
        y = torch.einsum("btn,bcn->bct", affinity, g).reshape(b, -1, t, h, w)
        return x + self.bn(self.conv_out(y))

    def macs(self, x_shape: torch.Size) -> int:
        """Multiply-adds of the two matrix products (the convs are counted on their own)."""
        b, c, t, h, w = x_shape
        n = t * (h // 2) * (w // 2)
        return 2 * b * (c // 2) * (t * h * w) * n


class ResStage(nn.Module):
    """One residual stage of one pathway, built from a `StageSpec`.

    (B, cin, T, H, W) -> (B, spec.out, T, H/s, W/s), s = spec.spatial_stride.
    """

    def __init__(self, cin: int, spec: StageSpec) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        self.nonlocal_blocks = nn.ModuleDict()
        for i in range(spec.num_blocks):
            self.blocks.append(
                Bottleneck(
                    cin if i == 0 else spec.out,
                    spec.inner,
                    spec.out,
                    temporal_kernel=spec.temporal_kernel if i < spec.temporal_blocks else 1,
                    stride=spec.spatial_stride if i == 0 else 1,
                )
            )
            if i in spec.nonlocal_after:
                self.nonlocal_blocks[str(i)] = NonLocal(spec.out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if str(i) in self.nonlocal_blocks:
                x = self.nonlocal_blocks[str(i)](x)
        return x


class Pathway(nn.Module):
    """Stem followed by the four residual stages of one pathway.

    `stage_in(i)` is the channel count entering stage i, which includes lateral channels
    for the Slow pathway; the pathway itself knows nothing about fusion.
    """

    def __init__(
        self,
        cin: int,
        stem_width: int,
        stem_temporal_kernel: int,
        specs: tuple[StageSpec, ...],
        extra_in: tuple[int, ...] = (0, 0, 0, 0),
        stem_pool: bool = True,
    ) -> None:
        super().__init__()
        self.stem = Stem(cin, stem_width, stem_temporal_kernel, stem_pool)
        stages = []
        channels = stem_width
        for spec, extra in zip(specs, extra_in, strict=True):
            stages.append(ResStage(channels + extra, spec))
            channels = spec.out
        self.stages = nn.ModuleList(stages)
        self.out_channels = channels
