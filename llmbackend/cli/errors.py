"""Effectful: the command line's exit codes, which exit code each library error gets, and every
error, warning and note said as one line on standard error.

Exit codes: 0 ok; 1 unexpected internal error; 2 usage or configuration error; 3 the provider,
the network or the answer failed; 4 a batch ended with some items failed; 5 a batch has not ended
yet; 130 interrupted; 141 standard output closed early.

Strategy: the library's error classes are imported on first use (``exit_code``), so that
``llmbackend --help`` loads none of the library.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, TextIO

import click

if TYPE_CHECKING:
    from llmbackend.errors import LLMError

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_READY",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_PROVIDER",
    "EXIT_USAGE",
    "CommandError",
    "StdoutClosedError",
    "exit_code",
    "llm_error_message",
    "one_line",
    "say",
    "say_error",
    "show_warnings_in_one_line",
    "usage_message",
]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_PROVIDER = 3
EXIT_PARTIAL = 4
EXIT_NOT_READY = 5
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class CommandError(Exception):
    """A failure the command line reports itself: one line on stderr and an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class StdoutClosedError(Exception):
    """Standard output was closed by the reader (``| head``)."""


@cache
def _exit_codes() -> tuple[tuple[type[LLMError], int], ...]:
    """The one table of library error -> exit code. An error gets the code of the first row
    whose class it is an instance of; the last row, ``LLMError``, catches the rest."""
    from llmbackend.errors import (
        BatchItemsError,
        BatchNotReadyError,
        ConfigurationError,
        LLMError,
        MissingCredentialsError,
        MissingDependencyError,
        OutputError,
        UnsupportedError,
    )

    return (
        (BatchNotReadyError, EXIT_NOT_READY),
        (BatchItemsError, EXIT_PARTIAL),
        # Read from an answer, so after sending: tool calls (``ToolCallError``) are an
        # UnsupportedError too, and still exit 3.
        (OutputError, EXIT_PROVIDER),
        (ConfigurationError, EXIT_USAGE),
        (MissingCredentialsError, EXIT_USAGE),
        (MissingDependencyError, EXIT_USAGE),
        (UnsupportedError, EXIT_USAGE),  # found before anything was sent
        (LLMError, EXIT_PROVIDER),  # the provider, the network or the answer failed
    )


def exit_code(error: LLMError) -> int:
    """The exit code for a library error (see ``_exit_codes``)."""
    return next(code for kind, code in _exit_codes() if isinstance(error, kind))


def llm_error_message(error: LLMError) -> str:
    """A library error as the command line says it: its class and message, and what to do on
    the command line where that differs from what the library's message says."""
    from llmbackend.errors import MissingCredentialsError, UnsupportedError

    if isinstance(error, MissingCredentialsError) and error.env_var:
        return (f"MissingCredentialsError: no API key for {error.provider}: set the "
                f"{error.env_var} environment variable (keys are never taken on the command "
                "line)")
    message = f"{type(error).__name__}: {error.message}"
    if isinstance(error, UnsupportedError) and "drop_unsupported_params" in error.message:
        compatible = ", or -O server=compatible" if "server='compatible'" in error.message else ""
        message += f" (on the command line: -O drop_unsupported_params=true{compatible})"
    return message


def usage_message(error: click.ClickException) -> str:
    """A click usage error's message, pointing at the help of the command it is about."""
    message = error.format_message()
    context = getattr(error, "ctx", None)
    if isinstance(error, click.UsageError) and context is not None:
        message += f" (see: {context.command_path} --help)"
    return message


def one_line(message: str) -> str:
    """``message`` on one line: line breaks (and the blanks around them) become one space."""
    return re.sub(r"\s*\n\s*", " ", message.strip())


def say(message: str) -> None:
    """A note on stderr: ``llmbackend: <message>``."""
    click.echo(f"llmbackend: {one_line(message)}", err=True)


def say_error(message: str) -> None:
    """An error on stderr: ``llmbackend: error: <message>``."""
    click.echo(f"llmbackend: error: {one_line(message)}", err=True)


def show_warnings_in_one_line() -> None:
    """Show llmbackend's own warnings (a dropped parameter) as ``llmbackend: warning: ...``;
    other libraries' warnings keep Python's format."""
    import warnings

    default = warnings.showwarning

    def show(  # noqa: PLR0917 -- warnings.showwarning's signature
            message: Warning | str, category: type[Warning], filename: str, lineno: int,
            file: TextIO | None = None, line: str | None = None) -> None:
        if category.__module__.startswith("llmbackend"):
            click.echo(f"llmbackend: warning: {one_line(str(message))}", err=True)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
