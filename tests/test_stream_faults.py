"""The fault suite for streams: every remote provider, sync and async, through its loopback
emulator (its ``stream_fault``) or the fault server in front of it (tests/faults.py). Before any
answer text a failure is retried like a whole call; after, the stream ends with a
``StreamError`` carrying exactly the text handed out, its ``error`` the cause; the timeout bounds
each wait for a byte, never the whole answer, and a stall never hangs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from attrs import frozen
from returns.result import Failure, Success

import llmbackend
from llmbackend import (
    HTTPStatusError,
    LLMError,
    ProviderError,
    RequestTimeoutError,
    StreamError,
    TransportError,
)
from tests.anthropic_emulator import API_KEY as ANTHROPIC_KEY
from tests.emulator import API_KEY as OPENAI_KEY
from tests.emulator import split_text
from tests.faults import FaultServer, Silence, StreamReset
from tests.gemini_emulator import API_KEY as GEMINI_KEY

PROMPT = "tell me about the river"
ANSWER = f"Echo: {PROMPT}"
#: The emulators' deltas (each splits the answer in three).
PIECES = split_text(ANSWER)
FIRST = PIECES[0]
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5",
          "gemini": "gemini-2.5-flash"}
KEYS = {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY, "gemini": GEMINI_KEY}
EMULATORS = {"openai": "emulator", "anthropic": "anthropic_emulator",
             "gemini": "gemini_emulator"}
#: Events each emulator's stream sends before its first text delta.
BEFORE_TEXT = {"openai": 4, "anthropic": 3, "gemini": 0}
PROVIDERS = list(MODELS)
MODES = ["sync", "async"]
#: The one bound on any test here: a hang fails instead of hanging.
BOUND = 30.0


@frozen
class Drained:
    """A stream read to its end: the deltas handed out, the error iteration raised (if any),
    its ``text``, its ``result()`` afterwards, and how long reading took."""

    deltas: list[str]
    raised: LLMError | None
    text: str
    result: Any
    seconds: float

    @property
    def joined(self) -> str:
        return "".join(self.deltas)

    def stream_error(self) -> StreamError:
        raised = self.raised
        assert isinstance(raised, StreamError), raised
        assert isinstance(self.result, Failure)
        same = self.result.failure() is raised
        assert same
        return raised


def drain(provider: str, mode: str, base_url: str, **options: Any) -> Drained:
    """Stream ``PROMPT`` from ``provider`` at ``base_url`` with the top-level function (sync)
    or its async twin, reading every delta, then the result."""
    model, key = MODELS[provider], KEYS[provider]
    if mode == "sync":
        started = time.monotonic()
        deltas: list[str] = []
        raised: LLMError | None = None
        with llmbackend.stream(provider, model, PROMPT, api_key=key, base_url=base_url,
                               **options) as stream:
            try:
                for delta in stream:
                    deltas.append(delta)
            except LLMError as error:
                raised = error
            result = stream.result()
        return Drained(deltas, raised, stream.text, result, time.monotonic() - started)

    async def main() -> Drained:
        started = time.monotonic()
        deltas: list[str] = []
        raised: LLMError | None = None
        async with llmbackend.astream(provider, model, PROMPT, api_key=key, base_url=base_url,
                                      **options) as stream:
            try:
                async for delta in stream:
                    deltas.append(delta)
            except LLMError as error:
                raised = error
            result = await stream.result()
        return Drained(deltas, raised, stream.text, result, time.monotonic() - started)

    async def bounded() -> Drained:
        return await asyncio.wait_for(main(), BOUND)

    return asyncio.run(bounded())


def emulator_of(request: pytest.FixtureRequest, provider: str) -> Any:
    return request.getfixturevalue(EMULATORS[provider])


def succeeded(drained: Drained) -> None:
    assert drained.raised is None
    assert isinstance(drained.result, Success), drained.result
    assert drained.joined == drained.text == drained.result.unwrap().text == ANSWER
    assert len(drained.deltas) > 1


parametrized = pytest.mark.parametrize(("provider", "mode"),
                                       [(p, m) for p in PROVIDERS for m in MODES])


# --- a reset connection ---------------------------------------------------------------------------


@parametrized
def test_a_reset_after_text_ends_with_the_text_so_far(provider: str, mode: str,
                                                      request: pytest.FixtureRequest) -> None:
    emulator = emulator_of(request, provider)
    with FaultServer(upstream=emulator.base_url) as faults:
        faults.push(StreamReset(events=BEFORE_TEXT[provider] + 1))  # the first delta, then RST
        drained = drain(provider, mode, faults.base_url, timeout=5)
        error = drained.stream_error()
        assert error.text == drained.joined == drained.text == FIRST
        assert isinstance(error.error, TransportError)
        assert not isinstance(error.error, RequestTimeoutError)
        assert error.provider == provider
        assert len(faults.requests) == 1  # text was handed out: never sent again


@parametrized
@pytest.mark.parametrize("where", ["after the head", "after the events before text"])
def test_a_reset_before_any_text_is_retried(provider: str, mode: str, where: str,
                                            request: pytest.FixtureRequest) -> None:
    emulator = emulator_of(request, provider)
    events = 0 if where == "after the head" else BEFORE_TEXT[provider]
    with FaultServer(upstream=emulator.base_url) as faults:
        faults.push(StreamReset(events=events))
        drained = drain(provider, mode, faults.base_url, timeout=5)
        succeeded(drained)
        assert [r.served_by for r in faults.requests] == ["StreamReset", "Forward"]


@parametrized
def test_a_reset_before_any_text_without_retries_is_the_transport_error(
        provider: str, mode: str, request: pytest.FixtureRequest) -> None:
    emulator = emulator_of(request, provider)
    with FaultServer(upstream=emulator.base_url) as faults:
        faults.push(StreamReset(events=0))
        drained = drain(provider, mode, faults.base_url, timeout=5, max_retries=0)
        assert isinstance(drained.raised, TransportError)  # the plain error: no text came
        assert not isinstance(drained.raised, StreamError)
        assert drained.deltas == [] and drained.text == ""
        assert len(faults.requests) == 1


# --- a stream without its end, an error event -----------------------------------------------------


@parametrized
def test_a_stream_cut_before_its_final_event_is_a_stream_error(
        provider: str, mode: str, request: pytest.FixtureRequest) -> None:
    emulator = emulator_of(request, provider)
    emulator.stream_fault(cut=True)
    drained = drain(provider, mode, emulator.base_url, timeout=5)
    error = drained.stream_error()
    assert error.text == drained.joined == drained.text
    assert error.text and ANSWER.startswith(error.text)
    # Gemini's last chunk carries text and the finish reason: the others lose only the end
    assert error.text == (ANSWER if provider != "gemini" else "".join(PIECES[:2]))
    assert isinstance(error.error, TransportError)
    assert len(emulator.requests) == 1


@parametrized
def test_an_error_event_mid_stream_is_a_stream_error_with_the_providers_error(
        provider: str, mode: str, request: pytest.FixtureRequest) -> None:
    emulator = emulator_of(request, provider)
    emulator.stream_fault(error=True)
    drained = drain(provider, mode, emulator.base_url, timeout=5)
    error = drained.stream_error()
    assert error.text == drained.joined == FIRST
    cause = error.error
    assert isinstance(cause, ProviderError) and cause.provider == provider
    expected = {"openai": "server_error", "anthropic": "overloaded_error",
                "gemini": "INTERNAL"}[provider]
    assert cause.error_type == expected
    assert len(emulator.requests) == 1


#: What an error event before any text is: OpenAI's has no status (not retried); Anthropic's
#: ``overloaded_error`` stands for 529 and Gemini's carries code 500 (both retried).
RETRIED_ERROR_FIRST = {"openai": False, "anthropic": True, "gemini": True}


@parametrized
def test_an_error_event_before_any_text_is_the_plain_error_retried_if_its_status_is(
        provider: str, mode: str, request: pytest.FixtureRequest) -> None:
    emulator = emulator_of(request, provider)
    emulator.stream_fault(error_first=True)
    drained = drain(provider, mode, emulator.base_url, timeout=5)
    if RETRIED_ERROR_FIRST[provider]:
        succeeded(drained)
        assert len(emulator.requests) == 2
        emulator.stream_fault(error_first=True)
        refused = drain(provider, mode, emulator.base_url, timeout=5, max_retries=0)
        assert isinstance(refused.raised, HTTPStatusError)
        assert refused.raised.status == {"anthropic": 529, "gemini": 500}[provider]
        assert len(emulator.requests) == 3
    else:
        assert isinstance(drained.raised, ProviderError)
        assert not isinstance(drained.raised, (StreamError, HTTPStatusError))
        assert drained.raised.error_type == "server_error"
        assert drained.deltas == [] and drained.text == ""
        assert isinstance(drained.result, Failure)
        assert len(emulator.requests) == 1


# --- time: a trickle, a stall ---------------------------------------------------------------------


@parametrized
def test_a_trickle_longer_than_the_timeout_completes(provider: str, mode: str,
                                                     request: pytest.FixtureRequest) -> None:
    emulator = emulator_of(request, provider)
    emulator.stream_fault(trickle=0.3)  # each event late, each gap shorter than the timeout
    drained = drain(provider, mode, emulator.base_url, timeout=0.6, max_retries=0)
    succeeded(drained)
    assert drained.seconds > 0.6  # the whole answer took longer than the timeout
    assert len(emulator.requests) == 1


@parametrized
def test_a_stall_after_the_first_delta_times_out_in_about_the_timeout(
        provider: str, mode: str, request: pytest.FixtureRequest) -> None:
    emulator = emulator_of(request, provider)
    emulator.stream_fault(stall=10.0)
    drained = drain(provider, mode, emulator.base_url, timeout=0.5)
    error = drained.stream_error()
    assert error.text == drained.joined == FIRST
    assert isinstance(error.error, RequestTimeoutError)
    assert "0.5 s" in error.error.message
    assert 0.45 <= drained.seconds < 0.5 + 2.0  # about the timeout: never the 10 s stall
    assert len(emulator.requests) == 1


@parametrized
def test_silence_before_any_text_times_out_and_is_retried(
        provider: str, mode: str, request: pytest.FixtureRequest) -> None:
    emulator = emulator_of(request, provider)
    with FaultServer(upstream=emulator.base_url) as faults:
        faults.push(Silence(10.0))  # the request read, nothing answered: not even a status
        drained = drain(provider, mode, faults.base_url, timeout=0.5)
        succeeded(drained)
        assert [r.served_by for r in faults.requests] == ["Silence", "Forward"]
        assert 0.45 <= drained.seconds < 0.5 + 3.0  # waited out one timeout, not the silence
    with FaultServer(upstream=emulator.base_url) as faults:
        faults.push(Silence(10.0))
        drained = drain(provider, mode, faults.base_url, timeout=0.5, max_retries=0)
        assert isinstance(drained.raised, RequestTimeoutError)  # the plain error: no text came
        assert drained.deltas == [] and len(faults.requests) == 1


# --- 429: the shared back-off ---------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_429_before_a_stream_holds_back_the_next_call_too(
        provider: str, request: pytest.FixtureRequest) -> None:
    """A 429 with Retry-After answered to a stream sets the client's shared back-off: the
    stream waits it out, and a whole call made right after waits for what is left of it."""
    emulator = emulator_of(request, provider)
    emulator.reply(429, {"error": {"message": "slow down", "type": "rate_limit_error"}},
                   headers={"Retry-After": "1"})
    client = llmbackend.client(provider, MODELS[provider], api_key=KEYS[provider],
                               base_url=emulator.base_url, timeout=5)
    with client:
        started = time.monotonic()
        with client.stream(PROMPT) as stream:
            assert stream.generation.text == ANSWER
        assert time.monotonic() - started >= 0.9
        assert len(emulator.requests) == 2
        emulator.reply(429, {"error": {"message": "slow down", "type": "rate_limit_error"}},
                       headers={"Retry-After": "1"})
        started = time.monotonic()
        with client.stream(PROMPT, max_retries=0) as stream:
            first = stream.result()
        assert isinstance(first, Failure) and isinstance(first.failure(), HTTPStatusError)
        assert first.failure().status == 429
        # the back-off the 429 set holds for the whole call that follows at once
        assert client.get_response(PROMPT) == ANSWER
        assert time.monotonic() - started >= 0.9
