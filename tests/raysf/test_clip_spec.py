"""ClipSpec: validation, resolution against a model and a dataset, serialisation, version 1."""

from __future__ import annotations

import pytest

from raysf.clip_spec import ClipSpec

DATASET = ClipSpec(slow_frames=8, tau=8, alpha=4, num_val_clips=1, num_test_clips=7)


def test_resolve_takes_t_alpha_from_the_model_and_clips_from_the_dataset():
    spec = ClipSpec(crop_size=48, short_side_range=(56, 64), test_short_side=56)
    assert not spec.is_resolved
    out = spec.resolve(slow_frames=4, alpha=2, default_tau=16, dataset=DATASET)
    assert out.is_resolved
    assert (out.slow_frames, out.alpha, out.tau) == (4, 2, 16)
    assert (out.num_val_clips, out.num_test_clips) == (1, 7)  # cut at ingest
    assert out.crop_size == 48 and out.fast_frames == 8
    assert out.clip_nbytes() == 8 * 48 * 48 * 3  # the Fast frames only: Slow ones are among them


def test_an_explicit_tau_wins_and_explicit_values_must_agree():
    assert ClipSpec(tau=3).resolve(slow_frames=4, alpha=2, default_tau=16, dataset=DATASET).tau == 3
    with pytest.raises(ValueError, match=r"data.clip.alpha=8 differs from the model's alpha=2"):
        ClipSpec(alpha=8).resolve(slow_frames=4, alpha=2, default_tau=16, dataset=DATASET)
    with pytest.raises(ValueError, match=r"data.clip.num_test_clips=3 differs from the dataset"):
        ClipSpec(num_test_clips=3).resolve(slow_frames=4, alpha=2, default_tau=1, dataset=DATASET)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"tau": 0}, r"ClipSpec.tau=0: must be an integer >= 1"),
        ({"rule": "nearest"}, r"ClipSpec.rule='nearest'"),
        ({"crop_size": 300}, r"ClipSpec.short_side_range=\(256, 320\)"),
        ({"test_short_side": 100}, r"ClipSpec.test_short_side=100"),
        ({"num_test_crops": 2}, r"num_test_crops=2"),
        ({"std": (0.2, 0.0, 0.2)}, r"ClipSpec.std"),
        ({"target_fps": 0.0}, r"ClipSpec.target_fps=0.0"),
    ],
)
def test_invalid_values_name_the_field(changes, match):
    with pytest.raises(ValueError, match=match):
        ClipSpec(**changes)


def test_unresolved_specs_are_refused_by_name():
    with pytest.raises(ValueError, match=r"the loader needs a resolved ClipSpec; unset: \['tau'"):
        ClipSpec(slow_frames=4, alpha=2, num_val_clips=1, num_test_clips=2).require_resolved(
            "the loader"
        )


def test_dict_round_trip_and_version_1_forms():
    assert ClipSpec.from_dict(DATASET.to_dict()) == DATASET
    with pytest.raises(ValueError, match=r"ckpt: unknown clip spec field\(s\) \['crop'\]"):
        ClipSpec.from_dict({"crop": 3}, "ckpt")
    # a version-1 checkpoint's preprocessing: no flip, no num_val_clips, 10 test clips
    old = {"slow_frames": 4, "tau": 4, "alpha": 2, "rule": "stride", "target_fps": None}
    old.update({"mean": [0.4, 0.4, 0.4], "std": [0.2, 0.2, 0.2], "crop_size": 32})
    old.update({"short_side_range": [32, 40], "test_short_side": 32, "num_test_crops": 1})
    spec = ClipSpec.from_legacy(old)
    assert spec.is_resolved and spec.num_test_clips == 10 and spec.num_val_clips == 1
    assert spec.mean == (0.4, 0.4, 0.4) and spec.short_side_range == (32, 40)
