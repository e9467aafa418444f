"""Typed config of the ablation sweep (``jobs/tune.yaml``), parsed once at the entry point.

``train`` is the base training job of every trial: the ``train_config`` file with the
``train:`` section of the sweep file merged over it, validated as a
:class:`~training.config.TrainJobConfig`, so its errors name ``train.<key>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from raysf.config import apply_overrides, build, deep_merge, read_yaml
from slowfast_model.config import FAST_INPUTS
from training.config import TrainJobConfig

#: The lateral connections of the paper's Table 5a, plus ``none`` (two pathways, no laterals).
FUSIONS = ("time_to_channel", "time_strided_sampling", "time_strided_conv", "none")


@dataclass(frozen=True)
class SpaceConfig:
    """The swept dimensions; SlowFast points are their product, plus the Fast-only baselines
    (alpha x beta x fast input) and one Slow-only per lr, each once per seed."""

    alpha: list[int] = field(default_factory=lambda: [2, 4, 8])
    beta_inv: list[int] = field(default_factory=lambda: [4, 8, 16])
    fusion: list[str] = field(default_factory=lambda: list(FUSIONS))
    # any of the network's FAST_INPUTS: rgb, gray, time_diff, half_res, flow
    fast_input: list[str] = field(default_factory=lambda: ["rgb"])
    base_lr: list[float] = field(default_factory=list)
    slow_only: bool = True
    fast_only: bool = False  # add the Fast-only baselines (alpha x beta x fast input)
    # Seeds: every configuration runs once per seed, everything else equal. [] and repeats
    # null = one run per configuration with train.train.seed; repeats N = seeds 0..N-1.
    seeds: list[int] = field(default_factory=list)
    repeats: int | None = None

    def seed_list(self) -> list[int] | None:
        """The seeds to run, or ``None`` for one run per configuration (``train.train.seed``)."""
        if self.repeats is not None:
            return list(range(self.repeats))
        return list(self.seeds) or None

    def validate(self) -> None:
        for name in ("alpha", "beta_inv", "fusion", "fast_input", "base_lr", "seeds"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"space.{name} has duplicates: {values}")
        for name in ("alpha", "beta_inv", "fusion", "fast_input"):
            if not getattr(self, name):
                raise ValueError(f"space.{name} must list at least one value")
        for f in self.fusion:
            if f not in FUSIONS:
                raise ValueError(f"space.fusion: {f!r} is not one of {list(FUSIONS)}")
        for f in self.fast_input:
            if f not in FAST_INPUTS:
                raise ValueError(f"space.fast_input: {f!r} is not one of {list(FAST_INPUTS)}")
        if any(a < 1 for a in self.alpha) or any(b < 1 for b in self.beta_inv):
            raise ValueError("space.alpha and space.beta_inv values must be >= 1")
        if any(lr <= 0 for lr in self.base_lr):
            raise ValueError("space.base_lr values must be positive")
        if self.repeats is not None and self.seeds:
            raise ValueError("space.seeds and space.repeats: give one of them, not both")
        if self.repeats is not None and self.repeats < 1:
            raise ValueError(f"space.repeats must be >= 1 or null, got {self.repeats}")
        if any(s < 0 for s in self.seeds):
            raise ValueError(f"space.seeds must be >= 0, got {self.seeds}")


@dataclass(frozen=True)
class AshaConfig:
    enabled: bool = True
    grace_period: int = 1
    reduction_factor: float = 2.0

    def validate(self) -> None:
        if self.grace_period < 1 or self.reduction_factor <= 1:
            raise ValueError("asha.grace_period >= 1 and asha.reduction_factor > 1")


@dataclass(frozen=True)
class SearchConfig:
    mode: Literal["grid", "random"] = "grid"
    num_samples: int = 8
    seed: int = 0
    metric: Literal["val_top1", "val_top5", "val_loss"] = "val_top1"
    max_concurrent: int | None = None
    trial_cpus: float = 0.1
    asha: AshaConfig = field(default_factory=AshaConfig)

    def validate(self) -> None:
        if self.num_samples < 1:
            raise ValueError(f"search.num_samples must be >= 1, got {self.num_samples}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ValueError("search.max_concurrent must be >= 1 or null")
        if self.trial_cpus < 0:
            raise ValueError("search.trial_cpus must be >= 0")

    @property
    def mode_of_metric(self) -> str:
        return "min" if self.metric == "val_loss" else "max"


@dataclass(frozen=True)
class SweepConfig:
    name: str = "ablation"
    storage_path: str = "demo_output/tune"
    resume: bool = True
    retry_errored: bool = False
    export_path: str | None = None
    local_num_cpus: int | None = None

    def validate(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"sweep.name must be a non-empty name without '/', got {self.name!r}")


@dataclass(frozen=True)
class ReportConfig:
    """How the seeds of a configuration are summarised (``training.tune.report``)."""

    # Configuration key (a trial key without its -s<seed>, e.g. slow_only, tsc-a4-b8-rgb) the
    # paired differences are taken against; null = slow_only when it is swept, else none.
    baseline: str | None = None
    level: float = 0.95  # confidence level of the t intervals

    def validate(self) -> None:
        if not 0 < self.level < 1:
            raise ValueError(f"report.level must be in (0, 1), got {self.level}")


@dataclass(frozen=True)
class TuneJobConfig:
    """The sweep: every trial's base training job, the space, the search, the sweep and how
    seeds are reported."""

    train_config: str | None = "jobs/train.yaml"
    train: TrainJobConfig = field(default_factory=TrainJobConfig)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def validate(self) -> None:
        seeds = self.space.seed_list()
        if seeds and len(seeds) > 1 and self.search.asha.enabled:
            # ASHA would stop some seeds of a configuration and not others: the seeds would no
            # longer share a schedule, and the means would mix 1-epoch with full runs.
            raise ValueError(
                "search.asha.enabled: must be false when space.seeds/space.repeats run several "
                "seeds (every seed of a configuration trains the same epochs)"
            )


def load_tune_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TuneJobConfig:
    """Read ``jobs/tune.yaml`` (and its ``train_config``), apply dotted overrides, validate.

    Errors name the file and the dotted key (``train.optim.base_lrr: unknown key``).
    """
    source = str(path) if path else "tune config"
    data = read_yaml(path) if path else {}
    data = apply_overrides(data, overrides)
    train_file = data.get("train_config", TuneJobConfig.train_config)
    base = read_yaml(_find_train_config(train_file, path)) if train_file else {}
    data["train"] = deep_merge(base, data.get("train") or {})
    return build(TuneJobConfig, data, source=source)


def _find_train_config(name: str, sweep_file: str | Path | None) -> Path:
    """``name`` as given, else next to the sweep file (``jobs/train.yaml`` from anywhere)."""
    path = Path(name)
    if path.exists() or path.is_absolute() or sweep_file is None:
        return path
    sibling = Path(sweep_file).parent / path.name
    return sibling if sibling.exists() else path
