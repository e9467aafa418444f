"""The MLflow serving wrapper takes the Slow frames from its one Fast tensor by the spec's rule."""

from __future__ import annotations

import torch

import slowfast_model
from pipelines import sampling
from training.artifacts import SingleTensorSlowFast


def test_the_serving_wrapper_picks_the_slow_frames_of_the_index_rule():
    torch.manual_seed(0)
    model = slowfast_model.create_model("slowfast_tiny", num_classes=3).eval()
    fast = torch.randn(1, 3, 16, 32, 32)
    for rule in ("stride", "linspace"):
        positions = sampling.slow_positions(4, 4, rule)
        wrapper = SingleTensorSlowFast(model, positions).eval()
        with torch.no_grad():
            want = model([fast[:, :, torch.from_numpy(positions)], fast])
            torch.testing.assert_close(wrapper(fast), want, rtol=0, atol=0)
    # the two rules pick different frames for T=4, alpha=4: [0, 4, 8, 12] and [0, 5, 10, 15]
    assert sampling.slow_positions(4, 4, "linspace").tolist() == [0, 5, 10, 15]
    assert "slow_positions" not in wrapper.state_dict()  # not a weight
