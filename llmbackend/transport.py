"""Effectful: the one HTTP transport. Sends a ``WireRequest``, retries as ``retrying`` decides,
and returns ``Result[WireResponse, LLMError]``.

Strategy: this is the only module that touches the network, the clock and the sleep: the sync
face over httpx2 (the HTTP library the vendors' own SDKs use), the async face over aiohttp,
whose cost per request does not grow with the number in flight (``aio`` holds what is
aiohttp's; the retry loops, deadlines and redaction here are one for both). It returns every
HTTP response, error statuses included, as a ``WireResponse``: reading a provider's error body
is the provider parser's job. It fails only when no response arrived (timeout, connection
error). It is also the one place that holds credentials: they go into headers here, and it
redacts them (``redact``) from what is shown: its own messages, the errors the shell hands to
the user (``redact_error``), and the log records of the HTTP libraries (a ``logging.Filter`` on
httpx2's, httpcore2's and aiohttp's loggers). Bodies are never altered: a response reaches the
parser byte for byte as it came. httpx2 is imported when the first request is sent, not at
``import llmbackend``; aiohttp on the first async request only.

A streamed answer (``open_stream`` / ``aopen_stream``) is retried like any call until its
status line arrives; a 2xx ``text/event-stream`` answer is then handed over open, as an
``EventStream`` of ``ServerEvent`` values framed by httpx2's SSE decoder. There ``timeout`` bounds
the wait for each next byte, not the whole answer (a stream may run for minutes): a stream that
stalls that long ends in ``RequestTimeoutError``.

Neither pool has a connection cap of its own: a fan-out bounds its own concurrency. An async
pool (an aiohttp session) belongs to one event loop: each loop gets its own, closed when the
loop shuts down (``asyncio.run`` and every runner that finalizes async generators), so a loop of
``asyncio.run`` calls keeps no sockets open.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, TypeVar

from attrs import evolve
from returns.result import Failure, Result, Success

from llmbackend.errors import (
    HTTPStatusError,
    LLMError,
    RequestTimeoutError,
    ResponseParseError,
    TransportError,
    UnsupportedError,
)
from llmbackend.logs import log
from llmbackend.redact import redact, redact_error, redact_result
from llmbackend.retrying import RetryPolicy, parse_retry_after, retry_delay
from llmbackend.settings import DEFAULT_TIMEOUT
from llmbackend.streams import ServerEvent
from llmbackend.types import Secret, StreamBody, WireRequest, WireResponse

if TYPE_CHECKING:
    import asyncio
    import logging

    import aiohttp
    import httpx2

T = TypeVar("T")
E = TypeVar("E", bound=LLMError)

__all__ = [
    "CONNECT_TIMEOUT",
    "GUARDED_LOGGERS",
    "MAX_EVENT_BYTES",
    "USER_AGENT",
    "AsyncEventStream",
    "EventStream",
    "HTTPTransport",
    "encode_body",
    "guard_logs",
]


#: Connecting should never take long, whatever the overall timeout (``DEFAULT_TIMEOUT``, in
#: ``settings``: LLM answers can take minutes, as in the vendors' SDKs).
CONNECT_TIMEOUT = 10.0

USER_AGENT = "llmbackend/0.1"


#: The largest server-sent event read: OpenAI's last event carries the whole response (httpx2's
#: decoder stops at 1 MiB by default).
MAX_EVENT_BYTES = 64 << 20


class _OverdueError(Exception):
    """The whole request took longer than the transport's timeout."""


def _check(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise _OverdueError


def encode_body(request: WireRequest) -> bytes | StreamBody | None:
    """Pure: what to send: ``content`` as given, or ``json`` as compact UTF-8 JSON.

    Raises ``ValueError`` / ``TypeError`` when ``json`` holds something JSON cannot carry.
    """
    if request.content is not None:
        return request.content
    if request.json is None:
        return None
    return _ENCODER.encode(request.json).encode()


# One encoder for every request: ``json.dumps`` with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class _LoopPool:
    """One event loop's async pool (an aiohttp session, ``aio``), and the async generator that
    closes it when the loop shuts down (``loop.shutdown_asyncgens()``, which ``asyncio.run``
    awaits before closing)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.dead = False  # the loop closed without shutting down its async generators
        self.finished = False  # the closer ran
        self.closer = self._close_at_shutdown()

    async def _close_at_shutdown(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            self.finished = True
            if not self.dead:
                await self.session.close()

    def forget(self) -> None:
        """Finish the closer without the loop (which is closed): nothing is left pending."""
        from llmbackend import aio

        self.dead = True
        aio.abandon(self.session)
        closing = self.closer.aclose()
        try:
            closing.send(None)
        except StopIteration:
            pass
        except RuntimeError:  # pragma: no cover - already finished
            pass


class _Pool:
    """The mutable part of a transport, shared with its per-call views (``with_options``): the
    connection pools, the secrets to redact and the 429 back-off."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.client: httpx2.Client | None = None
        # One async pool per event loop (weakly: a loop that is gone takes its pool along).
        self.async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = (
            weakref.WeakKeyDictionary())
        self.lock = threading.Lock()
        self.pause_until = 0.0  # monotonic time before which no request is sent (a 429)
        self.secrets = secrets


#: The pools of every live transport: the log filter redacts their secrets.
_LIVE: weakref.WeakSet[_Pool] = weakref.WeakSet()
_LOG_GUARD_LOCK = threading.Lock()
#: The HTTP libraries' loggers. httpcore2 logs each response's headers verbatim at DEBUG.
GUARDED_LOGGERS = ("httpx2", "httpcore2", "httpx", "httpcore", "aiohttp", "llmbackend")


def _live_secrets() -> tuple[str, ...]:
    # Sorted: the same secrets make the same key of ``redact``'s compiled-pattern cache.
    return tuple(sorted({value for pool in list(_LIVE) for value in pool.secrets}))


class _RedactingFilter:
    """A ``logging`` filter that redacts every live transport's secrets from a record's
    message (a record is rewritten, never dropped)."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _live_secrets()
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format is the logging module's to report
            return True
        shown = redact(message, secrets)
        if shown != message:
            record.msg, record.args = shown, None
        return True


_FILTER = _RedactingFilter()


def guard_logs() -> None:
    """Effectful: put the redacting filter on the HTTP libraries' loggers and on every child
    logger they have made (a logger's filters do not apply to its children's records)."""
    import logging

    with _LOG_GUARD_LOCK:
        names = [name for name in list(logging.root.manager.loggerDict)
                 if any(name == root or name.startswith(root + ".")
                        for root in GUARDED_LOGGERS)]
        for name in {*GUARDED_LOGGERS, *names}:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)


class HTTPTransport:
    """Effectful: a pooled HTTP connection to one provider endpoint, shared by every call made
    through one llmbackend client. Thread-safe; close it (or the client) when done."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        auth_headers: Mapping[str, Secret],
        secrets: tuple[Secret, ...] = (),
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self._auth_headers = dict(auth_headers)
        # What to redact from anything shown: the raw keys (which also covers header values
        # built on them, such as "Bearer <key>"), else the header values themselves.
        self._secrets = secrets or tuple(self._auth_headers.values())
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._pool = _Pool(tuple(s.reveal() for s in self._secrets if s.reveal()))
        _LIVE.add(self._pool)

    def __repr__(self) -> str:
        return f"HTTPTransport(provider={self.provider!r}, base_url={self.base_url!r})"

    def redact_error(self, error: E) -> E:
        """``error`` with this transport's secrets redacted from every text it carries: what the
        shell does to each error before the user sees it."""
        return redact_error(error, self._pool.secrets)

    def redact_result(self, result: Result[T, LLMError]) -> Result[T, LLMError]:
        """``result`` with its error (if any) redacted, as ``redact_error``."""
        return redact_result(result, self._pool.secrets)

    def with_options(self, *, timeout: float | None = None, max_retries: int | None = None
                     ) -> HTTPTransport:
        """This transport with another ``timeout`` or ``max_retries`` (per call): a view that
        shares its connections and its 429 back-off, so it costs nothing to make. ``self`` when
        nothing changes."""
        if (timeout is None or timeout == self.timeout) and (
                max_retries is None or max_retries == self.retry.max_retries):
            return self
        view = copy.copy(self)  # the same _Pool object: connections and back-off are shared
        if timeout is not None:
            view.timeout = timeout
        if max_retries is not None:
            view.retry = evolve(self.retry, max_retries=max_retries)
        return view

    def _http(self) -> httpx2.Client:
        pool = self._pool
        client = pool.client
        if client is None:
            with pool.lock:
                if pool.client is None:
                    import httpx2

                    # Kept-alive connections for a fan-out at any concurrency (httpx keeps 20
                    # by default, and would reconnect for the rest).
                    pool.client = httpx2.Client(**self._limits())
                client = pool.client
        return client

    def _limits(self) -> dict[str, Any]:
        import httpx2

        guard_logs()
        return {
            "headers": self._headers,
            # No cap: a fan-out bounds its own concurrency, and a pool capped below it would
            # queue the rest (the SDKs' hidden 100-connection trap).
            "limits": httpx2.Limits(max_connections=None, max_keepalive_connections=None),
        }

    def _timeout(self) -> httpx2.Timeout:
        # Per request, not per pool: views with another timeout share the pool.
        return _httpx_timeout(self.timeout)

    async def _async_session(self) -> aiohttp.ClientSession:
        # An async pool belongs to the event loop it was opened in: each loop gets its own,
        # closed when that loop shuts down (the closer is an async generator the loop
        # finalizes). Pools of loops that closed without that are dropped here.
        import asyncio

        from llmbackend import aio

        loop = asyncio.get_running_loop()
        pool = self._pool
        with pool.lock:
            entry = pool.async_clients.get(loop)
            if entry is not None and entry.finished:
                entry = None  # closed at a shutdown the loop has since come back from
            dead = [other for other in list(pool.async_clients) if other.is_closed()]
            forgotten = [pool.async_clients.pop(other) for other in dead]
            if entry is None:
                guard_logs()
                entry = pool.async_clients[loop] = _LoopPool(
                    aio.open_session(self._headers, self.base_url))
                started = False
            else:
                started = True
        for old in forgotten:
            old.forget()
        if not started:
            await anext(entry.closer)  # runs to its yield: the loop now finalizes it at shutdown
        return entry.session

    def close(self) -> None:
        """Close the pooled connections. The transport reopens them if used again."""
        with self._pool.lock:
            client, self._pool.client = self._pool.client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the running loop's async pool (and the sync one)."""
        import asyncio

        self.close()
        with self._pool.lock:
            entry = self._pool.async_clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            entry.dead = True
            await entry.session.close()
            await entry.closer.aclose()

    def _prepare(self, request: WireRequest
                 ) -> tuple[bytes | StreamBody | None, str, dict[str, str]] | UnsupportedError:
        """What every kind of sending starts with: the body, the URL and the headers (the
        credentials added here), or why the body cannot be sent."""
        try:
            content = encode_body(request)
        except (TypeError, ValueError) as exc:
            return UnsupportedError(
                message=f"the request body cannot be sent as JSON: {exc} (check config.extra)",
                provider=self.provider, parameter="extra",
            )
        headers = {**request.headers,
                   **{name: secret.reveal() for name, secret in self._auth_headers.items()}}
        if request.json is not None and request.content is None:
            headers["Content-Type"] = "application/json"
        if isinstance(content, StreamBody):
            headers["Content-Length"] = str(content.length)
        return content, self.base_url + request.path, headers

    async def asend(self, request: WireRequest) -> Result[WireResponse, LLMError]:
        """Effectful, async: ``send`` on the running event loop (over aiohttp: ``aio``), with
        the same retry policy (``asyncio.sleep`` between attempts, so other tasks go on
        meanwhile)."""
        import asyncio

        from llmbackend import aio

        prepared = self._prepare(request)
        if isinstance(prepared, UnsupportedError):
            return Failure(prepared)
        content, url, headers = prepared
        if isinstance(content, StreamBody):  # async streaming uploads are not needed yet
            content = b"".join(content.chunks())
        session = await self._async_session()
        failed = aio.failures()
        attempt = 0
        while True:
            attempt += 1
            pause = self._paused_for()
            if pause > 0:
                await asyncio.sleep(pause)
            outcome: WireResponse | TransportError | ResponseParseError
            try:
                # On the event loop the whole-request deadline is exact: a stalled body is cut
                # off at ``timeout``, not at the next chunk.
                async with asyncio.timeout(self.timeout):
                    reply = await aio.start(session, request.method, url, content, headers,
                                            connect=self._connect_timeout(), read=None)
                    try:
                        body = await reply.read()
                    finally:
                        reply.release()
                outcome = WireResponse(status=reply.status, headers=aio.headers_of(reply),
                                       body=body, attempts=attempt)
            except failed as exc:
                outcome = self._async_failure(request, url, attempt, exc)
            if isinstance(outcome, ResponseParseError):
                return Failure(outcome)
            delay = self._retry_after(request, url, outcome, attempt, "async")
            if delay is None:
                return Success(outcome) if isinstance(outcome, WireResponse) else Failure(
                    outcome)
            await asyncio.sleep(delay)

    def _connect_timeout(self) -> float:
        return min(self.timeout, CONNECT_TIMEOUT)

    def _async_failure(self, request: WireRequest, url: str, attempt: int, exc: BaseException
                       ) -> TransportError | ResponseParseError:
        """The typed failure of an async attempt that got no (whole) answer."""
        from llmbackend import aio

        kind = aio.classify(exc)
        if kind is aio.Failed.UNDECODABLE:
            return self._undecodable(request, url, exc)
        if kind is aio.Failed.TIMEOUT:
            return self._overdue(request, url, attempt)
        return self._no_answer(request, url, attempt, exc,
                               timed_out=kind is aio.Failed.CONNECT_TIMEOUT)

    def send(self, request: WireRequest) -> Result[WireResponse, LLMError]:
        """Effectful: send ``request``, retrying per the policy; the last response or failure."""
        return self._exchange(request, None)

    def download(self, request: WireRequest, sink: IO[bytes]) -> Result[WireResponse, LLMError]:
        """Effectful: like ``send``, but a 2xx body is streamed into ``sink`` (from its current
        position, which a retry rewinds to) instead of memory; the response's ``body`` is then
        empty. Error bodies are read into the response as usual, for the parser."""
        return self._exchange(request, sink)

    def _exchange(
        self, request: WireRequest, sink: IO[bytes] | None
    ) -> Result[WireResponse, LLMError]:
        prepared = self._prepare(request)
        if isinstance(prepared, UnsupportedError):
            return Failure(prepared)
        content, url, headers = prepared
        start = sink.tell() if sink is not None else 0
        http = self._http()
        attempt = 0
        while True:
            attempt += 1
            pause = self._paused_for()
            if pause > 0:
                time.sleep(pause)
            started = time.perf_counter()
            body: bytes | Iterator[bytes] | None = (
                content.chunks() if isinstance(content, StreamBody) else content)
            outcome = self._attempt(http, request, url, body, headers, sink, start, attempt)
            if isinstance(outcome, ResponseParseError):
                return Failure(outcome)
            delay = self._retry_after(request, url, outcome, attempt,
                                      f"in {time.perf_counter() - started:.3f} s")
            if delay is None:
                return Success(outcome) if isinstance(outcome, WireResponse) else Failure(
                    outcome)
            time.sleep(delay)

    # --- streamed answers -------------------------------------------------------------------

    def open_stream(self, request: WireRequest, *, attempts: int = 0
                    ) -> Result[EventStream | WireResponse, LLMError]:
        """Effectful: send ``request`` for a streamed answer, retrying per the policy until a
        status line arrives (``attempts``: the attempts already made at this answer, by an
        earlier stream that broke before any text). A 2xx ``text/event-stream`` answer comes
        back open, as an ``EventStream`` (close it); any other answer is read whole into a
        ``WireResponse``, for the parser (an error status, or a server that did not stream)."""
        prepared = self._prepare(request)
        if isinstance(prepared, UnsupportedError):
            return Failure(prepared)
        content, url, headers = prepared
        http = self._http()
        attempt = attempts
        while True:
            attempt += 1
            pause = self._paused_for()
            if pause > 0:
                time.sleep(pause)
            body: bytes | Iterator[bytes] | None = (
                content.chunks() if isinstance(content, StreamBody) else content)
            outcome = self._open_attempt(http, request, url, body, headers, attempt)
            if isinstance(outcome, EventStream):
                return Success(outcome)
            if isinstance(outcome, ResponseParseError):
                return Failure(outcome)
            delay = self._retry_after(request, url, outcome, attempt, "(stream)")
            if delay is None:
                return Success(outcome) if isinstance(outcome, WireResponse) else Failure(
                    outcome)
            time.sleep(delay)

    def _open_attempt(  # noqa: PLR0917 -- one private call site
        self, http: httpx2.Client, request: WireRequest, url: str,
        body: bytes | Iterator[bytes] | None, headers: dict[str, str], attempt: int,
    ) -> EventStream | WireResponse | TransportError | ResponseParseError:
        import httpx2

        try:
            reply = http.send(http.build_request(request.method, url, content=body,
                                                 headers=headers, timeout=self._timeout()),
                              stream=True)
        except httpx2.TransportError as exc:
            return self._no_answer(request, url, attempt, exc)
        if _is_event_stream(reply):
            return EventStream(self, request, url, reply, attempt)
        deadline = time.monotonic() + self.timeout
        try:
            buffer = bytearray()
            for chunk in reply.iter_bytes():
                buffer += chunk
                _check(deadline)
            return self._response(reply, bytes(buffer), attempt)
        except _OverdueError:
            return self._overdue(request, url, attempt)
        except httpx2.DecodingError as exc:
            return self._undecodable(request, url, exc)
        except httpx2.TransportError as exc:
            return self._no_answer(request, url, attempt, exc)
        finally:
            reply.close()

    async def aopen_stream(self, request: WireRequest, *, attempts: int = 0
                           ) -> Result[AsyncEventStream | WireResponse, LLMError]:
        """Effectful, async: ``open_stream`` on the running event loop (an
        ``AsyncEventStream``: ``aclose`` it)."""
        import asyncio

        from llmbackend import aio

        prepared = self._prepare(request)
        if isinstance(prepared, UnsupportedError):
            return Failure(prepared)
        content, url, headers = prepared
        if isinstance(content, StreamBody):
            content = b"".join(content.chunks())
        session = await self._async_session()
        failed = aio.failures()
        attempt = attempts
        while True:
            attempt += 1
            pause = self._paused_for()
            if pause > 0:
                await asyncio.sleep(pause)
            outcome: WireResponse | TransportError | ResponseParseError
            try:
                reply = await aio.start(session, request.method, url, content, headers,
                                        connect=self._connect_timeout(), read=self.timeout)
            except failed as exc:
                outcome = self._async_failure(request, url, attempt, exc)
            else:
                if aio.is_event_stream(reply):
                    return Success(AsyncEventStream(self, request, url, reply, attempt))
                try:
                    async with asyncio.timeout(self.timeout):
                        body = await reply.read()
                    outcome = WireResponse(status=reply.status, headers=aio.headers_of(reply),
                                           body=body, attempts=attempt)
                except failed as exc:
                    outcome = self._async_failure(request, url, attempt, exc)
                finally:
                    reply.release()
            if isinstance(outcome, ResponseParseError):
                return Failure(outcome)
            delay = self._retry_after(request, url, outcome, attempt, "(stream, async)")
            if delay is None:
                return Success(outcome) if isinstance(outcome, WireResponse) else Failure(
                    outcome)
            await asyncio.sleep(delay)

    def stream_retry_delay(self, request: WireRequest, failure: LLMError, attempt: int
                           ) -> float | None:
        """Seconds to wait before opening the stream again, after ``failure`` ended it before
        any answer text (``attempt``: the attempts made so far), or ``None`` to stop: the same
        decision as for a failed whole call (``retrying``). A provider error with an HTTP status
        (Gemini's in-stream errors carry one) is retried as that status would be; a broken or
        stalled connection as a connection error (an idempotent request only); anything else
        (a refusal, an error event without a status) is not."""
        if not failure.retryable:
            return None
        status = failure.status if isinstance(failure, HTTPStatusError) else None
        if status is None and not request.idempotent:
            return None
        delay = retry_delay(self.retry, attempt, status=status, headers={}, now=time.time(),
                            random_unit=random.random())
        if status == 429:
            self._note_rate_limit(WireResponse(status=429), delay)
        if delay is not None:
            log().info("%s %s: the stream broke before any text (%s): opening it again in "
                       "%.2f s (attempt %d of %d)", request.method, self.base_url + request.path,
                       type(failure).__name__, delay, attempt, self.retry.max_retries + 1)
        return delay

    def _broken(self, request: WireRequest, url: str, attempt: int, exc: BaseException
                ) -> LLMError:
        """The typed failure of a stream whose connection broke after its status line: a
        stall (no byte for ``timeout`` seconds), a reset, an undecodable or oversized event
        (httpx2's exceptions on the sync face, aiohttp's on the async one)."""
        import httpx2

        from llmbackend import aio

        if isinstance(exc, httpx2.TimeoutException | TimeoutError):
            return RequestTimeoutError(
                message=self._scrub(f"{request.method} {url}: the stream stalled: no bytes "
                                    f"arrived for {self.timeout:g} s (the timeout)"),
                provider=self.provider, attempts=attempt)
        if isinstance(exc, httpx2.DecodingError) or (
                not isinstance(exc, httpx2.HTTPError) and aio.classify(exc)
                is aio.Failed.UNDECODABLE):
            return self._undecodable(request, url, exc)
        return TransportError(
            message=self._scrub(f"{request.method} {url}: the stream broke: "
                                f"{type(exc).__name__}: {exc}"),
            provider=self.provider, attempts=attempt)

    def _response(self, reply: httpx2.Response, body: bytes, attempt: int) -> WireResponse:
        return WireResponse(
            status=reply.status_code,
            headers={name.lower(): value for name, value in reply.headers.items()},
            body=body,  # never altered: the parser reads what came
            attempts=attempt,
        )

    def _attempt(  # noqa: PLR0917 -- one private call site
        self, http: httpx2.Client, request: WireRequest, url: str,
        body: bytes | Iterator[bytes] | None, headers: dict[str, str],
        sink: IO[bytes] | None, start: int, attempt: int,
    ) -> WireResponse | TransportError | ResponseParseError:
        """One try: the response, or why none came (``ResponseParseError``: never retried)."""
        import httpx2

        # ``timeout`` bounds the whole request: httpx's own timeouts bound each socket
        # operation only, and a body that trickles in would never trip them.
        deadline = time.monotonic() + self.timeout
        if sink is not None:
            sink.seek(start)
            sink.truncate()
        try:
            with http.stream(request.method, url, content=body, headers=headers,
                             timeout=self._timeout()) as streamed:
                if sink is not None and 200 <= streamed.status_code < 300:
                    for chunk in streamed.iter_bytes():
                        sink.write(chunk)
                        _check(deadline)
                    return self._response(streamed, b"", attempt)
                buffer = bytearray()
                for chunk in streamed.iter_bytes():
                    buffer += chunk
                    _check(deadline)
                return self._response(streamed, bytes(buffer), attempt)
        except _OverdueError:
            return self._overdue(request, url, attempt)
        except httpx2.DecodingError as exc:  # e.g. a Content-Encoding the body does not fit
            return self._undecodable(request, url, exc)
        except httpx2.TransportError as exc:  # timeouts included
            return self._no_answer(request, url, attempt, exc)

    def _no_answer(self, request: WireRequest, url: str, attempt: int, exc: BaseException,
                   *, timed_out: bool | None = None) -> TransportError:
        """The typed failure of an attempt that got no response (sync and async alike;
        ``timed_out``: whether it was a timeout, when not an httpx2 exception that says)."""
        import httpx2

        if timed_out is None:
            timed_out = isinstance(exc, httpx2.TimeoutException)
        if timed_out:
            return RequestTimeoutError(
                message=self._scrub(f"{request.method} {url} timed out after {attempt} "
                                    f"attempt(s) ({type(exc).__name__}; timeout "
                                    f"{self.timeout:g} s)"),
                provider=self.provider, attempts=attempt)
        return TransportError(
            message=self._scrub(f"{request.method} {url} failed after {attempt} attempt(s): "
                                f"{type(exc).__name__}: {exc}"),
            provider=self.provider, attempts=attempt)

    def _retry_after(self, request: WireRequest, url: str,
                     outcome: WireResponse | TransportError, attempt: int, note: str
                     ) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to stop: the retry policy's
        decision (sync and async alike), logged, with a 429 noted for the whole pool."""
        received = outcome if isinstance(outcome, WireResponse) else None
        what = f"HTTP {received.status}" if received else type(outcome).__name__
        log().debug("%s %s -> %s %s (attempt %d)", request.method, url, what, note, attempt)
        # A request that got no answer may have been carried out: only an idempotent one is
        # sent again.
        delay = retry_delay(
            self.retry, attempt,
            status=received.status if received else None,
            headers=received.headers if received else {},
            now=time.time(), random_unit=random.random(),
        ) if received is not None or request.idempotent else None
        self._note_rate_limit(received, delay)
        if delay is not None:
            log().info("%s %s: retrying in %.2f s after %s (attempt %d of %d)",
                       request.method, url, delay, what, attempt, self.retry.max_retries + 1)
        return delay

    def _overdue(self, request: WireRequest, url: str, attempt: int) -> RequestTimeoutError:
        return RequestTimeoutError(
            message=self._scrub(f"{request.method} {url} took longer than the {self.timeout:g} s "
                                f"timeout (attempt {attempt}): the body was still arriving"),
            provider=self.provider, attempts=attempt)

    def _undecodable(self, request: WireRequest, url: str, exc: BaseException
                     ) -> ResponseParseError:
        return ResponseParseError(
            message=self._scrub(f"{request.method} {url}: the response body cannot be decoded "
                                f"({type(exc).__name__}: {exc})"), provider=self.provider)

    def _note_rate_limit(self, received: WireResponse | None, delay: float | None) -> None:
        """A 429 limits the whole key, not one request: every request of this transport (all
        the threads and tasks of a fan-out) waits out the same back-off, instead of each
        hammering the provider again on its own schedule. That holds when this request is not
        retried itself too (``delay`` None: no retries left, or none allowed): the others still
        wait what the provider asked (``Retry-After``), or the first back-off step."""
        if received is None or received.status != 429:
            return
        if delay is None:
            asked = parse_retry_after(received.headers, time.time())
            delay = min(asked if asked is not None else self.retry.initial_delay,
                        self.retry.retry_after_cap)
        with self._pool.lock:
            self._pool.pause_until = max(self._pool.pause_until, time.monotonic() + delay)

    def _paused_for(self) -> float:
        """Seconds left of a shared back-off (0 when there is none)."""
        return self._pool.pause_until - time.monotonic()

    def _scrub(self, text: str) -> str:
        return redact(text, self._pool.secrets)


@functools.lru_cache(maxsize=64)
def _httpx_timeout(timeout: float) -> httpx2.Timeout:
    """httpx2's timeouts for ``timeout`` seconds (made once per value: a ``Timeout`` is not
    changed after it is made, and making one costs microseconds on every request)."""
    import httpx2

    return httpx2.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT))


def _is_event_stream(reply: httpx2.Response) -> bool:
    media = reply.headers.get("content-type", "").partition(";")[0].strip().lower()
    return 200 <= reply.status_code < 300 and media == "text/event-stream"


class _OpenStream:
    """What both kinds of open stream keep: the reply, how to name its failure, the attempts
    made to get it (retries included) and ``failure`` (``None`` until the connection broke)."""

    def __init__(self, transport: HTTPTransport, request: WireRequest, url: str,
                 attempts: int) -> None:
        self._transport = transport
        self._request = request
        self._url = url
        self.attempts = attempts
        self.failure: LLMError | None = None

    def _broke(self, exc: BaseException) -> None:
        self.failure = self._transport._broken(self._request, self._url, self.attempts, exc)


class EventStream(_OpenStream):
    """Effectful: one streamed answer, open: iterate it for its ``ServerEvent`` values, in
    order, as they arrive; ``close`` it (or use it as a context manager) to drop the connection,
    at once, even mid-stream.

    The iteration never raises an HTTP library's exception: when the connection breaks (a
    reset, a stall of ``timeout`` seconds, an event over ``MAX_EVENT_BYTES``) it stops, and
    ``failure`` says why (``None`` after a clean end). ``attempts``: the attempts made to get
    it, retries included."""

    def __init__(self, transport: HTTPTransport, request: WireRequest, url: str,
                 reply: httpx2.Response, attempts: int) -> None:
        super().__init__(transport, request, url, attempts)
        self._reply = reply
        self.status = reply.status_code

    def __iter__(self) -> Iterator[ServerEvent]:
        import httpx2

        try:
            for sse in httpx2.EventSource(self._reply, max_event_size=MAX_EVENT_BYTES):
                yield ServerEvent(event=sse.event, data=sse.data)
        except httpx2.TransportError as exc:  # SSEError, timeouts and decoding included
            self._broke(exc)

    def close(self) -> None:
        self._reply.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncEventStream(_OpenStream):
    """Effectful, async: ``EventStream`` on an event loop, over aiohttp (``async for``;
    ``aclose``)."""

    def __init__(self, transport: HTTPTransport, request: WireRequest, url: str,
                 reply: aiohttp.ClientResponse, attempts: int) -> None:
        super().__init__(transport, request, url, attempts)
        self._reply = reply
        self.status = reply.status

    async def __aiter__(self) -> AsyncIterator[ServerEvent]:
        from llmbackend import aio

        try:
            async for event, data in aio.events(self._reply, self._url, MAX_EVENT_BYTES):
                yield ServerEvent(event=event, data=data)
        except aio.failures() as exc:
            self._broke(exc)

    async def aclose(self) -> None:
        # A stream read to its end gives its connection back; one left midway drops it.
        if self._reply.content.at_eof():
            self._reply.release()
        else:
            self._reply.close()
