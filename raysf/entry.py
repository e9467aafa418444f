"""The entry points' one command-line convention and run wrapper.

Every ``raysf COMMAND`` (``jobs/COMMAND.py``) builds its parser with :func:`command_parser` and
runs its work inside :func:`run_command`. The convention: a YAML config first where the command
has one, ``dotted.key=value`` overrides after it (options may stand anywhere among them), then
``--smoke-test`` (the real code path at the smallest size, on generated data), ``--address``
for the commands that start or join Ray, and the console's ``--verbose`` / ``--log-dir``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from raysf import console
from raysf.errors import run_entry_point


def command_parser(
    command: str,
    doc: str,
    smoke_help: str,
    *,
    config: str | Path | None = None,
    address: bool = False,
) -> argparse.ArgumentParser:
    """The parser of ``raysf COMMAND``: the command's own arguments are added after these.

    Args:
        command: the subcommand's name (``raysf COMMAND`` in usage lines).
        doc: the entry point's module docstring; its first line is the description.
        smoke_help: what ``--smoke-test`` does for this command.
        config: the default YAML config; with it, ``CONFIG [dotted.key=value ...]``
            positionals (parse them with :func:`parse_with_config`).
        address: add ``--address`` (the Ray cluster to join).
    """
    parser = argparse.ArgumentParser(prog=f"raysf {command}", description=doc.split("\n")[0])
    if config is not None:
        parser.add_argument(
            "config", nargs="?", default=str(config), help=f"YAML config (default: {config})"
        )
        parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    parser.add_argument("--smoke-test", action="store_true", help=smoke_help)
    if address:
        parser.add_argument(
            "--address", default=None, help="Ray address (default: RAY_ADDRESS/local)"
        )
    console.add_console_arguments(parser)
    return parser


def parse_with_config(
    parser: argparse.ArgumentParser, argv: list[str] | None, default_config: str | Path
) -> argparse.Namespace:
    """Parse with options anywhere among the overrides; a first ``k=v`` is an override (the
    config is then the default one)."""
    args = parser.parse_intermixed_args(argv)
    if args.config and "=" in args.config:
        args.overrides.insert(0, args.config)
        args.config = str(default_config)
    return args


def run_command(command: str, args: argparse.Namespace, work: Callable[[], int]) -> int:
    """``work()`` inside the command's console session; an expected failure becomes one line
    and its exit code (:func:`raysf.errors.run_entry_point`)."""
    with console.session(command, verbose=args.verbose, log_dir=args.log_dir):
        return run_entry_point(work, verbose=args.verbose, report=console.error)
