"""SynthMotion: the aliasing classes are static at the Slow stride and move at the Fast one."""

from __future__ import annotations

import csv
import hashlib
import re

import numpy as np
import pytest

from pipelines.decode.frame_table import read_frame_table
from pipelines.synth.generate import (
    ALIASING_CLASSES,
    CLASS_NAMES,
    class_names,
    generate,
    object_state,
    render_frames,
    sample_spec,
    split_counts,
)


def _states(spec, frames):
    return [object_state(spec, int(t)) for t in frames]


@pytest.mark.parametrize("label", ALIASING_CLASSES)
@pytest.mark.parametrize("slow_stride", [8, 16])
def test_aliasing_classes_static_at_slow_stride_moving_at_fast_stride(label, slow_stride):
    for seed in range(10):
        spec = sample_spec(np.random.default_rng(seed), label, num_frames=96)
        for start in range(0, 8):
            slow = _states(spec, range(start, 96, slow_stride))
            assert len(set(slow)) == 1, (label, seed, start)
            fast = _states(spec, range(start, start + 16, 2))
            assert len(set(fast)) == 2, (label, seed, start)


def test_fast_patterns_distinguish_the_aliasing_classes():
    """At stride 2: vibrate/flicker alternate every sample, vibrate_slow every 2 samples."""
    for seed in range(5):
        for label, period in (("vibrate", 1), ("flicker", 1), ("vibrate_slow", 2)):
            spec = sample_spec(np.random.default_rng(seed), label, num_frames=64)
            states = _states(spec, range(3, 35, 2))
            changes = [a != b for a, b in zip(states, states[1:], strict=False)]
            assert changes == [(i + 1) % period == 0 for i in range(len(changes))] or all(
                c == ((i + 2) % period == 0) for i, c in enumerate(changes)
            ), label


def test_visible_classes_change_at_slow_stride():
    for label in ("drift_right", "drift_left", "grow", "orbit"):
        spec = sample_spec(np.random.default_rng(1), label, num_frames=64)
        assert len(set(_states(spec, range(0, 32, 8)))) == 4, label
    still = sample_spec(np.random.default_rng(1), "still", num_frames=64)
    assert len(set(_states(still, range(64)))) == 1


def test_rendered_object_follows_state():
    spec = sample_spec(np.random.default_rng(4), "vibrate", num_frames=16, size=(96, 64))
    frames = render_frames(spec).astype(np.int32)
    assert frames.shape == (16, 64, 96, 3)
    for t in range(16):
        s = object_state(spec, t)
        c = s.size // 2
        centre = frames[t, s.y + c - 1 : s.y + c + 2, s.x + c - 1 : s.x + c + 2].mean(axis=(0, 1))
        assert np.abs(centre - np.array(s.color)).max() < 4 * spec.noise + 3


def test_class_order_puts_aliasing_classes_in_the_demo_six():
    assert set(ALIASING_CLASSES) <= set(class_names(6))
    assert class_names(8) == list(CLASS_NAMES)
    with pytest.raises(ValueError, match="classes"):
        class_names(0)
    splits = {"train": 0.7, "val": 0.15, "test": 0.15}
    assert split_counts(10, splits) == {"train": 7, "val": 2, "test": 1}
    assert sum(split_counts(7, splits).values()) == 7


def test_generate_layout_csv_and_determinism(tmp_path):
    kw = dict(classes=3, videos_per_class=4, seed=5, frames=24, short_side=(64, 112))
    videos = generate(tmp_path / "a", **kw)
    generate(tmp_path / "b", **kw)
    assert len(videos) == 12
    for v in videos:
        name = v.path.split("/")[-1]
        assert re.fullmatch(r"[A-Za-z0-9_-]{11}_\d{6}_\d{6}\.mp4", name)
        assert f"/{v.split}/" in v.path
        a = (tmp_path / "a" / v.split / name).read_bytes()
        b = (tmp_path / "b" / v.split / name).read_bytes()
        assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()
        table = read_frame_table(a)
        assert table.num_frames == 24 and table.fps in (24.0, 25.0, 30.0)
        assert table.width % 2 == 0 and table.height % 2 == 0
    rows = []
    for split in ("train", "val", "test"):
        with open(tmp_path / "a" / "annotations" / f"{split}.csv") as f:
            reader = csv.DictReader(f)
            assert reader.fieldnames == ["label", "youtube_id", "time_start", "time_end", "split"]
            rows += [r for r in reader if r["split"] == split]
    assert len(rows) == 12 and {r["label"] for r in rows} == set(class_names(3))
    assert len({r["youtube_id"] for r in rows}) == 12


def test_bframes_and_long_gops_are_common():
    specs = [sample_spec(np.random.default_rng(s), "still") for s in range(200)]
    assert sum(s.bframes > 0 for s in specs) > 100
    assert sum(s.gop >= 48 for s in specs) > 100
    assert {s.fps for s in specs} == {24, 25, 30}


def test_two_callers_of_one_root_take_turns(tmp_path, monkeypatch):
    """ensure_synth_dataset holds ``root/.lock`` while it generates and ingests: a second
    caller (another process on the machine) waits for it instead of writing the same files."""
    import fcntl
    import threading

    from pipelines.synth import dataset as synth_dataset

    entered = threading.Event()
    monkeypatch.setattr(
        synth_dataset, "_ensure_synth_dataset", lambda root, data: entered.set() or str(root)
    )
    with open(tmp_path / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the first caller, mid-ingest
        waiter = threading.Thread(
            target=synth_dataset.ensure_synth_dataset, args=(tmp_path, synth_dataset.SMOKE_DATA)
        )
        waiter.start()
        assert not entered.wait(0.5)  # blocked on the lock
    assert entered.wait(5)  # released: it goes on
    waiter.join(5)
