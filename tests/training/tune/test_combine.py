"""Combining sweeps into one seeded table (``training.tune.combine``, ``jobs.table``)."""

from __future__ import annotations

import json
import math

import pytest

from jobs import table as table_job
from training.tune.combine import combine_sweeps
from training.tune.stats import t_quantile


def _row(config_key: str, seed: int, top1: float | None, status: str = "finished") -> dict:
    slow = config_key == "slow_only"
    return {
        "key": f"{config_key}-s{seed}",
        "config_key": config_key,
        "seed": seed,
        "configuration": "Slow-only" if slow else f"SlowFast {config_key}",
        "pathways": "slow_only" if slow else "slowfast",
        "fusion": "none" if slow else "time_strided_conv",
        "alpha": 4,
        "beta_inv": 4,
        "fast_input": "time_diff",
        "base_lr": 0.4,
        "top1": top1,
        "top5": None if top1 is None else 0.9,
        "gflops": 0.04 if slow else 0.09,
        "params": 1_000_000,
        "epochs": 10,
        "status": status,
        "error": None,
    }


def _write(path, rows):
    path.write_text(json.dumps({"rows": rows, "aggregated": None}))
    return path


def test_two_sweeps_pair_by_seed_and_a_failed_trial_is_missing(tmp_path):
    a = _write(
        tmp_path / "a.json", [_row("slow_only", s, v) for s, v in enumerate([0.1, 0.2, 0.3])]
    )
    b = _write(
        tmp_path / "b.json",
        [
            _row("tsc", 1, 0.5),
            _row("tsc", 2, 0.9),
            _row("tsc", 3, 0.6),
            _row("tsc", 4, None, "error"),
        ],
    )
    rows, agg = combine_sweeps([a, b])  # baseline: slow_only, found in the first file
    assert len(rows) == 7
    by = {r["key"]: r for r in agg}
    assert by["slow_only"]["is_baseline"] and by["slow_only"]["n"] == 3
    tsc = by["tsc"]
    assert tsc["n"] == 3 and tsc["seeds"] == [1, 2, 3] and tsc["missing"] == [4]
    assert tsc["top1_mean"] == pytest.approx((0.5 + 0.9 + 0.6) / 3)
    # paired over the seeds both have (1 and 2): 0.5 - 0.2, 0.9 - 0.3
    assert tsc["diff_seeds"] == [1, 2] and tsc["diff_top1_mean"] == pytest.approx(0.45)
    std = math.sqrt(((0.3 - 0.45) ** 2 + (0.6 - 0.45) ** 2) / 1)
    assert tsc["diff_top1_ci"] == pytest.approx(t_quantile(0.95, 1) * std / math.sqrt(2))


def test_a_trial_in_two_files_an_unknown_baseline_and_bad_files_are_named(tmp_path):
    a = _write(tmp_path / "a.json", [_row("slow_only", 0, 0.1)])
    again = _write(tmp_path / "again.json", [_row("slow_only", 0, 0.2)])
    with pytest.raises(
        ValueError, match=r"again\.json: trial slow_only seed 0 is also in .*a\.json"
    ):
        combine_sweeps([a, again])
    with pytest.raises(ValueError, match=r"--baseline: 'tsc' is not a configuration"):
        combine_sweeps([a], baseline="tsc")
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        combine_sweeps([tmp_path / "nope.json"])
    (tmp_path / "text.json").write_text("rows: 1")
    with pytest.raises(ValueError, match=r"text\.json: not JSON"):
        combine_sweeps([tmp_path / "text.json"])
    short = _write(tmp_path / "short.json", [{"key": "x", "config_key": "x", "seed": 0}])
    with pytest.raises(ValueError, match=r"short\.json: rows\[0\] lacks .*'top1'"):
        combine_sweeps([short])


def test_the_command_prints_and_writes_the_table(tmp_path, capfd):
    a = _write(tmp_path / "a.json", [_row("slow_only", s, 0.1 + 0.01 * s) for s in range(3)])
    b = _write(tmp_path / "b.json", [_row("tsc", s, 0.5 - 0.01 * s) for s in range(3)])
    out = tmp_path / "out"
    assert table_job.main([str(a), str(b), "--out", str(out), "--log-dir", str(tmp_path)]) == 0
    text = capfd.readouterr().out
    assert "| SlowFast tsc | 3 | 49.0 ± 2.5 |" in text and "(n=3)" in text
    assert (out / "ablation_seeds.csv").read_text().count("\n") == 3  # header + 2 configurations
    assert (out / "ablation_trials.csv").read_text().count("\n") == 7
    assert (out / "accuracy_vs_gflops_seeds.png").read_bytes()[:4] == b"\x89PNG"
    code = table_job.main([str(a), str(a), "--log-dir", str(tmp_path)])
    assert code == 2 and "is also in" in capfd.readouterr().err


def test_configs_keeps_only_the_named_configurations(tmp_path):
    """A row shared with another table (e.g. the fusion sweep's T-conv, which is also the Fast
    input table's time-difference row) is taken from that sweep without its other rows."""
    shared = _write(
        tmp_path / "fusion.json",
        [_row(k, s, v) for k, v in (("slow_only", 0.1), ("tsc", 0.5)) for s in range(3)],
    )
    new = _write(tmp_path / "input.json", [_row("rgb", s, 0.2 + 0.1 * s) for s in range(3)])
    rows, agg = combine_sweeps([shared, new], baseline="rgb", configs=["tsc", "rgb"])
    assert len(rows) == 6 and {r["key"] for r in agg} == {"tsc", "rgb"}
    tsc = next(r for r in agg if r["key"] == "tsc")
    assert tsc["diff_seeds"] == [0, 1, 2] and tsc["diff_top1_mean"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match=r"--configs: \['gray'\] in none of the sweep files"):
        combine_sweeps([shared, new], configs=["tsc", "gray"])
    code = table_job.main(
        [str(shared), str(new), "--configs", "tsc,rgb", "--baseline", "rgb",
         "--log-dir", str(tmp_path)]
    )  # fmt: skip
    assert code == 0


def test_a_tagged_file_pairs_the_same_configurations_under_another_recipe(tmp_path):
    """The same configuration trained with two recipes (e.g. data.clips_per_decode 1 and 2):
    the tagged file's keys get -TAG, and its trials pair with the other's by seed."""
    one = _write(tmp_path / "k1.json", [_row("tsc", s, 0.5 + 0.1 * s) for s in range(3)])
    two = _write(tmp_path / "k2.json", [_row("tsc", s, 0.45 + 0.1 * s) for s in range(3)])
    rows, agg = combine_sweeps([one, two], baseline="tsc", tags={str(two): "k2"})
    assert sorted(r["config_key"] for r in rows) == ["tsc"] * 3 + ["tsc-k2"] * 3
    k2 = next(r for r in agg if r["key"] == "tsc-k2")
    assert k2["configuration"] == "SlowFast tsc (k2)"
    assert k2["diff_seeds"] == [0, 1, 2] and k2["diff_top1_mean"] == pytest.approx(-0.05)
    assert k2["diff_top1_ci"] == pytest.approx(0.0, abs=1e-9)  # the same gap on every seed
    with pytest.raises(ValueError, match=r"--tag: .*other\.json is not one of the sweep files"):
        combine_sweeps([one, two], tags={str(tmp_path / "other.json"): "k2"})
    with pytest.raises(ValueError, match=r"--tag: the tag of .* must be a non-empty word"):
        combine_sweeps([one, two], tags={str(two): "k 2"})
    code = table_job.main(
        [str(one), str(two), "--tag", f"{two}=k2", "--baseline", "tsc", "--log-dir", str(tmp_path)]
    )
    assert code == 0
    assert table_job.main([str(one), str(two), "--log-dir", str(tmp_path)]) == 2
