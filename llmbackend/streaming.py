"""Effectful: a streamed answer. ``TextStream`` and ``AsyncTextStream`` are what
``llmbackend.stream`` / ``astream`` (and ``Client.stream`` / ``astream``) return; ``remote_deltas``
and ``aremote_deltas`` drive one remote stream behind them.

A stream's *source* is a generator of ``str`` deltas, in order, then exactly one final
``Result[Generation, LLMError]``: the remote drivers here, and a local engine's ``stream``
(``llmbackend.engines``). The stream objects only hand the deltas out, keep the outcome, and
close the source (and so the connection, or the runtime's generation) when asked.

Strategy: the events are read by the provider's pure ``StreamReader``, which rebuilds the
whole call's body and parses it with the whole call's parser, so a stream ends with exactly
what ``generate`` returns for the same answer. Before any answer text has flowed a failure (an
error status, a reset, a stall, an ``error`` event, a stream that ends early) is retried as a
whole call would be (``HTTPTransport.stream_retry_delay``, the one retry decision); after, it
ends the stream with a ``StreamError`` that carries the text so far (``streams.interrupted``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

from returns.result import Failure, Result, Success

from llmbackend.errors import LLMError, StreamError, unwrap
from llmbackend.pipeline import attach_parsed
from llmbackend.providers import Provider, open_stream_reader
from llmbackend.streams import StreamReader, interrupted
from llmbackend.transport import AsyncEventStream, EventStream, HTTPTransport
from llmbackend.types import (
    Generation,
    GenerationRequest,
    StructuredOutput,
    WireRequest,
    WireResponse,
)

__all__ = [
    "AsyncSource",
    "AsyncTextStream",
    "Source",
    "TextStream",
    "aremote_deltas",
    "remote_deltas",
    "with_parsed",
]

T = TypeVar("T")

Outcome = Result[Generation[Any], LLMError]
#: What a stream reads: ``str`` deltas, then one final outcome.
Source = Generator[str | Outcome, None, None]
AsyncSource = AsyncGenerator[str | Outcome, None]


class _Fold:
    """One attempt at a remote stream: its reader, fed event by event (sync and async alike)."""

    def __init__(self, provider: Provider, request: GenerationRequest) -> None:
        self.request = request
        self.reader: StreamReader = open_stream_reader(provider.name, request)
        self.outcome: Outcome | None = None

    def feed(self, event: Any) -> str:
        """The event's delta (``""`` for none); on a failure, ``outcome`` is set: stop."""
        fed = self.reader.feed(event)
        if isinstance(fed, Failure):
            self.outcome = fed
            return ""
        return fed.unwrap()

    def after(self, transport: HTTPTransport, wire: WireRequest, broken: LLMError | None,
              attempts: int) -> Outcome | float:
        """Once the events stopped (``broken``: why the connection ended early, if it did):
        the stream's final outcome (validated, redacted), or the seconds to wait before
        opening it again: only a failure before any text is retried."""
        outcome = self.outcome
        if outcome is None:
            outcome = (Failure(interrupted(broken, self.reader.text)) if broken is not None
                       else self.reader.finish())
        if isinstance(outcome, Failure) and not self.reader.text:
            delay = transport.stream_retry_delay(wire, outcome.failure(), attempts)
            if delay is not None:
                return float(delay)
        return transport.redact_result(outcome.bind(
            lambda generation: attach_parsed(self.request.schema, generation)))


def _not_streamed(provider: Provider, request: GenerationRequest, transport: HTTPTransport,
                  opened: Result[Any, LLMError]) -> list[str | Outcome] | None:
    """What a stream that did not open as one yields: its failure; or, answered whole (an
    error status; a server that did not stream), its text as one delta and its outcome, parsed
    as the whole call's. ``None`` for an open event stream."""
    if isinstance(opened, Failure):
        return [transport.redact_result(opened)]
    answer = opened.unwrap()
    if not isinstance(answer, WireResponse):
        return None
    outcome = transport.redact_result(provider.parse_generation(request, answer).bind(
        lambda generation: attach_parsed(request.schema, generation)))
    text = outcome.unwrap().text if isinstance(outcome, Success) else ""
    return [text, outcome] if text else [outcome]


def remote_deltas(provider: Provider, request: GenerationRequest,
                  built: Result[WireRequest, LLMError], transport: HTTPTransport) -> Source:
    """Effectful: the deltas and outcome of one remote stream (``built``: the provider's
    ``build_stream`` of ``request``), errors redacted by ``transport``. Closing the generator
    closes the connection."""
    if isinstance(built, Failure):
        yield built
        return
    wire = built.unwrap()
    attempts = 0
    while True:
        opened = transport.open_stream(wire, attempts=attempts)
        ended = _not_streamed(provider, request, transport, opened)
        if ended is not None:
            yield from ended
            return
        answer = cast(EventStream, opened.unwrap())
        fold = _Fold(provider, request)
        with answer:
            yield from _read(fold, answer)
        after = fold.after(transport, wire, answer.failure, answer.attempts)
        if isinstance(after, Result):
            yield after
            return
        attempts = answer.attempts
        time.sleep(after)


def _read(fold: _Fold, answer: EventStream) -> Iterator[str]:
    for event in answer:
        delta = fold.feed(event)
        if fold.outcome is not None:
            return
        if delta:
            yield delta


async def aremote_deltas(provider: Provider, request: GenerationRequest,
                         built: Result[WireRequest, LLMError], transport: HTTPTransport
                         ) -> AsyncSource:
    """Effectful, async: ``remote_deltas`` on the running event loop."""
    import asyncio

    if isinstance(built, Failure):
        yield built
        return
    wire = built.unwrap()
    attempts = 0
    while True:
        opened = await transport.aopen_stream(wire, attempts=attempts)
        ended = _not_streamed(provider, request, transport, opened)
        if ended is not None:
            for item in ended:
                yield item
            return
        answer = cast(AsyncEventStream, opened.unwrap())
        fold = _Fold(provider, request)
        try:
            async for delta in _aread(fold, answer):
                yield delta
        finally:
            await answer.aclose()
        after = fold.after(transport, wire, answer.failure, answer.attempts)
        if isinstance(after, Result):
            yield after
            return
        attempts = answer.attempts
        await asyncio.sleep(after)


async def _aread(fold: _Fold, answer: AsyncEventStream) -> AsyncIterator[str]:
    async for event in answer:
        delta = fold.feed(event)
        if fold.outcome is not None:
            return
        if delta:
            yield delta


def with_parsed(source: Iterator[str | Result[Generation[str], LLMError]],
                schema: StructuredOutput[Any] | None) -> Source:
    """Effectful: ``source`` (a local engine's stream) with its final generation validated
    against ``schema``, as a whole call's is. Closing it closes ``source``."""
    try:
        for item in source:
            yield item if isinstance(item, str) else item.bind(
                lambda generation: attach_parsed(schema, generation))
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


_NOT_FINISHED = ("the stream is not finished: read it to its end (iterate it, or "
                 "{how}) before asking for its generation")


class _Deltas:
    """What both stream objects keep: the deltas handed out and the final outcome."""

    def __init__(self) -> None:
        self._deltas: list[str] = []
        self._outcome: Outcome | None = None

    @property
    def text(self) -> str:
        """The answer text received so far (all of it once the stream is finished)."""
        return "".join(self._deltas)

    @property
    def finished(self) -> bool:
        """Whether the stream has ended (its outcome is known), or was closed."""
        return self._outcome is not None

    def _take(self, item: str | Outcome) -> str | None:
        """A delta to hand out, or ``None`` once ``item`` is the outcome (raised if failed)."""
        if isinstance(item, str):
            self._deltas.append(item)
            return item
        self._outcome = item
        unwrap(item)  # raises the error of a failed stream
        return None

    def _closed(self) -> None:
        if self._outcome is None:
            self._outcome = Failure(StreamError(
                message=f"the stream was closed after {len(self.text)} characters, before "
                "its end", text=self.text))


class TextStream(_Deltas, Generic[T]):
    """Effectful: one answer, streamed. Iterate it for the text deltas (``str``), in order, as
    they arrive; a failure raises its ``LLMError`` (after text has flowed: a ``StreamError``
    carrying ``text``). Use it as a context manager: leaving the block closes the connection,
    at once, even mid-stream.

    - ``generation``: the final ``Generation[T]``, exactly what ``generate`` returns for the
      same answer (text equal to the deltas joined; ``parsed`` validated against the schema);
      asking for it reads the rest of the stream first, and raises the ``LLMError`` of a failed
      stream;
    - ``result()``: the same as ``Result[Generation[T], LLMError]`` (never raises it);
    - ``text``: the text received so far; ``close()``.
    """

    def __init__(self, source: Source) -> None:
        super().__init__()
        self._source = source

    def __iter__(self) -> TextStream[T]:
        return self

    def __next__(self) -> str:
        try:
            while self._outcome is None:
                delta = self._take(next(self._source))
                if delta is not None:
                    return delta
        except StopIteration:  # pragma: no cover - every source ends with its outcome
            self._closed()
        except BaseException:
            self._source.close()  # a failure, a Ctrl-C: the connection goes at once
            self._closed()
            raise
        self._source.close()
        raise StopIteration

    def result(self) -> Result[Generation[T], LLMError]:
        """The final outcome, reading the rest of the stream first (its deltas still join into
        ``text``)."""
        try:
            for _ in self:
                pass
        except LLMError:
            pass
        return cast(Result[Generation[T], LLMError], self._outcome)

    @property
    def generation(self) -> Generation[T]:
        """The final generation (reading the rest of the stream first); raises the
        ``LLMError`` of a failed stream."""
        return unwrap(self.result())

    def close(self) -> None:
        """Close the connection (or stop the local generation) now. Idempotent."""
        self._source.close()
        self._closed()

    def __enter__(self) -> TextStream[T]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "finished" if self.finished else "open"
        return f"<TextStream {state}, {len(self.text)} characters>"


class AsyncTextStream(_Deltas, Generic[T]):
    """Effectful, async: ``TextStream`` on an event loop: ``async for`` the deltas, ``async
    with`` it, ``aclose()``; ``await stream.result()`` reads the rest and gives the outcome;
    ``generation`` is the final generation once the stream is finished (it cannot read the
    rest without awaiting: before the end it raises ``RuntimeError``)."""

    def __init__(self, source: AsyncSource) -> None:
        super().__init__()
        self._source = source

    def __aiter__(self) -> AsyncTextStream[T]:
        return self

    async def __anext__(self) -> str:
        try:
            while self._outcome is None:
                delta = self._take(await anext(self._source))
                if delta is not None:
                    return delta
        except StopAsyncIteration:  # pragma: no cover - every source ends with its outcome
            self._closed()
        except BaseException:
            await self._source.aclose()  # a failure, a cancellation: the connection goes
            self._closed()
            raise
        await self._source.aclose()
        raise StopAsyncIteration

    async def result(self) -> Result[Generation[T], LLMError]:
        """The final outcome, reading the rest of the stream first."""
        try:
            async for _ in self:
                pass
        except LLMError:
            pass
        return cast(Result[Generation[T], LLMError], self._outcome)

    @property
    def generation(self) -> Generation[T]:
        """The final generation of a finished stream; raises the ``LLMError`` of a failed
        one, and ``RuntimeError`` before the end (``await stream.result()`` reads the rest)."""
        if self._outcome is None:
            raise RuntimeError(_NOT_FINISHED.format(how="await stream.result()"))
        return unwrap(cast(Result[Generation[T], LLMError], self._outcome))

    async def aclose(self) -> None:
        """Close the connection now. Idempotent."""
        await self._source.aclose()
        self._closed()

    async def __aenter__(self) -> AsyncTextStream[T]:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "finished" if self.finished else "open"
        return f"<AsyncTextStream {state}, {len(self.text)} characters>"
