"""benchmarks/train_bench.py --smoke-test: every part runs and every key is printed, on a host
where PyAV cannot be imported (as on the GPU machine): neither the driver nor any Ray worker of
the training path may import it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "train_bench.py"
KEYS = {
    "device",
    "card",
    "torch",
    "settings",
    "clips_per_s",
    "cpu_clips_per_s",
    "data_wait_frac",
    "loop_data_wait_frac",
    "loop_over_ceiling",
    "loop_same_stream_over_ceiling",
    "trainer_over_ceiling",
    "trainer_steady_over_ceiling",
    "trainer_first_batch_s",
    "ours_over_ptv",
    "loop_over_ptv",
    "trainer_over_ptv",
    "sync_free_step",
    "side_stream_feed_exact",
    "trainer_epochs",
    "part_seconds",
}
PARTS = {"ceiling", "loop", "loop_same_stream", "trainer", "ptv"}


@pytest.mark.slow
def test_smoke_test_prints_every_key_without_pyav(tmp_path, ray_cluster_factory):
    blocker = tmp_path / "no_pyav" / "av"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(
        'raise ImportError("PyAV is blocked: the training path must not import it")\n'
    )
    paths = os.pathsep.join([str(blocker.parent), str(ROOT), str(BENCH.parent)])
    # Every process of the cluster (so every Ray worker) finds the blocker first on its path;
    # the driver gets av = None in sys.modules. Fresh ports: other Rays may run on this host.
    cluster = ray_cluster_factory(head_num_cpus=4, env={"PYTHONPATH": paths})
    out = tmp_path / "bench.json"
    driver = textwrap.dedent(
        f"""
        import runpy, sys
        sys.modules["av"] = None
        sys.argv = ["train_bench.py", "--smoke-test", "--out", {str(out)!r}]
        runpy.run_path({str(BENCH)!r}, run_name="__main__")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", driver],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1500,
        env={**os.environ, **cluster.env, "PYTHONPATH": paths},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert set(result) >= KEYS, sorted(KEYS - set(result))
    assert result["device"] == "cpu" and result["settings"] == "cpu: fp32, contiguous, eager"
    assert set(result["clips_per_s"]) == PARTS
    assert all(rate > 0 for rate in result["clips_per_s"].values())
    for key in ("loop_over_ceiling", "trainer_over_ceiling", "ours_over_ptv"):
        assert result[key] > 0
    assert 0 <= result["data_wait_frac"] < 1
    assert [e["epoch"] for e in result["trainer_epochs"]] == [0, 1]
    assert all(e["steps"] == 2 for e in result["trainer_epochs"])
    assert result["sync_free_step"] is None  # a CUDA-only check
    assert result["side_stream_feed_exact"] is True
    assert "(c) trainer" in proc.stderr  # progress goes to stderr, the JSON to stdout
    assert json.loads(proc.stdout) == result
