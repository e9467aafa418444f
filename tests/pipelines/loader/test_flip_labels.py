"""Flips that keep labels true: a flipped ``drift_right`` clip shows leftward motion, and the
loader trains it as ``drift_left`` (the dataset's flip pairs); an unflipped one keeps its label.
The direction is read from the pixels of each row, not from the loader's own flag."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.ingest import config as ingest_config
from pipelines.ingest.clips import process_video
from pipelines.ingest.sources import SourceEntry
from pipelines.loader.dataset import decode_batch
from pipelines.loader.options import DecodeOptions
from pipelines.synth.generate import generate
from raysf.flip_labels import FlipLabels

CLASSES = ["drift_right", "drift_left"]


@pytest.fixture(scope="module")
def drift_right_record(tmp_path_factory) -> dict:
    """The training record of one SynthMotion ``drift_right`` video."""
    root = tmp_path_factory.mktemp("drift")
    videos = generate(root, classes=1, videos_per_class=1, frames=48, size=(96, 64))
    cfg = ingest_config.load_ingest_config(
        None, ["clip.slow_frames=4", "clip.tau=4", "clip.alpha=4", "clip.target_fps=null"]
    )
    entry = SourceEntry(str(root / videos[0].path), "v0", "train", "drift_right")
    rows, reject = process_video(entry, 0, False, cfg)
    assert reject is None and videos[0].label == "drift_right"
    return rows[0]


def _direction(fast: np.ndarray) -> float:
    """Horizontal motion of the moving object in ``fast`` (T, H, W, 3): the slope of the
    centroid column of what differs from the clip's median frame (> 0: rightward)."""
    gray = fast.astype(np.float32).mean(axis=-1)
    moving = np.abs(gray - np.median(gray, axis=0)).sum(axis=1)  # (T, W)
    columns = (moving * np.arange(gray.shape[2])).sum(axis=1) / (moving.sum(axis=1) + 1e-6)
    return float(np.polyfit(np.arange(len(columns)), columns, 1)[0])


@pytest.mark.parametrize("train_view", ["rgb", "crop_first", "planes"])
def test_a_flipped_drift_right_clip_trains_as_drift_left(drift_right_record, train_view):
    """Each row's label follows its pixels: a row that is the mirror image of the same view
    unflipped (same draws, ``flip`` off) trains as drift_left, the others as drift_right; the
    unflipped views move right, their mirrors left."""
    record, flip_map = drift_right_record, FlipLabels(pairs=(tuple(CLASSES),)).label_map(CLASSES)
    assert flip_map == (1, 0)
    spec = ingest_config.DEFAULT_CLIP.replace(
        slow_frames=4, tau=4, alpha=4, target_fps=None, crop_size=56
    ).replace(short_side_range=(64, 64), test_short_side=64)
    batch = {k: np.array([record[k]] * 16, dtype=object) for k in record}
    batch["clip_index"] = np.arange(16, dtype=object)  # each row its own draws
    decode = DecodeOptions(threads=1, train_view=train_view)
    out = decode_batch(batch, spec, "train", 3, decode=decode, flip_map=flip_map)
    plain = decode_batch(batch, spec.replace(flip=False), "train", 3, decode=decode)
    labels = out["label"].tolist()
    assert 0 < sum(labels) < 16, "the draws flip some rows and not others"
    assert plain["label"].tolist() == [0] * 16
    if train_view == "planes":  # the device flips planes rows: the flag it gets
        assert out["flip"].tolist() == [label == 1 for label in labels]
        np.testing.assert_array_equal(out["fast_y"], plain["fast_y"])
        return
    for fast, unflipped, label in zip(out["fast"], plain["fast"], labels, strict=True):
        mirrored = unflipped[:, :, ::-1]
        np.testing.assert_array_equal(fast, mirrored if label == 1 else unflipped)
    assert np.mean([_direction(f) for f in plain["fast"]]) > 0.1  # drift_right moves right
    assert np.mean([_direction(f[:, :, ::-1]) for f in plain["fast"]]) < -0.1


def test_flip_rule_parsing_and_errors():
    assert FlipLabels.from_dict(None) == FlipLabels()
    rule = FlipLabels.from_dict({"pairs": [["a", "b"]]})
    assert rule.label_map(["b", "c", "a"]) == (2, 1, 0) and FlipLabels().label_map(["a"]) is None
    assert rule.to_dict() == {"allowed": True, "pairs": [["a", "b"]]}
    for value, match in [
        ({"pairs": [["a", "a"]]}, "m.json: flip.pairs: \\['a', 'a'\\] is not a pair"),
        ({"pairs": [["a", "b"], ["b", "c"]]}, "class 'b' is in two pairs"),
        ({"allowed": False, "pairs": [["a", "b"]]}, "given with allowed: false"),
        ({"allowed": "no"}, "flip.allowed: expected true or false"),
        ({"pairs": "a,b"}, "flip.pairs: expected a list of"),
        ({"swap": []}, "expected {allowed: bool"),
    ]:
        with pytest.raises(ValueError, match=match):
            FlipLabels.from_dict(value, "m.json: flip")
    with pytest.raises(ValueError, match="class 'x' is not one of the dataset's classes"):
        FlipLabels(pairs=(("a", "x"),)).label_map(["a", "b"])
