"""The transport's side of streaming, on real loopback servers: a 2xx answer that is not an
event stream (a server that ignored the streaming switch) is read whole and parsed as the whole
call's; the decision to open a broken stream again (``stream_retry_delay``) is the whole call's
retry decision; an event over ``MAX_EVENT_BYTES`` breaks the stream with a typed error; the
recorded real streams read through the whole face, byte for byte as recorded."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from returns.result import Success

import llmbackend
from llmbackend import transport
from llmbackend.errors import (
    HTTPStatusError,
    ProviderError,
    RequestTimeoutError,
    StreamError,
    TransportError,
)
from llmbackend.retrying import RetryPolicy
from llmbackend.transport import HTTPTransport
from llmbackend.types import WireRequest
from tests.emulator import response_body
from tests.sse import capturing, recorded, serving

KEY = "sk-test-stream-0123456789"


def test_a_whole_json_answer_to_a_stream_request_is_one_delta_and_the_whole_calls_result(
) -> None:
    # a server that does not stream (it ignores "stream": true) answers the whole Response
    body = json.dumps(response_body("gpt-4o-mini", "Hello from a server that does not stream",
                                    response_id="resp_whole")).encode()
    with capturing(body, content_type="application/json") as (url, seen):
        client = llmbackend.client("openai", "gpt-4o-mini", api_key=KEY, base_url=url)
        with client.stream("Say hello") as stream:
            deltas = list(stream)
        whole = client.generate("Say hello").unwrap()
        client.close()
    assert deltas == ["Hello from a server that does not stream"]
    assert stream.generation == whole and whole.response_id == "resp_whole"
    assert seen[0][1]["stream"] is True and "stream" not in seen[1][1]


def test_an_error_status_is_the_whole_calls_error_raised_on_the_first_read() -> None:
    body = json.dumps({"error": {"message": "Invalid model", "type": "invalid_request_error",
                                 "code": "model_not_found", "param": "model"}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        client = llmbackend.client("openai", "gpt-4o-mini", api_key=KEY, base_url=url)
        stream = client.stream("Say hello")
        with pytest.raises(HTTPStatusError) as raised:
            next(stream)
        whole = client.generate("Say hello")
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    assert raised.value == whole.failure()
    assert raised.value.status == 404 and raised.value.error_code == "model_not_found"
    assert stream.result().failure() == raised.value and stream.finished
    assert KEY not in str(raised.value) and KEY not in repr(raised.value)


def _transport(max_retries: int = 2) -> HTTPTransport:
    return HTTPTransport(provider="openai", base_url="http://127.0.0.1:9", auth_headers={},
                         retry=RetryPolicy(max_retries=max_retries, jitter=0.0))


POST = WireRequest(method="POST", path="/v1/responses", json={})


def test_opening_a_broken_stream_again_is_the_whole_calls_retry_decision() -> None:
    http = _transport()
    overloaded = HTTPStatusError(message="overloaded", provider="anthropic", status=529)
    # a retryable status: the policy's back-off, attempt by attempt, until the retries run out
    assert http.stream_retry_delay(POST, overloaded, 1) == 0.5
    assert http.stream_retry_delay(POST, overloaded, 2) == 1.0
    assert http.stream_retry_delay(POST, overloaded, 3) is None
    # a reset or a stall: a connection error, retried for an idempotent request only
    reset = TransportError(message="reset", provider="openai")
    stalled = RequestTimeoutError(message="stalled", provider="openai")
    assert http.stream_retry_delay(POST, reset, 1) == 0.5
    assert http.stream_retry_delay(POST, stalled, 1) == 0.5
    once = WireRequest(method="POST", path="/v1/batches", json={}, idempotent=False)
    assert http.stream_retry_delay(once, reset, 1) is None
    # never: an error event without a retryable status, a 400, a broken stream with text
    assert http.stream_retry_delay(POST, ProviderError(message="x", provider="openai"), 1) \
        is None
    assert http.stream_retry_delay(
        POST, HTTPStatusError(message="bad", provider="openai", status=400), 1) is None
    assert http.stream_retry_delay(
        POST, StreamError(message="broke", provider="openai", text="Hi", error=reset), 1) \
        is None
    assert _transport(max_retries=0).stream_retry_delay(POST, overloaded, 1) is None


def test_a_429_in_a_stream_pauses_every_request_of_the_transport() -> None:
    http = _transport()
    assert http._paused_for() <= 0
    limited = HTTPStatusError(message="slow down", provider="gemini", status=429)
    assert http.stream_retry_delay(POST, limited, 1) == 0.5
    assert 0.3 < http._paused_for() <= 0.5  # the shared back-off, for the others too


def test_an_event_over_the_size_limit_breaks_the_stream_with_a_typed_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stream_body = recorded("anthropic", "text_basic")
    monkeypatch.setattr(transport, "MAX_EVENT_BYTES", 200)
    with serving(stream_body) as url:
        client = llmbackend.client("anthropic", "claude-sonnet-4-5", api_key=KEY,
                                   base_url=url, max_retries=0)
        outcome = client.stream("Hi").result()
        client.close()
    error = outcome.failure()
    # message_start is over 200 bytes: the stream broke before any text, so the plain error
    assert type(error) is TransportError and "byte limit" in error.message


@pytest.mark.parametrize(("provider", "model", "name"), [
    ("openai", "gpt-4o-mini", "text_basic"),
    ("anthropic", "claude-sonnet-4-5", "text_basic"),
    ("anthropic", "claude-sonnet-4-5", "thinking"),
    ("gemini", "gemini-2.5-flash", "text_multichunk"),
])
def test_recorded_streams_read_through_the_face_as_the_reader_reads_them(
        provider: str, model: str, name: str) -> None:
    from llmbackend.providers import open_stream_reader
    from llmbackend.types import GenerationRequest
    from tests.sse import events_of

    body = recorded(provider, name)
    reader = open_stream_reader(provider, GenerationRequest(model=model, input="Hi"))
    expected = [delta.unwrap() for delta in map(reader.feed, events_of([body]))]
    final = reader.finish()
    assert isinstance(final, Success)
    with serving(body) as url:
        client = llmbackend.client(provider, model, api_key=KEY, base_url=url)
        with client.stream("Hi") as stream:
            deltas = list(stream)
        client.close()
    assert deltas == [delta for delta in expected if delta]
    assert stream.generation == final.unwrap()
