"""Sweep config, point expansion, validation at start, ablation table and plot (no Ray)."""

from __future__ import annotations

import csv
import io
import json
import pickle
from pathlib import Path

import pytest

from raysf.config import ConfigError, dump_yaml, load_config, with_overrides
from raysf.storage import resolve_location
from training.config import TrainJobConfig, load_train_config
from training.recipes.smoke import smoke_sweep
from training.tune.config import load_tune_config
from training.tune.report import best_row, format_table, table_csv, write_summary
from training.tune.results import (
    ERROR_RECORD,
    PreparedPoint,
    collect_rows,
    error_summary,
    summary_of_tune_text,
    write_error_record,
)
from training.tune.space import (
    absolute_paths,
    check_point,
    make_points,
    select_points,
    trial_job,
)
from training.tune.sweep import exported_job

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "jobs" / "tune.yaml"


def _cfg(*overrides: str):
    return load_tune_config(DEFAULT_CONFIG, list(overrides))


def test_default_yaml_expands_to_the_full_grid():
    cfg = _cfg()
    base = cfg.train
    points = make_points(cfg.space, base)
    # 4 fusions x 3 alphas x 3 betas x 1 fast input + the Slow-only baseline
    assert len(points) == 4 * 3 * 3 + 1
    assert len({p.key for p in points}) == len(points)
    slow = [p for p in points if p.dims["pathways"] == "slow_only"]
    assert len(slow) == 1 and slow[0].overrides["model.overrides.fusion"] == "none"
    assert base.model.preset == "slowfast_tiny" and base.model.overrides["width"] == 16


def test_every_default_point_builds_its_model_config():
    cfg = _cfg()
    base = cfg.train
    for point in make_points(cfg.space, base):
        job = trial_job(base, point, "/tmp/x", "s")
        model_cfg = check_point(job, point, 5, "tune.yaml")
        if point.dims["pathways"] == "slowfast":
            assert model_cfg.alpha == point.dims["alpha"]
            assert model_cfg.beta_inv == point.dims["beta_inv"]
            assert model_cfg.fusion == point.dims["fusion"]
        else:
            assert model_cfg.pathways == "slow_only" and model_cfg.fusion == "none"


def test_beta_leaving_no_fast_channel_is_rejected_naming_the_key():
    cfg = _cfg("train.model.overrides.width=8", "space.beta_inv=[8, 16]")
    base = cfg.train
    bad = [p for p in make_points(cfg.space, base) if p.dims["beta_inv"] == 16][0]
    with pytest.raises(ConfigError, match=r"space\.beta_inv: trial .*-b16-.*at most width=8"):
        trial_job(base, bad, "/tmp/x", "s", "tune.yaml")


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("space.fusion=[time_to_chanel]", r"space\.fusion.*time_to_chanel"),
        ("space.fast_input=[depth]", r"space\.fast_input.*depth"),
        ("space.fast_input=[half-res]", r"space\.fast_input.*'half-res' is not one of.*half_res"),
        ("space.alpha=[2, 2]", r"space\.alpha has duplicates"),
        ("space.alpha=[]", r"space\.alpha must list"),
        ("search.mode=bayes", r"search\.mode.*bayes"),
        ("search.asha.reduction_factor=1", r"asha"),
        ("sweep.nam=x", r"sweep\.nam: unknown key"),
    ],
)
def test_bad_sweep_keys_fail_at_load(override, match):
    with pytest.raises(ConfigError, match=match):
        _cfg(override)


def test_unknown_train_key_names_the_train_section():
    with pytest.raises(ConfigError, match=r"tune.yaml: train\.optim\.base_lrr: unknown key"):
        _cfg("train.optim.base_lrr=0.1")


def test_train_section_merges_over_the_train_config_file():
    cfg = _cfg("train.train.epochs=3")
    train_yaml = load_train_config(DEFAULT_CONFIG.with_name("train.yaml"))
    assert cfg.train.train.epochs == 3  # the override
    assert cfg.train.optim.base_lr == 0.4  # the sweep file's train section
    assert cfg.train.optim.momentum == train_yaml.optim.momentum  # the train config file


def test_learning_rates_multiply_points_and_reach_the_trial_config():
    cfg = _cfg(
        "space.alpha=[4]", "space.beta_inv=[8]", "space.fusion=[none]", "space.base_lr=[0.1, 0.2]"
    )
    base = cfg.train
    points = make_points(cfg.space, base)
    assert [p.key for p in points] == [
        "nolat-a4-b8-rgb-lr0.1",
        "nolat-a4-b8-rgb-lr0.2",
        "slow_only-lr0.1",
        "slow_only-lr0.2",
    ]
    job = trial_job(base, points[1], "/tmp/runs", "sw")
    assert job.optim.base_lr == 0.2
    assert job.storage.path == "/tmp/runs" and job.storage.name == "sw.nolat-a4-b8-rgb-lr0.2"
    assert job.resume is True and Path(job.data.dataset).is_absolute()


def test_trials_resolve_relative_paths_against_the_driver_not_their_folder(tmp_path, monkeypatch):
    # A Tune trial runs in its own working folder: the driver hands it absolute paths.
    cfg = _cfg("train.data.dataset=demo_output/some/dataset")
    base = absolute_paths(cfg.train)
    expected = str(Path.cwd() / "demo_output/some/dataset")
    assert base.data.dataset == expected
    monkeypatch.chdir(tmp_path)  # the trial's working folder
    point = make_points(cfg.space, base)[0]
    assert trial_job(base, point, "/tmp/r", "s").data.dataset == expected


def test_random_mode_draws_distinct_points_reproducibly():
    cfg = _cfg("search.mode=random", "search.num_samples=5", "search.seed=3")
    base = cfg.train
    points = make_points(cfg.space, base)
    a = select_points(points, cfg.search)
    b = select_points(points, cfg.search)
    assert [p.key for p in a] == [p.key for p in b]
    assert len({p.key for p in a}) == 5
    other = select_points(points, _cfg("search.mode=random", "search.num_samples=5").search)
    assert [p.key for p in other] != [p.key for p in a]


def test_smoke_sweep_covers_three_fusions_two_alphas_and_user_wins():
    cfg = with_overrides(smoke_sweep(_cfg(), "/data/x"), ["space.alpha=[2, 8]"])
    assert cfg.train.data.dataset == "/data/x"
    assert cfg.space.alpha == [2, 8]  # the user's override comes last
    assert set(cfg.space.fusion) == {
        "time_to_channel",
        "time_strided_sampling",
        "time_strided_conv",
    }
    assert cfg.train.model.overrides["width"] == 16 and cfg.train.data.clip.crop_size == 32
    # the smoke test's 4 random points still cover the three fusions and two alphas
    smoke = smoke_sweep(_cfg(), "/data/x")
    points = select_points(make_points(smoke.space, smoke.train), smoke.search)
    assert len(points) == 4
    assert {p.dims["fusion"] for p in points} == set(smoke.space.fusion)
    assert {p.dims["alpha"] for p in points} == {2, 4}


class _Result:
    def __init__(self, key, metrics, error=None, path=None):
        self.config = {"point": {"key": key}}
        self.metrics = metrics
        self.error = error
        self.path = path
        self.filesystem = None


def _rows(interrupted: bool = False):
    cfg = _cfg("space.alpha=[2, 4]", "space.beta_inv=[8]", "space.fusion=[time_to_channel]")
    base = cfg.train
    prepared = [
        PreparedPoint(p, trial_job(base, p, "/tmp/r", "s"), 0.01 * (i + 1), 1000 * (i + 1))
        for i, p in enumerate(make_points(cfg.space, base))
    ]
    results = [
        _Result("ttc-a2-b8-rgb", {"val_top1": 0.5, "val_top5": 0.9, "epoch": 9, "trial_id": "t1"}),
        _Result("ttc-a4-b8-rgb", {"val_top1": 0.3, "val_top5": 0.8, "epoch": 1}),
        _Result("slow_only", {}, error=RuntimeError("worker died\ntraceback...")),
    ]
    if interrupted:
        results[1] = _Result("ttc-a4-b8-rgb", {})
    return collect_rows(results, prepared, epochs=10), prepared, base


def test_rows_keep_errors_and_early_stops():
    rows, _, _ = _rows()
    by = {r["key"]: r for r in rows}
    assert by["ttc-a2-b8-rgb"]["status"] == "finished" and by["ttc-a2-b8-rgb"]["epochs"] == 10
    assert by["ttc-a4-b8-rgb"]["status"] == "stopped early"
    assert by["slow_only"]["status"] == "error"
    assert by["slow_only"]["error"] == "RuntimeError: worker died"
    assert by["slow_only"]["top1"] is None
    assert best_row(rows)["key"] == "ttc-a2-b8-rgb"
    rows, _, _ = _rows(interrupted=True)
    assert {r["key"]: r["status"] for r in rows}["ttc-a4-b8-rgb"] == "not run"


def test_points_tune_never_created_are_rows_not_run():
    # Ctrl-C before Tune expanded the whole grid: the grid has fewer trials than the sweep.
    _, prepared, _ = _rows()
    partial = [_Result("ttc-a2-b8-rgb", {"val_top1": 0.5, "val_top5": 0.9, "epoch": 9})]
    rows = collect_rows(partial, prepared, epochs=10)
    assert [r["key"] for r in rows] == [pp.point.key for pp in prepared]
    assert [r["status"] for r in rows] == ["finished", "not run", "not run"]
    assert rows[1]["gflops"] == prepared[1].gflops and rows[1]["top1"] is None


TUNE_ERROR_TXT = (
    "Failure # 1 (occurred at 2026-11-26_10-34-26)\n"
    "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=26957, ip=192.0.2.2, repr=f)\n"
    '  File "/x/function_trainable.py", line 249, in _trainable_func\n'
    "    output = fn()\n"
    "             ^^^^\n"
    "ray.train.TrainingFailedError: worker died\n"
    "second line of the message: not an exception\n"
)


def _restored(key_dir: Path) -> _Result:
    """A result as ``Tuner.restore`` gives a trial that failed before its first report."""
    restored = _Result(None, {}, path=str(key_dir))
    restored.config = None
    return restored


def test_error_of_a_trial_failed_before_a_resume_is_read_from_its_json_record(tmp_path):
    # Tuner.restore gives a trial that failed before its first report neither its config nor
    # its error; its folder is <key>_<trial_id> and the trial left raysf_error.json in it.
    trial_dir = tmp_path / "ttc-a4-b8-rgb_1f2e3_00001"
    write_error_record(
        resolve_location(str(trial_dir)), RuntimeError("\x1b[36mworker died\x1b[39m\nat")
    )
    assert json.loads((trial_dir / ERROR_RECORD).read_text()) == {
        "error": "RuntimeError: worker died"
    }
    _, prepared, _ = _rows()
    results = [_restored(trial_dir), _Result("slow_only", {}, path=str(tmp_path / "slow_only_x"))]
    rows = {r["key"]: r for r in collect_rows(results, prepared, epochs=10)}
    assert rows["ttc-a4-b8-rgb"]["status"] == "error"
    assert rows["ttc-a4-b8-rgb"]["error"] == "RuntimeError: worker died"
    assert rows["slow_only"]["status"] == "not run"  # no error file: never ran


def test_without_a_record_tunes_error_text_is_read_and_its_pickle_never(tmp_path):
    # A trial killed with its actor writes no record; Tune's error.txt names the exception.
    # A planted error.pkl must not run: unpickling it would create the marker file.
    trial_dir = tmp_path / "ttc-a4-b8-rgb_1f2e3_00001"
    trial_dir.mkdir()
    (trial_dir / "error.txt").write_text(TUNE_ERROR_TXT)
    marker = tmp_path / "pwned"
    (trial_dir / "error.pkl").write_bytes(pickle.dumps(_Planted(str(marker))))
    _, prepared, _ = _rows()
    rows = {r["key"]: r for r in collect_rows([_restored(trial_dir)], prepared, epochs=10)}
    assert rows["ttc-a4-b8-rgb"]["error"] == "TrainingFailedError: worker died"
    assert not marker.exists()


def test_a_malformed_record_falls_back_to_the_text():
    assert summary_of_tune_text("Failure # 1 (occurred at x)\nno traceback here\n") == (
        "no traceback here"
    )
    two = "Failure # 1 (at a)\nValueError: first\nFailure # 2 (at b)\nKeyError: 'second'\n"
    assert summary_of_tune_text(two) == "KeyError: 'second'"


def test_error_summary_unwraps_ray_task_errors_and_joins_colon_lines():
    class _Wrapped(Exception):
        cause = ValueError("bad alpha 3\nmore")

    assert error_summary(_Wrapped("ray::train() failed")) == "ValueError: bad alpha 3"
    joined = error_summary(RuntimeError("Training failed due to worker errors:\nOOM on rank 0"))
    assert joined == "RuntimeError: Training failed due to worker errors: OOM on rank 0"
    assert len(error_summary(RuntimeError("x" * 1000))) == 300


class _Planted:
    """Pickles to a call that creates ``path``: what an attacker with storage write access
    would plant in place of Tune's error.pkl."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_table_markdown_csv_and_plot(tmp_path):
    rows, _, _ = _rows()
    md = format_table(rows)
    lines = md.splitlines()
    assert lines[0].startswith("| configuration | top-1 | top-5 | GFLOPs | params (M)")
    assert lines[2].startswith("| Slow-only | - | - |")  # baseline first
    assert "| SlowFast α=2 β=1/8 TtoC | 50.0 | 90.0 | 0.0100 | 0.001 | finished |" in md
    parsed = list(csv.DictReader(io.StringIO(table_csv(rows))))
    assert [r["key"] for r in parsed] == ["slow_only", "ttc-a2-b8-rgb", "ttc-a4-b8-rgb"]
    assert parsed[1]["top1"] == "0.5" and parsed[1]["alpha"] == "2"
    paths = write_summary(rows, tmp_path)
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["markdown"].read_text().strip() == md


def test_exported_best_config_loads_back_as_a_train_config(tmp_path):
    rows, prepared, base = _rows()
    best = next(pp for pp in prepared if pp.point.key == best_row(rows)["key"])
    path = tmp_path / "best.yaml"
    path.write_text(dump_yaml(exported_job(best, base, "sw")))
    job = load_train_config(path)
    assert job.model.overrides["alpha"] == 2 and job.model.overrides["fusion"] == "time_to_channel"
    assert job.storage.name == "sw-best" and job.storage.path == base.storage.path
    assert load_config(TrainJobConfig, path) == job
