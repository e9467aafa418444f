"""Seeds as a sweep dimension: the t interval, the aggregation of seeded rows, paired
differences, the seeded points and their tables (no Ray)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest

from raysf.config import ConfigError
from training.tune.config import load_tune_config
from training.tune.report import (
    aggregate_csv,
    best_row,
    format_aggregate_table,
    format_table,
    write_summary,
)
from training.tune.results import PreparedPoint, aggregate_rows, collect_rows, default_baseline
from training.tune.space import make_points, select_points, trial_job, with_seeds
from training.tune.stats import (
    paired_differences,
    seeds_needed,
    summarize,
    t_quantile,
    t_two_sided_mass,
)

REPO = Path(__file__).resolve().parents[3]
DEFAULT_CONFIG = REPO / "jobs" / "tune.yaml"

# Two-sided 95 % (97.5 % point) and 90 % critical values of Student's t (any printed table).
T95 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 10: 2.2281, 30: 2.0423}
T90 = {1: 6.3138, 2: 2.9200, 4: 2.1318, 9: 1.8331}


@pytest.mark.parametrize(("df", "value"), sorted(T95.items()))
def test_t_quantile_95_matches_the_table(df, value):
    assert t_quantile(0.95, df) == pytest.approx(value, abs=5e-5)


@pytest.mark.parametrize(("df", "value"), sorted(T90.items()))
def test_t_quantile_90_matches_the_table(df, value):
    assert t_quantile(0.90, df) == pytest.approx(value, abs=5e-5)


def test_t_tends_to_the_normal_and_its_mass_is_monotonic():
    assert t_quantile(0.95, 100_000) == pytest.approx(1.95996, abs=1e-4)
    masses = [t_two_sided_mass(t, 3) for t in (0.0, 0.5, 1.0, 2.0, 5.0, 50.0)]
    assert masses[0] == 0.0 and masses == sorted(masses) and masses[-1] < 1.0
    assert t_two_sided_mass(1.0, 1) == pytest.approx(0.5)  # Cauchy: P(|T| <= 1) = 1/2
    with pytest.raises(ValueError, match="df must be an integer >= 1"):
        t_two_sided_mass(1.0, 0)
    with pytest.raises(ValueError, match="level"):
        t_quantile(1.0, 3)


def test_summary_of_three_seeds_and_missing_values():
    s = summarize([0.5, None, 0.6, 0.7])  # None = a failed trial: left out, not a zero
    assert s.n == 3 and s.mean == pytest.approx(0.6) and s.std == pytest.approx(0.1)
    assert s.half_width == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-6)
    assert s.low == pytest.approx(0.6 - s.half_width) and s.excludes_zero is True
    one = summarize([0.4, None])
    assert (one.n, one.mean, one.std, one.half_width, one.low) == (1, 0.4, None, None, None)
    assert one.excludes_zero is None
    assert summarize([]).mean is None and summarize([None]).n == 0
    assert summarize([-0.1, 0.1]).excludes_zero is False


def test_paired_differences_match_seeds_and_skip_missing():
    a = {0: 0.50, 1: 0.60, 2: None, 3: 0.40}
    b = {0: 0.40, 1: 0.65, 2: 0.30, 4: 0.9}
    assert paired_differences(a, b) == pytest.approx({0: 0.10, 1: -0.05})


def test_seeds_needed_for_an_effect():
    # half-width t(n-1) * 0.05 / sqrt(n) first drops below 0.03 at n = 14
    assert seeds_needed(0.05, 0.03) == 14
    assert t_quantile(0.95, 12) * 0.05 / math.sqrt(13) >= 0.03
    assert seeds_needed(0.05, -0.2) == 3 and seeds_needed(0.05, 0.0) is None


def _cfg(*overrides: str):
    return load_tune_config(DEFAULT_CONFIG, list(overrides))


def test_seeds_make_one_trial_per_configuration_and_seed():
    cfg = _cfg(
        "space.alpha=[4]",
        "space.beta_inv=[8]",
        "space.fusion=[time_to_channel, none]",
        "space.seeds=[3, 5]",
        "search.asha.enabled=false",
    )
    configs = make_points(cfg.space, cfg.train)
    points = with_seeds(configs, cfg.space.seed_list())
    keys = [p.key for p in points]
    assert keys == [
        "ttc-a4-b8-rgb-s3",
        "nolat-a4-b8-rgb-s3",
        "slow_only-s3",
        "ttc-a4-b8-rgb-s5",
        "nolat-a4-b8-rgb-s5",
        "slow_only-s5",
    ]
    assert [p.config_key for p in points[:3]] == [p.key for p in configs]
    jobs = [trial_job(cfg.train, p, "/tmp/r", "sw") for p in points]
    assert [j.train.seed for j in jobs] == [3, 3, 3, 5, 5, 5]
    # everything but the seed (and the run names) is equal between the seeds of a configuration
    a, b = jobs[0], jobs[3]
    assert a.model == b.model and a.optim == b.optim and a.data == b.data
    assert a.train.epochs == b.train.epochs and a.storage.name == "sw.ttc-a4-b8-rgb-s3"
    assert with_seeds(configs, None) == configs  # no seeds: the old keys, the base seed


def test_repeats_and_seed_errors_name_the_key():
    cfg = _cfg("space.repeats=3", "search.asha.enabled=false")
    assert cfg.space.seed_list() == [0, 1, 2]
    assert _cfg().space.seed_list() is None
    with pytest.raises(ConfigError, match=r"space\.seeds and space\.repeats"):
        _cfg("space.repeats=2", "space.seeds=[0]", "search.asha.enabled=false")
    with pytest.raises(ConfigError, match=r"space\.seeds has duplicates"):
        _cfg("space.seeds=[1, 1]", "search.asha.enabled=false")
    with pytest.raises(ConfigError, match=r"search\.asha\.enabled: must be false"):
        _cfg("space.seeds=[0, 1]")
    with pytest.raises(ConfigError, match=r"report\.level"):
        _cfg("report.level=95")


def test_fast_only_baselines_are_points():
    cfg = _cfg(
        "space.alpha=[4]", "space.beta_inv=[4, 8]", "space.fusion=[none]", "space.fast_only=true"
    )
    points = {p.key: p for p in make_points(cfg.space, cfg.train)}
    assert set(points) == {
        "nolat-a4-b4-rgb",
        "nolat-a4-b8-rgb",
        "fast_only-a4-b4-rgb",
        "fast_only-a4-b8-rgb",
        "slow_only",
    }
    fast = points["fast_only-a4-b8-rgb"]
    assert fast.label == "Fast-only α=4 β=1/8" and fast.dims["pathways"] == "fast_only"
    model = trial_job(cfg.train, fast, "/tmp/r", "s").model.resolve(num_classes=5)
    assert model.pathways == "fast_only" and model.fast_width == 16 // 8


def test_ablation_files_load_and_every_trial_builds():
    expected = {"fusion": 18, "beta": 18, "fast_input": 15}
    for name, count in expected.items():
        cfg = load_tune_config(REPO / "jobs" / "ablations" / f"{name}.yaml")
        configs = select_points(make_points(cfg.space, cfg.train), cfg.search)
        points = with_seeds(configs, cfg.space.seed_list())
        assert len(points) == count and cfg.space.seed_list() == [0, 1, 2]
        assert cfg.train.data.reproducible and not cfg.search.asha.enabled
        assert cfg.report.baseline in {p.key for p in configs}
        for p in points:
            job = trial_job(cfg.train, p, "/tmp/r", cfg.sweep.name)
            assert job.model.resolve(num_classes=8).num_classes == 8
    beta = load_tune_config(REPO / "jobs" / "ablations" / "beta.yaml")
    widths = [
        trial_job(beta.train, p, "/tmp/r", "b").model.resolve(8).fast_width
        for p in make_points(beta.space, beta.train)
    ]
    assert widths == [8, 5, 4, 2, 2, 1]  # width 32 // beta_inv for beta 1/4 ... 1/32


def test_the_fast_input_ablation_has_table_5c_five_rows():
    cfg = load_tune_config(REPO / "jobs" / "ablations" / "fast_input.yaml")
    points = {p.key: p for p in make_points(cfg.space, cfg.train)}
    assert sorted(points) == sorted(
        f"tsc-a4-b4-{f}" for f in ("rgb", "gray", "time_diff", "half_res", "flow")
    )
    models = {
        key: trial_job(cfg.train, p, "/tmp/r", "s").model.resolve(num_classes=6)
        for key, p in points.items()
    }
    half, flow = models["tsc-a4-b4-half_res"], models["tsc-a4-b4-flow"]
    assert (half.fast_scale, half.beta_inv, half.fast_in_channels) == (0.5, 4, 3)
    assert (flow.fast_scale, flow.fast_in_channels) == (1.0, 2)
    assert points["tsc-a4-b4-flow"].label == "SlowFast α=4 β=1/4 T-conv flow"


class _Result:
    def __init__(self, key, metrics, error=None):
        self.config = {"point": {"key": key}}
        self.metrics = metrics
        self.error = error
        self.path = None
        self.filesystem = None


def _seeded_rows():
    """Two configurations x three seeds; ttc's seed 1 failed."""
    cfg = _cfg(
        "space.alpha=[4]",
        "space.beta_inv=[8]",
        "space.fusion=[time_to_channel]",
        "space.repeats=3",
        "search.asha.enabled=false",
    )
    points = with_seeds(make_points(cfg.space, cfg.train), cfg.space.seed_list())
    prepared = [
        PreparedPoint(p, trial_job(cfg.train, p, "/tmp/r", "s"), 0.05, 1000) for p in points
    ]
    top1 = {
        "ttc-a4-b8-rgb-s0": 0.60,
        "ttc-a4-b8-rgb-s2": 0.70,
        "slow_only-s0": 0.40,
        "slow_only-s1": 0.35,
        "slow_only-s2": 0.45,
    }
    results = [_Result(k, {"val_top1": v, "val_top5": 0.9, "epoch": 9}) for k, v in top1.items()]
    results.append(_Result("ttc-a4-b8-rgb-s1", {}, error=RuntimeError("worker died")))
    return collect_rows(results, prepared, epochs=10)


def test_aggregation_counts_a_failed_seed_as_missing_and_pairs_by_seed():
    rows = _seeded_rows()
    assert {r["key"]: r["seed"] for r in rows}["ttc-a4-b8-rgb-s1"] == 1
    baseline = default_baseline(rows, None)
    assert baseline == "slow_only"
    agg = {r["key"]: r for r in aggregate_rows(rows, baseline)}
    ttc, slow = agg["ttc-a4-b8-rgb"], agg["slow_only"]
    assert ttc["n"] == 2 and ttc["seeds"] == [0, 2] and ttc["missing"] == [1]
    assert ttc["top1_mean"] == pytest.approx(0.65)  # not (0.6 + 0 + 0.7) / 3
    assert ttc["top1_std"] == pytest.approx(math.sqrt(0.005))
    assert ttc["top1_ci"] == pytest.approx(12.7062 * math.sqrt(0.005) / math.sqrt(2), rel=1e-4)
    assert slow["n"] == 3 and slow["top1_mean"] == pytest.approx(0.40)
    assert slow["top1_ci"] == pytest.approx(4.302653 * 0.05 / math.sqrt(3), rel=1e-6)
    # paired by seed: seeds 0 and 2 (seed 1 of ttc failed): +0.20 and +0.25
    assert ttc["diff_n"] == 2 and ttc["diff_seeds"] == [0, 2]
    assert ttc["diff_top1_mean"] == pytest.approx(0.225)
    assert ttc["diff_top1_ci"] == pytest.approx(
        12.7062 * math.sqrt(0.00125) / math.sqrt(2), rel=1e-4
    )
    assert slow["is_baseline"] and "diff_n" not in slow
    assert best_row(list(agg.values()), "top1_mean")["key"] == "ttc-a4-b8-rgb"
    with pytest.raises(ValueError, match=r"report\.baseline: 'tsc' is not a configuration"):
        default_baseline(rows, "tsc")


def test_aggregated_table_csv_and_error_bar_plot(tmp_path):
    rows = _seeded_rows()
    agg = aggregate_rows(rows, "slow_only")
    md = format_aggregate_table(agg)
    lines = md.splitlines()
    assert lines[0].startswith("| configuration | n | top-1 (± 95 % CI) | top-1 std |")
    assert "Δ top-1 vs slow_only [95 % CI]" in lines[0]
    assert lines[2].startswith("| Slow-only | 3 | 40.0 ± 12.4 | 5.0 | 90.0 ± 0.0 | baseline |")
    assert "| SlowFast α=4 β=1/8 TtoC | 2 | 65.0 ± 63.5 | 7.1 |" in md
    assert "| +22.5 [-9.3, +54.3] (n=2) |" in md and md.rstrip().endswith("| 1 |")
    parsed = list(csv.DictReader(io.StringIO(aggregate_csv(agg))))
    assert [r["key"] for r in parsed] == ["slow_only", "ttc-a4-b8-rgb"]
    assert parsed[1]["n"] == "2" and parsed[1]["missing"] == "1" and parsed[1]["seeds"] == "0 2"
    assert float(parsed[1]["diff_top1_mean"]) == pytest.approx(0.225)
    per_trial = format_table(rows).splitlines()
    assert per_trial[0].startswith("| configuration | seed | top-1 | top-5 |")
    assert per_trial[6].startswith("| SlowFast α=4 β=1/8 TtoC | 1 | - | - |")  # the failed seed
    paths = write_summary(rows, tmp_path, agg)
    assert paths["seeds_plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["seeds_markdown"].read_text().strip() == md
    assert paths["plot"].exists() and paths["csv"].exists()
