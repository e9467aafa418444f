"""``python -m jobs.demo --train-profile``: the demo's data through ingest's training profile."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from jobs.demo import parse_options
from pipelines.ingest.segment import REENCODE_PROFILES
from training.recipes.demo import DEMO_DATA, demo_data


def test_train_profile_option_reencodes_the_demo_data_into_its_own_folder():
    options, args = parse_options(["--train-profile", "--sweep-epochs", "0"])
    assert options.train_profile and options.sweep_epochs == 0 and args.json is None
    data, folder = demo_data(options)
    assert folder == Path("demo_output") / "synthmotion-train-profile"
    assert data.reencode is not None and data.reencode.profile == "train"
    assert data.reencode.settings() == replace(REENCODE_PROFILES["train"], gop=32)  # = window
    # Every frame kept (the demo's tau is in native frames), at the demo's largest short side.
    assert (data.reencode.fps, data.reencode.short_side) == (None, 64)
    assert (data.classes, data.videos_per_class) == (DEMO_DATA.classes, DEMO_DATA.videos_per_class)


def test_default_demo_keeps_the_generated_streams():
    options, args = parse_options(["--videos-per-class", "5", "--json", "t.json"])
    data, folder = demo_data(options)
    assert args.json == "t.json"
    assert data.reencode is None and folder == Path("demo_output") / "synthmotion"
    assert data.videos_per_class == 5


def test_smoke_test_keeps_the_train_profile_flag():
    options, _ = parse_options(["--smoke-test", "--train-profile"])
    assert options.train_profile and options.sweep_epochs == 1 and options.videos_per_class == 6
    assert (
        demo_data(options)[1]
        == Path("demo_output") / "smoke" / "demo" / "synthmotion-train-profile"
    )
