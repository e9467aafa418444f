"""training.worker.phases: the shape schedule on a worker, without Ray: the learning rate per
global step, each epoch's dataset, batch and feed, a multigrid epoch trained through the
short cycle with sub-batch BN, and what checkpoints record of the phase."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import slowfast_model
from raysf.clip_spec import ClipSpec
from raysf.config import ConfigError
from training.checkpoints import TrainingState
from training.config import load_train_config
from training.device.settings import resolve_device_settings
from training.multigrid.batchnorm import SubBatchNorm3d
from training.plan import plan_training
from training.schedule import lr_factor
from training.worker import phases
from training.worker.steps import StepSettings, train_one_epoch

TRAIN_YAML = Path(__file__).resolve().parents[3] / "jobs" / "train.yaml"
DATASET_SPEC = ClipSpec(slow_frames=4, tau=4, alpha=4, num_val_clips=1, num_test_clips=1)
SMALL_CLIP = [
    "data.clip.crop_size=64",
    "data.clip.short_side_range=[72, 80]",
    "data.clip.test_short_side=72",
]


@pytest.fixture
def dataset(tmp_path) -> str:
    doc = {
        "schema_version": 2,
        "classes": [{"label_id": i, "name": n} for i, n in enumerate(["a", "b", "c"])],
        "per_split": {"train": {"clips": 400}, "val": {"clips": 4}},
        "clip_spec": DATASET_SPEC.to_dict(),
    }
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    return str(tmp_path)


def _plan(dataset: str, *overrides: str):
    job = load_train_config(
        TRAIN_YAML,
        [
            f"data.dataset={dataset}",
            "model.preset=slowfast_tiny",
            "train.batch_size=2",
            "train.epochs=8",
            "optim.warmup_epochs=1",
            *SMALL_CLIP,
            *overrides,
        ],
    )
    return plan_training(job)


def test_plain_learning_rate_is_the_cosine_over_steps(dataset):
    plan = _plan(dataset)
    factor, steps = phases.step_lr_lambda(plan), plan.steps_per_epoch
    assert plan.epochs == 8 and plan.epoch_steps(3) == steps == 200
    for step in (0, 1, 199, 200, 777, 1599):
        expected = lr_factor(step / steps, epochs=8, warmup_epochs=1, warmup_start_factor=0.1)
        assert factor(step) == pytest.approx(expected)


def test_multigrid_learning_rate_follows_the_epochs_and_the_batch_factor(dataset):
    plan = _plan(dataset, "train.schedule=multigrid")
    factor = phases.step_lr_lambda(plan)
    assert plan.epochs == 12 == plan.job.train.run_epochs  # what a sweep's ASHA counts
    start = 0
    for epoch in range(plan.epochs):
        phase = plan.shapes.phase_at(epoch)
        base = lr_factor(epoch, epochs=12, warmup_epochs=1, warmup_start_factor=0.1)
        assert factor(start) == pytest.approx(base * phase.shape.lr_factor), epoch
        start += plan.epoch_steps(epoch)
    first = plan.shapes.phases[0].shape
    assert first.lr_factor > 1 and plan.shapes.phases[-1].shape.lr_factor == 1


def test_every_epoch_reads_the_dataset_and_batch_of_its_phase(dataset):
    plan = _plan(dataset, "train.schedule=multigrid")
    settings = resolve_device_settings("cpu", compile=False)
    step = StepSettings(plan.clip, torch.device("cpu"), settings)
    feeds = phases.phase_feeds(plan, step)
    assert set(feeds) == set(plan.shapes.data_keys()) and "train" in feeds
    for epoch in range(plan.epochs):
        shape = phases.epoch_shape(plan, feeds, epoch)
        assert shape.batch == shape.phase.shape.batch
        assert shape.data_key == shape.phase.shape.data_key(plan.shapes.base)
        assert shape.steps == plan.epoch_steps(epoch) > 0
        assert shape.feed.start == plan.epoch_cycle(epoch)[0]
    # the same epoch gives the same shape on every rank: nothing here depends on the rank
    assert (
        phases.epoch_shape(plan, feeds, 0).data_key == phases.epoch_shape(plan, feeds, 0).data_key
    )


def _host_batches(count: int, batch: int, frames: int, crop: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        fast = rng.integers(0, 256, (batch, frames, crop, crop, 3), dtype=np.uint8)
        yield {"fast": torch.from_numpy(fast), "label": torch.from_numpy(rng.integers(0, 3, batch))}


def test_a_multigrid_epoch_trains_through_the_short_cycle(dataset):
    plan = _plan(dataset, "train.schedule=multigrid")
    torch.manual_seed(0)
    model = phases.prepare_network(slowfast_model.build_model(plan.model), plan)
    assert any(isinstance(m, SubBatchNorm3d) for m in model.modules())
    settings = resolve_device_settings("cpu", compile=False)
    step = StepSettings(plan.clip, torch.device("cpu"), settings)
    shape = phases.epoch_shape(plan, phases.phase_feeds(plan, step), 0)
    line = phases.enter_epoch(model, plan, shape)
    assert line.startswith("multigrid phase 1.1 (epochs 1-")
    long = shape.phase.shape  # T=1 x tau 16 at 48 px, 14 clips per batch
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0][1].shape)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, phases.step_lr_lambda(plan))
    batches = _host_batches(9, long.batch, 4 * long.slow_frames, long.crop)
    stats = train_one_epoch(model, optimizer, scheduler, batches, step, feed=shape.feed)
    cycle = long.short_cycle
    expected = [
        (long.batch * s.micro_batches, 3, 4 * long.slow_frames, s.crop, s.crop) for s in cycle
    ]
    assert seen == expected  # 4x the batch at half the crop, 2x at 1/sqrt2, then the phase's
    assert stats.steps == 3 and math.isfinite(stats.loss_sum)
    assert [m.num_splits for m in model.modules() if isinstance(m, SubBatchNorm3d)][0] == 1
    assert scheduler.last_epoch == 3


def test_checkpoints_carry_the_phase_and_a_resume_continues_it(dataset):
    plan = _plan(dataset, "train.schedule=multigrid")
    phase = plan.shapes.phases[0]
    assert phase.epochs >= 2
    record = phases.checkpoint_schedule(plan, phase.first_epoch)
    assert record["kind"] == "multigrid" and record["phase"] == phase.name
    assert record["epoch_in_phase"] == 0 and record["phase_epochs"] == phase.epochs
    state = TrainingState(
        model={},
        model_config={"num_classes": 3},
        clip_spec=plan.clip,
        classes=["a", "b", "c"],
        schedule=record,
    )
    assert TrainingState.from_payload(state.to_payload()).schedule == record
    note = phases.resume_note(record, plan, phase.first_epoch + 1)
    assert note == f"continues multigrid phase {phase.name} at its epoch 2/{phase.epochs}"
    moved = dict(record, phase="9.9")
    assert "written in multigrid phase 9.9" in phases.resume_note(
        moved, plan, phase.first_epoch + 1
    )
    assert phases.resume_note(record, plan, plan.epochs) == "the schedule is complete"


def test_a_phase_whose_batches_exceed_the_shard_is_refused(dataset):
    with pytest.raises(ConfigError, match=r"phase 1.1 needs \d+ training rows per worker"):
        _plan(dataset, "train.schedule=multigrid", "train.batch_size=40")


def test_the_compiled_network_gets_a_limit_for_every_step_shape(dataset, monkeypatch):
    plan = _plan(dataset, "train.schedule=multigrid", "train.compile=true")
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compiled.append(kw) or model)
    monkeypatch.setattr(phases, "ensure_recompile_limit", lambda n: f"limit for {n}")
    model, note = phases.compile_network(torch.nn.Linear(1, 1), plan)
    assert compiled == [{"dynamic": False}]
    assert note == f"limit for {len(plan.shapes.step_shapes())}"
    plain = _plan(dataset, "train.compile=true")
    assert phases.compile_network(torch.nn.Linear(1, 1), plain)[1] is None and compiled[-1] == {}
