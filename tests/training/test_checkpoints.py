"""The checkpoint format: version 2 stores the ClipSpec; version-1 files still load."""

from __future__ import annotations

import torch

from raysf.clip_spec import ClipSpec
from training.checkpoints import FORMAT_VERSION, TrainingState, load_state, save_state

SPEC = ClipSpec(
    slow_frames=4,
    tau=4,
    alpha=2,
    num_val_clips=1,
    num_test_clips=3,
    crop_size=32,
    short_side_range=(32, 40),
    test_short_side=32,
)


def _state() -> TrainingState:
    return TrainingState(
        model={"w": torch.arange(4.0)},
        model_config={"num_classes": 2},
        clip_spec=SPEC,
        classes=["a", "b"],
        epoch=3,
    )


def test_round_trip_keeps_the_clip_spec(tmp_path):
    save_state(_state(), tmp_path)
    raw = torch.load(tmp_path / "state.pt", weights_only=True)
    assert raw["format_version"] == FORMAT_VERSION == 2 and raw["clip_spec"]["num_test_clips"] == 3
    state = load_state(tmp_path)
    assert (
        state.clip_spec == SPEC
        and state.epoch == 3
        and torch.equal(state.model["w"], torch.arange(4.0))
    )


def test_a_version_1_checkpoint_loads_with_its_preprocessing(tmp_path):
    payload = _state().to_payload()
    del payload["clip_spec"]
    payload["format_version"] = 1
    payload["preprocessing"] = {  # what version 1 wrote: no num_val_clips, no flip
        "slow_frames": 4,
        "tau": 4,
        "alpha": 2,
        "rule": "stride",
        "target_fps": None,
        "mean": [0.45] * 3,
        "std": [0.225] * 3,
        "crop_size": 32,
        "short_side_range": [32, 40],
        "test_short_side": 32,
        "num_test_clips": 10,
        "num_test_crops": 1,
    }
    torch.save(payload, tmp_path / "state.pt")
    state = load_state(tmp_path / "state.pt")
    assert state.clip_spec.is_resolved and state.clip_spec.num_test_clips == 10
    assert state.clip_spec.num_test_crops == 1 and state.clip_spec.alpha == 2
