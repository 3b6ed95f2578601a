"""The HTTP transport on its own, over loopback: bodies, retries, redaction, async pools."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time

import pytest

import llmbackend
from llmbackend import ConfigurationError, HTTPStatusError
from llmbackend.redact import MASK, MIN_SECRET_LENGTH, redact
from llmbackend.retrying import RetryPolicy
from llmbackend.transport import HTTPTransport
from llmbackend.types import Secret, StreamBody, WireRequest
from tests.emulator import API_KEY, OpenAIEmulator, error_body


def transport(emulator: OpenAIEmulator, **kwargs: object) -> HTTPTransport:
    return HTTPTransport(provider="openai", base_url=emulator.base_url + "/",
                         auth_headers={"Authorization": Secret(f"Bearer {API_KEY}")},
                         secrets=(Secret(API_KEY),), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [float("nan"), object(), {1, 2}])
def test_a_body_json_cannot_carry_fails_before_sending(emulator: OpenAIEmulator,
                                                       value: object) -> None:
    # Issue 14: a config JSON cannot carry is a configuration error, raised on every face
    # before anything is sent (it was a Failure per prompt in a fan-out).
    client = llmbackend.client("openai", "m", api_key=API_KEY, base_url=emulator.base_url)
    with pytest.raises(ConfigurationError, match="must be JSON data") as raised:
        client.generate("hi", {"extra": {"metadata": value}})
    assert raised.value.key == "extra"
    assert emulator.requests == []


def test_raw_content_and_headers_are_sent_as_given(emulator: OpenAIEmulator) -> None:
    sender = transport(emulator, headers={"X-Team": "search"})
    body = b'{"model": "m", "input": "raw"}'
    response = sender.send(WireRequest(method="POST", path="/responses", content=body,
                                       headers={"Content-Type": "application/json"})).unwrap()
    assert response.status == 200
    (sent,) = emulator.requests
    assert sent.body == body
    assert sent.headers["x-team"] == "search"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    sender.close()
    assert sender.send(WireRequest(method="POST", path="/responses", content=body)).unwrap()\
        .status == 200  # a closed transport reopens its pool


def test_provider_veto_is_honoured(emulator: OpenAIEmulator) -> None:
    emulator.reply(503, error_body("overloaded", "server_error", None),
                   {"x-should-retry": "false"})
    client = llmbackend.client("openai", "m", api_key=API_KEY, base_url=emulator.base_url)
    error = client.generate("hi").failure()
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.attempts) == (503, 1)
    assert len(emulator.requests) == 1


def test_retries_follow_the_policy(emulator: OpenAIEmulator) -> None:
    for status in (429, 502, 503):
        emulator.reply(status, error_body("busy", "server_error", None), {"retry-after-ms": "10"})
    sender = transport(emulator, retry=RetryPolicy(max_retries=3))
    response = sender.send(WireRequest(method="POST", path="/responses",
                                       json={"model": "m", "input": "x"})).unwrap()
    assert (response.status, response.attempts) == (200, 4)
    assert len(emulator.requests) == 4


def test_redact_replaces_every_secret() -> None:
    secrets = ("sk-one-long", "sk-two-long", "")
    assert redact("a sk-one-long b sk-two-long c sk-one-long", secrets) == (
        "a ******** b ******** c ********")


@pytest.mark.parametrize("shown", [
    "sk\\u002done/two\"x",  # one character JSON-escaped
    "sk-one\\/two\"x",  # the slash escaped
    "sk\\u002Done\\u002ftwo\\u0022x",  # upper-case hex, the quote escaped
    "sk\\\\u002done/two\\\\\"x",  # escaped twice: JSON quoted inside JSON
])
def test_redact_finds_every_json_spelling_of_a_secret(shown: str) -> None:
    assert redact(f"key: {shown}!", ['sk-one/two"x']) == f"key: {MASK}!"


def test_a_secret_too_short_to_tell_from_text_is_not_looked_for() -> None:
    short = "x" * (MIN_SECRET_LENGTH - 1)
    assert redact(f"text {short}", [short, "1", "token", "EMPTY"]) == f"text {short}"
    assert redact("text " + "x" * MIN_SECRET_LENGTH, ["x" * MIN_SECRET_LENGTH]) == f"text {MASK}"


def test_bodies_reach_the_parser_as_they_came(emulator: OpenAIEmulator) -> None:
    """Issue 14: the key was cut out of every body (and downloaded file) before parsing."""
    body = f'{{"text": "the key {API_KEY} and the word text"}}'.encode()
    sender = transport(emulator)
    emulator.reply(200, body)
    assert sender.send(WireRequest(method="GET", path="/x")).unwrap().body == body
    emulator.reply(200, body)
    sink = io.BytesIO()
    sender.download(WireRequest(method="GET", path="/files/f/content"), sink).unwrap()
    assert sink.getvalue() == body


@pytest.mark.parametrize(("idempotent", "attempts"), [(True, 3), (False, 1)])
def test_a_request_that_got_no_answer_is_retried_only_if_idempotent(
    emulator: OpenAIEmulator, idempotent: bool, attempts: int
) -> None:
    for _ in range(3):
        emulator.reply(200, b"{}", delay=0.5)
    sender = transport(emulator, timeout=0.1,
                       retry=RetryPolicy(max_retries=2, initial_delay=0.01))
    error = sender.send(WireRequest(method="POST", path="/batches", json={},
                                    idempotent=idempotent)).failure()
    assert isinstance(error, llmbackend.RequestTimeoutError)
    assert error.attempts == attempts
    assert len(emulator.requests) == attempts


def test_a_status_is_retried_even_when_not_idempotent(emulator: OpenAIEmulator) -> None:
    emulator.reply(503, error_body("busy", "server_error", None), {"retry-after-ms": "1"})
    sender = transport(emulator, retry=RetryPolicy(max_retries=1))
    response = sender.send(WireRequest(method="POST", path="/responses",
                                       json={"model": "m", "input": "x"}, idempotent=False))
    assert response.unwrap().attempts == 2  # a 503 means it was not done: safe to send again


def test_a_streamed_body_is_sent_again_whole_on_retry(emulator: OpenAIEmulator) -> None:
    emulator.reply(502, error_body("bad gateway", "server_error", None), {"retry-after-ms": "1"})
    chunks = [b'{"model": "m", ', b'"input": "streamed"}']
    body = StreamBody(length=sum(map(len, chunks)), chunks=lambda: iter(chunks))
    sender = transport(emulator, retry=RetryPolicy(max_retries=1))
    response = sender.send(WireRequest(method="POST", path="/responses", content=body,
                                       headers={"Content-Type": "application/json"}))
    assert response.unwrap().status == 200
    assert [r.body for r in emulator.requests] == [b"".join(chunks)] * 2
    assert emulator.requests[1].headers["content-length"] == str(body.length)


def test_download_streams_into_the_sink_after_a_retry(emulator: OpenAIEmulator) -> None:
    emulator.reply(500, error_body("oops", "server_error", None), {"retry-after-ms": "1"})
    emulator.reply(200, b"line one\nline two\n")
    sender = transport(emulator, retry=RetryPolicy(max_retries=1))
    sink = io.BytesIO(b"kept:")
    sink.seek(5)
    response = sender.download(WireRequest(method="GET", path="/files/f/content"), sink)
    assert (response.unwrap().status, response.unwrap().body) == (200, b"")
    assert sink.getvalue() == b"kept:line one\nline two\n"
    emulator.reply(404, error_body("No such File object: f", "invalid_request_error", None))
    missing = sender.download(WireRequest(method="GET", path="/files/f/content"), io.BytesIO())
    assert missing.unwrap().status == 404
    assert b"No such File" in missing.unwrap().body  # error bodies come back for the parser


def test_a_429_backs_off_every_request_of_the_transport(
    emulator: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.reply(429, error_body("rate limited", "rate_limit_error", None),
                   {"retry-after-ms": "400"})
    sender = transport(emulator, retry=RetryPolicy(max_retries=1))
    slept: list[float] = []
    clock = [1000.0]  # a fake monotonic clock that sleeping advances

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    request = WireRequest(method="POST", path="/responses", json={"model": "m", "input": "x"})
    assert sender.send(request).unwrap().status == 200  # retried once, after its own wait
    assert slept == [0.4]
    # Another request (another thread of the same fan-out) made within the back-off waits too.
    emulator.reply(429, error_body("rate limited", "rate_limit_error", None),
                   {"retry-after-ms": "400"})
    assert sender.send(request).unwrap().status == 200
    clock[0] -= 0.3  # as if a second thread asked 0.1 s after that 429
    assert sender.send(request).unwrap().status == 200
    assert slept[1:] == [0.4, pytest.approx(0.3)]
    # A 503 asks for a retry of that request only: nothing else waits.
    emulator.reply(503, error_body("busy", "server_error", None), {"retry-after-ms": "1"})
    monkeypatch.setattr(sender._pool, "pause_until", 0.0)
    assert sender.send(request).unwrap().status == 200
    assert sender._paused_for() <= 0


@pytest.mark.parametrize(("headers", "pause"), [
    ({"retry-after-ms": "400"}, 0.4),   # what the provider asked
    ({}, RetryPolicy().initial_delay),  # else the first back-off step
])
def test_a_429_that_is_not_retried_still_pauses_the_others(
    emulator: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str],
    pause: float,
) -> None:
    # With no retries left for this request (max_retries=0), the key is still rate limited:
    # the other requests of the fan-out must wait too, not hammer the provider.
    emulator.reply(429, error_body("rate limited", "rate_limit_error", None), headers)
    sender = transport(emulator, retry=RetryPolicy(max_retries=0))
    clock = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    request = WireRequest(method="POST", path="/responses", json={"model": "m", "input": "x"})
    assert sender.send(request).unwrap().status == 429  # not retried itself
    assert slept == []
    assert sender.send(request).unwrap().status == 200  # the next one went through...
    assert slept == [pytest.approx(pause)]  # ...after waiting the back-off out
    # A view with its own options shares the pause (one key, one limit).
    emulator.reply(429, error_body("rate limited", "rate_limit_error", None), headers)
    assert sender.with_options(timeout=5.0).send(request).unwrap().status == 429
    assert sender._paused_for() == pytest.approx(pause)


def test_a_429_error_carries_the_wait_the_provider_asked_for(emulator: OpenAIEmulator) -> None:
    emulator.reply(429, error_body("rate limited", "rate_limit_error", None),
                   {"retry-after": "7"})
    client = llmbackend.client("openai", "m", api_key=API_KEY, base_url=emulator.base_url,
                               max_retries=0)
    error = client.generate("x").failure()
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.retry_after) == (429, 7.0)
    emulator.reply(500, error_body("oops", "server_error", None))
    error = client.generate("x").failure()
    assert isinstance(error, HTTPStatusError)
    assert error.retry_after is None  # nothing asked
    client.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_loop_of_asyncio_run_keeps_no_pools_open(emulator: OpenAIEmulator) -> None:
    """Issue 14: each ``asyncio.run`` left its loop's pool open (fds grew 8 -> 27 in 200)."""
    def call() -> str:
        return asyncio.run(llmbackend.aget_response(
            "openai", "gpt-4o-mini", "Hello", api_key=API_KEY, base_url=emulator.base_url))

    assert "Hello" in call()
    before = _open_fds()
    for _ in range(100):
        call()
    assert _open_fds() <= before + 2
    client = llmbackend.client("openai", "gpt-4o-mini", api_key=API_KEY,
                               base_url=emulator.base_url)
    asyncio.run(client.aget_response("Hello"))
    before = _open_fds()
    for _ in range(50):
        asyncio.run(client.aget_response("Hello"))
    assert _open_fds() <= before + 2
    client.close()


def test_one_client_on_two_live_event_loops(emulator: OpenAIEmulator) -> None:
    """Each loop has its own pool: a loop kept running in a thread is not disturbed by calls
    from other loops, and its pool is closed when it shuts down."""
    client = llmbackend.client("openai", "gpt-4o-mini", api_key=API_KEY,
                               base_url=emulator.base_url)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        for _ in range(3):
            there = asyncio.run_coroutine_threadsafe(client.aget_response("There"), loop)
            assert "Here" in asyncio.run(client.aget_response("Here"))
            assert "There" in there.result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    assert "Again" in asyncio.run(client.aget_response("Again"))
    client.close()
