"""Every Fast input of Table 5c trains through the worker's own step (uint8 batches fed to the
device, normalised, the Fast input made inside the network), and a checkpoint rebuilds it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import slowfast_model
from raysf.clip_spec import ClipSpec
from slowfast_model.config import FAST_INPUTS
from training.artifacts import build_model_from_state
from training.checkpoints import TrainingState, load_state, save_state
from training.device.settings import resolve_device_settings
from training.worker.steps import StepSettings, train_one_epoch

CROP, FRAMES = 32, 16
SPEC = ClipSpec(slow_frames=4, tau=4, alpha=4, crop_size=CROP, short_side_range=(CROP, CROP),
                test_short_side=CROP, num_val_clips=1, num_test_clips=1)  # fmt: skip


def drifting_batches(n: int, batch: int = 4, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """uint8 ``(B, 16, 32, 32, 3)`` clips of a random texture drifting 2 px a frame, right
    (label 0) or left (label 1): only the motion tells the classes apart."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        labels = rng.integers(0, 2, batch)
        clips = np.empty((batch, FRAMES, CROP, CROP, 3), dtype=np.uint8)
        for i, label in enumerate(labels):
            texture = rng.integers(0, 256, (CROP // 4, (CROP + 2 * FRAMES) // 4, 3), np.uint8)
            texture = texture.repeat(4, axis=0).repeat(4, axis=1)
            for t in range(FRAMES):
                x0 = 2 * t if label == 0 else 2 * (FRAMES - 1 - t)
                clips[i, t] = texture[:, x0 : x0 + CROP]
        out.append({"fast": torch.from_numpy(clips), "label": torch.from_numpy(labels)})
    return out


@pytest.mark.parametrize("fast_input", FAST_INPUTS)
def test_every_fast_input_trains_and_its_checkpoint_rebuilds_it(fast_input, tmp_path):
    torch.manual_seed(0)
    model = slowfast_model.create_model(
        "slowfast_tiny", num_classes=2, dropout=0.0, beta_inv=4, fast_input=fast_input
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    step = StepSettings(SPEC, torch.device("cpu"), resolve_device_settings("cpu", compile=False))
    batches = drifting_batches(2)
    losses = [
        train_one_epoch(model, optimizer, scheduler, batches, step).metrics(world=1)["train_loss"]
        for _ in range(5)
    ]
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < 0.5 * losses[0], losses

    save_state(
        TrainingState(model.state_dict(), model.config.to_dict(), SPEC, ["right", "left"]),
        tmp_path,
    )
    rebuilt = build_model_from_state(load_state(tmp_path))
    assert rebuilt.config == model.config and rebuilt.config.fast_input == fast_input
    inputs, _ = next(iter(step.feed()(batches[:1])))
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(inputs), model.eval()(inputs))
