"""The paper's learning-rate recipe: linear scaling, linear warm-up, half-period cosine."""

import math

import pytest

from training.schedule import lr_factor, scaled_lr


def test_linear_scaling():
    assert scaled_lr(0.1, 128, 64) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        scaled_lr(0.1, 0, 64)


def test_cosine_without_warmup():
    f = lambda e: lr_factor(e, epochs=10, warmup_epochs=0, warmup_start_factor=0.1)  # noqa: E731
    assert f(0) == pytest.approx(1.0)
    assert f(5) == pytest.approx(0.5)
    assert f(10) == pytest.approx(0.0)
    assert f(2.5) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_warmup_is_linear_and_joins_the_cosine():
    kw = dict(epochs=10, warmup_epochs=2, warmup_start_factor=0.1)
    end = lr_factor(2, **kw)
    assert lr_factor(0, **kw) == pytest.approx(0.1)
    assert lr_factor(1, **kw) == pytest.approx(0.1 + (end - 0.1) / 2)
    assert lr_factor(1.999999, **kw) == pytest.approx(end, abs=1e-5)
    # monotone decrease after the warm-up
    vals = [lr_factor(e / 10, **kw) for e in range(20, 101)]
    assert all(a >= b for a, b in zip(vals, vals[1:], strict=False))


def test_min_factor_floor():
    assert lr_factor(
        10, epochs=10, warmup_epochs=0, warmup_start_factor=1, min_factor=0.01
    ) == pytest.approx(0.01)
