"""Sub-batch BatchNorm: training statistics over groups of clips instead of the whole batch.

Multigrid's early phases train with 4-36x the plain batch per worker; BatchNorm over all of it
would change what the network learns (Wu et al. keep the BN batch of the long cycle at 8
clips). :class:`SubBatchNorm3d` splits a training batch into ``num_splits`` groups of
consecutive clips and normalises each by its own mean and variance, with one shared affine;
the running statistics are those of the whole batch (the groups' means and variances
combined), so evaluation is unchanged. Parameters and buffers are those of ``BatchNorm3d``:
checkpoints of either load into the other.
"""

from __future__ import annotations

import torch
from torch import nn


class SubBatchNorm3d(nn.BatchNorm3d):
    """``BatchNorm3d`` with training statistics per group of clips (``num_splits`` groups;
    1, or a count that does not divide the batch: plain BatchNorm)."""

    num_splits: int = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        splits = self.num_splits
        if not self.training or splits <= 1 or x.shape[0] % splits:
            return super().forward(x)
        n, c = x.shape[:2]
        channels_last = (
            x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()
        )
        if channels_last:  # (N, T, H, W, C) is the memory order: group it without a copy
            groups = x.permute(0, 2, 3, 4, 1).reshape(splits, -1, c)
            var, mean = torch.var_mean(groups, dim=1, keepdim=True, correction=0)
            y = (groups - mean) * torch.rsqrt(var + self.eps)
            y = y.reshape(n, *x.shape[2:], c).permute(0, 4, 1, 2, 3)
        else:
            groups = x.reshape(splits, n // splits, c, -1)
            var, mean = torch.var_mean(groups, dim=(1, 3), keepdim=True, correction=0)
            y = ((groups - mean) * torch.rsqrt(var + self.eps)).reshape(x.shape)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1, 1) + self.bias.view(1, c, 1, 1, 1)
        if self.track_running_stats:
            self._update_running(
                mean.view(splits, c), var.view(splits, c), x[0, 0].numel() * n // splits
            )
        return y.contiguous(memory_format=torch.channels_last_3d) if channels_last else y

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, per_group: int) -> None:
        """Running statistics of the whole batch from its groups' (``per_group`` values per
        channel in each): the mean of the means; the mean of the variances plus the
        variance of the means, made unbiased over all values as ``BatchNorm`` does."""
        total = per_group * mean.shape[0]
        whole_mean = mean.mean(0)
        whole_var = (var + (mean - whole_mean) ** 2).mean(0) * total / max(total - 1, 1)
        self.num_batches_tracked += 1
        momentum = self.momentum
        if momentum is None:  # a cumulative moving average, as BatchNorm's
            momentum = 1.0 / float(self.num_batches_tracked)
        self.running_mean.lerp_(whole_mean.to(self.running_mean.dtype), momentum)
        self.running_var.lerp_(whole_var.to(self.running_var.dtype), momentum)


def use_sub_batch_norm(model: nn.Module) -> int:
    """Replace every ``BatchNorm3d`` of ``model`` by a :class:`SubBatchNorm3d` holding the same
    values (before DDP and ``torch.compile`` wrap it); returns how many were replaced."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm3d:
                sub = SubBatchNorm3d(
                    child.num_features,
                    child.eps,
                    child.momentum,
                    child.affine,
                    child.track_running_stats,
                )
                sub.load_state_dict(child.state_dict())
                setattr(parent, name, sub.to(next(child.parameters(), child.running_mean).device))
                replaced += 1
    return replaced


def set_bn_splits(model: nn.Module, splits: int) -> None:
    """Set the group count of every :class:`SubBatchNorm3d` of ``model``."""
    for module in model.modules():
        if isinstance(module, SubBatchNorm3d):
            module.num_splits = splits


def bn_splits(batch: int, group: int) -> int:
    """Groups for a batch of ``batch`` clips: the most that divide it with at least ``group``
    clips each (1: plain BatchNorm)."""
    for splits in range(max(1, batch // group), 0, -1):
        if batch % splits == 0:
            return splits
    return 1
