"""Typed config of the ablation sweep (``jobs/tune.yaml``) and its expansion into trial points.

A *point* is one trial: a few dotted overrides of the base training config (``model.overrides.
alpha``, ``model.overrides.fusion``, ...), a short ASCII key (trial and run names) and a label in
the paper's wording (the ablation table's "configuration" column). Every point's
``TrainJobConfig`` and ``SlowFastConfig`` is built before the first trial starts, so an invalid
combination (``beta_inv`` not dividing ``width``, a typo in a fusion name) stops the sweep at
start with an error naming the ``space.*`` key.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from jobs.config import TrainJobConfig, resolve_path
from raysf.config import ConfigError, build, load_config, read_yaml, to_dict

#: The lateral connections of the paper's Table 5a, plus ``none`` (two pathways, no laterals).
FUSIONS = ("time_to_channel", "time_strided_sampling", "time_strided_conv", "none")
FUSION_SHORT = {
    "time_to_channel": "ttc",
    "time_strided_sampling": "tss",
    "time_strided_conv": "tsc",
    "none": "nolat",
}
FUSION_LABEL = {
    "time_to_channel": "TtoC",
    "time_strided_sampling": "T-sample",
    "time_strided_conv": "T-conv",
    "none": "no lateral",
}
FAST_INPUTS = ("rgb", "gray", "time_diff")
METRICS = ("val_top1", "val_top5", "val_loss")


@dataclass(frozen=True)
class SpaceConfig:
    """The swept dimensions; SlowFast points are their product, plus one Slow-only per lr."""

    alpha: list[int] = field(default_factory=lambda: [2, 4, 8])
    beta_inv: list[int] = field(default_factory=lambda: [4, 8, 16])
    fusion: list[str] = field(default_factory=lambda: list(FUSIONS))
    fast_input: list[str] = field(default_factory=lambda: ["rgb"])
    base_lr: list[float] = field(default_factory=list)
    slow_only: bool = True

    def validate(self) -> None:
        for name in ("alpha", "beta_inv", "fusion", "fast_input", "base_lr"):
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
class TuneJobConfig:
    train_config: str | None = "jobs/train.yaml"
    train: dict[str, Any] = field(default_factory=dict)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)


@dataclass(frozen=True)
class Point:
    """One trial of the sweep.

    Attributes:
        key: ASCII id, unique in the sweep (``tsc-a4-b8-rgb``); names the trial's runs.
        label: the paper's wording (``SlowFast α=4 β=1/8 T-conv``).
        overrides: dotted keys of ``TrainJobConfig`` -> values.
        dims: the swept values (fusion, alpha, beta_inv, fast_input, base_lr, pathways).
    """

    key: str
    label: str
    overrides: dict[str, Any]
    dims: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "overrides": self.overrides,
            "dims": self.dims,
        }


def load_tune_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()):
    """Read and validate ``jobs/tune.yaml``; errors name the file and the dotted key."""
    return load_config(TuneJobConfig, path, overrides)


def base_train_job(cfg: TuneJobConfig, source: str = "tune config") -> TrainJobConfig:
    """The training config every trial starts from: ``train_config`` file + the ``train:`` section."""
    data: dict[str, Any] = {}
    if cfg.train_config:
        path = Path(cfg.train_config)
        if not path.exists() and not path.is_absolute() and Path(source).parent.exists():
            sibling = Path(source).parent / path.name
            path = sibling if sibling.exists() else path
        data = read_yaml(path)
    data = _deep_merge(data, cfg.train)
    return build(TrainJobConfig, data, source=f"{source}: train")


def make_points(space: SpaceConfig, base: TrainJobConfig) -> list[Point]:
    """Expand the space: SlowFast product (fusion x alpha x beta x fast input x lr) + Slow-only."""
    lrs: list[float | None] = list(space.base_lr) or [None]
    points = []
    for fusion, alpha, beta_inv, fast_input, lr in itertools.product(
        space.fusion, space.alpha, space.beta_inv, space.fast_input, lrs
    ):
        dims = {
            "pathways": "slowfast",
            "fusion": fusion,
            "alpha": alpha,
            "beta_inv": beta_inv,
            "fast_input": fast_input,
            "base_lr": lr if lr is not None else base.optim.base_lr,
        }
        key = f"{FUSION_SHORT[fusion]}-a{alpha}-b{beta_inv}-{fast_input}"
        label = f"SlowFast α={alpha} β=1/{beta_inv} {FUSION_LABEL[fusion]}"
        if len(space.fast_input) > 1 or fast_input != "rgb":
            label += f" {fast_input}"
        overrides = {
            "model.overrides.pathways": "slowfast",
            "model.overrides.fusion": fusion,
            "model.overrides.alpha": alpha,
            "model.overrides.beta_inv": beta_inv,
            "model.overrides.fast_input": fast_input,
        }
        points.append(_with_lr(Point(key, label, overrides, dims), lr, len(lrs) > 1))
    if space.slow_only:
        for lr in lrs:
            dims = {
                "pathways": "slow_only",
                "fusion": "none",
                "alpha": None,
                "beta_inv": None,
                "fast_input": None,
                "base_lr": lr if lr is not None else base.optim.base_lr,
            }
            overrides = {
                "model.overrides.pathways": "slow_only",
                "model.overrides.fusion": "none",
                "model.overrides.fast_input": "rgb",
            }
            point = Point("slow_only", "Slow-only", overrides, dims)
            points.append(_with_lr(point, lr, len(lrs) > 1))
    return points


def _with_lr(point: Point, lr: float | None, show: bool) -> Point:
    if lr is None:
        return point
    overrides = {**point.overrides, "optim.base_lr": lr}
    if not show:
        return replace(point, overrides=overrides)
    return replace(
        point, key=f"{point.key}-lr{lr:g}", label=f"{point.label} lr={lr:g}", overrides=overrides
    )


def select_points(points: list[Point], search: SearchConfig) -> list[Point]:
    """All points (grid) or ``num_samples`` of them drawn without replacement (random)."""
    if search.mode == "grid" or search.num_samples >= len(points):
        return list(points)
    rng = random.Random(search.seed)
    chosen = sorted(rng.sample(range(len(points)), search.num_samples))
    return [points[i] for i in chosen]


def trial_job(base: TrainJobConfig, point: Point | dict[str, Any], train_root: str, sweep: str):
    """The trial's ``TrainJobConfig``: base + the point's overrides + per-trial names, validated.

    Paths are made absolute (Tune runs trials in their own working folder); ``resume`` is on so
    that a trial restarted by ``Tuner.restore`` continues its Ray Train run and its MLflow run.
    """
    p = point if isinstance(point, Point) else Point(**point)
    data = to_dict(base)
    for dotted, value in p.overrides.items():
        _set_dotted(data, dotted, value)
    data["data"]["dataset"] = resolve_path(data["data"]["dataset"])
    if data["model"].get("pretrained"):
        data["model"]["pretrained"]["path"] = resolve_path(data["model"]["pretrained"]["path"])
    data["storage"]["path"] = train_root
    data["storage"]["name"] = f"{sweep}.{p.key}"
    data["mlflow"]["run_name"] = f"{sweep}.{p.key}"
    data["resume"] = True
    return build(TrainJobConfig, data, source=f"trial {p.key}")


def check_point(job: TrainJobConfig, point: Point, num_classes: int, source: str):
    """Build the point's SlowFastConfig; a ``ConfigError`` names the ``space.*`` key at fault."""
    import slowfast_model

    overrides = dict(job.model.overrides)
    overrides.setdefault("num_classes", num_classes)
    try:
        return slowfast_model.get_config(job.model.preset, **overrides)
    except (KeyError, TypeError, ValueError) as exc:
        msg = str(exc)
        key = "train.model.overrides"
        for name in ("beta_inv", "alpha", "fusion", "fast_input", "pathways"):
            if f"SlowFastConfig.{name}=" in msg:
                key = f"space.{name}" if name != "pathways" else "space.slow_only"
                break
        if job.model.preset not in slowfast_model.list_models():
            key = "train.model.preset"
        raise ConfigError(f"{source}: {key}: trial {point.key} ({point.label}): {msg}") from exc


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out
