"""benchmarks/serve_bench.py without Ray: its summary maths (percentiles, shares, ratios, the
top-level figures), what counts as a bad request refused, and its arguments. The load loop
itself runs against the service in tests/training/serving/test_service.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "serve_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("serve_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("serve_bench", module)
    spec.loader.exec_module(module)
    return module


def _ok(latency_ms: float, views: int = 30, decode: float = 20.0, total: float = 80.0) -> dict:
    timings = {"decode": decode, "model": total - decode - 5, "total": total}
    return {"status": 200, "latency_ms": latency_ms, "views": views, "timings": timings}


def test_latency_percentiles_interpolate_and_empty_is_none(bench):
    figures = bench.latency_ms([float(v) for v in range(1, 101)])
    assert figures["p50_ms"] == 50.5 and figures["p95_ms"] == 95.05
    assert figures["p99_ms"] == 99.01 and figures["mean_ms"] == 50.5 and figures["max_ms"] == 100
    assert bench.latency_ms([7.0]) == dict.fromkeys(figures, 7.0)
    assert set(bench.latency_ms([]).values()) == {None}


def test_ratio_rounds_and_refuses_a_zero_or_missing_figure(bench):
    assert bench.ratio(2, 3) == 0.667
    assert (
        bench.ratio(1, 0) is None and bench.ratio(None, 2) is None and bench.ratio(1, None) is None
    )


def test_summary_counts_views_of_successes_and_shares_of_the_ingress_time(bench):
    records = [_ok(100.0), _ok(200.0, decode=40.0), _ok(300.0, views=15, total=120.0)]
    records += [{"status": 429, "latency_ms": 1.0, "error": "busy"}, {"status": 0, "latency_ms": 5}]
    level = bench.summarise(records, wall_s=2.0)
    assert (level["requests"], level["ok"], level["failed"]) == (5, 3, 2)
    assert level["statuses"] == {"0": 1, "200": 3, "429": 1}
    assert level["clips_per_s"] == 37.5 and level["requests_per_s"] == 1.5  # 75 views in 2 s
    assert level["views_per_request"] == 25.0
    assert level["p50_ms"] == 200.0 and level["max_ms"] == 300.0  # failures are not timed
    assert level["decode_share"] == round(80 / 280, 3)
    assert level["ingress_mean_ms"]["total"] == round(280 / 3, 3)


def test_summary_of_nothing_but_failures(bench):
    level = bench.summarise([{"status": 503, "latency_ms": 3.0}], wall_s=1.0)
    assert level["ok"] == 0 and level["failed"] == 1 and level["clips_per_s"] == 0
    assert level["p99_ms"] is None and level["decode_share"] is None


def test_compare_gives_each_level_its_ratio_and_the_top_level_figures(bench):
    levels = [
        {"clients": 16, "clips_per_s": 400.0, "p50_ms": 900.0, "p99_ms": 1500.0},
        {"clients": 1, "clips_per_s": 250.0, "p50_ms": 100.0, "p99_ms": 150.0},
    ]
    for level in levels:
        level.update(failed=0, warmup_failed=0)
    levels[0]["failed"], levels[1]["warmup_failed"] = 2, 1
    bad = {"bad_sent": 4, "bad_refused_as_expected": 3}
    top = bench.compare({"clips_per_s": 500.0}, levels, bad)
    assert top == {
        "serve_over_direct_16": 0.8,
        "p99_over_p50_1": 1.5,
        "failed": 4,  # 2 timed, 1 warm-up, 1 bad request not refused as expected
        "bad_sent": 4,
        "bad_refused_as_expected": 3,
    }
    assert levels[1]["serve_over_direct"] == 0.5 and levels[0]["p99_over_p50"] == round(15 / 9, 3)


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        (415, {"error": "unreadable", "detail": "x", "status": 415}, True),
        (413, {"error": "file_too_large"}, True),
        (200, {"top5": []}, False),
        (500, {"error": "internal"}, False),
        (400, {"detail": "no reason"}, False),
        (404, ["not", "an", "object"], False),
        (0, {"exception": "ConnectionError"}, False),
    ],
)
def test_a_bad_request_must_get_a_4xx_json_reason(bench, status, answer, expected):
    assert bench.refused_as_expected(status, answer) is expected


def test_arguments_and_the_smoke_test(bench):
    args = bench.parse_args([])
    assert args.clients == [1, 4, 16] and args.requests == 200 and args.max_seconds == 30
    assert (args.decoders, args.replicas, args.device) == (1, 1, "cpu")
    assert args.direct_threads == sorted({1, torch.get_num_threads()})
    assert bench.parse_args(["--direct-threads", "2,1,2"]).direct_threads == [1, 2]
    smoke = bench.parse_args(["--smoke-test", "--device", "cuda"])
    assert smoke.clients == [1, 2] and smoke.requests == 4 and smoke.device == "cuda"
    assert bench.parse_args(["--clients", "16,4,4"]).clients == [4, 16]
