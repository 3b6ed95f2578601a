"""Pure: keeping credentials out of what llmbackend shows: text, and the errors it reports.

Strategy: bodies are never altered (a response reaches its parser byte for byte as it came);
what is *shown* is redacted instead, at the edge: the shell passes every ``LLMError`` that
leaves toward the user through ``redact_error`` with the transport's secrets (one function,
applied by the backends and the batch handles), and log lines of our HTTP dependencies
through ``redact``.

A secret is matched on its decoded form and on every JSON spelling of it: each character may
come as itself or as a ``\\uXXXX`` escape (a server that JSON-escapes ``-`` as ``\\u002d`` or
``/`` as ``\\/`` is still redacted, in a raw body excerpt as in a decoded message).
A value shorter than ``MIN_SECRET_LENGTH`` characters cannot be told apart from ordinary text
(local servers take dummy keys such as ``x``, ``1``, ``EMPTY``, ``token``): it is not looked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any, TypeVar

from attrs import evolve, fields
from returns.result import Failure, Result

from llmbackend.errors import BatchItemFailure, LLMError

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "redact",
    "redact_error",
    "redact_result",
]

T = TypeVar("T")
E = TypeVar("E", bound=LLMError)

#: What a redacted secret reads as.
MASK = "********"
#: Secrets shorter than this are not redacted: they cannot be told apart from text.
MIN_SECRET_LENGTH = 8


def _spellings(char: str) -> str:
    """A regular expression for one character of a secret: itself, or any JSON escape of it
    (escaped once or more: a JSON text quoted inside another)."""
    escapes = [re.escape(char)]
    code = ord(char)
    if code < 0x10000:
        # The hex digits of an escape may be in either case (\\u002D, \\u002d).
        escapes.append(r"\\+u" + "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d
                                           for d in f"{code:04x}"))
    if char in '/"\\':
        escapes.append(r"\\+" + re.escape(char))
    return "(?:" + "|".join(escapes) + ")"


@cache
def _pattern(values: tuple[str, ...]) -> re.Pattern[str] | None:
    # Longest first, so that a key and a header value built on it ("Bearer <key>") both go.
    kept = sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    if not kept:
        return None
    return re.compile("|".join("".join(_spellings(c) for c in value) for value in kept))


def redact(text: str, secrets: Iterable[str]) -> str:
    """Pure: ``text`` with every secret of at least ``MIN_SECRET_LENGTH`` characters, in any
    JSON spelling, replaced by ``MASK``."""
    pattern = _pattern(tuple(secrets))
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def _redact_value(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, LLMError):
        return redact_error(value, secrets)
    if isinstance(value, BatchItemFailure):
        return evolve(value, custom_id=redact(value.custom_id, secrets),
                      error=redact_error(value.error, secrets))
    if isinstance(value, tuple):
        return tuple(_redact_value(item, secrets) for item in value)
    return value


def redact_error(error: E, secrets: Iterable[str]) -> E:
    """Pure: ``error`` with the secrets redacted from every text it carries (message, body
    excerpt, codes, the errors of a batch's failed items), as a new value of the same class;
    ``error`` itself when nothing changes."""
    values = tuple(secrets)
    if _pattern(values) is None:
        return error
    changes = {}
    for attribute in fields(type(error)):
        if not attribute.init:
            continue
        old = getattr(error, attribute.name)
        new = _redact_value(old, values)
        if new is not old and new != old:
            changes[attribute.name] = new
    if not changes:
        return error
    redacted = evolve(error, **changes)
    redacted.__traceback__ = error.__traceback__
    return redacted


def redact_result(result: Result[T, LLMError], secrets: Iterable[str]) -> Result[T, LLMError]:
    """Pure: ``result`` with its error redacted (``redact_error``); a success is unchanged."""
    if isinstance(result, Failure):
        return Failure(redact_error(result.failure(), secrets))
    return result
