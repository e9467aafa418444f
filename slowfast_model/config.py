"""Typed, validated configuration of a SlowFast network.

`SlowFastConfig` is the single description of a network: every builder in this package reads
it and nothing else. It is frozen and validated on construction; an invalid value raises
`ValueError` naming the field. Per-stage structure is derived from it as a tuple of
`StageSpec`, so the four residual stages are built by one loop.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

FUSIONS = ("time_to_channel", "time_strided_sampling", "time_strided_conv", "none")
PATHWAYS = ("slowfast", "slow_only", "fast_only")
#: What the Fast pathway sees (`slowfast_model.fast_inputs`): the paper's Table 5c inputs.
FAST_INPUTS = ("rgb", "gray", "time_diff", "half_res", "flow")
#: `fast_spatial_scale` that `fast_input="half_res"` stands for.
HALF_RES_SCALE = 0.5

#: Residual blocks per stage (res2..res5). Every depth uses bottleneck blocks, as PySlowFast
#: and PyTorchVideo do (their "R18" is the 2-2-2-2 bottleneck net).
STAGE_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
}

#: Bottleneck output channels are `EXPANSION` times the inner width.
EXPANSION = 4

#: Output channels of the time-strided-conv lateral, as a multiple of the Fast channels (2*beta*C).
FUSION_CONV_CHANNEL_RATIO = 2

# Fields validated by type / range in `SlowFastConfig.__post_init__`, in checking order.
_INT_FIELDS = (
    "depth",
    "alpha",
    "beta_inv",
    "slow_frames",
    "default_tau",
    "fusion_kernel",
    "width",
    "num_classes",
    "in_channels",
)
_POSITIVE_FIELDS = (
    "alpha",
    "beta_inv",
    "slow_frames",
    "default_tau",
    "width",
    "num_classes",
    "in_channels",
)
_BOOL_FIELDS = ("lateral_norm", "nonlocal_res4", "zero_init_residual", "stem_pool")


@dataclass(frozen=True)
class StageSpec:
    """Structure of one residual stage (res2..res5) of one pathway.

    Attributes:
        index: 0 for res2 ... 3 for res5.
        num_blocks: residual blocks in the stage.
        inner: channels inside the bottleneck (the 3x3 conv).
        out: channels the stage outputs (`inner * 4`; Fast: the Slow stage's `out // beta_inv`).
        spatial_stride: stride of the first block's 3x3 conv (1 for res2, else 2).
        temporal_kernel: temporal size of every temporal block's first (1x1) conv.
        temporal_blocks: how many leading blocks use `temporal_kernel` (the rest use 1).
        nonlocal_after: block indices followed by a non-local block.
    """

    index: int
    num_blocks: int
    inner: int
    out: int
    spatial_stride: int
    temporal_kernel: int
    temporal_blocks: int
    nonlocal_after: tuple[int, ...] = ()


@dataclass(frozen=True)
class SlowFastConfig:
    """Every hyper-parameter of a SlowFast-family network.

    Attributes:
        depth: ResNet depth, one of 18, 50, 101.
        alpha: frame-rate ratio Fast/Slow (the Fast pathway sees `alpha * slow_frames` frames).
        beta_inv: channel ratio Slow/Fast (beta = 1 / beta_inv). Every Fast layer has
            `slow_channels // beta_inv` channels, rounded down as PySlowFast does (beta = 1/6 at
            width 64: stem 10, res2 10/42, ..., res5 85/341); at most `width`.
        slow_frames: T, frames of the Slow pathway.
        default_tau: temporal stride (in source frames) of the Slow pathway; data sampling
            default, unused by the network itself.
        fusion: lateral transform Fast -> Slow: `time_to_channel`, `time_strided_sampling`,
            `time_strided_conv`, or `none` (no laterals).
        fusion_kernel: temporal kernel of the time-strided conv (5 in the paper, 7 in the
            released 8x8 checkpoints).
        lateral_norm: BN + ReLU after the time-strided conv (PySlowFast/PyTorchVideo); False
            matches mmaction2's plain-conv laterals.
        pathways: `slowfast`, `slow_only` or `fast_only`.
        fast_input: what the Fast pathway sees: `rgb`, `gray` (luma), `time_diff`, `half_res`
            (RGB at `fast_spatial_scale` 0.5; the paper pairs it with beta = 1/4) or `flow`
            (2-channel optical flow between consecutive Fast frames).
        fast_spatial_scale: the Fast frames' size as a fraction 1/k of the Slow frames' (1.0,
            0.5, 0.25, ...), downsampled inside the network; None: 0.5 for `half_res`, else 1.0.
            The laterals bring the k-times smaller Fast maps up to the Slow maps (nearest).
        width: base width (Slow stem channels); 64 in the paper.
        num_classes: classifier outputs.
        dropout: dropout probability before the classifier.
        nonlocal_res4: non-local blocks in the Slow pathway's res4 (the paper's R101+NL).
        res4_temporal_blocks: temporal blocks in res4 (None: all; 6 in the "R101_50_50" models).
        zero_init_residual: zero the last BN gamma of every residual branch.
        stem_pool: the stems' 1x3x3 max-pool (stride 2); False keeps twice the resolution
            from res2 on (4x the compute of the residual stages) for small crops, where the
            pool costs SynthMotion's RGB networks their motion (docs/results.md, rows 36-52).
        in_channels: channels of the RGB input.
    """

    depth: int = 50
    alpha: int = 4
    beta_inv: int = 8
    slow_frames: int = 8
    default_tau: int = 8
    fusion: str = "time_strided_conv"
    fusion_kernel: int = 7
    lateral_norm: bool = True
    pathways: str = "slowfast"
    fast_input: str = "rgb"
    fast_spatial_scale: float | None = None
    width: int = 64
    num_classes: int = 400
    dropout: float = 0.5
    nonlocal_res4: bool = False
    res4_temporal_blocks: int | None = None
    zero_init_residual: bool = True
    stem_pool: bool = True
    in_channels: int = 3

    def __post_init__(self) -> None:
        """Validate every field; the first invalid one raises `ValueError` naming it."""
        self._check_types()
        self._check_values()
        self._check_pathway_rules()
        self._check_fast_input()

    def _check(self, ok: bool, name: str, message: str) -> None:
        if not ok:
            raise ValueError(f"SlowFastConfig.{name}={getattr(self, name)!r}: {message}")

    def _check_types(self) -> None:
        """The int fields are ints (bools excluded)."""
        for name in _INT_FIELDS:
            value = getattr(self, name)
            self._check(
                isinstance(value, int) and not isinstance(value, bool), name, "must be an int"
            )

    def _check_values(self) -> None:
        """Each field on its own: ranges, choices, flags."""
        self._check(self.depth in STAGE_DEPTHS, "depth", f"must be one of {sorted(STAGE_DEPTHS)}")
        for name in _POSITIVE_FIELDS:
            self._check(getattr(self, name) >= 1, name, "must be >= 1")
        self._check(self.fusion in FUSIONS, "fusion", f"must be one of {FUSIONS}")
        self._check(self.pathways in PATHWAYS, "pathways", f"must be one of {PATHWAYS}")
        self._check(self.fast_input in FAST_INPUTS, "fast_input", f"must be one of {FAST_INPUTS}")
        self._check(
            self.fusion_kernel >= 1 and self.fusion_kernel % 2 == 1,
            "fusion_kernel",
            "must be a positive odd int (the conv keeps T with padding k//2)",
        )
        self._check(
            isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0,
            "dropout",
            "must be in [0, 1)",
        )
        for name in _BOOL_FIELDS:
            self._check(isinstance(getattr(self, name), bool), name, "must be a bool")

    def _check_pathway_rules(self) -> None:
        """Fields that must agree with each other (mostly with `pathways`)."""
        if self.pathways != "slow_only":
            self._check(
                self.width // self.beta_inv >= 1,
                "beta_inv",
                f"must be at most width={self.width} (the Fast stem has width // beta_inv "
                "channels)",
            )
        if self.pathways != "slowfast":
            self._check(
                self.fusion == "none",
                "fusion",
                f"must be 'none' for pathways={self.pathways!r} (laterals need both pathways)",
            )
        if self.pathways == "slow_only":
            self._check(
                self.fast_input == "rgb", "fast_input", "must be 'rgb' for a slow_only model"
            )
        if self.pathways == "fast_only":
            self._check(
                self.nonlocal_res4 is False,
                "nonlocal_res4",
                "non-local blocks live in the Slow pathway",
            )
        if self.res4_temporal_blocks is not None:
            self._check(
                isinstance(self.res4_temporal_blocks, int)
                and 0 <= self.res4_temporal_blocks <= STAGE_DEPTHS[self.depth][2],
                "res4_temporal_blocks",
                f"must be None or in [0, {STAGE_DEPTHS[self.depth][2]}]",
            )

    def _check_fast_input(self) -> None:
        """`fast_input` against the input channels, the frames and `fast_spatial_scale`."""
        if self.fast_input in ("gray", "flow"):
            self._check(
                self.in_channels == 3,
                "in_channels",
                f"fast_input={self.fast_input!r} needs RGB (3) input (it reads the luma)",
            )
        if self.fast_input == "flow":
            self._check(
                self.fast_frames >= 2,
                "alpha",
                "fast_input='flow' needs at least 2 Fast frames (alpha * slow_frames)",
            )
        scale = self.fast_spatial_scale
        if scale is None:
            return
        self._check(
            isinstance(scale, (int, float)) and not isinstance(scale, bool) and 0 < scale <= 1,
            "fast_spatial_scale",
            "must be None or a number in (0, 1]",
        )
        self._check(
            abs(1 / scale - round(1 / scale)) < 1e-6,
            "fast_spatial_scale",
            "must be 1/k for an integer k (1.0, 0.5, 0.25, ...): the Fast frames are "
            "average-pooled k x k",
        )
        if self.fast_input == "half_res":
            self._check(
                scale == HALF_RES_SCALE,
                "fast_spatial_scale",
                f"fast_input='half_res' is fast_spatial_scale={HALF_RES_SCALE}; for another "
                "scale use fast_input='rgb' with that fast_spatial_scale",
            )
        if self.pathways == "slow_only":
            self._check(scale == 1, "fast_spatial_scale", "a slow_only model has no Fast pathway")

    # ----------------------------------------------------------------- derived quantities
    @property
    def beta(self) -> float:
        """Channel ratio Fast/Slow."""
        return 1.0 / self.beta_inv

    @property
    def fast_frames(self) -> int:
        """alpha * T, frames of the Fast pathway."""
        return self.alpha * self.slow_frames

    @property
    def has_slow(self) -> bool:
        return self.pathways in ("slowfast", "slow_only")

    @property
    def has_fast(self) -> bool:
        return self.pathways in ("slowfast", "fast_only")

    @property
    def fast_width(self) -> int:
        """Fast stem channels (beta * width, rounded down)."""
        return self.width // self.beta_inv

    @property
    def fast_in_channels(self) -> int:
        """Channels the Fast stem conv takes (1 for `gray`, 2 for `flow`)."""
        return {"gray": 1, "flow": 2}.get(self.fast_input, self.in_channels)

    @property
    def fast_scale(self) -> float:
        """The Fast frames' size relative to the Slow frames' (`fast_spatial_scale` resolved)."""
        if self.fast_spatial_scale is not None:
            return float(self.fast_spatial_scale)
        return HALF_RES_SCALE if self.fast_input == "half_res" else 1.0

    @property
    def fast_downsample(self) -> int:
        """k: the Fast frames are average-pooled k x k (1: full size)."""
        return round(1 / self.fast_scale)

    def lateral_channels(self, fast_channels: int) -> int:
        """Channels a lateral adds to the Slow pathway, given the Fast channels it reads."""
        if self.fusion == "time_to_channel":
            return self.alpha * fast_channels
        if self.fusion == "time_strided_sampling":
            return fast_channels
        if self.fusion == "time_strided_conv":
            return FUSION_CONV_CHANNEL_RATIO * fast_channels
        return 0

    def stage_specs(self, pathway: str) -> tuple[StageSpec, ...]:
        """The four residual stages of `pathway` ('slow' or 'fast').

        Slow: temporal kernels (3x1x1) only in res4 and res5. Fast: in every stage.
        Neither pathway downsamples time.
        """
        if pathway not in ("slow", "fast"):
            raise ValueError(f"pathway={pathway!r}: must be 'slow' or 'fast'")
        ratio = 1 if pathway == "slow" else self.beta_inv
        specs = []
        for index, num_blocks in enumerate(STAGE_DEPTHS[self.depth]):
            temporal = 3 if (pathway == "fast" or index >= 2) else 1
            temporal_blocks = num_blocks
            if index == 2 and self.res4_temporal_blocks is not None:
                temporal_blocks = self.res4_temporal_blocks
            nonlocal_after: tuple[int, ...] = ()
            if pathway == "slow" and index == 2 and self.nonlocal_res4:
                nonlocal_after = nonlocal_positions(num_blocks)
            # The Fast widths are the Slow ones // beta_inv, each rounded down (PySlowFast).
            inner = self.width * 2**index
            specs.append(
                StageSpec(
                    index=index,
                    num_blocks=num_blocks,
                    inner=inner // ratio,
                    out=inner * EXPANSION // ratio,
                    spatial_stride=1 if index == 0 else 2,
                    temporal_kernel=temporal,
                    temporal_blocks=temporal_blocks,
                    nonlocal_after=nonlocal_after,
                )
            )
        return tuple(specs)

    def replace(self, **overrides: object) -> SlowFastConfig:
        """A copy with `overrides` applied (validated again); unknown names raise ValueError."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"SlowFastConfig has no field(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, object]:
        """Plain dict of the public fields (for logging and checkpoints)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> SlowFastConfig:
        """Inverse of `to_dict`; unknown keys raise ValueError."""
        return cls().replace(**values)


def nonlocal_positions(num_blocks: int) -> tuple[int, ...]:
    """Blocks of res4 followed by a non-local block.

    23 blocks (R101): after blocks 6, 13, 20 (PySlowFast's R101+NL). Otherwise every other
    block starting at 1 (1, 3, 5 for R50), as in the non-local networks paper.
    """
    if num_blocks == 23:
        return (6, 13, 20)
    return tuple(range(1, num_blocks, 2))
