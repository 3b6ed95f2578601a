"""The HTTP transport on its own, over loopback: bodies, retries, scrubbing."""

from __future__ import annotations

import pytest
from returns.result import Failure

import llmbackend
from llmbackend import HTTPStatusError, UnsupportedError
from llmbackend.retrying import RetryPolicy
from llmbackend.transport import HTTPTransport, redact
from llmbackend.types import Secret, WireRequest
from tests.emulator import API_KEY, OpenAIEmulator, error_body


def transport(emulator: OpenAIEmulator, **kwargs: object) -> HTTPTransport:
    return HTTPTransport(provider="openai", base_url=emulator.base_url + "/",
                         auth_headers={"Authorization": Secret(f"Bearer {API_KEY}")},
                         secrets=(Secret(API_KEY),), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [float("nan"), object(), {1, 2}])
def test_a_body_json_cannot_carry_fails_before_sending(emulator: OpenAIEmulator,
                                                       value: object) -> None:
    client = llmbackend.client("openai", "m", api_key=API_KEY, base_url=emulator.base_url)
    result = client.generate("hi", {"extra": {"metadata": value}})
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, UnsupportedError)
    assert error.parameter == "extra"
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
    secrets = (Secret("sk-one"), Secret("sk-two"), Secret(""))
    assert redact("a sk-one b sk-two c sk-one", secrets) == "a ******** b ******** c ********"
