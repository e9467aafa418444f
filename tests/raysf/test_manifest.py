"""The manifest contract: versions 1 and 2 read into one typed view; others refused by name."""

from __future__ import annotations

import json

import pytest

from raysf.clip_spec import ClipSpec
from raysf.runtime import read_manifest

CLASSES = [{"label_id": 1, "name": "b"}, {"label_id": 0, "name": "a"}]
PER_SPLIT = {"train": {"clips": 5}, "test": {"clips": 2}}


def _write(root, doc):
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps(doc))
    return str(root)


def test_version_2_reads_the_clip_spec(tmp_path):
    spec = ClipSpec(slow_frames=4, tau=4, alpha=2, num_val_clips=1, num_test_clips=3)
    doc = {"schema_version": 2, "classes": CLASSES, "per_split": PER_SPLIT}
    doc.update(clip_spec=spec.to_dict(), counts={"clips": 7}, reject_reasons={"missing": 1})
    m = read_manifest(_write(tmp_path / "v2", doc))
    assert m.classes == ("a", "b") and m.num_classes == 2  # ordered by label id
    assert m.clip_spec == spec and m.clips_in("train") == 5 and m.clips_in("val") == 0
    assert m["reject_reasons"] == {"missing": 1}


def test_version_1_reads_its_sampling(tmp_path):
    sampling = {"slow_frames": 8, "tau": 8, "alpha": 4, "rule": "linspace", "target_fps": 30.0}
    sampling.update(num_val_clips=1, num_test_clips=10)
    doc = {"schema_version": 1, "classes": CLASSES, "per_split": PER_SPLIT, "sampling": sampling}
    m = read_manifest(_write(tmp_path / "v1", doc))
    assert m.schema_version == 1 and m.clip_spec.rule == "linspace"
    assert m.clip_spec.is_resolved and m.clip_spec.num_test_clips == 10


def test_other_versions_missing_and_broken_manifests_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"schema_version 3, this version reads \(1, 2\)"):
        read_manifest(_write(tmp_path / "v3", {"schema_version": 3}))
    with pytest.raises(ValueError, match=r"no manifest.json \(ingest not run or not finished\)"):
        read_manifest(str(tmp_path / "nothing"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{")
    with pytest.raises(ValueError, match="invalid JSON"):
        read_manifest(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match=r"malformed manifest \(KeyError"):
        read_manifest(_write(tmp_path / "nospec", {"schema_version": 2, "classes": CLASSES}))
