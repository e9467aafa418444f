"""Expected failures and how the entry points report them: one line, a traceback only with
``--verbose``.

An *expected* failure is one the user can act on from its message alone: a bad config key, a
missing dataset, an unreachable endpoint, a refused resume, an ingest left incomplete. Library
code raises :class:`ExpectedError` subclasses (or ``ValueError`` / ``FileNotFoundError`` /
``ConnectionError`` / ``PermissionError`` naming the input) for them; :func:`run_entry_point`
turns them into ``error: <message>`` on stderr and an exit code. Anything else is a bug or an
unexpected crash and keeps its traceback.

Exit codes: 2 for configuration and usage errors (``ValueError``, including
:class:`raysf.config.ConfigError`, and errors whose ``exit_code`` is 2, such as a refused
resume), 3 for a run that may succeed when repeated (``exit_code`` 3: an ingest left
incomplete by transient failures), 1 for the other expected failures.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable


class ExpectedError(Exception):
    """A failure the user can act on from its message; ``exit_code`` is the process's."""

    exit_code = 1


#: Built-in exceptions that the library raises with a message naming the input.
EXPECTED_BUILTINS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    ConnectionError,
    PermissionError,
    TimeoutError,
)


def exit_code_of(exc: BaseException) -> int:
    """The exit code of an expected failure (see the module docstring)."""
    if isinstance(exc, ExpectedError):
        return exc.exit_code
    return 2 if isinstance(exc, ValueError) else 1


def is_expected(exc: BaseException) -> bool:
    return isinstance(exc, (ExpectedError, *EXPECTED_BUILTINS))


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (its class name when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


def run_entry_point(
    main: Callable[[], int],
    *,
    verbose: bool = False,
    report: Callable[[str], None] = _to_stderr,
) -> int:
    """``main()``, with expected failures reported as one line through ``report`` (stderr by
    default; plus the traceback when ``verbose``) and turned into their exit code; other
    exceptions propagate unchanged."""
    try:
        return main()
    except BaseException as exc:
        if not is_expected(exc):
            raise
        if verbose:
            traceback.print_exc()
        report(f"error: {one_line(exc)}")
        return exit_code_of(exc)
