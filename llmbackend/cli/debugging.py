"""Effectful: the ``--debug`` switch: tracebacks on errors, and the library's DEBUG log lines
(every HTTP attempt) on stderr.

Strategy: one switch for the whole run, held here and changed only through these functions:
``main`` turns it off as it starts, either ``--debug`` turns it on, and the error printing asks
``print_traceback``.
"""

from __future__ import annotations

import sys

__all__ = ["enable_debug", "print_traceback", "reset_debug"]

#: The name of the log handler ``enable_debug`` adds, so that it is added once per process.
_HANDLER_NAME = "llmbackend-cli-debug"

_enabled = False


def reset_debug() -> None:
    """Debugging off (the start of a run)."""
    global _enabled
    _enabled = False


def enable_debug() -> None:
    """Tracebacks on errors, and the ``llmbackend`` logger's DEBUG lines on stderr."""
    global _enabled
    if _enabled:
        return
    _enabled = True
    import logging

    logger = logging.getLogger("llmbackend")
    logger.setLevel(logging.DEBUG)
    if not any(handler.get_name() == _HANDLER_NAME for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("llmbackend: debug: %(message)s"))
        logger.addHandler(handler)


def print_traceback() -> None:
    """The traceback of the exception being handled, on stderr, when debugging."""
    if _enabled:
        import traceback

        traceback.print_exc()
