"""Where and how the decode tasks run, and in which form they cut training views: the YAML section
``data.decode`` of a training job (:class:`DecodeOptions`), validated once, here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

#: How train mode cuts its views of a record (val and test rows are always RGB):
#:
#: - ``rgb``: the whole frame scaled to the random short side, then cropped;
#: - ``crop_first``: only the crop's source region scaled (2-3x fewer pixels through swscale, the
#:   same draws; see :mod:`pipelines.views`);
#: - ``planes``: the crop's source region shipped as 4:2:0 planes, scaled, flipped and converted
#:   to RGB on the training device (:mod:`pipelines.decode.planes`, the same draws).
TrainView = Literal["rgb", "crop_first", "planes"]
TRAIN_VIEW_NAMES: tuple[str, ...] = get_args(TrainView)


@dataclass(frozen=True)
class DecodeOptions:
    """Where and how the decode tasks run (Ray Data ``map_batches``).

    Attributes:
        num_cpus: CPUs reserved per decode task.
        batch_size: records per task call.
        resources: extra Ray resources per task (``{"decode_node": 0.001}`` places decoding on
            nodes that advertise a custom ``decode_node`` resource).
        threads: decoder threads per task; None: one per reserved CPU (``num_cpus`` rounded
            down, at least 1), so the tasks together use the cores Ray gave them and no more.
        train_view: the form of train mode's views (:data:`TrainView`).
        clips_per_decode: train mode cuts this many rows (each its own random crop and flip,
            one window and short side) from each record's one decode; an epoch then has this
            many times the records' rows (:func:`pipelines.views.train_clips`). Val and test
            are unchanged.
    """

    num_cpus: float = 1.0
    batch_size: int = 8
    resources: dict[str, float] = field(default_factory=dict)
    threads: int | None = None
    train_view: TrainView = "rgb"
    clips_per_decode: int = 1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """``ValueError`` starting with the field's name (the config names ``data.decode.<field>``)."""
        if isinstance(self.num_cpus, bool) or not self.num_cpus > 0:
            raise ValueError(f"num_cpus: must be positive, got {self.num_cpus!r}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size: must be an int >= 1, got {self.batch_size!r}")
        if self.threads is not None and (not _is_int(self.threads) or self.threads < 1):
            raise ValueError(f"threads: must be an int >= 1 or null, got {self.threads!r}")
        if self.train_view not in TRAIN_VIEW_NAMES:
            raise ValueError(
                f"train_view: must be one of {TRAIN_VIEW_NAMES}, got {self.train_view!r}"
            )
        if not _is_int(self.clips_per_decode) or self.clips_per_decode < 1:
            raise ValueError(
                f"clips_per_decode: must be an int >= 1, got {self.clips_per_decode!r}"
            )

    @property
    def decoder_threads(self) -> int:
        """Decoder threads per task (``threads``, or one per reserved CPU)."""
        return self.threads if self.threads is not None else max(1, int(self.num_cpus))

    def remote_args(self) -> dict[str, Any]:
        """The decode task's Ray resource arguments (``num_cpus``, custom ``resources``)."""
        remote: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.resources:
            remote["resources"] = dict(self.resources)
        return remote


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
