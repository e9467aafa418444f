"""Device-side feeding: uint8 batches to normalised pathway tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.inputs import to_model_inputs


def test_to_model_inputs_layout_and_values():
    rng = np.random.default_rng(0)
    batch = {
        "slow": rng.integers(0, 256, size=(2, 4, 8, 8, 3), dtype=np.uint8),
        "fast": rng.integers(0, 256, size=(2, 16, 8, 8, 3), dtype=np.uint8),
    }
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.25, 0.5)
    slow, fast = to_model_inputs(batch, mean, std, "cpu")
    assert slow.shape == (2, 3, 4, 8, 8) and fast.shape == (2, 3, 16, 8, 8)
    assert slow.dtype == torch.float32
    for c in range(3):
        expected = (batch["fast"][..., c].astype(np.float64) / 255 - mean[c]) / std[c]
        np.testing.assert_allclose(fast[:, c].numpy(), expected, rtol=1e-5, atol=1e-5)
    cl = to_model_inputs(
        {k: torch.from_numpy(v) for k, v in batch.items()}, mean, std, channels_last=True
    )
    assert cl[0].is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(cl[0], slow)
    with pytest.raises(ValueError, match="uint8"):
        to_model_inputs({"slow": batch["slow"].astype(np.float32), "fast": batch["fast"]})
