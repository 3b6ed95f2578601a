"""Effectful: writes a batch's results, one JSON line per input in input order, to a file
(atomically) or to standard output.

Each line: ``{"index": i, "custom_id": "...", "answer": ...}``, or ``"error": {"type", "message",
"retryable"}`` in place of the answer for an item that failed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmbackend.cli.errors import EXIT_OK, EXIT_PARTIAL, CommandError, say_error
from llmbackend.cli.handles import write_atomically
from llmbackend.cli.output import dumps

if TYPE_CHECKING:
    from llmbackend.errors import LLMError
    from llmbackend.jobs import Batch

__all__ = ["check_output", "output_file", "write_results"]


def check_output(output: str | None) -> None:
    """``CommandError`` unless ``output`` (a file to write; ``None`` or ``-``: stdout) can be
    written: its directory exists and is writable."""
    path = output_file(output)
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandError(f"{path}: there is no directory {directory}")
    if not os.access(directory, os.W_OK):
        raise CommandError(f"{path}: cannot write in {directory}")


def write_results(handle: Batch[Any], output: str | None) -> int:
    """Write one JSON line per input (``-o FILE`` atomically, or stdout); the exit code: 4 when
    any item failed."""
    outcomes = handle.outcomes(keep_raw=False)  # the answers only: a large batch stays small
    custom_ids = handle.custom_ids
    failed = 0

    def lines() -> Iterator[str]:
        nonlocal failed
        from returns.result import Failure, Success

        for index, (custom_id, outcome) in enumerate(zip(custom_ids, outcomes, strict=True)):
            record: dict[str, Any] = {"index": index, "custom_id": custom_id}
            match outcome:
                case Success(generation):
                    record["answer"] = generation.parsed
                case Failure(error):
                    failed += 1
                    record["error"] = _error_record(error)
            yield dumps(record) + "\n"

    path = output_file(output)
    if path is None:
        for line in lines():
            sys.stdout.write(line)
        sys.stdout.flush()
        where = "its line"
    else:
        try:
            write_atomically(path, lambda file: file.writelines(lines()))
        except OSError as error:
            raise CommandError(f"{path}: cannot write the results: {error.strerror}"
                               ) from error
        where = f"its line in {path}"
    if failed:
        say_error(f"{failed} of {len(outcomes)} items failed; every item has {where}, the failed "
                  'ones with an "error"')
        return EXIT_PARTIAL
    return EXIT_OK


def output_file(output: str | None) -> str | None:
    """The file ``-o`` names; ``None`` for standard output (``-o`` not given, or ``-``)."""
    return None if output is None or output == "-" else output


def _error_record(error: LLMError) -> dict[str, Any]:
    """How a failed item's error is written."""
    return {"type": type(error).__name__, "message": error.message,
            "retryable": error.retryable}
