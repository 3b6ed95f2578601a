"""Reliability: nothing is lost or misassigned, whatever the network or the provider does.

The real facade (``llmbackend.client(...)``) talks to the loopback emulators through the
fault-injecting server of ``tests.faults``, which breaks exactly the exchanges a test names:
bursts of retryable statuses, resets in the middle of a body, bodies slower than the timeout,
bodies that are not what the API promises. Batch result files are damaged in every way a file can
be (cut short, doubled, foreign or unreadable lines, empty) by planting their bytes in the
emulators. Every scenario must end in a typed failure or a successful retry, quickly, with every
input holding exactly its own outcome. Last, every ``parse_*`` function of the pure modules is fed
arbitrary bytes and JSON: none may raise.
"""

from __future__ import annotations

import collections.abc
import faulthandler
import importlib
import inspect
import json
import logging
import pkgutil
import random
import re
import sys
import time
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from email.utils import formatdate
from typing import Any

import pytest
from attrs import field, frozen
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

import llmbackend
import llmbackend.providers
from llmbackend import (
    BatchItemsError,
    HTTPStatusError,
    LLMError,
    RequestTimeoutError,
    ResponseParseError,
    TransportError,
)
from llmbackend.providers import anthropic as anthropic_wire
from llmbackend.providers import gemini as gemini_wire
from llmbackend.providers import gemini_batch as gemini_batch_wire
from llmbackend.providers import openai as openai_wire
from llmbackend.providers import openai_batch as openai_batch_wire
from llmbackend.types import GenerationRequest, StructuredOutput, WireResponse
from tests.anthropic_emulator import API_KEY as ANTHROPIC_KEY
from tests.anthropic_emulator import AnthropicEmulator, MessageBatchPlan
from tests.anthropic_emulator import error_body as anthropic_error
from tests.emulator import API_KEY as OPENAI_KEY
from tests.emulator import BatchPlan, OpenAIEmulator, StoredFile, response_body
from tests.emulator import error_body as openai_error
from tests.faults import (
    FaultServer,
    Forward,
    Reply,
    Reset,
    ShortBody,
    Silence,
    Trickle,
    body_contains,
    route,
)
from tests.gemini_emulator import API_KEY as GEMINI_KEY
from tests.gemini_emulator import GeminiBatchPlan, GeminiEmulator
from tests.gemini_emulator import error_body as gemini_error
from tests.strategies import http_statuses, json_scalars, json_values

#: A test still running after this many seconds is hung: the run stops, printing every stack.
HANG_LIMIT = 45.0
#: What one test may take, setup and teardown included.
TEST_BUDGET = 8.0
#: The client timeout where a test waits for one on purpose.
SHORT = 0.3
#: The transport's backoff before retry ``n`` is at most 0.5 * 2 ** (n - 1) s (no Retry-After).
BACKOFF = 0.5
#: Upper bounds prove "quickly, never a hang", not speed: generous for a loaded CI machine.
SLACK = 2.5


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    """Never a hang: a stuck test ends the run with every thread's stack; a slow one fails."""
    faulthandler.dump_traceback_later(HANG_LIMIT, exit=True, file=sys.__stderr__)
    started = time.monotonic()
    yield
    faulthandler.cancel_dump_traceback_later()
    elapsed = time.monotonic() - started
    assert elapsed < TEST_BUDGET, f"the test took {elapsed:.1f} s"


# --- the rig: a provider's emulator behind the fault server ---------------------------------------


@frozen
class Target:
    """One provider as the tests drive it."""

    provider: str
    model: str
    api_key: str
    emulator_fixture: str
    #: The provider's error body for a status, and the ``error_type`` llmbackend reads from it.
    error: Callable[[int], bytes]
    error_type: str
    #: A 200 JSON object that is not the API's answer object.
    wrong_object: Mapping[str, Any]


TARGETS = {
    "openai": Target(
        "openai", "gpt-4o-mini", OPENAI_KEY, "emulator",
        lambda status: openai_error("The server is busy.", "server_error", None),
        "server_error", {"object": "chat.completion", "choices": []}),
    "anthropic": Target(
        "anthropic", "claude-sonnet-4-5", ANTHROPIC_KEY, "anthropic_emulator",
        lambda status: anthropic_error("Overloaded", "overloaded_error"),
        "overloaded_error", {"type": "message", "role": "assistant"}),
    "gemini": Target(
        "gemini", "gemini-2.5-flash", GEMINI_KEY, "gemini_emulator",
        lambda status: gemini_error(status, "UNAVAILABLE", "Try again later."),
        "UNAVAILABLE", {"usageMetadata": {"promptTokenCount": 1}}),
}


@frozen
class Rig:
    """A provider's emulator (``upstream``) behind a fault server, and the clients made on it."""

    target: Target
    faults: FaultServer
    upstream: Any
    clients: list[llmbackend.Client] = field(factory=list)

    def client(self, *, max_retries: int = 2, timeout: float = 2.0) -> llmbackend.Client:
        """A client of the real facade, pointed at the fault server."""
        client = llmbackend.client(self.target.provider, self.target.model,
                                   base_url=self.faults.base_url, api_key=self.target.api_key,
                                   max_retries=max_retries, timeout=timeout)
        self.clients.append(client)
        return client

    def status(self, status: int, **headers: str) -> Reply:
        """The provider's error answer with ``status``, asking for a 1 ms pause by default."""
        return Reply(status, self.target.error(status), {"retry-after-ms": "1", **headers})

    def served(self) -> list[str]:
        return [request.served_by for request in self.faults.requests]


@pytest.fixture
def provider() -> str:
    return "openai"


@pytest.fixture
def rig(provider: str, request: pytest.FixtureRequest) -> Iterator[Rig]:
    target = TARGETS[provider]
    upstream = request.getfixturevalue(target.emulator_fixture)
    with FaultServer(upstream=upstream.base_url) as faults:
        rig = Rig(target, faults, upstream)
        yield rig
        for client in rig.clients:
            client.close()


def echo(prompt: str) -> str:
    """What every emulator answers to a plain prompt."""
    return f"Echo: {prompt}"


def elapsed(since: float) -> float:
    return time.monotonic() - since


def failure_of(result: Result[Any, LLMError]) -> LLMError:
    assert isinstance(result, Failure), f"expected a failure, got {result}"
    error = result.failure()
    assert isinstance(error, LLMError)
    return error


def describe(outcome: Result[Any, LLMError]) -> str:
    """An outcome in a word: the answer's text, or the error's type and status (or code)."""
    if isinstance(outcome, Success):
        return str(outcome.unwrap().text)
    error = outcome.failure()
    detail = error.status if isinstance(error, HTTPStatusError) else getattr(
        error, "error_code", None)
    return f"{type(error).__name__}:{detail}" if detail else type(error).__name__


# === 1. statuses: retried, or not, as the policy says =============================================

RETRYABLE = [("openai", s) for s in (408, 409, 429, 500, 502, 503, 504)] + [
    ("anthropic", s) for s in (429, 500, 503, 529)] + [("gemini", s) for s in (429, 500, 503)]


@pytest.mark.parametrize(("provider", "status"), RETRYABLE)
def test_a_burst_of_retryable_statuses_then_success(rig: Rig, status: int) -> None:
    rig.faults.push(rig.status(status), rig.status(status))
    client = rig.client(max_retries=2)
    started = time.monotonic()
    assert client.get_response("hello") == echo("hello")
    assert rig.served() == ["Reply", "Reply", "Forward"]
    assert elapsed(started) < BACKOFF * 2, "retry-after-ms: 1 is honoured, not the backoff"


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_mixed_burst_uses_up_every_retry_and_still_succeeds(rig: Rig) -> None:
    rig.faults.push(rig.status(429), rig.status(500), rig.status(503),
                    Reply(502, b"<html>bad gateway</html>", {"retry-after": "0"}))
    assert rig.client(max_retries=4).get_response("hello") == echo("hello")
    assert len(rig.faults.requests) == 5


@pytest.mark.parametrize(("provider", "status", "max_retries"), [
    ("openai", 429, 0), ("openai", 500, 1), ("openai", 503, 3), ("anthropic", 529, 2),
    ("anthropic", 429, 1), ("gemini", 503, 2), ("gemini", 500, 0)])
def test_more_failures_than_retries_end_in_a_retryable_http_error(
    rig: Rig, status: int, max_retries: int
) -> None:
    rig.faults.push(*[rig.status(status)] * (max_retries + 2))
    error = failure_of(rig.client(max_retries=max_retries).generate("hello"))
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.attempts, error.retryable) == (status, max_retries + 1, True)
    assert error.error_type == rig.target.error_type
    assert len(rig.faults.requests) == max_retries + 1
    assert rig.faults.pending == 1, "no request after the last retry"
    with pytest.raises(HTTPStatusError) as raised:  # the seed face raises the same error
        rig.client(max_retries=0).get_response("hello")
    assert raised.value.status == status


@pytest.mark.parametrize(("provider", "status"), [
    ("openai", 400), ("openai", 401), ("openai", 403), ("openai", 404), ("openai", 422),
    ("anthropic", 400), ("anthropic", 413), ("gemini", 400), ("gemini", 404)])
def test_a_client_error_is_never_retried(rig: Rig, status: int) -> None:
    # Even when the server asks for a retry: the rule is "never another 4xx".
    rig.faults.push(rig.status(status, **{"x-should-retry": "true"}), rig.status(status))
    error = failure_of(rig.client(max_retries=3).generate("hello"))
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.attempts, error.retryable) == (status, 1, False)
    assert len(rig.faults.requests) == 1


@pytest.mark.parametrize(("provider", "status"), [
    ("openai", 503), ("openai", 429), ("anthropic", 529), ("gemini", 500)])
def test_x_should_retry_false_stops_retries(rig: Rig, status: int) -> None:
    rig.faults.push(rig.status(status, **{"x-should-retry": "false"}))
    error = failure_of(rig.client(max_retries=3).generate("hello"))
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.attempts) == (status, 1)
    assert error.retryable  # retryable in kind; the provider vetoed it this time
    assert len(rig.faults.requests) == 1


@pytest.mark.parametrize(("headers", "at_least"), [
    ({"retry-after-ms": "300"}, 0.3),
    ({"retry-after": "0.3"}, 0.3),
    ({"retry-after": "0"}, 0.0),
    ({"retry-after": formatdate(time.time() - 60, usegmt=True)}, 0.0),  # a date in the past
    ({"retry-after-ms": "5", "retry-after": "30"}, 0.0),  # the milliseconds win
])
def test_retry_after_is_honoured(rig: Rig, headers: dict[str, str], at_least: float) -> None:
    rig.faults.push(Reply(429, rig.target.error(429), headers))
    started = time.monotonic()
    assert rig.client(max_retries=1).get_response("hello") == echo("hello")
    assert at_least <= elapsed(started) < at_least + SLACK
    assert len(rig.faults.requests) == 2


def test_an_unreadable_retry_after_falls_back_to_the_backoff(rig: Rig) -> None:
    rig.faults.push(Reply(503, rig.target.error(503), {"retry-after": "soon",
                                                       "retry-after-ms": "NaN"}))
    started = time.monotonic()
    assert rig.client(max_retries=1).get_response("hello") == echo("hello")
    assert BACKOFF * 0.75 <= elapsed(started) < BACKOFF + SLACK


# === 2. connections: resets, short bodies, silence ================================================


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("fault", [Reset(), Reset(send_head=False), ShortBody()],
                         ids=["reset-mid-body", "reset-before-the-answer", "short-body"])
def test_a_broken_answer_is_retried_then_succeeds(rig: Rig, fault: Any) -> None:
    rig.faults.push(fault)
    assert rig.client(max_retries=1).get_response("hello") == echo("hello")
    assert rig.served() == [type(fault).__name__, "Forward"]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("fault", [Reset(), Reset(send_head=False), ShortBody()],
                         ids=["reset-mid-body", "reset-before-the-answer", "short-body"])
def test_when_every_answer_breaks_the_retries_end_in_a_transport_error(
    rig: Rig, fault: Any
) -> None:
    rig.faults.push(*[fault] * 3)
    started = time.monotonic()
    error = failure_of(rig.client(max_retries=1).generate("hello"))
    assert type(error) is TransportError
    assert (error.attempts, error.retryable) == (2, True)
    assert rig.target.api_key not in str(error)
    assert len(rig.faults.requests) == 2
    assert elapsed(started) < BACKOFF + SLACK


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_silence_times_out_after_the_retries_quickly(rig: Rig) -> None:
    rig.faults.push(Silence(), Silence(), Silence())
    started = time.monotonic()
    error = failure_of(rig.client(max_retries=1, timeout=SHORT).generate("hello"))
    assert isinstance(error, RequestTimeoutError)
    assert (error.attempts, error.retryable) == (2, True)
    assert len(rig.faults.requests) == 2
    assert 2 * SHORT <= elapsed(started) < 2 * SHORT + BACKOFF + SLACK


@pytest.mark.parametrize("fault", [
    Silence(), ShortBody(then="hang"),
    Reply(200, response_body("gpt-4o-mini", "late"), delay=3 * SHORT)],
    ids=["silence", "short-body-then-silence", "late-answer"])
def test_a_stalled_answer_times_out_then_the_retry_succeeds(rig: Rig, fault: Any) -> None:
    rig.faults.push(fault)
    started = time.monotonic()
    assert rig.client(max_retries=1, timeout=SHORT).get_response("hello") == echo("hello")
    assert elapsed(started) < SHORT + BACKOFF + SLACK


def test_a_body_slower_than_the_timeout_times_out(rig: Rig) -> None:
    # Regression (fixed in 5b10dee): the timeout was per socket read, so a trickle never ended.
    rig.faults.push(Trickle(pieces=8, interval=SHORT / 2))  # the body takes 4 x the timeout
    started = time.monotonic()
    result = rig.client(max_retries=0, timeout=SHORT).generate("hello")
    assert elapsed(started) < SHORT + SLACK, "no complete response within the timeout"
    assert isinstance(failure_of(result), RequestTimeoutError)


def test_a_connection_the_server_closed_while_idle_is_not_a_failure(rig: Rig) -> None:
    client = rig.client(max_retries=0)
    rig.faults.push(ShortBody(extra=0))  # a whole answer, then the server closes the connection
    assert client.get_response("one") == echo("one")
    time.sleep(0.05)
    assert client.get_response("two") == echo("two")


def test_an_undecodable_body_is_a_parse_error_and_not_retried(rig: Rig) -> None:
    # Regression (fixed in 5b10dee): httpx2.DecodingError escaped generate() untyped.
    rig.faults.push(Reply(200, b"this is not gzip", {"Content-Encoding": "gzip"}))
    error = failure_of(rig.client(max_retries=2).generate("hello"))
    assert isinstance(error, ResponseParseError)
    assert len(rig.faults.requests) == 1


# === 3. answers that are not what the API promises ================================================

NOT_AN_ANSWER = [b"", b"{", b'{"output": [', b"not json at all", b"[]", b"null", b'"text"',
                 b"\xff\xfe\x00garbage", b"<html><body>Bad Gateway</body></html>"]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("body", [*NOT_AN_ANSWER, None],
                         ids=[*(repr(b)[:24] for b in NOT_AN_ANSWER), "another-object"])
def test_a_2xx_that_is_not_an_answer_is_a_parse_error_and_not_retried(
    rig: Rig, body: bytes | None
) -> None:
    rig.faults.push(Reply(200, rig.target.wrong_object if body is None else body))
    error = failure_of(rig.client(max_retries=3).generate("hello"))
    assert isinstance(error, ResponseParseError)
    assert error.body is not None
    assert len(rig.faults.requests) == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_retryable_status_with_a_body_that_is_not_json_is_still_typed(rig: Rig) -> None:
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    rig.faults.push(*[Reply(502, page, {"retry-after-ms": "1"})] * 2)
    error = failure_of(rig.client(max_retries=1).generate("hello"))
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.attempts, error.error_type) == (502, 2, None)
    assert "502 Bad Gateway" in str(error)


# === 4. immediate batches: one prompt's trouble is its own ========================================

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_an_immediate_batch_keeps_every_other_prompt_and_the_input_order(rig: Rig) -> None:
    def on(word: str) -> Callable[[Any], bool]:
        return body_contains(json.dumps(word))

    rig.faults.push(rig.status(500), rig.status(500), when=on("bravo"))
    rig.faults.push(Silence(), Silence(), when=on("delta"))
    rig.faults.push(rig.status(503), when=on("echo"))
    rig.faults.push(Reset(), when=on("golf"))
    rig.faults.push(Reply(200, b'{"broken'), when=on("hotel"))
    rig.faults.push(Forward(delay=0.2), when=on("alpha"))  # the first answer comes last
    client = rig.client(max_retries=1, timeout=SHORT + 0.3)
    batch = client.submit_batch(WORDS, batch_options={"mode": "immediate", "concurrency": 4})
    outcomes = batch.outcomes()
    assert [describe(o) for o in outcomes] == [
        echo("alpha"), "HTTPStatusError:500", echo("charlie"), "RequestTimeoutError",
        echo("echo"), echo("foxtrot"), echo("golf"), "ResponseParseError"]
    assert failure_of(outcomes[1]).attempts == 2  # type: ignore[attr-defined]
    assert batch.counts == llmbackend.BatchCounts(total=8, completed=5, failed=3)
    with pytest.raises(BatchItemsError) as raised:
        batch.results()
    assert [(f.index, f.custom_id) for f in raised.value.failures] == [
        (1, "request-1"), (3, "request-3"), (7, "request-7")]
    assert raised.value.succeeded == 5
    assert rig.faults.pending == 0


# === 4b. the async face and the fan-outs: the same faults, on the event loop ======================
# ``HTTPTransport.asend`` is its own loop (asyncio sleeps, an exact deadline), and ``map`` /
# ``amap`` are their own windows: each meets the faults above again.

def arun(coroutine: Any) -> Any:
    import asyncio

    return asyncio.run(coroutine)


async def agenerate_on(client: llmbackend.Client, prompt: str) -> Result[Any, LLMError]:
    try:
        return await client.agenerate(prompt)
    finally:
        await client.aclose()


@pytest.mark.parametrize(("provider", "status"), [
    ("openai", 429), ("openai", 500), ("openai", 502), ("openai", 503), ("anthropic", 529),
    ("anthropic", 429), ("gemini", 503)])
def test_async_a_burst_of_retryable_statuses_then_success(rig: Rig, status: int) -> None:
    rig.faults.push(rig.status(status), rig.status(status))
    result = arun(agenerate_on(rig.client(max_retries=2), "hello"))
    assert result.unwrap().text == echo("hello")
    assert rig.served() == ["Reply", "Reply", "Forward"]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("fault", [Reset(), Reset(send_head=False), ShortBody()],
                         ids=["reset-mid-body", "reset-before-the-answer", "short-body"])
def test_async_a_broken_answer_is_retried_or_ends_typed(rig: Rig, fault: Any) -> None:
    rig.faults.push(fault)
    assert arun(agenerate_on(rig.client(max_retries=1), "hello")).unwrap().text == echo("hello")
    rig.faults.push(*[fault] * 2)
    error = failure_of(arun(agenerate_on(rig.client(max_retries=1), "hello")))
    assert type(error) is TransportError
    assert error.attempts == 2
    assert rig.target.api_key not in str(error)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("fault", [Silence(), Trickle(pieces=8, interval=SHORT / 2)],
                         ids=["silence", "trickle"])
def test_async_a_stalled_or_slow_answer_times_out(rig: Rig, fault: Any) -> None:
    rig.faults.push(fault)
    started = time.monotonic()
    error = failure_of(arun(agenerate_on(rig.client(max_retries=0, timeout=SHORT), "hello")))
    assert isinstance(error, RequestTimeoutError)
    assert error.attempts == 1
    assert elapsed(started) < SHORT + SLACK


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("body", [b"", b"{", b"not json at all", b"null"])
def test_async_a_2xx_that_is_not_an_answer_is_a_parse_error(rig: Rig, body: bytes) -> None:
    rig.faults.push(Reply(200, body))
    error = failure_of(arun(agenerate_on(rig.client(max_retries=3), "hello")))
    assert isinstance(error, ResponseParseError)
    assert len(rig.faults.requests) == 1


def plant_mixed_faults(rig: Rig) -> list[str]:
    """The faults of the immediate-batch scenario above, one per prompt; what each must end as."""
    def on(word: str) -> Callable[[Any], bool]:
        return body_contains(json.dumps(word))

    rig.faults.push(rig.status(500), rig.status(500), when=on("bravo"))
    rig.faults.push(Silence(), Silence(), when=on("delta"))
    rig.faults.push(rig.status(429), when=on("echo"))
    rig.faults.push(Reset(), when=on("golf"))
    rig.faults.push(Reply(200, b'{"broken'), when=on("hotel"))
    rig.faults.push(Forward(delay=0.2), when=on("alpha"))  # the first answer comes last
    return [echo("alpha"), "HTTPStatusError:500", echo("charlie"), "RequestTimeoutError",
            echo("echo"), echo("foxtrot"), echo("golf"), "ResponseParseError"]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_map_keeps_every_other_prompt_and_the_input_order(rig: Rig) -> None:
    expected = plant_mixed_faults(rig)
    client = rig.client(max_retries=1, timeout=SHORT + 0.3)
    assert [describe(o) for o in client.map(iter(WORDS), concurrency=3)] == expected
    assert rig.faults.pending == 0


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize("face", ["amap", "asubmit_batch"])
def test_the_async_fan_outs_keep_every_other_prompt_and_the_input_order(
    rig: Rig, face: str
) -> None:
    expected = plant_mixed_faults(rig)
    client = rig.client(max_retries=1, timeout=SHORT + 0.3)

    async def main() -> list[Result[Any, LLMError]]:
        try:
            if face == "amap":
                return [outcome async for outcome in client.amap(WORDS, concurrency=3)]
            batch = await client.asubmit_batch(
                WORDS, batch_options={"mode": "immediate", "concurrency": 3})
            return await batch.aoutcomes()
        finally:
            await client.aclose()

    assert [describe(o) for o in arun(main())] == expected
    assert rig.faults.pending == 0


# === 5. OpenAI batch files: planted damage ========================================================

PROMPTS = [f"Title for article {i}" for i in range(6)]
IDS = [f"item-{i}" for i in range(6)]


@pytest.fixture
def oai(emulator: OpenAIEmulator) -> Iterator[llmbackend.Client]:
    emulator.batch_plan = BatchPlan(finish_after=0, shuffle_seed=11)  # ended at create
    with llmbackend.client("openai", "gpt-4o-mini", base_url=emulator.base_url,
                           api_key=OPENAI_KEY, max_retries=1, timeout=2.0) as client:
        yield client


def openai_files(emulator: OpenAIEmulator, batch: llmbackend.Batch[Any]
                 ) -> tuple[StoredFile, StoredFile | None]:
    """The output file and the error file (if any) of an ended batch, to plant bytes in."""
    obj = emulator.batches[batch.id].api_object
    error_id = obj["error_file_id"]
    return (emulator.files[obj["output_file_id"]],
            emulator.files[error_id] if error_id else None)


def by_id(content: bytes) -> dict[str, bytes]:
    """The lines of a result file by custom id (each line with its newline, if it had one)."""
    return {json.loads(line)["custom_id"]: line for line in content.splitlines(keepends=True)
            if line.strip()}


def cut(line: bytes) -> bytes:
    return line.rstrip(b"\r\n")[:len(line) // 2]


def expect(fates: Mapping[str, str], prompts: Sequence[str] = PROMPTS,
           ids: Sequence[str] = IDS) -> list[str]:
    """What ``describe`` must give per input: its answer unless ``fates`` names its failure."""
    return [fates.get(cid, echo(prompt)) for cid, prompt in zip(ids, prompts, strict=True)]


def submit_openai(client: llmbackend.Client) -> llmbackend.Batch[Any]:
    return client.submit_batch(PROMPTS, batch_options={"custom_ids": IDS})


def test_a_truncated_output_file_loses_only_the_cut_line(
    oai: llmbackend.Client, emulator: OpenAIEmulator
) -> None:
    batch = submit_openai(oai)
    output, _ = openai_files(emulator, batch)
    lines = output.content.splitlines(keepends=True)
    victim = json.loads(lines[-1])["custom_id"]  # the file is shuffled: any item can be last
    output.content = b"".join(lines[:-1]) + cut(lines[-1])
    outcomes = batch.outcomes()
    assert [describe(o) for o in outcomes] == expect({victim: "ProviderError:missing_result"})
    assert "1 result line(s) could not be read" in str(failure_of(outcomes[IDS.index(victim)]))
    with pytest.raises(BatchItemsError) as raised:
        batch.results()
    assert [f.custom_id for f in raised.value.failures] == [victim]
    assert raised.value.succeeded == len(PROMPTS) - 1


def test_duplicate_result_lines_use_neither(
    oai: llmbackend.Client, emulator: OpenAIEmulator
) -> None:
    batch = submit_openai(oai)
    output, _ = openai_files(emulator, batch)
    lines = by_id(output.content)
    forged = lines["item-2"].replace(b"Echo: Title for article 2", b"Echo: forged")
    output.content += forged + lines["item-4"]
    outcomes = batch.outcomes()
    assert [describe(o) for o in outcomes] == expect({
        "item-2": "ProviderError:duplicate_result", "item-4": "ProviderError:duplicate_result"})


def test_the_same_id_in_the_output_and_the_error_file_is_a_duplicate(
    oai: llmbackend.Client, emulator: OpenAIEmulator
) -> None:
    emulator.batch_plan = BatchPlan(finish_after=0, item_errors={
        "item-1": (500, {"message": "boom", "type": "server_error"})})
    batch = submit_openai(oai)
    output, errors = openai_files(emulator, batch)
    assert errors is not None
    errors.content += by_id(output.content)["item-3"]
    assert [describe(o) for o in batch.outcomes()] == expect({
        "item-1": "HTTPStatusError:500", "item-3": "ProviderError:duplicate_result"})


def test_lines_with_unknown_custom_ids_are_never_used(
    oai: llmbackend.Client, emulator: OpenAIEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    batch = submit_openai(oai)
    output, _ = openai_files(emulator, batch)
    line = by_id(output.content)["item-0"]
    strangers = [b'"item-6"', b'"ITEM-0"', b'"item-0 "', b'""', b'"request-0"']
    output.content = b"".join(line.replace(b'"item-0"', s) for s in strangers) + output.content
    with caplog.at_level(logging.WARNING, logger="llmbackend"):
        outcomes = batch.outcomes()
    assert [describe(o) for o in outcomes] == expect({})
    assert len(outcomes) == len(PROMPTS)
    assert "5 result line(s) name a custom id that is not among the inputs" in caplog.text


@pytest.mark.parametrize("content", [b"", b"\n\n", b"  \r\n\t\n"], ids=["empty", "newlines",
                                                                         "whitespace"])
def test_an_empty_output_file_fails_every_item_as_missing(
    oai: llmbackend.Client, emulator: OpenAIEmulator, content: bytes
) -> None:
    batch = submit_openai(oai)
    output, _ = openai_files(emulator, batch)
    output.content = content
    outcomes = batch.outcomes()
    assert [describe(o) for o in outcomes] == ["ProviderError:missing_result"] * len(PROMPTS)
    with pytest.raises(BatchItemsError) as raised:
        batch.results()
    assert (len(raised.value.failures), raised.value.succeeded) == (len(PROMPTS), 0)


def test_unparseable_lines_in_the_error_file_hurt_no_item(
    oai: llmbackend.Client, emulator: OpenAIEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.batch_plan = BatchPlan(finish_after=0, item_errors={
        "item-5": (429, {"message": "slow down", "type": "rate_limit_error",
                         "code": "rate_limit_exceeded"})})
    batch = submit_openai(oai)
    _, errors = openai_files(emulator, batch)
    assert errors is not None
    garbage = [b"not json\n", b"{\n", b"[]\n", b"null\n", b'{"custom_id": 7}\n',
               b'{"no_custom_id": true}\n', b'{"custom_id": "item-1", "resp\n', b"\xff\xfe\n"]
    errors.content = b"".join(garbage[:4]) + errors.content + b"".join(garbage[4:])
    with caplog.at_level(logging.WARNING, logger="llmbackend"):
        outcomes = batch.outcomes()
    assert [describe(o) for o in outcomes] == expect({"item-5": "HTTPStatusError:429"})
    error = failure_of(outcomes[5])
    assert isinstance(error, HTTPStatusError)
    assert (error.error_type, error.error_code) == ("rate_limit_error", "rate_limit_exceeded")
    assert "8 line(s) could not be read" in caplog.text


def test_a_malformed_second_line_for_an_answered_id_is_a_duplicate(
    oai: llmbackend.Client, emulator: OpenAIEmulator
) -> None:
    batch = submit_openai(oai)
    output, _ = openai_files(emulator, batch)
    output.content += b'{"custom_id": "item-3", "response": "nope"}\n'
    assert [describe(o) for o in batch.outcomes()] == expect(
        {"item-3": "ProviderError:duplicate_result"})


def test_crlf_blank_lines_and_no_final_newline_are_read(
    oai: llmbackend.Client, emulator: OpenAIEmulator
) -> None:
    batch = submit_openai(oai)
    output, _ = openai_files(emulator, batch)
    output.content = b"\r\n\r\n" + output.content.replace(b"\n", b"\r\n\n").rstrip()
    assert batch.results() == [echo(p) for p in PROMPTS]


def test_one_line_with_an_odd_string_body_fails_only_its_item(
    oai: llmbackend.Client, emulator: OpenAIEmulator
) -> None:
    # Regression (fixed in 5b10dee): UnicodeEncodeError escaped outcomes(), losing every item.
    batch = submit_openai(oai)
    output, _ = openai_files(emulator, batch)
    lines = by_id(output.content)
    lines["item-1"] = b'{"custom_id": "item-1", "response": {"status_code": 500, "body": ' \
        b'"upstream said \\ud800"}, "error": null}\n'
    output.content = b"".join(lines.values())
    assert [describe(o) for o in batch.outcomes()] == expect({"item-1": "HTTPStatusError:500"})


# --- the property: any damage, and every input still gets exactly its own outcome -----------------


@frozen
class Damage:
    """How to damage a result file: how many copies of each item's line it keeps, foreign and
    unreadable lines to add, the order, and whether the last line is cut in half."""

    copies: tuple[int, ...]
    strangers: tuple[str, ...]
    garbage: tuple[bytes, ...]
    seed: int
    cut_last: bool
    crlf: bool


def damages(count: int) -> st.SearchStrategy[Damage]:
    return st.builds(
        Damage,
        copies=st.lists(st.sampled_from([0, 1, 1, 1, 2, 3]), min_size=count, max_size=count)
        .map(tuple),
        strangers=st.lists(st.sampled_from(["intruder", "item-99", "ITEM-0", "item-0 ", ""]),
                           max_size=3).map(tuple),
        garbage=st.lists(st.sampled_from([b"not json", b"{", b"[]", b"null",
                                          b'{"custom_id": 7}', b'{"no_id": true}']),
                         max_size=3).map(tuple),
        seed=st.integers(0, 2**16), cut_last=st.booleans(), crlf=st.booleans())


def damaged(lines: Mapping[str, bytes], damage: Damage, separator: bytes
            ) -> tuple[bytes, dict[str, str]]:
    """The damaged file's bytes, and the fate each custom id must meet in it."""
    pieces: list[tuple[str | None, bytes]] = []
    for (custom_id, line), copies in zip(lines.items(), damage.copies, strict=True):
        pieces += [(custom_id, line.rstrip(b"\r\n"))] * copies
    template = next(iter(lines.values())).rstrip(b"\r\n")
    first = json.dumps(next(iter(lines))).encode()
    pieces += [(None, template.replace(first, json.dumps(s).encode(), 1))
               for s in damage.strangers]
    pieces += [(None, junk) for junk in damage.garbage]
    random.Random(damage.seed).shuffle(pieces)
    if damage.cut_last and pieces:
        pieces[-1] = (None, pieces[-1][1][:len(pieces[-1][1]) // 2])
    readable = collections.Counter(owner for owner, _ in pieces if owner is not None)
    fates = {custom_id: "ProviderError:missing_result" if readable[custom_id] == 0 else
             "ProviderError:duplicate_result" for custom_id in lines
             if readable[custom_id] != 1}
    sep = separator.replace(b"\n", b"\r\n") if damage.crlf else separator
    return sep.join(line for _, line in pieces), fates


def test_any_damage_to_an_openai_output_file_leaves_every_item_its_own_outcome(
    oai: llmbackend.Client, emulator: OpenAIEmulator
) -> None:
    batch = submit_openai(oai)
    output, _ = openai_files(emulator, batch)
    lines = {cid: by_id(output.content)[cid] for cid in IDS}

    @settings(max_examples=100)
    @given(damages(len(IDS)))
    def check(damage: Damage) -> None:
        output.content, fates = damaged(lines, damage, b"\n")
        assert [describe(o) for o in batch.outcomes()] == expect(fates)

    check()


# --- downloads and the batch lifecycle through the fault server -----------------------------------

CONTENT_LINE = r"^GET /v1/files/[^/]+/content$"
CONTENT = route(CONTENT_LINE)


@pytest.fixture
def oai_faulty(rig: Rig) -> llmbackend.Client:
    rig.upstream.batch_plan = BatchPlan(finish_after=0, shuffle_seed=5)
    return rig.client(max_retries=1, timeout=1.0)


@pytest.mark.parametrize("fault", [Reset(), Reset(fraction=0.95), ShortBody(), Silence()],
                         ids=["reset-mid-body", "reset-near-the-end", "short-body", "silence"])
def test_a_broken_download_is_retried_and_nothing_is_read_twice(
    rig: Rig, oai_faulty: llmbackend.Client, fault: Any
) -> None:
    batch = submit_openai(oai_faulty)
    rig.faults.push(fault, when=CONTENT)
    assert batch.results() == [echo(p) for p in PROMPTS]
    assert [r.served_by for r in rig.faults.served(CONTENT_LINE)] == [type(fault).__name__,
                                                                       "Forward"]


@pytest.mark.parametrize(("faults", "error_type"), [
    ([Reply(503, openai_error("busy", "server_error", None),
            {"retry-after-ms": "1"})] * 2, HTTPStatusError),
    ([Reset()] * 2, TransportError),
    ([Silence()] * 2, RequestTimeoutError)], ids=["503", "reset", "silence"])
def test_a_download_that_never_succeeds_raises_instead_of_returning_partial_results(
    rig: Rig, oai_faulty: llmbackend.Client, faults: list[Any], error_type: type[LLMError]
) -> None:
    batch = submit_openai(oai_faulty)
    rig.faults.push(*faults, when=CONTENT)
    with pytest.raises(error_type) as raised:
        batch.outcomes()
    assert raised.value.attempts == 2  # type: ignore[attr-defined]
    assert batch.results() == [echo(p) for p in PROMPTS]  # the next read, once it works


def test_a_status_check_rides_out_a_burst_of_503s(
    rig: Rig, oai_faulty: llmbackend.Client
) -> None:
    batch = submit_openai(oai_faulty)
    rig.faults.push(rig.status(503), when=route(r"^GET /v1/batches/batch_"))
    assert batch.status() == "completed"
    rig.faults.push(Reply(200, b"{not json"), when=route(r"^GET /v1/batches/batch_"))
    with pytest.raises(ResponseParseError):
        batch.status()
    assert batch.results() == [echo(p) for p in PROMPTS]


def test_a_lost_create_answer_never_makes_a_second_batch(
    rig: Rig, oai_faulty: llmbackend.Client
) -> None:
    # The create reaches the emulator, which makes the batch; its answer is lost on the way back.
    rig.faults.push(Reset(send_head=False), when=route(r"^POST /v1/batches$"))
    batch = submit_openai(oai_faulty)
    assert list(rig.upstream.batches) == [batch.id]
    assert len(rig.faults.served(r"^POST /v1/batches$")) == 1
    assert batch.results() == [echo(p) for p in PROMPTS]


def test_an_upload_cut_off_is_sent_again_whole(rig: Rig, oai_faulty: llmbackend.Client) -> None:
    rig.faults.push(Reset(body=b"", send_head=False), when=route(r"^POST /v1/files$"))
    batch = submit_openai(oai_faulty)
    first, second = rig.faults.served(r"^POST /v1/files$")
    assert first.body == second.body
    (uploaded,) = [f for f in rig.upstream.files.values() if f.purpose == "batch"]
    assert [line["custom_id"] for line in uploaded.lines()] == IDS
    assert batch.results() == [echo(p) for p in PROMPTS]


# === 6. Anthropic native batches: planted results =================================================

NATIVE = {"mode": "native"}


@pytest.fixture
def claude(anthropic_emulator: AnthropicEmulator) -> Iterator[llmbackend.Client]:
    anthropic_emulator.batch_plan = MessageBatchPlan(finish_after=0, shuffle_seed=3)
    with llmbackend.client("anthropic", "claude-sonnet-4-5", base_url=anthropic_emulator.base_url,
                           api_key=ANTHROPIC_KEY, max_retries=1, timeout=2.0) as client:
        yield client


def submit_anthropic(claude: llmbackend.Client, anthropic_emulator: AnthropicEmulator
                     ) -> tuple[llmbackend.Batch[Any], Any]:
    batch = claude.submit_batch(PROMPTS, batch_options={**NATIVE, "custom_ids": IDS})
    stored = anthropic_emulator.batches[batch.id]
    assert stored.ended and stored.results
    return batch, stored


def anthropic_lines(results: bytes) -> dict[str, bytes]:
    return {json.loads(line)["custom_id"]: line for line in results.split(b"\n")}


@pytest.mark.parametrize("damage", [
    "truncated_last_line", "duplicate_ids", "unknown_ids", "empty_file", "garbage_lines"])
def test_damaged_anthropic_results_fail_only_the_damaged_items(
    claude: llmbackend.Client, anthropic_emulator: AnthropicEmulator, damage: str
) -> None:
    batch, stored = submit_anthropic(claude, anthropic_emulator)
    lines = anthropic_lines(stored.results)
    order = list(lines)
    fates: dict[str, str] = {}
    if damage == "truncated_last_line":
        stored.results = b"\n".join(lines[cid] for cid in order[:-1]) + b"\n" + cut(
            lines[order[-1]])
        fates = {order[-1]: "ProviderError:missing_result"}
    elif damage == "duplicate_ids":
        stored.results += b"\n" + lines["item-0"] + b"\n" + lines["item-5"].replace(
            b"Title for article 5", b"forged")
        fates = {"item-0": "ProviderError:duplicate_result",
                 "item-5": "ProviderError:duplicate_result"}
    elif damage == "unknown_ids":
        stranger = lines["item-1"].replace(b'"item-1"', b'"item-1-extra"')
        stored.results = stranger + b"\n" + stored.results + b"\n" + stranger.replace(
            b"item-1-extra", b"request-1")
    elif damage == "empty_file":
        stored.results = b""
        fates = dict.fromkeys(IDS, "ProviderError:missing_result")
    else:
        stored.results = b"not json\n{}\n[1]\n" + stored.results + b'\n{"custom_id": 3}\n{"cust'
    outcomes = batch.outcomes()
    assert [describe(o) for o in outcomes] == expect(fates)
    assert len(outcomes) == len(PROMPTS)


def test_any_damage_to_anthropic_results_leaves_every_item_its_own_outcome(
    claude: llmbackend.Client, anthropic_emulator: AnthropicEmulator
) -> None:
    batch, stored = submit_anthropic(claude, anthropic_emulator)
    lines = {cid: anthropic_lines(stored.results)[cid] for cid in IDS}

    @settings(max_examples=100)
    @given(damages(len(IDS)))
    def check(damage: Damage) -> None:
        stored.results, fates = damaged(lines, damage, b"\n")
        assert [describe(o) for o in batch.outcomes()] == expect(fates)

    check()


@pytest.mark.parametrize("provider", ["anthropic"])
def test_a_lost_anthropic_create_answer_is_not_sent_again(rig: Rig) -> None:
    rig.upstream.batch_plan = MessageBatchPlan(finish_after=0)
    rig.faults.push(Reset(send_head=False), when=route(r"^POST /v1/messages/batches$"))
    with pytest.raises(TransportError, match="may have been created anyway"):
        rig.client(max_retries=3).submit_batch(PROMPTS, batch_options=NATIVE)
    assert len(rig.upstream.batches) == 1  # made once, and never a second (billed) time
    assert len(rig.faults.served(r"^POST /v1/messages/batches$")) == 1


@pytest.mark.parametrize("provider", ["anthropic"])
def test_a_broken_anthropic_results_download_is_retried(rig: Rig) -> None:
    rig.upstream.batch_plan = MessageBatchPlan(finish_after=0, shuffle_seed=1)
    batch = rig.client(max_retries=1).submit_batch(
        PROMPTS, batch_options={**NATIVE, "custom_ids": IDS})
    rig.faults.push(Reset(), when=route(r"/results$"))
    assert batch.results() == [echo(p) for p in PROMPTS]


# === 7. Gemini inline responses: keys missing, unknown, doubled ===================================


@pytest.fixture
def flash(gemini_emulator: GeminiEmulator) -> Iterator[llmbackend.Client]:
    gemini_emulator.batch_plan = GeminiBatchPlan(finish_after=0, shuffle_seed=9)
    with llmbackend.client("gemini", "gemini-2.5-flash", base_url=gemini_emulator.base_url,
                           api_key=GEMINI_KEY, max_retries=1, timeout=2.0) as client:
        yield client


def submit_gemini(flash: llmbackend.Client, gemini_emulator: GeminiEmulator
                  ) -> tuple[llmbackend.Batch[Any], Any, dict[str, dict[str, Any]]]:
    batch = flash.submit_batch(PROMPTS, batch_options={"custom_ids": IDS})
    stored = gemini_emulator.batches[batch.id.removeprefix("batches/")]
    assert stored.ended and stored.mode == "inline"
    entries = {entry["metadata"]["key"]: entry for entry in stored.responses}
    return batch, stored, entries


def plant_inline(stored: Any, entries: list[Any]) -> None:
    """Make the ended batch show ``entries`` as its inline responses from now on."""
    wrapped = {"inlinedResponses": {"inlinedResponses": entries}}
    stored.api_object["response"].update(wrapped)
    stored.api_object["metadata"]["output"] = wrapped


def keyed(entry: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    copy = {name: value for name, value in entry.items() if name != "metadata"}
    if key is not None:
        copy["metadata"] = {"key": key}
    return copy


@pytest.mark.parametrize("damage", ["keys_missing", "unknown_keys", "duplicate_keys", "empty",
                                    "not_objects"])
def test_damaged_gemini_inline_responses_fail_only_the_damaged_items(
    flash: llmbackend.Client, gemini_emulator: GeminiEmulator, damage: str
) -> None:
    batch, stored, entries = submit_gemini(flash, gemini_emulator)
    planted: list[Any] = list(entries.values())
    fates: dict[str, str] = {}
    if damage == "keys_missing":  # never matched by position, even when all are there in order
        planted = [keyed(entries[cid], None if cid in ("item-0", "item-4") else cid)
                   for cid in IDS]
        fates = dict.fromkeys(["item-0", "item-4"], "ProviderError:missing_result")
    elif damage == "unknown_keys":
        planted += [keyed(entries["item-2"], "item-22"), keyed(entries["item-2"], "ITEM-2"),
                    {**keyed(entries["item-2"], None), "metadata": {"key": 2}}]
    elif damage == "duplicate_keys":
        planted.append(keyed(entries["item-3"], "item-3"))
        fates = {"item-3": "ProviderError:duplicate_result"}
    elif damage == "empty":
        planted = []
        fates = dict.fromkeys(IDS, "ProviderError:missing_result")
    else:
        planted = ["item-0", None, 7, [entries["item-1"]], *planted]
    plant_inline(stored, planted)
    assert [describe(o) for o in batch.outcomes()] == expect(fates)


def test_any_damage_to_gemini_inline_responses_leaves_every_item_its_own_outcome(
    flash: llmbackend.Client, gemini_emulator: GeminiEmulator
) -> None:
    batch, stored, entries = submit_gemini(flash, gemini_emulator)

    @settings(max_examples=100)
    @given(st.lists(st.sampled_from([0, 1, 1, 1, 2]), min_size=len(IDS), max_size=len(IDS)),
           st.lists(st.sampled_from(IDS), max_size=3),
           st.lists(st.sampled_from(["item-9", "Item-1", " item-1", ""]), max_size=3),
           st.randoms(use_true_random=False))
    def check(copies: list[int], unkeyed: list[str], strangers: list[str],
              shuffler: random.Random) -> None:
        planted = [keyed(entries[cid], cid) for cid, n in zip(IDS, copies, strict=True)
                   for _ in range(n)]
        planted += [keyed(entries[cid], None) for cid in unkeyed]
        planted += [keyed(entries["item-0"], key) for key in strangers]
        shuffler.shuffle(planted)
        plant_inline(stored, planted)
        fates = {cid: "ProviderError:missing_result" if n == 0 else
                 "ProviderError:duplicate_result" for cid, n in zip(IDS, copies, strict=True)
                 if n != 1}
        assert [describe(o) for o in batch.outcomes()] == expect(fates)

    check()


def test_a_resumed_gemini_batch_reads_back_any_key(
    flash: llmbackend.Client, gemini_emulator: GeminiEmulator
) -> None:
    # Regression (fixed in 5b10dee): batching.natural_key called int("²") and raised ValueError.
    keys = ["k1²", "k2"]
    batch = flash.submit_batch(PROMPTS[:2], batch_options={"custom_ids": keys})
    resumed = flash.get_batch(batch.id)
    assert sorted(resumed.custom_ids) == sorted(keys)
    assert sorted(describe(o) for o in resumed.outcomes()) == sorted(echo(p)
                                                                     for p in PROMPTS[:2])


# === 8. every parser, fed anything ================================================================

#: The modules whose ``parse_*`` functions read what arrives from outside: every provider module,
#: and the shared ones that read batch options and retry headers.
PARSER_MODULES = [
    *(f"llmbackend.providers.{info.name}"
      for info in pkgutil.iter_modules(llmbackend.providers.__path__)),
    "llmbackend.providers", "llmbackend.batching", "llmbackend.retrying"]


def parsers() -> list[Callable[..., Any]]:
    found = []
    for name in PARSER_MODULES:
        module = importlib.import_module(name)
        found += [function for function_name, function in inspect.getmembers(
            module, inspect.isfunction)
            if function_name.startswith("parse_") and function.__module__ == module.__name__]
    return found


PARSERS = parsers()


def parser_id(function: Callable[..., Any]) -> str:
    return f"{function.__module__.removeprefix('llmbackend.')}.{function.__name__}"


#: Words the parsers look for, so that random JSON reaches their deeper branches.
KEYS = ["output", "status", "error", "custom_id", "response", "status_code", "body", "id",
        "content", "stop_reason", "candidates", "key", "metadata", "name", "state",
        "batchStats", "requestCount", "result", "type", "message", "usage", "request_counts",
        "output_file_id", "errors", "data", "line", "processing_status", "inlinedResponses",
        "responsesFile", "promptFeedback", "finishReason", "parts", "text", "usageMetadata",
        "promptTokenCount", "input_tokens", "code", "param", "details", "reason", "file",
        "incomplete_details", "refusal", "input_tokens_details", "done", "model", "mode",
        "custom_ids", "concurrency", "display_name", "retry-after", "retry-after-ms"]
WORDS_SEEN = ["succeeded", "errored", "canceled", "expired", "ended", "completed", "failed",
              "incomplete", "in_progress", "message", "output_text", "refusal", "tool_use",
              "text", "MAX_TOKENS", "SAFETY", "STOP", "BATCH_STATE_SUCCEEDED",
              "JOB_STATE_FAILED", "max_output_tokens", "content_filter", "pause_turn",
              "max_tokens", "function_call", "0", "-1", "1e999", "NaN", "²", "\ud800", "\x00",
              "Wed, 21 Oct 2015 07:28:00 GMT", "native", "immediate"]
odd_text = st.text(st.characters(categories=["Cs", "No", "Nd", "Zs", "Cc", "Lo"]), max_size=4)
scalars = json_scalars | st.sampled_from(WORDS_SEEN) | odd_text
shaped = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=6),
    max_leaves=30)
values = json_values | shaped
objects = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), values, max_size=8)


def _encodings(value: Any) -> st.SearchStrategy[bytes]:
    text = json.dumps(value)  # ASCII: lone surrogates travel as \\ud800, as a server may send
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return st.sampled_from([text.encode(), raw, text.encode() + b"\r\n"]) | st.integers(
        0, len(text)).map(lambda end: text[:end].encode())  # cut anywhere


payloads = st.binary(max_size=64) | (values | objects).flatmap(_encodings)
headers = st.dictionaries(
    st.sampled_from(["retry-after", "retry-after-ms", "x-goog-upload-url", "content-type",
                     "x-should-retry"]) | st.text(max_size=8),
    st.text(max_size=30) | st.sampled_from(WORDS_SEEN), max_size=4)
wire_responses = st.builds(WireResponse, status=http_statuses, headers=headers, body=payloads,
                           attempts=st.integers(1, 5))
SCHEMA = StructuredOutput(schema={"type": "object", "properties": {"a": {"type": "string"}},
                                  "required": ["a"], "additionalProperties": False})
requests = st.sampled_from([
    GenerationRequest(model="m", input="hi"),
    GenerationRequest(model="m", input="hi", schema=SCHEMA),
    GenerationRequest(model="m", input="hi", schema=SCHEMA,
                      options={"structured_output": "tool"}),
])


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """Arguments for a parameter annotated ``hint``. A parser with a parameter of a new type
    fails here, loudly, until this says what to feed it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*map(strategy_for, args))
    if origin is collections.abc.Mapping:
        return headers if args == (str, str) else objects
    simple = {WireResponse: wire_responses, GenerationRequest: requests, bytes: payloads,
              str: st.text(max_size=20) | st.sampled_from(WORDS_SEEN), int: st.integers(-3, 100),
              float: st.floats(-1e10, 1e10), object: values, Any: values,
              type(None): st.none()}
    if hint in simple:
        return simple[hint]
    raise LookupError(f"no strategy for arguments of type {hint!r}: add one to strategy_for")


def conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the (resolved) type ``hint``, looking inside ``Result``, unions,
    tuples and lists."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (Any, object):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, arg) for arg in args)
    if origin is Result:
        if isinstance(value, Success):
            return conforms(value.unwrap(), args[0])
        return isinstance(value, Failure) and conforms(value.failure(), args[1])
    if origin is tuple:
        return isinstance(value, tuple) and len(value) == len(args) and all(
            map(conforms, value, args))
    if origin is list:
        return isinstance(value, list) and all(conforms(item, args[0]) for item in value)
    return isinstance(value, origin or hint)


def documented_raises(function: Callable[..., Any]) -> tuple[type[BaseException], ...]:
    """The exceptions a parser's docstring says it raises (``Raises ``ConfigurationError````)."""
    names = re.findall(r"Raises\s+``(\w+)``", inspect.getdoc(function) or "")
    return tuple(getattr(llmbackend, name) for name in names)


@pytest.mark.parametrize("parser", PARSERS, ids=parser_id)
def test_every_parser_survives_anything(parser: Callable[..., Any]) -> None:
    hints = typing.get_type_hints(parser)
    returns = hints.pop("return")
    allowed = documented_raises(parser)
    arguments = {name: strategy_for(hints[name])
                 for name in inspect.signature(parser).parameters}

    @settings(max_examples=100)
    @given(st.fixed_dictionaries(arguments))
    def check(kwargs: dict[str, Any]) -> None:
        try:
            result = parser(**kwargs)
        except allowed:
            return
        assert conforms(result, returns), f"{result!r} is not a {returns}"

    check()


def test_the_fuzzed_parsers_are_all_of_them() -> None:
    names = {parser_id(p) for p in PARSERS}
    assert len(names) >= 27
    assert {"providers.openai.parse_response", "providers.openai_batch.parse_result_line",
            "providers.anthropic_batch.parse_result_line", "providers.gemini_batch.parse_batch",
            "providers.gemini_batch.parse_upload_url", "retrying.parse_retry_after"} <= names


REQUEST = GenerationRequest(model="m", input="hi")


#: Inputs that once crashed a parser (all fixed in 5b10dee), kept so that none comes back.
REGRESSIONS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "gemini.parse_usage": (gemini_wire.parse_usage, {"usage": {"promptTokenCount": "²"}}),
    "gemini.parse_generate_content": (gemini_wire.parse_generate_content, {
        "request": REQUEST, "response": WireResponse(status=200, body=json.dumps({
            "candidates": [{"content": {"parts": [{"text": "hi"}]}}],
            "usageMetadata": {"candidatesTokenCount": "²"}}).encode())}),
    "gemini_batch.parse_batch": (gemini_batch_wire.parse_batch, {
        "response": WireResponse(status=200, body=json.dumps({
            "name": "batches/b", "metadata": {"state": "BATCH_STATE_RUNNING",
                                              "batchStats": {"requestCount": "²"}}}).encode())}),
    "openai_batch.parse_result_line": (openai_batch_wire.parse_result_line, {
        "request": REQUEST,
        "line": b'{"custom_id": "a", "response": {"status_code": 500, "body": "\\ud800"}}'}),
}


@pytest.mark.parametrize("case", list(REGRESSIONS))
def test_odd_input_that_once_crashed_a_parser_gives_a_value(case: str) -> None:
    parser, kwargs = REGRESSIONS[case]
    assert conforms(parser(**kwargs), typing.get_type_hints(parser)["return"])


def max_decodable_depth() -> int:
    """The deepest JSON array nesting ``json.loads`` reads from this stack depth."""
    low, high = 1, sys.getrecursionlimit() + 10
    while low < high:
        middle = (low + high + 1) // 2
        try:
            json.loads("[" * middle + "]" * middle)
        except RecursionError:
            high = middle - 1
        else:
            low = middle
    return low


DEEP_CASES: dict[str, Callable[[str], Any]] = {
    "openai.parse_response": lambda nested: openai_wire.parse_response(REQUEST, WireResponse(
        status=200, body=f'{{"output": [], "status": "failed", "x": {nested}}}'.encode())),
    "gemini_batch.parse_result_line": lambda nested: gemini_batch_wire.parse_result_line(
        REQUEST, f'{{"key": "k", "x": {nested}}}'.encode()),
    "openai_batch.parse_result_line": lambda nested: openai_batch_wire.parse_result_line(
        REQUEST, f'{{"custom_id": "a", "response": {{"status_code": 500, "body": '
                 f'{{"x": {nested}}}}}}}'.encode()),
    "anthropic.parse_message": lambda nested: anthropic_wire.parse_message(REQUEST, WireResponse(
        status=200, body=f'{{"content": [], "stop_reason": "pause_turn", "x": {nested}}}'
        .encode())),
    "gemini.parse_generate_content": lambda nested: gemini_wire.parse_generate_content(
        REQUEST, WireResponse(status=200, body=f'{{"x": {nested}}}'.encode())),
}


@pytest.mark.parametrize("case", list(DEEP_CASES))
def test_json_nested_up_to_the_decoder_limit_never_crashes_a_parser(case: str) -> None:
    # Regression (fixed in 5b10dee): on Python 3.11, JSON nested just below json.loads' limit was
    # read, then json.dumps-ed again for an error's body excerpt, raising RecursionError.
    limit = max_decodable_depth()
    for depth in range(max(1, limit - 40), limit + 3):
        nested = "[" * depth + "]" * depth
        DEEP_CASES[case](nested)  # a Result or a Failure, whatever the depth: never a raise
