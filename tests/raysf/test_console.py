"""The console (raysf.console, raysf.display, raysf.ray_output): progress displays, events, the routing of Ray's
worker output, and the session that sends stderr to a file."""

from __future__ import annotations

import io
import json
import os
import sys

import pytest

from raysf import console, display, ray_output


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_durations_and_eta():
    assert [display.format_duration(s) for s in (0, 42.4, 187, 3723)] == [
        "0s",
        "42s",
        "3:07",
        "1:02:03",
    ]
    assert display.eta_seconds(25, 100, 10.0) == pytest.approx(30.0)
    assert display.eta_seconds(0, 100, 10.0) is None
    assert display.eta_seconds(5, None, 10.0) is None


def test_progress_text_has_count_rate_eta_and_note():
    shown = display.Progress("ingest", total=40, unit="videos", count=10, note="shard 1/4")
    shown.started -= 5.0  # 10 videos in 5 s
    text = shown.text()
    assert text.startswith("ingest · 10/40 videos · 2.00 videos/s · ETA ")
    assert "ETA 15s" in text and text.endswith("shard 1/4")


def test_plain_output_prints_at_the_interval_and_once_at_the_end(monkeypatch):
    out = io.StringIO()
    session = console.Session(out, tty=False, interval=3600)
    monkeypatch.setattr(console, "_session", session)
    shown = display.Progress("epoch 1/2", total=100, unit="steps")
    for step in range(1, 101):
        shown.update(step)
    assert out.getvalue() == ""  # no line before the interval
    shown.close("epoch 1/2 done")
    shown.close("again")  # a second close prints nothing
    assert out.getvalue() == "epoch 1/2 done\n"

    session.interval = 0
    shown = display.Progress("eval", total=3, unit="views")
    for n in (1, 2, 3):
        shown.update(n)
    shown.close()
    lines = out.getvalue().splitlines()[1:]
    assert len(lines) == 4 and lines[0].startswith("eval · 1/3 views")
    assert lines[-1].startswith("eval · 3/3 views")


def test_terminal_output_redraws_one_line_and_keeps_other_lines_above(monkeypatch):
    out = Terminal()
    session = console.Session(out, interval=3600)
    monkeypatch.setattr(console, "_session", session)
    shown = display.Progress("sweep", total=4, unit="trials")
    shown.update(1)
    console.line("trial 1 finished")
    shown.update(2)
    shown.close("sweep: 4/4")
    text = out.getvalue()
    assert text.count("\r\x1b[K") >= 3  # each redraw clears the line first
    assert "trial 1 finished\n" in text
    assert text.endswith("sweep: 4/4\n") and text.count("sweep: 4/4") == 1


def test_emit_without_session_writes_an_event_line(capsys, monkeypatch):
    monkeypatch.setattr(console, "_session", None)
    console.emit("train_epoch", epoch=3, text="epoch 4/5")
    line = capsys.readouterr().out
    assert line.startswith(console.EVENT_PREFIX) and line.endswith("\n")
    event = console.parse_event("(RayTrainWorker pid=7) " + line.strip())
    assert event == {"kind": "train_epoch", "epoch": 3, "text": "epoch 4/5", "id": event["id"]}
    console.emit("train_epoch", epoch=4)
    assert console.parse_event(capsys.readouterr().out)["id"] != event["id"]
    assert console.parse_event("epoch 0: loss 1.2") is None
    assert console.parse_event(console.EVENT_PREFIX + "{not json") is None


def test_ray_output_events_go_to_handlers_and_other_lines_to_the_log(tmp_path, monkeypatch):
    out = io.StringIO()
    session = console.Session(out, log_dir=tmp_path, verbose=False, tty=False)
    monkeypatch.setattr(console, "_session", session)
    printed, seen = [], []
    event = console.EVENT_PREFIX + json.dumps({"kind": "train_step", "step": 2})
    data = {
        "lines": ["Starting execution of Dataset train_0", event, "[2026 E 1 2] core_worker.cc"],
        "pid": 41,
        "ip": "10.0.0.1",
        "actor_name": "SplitCoordinator",
        "is_err": False,
    }
    with console.handlers(train_step=seen.append):
        ray_output.handle_ray_output(data, printed.append)
        again = console.EVENT_PREFIX + json.dumps({"kind": "train_step", "step": 3, "id": "a-1"})
        for _ in range(2):  # Ray forwarded the same line twice: handled once
            ray_output.handle_ray_output({**data, "lines": [again]}, printed.append)
    ray_output.handle_ray_output({"lines": ["WARNING: 8 PYTHON workers"], "pid": "raylet"})
    session.close()
    assert seen == [
        {"kind": "train_step", "step": 2},
        {"kind": "train_step", "step": 3, "id": "a-1"},
    ]
    assert printed == [] and out.getvalue() == ""  # nothing of Ray's on the console
    log = (tmp_path / "ray-workers.log").read_text().splitlines()
    assert log == [
        "(SplitCoordinator pid=41, ip=10.0.0.1) Starting execution of Dataset train_0",
        "(SplitCoordinator pid=41, ip=10.0.0.1) [2026 E 1 2] core_worker.cc",
        "(raylet) WARNING: 8 PYTHON workers",
    ]
    # the handler is gone after the block: the event's text (if any) is printed instead
    console.dispatch({"kind": "train_step", "text": "step 3"})
    assert out.getvalue() == "step 3\n"


def test_verbose_and_no_session_leave_other_lines_to_rays_printer(tmp_path, monkeypatch):
    printed = []
    data = {"lines": ["hello", console.EVENT_PREFIX + '{"kind": "x"}'], "pid": 5}
    monkeypatch.setattr(console, "_session", None)
    ray_output.handle_ray_output(data, printed.append)
    verbose = console.Session(io.StringIO(), log_dir=tmp_path, verbose=True, tty=False)
    monkeypatch.setattr(console, "_session", verbose)
    ray_output.handle_ray_output(data, printed.append)
    verbose.close()
    assert [p["lines"] for p in printed] == [["hello"], ["hello"]]
    assert (tmp_path / "ray-workers.log").read_text() == "(pid=5) hello\n"


def test_session_sends_stderr_to_the_log_folder(tmp_path, capfd):
    folder = tmp_path / "logs"
    with console.session("train", log_dir=folder) as session:
        os.write(2, b"[2026-11-26 10:45:59,233 E 20892 20892] core_worker.cc:2465: noise\n")
        print("a library warning", file=sys.stderr, flush=True)
        console.error("error: data.dataset: no such dataset")
        console.line("epoch 1/2 · loss 1.0")
        assert session.log_dir == folder
    os.write(2, b"stderr is back\n")
    captured = capfd.readouterr()
    assert captured.out.splitlines() == [
        f"[train] Ray and library logs go to {folder}/ (--verbose shows them here)",
        "epoch 1/2 · loss 1.0",
    ]
    assert captured.err == "error: data.dataset: no such dataset\nstderr is back\n"
    driver = (folder / "driver.log").read_text()
    assert "core_worker.cc:2465: noise" in driver and "a library warning" in driver
    assert (folder / "ray-workers.log").exists()


def test_verbose_session_keeps_stderr(tmp_path, capfd):
    with console.session("ingest", verbose=True, log_dir=tmp_path):
        print("ray says", file=sys.stderr, flush=True)
    captured = capfd.readouterr()
    assert "ray says" in captured.err and "(--verbose)" in captured.out
    assert not (tmp_path / "driver.log").exists()


def test_library_prints_go_to_the_log_while_console_lines_stay(tmp_path, capfd):
    with console.session("tune", log_dir=tmp_path), console.stdout_to_log():
        print("╭── Configuration for experiment ──╮")  # what Ray Tune prints itself
        console.line("trial  pathways  fusion")
    out = capfd.readouterr().out.splitlines()
    assert out[1:] == ["trial  pathways  fusion"]
    assert "Configuration for experiment" in (tmp_path / "driver.log").read_text()


def test_slow_rates_are_per_minute():
    shown = display.Progress("sweep", total=4, unit="trials", count=1)
    shown.started -= 300.0  # one trial in 5 minutes
    assert "0.20 trials/min" in shown.text() and "ETA 15:00" in shown.text()


def test_two_commands_in_one_second_get_two_log_folders(tmp_path, monkeypatch):
    """The default log folder is created exclusively: a second command of the same name started
    in the same second gets ``-<pid>`` instead of writing into the first one's logs."""
    import time

    monkeypatch.setattr(console, "DEFAULT_LOG_ROOT", tmp_path / "logs")
    monkeypatch.setattr(time, "strftime", lambda *_: "20261208-041435")
    first = console._new_log_folder("train")
    second = console._new_log_folder("train")
    assert first == tmp_path / "logs" / "train-20261208-041435" and first.is_dir()
    assert second == first.with_name(f"{first.name}-{os.getpid()}")
