"""Named model presets: `create_model(name, **overrides)`.

A preset is a `SlowFastConfig`; its `slow_frames` (T), `default_tau` and `alpha` are the
sampling defaults the data pipeline derives clips from (`sampling(name)`).
"""

from __future__ import annotations

from dataclasses import dataclass

from slowfast_model.config import SlowFastConfig
from slowfast_model.model import SlowFast, build_model


@dataclass(frozen=True)
class Sampling:
    """Clip sampling implied by a preset: T slow frames tau apart; the Fast pathway sees
    alpha*T frames tau/alpha apart; a clip spans T*tau source frames."""

    slow_frames: int
    tau: int
    alpha: int

    @property
    def fast_frames(self) -> int:
        return self.alpha * self.slow_frames

    @property
    def clip_span(self) -> int:
        return self.slow_frames * self.tau


_R50 = SlowFastConfig()
_R101_16X8 = _R50.replace(
    depth=101, slow_frames=16, default_tau=8, alpha=4, fusion_kernel=5, res4_temporal_blocks=6
)
# CPU-sized: the real architecture (R18 bottleneck net) at width 8, T=4, alpha=4.
_TINY = _R50.replace(
    depth=18,
    width=8,
    beta_inv=8,
    slow_frames=4,
    default_tau=4,
    alpha=4,
    num_classes=10,
    dropout=0.2,
)

_R50_4X16 = _R50.replace(slow_frames=4, default_tau=16, alpha=8, fusion_kernel=5)

_PRESETS: dict[str, SlowFastConfig] = {
    # T x tau, as in the paper's tables.
    "slowfast_4x16_r50": _R50_4X16,
    # Table 5c's weaker Fast inputs that change the network: half resolution (paired with
    # beta = 1/4, as in the paper) and optical flow (a 2-channel Fast stem).
    "slowfast_4x16_r50_half_res": _R50_4X16.replace(fast_input="half_res", beta_inv=4),
    "slowfast_4x16_r50_flow": _R50_4X16.replace(fast_input="flow"),
    "slowfast_8x8_r50": _R50.replace(slow_frames=8, default_tau=8, alpha=4, fusion_kernel=7),
    "slowfast_8x8_r101": _R50.replace(
        depth=101, slow_frames=8, default_tau=8, alpha=4, fusion_kernel=5
    ),
    "slowfast_16x8_r101": _R101_16X8,
    "slowfast_16x8_r101_nl": _R101_16X8.replace(nonlocal_res4=True),
    "slow_8x8_r50": _R50.replace(
        pathways="slow_only", fusion="none", slow_frames=8, default_tau=8, alpha=4
    ),
    "fast_only_r50": _R50.replace(
        pathways="fast_only", fusion="none", slow_frames=8, default_tau=8, alpha=4
    ),
    "slowfast_tiny": _TINY.replace(fusion_kernel=5),
    "slow_tiny": _TINY.replace(pathways="slow_only", fusion="none"),
}


def list_models() -> list[str]:
    """Names accepted by `create_model` / `get_config`, sorted."""
    return sorted(_PRESETS)


def get_config(name: str, **overrides: object) -> SlowFastConfig:
    """The preset `name` with `overrides` applied (validated)."""
    if name not in _PRESETS:
        raise ValueError(f"model name {name!r} unknown; choose from {list_models()}")
    return _PRESETS[name].replace(**overrides)


def sampling(name_or_config: str | SlowFastConfig) -> Sampling:
    """Sampling defaults (T, tau, alpha) of a preset name or config."""
    config = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    return Sampling(config.slow_frames, config.default_tau, config.alpha)


def create_model(name: str, **overrides: object) -> SlowFast:
    """Build preset `name`, e.g. `create_model("slowfast_8x8_r50", num_classes=400)`."""
    return build_model(get_config(name, **overrides))
