"""The real facade, end to end over HTTP against the loopback OpenAI emulator."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import pytest
from pydantic import BaseModel
from returns.result import Failure, Success

import llmbackend
from llmbackend import (
    ConfigurationError,
    Generation,
    HTTPStatusError,
    LLMBackendWarning,
    MissingCredentialsError,
    RequestTimeoutError,
    ResponseParseError,
    SchemaValidationError,
    StructuredOutput,
    TransportError,
    UnsupportedError,
)
from tests.emulator import API_KEY, OpenAIEmulator, error_body, response_body


class Summary(BaseModel):
    title: str
    tags: list[str]


SEED_SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}, "tags": {
    "type": "array", "items": {"type": "string"}}}, "required": ["title"],
    "additionalProperties": False}


# --- happy paths ----------------------------------------------------------------------------------


def test_plain_text_through_the_environment(openai_env: OpenAIEmulator) -> None:
    answer = llmbackend.get_response(provider="openai", model="gpt-4o-mini",
                                     input="Write a haiku about oceans.",
                                     config={"temperature": 0.7, "max_tokens": 100})
    assert answer == "Echo: Write a haiku about oceans."
    (sent,) = openai_env.requests
    assert (sent.method, sent.path) == ("POST", "/v1/responses")
    assert sent.json() == {"model": "gpt-4o-mini", "input": "Write a haiku about oceans.",
                           "temperature": 0.7, "max_output_tokens": 100}
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["user-agent"].startswith("llmbackend/")


def test_system_becomes_instructions(openai_env: OpenAIEmulator) -> None:
    llmbackend.get_response("openai", "gpt-4o-mini", "hi",
                            llmbackend.GenerationConfig(extra={"system": "Be brief."}))
    assert openai_env.requests[0].json()["instructions"] == "Be brief."


def test_structured_output_with_pydantic_and_dict(openai_env: OpenAIEmulator) -> None:
    summary = llmbackend.get_response("openai", "gpt-4o-mini", "Summarize",
                                      schema=StructuredOutput(pydantic_model=Summary))
    assert summary == Summary(title="example", tags=["example"])
    data = llmbackend.get_response("openai", "gpt-4o-mini", "Summarize",
                                   schema=StructuredOutput(schema=SEED_SCHEMA))
    assert data == {"title": "example", "tags": ["example"]}
    pydantic_format = openai_env.requests[0].json()["text"]["format"]
    dict_format = openai_env.requests[1].json()["text"]["format"]
    assert (pydantic_format["name"], pydantic_format["strict"]) == ("Summary", True)
    assert (dict_format["strict"], dict_format["schema"]) == (False, SEED_SCHEMA)


def test_client_and_typed_face(emulator: OpenAIEmulator) -> None:
    with llmbackend.client("openai", "gpt-4o-mini", api_key=API_KEY,
                           base_url=emulator.base_url) as client:
        assert client.get_response("one") == "Echo: one"
        result = client.generate("two", {"top_p": 0.5}, StructuredOutput(pydantic_model=Summary))
        match result:
            case Success(generation):
                assert isinstance(generation, Generation)
                assert generation.parsed == Summary(title="example", tags=["example"])
                assert generation.text == '{"title":"example","tags":["example"]}'
                assert (generation.provider, generation.model) == ("openai", "gpt-4o-mini")
                assert generation.response_id == "resp_emulated"
                assert generation.usage.input_tokens == 11
                assert generation.raw["object"] == "response"
            case _:
                pytest.fail(f"expected a Success, got {result}")
    # The client's pooled connection served both calls.
    assert emulator.requests[0].peer == emulator.requests[1].peer


def test_top_level_calls_share_one_pooled_connection(openai_env: OpenAIEmulator) -> None:
    for n in range(3):
        llmbackend.get_response("openai", "gpt-4o-mini", f"call {n}")
    assert len({request.peer for request in openai_env.requests}) == 1


def test_openai_compatible_server_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    server = OpenAIEmulator(api_key=None).start()
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        assert llmbackend.get_response("openai", "local-model", "hi") == "Echo: hi"
        assert "authorization" not in server.requests[0].headers
    finally:
        server.stop()


# --- failures -------------------------------------------------------------------------------------


def test_429_then_200_honours_retry_after(openai_env: OpenAIEmulator) -> None:
    openai_env.reply(429, error_body("Rate limit reached", "requests", "rate_limit_exceeded"),
                     {"Retry-After": "0.3"})
    started = time.monotonic()
    assert llmbackend.get_response("openai", "gpt-4o-mini", "hi") == "Echo: hi"
    assert time.monotonic() - started >= 0.3
    assert len(openai_env.requests) == 2


def test_retries_exhausted_on_500(emulator: OpenAIEmulator) -> None:
    for _ in range(3):
        emulator.reply(500, error_body("The server had an error", "server_error", None))
    client = llmbackend.client("openai", "gpt-4o-mini", api_key=API_KEY,
                               base_url=emulator.base_url, max_retries=2)
    with pytest.raises(HTTPStatusError) as caught:
        client.get_response("hi")
    error = caught.value
    assert (error.status, error.attempts, error.retryable) == (500, 3, True)
    assert error.error_type == "server_error"
    assert "after 3 attempts" in str(error)
    assert len(emulator.requests) == 3


def test_401_is_not_retried(emulator: OpenAIEmulator) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini", api_key="sk-wrong-key",
                               base_url=emulator.base_url)
    result = client.generate("hi")
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.error_code, error.retryable) == (401, "invalid_api_key", False)
    assert len(emulator.requests) == 1


def test_timeout(emulator: OpenAIEmulator) -> None:
    emulator.reply(200, response_body("m", "late"), delay=1.5)
    emulator.reply(200, response_body("m", "late"), delay=1.5)
    client = llmbackend.client("openai", "gpt-4o-mini", api_key=API_KEY,
                               base_url=emulator.base_url, timeout=0.25, max_retries=1)
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError) as caught:
        client.get_response("hi")
    assert time.monotonic() - started < 1.5
    assert caught.value.attempts == 2
    assert caught.value.retryable


def test_malformed_json_is_a_parse_error(openai_env: OpenAIEmulator) -> None:
    openai_env.reply(200, b'{"id": "resp_1", "output": [')
    with pytest.raises(ResponseParseError):
        llmbackend.get_response("openai", "gpt-4o-mini", "hi")


def test_answer_not_matching_the_schema(openai_env: OpenAIEmulator) -> None:
    openai_env.reply(200, response_body("m", '{"title": 5}'))
    with pytest.raises(SchemaValidationError) as caught:
        llmbackend.get_response("openai", "gpt-4o-mini", "hi",
                                schema=StructuredOutput(pydantic_model=Summary))
    assert caught.value.path == "$.title"


def test_connection_refused_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = llmbackend.client("openai", "m", api_key=API_KEY,
                               base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(TransportError) as caught:
        client.get_response("hi")
    assert caught.value.retryable
    assert not isinstance(caught.value, RequestTimeoutError)


# --- programmer errors: raised at once, nothing sent ----------------------------------------------


def test_missing_api_key_says_what_to_do() -> None:
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY") as caught:
        llmbackend.client("openai", "gpt-4o-mini")
    assert caught.value.env_var == "OPENAI_API_KEY"
    with pytest.raises(MissingCredentialsError):
        llmbackend.get_response("openai", "gpt-4o-mini", "hi")


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda: llmbackend.client("opnai", "m"), ConfigurationError, "Did you mean 'openai'"),
    (lambda: llmbackend.client("transformers", "m", pipeline_kwarg={}), ConfigurationError,
     "Did you mean 'pipeline_kwargs'"),
    (lambda: llmbackend.client("mlx", "m", load_kwargs=[]), ConfigurationError,
     "must be dict"),
    (lambda: llmbackend.client("openai", "m", api_key="k", timeot=3), ConfigurationError,
     "Did you mean 'timeout'"),
    (lambda: llmbackend.client("openai", "m", api_key="k", timeout=0), ConfigurationError,
     "timeout"),
    (lambda: llmbackend.client("openai", "m", api_key="k", base_url="ftp://x"),
     ConfigurationError, "base_url"),
    (lambda: llmbackend.client("openai", "", api_key="k"), ConfigurationError, "model"),
])
def test_bad_arguments_raise_at_once(call: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_bad_config_or_input_sends_nothing(openai_env: OpenAIEmulator) -> None:
    with pytest.raises(ConfigurationError, match="temprature"):
        llmbackend.get_response("openai", "gpt-4o-mini", "hi", config={"temprature": 0.2})
    with pytest.raises(ConfigurationError, match="input"):
        llmbackend.get_response("openai", "gpt-4o-mini", ["hi"])  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="StructuredOutput"):
        llmbackend.get_response("openai", "gpt-4o-mini", "hi", schema=Summary)  # type: ignore[call-overload]
    with pytest.raises(UnsupportedError, match="drop_unsupported_params"):
        llmbackend.get_response("openai", "gpt-4o-mini", "hi", config={"seed": 7})
    assert openai_env.requests == []


def test_dropping_unsupported_parameters_warns_at_the_callers_line(
    openai_env: OpenAIEmulator,
) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini", drop_unsupported_params=True)
    with pytest.warns(LLMBackendWarning) as record:
        assert client.get_response("hi", {"seed": 7, "extra": {"stop": ["\n"]}}) == "Echo: hi"
    # Ours only: a socket another test left for the garbage collector may warn in this block.
    ours = [w for w in record if issubclass(w.category, LLMBackendWarning)]
    messages = sorted(str(w.message) for w in ours)
    assert len(messages) == 2
    assert "no 'seed' parameter" in messages[0]
    assert "no 'stop' parameter" in messages[1]
    assert {w.filename for w in ours} == {__file__}
    assert "seed" not in openai_env.requests[0].json()
    assert "stop" not in openai_env.requests[0].json()


# --- secrets --------------------------------------------------------------------------------------


def test_the_api_key_appears_in_no_repr_error_or_log(emulator: OpenAIEmulator,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-planted-secret-key-4242"
    caplog.set_level(logging.DEBUG, logger="llmbackend")
    # An API that quotes the key it was sent, then a reply slower than the timeout.
    emulator.reply(401, error_body(f"Incorrect API key provided: {secret}.",
                                   "invalid_request_error", "invalid_api_key"))
    emulator.reply(200, response_body("m", "x"), delay=1.0)
    client = llmbackend.client("openai", "gpt-4o-mini", api_key=secret,
                               base_url=emulator.base_url, max_retries=0, timeout=0.3)
    seen = [repr(client), str(client), repr(client._backend.settings),
            repr(client._backend.transport)]
    errors = [client.generate("hi").failure() for _ in range(2)]
    assert isinstance(errors[0], HTTPStatusError)
    assert "Incorrect API key provided: ********." in str(errors[0])
    assert isinstance(errors[1], RequestTimeoutError)
    seen += [text for error in errors for text in (str(error), repr(error), str(error.body
                                                   if isinstance(error, HTTPStatusError) else ""))]
    seen += [record.getMessage() for record in caplog.records]
    assert caplog.records, "the transport logs its requests at DEBUG"
    assert not [text for text in seen if secret in text]
