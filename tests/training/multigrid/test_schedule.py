"""The multigrid shape schedule: the invariants of the long and short cycles, the epochs, the
steps of an epoch and the table (pure functions, no model)."""

import math

import pytest

from raysf.clip_spec import ClipSpec
from training.multigrid.config import MultigridConfig
from training.multigrid.schedule import (
    BaseShape,
    multigrid_schedule,
    plain_schedule,
    round_crop,
    short_cycle_steps,
    split_epochs,
)
from training.multigrid.table import schedule_rows, schedule_table

R50 = BaseShape(slow_frames=8, tau=8, crop=224, batch=8)
TINY = BaseShape(slow_frames=4, tau=4, crop=48, batch=8)


@pytest.mark.parametrize("base", [R50, TINY], ids=["r50", "tiny"])
def test_long_cycle_keeps_work_per_step_and_span(base):
    schedule = multigrid_schedule(MultigridConfig(), base, epochs=196)
    work = base.batch * base.slow_frames * base.crop**2
    for phase in schedule.phases:
        shape = phase.shape
        exact = work / (shape.slow_frames * shape.crop**2)
        assert abs(shape.batch - exact) <= 0.5, phase.name  # B*T*S^2 constant within rounding
        assert shape.slow_frames * shape.tau == base.slow_frames * base.tau, phase.name
        assert shape.lr_factor == pytest.approx(shape.batch / base.batch)


def test_long_cycle_shapes_follow_the_factors():
    shapes = multigrid_schedule(MultigridConfig(), R50, epochs=196).data_keys()
    resolved = [(s.slow_frames, s.tau, s.crop, s.batch) for s in shapes.values()]
    # 224/sqrt2 = 158.4 is rounded to 160 (crop_multiple 8), which makes 62.7 clips 63
    assert resolved == [(2, 32, 160, 63), (4, 16, 160, 31), (4, 16, 224, 16), (8, 8, 224, 8)]
    assert list(shapes)[-1] == "train"  # the full shape is the plain run's dataset


def test_short_cycle_is_taken_from_the_current_long_cycle_crop():
    schedule = multigrid_schedule(MultigridConfig(), R50, epochs=196)
    cycles = {
        p.shape.crop: [(s.micro_batches, s.crop) for s in p.shape.short_cycle]
        for p in schedule.phases[:4]
    }
    # not PySlowFast's [2x@112, 1x@158, 1x@158] in the 1/sqrt2 phases (its issue 429)
    assert cycles[160] == [(4, 80), (2, 112), (1, 160)]
    assert cycles[224] == [(4, 112), (2, 160), (1, 224)]


@pytest.mark.parametrize("base", [R50, TINY], ids=["r50", "tiny"])
def test_crops_are_valid_multiples(base):
    cfg = MultigridConfig()
    for phase in multigrid_schedule(cfg, base, epochs=30).phases:
        for step in phase.shape.short_cycle:
            assert step.crop % cfg.crop_multiple == 0 and cfg.crop_multiple <= step.crop
            assert step.crop <= phase.shape.crop
            assert step.micro_batches == round((phase.shape.crop / step.crop) ** 2)
    assert round_crop(3, 8) == 8 and round_crop(158.4, 8) == 160


def test_epochs_finetune_and_equal_steps_per_phase():
    schedule = multigrid_schedule(MultigridConfig(), R50, epochs=196)
    assert schedule.epochs == round(196 * 1.5)
    starts = [p.first_epoch for p in schedule.phases]
    ends = [p.first_epoch + p.epochs for p in schedule.phases]
    assert starts[0] == 0 and starts[1:] == ends[:-1]  # contiguous
    last = schedule.phases[-1]
    assert last.name == "finetune" and last.epochs == round(294 * 0.08)
    assert (last.shape.slow_frames, last.shape.crop, last.shape.batch) == (8, 224, 8)
    assert [(s.micro_batches, s.crop) for s in last.shape.short_cycle] == [(1, 224)]
    steps = [p.epochs / p.shape.clips_per_step for p in schedule.phases[:4]]
    assert max(steps) / min(steps) < 1.1  # every phase of a cycle runs about as many steps
    assert schedule.phase_at(0).name == "1.1" and schedule.phase_at(293).name == "finetune"
    with pytest.raises(ValueError, match="outside"):
        schedule.phase_at(294)


def test_split_epochs_sums_to_the_total():
    assert split_epochs(10, [1, 1, 2]) == [2, 3, 5]
    assert sum(split_epochs(7, [18.7, 9.3, 4.7, 2.3] * 3)) == 7


def test_steps_of_an_epoch_drop_an_incomplete_cycle_step():
    assert short_cycle_steps(14, [4, 2, 1]) == 6
    assert short_cycle_steps(13, [4, 2, 1]) == 5  # 7 | 4, 2 | the last 1 is missing
    assert short_cycle_steps(3, [4, 2, 1]) == 0
    schedule = multigrid_schedule(MultigridConfig(), TINY, epochs=15)
    batch = schedule.phase_at(0).shape.batch  # 72 clips
    assert schedule.steps_in_epoch(0, rows_per_worker=batch * 7) == 3
    assert schedule.steps_in_epoch(0, rows_per_worker=batch * 7, max_steps=2) == 2
    assert short_cycle_steps(3, [4, 2, 1], start=1) == 2  # 2, 1
    # five batches an epoch: the cycle runs on across the phase's epochs, not from 4x each time
    assert [schedule.epoch_steps(e, rows_per_worker=batch * 5) for e in range(4)] == [
        (0, 1),
        (1, 2),
        (0, 1),
        (1, 2),
    ]
    assert schedule.epoch_steps(4, rows_per_worker=batch * 5)[0] == 0  # a new phase starts at 0
    plain = plain_schedule(TINY, epochs=3)
    assert plain.steps_in_epoch(2, rows_per_worker=83) == 83 // 8


def test_a_factor_that_breaks_the_stride_is_refused():
    cfg = MultigridConfig(long_cycle=((0.75, 1.0), (1.0, 1.0)))
    with pytest.raises(ValueError, match=r"long_cycle: shape 0 .*T=3"):
        multigrid_schedule(cfg, TINY, epochs=10)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="^short_cycle: factor 1.0"):
        MultigridConfig(short_cycle=(1.0,)).validate()
    with pytest.raises(ValueError, match="^long_cycle: shape 1"):
        MultigridConfig(long_cycle=((0.5, 0.5), (2.0, 1.0))).validate()


def test_shape_clip_spec_scales_the_crop_and_jitter():
    spec = ClipSpec(slow_frames=8, tau=8, alpha=4, num_val_clips=1, num_test_clips=10)
    shape = multigrid_schedule(MultigridConfig(), R50, epochs=196).phases[0].shape
    cut = shape.clip_spec(spec)
    assert (cut.slow_frames, cut.tau, cut.crop_size) == (2, 32, 160)
    assert cut.short_side_range == (round(256 * 160 / 224), round(320 * 160 / 224))
    assert cut.fast_frames == 8 and cut.alpha == 4


def test_table_and_rows_hold_every_phase():
    schedule = multigrid_schedule(MultigridConfig(), R50, epochs=196)
    table = schedule_table(schedule)
    assert table.splitlines()[0].startswith("phase")
    assert "4x@80 2x@112 1x@160" in table and "294 epochs, 12 step shapes" in table
    rows = schedule_rows(schedule)
    assert [r["phase"] for r in rows] == [p.name for p in schedule.phases]
    assert rows[0]["short_cycle"] == [[4, 80], [2, 112], [1, 160]]
    assert math.isclose(rows[0]["lr_factor"], 63 / 8)


def test_a_crop_multiple_that_merges_short_cycle_crops_is_refused():
    small = BaseShape(slow_frames=4, tau=4, crop=32, batch=2)
    with pytest.raises(ValueError, match=r"^crop_multiple: 8 rounds the short cycle of crop 24"):
        multigrid_schedule(MultigridConfig(), small, epochs=8)
    ok = multigrid_schedule(MultigridConfig(crop_multiple=4), small, epochs=8)
    assert [s.crop for s in ok.phases[0].shape.short_cycle] == [12, 16, 24]
