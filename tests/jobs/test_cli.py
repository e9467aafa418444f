"""The ``raysf`` command: its subcommands, their shared options, and the installed script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobs import cli
from jobs.evaluate import parse_args as evaluate_args
from raysf.config import ConfigError, with_overrides
from raysf.storage import S3Config
from training.inference.evaluate import EvalRequest

SHARED = ("--smoke-test", "--verbose", "--log-dir")


def test_usage_lists_every_subcommand(capsys):
    assert cli.main([]) == 2
    text = capsys.readouterr().out
    for name in ("ingest", "train", "evaluate", "predict", "tune", "export", "demo"):
        assert f"\n  {name} " in text
    assert cli.main(["--help"]) == 0


def test_every_command_is_its_jobs_module():
    """``raysf COMMAND`` runs ``jobs/COMMAND.py``, and every entry point there has a command."""
    jobs_dir = Path(cli.__file__).parent
    modules = {p.stem for p in jobs_dir.glob("*.py")} - {"__init__", "cli"}
    assert set(cli.COMMANDS) == modules
    for name, (main, _) in cli.COMMANDS.items():
        assert main.__module__ == f"jobs.{name}"


def test_unknown_subcommand_is_an_error(capsys):
    assert cli.main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_subcommand_takes_the_shared_options(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: raysf {command}")
    for option in SHARED:
        assert option in text, f"raysf {command} has no {option}"


@pytest.mark.parametrize("command", ["train", "tune", "ingest"])
def test_config_commands_take_a_config_file_and_overrides(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = capsys.readouterr().out
    assert "config" in text and "overrides" in text


def test_config_errors_name_the_key(capfd, tmp_path):
    code = cli.main(["train", "optim.base_lrr=0.1", "--log-dir", str(tmp_path)])
    assert code == 2
    err = capfd.readouterr().err  # on the terminal's stderr, not in the log folder
    assert "optim.base_lrr" in err and "base_lr" in err


def test_the_installed_script_dispatches():
    script = Path(sys.executable).with_name("raysf")
    assert script.exists(), "pip install -e . installs the raysf script ([project.scripts])"
    proc = subprocess.run([str(script), "export", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "torchscript,exported-program,onnx" in proc.stdout


def test_evaluate_takes_eval_request_fields_as_overrides():
    args = evaluate_args(["ckpt", "split=val", "num_crops=1", "--batch-size", "4"])
    assert args.checkpoint == "ckpt" and args.overrides == ["split=val", "num_crops=1"]
    request = with_overrides(EvalRequest("ckpt", batch_size=args.batch_size), args.overrides)
    assert (request.split, request.num_crops, request.batch_size) == ("val", 1, 4)
    assert evaluate_args(["--smoke-test", "split=val"]).overrides == ["split=val"]
    with pytest.raises(ConfigError, match="splt: unknown key .*'split'"):
        with_overrides(request, ["splt=val"])


def test_evaluate_s3_endpoint_is_the_storage_section():
    request = with_overrides(EvalRequest("ckpt"), ["storage.endpoint_url=http://127.0.0.1:9"])
    assert request.storage == S3Config("http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="endpoint_url: unknown key.*'storage'"):
        with_overrides(request, ["endpoint_url=http://127.0.0.1:9"])
    assert evaluate_args(["ckpt", "--endpoint-url", "http://h:1"]).endpoint == "http://h:1"
