"""The shape schedule of a run: which clip shape, batch and learning-rate factor every epoch
and every step trains at. Pure functions of numbers (:func:`multigrid_schedule`,
:func:`plain_schedule`), so the schedule is tested, printed and logged without a model.

Multigrid (Wu et al., CVPR 2020) as this project runs it, relative to the plain run's clip
(``T`` Slow frames at stride ``tau``, crop ``S``, ``B`` clips per worker and step):

- **long cycle**, per epoch: base shapes ``(T_i, S_i)`` from ``train.multigrid.long_cycle``;
  ``tau_i = tau*T/T_i`` keeps the window's span ``T*tau``; ``B_i = round(B*T*S^2/(T_i*S_i^2))``
  keeps the work per step; the learning rate is multiplied by ``B_i/B`` (linear scaling; the
  cosine over the run is unchanged). Crops are rounded to ``crop_multiple``.
- **short cycle**, per step: for each factor ``f`` of ``short_cycle`` a step at crop
  ``s = f*S_i`` of the *current* long-cycle crop with ``round((S_i/s)^2)`` batches of ``B_i``
  clips, then one step at ``(B_i, S_i)``; the learning rate does not change. (PySlowFast takes
  the short-cycle sizes from the full crop instead, so its ``1/sqrt2`` phases get only
  ``[2x, 1x, 1x]``: its issue 429. Here every phase gets ``4x, 2x, 1x``.)
- **epochs**: ``round(epochs * epoch_factor)`` in all; the last ``finetune_fraction`` of them
  at the full shape with the plain batch and no short cycle; the rest holds the long cycle
  ``long_cycles`` times, each shape given epochs in proportion to its mean clips per step, so
  that every phase of a cycle runs about the same number of steps.

Every rank derives its shape from the epoch and the step index alone, so all ranks train the
same shape at the same step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from raysf.clip_spec import ClipSpec
from training.multigrid.config import MultigridConfig


@dataclass(frozen=True)
class BaseShape:
    """The plain run's clip and batch: what the multigrid factors are relative to."""

    slow_frames: int
    tau: int
    crop: int
    batch: int  # clips per worker and step


@dataclass(frozen=True)
class ShortStep:
    """One step of a short cycle: ``micro_batches`` batches of the phase's ``batch`` clips,
    fed at ``crop`` (scaled on the device from the phase's crop)."""

    crop: int
    micro_batches: int


@dataclass(frozen=True)
class Shape:
    """A long-cycle shape: the clips a dataset decodes (``T``, ``tau``, ``crop``), the clips
    per batch, the learning-rate factor and the short cycle's steps."""

    slow_frames: int
    tau: int
    crop: int
    batch: int
    lr_factor: float
    short_cycle: tuple[ShortStep, ...]

    @property
    def clips_per_step(self) -> float:
        """Mean clips per step over the short cycle."""
        steps = self.short_cycle
        return self.batch * sum(s.micro_batches for s in steps) / len(steps)

    def data_key(self, base: BaseShape) -> str:
        """The train dataset this shape is decoded by: ``train`` at the plain clip, else
        ``train_<T>x<tau>_<crop>``."""
        if (self.slow_frames, self.tau, self.crop) == (base.slow_frames, base.tau, base.crop):
            return "train"
        return f"train_{self.slow_frames}x{self.tau}_{self.crop}"

    def clip_spec(self, spec: ClipSpec) -> ClipSpec:
        """``spec`` (the run's resolved spec) cut at this shape: its ``T``, ``tau`` and crop,
        the training short-side range scaled with the crop (the same field of view)."""
        scale = self.crop / spec.crop_size
        lo, hi = (max(self.crop, round(side * scale)) for side in spec.short_side_range)
        return spec.replace(
            slow_frames=self.slow_frames,
            tau=self.tau,
            crop_size=self.crop,
            short_side_range=(lo, hi),
        )


@dataclass(frozen=True)
class Phase:
    """Consecutive epochs at one shape (``name``: ``<cycle>.<shape>`` or ``finetune``)."""

    name: str
    first_epoch: int
    epochs: int
    shape: Shape


@dataclass(frozen=True)
class ShapeSchedule:
    """The phases of a whole run, epoch after epoch (see the module docstring)."""

    kind: str  # "plain" | "multigrid"
    base: BaseShape
    phases: tuple[Phase, ...]

    @property
    def epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def phase_index(self, epoch: int) -> int:
        """Index of the phase that trains ``epoch``."""
        for i, phase in enumerate(self.phases):
            if phase.first_epoch <= epoch < phase.first_epoch + phase.epochs:
                return i
        raise ValueError(f"epoch {epoch} is outside the schedule's {self.epochs} epochs")

    def phase_at(self, epoch: int) -> Phase:
        return self.phases[self.phase_index(epoch)]

    def data_keys(self) -> dict[str, Shape]:
        """One shape per train dataset the run needs (the first phase's of each key)."""
        keys: dict[str, Shape] = {}
        for phase in self.phases:
            keys.setdefault(phase.shape.data_key(self.base), phase.shape)
        return keys

    def step_shapes(self) -> list[tuple[int, int, int]]:
        """The distinct ``(clips, T, crop)`` inputs of the training steps, in order of first
        use: the graphs a compiled model is traced for."""
        seen: dict[tuple[int, int, int], None] = {}
        for phase in self.phases:
            shape = phase.shape
            for step in shape.short_cycle:
                seen.setdefault((shape.batch * step.micro_batches, shape.slow_frames, step.crop))
        return list(seen)

    def steps_in_epoch(self, epoch: int, rows_per_worker: int, max_steps: int | None = None) -> int:
        """Steps of ``epoch`` on a worker holding ``rows_per_worker`` rows (the last partial
        batch and an incomplete short-cycle step dropped), at most ``max_steps``."""
        return self.epoch_steps(epoch, rows_per_worker, max_steps)[1]

    def epoch_steps(
        self, epoch: int, rows_per_worker: int, max_steps: int | None = None
    ) -> tuple[int, int]:
        """``(short-cycle step the epoch starts at, its steps)``: the short cycle runs on across
        the epochs of a phase (on a small dataset an epoch may hold fewer steps than a cycle)."""
        phase = self.phase_at(epoch)
        counts = [s.micro_batches for s in phase.shape.short_cycle]
        micro = rows_per_worker // phase.shape.batch
        start = 0
        for current in range(phase.first_epoch, epoch + 1):
            steps = short_cycle_steps(micro, counts, start)
            steps = steps if max_steps is None else min(steps, max_steps)
            if current == epoch:
                return start, steps
            start = (start + steps) % len(counts)
        raise AssertionError("unreachable: the epoch lies in its phase")


def short_cycle_steps(micro_batches: int, counts: Sequence[int], start: int = 0) -> int:
    """Steps made of ``micro_batches`` batches when step ``i`` takes
    ``counts[(start + i) % len]`` of them, up to the first step that cannot get its count."""
    steps, left = 0, micro_batches
    while left >= counts[(start + steps) % len(counts)]:
        left -= counts[(start + steps) % len(counts)]
        steps += 1
    return steps


def round_crop(size: float, multiple: int) -> int:
    """``size`` rounded to the nearest multiple of ``multiple`` (at least one multiple)."""
    return max(multiple, multiple * round(size / multiple))


def plain_schedule(base: BaseShape, epochs: int) -> ShapeSchedule:
    """The plain run as a schedule: one phase at the base shape, one batch per step."""
    shape = Shape(
        base.slow_frames, base.tau, base.crop, base.batch, 1.0, (ShortStep(base.crop, 1),)
    )
    return ShapeSchedule("plain", base, (Phase("plain", 0, epochs, shape),))


def long_cycle_shape(cfg: MultigridConfig, base: BaseShape, index: int) -> Shape:
    """Shape ``index`` of the long cycle (``ValueError`` naming ``long_cycle`` when its ``T``
    cannot keep the span with an integer stride)."""
    t_factor, s_factor = cfg.long_cycle[index]
    frames = round(base.slow_frames * t_factor)
    span = base.slow_frames * base.tau
    if frames < 1 or span % frames:
        raise ValueError(
            f"long_cycle: shape {index} (T factor {t_factor}) gives T={frames}, which does not "
            f"divide the window's span T*tau = {base.slow_frames}*{base.tau} (the Slow stride must "
            "stay an integer): choose a factor that does"
        )
    crop = round_crop(base.crop * s_factor, cfg.crop_multiple)
    work = base.batch * base.slow_frames * base.crop**2
    batch = max(1, round(work / (frames * crop**2)))
    return Shape(frames, span // frames, crop, batch, batch / base.batch, short_cycle(cfg, crop))


def short_cycle(cfg: MultigridConfig, crop: int) -> tuple[ShortStep, ...]:
    """The short cycle of a long-cycle crop: a step per factor, then the crop itself
    (``ValueError`` naming ``crop_multiple`` when rounding makes two of its crops equal)."""
    steps = []
    for factor in cfg.short_cycle:
        size = min(crop, round_crop(crop * factor, cfg.crop_multiple))
        steps.append(ShortStep(size, max(1, round((crop / size) ** 2))))
    crops = [step.crop for step in steps] + [crop]
    if len(set(crops)) < len(crops):
        raise ValueError(
            f"crop_multiple: {cfg.crop_multiple} rounds the short cycle of crop {crop} to the "
            f"crops {crops}, not all different: lower crop_multiple or use a larger crop"
        )
    return (*steps, ShortStep(crop, 1))


def split_epochs(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` epochs split in proportion to ``weights`` (cumulative rounding: the parts sum
    to ``total``; a part may be 0)."""
    whole, done, parts, cumulative = sum(weights), 0, [], 0.0
    for weight in weights:
        cumulative += weight
        edge = round(total * cumulative / whole)
        parts.append(edge - done)
        done = edge
    return parts


def multigrid_epochs(epochs: int, cfg: MultigridConfig) -> int:
    """Epochs a multigrid run of ``epochs`` plain epochs trains: ``round(epochs*epoch_factor)``."""
    return max(1, round(epochs * cfg.epoch_factor))


def multigrid_schedule(cfg: MultigridConfig, base: BaseShape, epochs: int) -> ShapeSchedule:
    """The multigrid schedule of a run of ``epochs`` plain epochs (see the module docstring)."""
    total = multigrid_epochs(epochs, cfg)
    finetune = max(1, round(total * cfg.finetune_fraction)) if cfg.finetune_fraction else 0
    finetune = min(finetune, total - 1) if total > 1 else finetune
    shapes = [long_cycle_shape(cfg, base, i) for i in range(len(cfg.long_cycle))]
    weights = [shape.clips_per_step for shape in shapes] * cfg.long_cycles
    phases, first = [], 0
    for i, count in enumerate(split_epochs(total - finetune, weights)):
        if count:
            name = f"{i // len(shapes) + 1}.{i % len(shapes) + 1}"
            phases.append(Phase(name, first, count, shapes[i % len(shapes)]))
            first += count
    if finetune:
        full = plain_schedule(base, finetune).phases[0].shape
        phases.append(Phase("finetune", first, finetune, full))
    return ShapeSchedule("multigrid", base, tuple(phases))
