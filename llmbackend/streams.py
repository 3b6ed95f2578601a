"""Pure: what every provider's streaming shares: the server-sent event as data, the reader
protocol each provider implements, and the one rule for a stream that ends badly.

A provider streams its answer as server-sent events (SSE). The effectful shell frames the bytes
into ``ServerEvent`` values (with httpx2's SSE decoder) and feeds them, in order, to the
provider's ``StreamReader``, a small state machine with no I/O (the way h11 is a protocol
without sockets): ``feed`` gives the text delta an event carries, ``finish`` the final
``Generation`` once the stream has ended.

Strategy: a reader rebuilds, from the events, the body the same call would have answered
without streaming (OpenAI's final ``response`` object, Anthropic's ``message``, Gemini's merged
``GenerateContentResponse``), and hands it to that provider's whole-call parser. So the final
answer of a stream is by construction what ``generate`` returns for the same answer: the same
text, usage, finish reason, id, and the same refusal, truncation, block and no-text errors.
"""

from __future__ import annotations

from typing import Protocol

from attrs import frozen
from returns.result import Failure, Result, Success

from llmbackend.errors import LLMError, StreamError, TransportError
from llmbackend.types import Generation

__all__ = ["NO_DELTA", "FoldingReader", "ServerEvent", "StreamReader", "ended_early",
           "error_event_message", "interrupted"]


@frozen
class ServerEvent:
    """One server-sent event: its ``event`` name (``"message"`` when the stream gives none) and
    its ``data`` (the ``data:`` lines joined by newlines; JSON for every provider)."""

    event: str = "message"
    data: str = ""


#: What ``feed`` gives for an event without answer text: one shared value (a ``Result`` is
#: immutable), since most events of a stream carry none.
NO_DELTA: Result[str, LLMError] = Success("")


class StreamReader(Protocol):
    """One stream's reader (a provider's ``stream_reader(request)`` makes a new one per
    stream). Pure: it only reads the events it is fed.

    - ``feed(event)``: the text delta the event carries (``""`` for events without answer
      text: pings, starts, thinking), or the ``LLMError`` the event reports (an ``error``
      event, a failed response). After a failure the reader is done: feed it no more.
    - ``finish()``: after the last event, the final ``Generation[str]``, exactly what the
      whole call's parser gives for the rebuilt body; or the typed failure (refusal,
      truncation, block: with the text so far), or ``ended_early`` when the final event never
      came.
    - ``text``: the answer text fed so far (the deltas joined).
    """

    @property
    def text(self) -> str: ...

    def feed(self, event: ServerEvent) -> Result[str, LLMError]: ...

    def finish(self) -> Result[Generation[str], LLMError]: ...


class FoldingReader:
    """The bookkeeping every provider's ``StreamReader`` shares: the answer text fed so far
    (``_deltas``, joined as ``text``) and the failure that ended the stream (``_failure``: set
    by ``_fail``, through ``interrupted``; a reader gives it again to every later call)."""

    def __init__(self) -> None:
        self._deltas: list[str] = []
        self._failure: LLMError | None = None

    @property
    def text(self) -> str:
        return "".join(self._deltas)

    def _fail(self, error: LLMError) -> Result[str, LLMError]:
        self._failure = interrupted(error, self.text)
        return Failure(self._failure)


def interrupted(error: LLMError, text: str) -> LLMError:
    """Pure: the error of a stream that ``error`` ended: ``error`` itself before any text had
    flowed (nothing is lost, and the call may be retried as a whole), else a ``StreamError``
    carrying the ``text`` received and ``error`` as its cause.

    Strategy: the one rule for a broken stream, whatever broke it (a reset connection, an
    ``error`` event, a stall): a caller never gets a silent short answer, and never loses the
    text it was shown."""
    if not text:
        return error
    return StreamError(
        message=f"the stream broke after {len(text)} characters of the answer: {error.message}",
        provider=error.provider, text=text, error=error)


def ended_early(provider: str, label: str, text: str, final: str) -> LLMError:
    """Pure: the error of a stream that ended without its ``final`` event (the connection
    closed cleanly, but the answer was not finished): a ``TransportError`` saying so, through
    ``interrupted`` (so a ``StreamError`` carrying it and the ``text`` once text had flowed;
    before that, the ``TransportError`` itself, which a whole call would retry)."""
    ended = TransportError(
        message=f"the {label} stream ended without its {final!r} event", provider=provider)
    return interrupted(ended, text)


def error_event_message(label: str, kind: object, message: object) -> str:
    """Pure: how every reader says that the provider reported an error in its stream:
    ``"<label> reported an error in the stream (<kind>): <message>"``, each part only when it
    is a non-empty string."""
    return (f"{label} reported an error in the stream"
            + (f" ({kind})" if isinstance(kind, str) and kind else "")
            + (f": {message}" if isinstance(message, str) and message else ""))
