"""Effectful: the one HTTP transport. Sends a ``WireRequest``, retries as ``retrying`` decides,
and returns ``Result[WireResponse, LLMError]``.

Strategy: this is the only module that touches the network (over httpx2, the HTTP library the
vendors' own SDKs use), the clock and the sleep. It returns every HTTP response, error statuses
included, as a ``WireResponse``: reading a provider's error body is the provider parser's job.
It fails only when no response arrived (timeout, connection error). It is also the one place that
holds credentials: they go into headers here and are scrubbed from anything it reports or logs.
httpx2 is imported when the first request is sent, not at ``import llmbackend``.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

from attrs import evolve
from returns.result import Failure, Result, Success

from llmbackend.errors import (
    LLMError,
    RequestTimeoutError,
    ResponseParseError,
    TransportError,
    UnsupportedError,
)
from llmbackend.logs import log
from llmbackend.retrying import RetryPolicy, parse_retry_after, retry_delay
from llmbackend.settings import DEFAULT_TIMEOUT
from llmbackend.types import Secret, StreamBody, WireRequest, WireResponse

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "CONNECT_TIMEOUT",
    "MAX_CONNECTIONS",
    "USER_AGENT",
    "HTTPTransport",
    "encode_body",
    "redact",
]


#: Connecting should never take long, whatever the overall timeout (``DEFAULT_TIMEOUT``, in
#: ``settings``: LLM answers can take minutes, as in the vendors' SDKs).
CONNECT_TIMEOUT = 10.0

USER_AGENT = "llmbackend/0.1"
#: Connections one transport opens at most (and keeps alive): an immediate batch's top
#: concurrency (``batching.MAX_CONCURRENCY``).
MAX_CONNECTIONS = 256


class _OverdueError(Exception):
    """The whole request took longer than the transport's timeout."""


def _check(deadline: float) -> None:
    if time.monotonic() > deadline:
        raise _OverdueError


def redact(text: str, secrets: tuple[Secret, ...]) -> str:
    """Pure: ``text`` with every secret's value replaced by ``********``."""
    for secret in secrets:
        value = secret.reveal()
        if value:
            text = text.replace(value, "********")
    return text


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


class _Pool:
    """The mutable part of a transport, shared with its per-call views (``with_options``): the
    connection pools and the 429 back-off."""

    def __init__(self) -> None:
        self.client: httpx2.Client | None = None
        self.async_client: tuple[object, httpx2.AsyncClient] | None = None
        self.lock = threading.Lock()
        self.pause_until = 0.0  # monotonic time before which no request is sent (a 429)


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
        # What to scrub from anything reported: the raw keys (which also covers header values
        # built on them, such as "Bearer <key>"), else the header values themselves.
        self._secrets = secrets or tuple(self._auth_headers.values())
        self._secret_bytes = tuple(s.reveal().encode() for s in self._secrets if s.reveal())
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._pool = _Pool()

    def __repr__(self) -> str:
        return f"HTTPTransport(provider={self.provider!r}, base_url={self.base_url!r})"

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

                    # Enough kept-alive connections for a fan-out at its top concurrency
                    # (httpx keeps 20 by default, and would reconnect for the rest).
                    pool.client = httpx2.Client(**self._limits())
                client = pool.client
        return client

    def _limits(self) -> dict[str, Any]:
        import httpx2

        return {
            "headers": self._headers,
            "limits": httpx2.Limits(max_connections=MAX_CONNECTIONS,
                                    max_keepalive_connections=MAX_CONNECTIONS),
        }

    def _timeout(self) -> httpx2.Timeout:
        # Per request, not per pool: views with another timeout share the pool.
        import httpx2

        return httpx2.Timeout(self.timeout, connect=min(self.timeout, CONNECT_TIMEOUT))

    def _async_http(self) -> httpx2.AsyncClient:
        # An async pool belongs to the event loop it was opened in: another loop (a later
        # asyncio.run) gets its own.
        import asyncio

        import httpx2

        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool.async_client is None or pool.async_client[0] is not loop:
            pool.async_client = (loop, httpx2.AsyncClient(**self._limits()))
        return pool.async_client[1]

    def close(self) -> None:
        """Close the pooled connections. The transport reopens them if used again."""
        with self._pool.lock:
            client, self._pool.client = self._pool.client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the async pool (and the sync one)."""
        self.close()
        pool, self._pool.async_client = self._pool.async_client, None
        if pool is not None:
            await pool[1].aclose()

    async def asend(self, request: WireRequest) -> Result[WireResponse, LLMError]:
        """Effectful, async: ``send`` on the running event loop, with the same retry policy
        (``asyncio.sleep`` between attempts, so other tasks go on meanwhile)."""
        import asyncio

        import httpx2

        try:
            content = encode_body(request)
        except (TypeError, ValueError) as exc:
            return Failure(UnsupportedError(
                message=f"the request body cannot be sent as JSON: {exc} (check config.extra)",
                provider=self.provider, parameter="extra",
            ))
        if isinstance(content, StreamBody):  # async streaming uploads are not needed yet
            content = b"".join(content.chunks())
        url = self.base_url + request.path
        headers = {**request.headers,
                   **{name: secret.reveal() for name, secret in self._auth_headers.items()}}
        if request.json is not None and request.content is None:
            headers["Content-Type"] = "application/json"
        http = self._async_http()
        attempt = 0
        while True:
            attempt += 1
            pause = self._paused_for()
            if pause > 0:
                await asyncio.sleep(pause)
            outcome: WireResponse | TransportError
            try:
                # On the event loop the whole-request deadline is exact: a stalled body is cut
                # off at ``timeout``, not at the next chunk.
                async with asyncio.timeout(self.timeout), http.stream(
                        request.method, url, content=content, headers=headers,
                        timeout=self._timeout()) as streamed:
                    buffer = bytearray()
                    async for chunk in streamed.aiter_bytes():
                        buffer += chunk
                    outcome = self._response(streamed, bytes(buffer), attempt)
            except TimeoutError:
                outcome = self._overdue(request, url, attempt)
            except httpx2.DecodingError as exc:
                return Failure(self._undecodable(request, url, exc))
            except httpx2.TransportError as exc:  # timeouts included
                outcome = self._no_answer(request, url, attempt, exc)
            delay = self._retry_after(request, url, outcome, attempt, "async")
            if delay is None:
                return Success(outcome) if isinstance(outcome, WireResponse) else Failure(
                    outcome)
            await asyncio.sleep(delay)

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
        try:
            content = encode_body(request)
        except (TypeError, ValueError) as exc:
            return Failure(UnsupportedError(
                message=f"the request body cannot be sent as JSON: {exc} (check config.extra)",
                provider=self.provider, parameter="extra",
            ))

        url = self.base_url + request.path
        headers = {**request.headers,
                   **{name: secret.reveal() for name, secret in self._auth_headers.items()}}
        if request.json is not None and request.content is None:
            headers["Content-Type"] = "application/json"
        if isinstance(content, StreamBody):
            headers["Content-Length"] = str(content.length)
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

    def _response(self, reply: httpx2.Response, body: bytes, attempt: int) -> WireResponse:
        return WireResponse(
            status=reply.status_code,
            headers={name.lower(): value for name, value in reply.headers.items()},
            body=self._scrub_bytes(body),
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
                    self._scrub_sink(sink, start)
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

    def _no_answer(self, request: WireRequest, url: str, attempt: int, exc: Exception
                   ) -> TransportError:
        """The typed failure of an attempt that got no response (sync and async alike)."""
        import httpx2

        if isinstance(exc, httpx2.TimeoutException):
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

    def _undecodable(self, request: WireRequest, url: str, exc: Exception
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

    def _scrub_sink(self, sink: IO[bytes], start: int) -> None:
        """Cut the keys out of a downloaded body (a batch result file can quote one, like any
        response). Read back in overlapping chunks; rewritten only in the rare case one is
        found, so a large file costs one extra read."""
        if not self._secret_bytes:
            return
        overlap = max(len(value) for value in self._secret_bytes) - 1
        sink.seek(start)
        tail = b""
        found = False
        while chunk := sink.read(1 << 20):
            window = tail + chunk
            if any(value in window for value in self._secret_bytes):
                found = True
                break
            tail = window[-overlap:] if overlap else b""
        if found:
            sink.seek(start)
            body = self._scrub_bytes(sink.read())
            sink.seek(start)
            sink.truncate()
            sink.write(body)
        sink.seek(0, 2)

    def _scrub(self, text: str) -> str:
        return redact(text, self._secrets)

    def _scrub_bytes(self, body: bytes) -> bytes:
        # Some APIs quote the key they were sent in an error body; that body then feeds error
        # messages and logs, so the key is cut out here, where it is known.
        for value in self._secret_bytes:
            if value in body:
                body = body.replace(value, b"********")
        return body

