"""Effectful: ``main``, the command line's entry point: it runs the ``llmbackend`` group
and turns whatever went wrong into one line on stderr and an exit code."""

from __future__ import annotations

import os
import sys

import click

from llmbackend.cli.commands import cli
from llmbackend.cli.debugging import print_traceback, reset_debug
from llmbackend.cli.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    StdoutClosedError,
    exit_code,
    llm_error_message,
    say_error,
    usage_message,
)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); the exit code."""
    reset_debug()
    args = sys.argv[1:] if argv is None else argv
    try:
        code = cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        return _interrupted(args)
    except KeyboardInterrupt:
        click.echo(err=True)
        return _interrupted(args)
    except click.ClickException as error:
        say_error(usage_message(error))
        return EXIT_USAGE if error.exit_code == 1 else error.exit_code
    except CommandError as error:
        return _fail(error.message, error.code)
    except StdoutClosedError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as error:
        from llmbackend.errors import LLMError

        if isinstance(error, LLMError):
            return _fail(llm_error_message(error), exit_code(error))
        return _fail(f"internal error ({type(error).__name__}: {error}); rerun with --debug "
                     "for the traceback, and report it", EXIT_INTERNAL)
    return code if isinstance(code, int) else EXIT_OK


def _fail(message: str, code: int) -> int:
    print_traceback()
    say_error(message)
    return code


def _interrupted(args: list[str]) -> int:
    # Only a batch command can leave something behind at the provider; ``run``'s connection
    # is closed with the interruption.
    command = next((arg for arg in args if not arg.startswith("-")), "")
    batch = command == "batch"
    return _fail("interrupted" + (" (a batch already submitted goes on at the provider)"
                                  if batch else ""), EXIT_INTERRUPTED)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush at exit does not fail
    again on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
