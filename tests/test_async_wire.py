"""The async face's HTTP stack (``llmbackend.aio``, over aiohttp) keeps every promise the sync
face's httpx2 client does, on real loopback servers: no hidden connection cap (1,000 requests
really in flight at once), URLs sent as built, redirects not followed (and credentials never sent
elsewhere), llmbackend's User-Agent, repeated response headers joined, and a loop closed without
its shutdown leaves no session or connector to warn about."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import llmbackend
from llmbackend import HTTPStatusError
from llmbackend.transport import USER_AGENT
from tests.emulator import API_KEY, OpenAIEmulator, response_body
from tests.gemini_emulator import API_KEY as GEMINI_KEY
from tests.gemini_emulator import GeminiEmulator


class Counting:
    """An asyncio HTTP/1.1 server on 127.0.0.1 (in a thread) that answers every POST with an
    OpenAI response echoing the prompt after ``delay`` seconds, and counts how many requests
    were in flight at once (``peak``). Keep-alive; one connection per concurrent request."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight = 0
        self.peak = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(
            self._serve, "127.0.0.1", 0, backlog=4096))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = json.loads(await reader.readexactly(length))
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
                await asyncio.sleep(self.delay)
                self.in_flight -= 1
                answer = json.dumps(response_body("gpt-4o-mini", f"Echo: {body['input']}"))
                data = answer.encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def __enter__(self) -> Counting:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(stop()))
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.mark.parametrize("face", ["amap", "gather", "immediate batch"])
def test_a_thousand_requests_are_in_flight_at_once(face: str) -> None:
    prompts = [f"prompt {i}" for i in range(1000)]
    with Counting(delay=0.5) as server:
        client = llmbackend.client("openai", "gpt-4o-mini", api_key=API_KEY,
                                   base_url=server.base_url)

        async def main() -> list[str]:
            if face == "amap":
                return [r.unwrap().text async for r in client.amap(prompts, concurrency=1000)]
            if face == "gather":
                return list(await asyncio.gather(*map(client.aget_response, prompts)))
            batch = await client.asubmit_batch(prompts, batch_options={
                "mode": "immediate", "concurrency": 1000})
            return list(batch.results())

        texts = asyncio.run(main())
        client.close()
    assert texts == [f"Echo: {prompt}" for prompt in prompts]  # in input order
    assert server.peak == 1000  # no cap of the pool's own queued any of them


@contextmanager
def answering(status: int, headers: list[tuple[str, str]], body: bytes = b"{}"
              ) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A loopback server answering every request with ``status``, ``headers`` and ``body``;
    yields its base URL and the headers of each request it got (lower-case names)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append({name.lower(): value for name, value in self.headers.items()}
                        | {":path": self.path})
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_redirect_is_not_followed_and_the_key_goes_nowhere_else() -> None:
    with answering(200, [], json.dumps(response_body("m", "elsewhere")).encode()) as (
            other, elsewhere), answering(307, [("Location", other + "/v1/responses")]) as (
            url, here):
        client = llmbackend.client("openai", "gpt-4o-mini", api_key=API_KEY,
                                   base_url=url + "/v1", max_retries=0)
        sync = client.generate("hi")
        async_ = asyncio.run(client.agenerate("hi"))
        client.close()
    for outcome in (sync, async_):
        error = outcome.failure()
        assert isinstance(error, HTTPStatusError) and error.status == 307
    assert len(here) == 2 and elsewhere == []


def test_requests_carry_the_same_user_agent_and_repeated_headers_are_joined() -> None:
    limited = [("Content-Type", "application/json"), ("x-ratelimit-note", "one"),
               ("x-ratelimit-note", "two"), ("retry-after", "0")]
    body = json.dumps({"error": {"message": "slow down", "type": "rate_limit"}}).encode()
    with answering(429, limited, body) as (url, seen):
        client = llmbackend.client("openai", "gpt-4o-mini", api_key=API_KEY,
                                   base_url=url + "/v1", max_retries=0)
        sync = client.generate("hi").failure()
        async_ = asyncio.run(client.agenerate("hi")).failure()
        client.close()
    assert sync == async_  # the same error, built from the same headers
    assert [request["user-agent"] for request in seen] == [USER_AGENT, USER_AGENT]
    assert [request["authorization"] for request in seen] == [f"Bearer {API_KEY}"] * 2


def test_a_path_is_sent_as_built_on_both_faces(gemini_emulator: GeminiEmulator) -> None:
    # a model name the Gemini builder percent-encodes into the path: sent byte for byte
    client = llmbackend.client("gemini", "tuned x+y", api_key=GEMINI_KEY,
                               base_url=gemini_emulator.base_url, max_retries=0)
    client.generate("hi")
    asyncio.run(client.agenerate("hi"))
    client.close()
    sync_path, async_path = (request.path for request in gemini_emulator.requests[-2:])
    assert sync_path == async_path and "tuned%20x%2By" in sync_path


def test_a_loop_closed_without_its_shutdown_leaves_no_session_to_warn_about(
        emulator: OpenAIEmulator) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini", api_key=API_KEY,
                               base_url=emulator.base_url)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop = asyncio.new_event_loop()
        assert "Hello" in loop.run_until_complete(client.aget_response("Hello"))
        loop.close()  # no shutdown_asyncgens: its pool is never closed by the loop
        del loop
        # the next loop's first call drops the dead loop's pool
        assert "Again" in asyncio.run(client.aget_response("Again"))
        gc.collect()
    client.close()
    # aiohttp's own warnings about a session or connector never closed: none (the sockets of
    # a loop closed that way are the loop's, and go when collected, as with any loop)
    unclosed = [str(w.message) for w in caught if "Unclosed" in str(w.message)]
    assert unclosed == []


def test_the_environments_proxy_serves_both_faces(monkeypatch: pytest.MonkeyPatch) -> None:
    # HTTP_PROXY names a loopback "proxy" (it answers itself): both faces send it the request
    # for a host that does not resolve, in absolute form, with the key (the proxy is trusted)
    body = json.dumps(response_body("gpt-4o-mini", "via the proxy")).encode()
    with answering(200, [("Content-Type", "application/json")], body) as (proxy, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        client = llmbackend.client("openai", "gpt-4o-mini", api_key=API_KEY,
                                   base_url="http://api.example.invalid/v1", max_retries=0)
        assert client.get_response("hi") == "via the proxy"
        assert asyncio.run(client.aget_response("hi")) == "via the proxy"
        client.close()
    assert [request[":path"] for request in seen] == [
        "http://api.example.invalid/v1/responses"] * 2


def test_environment_proxy_follows_the_scheme_and_no_proxy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from llmbackend.aio import environment_proxy

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                 "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert environment_proxy("https://api.openai.com/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1,.internal")
    assert environment_proxy("https://api.openai.com/v1") == "http://proxy.local:3128"
    assert environment_proxy("http://api.openai.com/v1") is None  # no HTTP_PROXY
    assert environment_proxy("https://models.internal/v1") is None
    assert environment_proxy("http://127.0.0.1:8000/v1") is None
    monkeypatch.setenv("ALL_PROXY", "http://all.local:1080")
    assert environment_proxy("http://api.openai.com/v1") == "http://all.local:1080"
