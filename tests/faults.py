"""A fault-injecting loopback HTTP server (127.0.0.1 only), for reliability tests.

It speaks just enough HTTP/1.1 over a raw socket to do what a well-behaved server cannot: answer
with any status and headers, cut a body in the middle with a TCP reset, promise more bytes than
it sends, trickle a body, or say nothing at all. Each request is served by the next scripted
``Behaviour`` that matches it (in the order they were pushed); when none does, the default
behaviour runs, which forwards the request to ``upstream`` (one of the emulators) unchanged, so a
test can break exactly one exchange of a longer conversation::

    with FaultServer(upstream=emulator.base_url) as faults:
        faults.push(Reply(503, headers={"retry-after-ms": "1"}), Reset())
        client = llmbackend.client("openai", "m", base_url=faults.base_url, ...)

Every request is recorded in ``requests`` with the name of the behaviour that served it.

Streamed answers (``text/event-stream``) have their own behaviours, which relay the upstream's
events chunked, one event per chunk: ``StreamReset`` resets the connection after some of them
(none: right after the head); ``StreamRelay`` sends them slowly while watching for the client to
go away, and records what it saw in ``FaultServer.relayed``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import select
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from attrs import define, field, frozen

#: Headers that describe one connection or one body framing, never forwarded as they are.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                        "host", "accept-encoding", "proxy-connection", "te", "upgrade"})
#: How long an idle kept-alive connection waits for its next request.
IDLE_TIMEOUT = 10.0
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 408: "Request Timeout",
           409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
           529: "Overloaded"}


def as_bytes(body: bytes | str | Mapping[str, Any] | list[Any]) -> bytes:
    """A body as bytes: bytes as they are, text as UTF-8, anything else as JSON."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def maybe_bytes(body: bytes | str | Mapping[str, Any] | list[Any] | None) -> bytes | None:
    """``as_bytes``, with ``None`` kept (it means: the upstream's answer)."""
    return None if body is None else as_bytes(body)


# --- the wire -------------------------------------------------------------------------------------


@frozen
class Request:
    """One request as received, and the behaviour that answered it."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    served_by: str = ""

    @property
    def line(self) -> str:
        return f"{self.method} {self.path}"

    def json(self) -> Any:
        return json.loads(self.body)


@frozen
class Answer:
    """A whole response, canned or fetched from upstream."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


class Connection:
    """One accepted client socket: reads requests, writes raw bytes, closes or resets."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except OSError:
            return False
        self._buffer += chunk
        return bool(chunk)

    def _read_line(self) -> bytes | None:
        while b"\r\n" not in self._buffer:
            if not self._fill():
                return None
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _read_exact(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not self._fill():
                return None
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def read_request(self) -> Request | None:
        """The next request on the connection (``None`` once the client has gone)."""
        while (start := self._read_line()) == b"":
            pass  # stray blank lines between requests are allowed
        if start is None:
            return None
        method, path, _ = start.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (raw := self._read_line()) not in (b"", None):
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if raw is None:
            return None
        body: bytes | None
        if "chunked" in headers.get("transfer-encoding", "").lower():
            pieces = []
            while (size_line := self._read_line()) is not None:
                size = int(size_line.split(b";")[0], 16)
                piece = self._read_exact(size + 2)
                if piece is None:
                    return None
                if size == 0:
                    break
                pieces.append(piece[:-2])
            body = b"".join(pieces)
        else:
            body = self._read_exact(int(headers.get("content-length") or 0))
        if body is None:
            return None
        return Request(method, path, headers, body)

    def send_head(self, status: int, headers: tuple[tuple[str, str], ...], length: int) -> None:
        """The status line and headers, with ``Content-Length: length``."""
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
        lines += [f"{name}: {value}" for name, value in headers
                  if name.lower() not in HOP_BY_HOP]
        if not any(name.lower() == "content-type" for name, _ in headers):
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {length}")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send_stream_head(self, status: int, headers: tuple[tuple[str, str], ...]) -> None:
        """The status line and headers of a streamed body: ``Transfer-Encoding: chunked``."""
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
        lines += [f"{name}: {value}" for name, value in headers
                  if name.lower() not in HOP_BY_HOP]
        if not any(name.lower() == "content-type" for name, _ in headers):
            lines.append("Content-Type: text/event-stream")
        lines.append("Transfer-Encoding: chunked")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def send_chunk(self, data: bytes) -> None:
        """One chunk of a chunked body (``b""``: the last one, which ends the body)."""
        self.send(b"%x\r\n%s\r\n" % (len(data), data))

    def client_gone(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the client to close or reset its end of the connection;
        whether it did (a client mid-answer sends nothing else)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], seconds)
            if not readable:
                return False
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reset(self) -> None:
        """Abort the connection: SO_LINGER 0, so closing sends a TCP RST, not a FIN."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            self.sock.close()

    def close(self) -> None:
        """An orderly close (FIN)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


# --- behaviours -----------------------------------------------------------------------------------


class Behaviour(Protocol):
    """How to answer one request. Returns whether the connection stays open for another."""

    def serve(self, conn: Connection, request: Request, server: FaultServer) -> bool: ...


def _answer(body: bytes | None, status: int, request: Request, server: FaultServer) -> Answer:
    """A canned answer, or upstream's answer to ``request`` when ``body`` is ``None``."""
    return server.forward(request) if body is None else Answer(status, (), body)


@frozen
class Reply:
    """Answer with ``status``, ``headers`` and ``body`` (bytes, or a JSON value), after
    ``delay`` seconds."""

    status: int
    body: bytes = field(default=b"", converter=as_bytes)
    headers: Mapping[str, str] = field(factory=dict)
    delay: float = 0.0

    def serve(self, conn: Connection, request: Request, server: FaultServer) -> bool:
        if self.delay and server.stopping.wait(self.delay):
            return False
        conn.send_head(self.status, tuple(self.headers.items()), len(self.body))
        conn.send(self.body)
        return True


@frozen
class Forward:
    """Forward the request to the upstream emulator and relay its answer (the default), after
    ``delay`` seconds."""

    delay: float = 0.0

    def serve(self, conn: Connection, request: Request, server: FaultServer) -> bool:
        answer = server.forward(request)
        if self.delay and server.stopping.wait(self.delay):
            return False
        conn.send_head(answer.status, answer.headers, len(answer.body))
        conn.send(answer.body)
        return True


@frozen
class Reset:
    """Send the status line and headers (promising the whole body), ``fraction`` of the body,
    then abort the connection with a TCP reset.

    ``body=None`` forwards the request upstream first, so the request took effect there and only
    its answer is lost. ``send_head=False`` resets before a single byte of the answer.
    """

    body: bytes | None = field(default=None, converter=maybe_bytes)
    status: int = 200
    fraction: float = 0.5
    send_head: bool = True

    def serve(self, conn: Connection, request: Request, server: FaultServer) -> bool:
        answer = _answer(self.body, self.status, request, server)
        if self.send_head:
            conn.send_head(answer.status, answer.headers, len(answer.body))
            conn.send(answer.body[:int(len(answer.body) * self.fraction)])
            server.stopping.wait(0.05)  # let the client read the head before the reset lands
        conn.reset()
        return False


@frozen
class ShortBody:
    """Promise ``extra`` more bytes in ``Content-Length`` than the body has, send the body, then
    close the connection (``then="close"``) or keep it open and silent (``then="hang"``)."""

    body: bytes | None = field(default=None, converter=maybe_bytes)
    status: int = 200
    extra: int = 100
    then: str = "close"

    def serve(self, conn: Connection, request: Request, server: FaultServer) -> bool:
        answer = _answer(self.body, self.status, request, server)
        conn.send_head(answer.status, answer.headers, len(answer.body) + self.extra)
        conn.send(answer.body)
        if self.then == "hang":
            server.stopping.wait()
        conn.close()
        return False


@frozen
class Trickle:
    """Send the head at once, then the body in ``pieces`` pieces, ``interval`` seconds apart:
    every read gets something, yet the whole body takes ``pieces * interval`` seconds."""

    body: bytes | None = field(default=None, converter=maybe_bytes)
    status: int = 200
    pieces: int = 10
    interval: float = 0.2

    def serve(self, conn: Connection, request: Request, server: FaultServer) -> bool:
        answer = _answer(self.body, self.status, request, server)
        conn.send_head(answer.status, answer.headers, len(answer.body))
        step = max(1, -(-len(answer.body) // self.pieces))
        for start in range(0, len(answer.body), step):
            if server.stopping.wait(self.interval):
                return False
            try:
                conn.send(answer.body[start:start + step])
            except OSError:
                return False  # the client gave up: that is the point
        return True


@frozen
class Silence:
    """Read the request and answer nothing, for ``seconds`` (``None``: until the server stops),
    then close the connection."""

    seconds: float | None = None

    def serve(self, conn: Connection, request: Request, server: FaultServer) -> bool:
        server.stopping.wait(self.seconds)
        conn.close()
        return False


def sse_frames(body: bytes) -> list[bytes]:
    """A streamed body cut into its server-sent events, each with the blank line that ends it
    (``\n\n`` or ``\r\n\r\n``); bytes after the last blank line are dropped."""
    return [match.group(0) for match in re.finditer(rb"(?s).*?(?:\r\n\r\n|\n\n)", body)]


@frozen
class StreamReset:
    """Forward the request upstream and relay its streamed answer chunked, one event per chunk:
    the first ``events`` events (``0``: none, right after the head), then abort the connection
    with a TCP reset. The upstream served the whole stream; only its end is lost."""

    events: int = 1

    def serve(self, conn: Connection, request: Request, server: FaultServer) -> bool:
        answer = server.forward(request)
        conn.send_stream_head(answer.status, answer.headers)
        for frame in sse_frames(answer.body)[:self.events]:
            conn.send_chunk(frame)
        server.stopping.wait(0.05)  # let the client read what was sent before the reset lands
        conn.reset()
        return False


@frozen
class Relayed:
    """What a ``StreamRelay`` saw: ``sent`` of the stream's ``total`` events went out; ``gone``:
    the client went away first, noticed ``at`` (``time.monotonic()``)."""

    sent: int
    total: int
    gone: bool
    at: float


@frozen
class StreamRelay:
    """Forward the request upstream and relay its streamed answer chunked, one event per chunk,
    ``interval`` seconds before each but the first, watching the client meanwhile: once it
    closes or resets the connection, stop at once. What happened is appended to
    ``FaultServer.relayed`` (a ``Relayed``)."""

    interval: float = 0.1

    def serve(self, conn: Connection, request: Request, server: FaultServer) -> bool:
        answer = server.forward(request)
        frames = sse_frames(answer.body)
        conn.send_stream_head(answer.status, answer.headers)
        for sent, frame in enumerate(frames):
            if sent and conn.client_gone(self.interval):
                server.note(Relayed(sent, len(frames), True, time.monotonic()))
                return False
            try:
                conn.send_chunk(frame)
            except OSError:
                server.note(Relayed(sent, len(frames), True, time.monotonic()))
                return False
        conn.send_chunk(b"")
        server.note(Relayed(len(frames), len(frames), False, time.monotonic()))
        return True


# --- the server -----------------------------------------------------------------------------------

Matcher = Callable[[Request], bool]


def route(pattern: str) -> Matcher:
    """Match requests whose ``"METHOD /path"`` contains the regular expression ``pattern``."""
    compiled = re.compile(pattern)
    return lambda request: compiled.search(request.line) is not None


def body_contains(text: str) -> Matcher:
    """Match requests whose body contains ``text`` (e.g. a prompt, JSON-encoded)."""
    needle = text.encode()
    return lambda request: needle in request.body


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


@define
class FaultServer:
    """The fault server (see the module docstring). ``upstream`` is the base URL to forward to
    (e.g. ``emulator.base_url``); its path (``/v1``) is kept in ``base_url``."""

    upstream: str | None = None
    default: Behaviour = field(factory=Forward)
    requests: list[Request] = field(factory=list)
    stopping: threading.Event = field(factory=threading.Event)
    _script: list[tuple[Matcher | None, Behaviour]] = field(factory=list)
    _lock: threading.Lock = field(factory=threading.Lock)
    _server: _Server | None = None
    _open: set[socket.socket] = field(factory=set)
    #: What each ``StreamRelay`` saw, in order.
    relayed: list[Relayed] = field(factory=list)

    def note(self, relayed: Relayed) -> None:
        """Record what a ``StreamRelay`` saw."""
        with self._lock:
            self.relayed.append(relayed)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the server first"
        prefix = urlsplit(self.upstream).path.rstrip("/") if self.upstream else ""
        return f"http://127.0.0.1:{self._server.server_address[1]}{prefix}"

    def push(self, *behaviours: Behaviour, when: Matcher | None = None) -> FaultServer:
        """Script ``behaviours``, served in order to the requests that ``when`` matches (any
        request when it is ``None``); each serves one request."""
        with self._lock:
            self._script.extend((when, behaviour) for behaviour in behaviours)
        return self

    @property
    def pending(self) -> int:
        """Scripted behaviours not used yet."""
        with self._lock:
            return len(self._script)

    def served(self, pattern: str = "") -> list[Request]:
        """The requests received so far whose ``"METHOD /path"`` matches ``pattern``."""
        matches = route(pattern)
        with self._lock:
            return [request for request in self.requests if matches(request)]

    def _next(self, request: Request) -> Behaviour:
        with self._lock:
            index = next((i for i, (when, _) in enumerate(self._script)
                          if when is None or when(request)), None)
            behaviour = self.default if index is None else self._script.pop(index)[1]
            self.requests.append(Request(request.method, request.path, request.headers,
                                         request.body, type(behaviour).__name__))
        return behaviour

    def forward(self, request: Request) -> Answer:
        """Upstream's answer to ``request`` (a 502 when there is no upstream)."""
        if self.upstream is None:
            return Answer(502, (), b'{"error": {"message": "no upstream", "type": "fault"}}')
        parts = urlsplit(self.upstream)
        upstream = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                              timeout=30)
        try:
            headers = {name: value for name, value in request.headers.items()
                       if name not in HOP_BY_HOP}
            upstream.request(request.method, request.path, body=request.body, headers=headers)
            reply = upstream.getresponse()
            return Answer(reply.status, tuple(reply.getheaders()), reply.read())
        finally:
            upstream.close()

    def start(self) -> FaultServer:
        fault_server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(IDLE_TIMEOUT)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with fault_server._lock:
                    fault_server._open.add(sock)
                conn = Connection(sock)
                try:
                    while not fault_server.stopping.is_set():
                        request = conn.read_request()
                        if request is None:
                            return
                        behaviour = fault_server._next(request)
                        if not behaviour.serve(conn, request, fault_server):
                            return
                except OSError:
                    return  # the client went away mid-answer
                finally:
                    with fault_server._lock:
                        fault_server._open.discard(sock)

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop accepting, end every stalled behaviour and close every open connection."""
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
