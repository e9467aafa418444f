"""benchmarks/multigrid_bench.py --smoke-test: both schedules train on the smoke set in-process
and every key of issue 31 is printed with values of the right kind."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "multigrid_bench.py"


@pytest.mark.slow  # the session's smoke set is ingested with Ray
def test_smoke_test_reports_every_key(smoke_data, tmp_path, capsys):
    bench = runpy.run_path(str(BENCH))
    out = tmp_path / "bench.jsonl"
    result = bench["main"](["--smoke-test", "--dataset", smoke_data, "--out", str(out)])
    for key in ("speedup_to_accuracy", "final_top1_plain", "final_top1_multigrid"):
        assert set(result[key]) >= {"mean", "ci95", "per_seed"}, key
        assert len(result[key]["per_seed"]) == 1
    for key in ("final_top1_plain", "final_top1_multigrid"):
        assert 0.0 <= result[key]["mean"] <= 1.0
    phases = result["data_wait_by_phase"]
    assert "plain" in phases and "finetune" in phases and len(phases) >= 3
    assert all(0.0 <= v <= 1.0 for v in phases.values())
    assert set(result["train_seconds"]) == {"plain/0", "multigrid/0"}
    assert "4x@16 1x@32" in result["multigrid_schedule"]
    assert out.read_text().count("\n") == 1 and '"speedup_to_accuracy"' in capsys.readouterr().out
