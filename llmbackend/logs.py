"""Effectful: llmbackend's logger ("llmbackend"), with ``logging`` imported on first use.

Strategy: ``logging`` costs milliseconds to import and most calls never log above DEBUG, so it
waits until something is logged. Nothing logged ever carries a credential or a request header.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

__all__ = [
    "log",
]


@cache
def log() -> logging.Logger:
    """The ``llmbackend`` logger."""
    import logging

    return logging.getLogger("llmbackend")
