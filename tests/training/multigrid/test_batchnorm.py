"""Sub-batch BatchNorm: each group normalised on its own, the running statistics of the whole
batch, the same parameters and checkpoints as BatchNorm3d."""

import pytest
import torch
from torch import nn

from training.multigrid.batchnorm import (
    SubBatchNorm3d,
    bn_splits,
    set_bn_splits,
    use_sub_batch_norm,
)


def _groups_of_different_statistics() -> torch.Tensor:
    torch.manual_seed(0)
    a = torch.randn(4, 3, 2, 5, 5)
    b = torch.randn(4, 3, 2, 5, 5) * 3 + 2
    return torch.cat([a, b])


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
def test_each_group_is_normalised_by_its_own_statistics(memory_format):
    x = _groups_of_different_statistics().contiguous(memory_format=memory_format)
    sub = SubBatchNorm3d(3)
    sub.num_splits = 2
    with torch.no_grad():
        sub.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        sub.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    y = sub.train()(x)
    for half in (slice(0, 4), slice(4, 8)):
        plain = nn.BatchNorm3d(3)
        plain.load_state_dict({k: v for k, v in sub.state_dict().items()}, strict=False)
        torch.testing.assert_close(y[half], plain.train()(x[half]), atol=1e-5, rtol=1e-5)
    whole = nn.BatchNorm3d(3).train()
    whole(x)  # running statistics: those of the whole batch
    torch.testing.assert_close(sub.running_mean, whole.running_mean)
    torch.testing.assert_close(sub.running_var, whole.running_var)
    assert not torch.allclose(y, nn.BatchNorm3d(3).train()(x), atol=1e-3)  # really grouped


def test_gradients_reach_the_affine_and_the_input():
    x = _groups_of_different_statistics().requires_grad_()
    sub = SubBatchNorm3d(3)
    sub.num_splits = 4
    (sub(x) * torch.arange(3.0).view(1, 3, 1, 1, 1)).square().sum().backward()
    assert sub.weight.grad.abs().sum() > 0 and sub.bias.grad.abs().sum() > 0
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_eval_and_undivided_batches_are_plain_batch_norm():
    x = _groups_of_different_statistics()
    sub, plain = SubBatchNorm3d(3), nn.BatchNorm3d(3)
    sub.num_splits = 3  # 8 clips: not divisible, plain statistics
    torch.testing.assert_close(sub.train()(x), plain.train()(x))
    torch.testing.assert_close(sub.eval()(x), plain.eval()(x))


def test_conversion_keeps_the_state_dict_and_memory_format():
    model = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4), nn.Sequential(nn.BatchNorm3d(4)))
    with torch.no_grad():
        model[1].running_mean.fill_(0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert use_sub_batch_norm(model) == 2
    assert isinstance(model[1], SubBatchNorm3d) and isinstance(model[2][0], SubBatchNorm3d)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    set_bn_splits(model, 2)
    assert model[1].num_splits == 2 and model[2][0].num_splits == 2
    x = torch.randn(4, 4, 2, 4, 4).contiguous(memory_format=torch.channels_last_3d)
    assert model[1].train()(x).is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize(
    ("batch", "group", "splits"),
    [(8, 8, 1), (64, 8, 8), (63, 8, 7), (72, 8, 9), (4, 8, 1), (31, 8, 1)],
)
def test_bn_splits(batch, group, splits):
    assert bn_splits(batch, group) == splits
