"""What a person sees: the console of the smoke runs, counted line by line.

``python -m jobs.train jobs/train.yaml --smoke-test`` (exactly the README's command) must print
at most 40 lines, the epoch summaries once each, and nothing of Ray's own logging: no worker or
actor prefix ``(Name pid=..)``, no ``(raylet)``, no C++ ``[date E pid tid]`` line, no Python
``WARNING``/``ERROR`` record, no traceback. Those go to the log folder the first line names.
``raysf ingest --smoke-test`` shows Ray Data's own log lines only with ``--verbose``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RAYSF = Path(sys.executable).with_name("raysf")

#: Ray's ways of starting a line of its own logs on a driver's console.
RAY_LOG_LINE = re.compile(
    r"\((?:raylet|gcs_server|autoscaler)\)"  # forwarded system-process lines
    r"|\((?:\w+ )?pid=\d+"  # (TrainController pid=123) / (pid=123, ip=...) worker output
    r"|^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWEF] \d+ \d+\]"  # C++ core worker / raylet
    r"|^\d{4}[-/]\d\d[-/]\d\d[ T]\d\d:\d\d:\d\d[,.\d]*\s+(?:ERROR|WARNING)"  # Python logging
    r"|^[EWF]\d{4} \d\d:\d\d:\d\d"  # glog (torch)
    r"|Traceback \(most recent call last\)|^\s*ERROR\b"
)
MAX_TRAIN_SMOKE_LINES = 40


def _run(argv: list[str], timeout: float = 1800) -> tuple[subprocess.CompletedProcess, list[str]]:
    proc = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=_env()
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    assert proc.returncode == 0, "\n".join(lines[-60:])
    return proc, lines


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "PYTHONPATH": str(REPO)}


def _log_dir(first_line: str) -> Path:
    match = re.search(r"logs go to (\S+)/ \(--verbose", first_line)
    assert match, first_line
    return REPO / match.group(1)


def test_train_smoke_console_is_short_and_free_of_ray_logs():
    proc, lines = _run([sys.executable, "-m", "jobs.train", "jobs/train.yaml", "--smoke-test"])
    shown = "\n".join(lines)
    assert len(lines) <= MAX_TRAIN_SMOKE_LINES, f"{len(lines)} lines:\n{shown}"
    noisy = [line for line in lines if RAY_LOG_LINE.search(line)]
    assert not noisy, "\n".join(noisy)
    # each epoch's summary exactly once, in order, with its metrics
    epochs = [line for line in lines if re.search(r"\bepoch [12]/2 · loss ", line)]
    assert [re.search(r"epoch (\d)/2", e).group(1) for e in epochs] == ["1", "2"], shown
    assert all("val top-1" in e and "clips/s" in e and "data wait" in e for e in epochs)
    assert any(line.startswith("test: top-1 ") for line in lines), shown
    summary = json.loads(proc.stdout[proc.stdout.index("{\n") :])
    assert Path(summary["checkpoint"]).exists() and summary["test"]["test_videos"] > 0

    logs = _log_dir(lines[0])
    workers = (logs / "ray-workers.log").read_text()
    assert "(TrainController pid=" in workers and "(RayTrainWorker pid=" in workers
    assert (logs / "driver.log").stat().st_size > 0
    assert (logs / "ray-session").is_dir()


def test_ingest_smoke_shows_ray_logs_only_when_verbose(tmp_path):
    _, quiet = _run([str(RAYSF), "ingest", "--smoke-test", "--log-dir", str(tmp_path / "q")])
    assert len(quiet) <= 8, "\n".join(quiet)
    assert not [line for line in quiet if RAY_LOG_LINE.search(line)], "\n".join(quiet)
    assert not any("Starting execution of Dataset" in line for line in quiet)
    assert any(re.match(r"ingest .*: 12 videos in 3 shards -> \d+ clips", x) for x in quiet)
    counts = json.loads(quiet[-1])
    assert counts["videos"] == 12 and counts["clips"] > 0
    assert "Starting execution of Dataset" in (tmp_path / "q" / "driver.log").read_text()

    _, loud = _run(
        [str(RAYSF), "ingest", "--smoke-test", "--verbose", "--log-dir", str(tmp_path / "v")]
    )
    assert any("Starting execution of Dataset" in line for line in loud), "\n".join(loud)


def test_serve_smoke_serves_classifies_one_video_and_stops(tmp_path):
    """``raysf serve --smoke-test``: trains the smoke model, serves it on a local Ray (whose
    token auth Ray 2.60 turns on by default, so the service takes that token or none), answers
    one classification and stops, quietly."""
    from infra.local.procs import free_port

    port = str(free_port())
    argv = [str(RAYSF), "serve", "--smoke-test", "--port", port, "--log-dir", str(tmp_path)]
    _, lines = _run(argv)
    shown = "\n".join(lines)
    assert len(lines) <= MAX_TRAIN_SMOKE_LINES and not [x for x in lines if RAY_LOG_LINE.search(x)]
    assert any(f"at http://127.0.0.1:{port} (POST /v1/classify" in x for x in lines), shown
    (auth,) = [x for x in lines if x.startswith("auth: ")]
    assert "bearer token required: " in auth or "no token: " in auth, auth
    answer = json.loads(lines[-1])
    assert answer["views"] == 6 and len(answer["top5"]) == 3, shown
    assert {t["label"] for t in answer["top5"]} == {"drift_left", "drift_right", "still"}
