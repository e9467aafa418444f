"""The sweep's space expanded into trial points, and each point's training job.

A *point* is one trial: a few dotted overrides of the base training config (``model.overrides.
alpha``, ``model.overrides.fusion``, ...), a short ASCII key (trial and run names) and a label in
the paper's wording (the ablation table's "configuration" column). With seeds
(``space.seeds``/``space.repeats``) every configuration becomes one point per seed: the same
overrides plus ``train.seed`` (model init, the loader's augmentation and order, the shuffle),
key ``<configuration key>-s<seed>``; nothing else differs between the seeds. Every point's
``TrainJobConfig`` and ``SlowFastConfig`` is built before the first trial starts, so an invalid
combination (``beta_inv`` not dividing ``width``, a typo in a fusion name) stops the sweep at
start with an error naming the ``space.*`` key.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace
from typing import Any

import slowfast_model
from raysf.config import ConfigError, build, to_dict
from training.config import TrainJobConfig, resolve_path
from training.tune.config import SearchConfig, SpaceConfig

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


@dataclass(frozen=True)
class Point:
    """One trial of the sweep.

    Attributes:
        key: ASCII id, unique in the sweep (``tsc-a4-b8-rgb``, ``tsc-a4-b8-rgb-s1`` with seeds);
            names the trial's runs.
        label: the paper's wording (``SlowFast α=4 β=1/8 T-conv``), the same for every seed.
        overrides: dotted keys of ``TrainJobConfig`` -> values.
        dims: the swept values (fusion, alpha, beta_inv, fast_input, base_lr, pathways).
        config_key: the configuration's key, shared by its seeds (= ``key`` without seeds).
        seed: ``train.seed`` of the trial (``None``: the base config's, no seed dimension).
    """

    key: str
    label: str
    overrides: dict[str, Any]
    dims: dict[str, Any]
    config_key: str = ""
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.config_key:
            object.__setattr__(self, "config_key", self.key)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "overrides": self.overrides,
            "dims": self.dims,
            "config_key": self.config_key,
            "seed": self.seed,
        }


def make_points(space: SpaceConfig, base: TrainJobConfig) -> list[Point]:
    """Expand the space: SlowFast product (fusion x alpha x beta x fast input x lr), then the
    Fast-only baselines (alpha x beta x fast input x lr), then one Slow-only per lr."""
    lrs: list[float | None] = list(space.base_lr) or [None]
    show_input = len(space.fast_input) > 1 or space.fast_input != ["rgb"]
    points = [
        _two_pathway_point("slowfast", fusion, alpha, beta_inv, fast_input, show_input)
        for fusion, alpha, beta_inv, fast_input in itertools.product(
            space.fusion, space.alpha, space.beta_inv, space.fast_input
        )
    ]
    if space.fast_only:
        points += [
            _two_pathway_point("fast_only", "none", alpha, beta_inv, fast_input, show_input)
            for alpha, beta_inv, fast_input in itertools.product(
                space.alpha, space.beta_inv, space.fast_input
            )
        ]
    if space.slow_only:
        dims = {"pathways": "slow_only", "fusion": "none", "alpha": None, "beta_inv": None}
        dims["fast_input"] = None
        overrides = {
            "model.overrides.pathways": "slow_only",
            "model.overrides.fusion": "none",
            "model.overrides.fast_input": "rgb",
        }
        points.append(Point("slow_only", "Slow-only", overrides, dims))
    return [_with_lr(p, lr, base.optim.base_lr, len(lrs) > 1) for p in points for lr in lrs]


def _two_pathway_point(
    pathways: str, fusion: str, alpha: int, beta_inv: int, fast_input: str, show_input: bool
) -> Point:
    """A SlowFast point (``tsc-a4-b8-rgb``) or a Fast-only one (``fast_only-a4-b8-rgb``)."""
    dims = {"pathways": pathways, "fusion": fusion, "alpha": alpha, "beta_inv": beta_inv}
    dims["fast_input"] = fast_input
    if pathways == "fast_only":
        key = f"fast_only-a{alpha}-b{beta_inv}-{fast_input}"
        label = f"Fast-only α={alpha} β=1/{beta_inv}"
    else:
        key = f"{FUSION_SHORT[fusion]}-a{alpha}-b{beta_inv}-{fast_input}"
        label = f"SlowFast α={alpha} β=1/{beta_inv} {FUSION_LABEL[fusion]}"
    if show_input:
        label += f" {fast_input}"
    overrides = {
        "model.overrides.pathways": pathways,
        "model.overrides.fusion": fusion,
        "model.overrides.alpha": alpha,
        "model.overrides.beta_inv": beta_inv,
        "model.overrides.fast_input": fast_input,
    }
    return Point(key, label, overrides, dims)


def _with_lr(point: Point, lr: float | None, base_lr: float, show: bool) -> Point:
    """The point at learning rate ``lr`` (``None``: the base config's), named by it when
    several are swept."""
    point = replace(point, dims={**point.dims, "base_lr": base_lr if lr is None else lr})
    if lr is None:
        return point
    overrides = {**point.overrides, "optim.base_lr": lr}
    if not show:
        return replace(point, overrides=overrides)
    return replace(
        point, key=f"{point.key}-lr{lr:g}", label=f"{point.label} lr={lr:g}", overrides=overrides
    )


def with_seeds(points: list[Point], seeds: list[int] | None) -> list[Point]:
    """One point per configuration and seed, seed-major (every configuration's seed 0 first, so
    that an interrupted sweep has whole seeds to compare); ``None`` leaves ``points`` as they
    are."""
    if seeds is None:
        return list(points)
    return [
        replace(
            p,
            key=f"{p.key}-s{seed}",
            overrides={**p.overrides, "train.seed": seed},
            config_key=p.key,
            seed=seed,
        )
        for seed in seeds
        for p in points
    ]


def select_points(points: list[Point], search: SearchConfig) -> list[Point]:
    """All points (grid) or ``num_samples`` of them drawn without replacement (random)."""
    if search.mode == "grid" or search.num_samples >= len(points):
        return list(points)
    rng = random.Random(search.seed)
    chosen = sorted(rng.sample(range(len(points)), search.num_samples))
    return [points[i] for i in chosen]


def trial_job(
    base: TrainJobConfig,
    point: Point | dict[str, Any],
    train_root: str,
    sweep: str,
    source: str = "tune config",
) -> TrainJobConfig:
    """The trial's ``TrainJobConfig``: base + the point's overrides + per-trial names, validated.

    Paths are made absolute (Tune runs trials in their own working folder); ``resume`` is on so
    that a trial restarted by ``Tuner.restore`` continues its Ray Train run and its MLflow run.
    A point whose network is invalid is a ``ConfigError`` naming the ``space.*`` key at fault.
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
    try:
        return build(TrainJobConfig, data, source=f"trial {p.key}")
    except ConfigError as exc:
        raise _point_error(exc, p, base.model.preset, source) from exc


def absolute_paths(job: TrainJobConfig) -> TrainJobConfig:
    """``job`` with its local relative paths (dataset, pretrained weights) made absolute here.

    The sweep's driver passes this base to its trials: a trial runs in its own Tune working
    folder, where a relative ``demo_output/...`` would name a folder that does not exist.
    """
    data = replace(job.data, dataset=resolve_path(job.data.dataset))
    model = job.model
    if model.pretrained is not None:
        pretrained = replace(model.pretrained, path=resolve_path(model.pretrained.path))
        model = replace(model, pretrained=pretrained)
    return replace(job, data=data, model=model)


def check_point(job: TrainJobConfig, point: Point, num_classes: int, source: str):
    """Build the point's SlowFastConfig; a ``ConfigError`` names the ``space.*`` key at fault."""
    try:
        return job.model.resolve(num_classes)
    except ValueError as exc:
        raise _point_error(exc, point, job.model.preset, source) from exc


def _point_error(exc: Exception, point: Point, preset: str, source: str) -> ConfigError:
    """``<source>: space.<dim>: trial <key> (<label>): <message>`` for an invalid point."""
    msg = str(exc)
    key = "train.model.overrides"
    for name in ("beta_inv", "alpha", "fusion", "fast_input", "pathways"):
        if f"SlowFastConfig.{name}=" in msg:
            key = f"space.{name}" if name != "pathways" else "space.slow_only"
            break
    if preset not in slowfast_model.list_models():
        key = "train.model.preset"
    return ConfigError(f"{source}: {key}: trial {point.key} ({point.label}): {msg}")


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
