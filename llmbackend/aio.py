"""Effectful: the async face's HTTP stack, over aiohttp: a session (the transport keeps one per
event loop), one request, an answer's events, and what aiohttp's exceptions mean.

Strategy: the async face exists for fan-outs of hundreds or thousands of requests at once, and
httpx2's async pool walks every idle connection on each request, so its cost per request grows
with concurrency (measured in issue 17: 11.5 ms of client CPU per request at 1,000 at once,
against aiohttp's 0.3 ms). aiohttp's does not. The sync face stays on httpx2, which measures
as well as anything there. This module holds only what is aiohttp's: the retry loop, the
deadline, the redaction and every decision stay in ``transport``, shared with the sync face.
aiohttp is imported on the first async request, never by ``import llmbackend`` nor by sync code.

The session is set up to behave as the sync face's httpx2 client does: no connection cap (the
fan-out bounds its own concurrency; aiohttp caps at 100 by default), no redirects followed (a
redirect is the parser's to report, and credentials never go to another host), URLs sent as
built (the providers percent-encode their paths; yarl would re-quote them), certifi's CA
bundle when installed, the environment's proxy (looked up once per session), and no cookies
kept between calls.
Server-sent events are framed by httpx2's SSE decoder, the one the sync face uses.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

    import aiohttp

__all__ = [
    "Failed",
    "abandon",
    "classify",
    "environment_proxy",
    "events",
    "failures",
    "headers_of",
    "is_event_stream",
    "open_session",
    "start",
]


class Failed(Enum):
    """What an exception of the async stack means for the transport."""

    CONNECT_TIMEOUT = "no connection within the connect timeout"
    TIMEOUT = "no byte within the timeout (or the request's deadline passed)"
    UNDECODABLE = "a body that its Content-Encoding does not fit"
    BROKEN = "no answer, or a connection that broke"


def failures() -> tuple[type[BaseException], ...]:
    """The exceptions the async stack raises for a request that went wrong on the wire (to
    catch, then ``classify``); anything else is a bug, and propagates."""
    import aiohttp
    import httpx2

    return (aiohttp.ClientError, TimeoutError, OSError, httpx2.TransportError)


def classify(exc: BaseException) -> Failed:
    """Pure: what one of ``failures()`` means."""
    import aiohttp
    from aiohttp import http_exceptions

    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Failed.CONNECT_TIMEOUT
    if isinstance(exc, TimeoutError):  # aiohttp's read timeouts are TimeoutErrors too
        return Failed.TIMEOUT
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, http_exceptions.ContentEncodingError | http_exceptions.
                      DecompressSizeError):
            return Failed.UNDECODABLE
        cause = cause.__cause__
    return Failed.BROKEN


def open_session(headers: Mapping[str, str], base_url: str) -> aiohttp.ClientSession:
    """A new session for requests to ``base_url`` (call it on the event loop it will serve),
    sending ``headers`` with every request."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ssl=_ssl_context(),
                                     resolver=aiohttp.ThreadedResolver())
    # Strategy: the proxy is looked up once, here. aiohttp's own trust_env looks it up (and
    # reads .netrc) in a worker thread on every request: two thread hops per request, a third
    # of the client's cost at 1,000 in flight.
    return aiohttp.ClientSession(connector=connector, headers=dict(headers),
                                 proxy=environment_proxy(base_url),
                                 cookie_jar=aiohttp.DummyCookieJar())


def environment_proxy(base_url: str) -> str | None:
    """The proxy the environment names for ``base_url`` (``HTTPS_PROXY``, ``HTTP_PROXY``,
    ``ALL_PROXY``, any case; none for a host ``NO_PROXY`` lists), as httpx2 picks it on the
    sync face; ``None`` for none."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    proxies = urllib.request.getproxies_environment()
    if not parts.hostname or not proxies or urllib.request.proxy_bypass(parts.hostname):
        return None
    return proxies.get(parts.scheme) or proxies.get("all") or None


def _ssl_context() -> ssl.SSLContext:
    import ssl

    try:
        import certifi
    except ImportError:  # pragma: no cover - httpx2 brings certifi
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


async def start(session: aiohttp.ClientSession, method: str, url: str, content: bytes | None,
                headers: dict[str, str], *, connect: float, read: float | None
                ) -> aiohttp.ClientResponse:
    """Send one request; the response once its head has arrived (read its body, then
    ``release`` it; or ``close`` it to drop the connection). ``read``: the longest wait for
    each next byte (``None``: no limit of its own; the caller's deadline bounds it)."""
    from yarl import URL

    return await session.request(method, URL(url, encoded=True), data=content, headers=headers,
                                 allow_redirects=False, timeout=_timeout(connect, read))


@functools.lru_cache(maxsize=64)
def _timeout(connect: float, read: float | None) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts (made once per value: a ``ClientTimeout`` is frozen)."""
    import aiohttp

    return aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)


def headers_of(reply: aiohttp.ClientResponse) -> dict[str, str]:
    """Pure: the response's headers with lower-case names, a repeated header's values joined
    by ``", "`` (as httpx2 gives them on the sync face)."""
    merged: dict[str, str] = {}
    for name, value in reply.headers.items():
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def is_event_stream(reply: aiohttp.ClientResponse) -> bool:
    """Pure: whether ``reply`` is a 2xx answer of server-sent events."""
    media = reply.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    return 200 <= reply.status < 300 and media == "text/event-stream"


async def events(reply: aiohttp.ClientResponse, url: str, max_event_size: int
                 ) -> AsyncIterator[tuple[str, str]]:
    """Each server-sent event of ``reply`` as ``(event, data)``, as the bytes arrive, framed by
    httpx2's decoder (over a response that only carries the bytes aiohttp reads)."""
    import httpx2

    framed = httpx2.Response(reply.status, headers=list(reply.headers.items()),
                             content=reply.content.iter_any(),
                             request=httpx2.Request(reply.method, url))
    async for sse in httpx2.EventSource(framed, max_event_size=max_event_size):
        yield sse.event, sse.data


def abandon(session: aiohttp.ClientSession) -> None:
    """Let go of a session whose event loop closed without closing it: marked closed, so that
    neither it nor its connector warns when collected (their sockets went with the loop)."""
    connector = session.connector
    if connector is not None:
        # Strategy: aiohttp's close is a coroutine, and this loop is gone; the connector's
        # own synchronous step (what its __del__ runs) only marks it closed on a closed loop.
        connector._close()
