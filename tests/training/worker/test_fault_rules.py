"""Pure rules behind the fault handling (no Ray): which config keys block a resume, when
dropped records stop a run, how the decode-error log counts, how entry points report."""

from __future__ import annotations

import pytest

from pipelines.loader.decode_errors import DecodeErrorLog
from raysf.errors import ExpectedError, run_entry_point
from training.plan import changed_training_keys, is_training_key
from training.worker.reporting import decode_error_note
from training.worker.steps import DecodeErrorStats


def test_changed_training_keys_name_old_and_new_values():
    stored = {"optim": {"base_lr": 0.1}, "mlflow": {"enabled": True}, "train": {"seed": 0}}
    new = {"optim": {"base_lr": 0.2}, "mlflow": {"enabled": False}, "train": {"seed": 0}}
    assert changed_training_keys(stored, new) == ["optim.base_lr: 0.1 -> 0.2"]
    # keys only one side has (another version) are not compared
    assert changed_training_keys({"a": {"b": 1}}, {"a": {"c": 2}}) == []
    assert is_training_key("data.clip.crop_size") and is_training_key("train.epochs")
    assert not is_training_key("storage.path") and not is_training_key("eval.batch_size")
    assert not is_training_key("data.decode.num_cpus")
    assert is_training_key("data.decode.train_view")


def test_decode_error_limit():
    assert DecodeErrorStats(0, 0).over_limit(100, 10, 0.0) == ""
    assert DecodeErrorStats(1, 0).over_limit(99, 10, 0.02) == ""  # 1 of 100 = 1 %
    reason = DecodeErrorStats(1, 0).over_limit(99, 10, 0.001)
    assert reason.startswith("1 train records failed to decode") and "1.00% > " in reason
    assert "val records" in DecodeErrorStats(0, 2).over_limit(100, 8, 0.1)
    assert DecodeErrorStats(3, 1).metrics() == {"decode_errors": 3, "val_decode_errors": 1}


def test_decode_error_log_counts_and_resets():
    log = DecodeErrorLog(keep=1)
    log.record("train", "a", 0, "InvalidDataError: x")
    log.record("train", "b", 0, "InvalidDataError: y")
    log.record("val", "c", 2, "z")
    taken = log.take()
    assert taken["counts"] == {"train": 2, "val": 1}
    assert taken["examples"] == [
        {"split": "train", "video_id": "a", "clip_index": 0, "message": "InvalidDataError: x"}
    ]
    assert log.take() == {"counts": {}, "examples": []}


def test_run_entry_point_one_line_and_exit_codes(capsys):
    def refused():
        class Refused(ExpectedError):
            exit_code = 2

        raise Refused("resume: changed\n  keys")

    assert run_entry_point(refused) == 2
    assert capsys.readouterr().err == "error: resume: changed keys\n"
    assert run_entry_point(lambda: (_ for _ in ()).throw(ConnectionError("down"))) == 1
    assert capsys.readouterr().err == "error: down\n"
    assert run_entry_point(lambda: (_ for _ in ()).throw(ValueError("bad key")), verbose=True) == 2
    assert "Traceback" in capsys.readouterr().err
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_entry_point(lambda: 1 / 0)


def test_epoch_line_shows_decode_errors_only_when_not_zero():
    assert decode_error_note({"decode_errors": 0, "val_decode_errors": 0}) == ""
    assert decode_error_note({}) == ""
    assert decode_error_note({"decode_errors": 1, "val_decode_errors": 0}) == (
        " · decode errors 1 (val 0)"
    )


def test_run_entry_point_reports_through_a_given_writer():
    lines: list[str] = []
    code = run_entry_point(
        lambda: (_ for _ in ()).throw(FileNotFoundError("no data")), report=lines.append
    )
    assert (code, lines) == (1, ["error: no data"])
