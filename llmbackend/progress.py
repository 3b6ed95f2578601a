"""Effectful: the ready-made progress bar behind ``progress=True`` (fan-outs and batch waits).

A ``tqdm`` bar when tqdm is installed (llmbackend does not depend on it), else one plain line on
standard error, rewritten at most a few times a second. Off unless asked for.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

from llmbackend.checks import check_progress

__all__ = [
    "REDRAW_INTERVAL",
    "ProgressBar",
    "progress_callback",
]

#: Seconds between two redraws of the plain-text line.
REDRAW_INTERVAL = 0.2


class ProgressBar:
    """Effectful: ``update(done, total)`` draws; ``close()`` ends the line. Use through
    ``progress_callback``."""

    def __init__(self, description: str, unit: str, stream: IO[str] | None = None) -> None:
        self._description = description
        self._unit = unit
        self._stream = stream
        self._bar: Any = None
        self._drawn_at = 0.0
        self._width = 0
        self._last: tuple[int, int | None] | None = None
        if stream is None:
            try:
                from tqdm.auto import tqdm  # type: ignore[import-untyped]  # no stubs; optional
            except ImportError:
                return
            self._bar = tqdm(desc=description, unit=unit, total=None)

    def update(self, done: int, total: int | None, note: str = "") -> None:
        if self._bar is not None:
            if total is not None and self._bar.total != total:
                self._bar.total = total
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(done - self._bar.n)
            return
        self._last = (done, total)
        now = time.monotonic()
        if now - self._drawn_at >= REDRAW_INTERVAL or (total is not None and done >= total):
            self._drawn_at = now
            self._draw(done, total, note)

    def _draw(self, done: int, total: int | None, note: str) -> None:
        stream = self._stream or sys.stderr
        of = f"/{total}" if total is not None else ""
        percent = f" ({100 * done / total:.0f}%)" if total else ""
        extra = f" {note}" if note else ""
        line = f"{self._description}: {done}{of} {self._unit}s{percent}{extra}"
        # Padded over the last line drawn: a shorter line would leave its tail visible.
        stream.write("\r" + line.ljust(self._width))
        self._width = len(line)
        stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            return
        if self._last is not None:
            self._draw(*self._last, "")
            (self._stream or sys.stderr).write("\n")


def progress_callback(progress: object, description: str, unit: str = "prompt"
                      ) -> tuple[Callable[[int, int | None], object] | None, Callable[[], None]]:
    """``progress`` as a ``(done, total)`` callback and a close function: ``None``/``False`` is
    off, ``True`` is the ready-made bar, a callable is called as is. ``ConfigurationError``
    for anything else (``checks.check_progress``)."""
    checked = check_progress(progress)
    if checked is None or checked is False:
        return None, _nothing
    if checked is True:
        bar = ProgressBar(description, unit)
        return bar.update, bar.close
    return checked, _nothing


def _nothing() -> None:
    return None
