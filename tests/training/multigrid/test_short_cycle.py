"""A short cycle fed from batches of one size: grouped on the host by the step index, scaled
on the device to the step's crop; the recompile limit sized for a schedule's shapes."""

import numpy as np
import pytest
import torch
import torch._dynamo

from training.multigrid import compiled
from training.multigrid.schedule import ShortStep
from training.multigrid.short_cycle import group_batches, resize_clips, scale_inputs

CYCLE = (ShortStep(16, 4), ShortStep(24, 2), ShortStep(32, 1))


def _batches(count: int, size: int = 3):
    for i in range(count):
        yield {
            "fast": torch.full((size, 4, 32, 32, 3), i, dtype=torch.uint8),
            "label": np.full(size, i),
        }


def test_steps_take_their_micro_batches_in_order_and_drop_an_incomplete_one():
    steps = list(group_batches(_batches(13), CYCLE))
    assert [len(s["label"]) for s in steps] == [12, 6, 3, 12, 6]  # 4+2+1+4+2 = 13, then none left
    assert steps[0]["label"].tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    assert steps[2]["fast"][0, 0, 0, 0, 0].item() == 6
    assert isinstance(steps[1]["fast"], torch.Tensor) and isinstance(steps[1]["label"], np.ndarray)


def test_a_cycle_can_start_at_any_step():
    steps = list(group_batches(_batches(4), CYCLE, start=1))
    assert [len(s["label"]) for s in steps] == [6, 3]  # 2x, 1x, then the 4x step lacks batches
    fed = [([torch.rand(1, 3, 1, 32, 32)], torch.zeros(1))] * 2
    assert [inputs[0].shape[-1] for inputs, _ in scale_inputs(fed, CYCLE, start=1)] == [24, 32]


def test_inputs_are_scaled_to_each_steps_crop():
    fed = [([torch.rand(2, 3, 1, 32, 32), torch.rand(2, 3, 4, 32, 32)], torch.zeros(2))] * 4
    shapes = [[tuple(x.shape) for x in inputs] for inputs, _ in scale_inputs(fed, CYCLE)]
    assert shapes[0] == [(2, 3, 1, 16, 16), (2, 3, 4, 16, 16)]
    assert shapes[1][1] == (2, 3, 4, 24, 24) and shapes[2][1] == (2, 3, 4, 32, 32)
    assert shapes[3][1] == (2, 3, 4, 16, 16)  # the cycle starts again


def test_halving_averages_the_pixels():
    x = torch.arange(16.0).view(1, 1, 1, 4, 4).contiguous(memory_format=torch.channels_last_3d)
    y = resize_clips(x, 2)
    torch.testing.assert_close(y[0, 0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    assert resize_clips(x, 4) is x


def _compiles(shapes: int, limit: int, raise_to: int | None) -> tuple[int, str | None]:
    """Graphs compiled for ``shapes`` input shapes under ``limit`` (raised first when asked)."""
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    note = None
    with torch._dynamo.config.patch(recompile_limit=limit):
        if raise_to is not None:
            note = compiled.ensure_recompile_limit(raise_to, margin=0)
        fn = torch.compile(lambda x: (x * 2).sum(), backend=counting_backend, dynamic=False)
        for n in range(1, shapes + 1):
            assert fn(torch.ones(n)).item() == 2 * n
    torch._dynamo.reset()
    return len(graphs), note


def test_without_the_raise_later_shapes_run_eager_silently():
    assert _compiles(shapes=4, limit=2, raise_to=None)[0] == 2


def test_the_raised_limit_compiles_every_shape_and_says_so():
    count, note = _compiles(shapes=4, limit=2, raise_to=4)
    assert count == 4
    assert "raised from 2 to 4" in note


def test_a_high_enough_limit_is_left_alone(monkeypatch):
    monkeypatch.setattr(compiled.dynamo_config, "recompile_limit", 64)
    assert compiled.ensure_recompile_limit(12) is None
    assert compiled.dynamo_config.recompile_limit == 64


def test_a_torch_without_the_setting_gets_a_warning(monkeypatch):
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(compiled.dynamo_config, name):
            monkeypatch.delattr(compiled.dynamo_config, name)
    note = compiled.ensure_recompile_limit(12)
    assert note is not None and "may fall back to eager" in note


@pytest.mark.parametrize("size", [3, 5])
def test_group_of_one_passes_batches_through(size):
    batches = list(_batches(2, size))
    assert list(group_batches(batches, (ShortStep(32, 1),))) == batches
