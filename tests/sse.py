"""Test helpers for streams: the recorded SSE bodies (tests/data/streams), their framing into
events by httpx2's SSE decoder (what the transport uses), and a loopback server that answers any
request with one recorded stream, for the vendors' SDKs to read as oracles."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
from hypothesis import strategies as st

from llmbackend.streams import ServerEvent

STREAMS = Path(__file__).parent / "data" / "streams"


def recorded(provider: str, name: str) -> bytes:
    """The recorded SSE body ``tests/data/streams/<provider>/<name>.sse``, byte for byte."""
    return (STREAMS / provider / f"{name}.sse").read_bytes()


def recorded_names(provider: str) -> list[str]:
    """The names of ``provider``'s recorded streams."""
    return sorted(path.stem for path in (STREAMS / provider).glob("*.sse"))


def events_of(chunks: Iterable[bytes]) -> list[ServerEvent]:
    """The events the bytes ``chunks`` (in order, split anywhere) frame into, by httpx2's SSE
    decoder, as ``ServerEvent`` values."""
    response = httpx2.Response(200, headers={"content-type": "text/event-stream"},
                               content=iter(list(chunks)),
                               request=httpx2.Request("POST", "http://127.0.0.1/"))
    return [ServerEvent(event=sse.event, data=sse.data)
            for sse in httpx2.EventSource(response)]


def split_at(body: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``body`` cut at the offsets ``cuts`` (any, unsorted, repeated: empty chunks too)."""
    points = [0, *sorted(min(max(cut, 0), len(body)) for cut in cuts), len(body)]
    return [body[start:end] for start, end in itertools.pairwise(points)]


def splits(body: bytes) -> st.SearchStrategy[list[bytes]]:
    """Any split of ``body`` into chunks (each cut anywhere, mid-line and mid-UTF-8 included)."""
    return st.lists(st.integers(0, len(body)), max_size=12).map(lambda cuts: split_at(body,
                                                                                     cuts))


@contextmanager
def capturing(body: bytes, content_type: str = "text/event-stream"
              ) -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    """A loopback HTTP server answering every request with ``body``; yields its base URL
    (``http://127.0.0.1:PORT``) and the list of what it was sent, ``(path, JSON body)`` per
    request. For the SDK oracles: point the vendor's client there."""
    seen: list[tuple[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            sent = self.rfile.read(length)
            seen.append((self.path, json.loads(sent) if sent else None))
            self.send_response(200)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self.do_POST()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serving(body: bytes, content_type: str = "text/event-stream") -> Iterator[str]:
    """``capturing``'s server, when what it was sent does not matter: yields its base URL."""
    with capturing(body, content_type) as (url, _):
        yield url
