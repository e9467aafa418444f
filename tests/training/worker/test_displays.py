"""The driver's displays (training progress, the sweep's table) and the MLflow pictures."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest

from raysf import console
from training.artifacts import CURVE_METRICS, curves_png
from training.tune.live_table import SweepProgress
from training.tune.report import point_label, scatter_figure
from training.worker.reporting import StepReporter, TrainingDisplay, report_epoch_event
from training.worker.steps import EpochStats


@pytest.fixture
def screen(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(console, "_session", console.Session(out, tty=False, interval=3600))
    return out


def _metrics(epoch: int) -> dict:
    return {
        "epoch": epoch,
        "train_loss": 1.25,
        "val_top1": 0.5,
        "clips_per_s": 12.34,
        "data_wait_frac": 0.25,
    }


def test_training_display_prints_one_summary_per_epoch(screen):
    display = TrainingDisplay("[run]", epochs=2, steps=10)
    with display.active():
        for epoch in range(2):
            console.emit(
                "train_step", epoch=epoch, step=5, steps=10, clips_per_s=3.0, wait=0.5, loss=1.5
            )
            report_epoch_event(_metrics(epoch), epochs=2)
        console.emit("note", text="[rank 0] resumed from checkpoint of epoch 0")
    lines = screen.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(
        "[run] epoch 1/2 · loss 1.2500 · val top-1 50.0% · 12.3 clips/s · data wait 25%"
    )
    assert "run ETA" in lines[0] and "run ETA" not in lines[1]
    assert lines[1].startswith("[run] epoch 2/2 · ")
    assert lines[2] == "[run] [rank 0] resumed from checkpoint of epoch 0"
    # outside the run, a step event prints nothing and an epoch event its text
    console.emit("train_step", epoch=0, step=1, steps=2, clips_per_s=1.0, wait=0.0, loss=1.0)
    report_epoch_event(_metrics(0), epochs=2)
    assert screen.getvalue().splitlines()[3].startswith("epoch 1/2 · loss 1.2500")


def test_step_reporter_emits_at_most_every_interval(capsys, monkeypatch):
    monkeypatch.setattr(console, "_session", None)
    stats = EpochStats(samples=8, steps=2, wait=1.0)
    StepReporter(0, 3, 10, interval=3600)(stats, 1.0, 4.0)
    assert capsys.readouterr().out == ""
    StepReporter(0, 3, 10, interval=0)(stats, 1.0, 4.0)
    event = console.parse_event(capsys.readouterr().out)
    assert event.pop("id")  # the driver drops a repeated id (raysf.ray_output)
    assert event == {
        "kind": "train_step",
        "epoch": 0,
        "epochs": 3,
        "step": 2,
        "steps": 10,
        "clips_per_s": 2.0,
        "wait": 0.25,
        "loss": 1.0,
    }


def _point(key, fusion, alpha, beta_inv, lr=0.4, pathways="slowfast", fast_input="rgb"):
    dims = {
        "pathways": pathways,
        "fusion": fusion,
        "alpha": alpha,
        "beta_inv": beta_inv,
        "fast_input": fast_input,
        "base_lr": lr,
    }
    return {"key": key, "label": key, "overrides": {}, "dims": dims}


def _trial(key):
    return SimpleNamespace(config={"point": {"key": key}}, trial_id="t0")


def test_sweep_table_has_a_column_per_swept_dimension(screen):
    points = [
        _point("ttc-a4-b8-rgb", "time_to_channel", 4, 8),
        _point("tsc-a8-b16-time_diff", "time_strided_conv", 8, 16, fast_input="time_diff"),
        _point("slow-only", None, None, None, pathways="slow_only", fast_input=None),
    ]
    table = SweepProgress(points, epochs=2)
    table.setup()
    for key in ("ttc-a4-b8-rgb", "tsc-a8-b16-time_diff", "slow-only"):
        table.on_trial_start(0, [], _trial(key))
    table.on_trial_result(
        0, [], _trial("ttc-a4-b8-rgb"), {"epoch": 1, "val_top1": 0.625, "val_loss": 0.9}
    )
    table.on_trial_complete(0, [], _trial("ttc-a4-b8-rgb"))
    table.on_trial_result(0, [], _trial("tsc-a8-b16-time_diff"), {"epoch": 0, "val_top1": 0.25})
    table.on_trial_complete(0, [], _trial("tsc-a8-b16-time_diff"))
    table.on_trial_error(0, [], _trial("slow-only"))
    table.on_experiment_end([])
    lines = screen.getvalue().splitlines()
    header = lines[0].split()
    assert header[:7] == ["trial", "pathways", "fusion", "α", "β", "fast", "input"]
    assert "lr" not in header  # one learning rate: not a swept dimension
    assert lines[1].split()[:9] == [
        "ttc-a4-b8-rgb",
        "slowfast",
        "TtoC",
        "4",
        "1/8",
        "rgb",
        "finished",
        "2/2",
        "62.5%",
    ]
    assert lines[2].split()[:9] == [
        "tsc-a8-b16-time_diff",
        "slowfast",
        "T-conv",
        "8",
        "1/16",
        "time_diff",
        "stopped",
        "early",
        "1/2",
    ]
    assert lines[3].split()[:8] == ["slow-only", "slow_only", "-", "-", "-", "-", "error", "0/2"]
    assert lines[4] == "sweep: 3/3 trials ended"

    swept = SweepProgress([_point("a", "none", 4, 8, lr=0.1), _point("b", "none", 4, 8, lr=0.4)], 1)
    assert swept.header().split()[7] == "lr"


def test_training_curves_png(tmp_path):
    history = {m: [(e, 0.1 * (e + 1)) for e in range(3)] for m in CURVE_METRICS}
    path = tmp_path / "curves.png"
    curves_png(history, "slowfast_tiny: training curves", path)
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 10_000


def test_scatter_labels_every_configuration():
    rows = [
        {
            "configuration": "Slow-only",
            "pathways": "slow_only",
            "fusion": "none",
            "alpha": None,
            "beta_inv": None,
            "gflops": 0.04,
            "top1": 0.2,
        },
        {
            "configuration": "SlowFast α=4 β=1/4 TtoC time_diff",
            "pathways": "slowfast",
            "fusion": "time_to_channel",
            "alpha": 4,
            "beta_inv": 4,
            "gflops": 0.09,
            "top1": 0.4,
        },
        {
            "configuration": "SlowFast α=8 β=1/8 T-conv",
            "pathways": "slowfast",
            "fusion": "time_strided_conv",
            "alpha": 8,
            "beta_inv": 8,
            "gflops": 0.1,
            "top1": None,
        },
    ]
    fig = scatter_figure(rows)
    ax = fig.axes[0]
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == ["Slow-only", "α=4 β=1/4 TtoC time_diff"]  # the failed trial has no point
    assert ax.get_xlabel().startswith("GFLOPs") and "top-1" in ax.get_ylabel()
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
        "Slow-only",
        "time_to_channel",
    ]
    assert point_label(rows[2]) == "α=8 β=1/8 T-conv"
    assert json.dumps(labels, ensure_ascii=False)
