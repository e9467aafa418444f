"""pipelines.sources: the three listing formats and clear errors for bad annotation files."""

from __future__ import annotations

import pytest

from pipelines.sources import read_class_names, read_listing


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_kinetics_csv(tmp_path):
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        '"riding a bike",abc,10,20,train,0\nabseiling,xyz,1.0,11.0,train,0\n'
    )
    (ann / "val.csv").write_text(
        "label,youtube_id,time_start,time_end,split\nabseiling,q,0,10,val\n"
    )
    listing = read_listing(str(tmp_path), format="kinetics")
    assert listing.classes == ("abseiling", "riding a bike")
    assert [(e.split, e.video_id, e.label) for e in listing.entries] == [
        ("train", "abc_000010_000020", "riding a bike"),
        ("train", "xyz_000001_000011", "abseiling"),
        ("val", "q_000000_000010", "abseiling"),
    ]
    assert listing.entries[0].uri == str(tmp_path / "train" / "abc_000010_000020.mp4")
    assert listing.label_id("riding a bike") == 1 and listing.label_id("nope") is None
    # The fingerprint changes with the listing.
    again = read_listing(str(tmp_path), format="kinetics", annotations=str(ann / "train.csv"))
    assert len(again.entries) == 2 and again.fingerprint() != listing.fingerprint()


def test_list_format_with_and_without_class_names(tmp_path):
    _touch(tmp_path / "a" / "v1.mp4")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.csv").write_text("a/v1.mp4 2\n/abs/v2.mp4 0\n\n")
    (lists / "test.txt").write_text("a/v3.avi 1\n")
    listing = read_listing(str(tmp_path), format="list", annotations=str(lists))
    assert listing.classes == ("0", "1", "2")
    by_id = {e.video_id: e for e in listing.entries}
    assert by_id["v1"].uri == str(tmp_path / "a" / "v1.mp4") and by_id["v1"].label == "2"
    assert by_id["v2"].uri == "/abs/v2.mp4" and by_id["v3"].split == "test"
    names = tmp_path / "classes.txt"
    names.write_text("cat\ndog\n")
    named = read_listing(
        str(tmp_path), format="list", annotations=str(lists), classes=read_class_names(str(names))
    )
    labels = {e.video_id: e.label for e in named.entries}
    assert labels == {"v1": "", "v2": "cat", "v3": "dog"}  # id 2 is out of range -> no label


def test_folders_format(tmp_path):
    _touch(tmp_path / "train" / "dog" / "b.mp4")
    _touch(tmp_path / "train" / "cat" / "a.mp4")
    _touch(tmp_path / "val" / "cat" / "c.mkv")
    _touch(tmp_path / "val" / "loose.mp4")
    _touch(tmp_path / "train" / "cat" / ".hidden")
    _touch(tmp_path / "annotations" / "train.csv")
    listing = read_listing(str(tmp_path), format="folders")
    assert listing.classes == ("cat", "dog")
    assert [(e.split, e.label, e.video_id) for e in listing.entries] == [
        ("train", "cat", "a"),
        ("train", "dog", "b"),
        ("val", "cat", "c"),
        ("val", "", "loose"),
    ]


def test_class_names_json(tmp_path):
    f = tmp_path / "c.json"
    f.write_text('{"b": 1, "a": 0}')
    assert read_class_names(str(f)) == ("a", "b")
    f.write_text("x\nx\n")
    with pytest.raises(ValueError, match="not unique"):
        read_class_names(str(f))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("label,youtube_id,time_start,split\nx,a,1,train\n", r"missing column\(s\) \['time_end'\]"),
        ("label,youtube_id,time_start,time_end,split\nx,a,one,2,train\n", r"bad.csv:2: time_start"),
        (b"\xff\xfe\x00garbage", "cannot read annotation file .*bad.csv"),
    ],
)
def test_bad_kinetics_annotations(tmp_path, content, match):
    f = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content)
    with pytest.raises(ValueError, match=match):
        read_listing(str(tmp_path), format="kinetics", annotations=str(f))


def test_listing_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown input format 'csv'"):
        read_listing(str(tmp_path), format="csv")
    with pytest.raises(ValueError, match="does not exist"):
        read_listing(str(tmp_path), format="kinetics", annotations=str(tmp_path / "nope.csv"))
    with pytest.raises(ValueError, match="annotations does not exist"):
        read_listing(str(tmp_path), format="kinetics")  # default <root>/annotations
    (tmp_path / "annotations").mkdir()
    with pytest.raises(ValueError, match="no annotation files"):
        read_listing(str(tmp_path), format="kinetics")
    with pytest.raises(ValueError, match="video root .* does not exist"):
        read_listing(str(tmp_path / "missing"), format="folders")
    lst = tmp_path / "train.txt"
    lst.write_text("a.mp4 cat\n")
    with pytest.raises(ValueError, match=r"train.txt:1: label id 'cat' is not an integer"):
        read_listing(str(tmp_path), format="list", annotations=str(lst))
    lst.write_text("justonepart\n")
    with pytest.raises(ValueError, match=r"train.txt:1: expected '<path> <label_id>'"):
        read_listing(str(tmp_path), format="list", annotations=str(lst))
    with pytest.raises(ValueError, match="needs --annotations"):
        read_listing(str(tmp_path), format="list")
