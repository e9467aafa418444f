"""The SlowFast network (Feichtenhofer et al., ICCV 2019) and its single-pathway variants."""

from __future__ import annotations

import torch
from torch import nn

from slowfast_model.config import SlowFastConfig
from slowfast_model.fast_inputs import FastInput
from slowfast_model.fusion import build_lateral, to_slow_grid
from slowfast_model.layers import Bottleneck, NonLocal, Pathway


class SlowFast(nn.Module):
    """SlowFast network; `config.pathways` selects the two-pathway or a single-pathway model.

    ::

          slow: (B,3,T,H,W)              fast: (B,3,aT,H,W)
                 |                        |  FastInput: k x k pool (fast_scale 1/k), then
                 |                        |  gray | time_diff | flow: (B,C',aT,H/k,W/k)
          conv1 1x7^2, pool1       conv1 5x7^2, pool1       channels:
                 | <---- lateral 0 ----- |                  slow C, fast bC
          res2 (1x1^2 first conv)  res2 (3x1^2)
                 | <---- lateral 1 ----- |
          res3 (1x1^2)             res3 (3x1^2)
                 | <---- lateral 2 ----- |
          res4 (3x1^2) [+ NL]      res4 (3x1^2)
                 | <---- lateral 3 ----- |
          res5 (3x1^2)             res5 (3x1^2)
                 |                        |
          global avg pool          global avg pool
                 \\______ concat ________/
                          |
                     dropout, fc  -> (B, num_classes)

    Laterals transform Fast features {aT, S^2, bC} to T frames (time_to_channel,
    time_strided_sampling or time_strided_conv) and concatenate them on Slow's channels; with
    a Fast pathway at 1/k of the Slow size, each lateral's output is brought up to the Slow map
    it joins (nearest, x k: `fusion.to_slow_grid`).
    Neither pathway downsamples time. `slow_only` keeps the left column (full width, no
    laterals); `fast_only` keeps the right one.

    Args:
        config: the validated `SlowFastConfig`.

    Input: list of (B, C, T, H, W) tensors, `[slow, fast]` (slow: T frames, fast: alpha*T),
    or `[pathway]` for a single-pathway model. The list is never modified.
    """

    def __init__(self, config: SlowFastConfig) -> None:
        super().__init__()
        self.config = config
        self.slow: Pathway | None = None
        self.fast: Pathway | None = None
        self.laterals = nn.ModuleList()
        features = 0
        fast_specs = config.stage_specs("fast")
        if config.has_fast:
            self.fast = Pathway(
                config.fast_in_channels,
                config.fast_width,
                5,
                fast_specs,
                stem_pool=config.stem_pool,
            )
            features += self.fast.out_channels
        if config.has_slow:
            extra = (0, 0, 0, 0)
            if config.fusion != "none":
                fast_channels = (config.fast_width,) + tuple(s.out for s in fast_specs[:3])
                extra = tuple(config.lateral_channels(c) for c in fast_channels)
                self.laterals.extend(build_lateral(config, c) for c in fast_channels)
            self.slow = Pathway(
                config.in_channels,
                config.width,
                1,
                config.stage_specs("slow"),
                extra,
                stem_pool=config.stem_pool,
            )
            features += self.slow.out_channels
        self.num_features = features
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(features, config.num_classes)
        self.fast_input = FastInput(config)
        self.init_weights()

    # ------------------------------------------------------------------ init
    def init_weights(self) -> None:
        """Kaiming-normal (fan_out) convs, BN to identity, N(0, 0.01) classifier; residual
        branches end with a zero BN gamma when `config.zero_init_residual`."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, (Bottleneck, NonLocal)):
                m.init_weights(self.config.zero_init_residual)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    # ------------------------------------------------------------------ inputs
    def _select_inputs(self, inputs: list[torch.Tensor] | tuple[torch.Tensor, ...]):
        """(slow, fast) tensors this model uses, either possibly None; inputs is not modified."""
        if isinstance(inputs, torch.Tensor) or not isinstance(inputs, (list, tuple)):
            raise ValueError("inputs: expected a list of (B, C, T, H, W) tensors")
        pathways = self.config.pathways
        if pathways == "slowfast":
            if len(inputs) != 2:
                raise ValueError(f"inputs: slowfast needs [slow, fast], got {len(inputs)} tensors")
            slow, fast = inputs
        elif len(inputs) == 2:
            slow, fast = inputs
            slow, fast = (slow, None) if pathways == "slow_only" else (None, fast)
        elif len(inputs) == 1:
            slow, fast = (inputs[0], None) if pathways == "slow_only" else (None, inputs[0])
        else:
            raise ValueError(f"inputs: {pathways} takes 1 or 2 tensors, got {len(inputs)}")
        for name, x in (("slow", slow), ("fast", fast)):
            if x is not None and x.dim() != 5:
                raise ValueError(f"inputs: {name} must be (B, C, T, H, W), got {tuple(x.shape)}")
        if self.laterals and fast.shape[2] != self.config.alpha * slow.shape[2]:
            raise ValueError(
                f"inputs: fast has {fast.shape[2]} frames, expected alpha={self.config.alpha}"
                f" x slow frames {slow.shape[2]}"
            )
        return slow, fast

    # ------------------------------------------------------------------ forward
    def forward_features(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Backbone: returns the res5 feature maps `[slow, fast]` of the pathways present,
        slow (B, 32*width, T, H/32, W/32), fast (B, 32*width/beta_inv, aT, H/32k, W/32k)
        (k = `config.fast_downsample`; H/16 and H/16k without the stem pool)."""
        slow, fast = self._select_inputs(inputs)
        if fast is not None:
            fast = self.fast.stem(self.fast_input(fast))
        if slow is not None:
            slow = self.slow.stem(slow)
        num_stages = 4
        for i in range(num_stages):
            if self.laterals:
                slow = torch.cat([slow, to_slow_grid(self.laterals[i](fast), slow)], dim=1)
            if slow is not None:
                slow = self.slow.stages[i](slow)
            if fast is not None:
                fast = self.fast.stages[i](fast)
        return [x for x in (slow, fast) if x is not None]

    def forward_head(self, features: list[torch.Tensor], pre_logits: bool = False) -> torch.Tensor:
        """Global average pool per pathway, concat, dropout, fc.

        Returns (B, num_features) when `pre_logits`, else (B, num_classes) logits.
        """
        pooled = torch.cat([f.mean(dim=(2, 3, 4)) for f in features], dim=1)
        if pre_logits:
            return pooled
        return self.head(self.dropout(pooled))

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return self.forward_head(self.forward_features(inputs))

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_model(config: SlowFastConfig) -> SlowFast:
    """Build the network described by `config`."""
    if not isinstance(config, SlowFastConfig):
        raise ValueError(f"config: expected SlowFastConfig, got {type(config).__name__}")
    return SlowFast(config)
