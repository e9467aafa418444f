"""training.worker.steps: a step that never waits on the host; sums read once per epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import slowfast_model
from raysf.clip_spec import ClipSpec
from training.device.settings import resolve_device_settings
from training.worker.steps import (
    DeviceSums,
    StepSettings,
    topk_correct,
    train_one_epoch,
    train_step,
    train_steps,
    validate,
)

CUDA = torch.cuda.is_available()
SPEC = ClipSpec(slow_frames=4, tau=4, alpha=4, crop_size=16, short_side_range=(16, 16),
                test_short_side=16, num_val_clips=1, num_test_clips=1)  # fmt: skip
#: Tensor methods that copy a device value to the host (and so wait for the device).
HOST_READS = ("item", "cpu", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")


def _setup(device="cpu", classes=5, lr=0.0):
    torch.manual_seed(0)
    model = slowfast_model.create_model("slowfast_tiny", num_classes=classes, dropout=0.0)
    model = model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    settings = resolve_device_settings(device, compile=False)
    return model, optimizer, scheduler, StepSettings(SPEC, torch.device(device), settings)


def _host_batches(n, batch=3, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {
            "fast": torch.from_numpy(rng.integers(0, 256, (batch, 16, 16, 16, 3), dtype=np.uint8)),
            "label": torch.from_numpy(rng.integers(0, classes, batch)),
        }
        for _ in range(n)
    ]


@pytest.fixture
def count_host_reads(monkeypatch):
    """Counts every Python-level call of a Tensor method that reads a value to the host."""
    calls: list[str] = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


def test_the_epoch_reads_its_sums_once_and_the_steps_never(monkeypatch, count_host_reads):
    model, optimizer, scheduler, step = _setup()
    reads: list[int] = []
    original_read = DeviceSums.read

    def counted_read(self):
        reads.append(len(count_host_reads))  # host reads seen before this one
        return original_read(self)

    monkeypatch.setattr(DeviceSums, "read", counted_read)
    batches = _host_batches(4)
    stats = train_one_epoch(model, optimizer, scheduler, iter(batches), step)
    assert reads == [0]  # one read of the sums, and nothing read to the host before it
    assert count_host_reads == ["tolist"]  # the read itself: one copy of all the sums
    assert (stats.steps, stats.samples) == (4, 12)
    assert stats.elapsed >= stats.wait >= stats.first_wait > 0


def test_the_summed_loss_is_the_sum_of_the_step_losses():
    model, optimizer, scheduler, step = _setup(lr=0.0)  # lr 0: the weights never move
    batches = _host_batches(3)
    stats = train_one_epoch(model, optimizer, scheduler, batches, step, max_steps=2)
    feed = step.feed()
    expected = 0.0
    for inputs, labels in list(feed(batches))[:2]:
        with torch.no_grad():
            expected += float(F.cross_entropy(model(inputs), labels)) * labels.shape[0]
    assert stats.steps == 2 and stats.samples == 6
    assert stats.loss_sum == pytest.approx(expected, rel=1e-5)
    assert stats.metrics(world=1)["train_loss"] == pytest.approx(expected / 6, rel=1e-5)


def test_validation_sums_and_confusion_are_accumulated_on_the_device(count_host_reads):
    model, _, _, step = _setup(classes=5)
    validate(model, _host_batches(1, batch=4, seed=1), step, num_classes=5)
    reads_of_one_batch = list(count_host_reads)
    count_host_reads.clear()
    batches = _host_batches(3, batch=4, seed=1)
    stats, confusion = validate(model, batches, step, num_classes=5)
    # the sums are read first, once, whatever the number of batches (then all-reduced)
    assert count_host_reads == reads_of_one_batch and count_host_reads[0] == "tolist"
    model.eval()
    want_conf, want_top1, want_loss = torch.zeros(5, 5, dtype=torch.int64), 0, 0.0
    with torch.no_grad():
        for inputs, labels in step.feed()(batches):
            logits = model(inputs)
            want_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
            want_top1 += int((logits.argmax(1) == labels).sum())
            for t, p in zip(labels.tolist(), logits.argmax(1).tolist(), strict=True):
                want_conf[t, p] += 1
    assert torch.equal(confusion, want_conf) and stats.clips == 12
    assert stats.top1 == want_top1 and stats.top5 == 12  # 5 classes: top-5 always hits
    assert stats.loss_sum == pytest.approx(want_loss, rel=1e-5)


def test_topk_counts_stay_on_the_device():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    top1, top2 = topk_correct(logits, torch.tensor([1, 2, 1]), ks=(1, 2))
    assert isinstance(top1, torch.Tensor) and (int(top1), int(top2)) == (1, 2)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_the_cuda_step_makes_no_host_sync():
    model, optimizer, scheduler, step = _setup("cuda", lr=0.1)
    pinned = [{k: v.pin_memory() for k, v in b.items()} for b in _host_batches(6)]
    feed = step.feed()
    sums = DeviceSums(("loss_sum",), step.device)
    train_steps(model, optimizer, scheduler, feed(pinned[:2]), step, sums)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        stats = train_steps(model, optimizer, scheduler, feed(pinned[2:]), step, sums)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert stats.steps == 4 and sums.read()["loss_sum"] > 0


def test_one_step_on_device_inputs_returns_the_unread_loss():
    model, optimizer, scheduler, step = _setup(lr=0.1)
    inputs, labels = next(step.feed()(_host_batches(1)))
    before = [p.detach().clone() for p in model.parameters()]
    loss = train_step(model, optimizer, scheduler, inputs, labels, step)
    assert loss.ndim == 0 and not loss.requires_grad
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
