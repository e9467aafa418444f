"""How a clip is cut from a video and fed to a network: one frozen, validated :class:`ClipSpec`.

Ingest writes the spec its records were cut with into ``manifest.json``; training resolves the
spec of a run from that manifest, the model and its own ``data.clip`` section
(:meth:`ClipSpec.resolve`); checkpoints store the resolved spec; the loader, the evaluation
and the prediction read it. Nothing else describes sampling, sizes, views or normalisation.

Fields (paper notation)::

    slow_frames (T)   frames of the Slow pathway          None: the model's
    tau               Slow stride, frames at target_fps   None: the model's default_tau
    alpha             Fast/Slow frame-rate ratio          None: the model's
    rule              index rule: stride | linspace       (pipelines.sampling)
    target_fps        rate tau is measured at             None: native frames
    crop_size         square crop fed to the network
    short_side_range  train scale jitter (inclusive)
    test_short_side   short side of val/test views
    flip              random horizontal flip in training
    num_val_clips     windows per val video               None: the dataset's
    num_test_clips    windows per test video (10-view)    None: the dataset's
    num_test_crops    spatial crops per test window: 1 | 3
    mean, std         per-channel statistics, RGB on [0, 1]
    normalise         fixed: (x - mean) / std | clip: then each clip's own per-channel
                      mean and std removed (training/device/inputs.py)

``None`` marks a value derived from the model or the dataset; a *resolved* spec has none
(:attr:`ClipSpec.is_resolved`), and only resolved specs reach the loader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: Kinetics mean/std (RGB, on [0, 1] pixels) used by PySlowFast.
KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)

RULES = ("stride", "linspace")
#: ``fixed``: ``(x - mean) / std`` with the spec's statistics (PySlowFast). ``clip``: then each
#: clip is standardised by its own per-channel mean and std over its Fast frames (the Slow
#: frames get the same statistics), which removes a clip's global colour and contrast.
NORMALISATIONS = ("fixed", "clip")

#: Fields that may be ``None`` (derived) before :meth:`ClipSpec.resolve`.
MODEL_FIELDS = ("slow_frames", "tau", "alpha")
DATASET_FIELDS = ("num_val_clips", "num_test_clips")


@dataclass(frozen=True)
class ClipSpec:
    """Everything that says how a clip is cut and fed (see the module docstring)."""

    slow_frames: int | None = None
    tau: int | None = None
    alpha: int | None = None
    rule: Literal["stride", "linspace"] = "stride"
    target_fps: float | None = None
    crop_size: int = 224
    short_side_range: tuple[int, int] = (256, 320)
    test_short_side: int = 256
    flip: bool = True
    num_val_clips: int | None = None
    num_test_clips: int | None = None
    num_test_crops: int = 3
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD
    normalise: Literal["fixed", "clip"] = "fixed"

    def __post_init__(self) -> None:
        for name in (*MODEL_FIELDS, *DATASET_FIELDS):
            value = getattr(self, name)
            if value is not None:
                _check(_is_int(value) and value >= 1, name, value, "must be an integer >= 1")
        _check(self.rule in RULES, "rule", self.rule, f"must be one of {list(RULES)}")
        if self.target_fps is not None:
            _check(self.target_fps > 0, "target_fps", self.target_fps, "must be positive or null")
        _check(_is_int(self.crop_size) and self.crop_size >= 1, "crop_size", self.crop_size, ">= 1")
        lo, hi = self.short_side_range
        _check(
            self.crop_size <= lo <= hi,
            "short_side_range",
            self.short_side_range,
            f"must satisfy crop_size ({self.crop_size}) <= low <= high",
        )
        _check(
            self.test_short_side >= self.crop_size,
            "test_short_side",
            self.test_short_side,
            f"must be >= crop_size ({self.crop_size})",
        )
        _check(self.num_test_crops in (1, 3), "num_test_crops", self.num_test_crops, "1 or 3")
        _check(len(self.mean) == 3, "mean", self.mean, "needs 3 values (RGB)")
        _check(len(self.std) == 3 and all(s > 0 for s in self.std), "std", self.std, "3 values > 0")
        _check(
            self.normalise in NORMALISATIONS,
            "normalise",
            self.normalise,
            f"must be one of {list(NORMALISATIONS)}",
        )

    # ----------------------------------------------------------------- derived quantities
    @property
    def is_resolved(self) -> bool:
        """True when no field is left to derive (what the loader requires)."""
        return all(getattr(self, n) is not None for n in (*MODEL_FIELDS, *DATASET_FIELDS))

    @property
    def fast_frames(self) -> int:
        """``alpha * T``: frames of the Fast pathway."""
        self.require_resolved("fast_frames")
        return self.alpha * self.slow_frames

    def clip_nbytes(self) -> int:
        """Bytes of one decoded uint8 row: ``alpha*T * crop^2 * 3``.

        Every index rule makes the Slow frames positions of the Fast ones, so a row carries only
        the Fast frames (``pipelines.sampling.slow_positions``; the training device takes the
        Slow ones). Decoded rows are far larger than the compressed records they come from (a
        32-frame 224x224 clip is ~4.8 MB against tens of KB of H.264); size the object store
        with it.
        """
        return self.fast_frames * self.crop_size**2 * 3

    def require_resolved(self, what: str) -> ClipSpec:
        """``self`` if resolved, else a ``ValueError`` naming the unset fields and ``what``."""
        unset = [n for n in (*MODEL_FIELDS, *DATASET_FIELDS) if getattr(self, n) is None]
        if unset:
            raise ValueError(
                f"{what} needs a resolved ClipSpec; unset: {unset} "
                "(see ClipSpec.resolve: they come from the model and the dataset)"
            )
        return self

    # ----------------------------------------------------------------- resolution
    def resolve(
        self,
        *,
        slow_frames: int,
        alpha: int,
        default_tau: int,
        dataset: ClipSpec,
        where: str = "data.clip",
    ) -> ClipSpec:
        """Fill the derived fields: T and alpha from the model (an explicit value must agree),
        tau from the model's ``default_tau`` unless set, the val/test clip counts from the
        ``dataset`` spec (windows are cut at ingest, so an explicit value must agree).

        ``ValueError`` messages name ``where.<field>``.
        """
        values: dict[str, Any] = {}
        for name, model_value in (("slow_frames", slow_frames), ("alpha", alpha)):
            mine = getattr(self, name)
            if mine is not None and mine != model_value:
                raise ValueError(
                    f"{where}.{name}={mine} differs from the model's {name}={model_value} "
                    f"(set it in the model: model.overrides.{name})"
                )
            values[name] = model_value
        values["tau"] = self.tau if self.tau is not None else default_tau
        for name in DATASET_FIELDS:
            theirs, mine = getattr(dataset, name), getattr(self, name)
            if mine is not None and theirs is not None and mine != theirs:
                raise ValueError(
                    f"{where}.{name}={mine} differs from the dataset's {theirs}: the windows "
                    "are cut at ingest (re-ingest, or leave it null)"
                )
            values[name] = mine if mine is not None else theirs
        return dataclasses.replace(self, **values)

    def replace(self, **changes: Any) -> ClipSpec:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-friendly dict (tuples become lists)."""
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str = "clip spec") -> ClipSpec:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming ``origin``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{origin}: unknown clip spec field(s) {unknown}")
        values = dict(data)
        for name in ("short_side_range", "mean", "std"):
            if name in values and values[name] is not None:
                values[name] = tuple(values[name])
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{origin}: {exc}") from exc

    @classmethod
    def from_legacy(cls, data: Mapping[str, Any], origin: str = "clip spec") -> ClipSpec:
        """A spec from the version-1 forms: a checkpoint's ``preprocessing`` or a manifest's
        ``sampling`` (same field names, a subset; anything else is ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("num_val_clips", 1)  # version 1 cut one window per val video
        values.setdefault("num_test_clips", 10)  # and ten per test video unless it said
        return cls.from_dict(values, origin)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(ok: bool, name: str, value: Any, message: str) -> None:
    if not ok:
        raise ValueError(f"ClipSpec.{name}={value!r}: {message}")
