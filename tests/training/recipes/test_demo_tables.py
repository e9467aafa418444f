"""The demo's per-class table (each model's test top-1 beside its sampling's ceiling) and the
per-class metrics of the evaluation it reads; no Ray."""

from __future__ import annotations

import numpy as np

from pipelines.synth.spec import CLASS_NAMES
from training.inference.evaluate import aggregate_views
from training.recipes.demo import print_class_table


def test_the_evaluation_reports_each_class_top1():
    probs = np.eye(3)[[0, 0, 1, 2]] * 0.9 + 0.05  # videos a, b -> 0; c -> 1; d -> 2
    batch = {"video_id": np.array(["a", "b", "c", "d"]), "label": np.array([0, 1, 1, 1])}
    metrics = aggregate_views([{**batch, "probs": probs}])
    assert metrics["test_top1"] == 0.5
    assert metrics["test_top1_class_0"] == 1.0
    assert metrics["test_top1_class_1"] == 1 / 3
    assert "test_top1_class_2" not in metrics  # no test video of class 2


def test_the_class_table_puts_each_class_beside_its_ceiling(capsys):
    classes = CLASS_NAMES[:6]
    rows = [
        {
            "model": "SlowFast",
            "stride": 2,
            "test_top1": 0.9,
            "class_top1": dict.fromkeys(range(6), 0.9),
        },
        {"model": "Slow-only", "stride": 8, "test_top1": 0.4, "class_top1": {0: 1.0, 2: 0.5}},
    ]
    print_class_table(rows, classes)
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    assert lines["drift_right"].split()[1:] == ["0.90", "/", "1.00", "1.00", "/", "1.00"]
    assert lines["vibrate"].split()[1:] == ["0.90", "/", "1.00", "-", "/", "0.25*"]
    assert lines["still"].split()[-3:] == ["0.50", "/", "0.25*"]
    assert lines["top-1"].split()[1:] == ["0.90", "/", "1.00", "0.40", "/", "0.50"]
