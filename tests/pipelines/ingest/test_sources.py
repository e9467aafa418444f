"""pipelines.ingest.sources: the three listing formats and clear errors for bad annotation files."""

from __future__ import annotations

import pytest

from pipelines.ingest.shards import plan_shards
from pipelines.ingest.sources import read_class_names, read_listing


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


def test_kinetics_rows_find_downloads_of_any_container_without_renaming(tmp_path):
    """A row's file is ``<id>_<start>_<end>.<ext>`` or yt-dlp's ``<id>.<ext>``, any video
    extension; non-video files are ignored; with no file the row keeps the ``.mp4`` name."""
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "k.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "a,cut,10,20,train\na,ytdlp,0,10,train\na,upper,0,10,train\na,gone,0,10,train\n"
    )
    webm = _touch(tmp_path / "train" / "cut_000010_000020.webm")
    mkv = _touch(tmp_path / "train" / "ytdlp.mkv")
    upper = _touch(tmp_path / "train" / "upper.MP4")
    _touch(tmp_path / "train" / "gone_000000_000010.part")  # an unfinished download
    listing = read_listing(str(tmp_path), format="kinetics")
    by_id = {e.video_id: e for e in listing.entries}
    assert by_id["cut_000010_000020"].uri == str(webm)
    assert by_id["ytdlp_000000_000010"].uri == str(mkv)
    assert by_id["upper_000000_000010"].uri == str(upper)
    assert by_id["gone_000000_000010"].uri == str(tmp_path / "train" / "gone_000000_000010.mp4")
    assert not any(e.error for e in listing.entries)


def test_two_candidate_files_for_one_kinetics_row_are_a_bad_entry_naming_both(tmp_path):
    ann = tmp_path / "annotations"
    ann.mkdir()
    (ann / "k.csv").write_text("label,youtube_id,time_start,time_end,split\na,v,0,10,val\n")
    _touch(tmp_path / "val" / "v_000000_000010.mp4")
    _touch(tmp_path / "val" / "v.webm")
    (entry,) = read_listing(str(tmp_path), format="kinetics").entries
    assert entry.error.startswith(f"{ann / 'k.csv'}:2: 2 files could be this row's video")
    assert "v.webm" in entry.error and "v_000000_000010.mp4" in entry.error


def test_list_format_with_and_without_class_names(tmp_path):
    _touch(tmp_path / "a" / "v1.mp4")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.csv").write_text("a/v1.mp4 2\n/abs/v2.mp4 0\n\n")
    (lists / "test.txt").write_text("a/v3.avi 1\n")
    listing = read_listing(str(tmp_path), format="list", annotations=str(lists))
    assert listing.classes == ("0", "1", "2")
    by_id = {e.video_id: e for e in listing.entries}
    assert by_id["a/v1.mp4"].uri == str(tmp_path / "a" / "v1.mp4")
    assert by_id["a/v1.mp4"].label == "2"
    assert by_id["/abs/v2.mp4"].uri == "/abs/v2.mp4" and by_id["a/v3.avi"].split == "test"
    names = tmp_path / "classes.txt"
    names.write_text("cat\ndog\n")
    named = read_listing(
        str(tmp_path), format="list", annotations=str(lists), classes=read_class_names(str(names))
    )
    labels = {e.video_id: e.label for e in named.entries}
    # id 2 is out of range -> no label
    assert labels == {"a/v1.mp4": "", "/abs/v2.mp4": "cat", "a/v3.avi": "dog"}


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
        ("train", "cat", "cat/a.mp4"),
        ("train", "dog", "dog/b.mp4"),
        ("val", "cat", "cat/c.mkv"),
        ("val", "", "loose.mp4"),
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


# ---------------------------------------------------------------------------- identity


def test_same_file_name_in_two_class_folders_is_two_videos(tmp_path):
    """Issue case 1: <root>/train/cat/a.mp4 and <root>/train/dog/a.mp4 are two inputs."""
    _touch(tmp_path / "train" / "cat" / "a.mp4")
    _touch(tmp_path / "train" / "dog" / "a.mp4")
    listing = read_listing(str(tmp_path), format="folders")
    assert [(e.label, e.video_id) for e in listing.entries] == [
        ("cat", "cat/a.mp4"),
        ("dog", "dog/a.mp4"),
    ]
    tasks = plan_shards(listing, shard_size=8)
    assert [dup for t in tasks for _, _, dup in t.items] == [False, False]


def test_same_file_name_in_a_list_is_two_videos(tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("train/cat/a.mp4 0\ntrain/dog/a.mp4 1\ntrain/cat/a.mp4 0\n")
    listing = read_listing(str(tmp_path), format="list", annotations=str(lst))
    flags = [(e.video_id, dup) for t in plan_shards(listing, 8) for e, _, dup in t.items]
    # the same path listed twice is the one real duplicate
    assert flags == [
        ("train/cat/a.mp4", False),
        ("train/cat/a.mp4", True),
        ("train/dog/a.mp4", False),
    ]


def test_kinetics_csv_with_byte_order_mark(tmp_path):
    """Issue case 7: spreadsheet exports start with a UTF-8 BOM."""
    f = tmp_path / "k.csv"
    f.write_bytes(b"\xef\xbb\xbflabel,youtube_id,time_start,time_end,split\ncat,abc,0,10,train\n")
    listing = read_listing(str(tmp_path), format="kinetics", annotations=str(f))
    assert [(e.label, e.video_id) for e in listing.entries] == [("cat", "abc_000000_000010")]
    names = tmp_path / "classes.txt"
    names.write_bytes("\ufeffcat\ndog\n".encode())
    assert read_class_names(str(names)) == ("cat", "dog")


@pytest.mark.parametrize(
    ("youtube_id", "split", "problem"),
    [
        ("../../etc/passwd", "train", "youtube_id '../../etc/passwd' holds a path separator"),
        ("a\\b", "train", "holds a path separator"),
        ("ok", "..", "split '..' holds a path separator or is"),
        ("", "train", "empty youtube_id"),
        ("x\ty", "train", "control character"),
    ],
)
def test_bad_kinetics_ids_are_entries_with_an_error(tmp_path, youtube_id, split, problem):
    """Issue case 6: ``../`` in a youtube_id must never read a file outside --videos; a bad
    row is one bad entry (a reject at ingest), never a failed listing."""
    f = tmp_path / "k.csv"
    f.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        f'cat,"{youtube_id}",0,10,{split}\ncat,good,0,10,train\n'
    )
    listing = read_listing(str(tmp_path), format="kinetics", annotations=str(f))
    bad = [e for e in listing.entries if e.error]
    good = [e for e in listing.entries if not e.error]
    assert len(bad) == 1 and problem in bad[0].error and f"{f}:2" in bad[0].error
    assert bad[0].uri == f"{f}:2"  # never a path built from the bad id
    assert [e.video_id for e in good] == ["good_000000_000010"]


def test_undecodable_file_name_is_one_bad_entry(tmp_path):
    """Issue case 7: one non-UTF-8 file name used to fail the whole folder listing."""
    import os

    _touch(tmp_path / "train" / "cat" / "ok.mp4")
    bad = os.path.join(os.fsencode(tmp_path), b"train", b"cat", b"bad\xff.mp4")
    with open(bad, "wb") as f:
        f.write(b"x")
    listing = read_listing(str(tmp_path), format="folders")
    by_id = {e.video_id: e for e in listing.entries}
    assert set(by_id) == {"cat/ok.mp4", "cat/bad\\xff.mp4"}
    assert by_id["cat/ok.mp4"].error == ""
    assert "not valid UTF-8" in by_id["cat/bad\\xff.mp4"].error
    assert "bad\\\\xff.mp4" in by_id["cat/bad\\xff.mp4"].error  # named, escaped
    listing.fingerprint()  # JSON-safe


def test_special_files_are_listed_to_be_rejected(tmp_path):
    """A FIFO in a class folder is an input (rejected at ingest), not silently skipped."""
    import os

    _touch(tmp_path / "train" / "cat" / "ok.mp4")
    os.mkfifo(tmp_path / "train" / "cat" / "pipe.mp4")
    listing = read_listing(str(tmp_path), format="folders")
    assert [e.video_id for e in listing.entries] == ["cat/ok.mp4", "cat/pipe.mp4"]
