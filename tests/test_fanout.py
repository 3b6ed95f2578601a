"""Fan-out (``Client.map`` / ``Client.amap``), per-call ``timeout`` / ``max_retries`` and the
``progress`` bar, through the real facade against the loopback emulators (and the fault server
where a test needs per-prompt latency or failures).

What must hold: every input gets its own result, in input order, whatever order the answers
arrive in; at most ``concurrency`` requests are in flight and at most ``2 x concurrency`` inputs
are read ahead of the results handed back; a failed prompt is a ``Failure`` at its place; stopping
early stops sending; bad arguments raise at the call, before anything is sent; a per-call option
changes that call only, on the client's own connections.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from attrs import define
from pydantic import BaseModel
from returns.result import Failure, Result, Success

import llmbackend
import llmbackend.backends
from llmbackend import (
    ConfigurationError,
    Generation,
    HTTPStatusError,
    LLMError,
    RequestTimeoutError,
    StructuredOutput,
    UnsupportedError,
)
from llmbackend.api import LLMBackendWarning
from tests.anthropic_emulator import API_KEY as ANTHROPIC_KEY
from tests.anthropic_emulator import AnthropicEmulator, message_body
from tests.emulator import API_KEY as OPENAI_KEY
from tests.emulator import OpenAIEmulator
from tests.emulator import error_body as openai_error
from tests.emulator import response_body as openai_response
from tests.fanout_helpers import Gauge, Reader, numbered, prompt_is, within
from tests.faults import FaultServer, Forward, Reply
from tests.gemini_emulator import API_KEY as GEMINI_KEY
from tests.gemini_emulator import GeminiEmulator
from tests.gemini_emulator import response_body as gemini_response

#: A test still running after this many seconds is hung: the run stops, printing every stack.
HANG_LIMIT = 120.0
#: A "never hangs" bound for one early stop (not a speed measurement).
NEVER_HANGS = 30.0

Outcome = Result[Generation[Any], LLMError]


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(HANG_LIMIT, exit=True, file=sys.__stderr__)
    yield
    faulthandler.cancel_dump_traceback_later()


class Item(BaseModel):
    title: str


ITEM = StructuredOutput(pydantic_model=Item)


# --- the rig: one provider's emulator, with per-prompt answers and errors -----------------------


@define
class Rig:
    """A client of one provider, pointed at its emulator, and ways to plant per-prompt answers
    (text) and errors (HTTP 400 with a message) there."""

    provider: str
    client: llmbackend.Client
    plant_answer: Callable[[str, str], None]
    plant_error: Callable[[str, str], None]
    #: How many generation requests reached the server.
    sent: Callable[[], int]


def _openai_rig(request: pytest.FixtureRequest) -> Rig:
    emulator: OpenAIEmulator = request.getfixturevalue("emulator")
    # The OpenAI emulator has no per-prompt answers: the fault server in front plants them.
    faults = FaultServer(upstream=emulator.base_url).start()
    request.addfinalizer(faults.stop)
    model = "gpt-4o-mini"

    def answer(prompt: str, text: str) -> None:
        faults.push(Reply(200, openai_response(model, text)), when=prompt_is(prompt))

    def error(prompt: str, message: str) -> None:
        faults.push(Reply(400, openai_error(message, "invalid_request_error", None)),
                    when=prompt_is(prompt))

    client = llmbackend.client("openai", model, api_key=OPENAI_KEY, base_url=faults.base_url)
    return Rig("openai", client, answer, error, lambda: len(faults.served("POST /v1/responses")))


def _anthropic_rig(request: pytest.FixtureRequest) -> Rig:
    emulator: AnthropicEmulator = request.getfixturevalue("anthropic_emulator")
    model = "claude-sonnet-4-5"

    def answer(prompt: str, text: str) -> None:
        emulator.message_overrides[prompt] = message_body(model, [{"type": "text", "text": text}])

    def error(prompt: str, message: str) -> None:
        emulator.message_errors[prompt] = (400, "invalid_request_error", message)

    client = llmbackend.client("anthropic", model, api_key=ANTHROPIC_KEY,
                               base_url=emulator.base_url)
    return Rig("anthropic", client, answer, error,
               lambda: sum(r.path == "/v1/messages" for r in emulator.requests))


def _gemini_rig(request: pytest.FixtureRequest) -> Rig:
    emulator: GeminiEmulator = request.getfixturevalue("gemini_emulator")
    model = "gemini-2.5-flash"

    def answer(prompt: str, text: str) -> None:
        emulator.overrides[prompt] = gemini_response(model, text)

    def error(prompt: str, message: str) -> None:
        emulator.errors[prompt] = (400, "INVALID_ARGUMENT", message)

    client = llmbackend.client("gemini", model, api_key=GEMINI_KEY, base_url=emulator.base_url)
    return Rig("gemini", client, answer, error,
               lambda: sum(":generateContent" in r.path for r in emulator.requests))


RIGS = {"openai": _openai_rig, "anthropic": _anthropic_rig, "gemini": _gemini_rig}


@pytest.fixture(params=sorted(RIGS))
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    made = RIGS[request.param](request)
    yield made
    made.client.close()


def run_map(client: llmbackend.Client, inputs: Any, face: str, **options: Any) -> list[Outcome]:
    """Every result of ``client.map`` (``face="map"``) or ``client.amap`` (``"amap"``, on a new
    event loop; ``inputs`` may then be a callable making an async iterable on that loop)."""
    if face == "map":
        return list(client.map(inputs, **options))

    async def main() -> list[Outcome]:
        source = inputs() if callable(inputs) else inputs
        try:
            return [result async for result in client.amap(source, **options)]
        finally:
            await client.aclose()

    return asyncio.run(main())


def texts(results: Iterable[Outcome]) -> list[str]:
    return [result.unwrap().text for result in results]


def settled(count: Callable[[], int], quiet: float = 0.6) -> int:
    """``count()`` once it has stopped moving: a request written just before a stop may still
    be on its way to the server. Fails if anything more arrives during ``quiet`` seconds (which
    is what a call left running, or queued and not cancelled, would do)."""
    time.sleep(0.2)
    before = count()
    time.sleep(quiet)
    after = count()
    assert after == before, f"{after - before} more request(s) arrived after the stop"
    return after


def error_of(result: Outcome) -> LLMError:
    assert isinstance(result, Failure), f"expected a Failure, got {result!r}"
    error = result.failure()
    assert isinstance(error, LLMError)
    return error


FACES = ["map", "amap"]


# --- 1. every answer, in input order, from every provider -------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_every_answer_comes_back_in_input_order(rig: Rig, face: str) -> None:
    prompts = list(numbered(20))
    results = run_map(rig.client, prompts, face, concurrency=5)
    assert all(isinstance(result, Success) for result in results), results
    assert texts(results) == [f"Echo: {prompt}" for prompt in prompts]
    assert rig.sent() == len(prompts)  # one request per prompt: none lost, none doubled


@pytest.mark.parametrize("face", FACES)
def test_with_a_schema_each_parsed_answer_is_its_own_prompts(rig: Rig, face: str) -> None:
    prompts = list(numbered(12))
    for prompt in prompts:
        rig.plant_answer(prompt, json.dumps({"title": f"about {prompt}"}))
    results = run_map(rig.client, prompts, face, schema=ITEM, concurrency=4)
    parsed = [result.unwrap().parsed for result in results]
    assert parsed == [Item(title=f"about {prompt}") for prompt in prompts]
    assert all(isinstance(value, Item) for value in parsed)


def test_concurrency_one_runs_one_at_a_time_in_order(anthropic_env: AnthropicEmulator) -> None:
    anthropic_env.latency = 0.02
    with llmbackend.client("anthropic", "claude-sonnet-4-5") as client:
        prompts = list(numbered(6))
        assert texts(client.map(prompts, concurrency=1)) == [f"Echo: {p}" for p in prompts]
    assert anthropic_env.max_in_flight == 1


def test_an_empty_input_yields_nothing_and_sends_nothing(openai_env: OpenAIEmulator) -> None:
    calls: list[tuple[int, int | None]] = []
    client = llmbackend.client("openai", "gpt-4o-mini")
    assert list(client.map([], progress=lambda done, total: calls.append((done, total)))) == []
    assert run_map(client, Reader([]).aitems, "amap") == []
    assert openai_env.requests == []
    assert calls == []


def test_map_is_lazy_nothing_is_read_or_sent_before_the_first_next(
    openai_env: OpenAIEmulator,
) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini")
    reader = Reader(list(numbered(10)))
    results = client.map(reader.items(), concurrency=2)
    time.sleep(0.1)  # were anything started in the background, it would have reached the server
    assert (reader.read, len(openai_env.requests)) == (0, 0)
    results.close()  # closed before it started: still nothing
    assert (reader.read, len(openai_env.requests)) == (0, 0)
    with pytest.raises(StopIteration):
        next(results)


# --- 2. order under per-item latencies, and concurrency really used ---------------------------


@pytest.mark.parametrize("face", FACES)
def test_order_holds_when_the_first_items_are_the_slowest(emulator: OpenAIEmulator,
                                                          face: str) -> None:
    prompts = list(numbered(12))
    # The first three answer last: 0.6 s, 0.4 s, 0.25 s, the others after 0.05 s.
    delays = dict.fromkeys(prompts, 0.05) | {
        "item-0": 0.6, "item-1": 0.4, "item-2": 0.25}
    gauge = Gauge(delays)
    with FaultServer(upstream=emulator.base_url, default=gauge) as faults:
        client = llmbackend.client("openai", "gpt-4o-mini", api_key=OPENAI_KEY,
                                   base_url=faults.base_url)
        results = run_map(client, prompts, face, concurrency=4)
        client.close()
    assert texts(results) == [f"Echo: {prompt}" for prompt in prompts]
    # The answers really arrived out of order (else this test would prove nothing)...
    assert gauge.finished != prompts
    assert gauge.finished.index("item-3") < gauge.finished.index("item-0")
    # ...with several requests in flight at once, never more than the concurrency.
    assert 1 < gauge.max_in_flight <= 4


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize("concurrency", [2, 5])
def test_concurrency_is_used_and_never_exceeded(anthropic_env: AnthropicEmulator, face: str,
                                                concurrency: int) -> None:
    anthropic_env.latency = 0.05
    client = llmbackend.client("anthropic", "claude-sonnet-4-5")
    prompts = list(numbered(16))
    assert texts(run_map(client, prompts, face, concurrency=concurrency)) == [
        f"Echo: {p}" for p in prompts]
    assert 1 < anthropic_env.max_in_flight <= concurrency


# --- 3. bounded memory: the input is read at most a window ahead -------------------------------


def test_a_generator_is_read_at_most_two_windows_ahead(openai_env: OpenAIEmulator) -> None:
    concurrency = 3
    reader = Reader(list(numbered(40)))
    client = llmbackend.client("openai", "gpt-4o-mini")
    results = client.map(reader.items(), concurrency=concurrency)
    first = next(results)
    assert first.unwrap().text == "Echo: item-0"
    # The window: ``concurrency`` calls in flight and as many queued behind them.
    assert concurrency <= reader.read <= 2 * concurrency
    assert len(openai_env.requests) <= reader.read
    taken = 1
    for result in results:
        assert result.unwrap().text == f"Echo: item-{taken}"
        taken += 1
        # Read but not yet handed back: never more than the window.
        assert reader.read - taken <= 2 * concurrency
    assert (taken, reader.read, len(openai_env.requests)) == (40, 40, 40)


@pytest.mark.parametrize("face", FACES)
def test_stopping_a_huge_input_early_reads_and_sends_only_a_window(
    openai_env: OpenAIEmulator, face: str
) -> None:
    concurrency, wanted = 4, 10
    reader = Reader(list(numbered(10_000)))
    client = llmbackend.client("openai", "gpt-4o-mini")
    got: list[str] = []

    if face == "map":
        def take() -> None:
            for result in client.map(reader.items(), concurrency=concurrency):
                got.append(result.unwrap().text)
                if len(got) == wanted:
                    break
    else:
        def take() -> None:
            async def main() -> None:
                results = client.amap(reader.aitems(), concurrency=concurrency)
                async for result in results:
                    got.append(result.unwrap().text)
                    if len(got) == wanted:
                        break
                await results.aclose()
                await client.aclose()

            asyncio.run(main())

    within(NEVER_HANGS, take)
    assert got == [f"Echo: item-{i}" for i in range(wanted)]
    # At most the window was read beyond what was handed back, and sent no more than was read.
    assert reader.read <= wanted + 2 * concurrency
    assert settled(lambda: len(openai_env.requests)) <= reader.read  # nothing after the stop


# --- 4. per-item failures stay at their place --------------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_failed_prompts_are_failures_at_their_place_and_the_others_succeed(
    rig: Rig, face: str
) -> None:
    prompts = list(numbered(12))
    rejected = {"item-0", "item-5", "item-6", "item-11"}
    for prompt in rejected:
        rig.plant_error(prompt, f"rejected {prompt}")
    results = run_map(rig.client, prompts, face, concurrency=4)
    assert len(results) == len(prompts)
    for prompt, result in zip(prompts, results, strict=True):
        if prompt in rejected:
            error = error_of(result)
            assert isinstance(error, HTTPStatusError)
            assert (error.status, error.attempts) == (400, 1)  # a 400 is never retried
            assert re.search(rf"rejected {prompt}\b", error.message), error.message
        else:
            assert result.unwrap().text == f"Echo: {prompt}"
    assert rig.sent() == len(prompts)


def test_retried_and_failed_items_keep_their_place(emulator: OpenAIEmulator) -> None:
    prompts = list(numbered(10))
    busy = openai_error("The server is busy.", "server_error", None)
    with FaultServer(upstream=emulator.base_url) as faults:
        # item-3 fails twice with a 503 (retried, then answered); item-7 fails for good.
        faults.push(Reply(503, busy, {"retry-after-ms": "1"}),
                    Reply(503, busy, {"retry-after-ms": "1"}), when=prompt_is("item-3"))
        faults.push(*[Reply(503, busy, {"retry-after-ms": "1"})] * 3, when=prompt_is("item-7"))
        with llmbackend.client("openai", "gpt-4o-mini", api_key=OPENAI_KEY,
                               base_url=faults.base_url, max_retries=2) as client:
            results = list(client.map(prompts, concurrency=4))
        assert faults.pending == 0
        sent = [request.json()["input"] for request in faults.served("POST /v1/responses")]
    for prompt, result in zip(prompts, results, strict=True):
        if prompt == "item-7":
            error = error_of(result)
            assert isinstance(error, HTTPStatusError)
            assert (error.status, error.attempts) == (503, 3)
        else:
            assert result.unwrap().text == f"Echo: {prompt}"
    assert sorted(sent) == sorted([*prompts, "item-3", "item-3", "item-7", "item-7"])


# --- 5. stopping early ---------------------------------------------------------------------------


def test_break_returns_promptly_and_stops_sending(anthropic_env: AnthropicEmulator) -> None:
    anthropic_env.latency = 0.1
    concurrency = 4
    client = llmbackend.client("anthropic", "claude-sonnet-4-5")
    got: list[str] = []

    def take_two() -> None:
        # 400 prompts at 0.1 s, 4 at a time, would take 10 s: a stop must not wait for them.
        for result in client.map([f"p{i}" for i in range(400)], concurrency=concurrency):
            got.append(result.unwrap().text)
            if len(got) == 2:
                break

    within(NEVER_HANGS, take_two)
    assert got == ["Echo: p0", "Echo: p1"]
    assert settled(lambda: len(anthropic_env.requests)) <= 2 + 2 * concurrency
    assert anthropic_env.in_flight == 0


def test_close_stops_the_fan_out(anthropic_env: AnthropicEmulator) -> None:
    anthropic_env.latency = 0.1
    concurrency = 3
    client = llmbackend.client("anthropic", "claude-sonnet-4-5")
    results = client.map([f"p{i}" for i in range(300)], concurrency=concurrency)
    assert next(results).unwrap().text == "Echo: p0"
    within(NEVER_HANGS, results.close)
    with pytest.raises(StopIteration):
        next(results)
    assert settled(lambda: len(anthropic_env.requests)) <= 1 + 2 * concurrency


@pytest.mark.parametrize("face", FACES)
def test_stopping_early_cancels_the_items_not_yet_sent(emulator: OpenAIEmulator,
                                                        face: str) -> None:
    # item-0 answers at once, every other after 0.5 s: when the first result is handed back,
    # ``concurrency`` slow calls are in flight and the rest of the window is still queued.
    concurrency = 3
    prompts = list(numbered(30))
    gauge = Gauge(dict.fromkeys(prompts, 0.5) | {"item-0": 0.0})
    with FaultServer(upstream=emulator.base_url, default=gauge) as faults:
        client = _client_of(faults)

        if face == "map":
            def stop_after_one() -> str:
                results = client.map(prompts, concurrency=concurrency)
                first = next(results).unwrap().text
                results.close()
                return first
        else:
            def stop_after_one() -> str:
                async def main() -> str:
                    results = client.amap(prompts, concurrency=concurrency)
                    first = (await anext(results)).unwrap().text
                    await results.aclose()
                    await client.aclose()
                    return first

                return asyncio.run(main())

        assert within(NEVER_HANGS, stop_after_one) == "Echo: item-0"
        # Quiet for longer than a slow call: anything queued and not cancelled would go now.
        sent = settled(lambda: len(faults.served("POST /v1/responses")), quiet=0.7)
        client.close()
    # The one handed back and the calls in flight when it stopped; the queued ones never went.
    assert sent <= 1 + concurrency


def test_amap_aclose_stops_sending(anthropic_env: AnthropicEmulator) -> None:
    anthropic_env.latency = 0.1
    concurrency = 3
    reader = Reader([f"p{i}" for i in range(300)])
    client = llmbackend.client("anthropic", "claude-sonnet-4-5")

    async def main() -> tuple[list[str], int]:
        results = client.amap(reader.aitems(), concurrency=concurrency)
        got = []
        async for result in results:
            got.append(result.unwrap().text)
            if len(got) == 3:
                break
        await results.aclose()
        # The loop runs on: any task left alive would send now.
        sent = await asyncio.to_thread(settled, lambda: len(anthropic_env.requests))
        await client.aclose()
        return got, sent

    got, sent = within(NEVER_HANGS, lambda: asyncio.run(main()))
    assert got == ["Echo: p0", "Echo: p1", "Echo: p2"]
    assert sent <= reader.read <= 3 + 2 * concurrency


EARLY_STOP_AS_DOCUMENTED = """\
from contextlib import aclosing, closing

import llmbackend


async def main(client: llmbackend.Client) -> None:
    with closing(client.map(["a", "b"])) as results:
        for _ in results:
            break
    async with aclosing(client.amap(["a", "b"])) as aresults:
        async for _ in aresults:
            break
    plain = client.map(["a"])
    next(plain)
    plain.close()
    aplain = client.amap(["a"])
    await anext(aplain)
    await aplain.aclose()
"""


def test_the_documented_early_stops_type_check(tmp_path: Path) -> None:
    code = tmp_path / "early_stop.py"
    code.write_text(EARLY_STOP_AS_DOCUMENTED)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-version", "3.11",
         "--cache-dir", str(tmp_path / "cache"), str(code)],
        capture_output=True, text=True, check=False)
    assert checked.returncode in (0, 1), checked.stdout + checked.stderr  # mypy itself ran
    # Only the snippet's own lines count (not an error elsewhere in the library).
    errors = [line for line in checked.stdout.splitlines() if line.startswith(str(code))]
    assert errors == []


# --- 6. eager errors ----------------------------------------------------------------------------

BAD_MAP_CALLS = [
    pytest.param({"concurrency": 0}, "concurrency", id="concurrency=0"),
    pytest.param({"concurrency": -3}, "concurrency", id="concurrency=-3"),
    pytest.param({"concurrency": True}, "concurrency", id="concurrency=True"),
    pytest.param({"concurrency": 2.0}, "concurrency", id="concurrency=2.0"),
    pytest.param({"concurrency": "4"}, "concurrency", id="concurrency='4'"),
    pytest.param({"progress": "yes"}, "progress", id="progress='yes'"),
    pytest.param({"progress": 1}, "progress", id="progress=1"),
    pytest.param({"inputs": "a string"}, "inputs", id="inputs=str"),
    pytest.param({"inputs": b"bytes"}, "inputs", id="inputs=bytes"),
    pytest.param({"inputs": 5}, "inputs", id="inputs=5"),
    pytest.param({"inputs": None}, "inputs", id="inputs=None"),
    pytest.param({"schema": {"type": "object"}}, "schema", id="schema=dict"),
    pytest.param({"schema": Item}, "schema", id="schema=model-class"),
    pytest.param({"timeout": 0}, "timeout", id="timeout=0"),
    pytest.param({"timeout": -1}, "timeout", id="timeout=-1"),
    pytest.param({"timeout": "5"}, "timeout", id="timeout='5'"),
    pytest.param({"timeout": True}, "timeout", id="timeout=True"),
    pytest.param({"max_retries": -1}, "max_retries", id="max_retries=-1"),
    pytest.param({"max_retries": 1.5}, "max_retries", id="max_retries=1.5"),
    pytest.param({"max_retries": True}, "max_retries", id="max_retries=True"),
]


@pytest.mark.parametrize("face", FACES)
@pytest.mark.parametrize(("arguments", "key"), BAD_MAP_CALLS)
def test_bad_arguments_raise_at_the_call_before_anything_is_sent(
    openai_env: OpenAIEmulator, face: str, arguments: dict[str, Any], key: str
) -> None:
    options = dict(arguments)
    inputs = options.pop("inputs", ["a", "b"])
    client = llmbackend.client("openai", "gpt-4o-mini")
    with pytest.raises(ConfigurationError) as raised:
        getattr(client, face)(inputs, **options)  # the call itself raises: no iteration
    assert raised.value.key == key
    assert openai_env.requests == []


def test_a_config_the_provider_cannot_take_raises_at_once(openai_env: OpenAIEmulator) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini")
    for face in FACES:
        with pytest.raises(UnsupportedError) as raised:
            getattr(client, face)(["a", "b"], {"seed": 1})  # the Responses API has no seed
        assert raised.value.parameter == "seed"
    assert openai_env.requests == []


def test_a_dropped_parameter_warns_once_at_the_call(openai_env: OpenAIEmulator) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini", drop_unsupported_params=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = client.map(["a", "b", "c"], {"seed": 1})
        assert [w.category for w in caught] == [LLMBackendWarning]  # before iterating
        assert caught[0].filename == __file__  # pointed at the caller's line
        assert texts(results) == ["Echo: a", "Echo: b", "Echo: c"]
    assert len(caught) == 1  # once, not once per prompt
    assert all("seed" not in request.json() for request in openai_env.requests)


@pytest.mark.parametrize("face", FACES)
def test_a_non_string_item_raises_naming_its_index_when_reached(
    openai_env: OpenAIEmulator, face: str
) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini")
    got: list[str] = []
    if face == "map":
        results = client.map(["a", "b", 3, "d"], concurrency=2)  # no error yet: lazy
        with pytest.raises(ConfigurationError, match="#2") as raised:
            for result in results:
                got.append(result.unwrap().text)
    else:
        async def main() -> None:
            async def source() -> AsyncIterator[object]:
                for item in ["a", "b", 3, "d"]:
                    yield item

            try:
                async for result in client.amap(source(), concurrency=2):
                    got.append(result.unwrap().text)
            finally:
                await client.aclose()

        with pytest.raises(ConfigurationError, match="#2") as raised:
            asyncio.run(main())
    assert raised.value.key == "inputs"
    assert "d" not in [request.json()["input"] for request in openai_env.requests]


def test_one_at_a_time_the_results_before_a_non_string_item_are_handed_back(
    openai_env: OpenAIEmulator,
) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini")
    got: list[str] = []
    with pytest.raises(ConfigurationError, match="#2"):
        for result in client.map(["a", "b", 3, "d"], concurrency=1):
            got.append(result.unwrap().text)
    assert got == ["Echo: a", "Echo: b"]


@pytest.mark.parametrize("face", FACES)
def test_the_results_before_a_non_string_item_are_handed_back(
    openai_env: OpenAIEmulator, face: str
) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini")
    got: list[str] = []

    if face == "map":
        with pytest.raises(ConfigurationError, match="#2"):
            for result in client.map(["a", "b", 3, "d"], concurrency=4):
                got.append(result.unwrap().text)
    else:
        async def main() -> None:
            try:
                async for result in client.amap(["a", "b", 3, "d"], concurrency=4):
                    got.append(result.unwrap().text)
            finally:
                await client.aclose()

        with pytest.raises(ConfigurationError, match="#2"):
            asyncio.run(main())
    # The window reads the bad item while the items ahead of it are in flight: their answers
    # (requested, and paid for) still reach the caller first, as with concurrency=1.
    assert got == ["Echo: a", "Echo: b"]
    assert sorted(request.json()["input"] for request in openai_env.requests) == ["a", "b"]


# --- 7. progress ----------------------------------------------------------------------------------


@pytest.mark.parametrize("face", FACES)
def test_a_progress_callable_gets_done_and_total_once_per_item(
    openai_env: OpenAIEmulator, face: str
) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini")
    prompts = list(numbered(7))

    calls: list[tuple[int, int | None]] = []
    results = run_map(client, prompts, face, concurrency=3,
                      progress=lambda done, total: calls.append((done, total)))
    assert len(results) == 7
    assert calls == [(done, 7) for done in range(1, 8)]

    calls.clear()
    reader = Reader(prompts)
    source = reader.items() if face == "map" else reader.aitems
    run_map(client, source, face, concurrency=3,
            progress=lambda done, total: calls.append((done, total)))
    assert calls == [(done, None) for done in range(1, 8)]  # a generator has no length


def test_progress_is_reported_before_each_result_is_handed_back(
    openai_env: OpenAIEmulator,
) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini")
    calls: list[int] = []
    seen = []
    for result in client.map(list(numbered(5)), concurrency=2,
                             progress=lambda done, total: calls.append(done)):
        seen.append((len(calls), result.unwrap().text))
    assert seen == [(i + 1, f"Echo: item-{i}") for i in range(5)]


@pytest.fixture
def no_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


@pytest.mark.usefixtures("no_tqdm")
def test_progress_true_without_tqdm_writes_a_line_on_stderr(
    openai_env: OpenAIEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini")
    assert len(list(client.map(list(numbered(5)), concurrency=2, progress=True))) == 5
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("5/5 prompts (100%)\n"), err
    assert err.count("\n") == 1  # one line, rewritten in place
    assert "gpt-4o-mini" in err

    # A generator: no total, the count alone.
    assert len(list(client.map(numbered(5), concurrency=2, progress=True))) == 5
    err = capsys.readouterr().err
    assert err.endswith(": 5 prompts\n"), err

    # The async face draws the same line.
    assert len(run_map(client, list(numbered(3)), "amap", progress=True)) == 3
    assert capsys.readouterr().err.endswith("3/3 prompts (100%)\n")


@pytest.mark.usefixtures("no_tqdm")
def test_the_plain_progress_line_is_ended_when_the_fan_out_stops_early(
    openai_env: OpenAIEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini")
    for index, _ in enumerate(client.map(list(numbered(5)), concurrency=2, progress=True)):
        if index == 1:
            break
    err = capsys.readouterr().err
    assert err.endswith("2/5 prompts (40%)\n"), err


def test_progress_true_with_tqdm_draws_a_bar_on_stderr(
    openai_env: OpenAIEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    client = llmbackend.client("openai", "gpt-4o-mini")
    results = list(client.map(list(numbered(5)), concurrency=2, progress=True))
    assert texts(results) == [f"Echo: item-{i}" for i in range(5)]
    out, err = capsys.readouterr()
    assert out == ""
    assert "5/5" in err, err
    assert len(run_map(client, numbered(3), "amap", progress=True)) == 3
    assert "3" in capsys.readouterr().err


# --- 8. amap specifics ---------------------------------------------------------------------------


def test_amap_takes_an_async_generator_and_a_list_and_runs_concurrently(
    anthropic_env: AnthropicEmulator,
) -> None:
    anthropic_env.latency = 0.05
    anthropic_env.message_errors["item-4"] = (400, "invalid_request_error", "rejected item-4")
    client = llmbackend.client("anthropic", "claude-sonnet-4-5")
    reader = Reader(list(numbered(10)))

    async def main() -> tuple[list[Outcome], list[Outcome]]:
        from_async = [result async for result in client.amap(reader.aitems(), concurrency=4)]
        from_list = [result async for result in client.amap(list(numbered(10)), concurrency=4)]
        await client.aclose()
        return from_async, from_list

    from_async, from_list = asyncio.run(main())
    for results in (from_async, from_list):
        for index, result in enumerate(results):
            if index == 4:
                error = error_of(result)
                assert isinstance(error, HTTPStatusError)
                assert "rejected item-4" in error.message
            else:
                assert result.unwrap().text == f"Echo: item-{index}"
        assert len(results) == 10
    assert 1 < anthropic_env.max_in_flight <= 4


def test_amap_runs_on_the_callers_event_loop(anthropic_env: AnthropicEmulator) -> None:
    # While amap waits on the emulator, other tasks of the same loop keep running.
    anthropic_env.latency = 0.1
    client = llmbackend.client("anthropic", "claude-sonnet-4-5")

    async def main() -> tuple[list[str], int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        answers = [r.unwrap().text async for r in client.amap(list(numbered(6)), concurrency=2)]
        done.set()
        await task
        await client.aclose()
        return answers, ticks

    answers, ticks = asyncio.run(main())
    assert answers == [f"Echo: item-{i}" for i in range(6)]
    assert ticks > 3  # the loop was never blocked for the whole fan-out


# --- 9. per-call timeout and max_retries ----------------------------------------------------------


@pytest.fixture
def slow(emulator: OpenAIEmulator) -> Iterator[FaultServer]:
    """The fault server in front of the OpenAI emulator: push ``Forward(delay=...)`` to make the
    next answer slow."""
    with FaultServer(upstream=emulator.base_url) as faults:
        yield faults


def _client_of(faults: FaultServer, **options: Any) -> llmbackend.Client:
    return llmbackend.client("openai", "gpt-4o-mini", api_key=OPENAI_KEY,
                             base_url=faults.base_url, **options)


def test_a_per_call_timeout_applies_to_that_call_only(slow: FaultServer) -> None:
    client = _client_of(slow, timeout=5)
    slow.push(Forward(delay=2.0))
    timed_out = client.generate("slow", timeout=0.2, max_retries=0)
    error = error_of(timed_out)
    assert isinstance(error, RequestTimeoutError)
    assert error.attempts == 1
    assert "0.2" in error.message
    # The same client, without the per-call option: its own 5 s timeout lets the answer come.
    slow.push(Forward(delay=0.5))
    assert client.generate("slow again").unwrap().text == "Echo: slow again"
    assert client._backend.transport.timeout == 5.0  # the client's own setting is untouched
    slow.push(Forward(delay=2.0))
    with pytest.raises(RequestTimeoutError):
        client.get_response("slow", timeout=0.2, max_retries=0)
    client.close()


def test_a_per_call_timeout_applies_to_each_attempt(slow: FaultServer) -> None:
    client = _client_of(slow, timeout=5, max_retries=1)
    slow.push(Forward(delay=2.0), Forward(delay=2.0))
    error = error_of(client.generate("slow", timeout=0.2))  # the client's max_retries: 1
    assert isinstance(error, RequestTimeoutError)
    assert error.attempts == 2
    assert len(slow.served("POST /v1/responses")) == 2
    client.close()


def test_a_per_call_timeout_on_the_async_face(slow: FaultServer) -> None:
    client = _client_of(slow, timeout=5)

    async def main() -> tuple[Outcome, Outcome]:
        slow.push(Forward(delay=2.0))
        first = await client.agenerate("slow", timeout=0.2, max_retries=0)
        slow.push(Forward(delay=0.3))
        second = await client.agenerate("slow again")
        slow.push(Forward(delay=2.0))
        with pytest.raises(RequestTimeoutError):
            await client.aget_response("slow", timeout=0.2, max_retries=0)
        await client.aclose()
        return first, second

    first, second = asyncio.run(main())
    error = error_of(first)
    assert isinstance(error, RequestTimeoutError)
    assert error.attempts == 1
    assert second.unwrap().text == "Echo: slow again"


def _busy(emulator: OpenAIEmulator, times: int) -> None:
    for _ in range(times):
        emulator.reply(503, openai_error("The server is busy.", "server_error", None),
                       {"retry-after-ms": "1"})


def test_per_call_max_retries_overrides_the_clients(openai_env: OpenAIEmulator) -> None:
    retrying = llmbackend.client("openai", "gpt-4o-mini", max_retries=2)
    _busy(openai_env, 1)
    error = error_of(retrying.generate("a", max_retries=0))
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.attempts) == (503, 1)
    assert len(openai_env.requests) == 1

    never = llmbackend.client("openai", "gpt-4o-mini", max_retries=0)
    _busy(openai_env, 3)
    assert never.generate("b", max_retries=3).unwrap().text == "Echo: b"
    assert len(openai_env.requests) == 1 + 4  # three 503s, then the answer

    _busy(openai_env, 1)
    error = error_of(never.generate("c"))  # without the option: the client's 0 retries
    assert isinstance(error, HTTPStatusError)
    assert error.attempts == 1
    assert len(openai_env.requests) == 1 + 4 + 1

    async def main() -> Outcome:
        _busy(openai_env, 2)
        result = await never.agenerate("d", max_retries=2)
        await never.aclose()
        return result

    assert asyncio.run(main()).unwrap().text == "Echo: d"
    assert len(openai_env.requests) == 1 + 4 + 1 + 3


def test_a_per_call_view_shares_the_clients_connections(openai_env: OpenAIEmulator) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini")
    base = client._backend.transport
    view = base.with_options(timeout=1)
    assert view is not base
    assert view._pool is base._pool
    assert base.with_options(timeout=base.timeout, max_retries=base.retry.max_retries) is base
    assert (base.timeout, view.timeout) == (600.0, 1.0)
    # One kept-alive connection serves the plain call and the calls with their own options.
    client.generate("a")
    client.generate("b", timeout=3)
    client.generate("c", max_retries=0)
    client.generate("d", timeout=4, max_retries=5)
    peers = {request.peer for request in openai_env.requests}
    assert len(openai_env.requests) == 4
    assert len(peers) == 1, peers
    client.close()


def test_a_429_seen_through_a_per_call_view_pauses_the_whole_client(
    openai_env: OpenAIEmulator,
) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini", max_retries=2)
    base = client._backend.transport
    openai_env.reply(429, openai_error("slow down", "rate_limit_error", None),
                     {"retry-after-ms": "1500"})
    before = time.monotonic()
    outcome: list[Outcome] = []
    worker = threading.Thread(target=lambda: outcome.append(
        client.generate("a", max_retries=1, timeout=9)))  # through a view
    worker.start()
    deadline = time.monotonic() + 10
    while base._pool.pause_until <= before and time.monotonic() < deadline:
        time.sleep(0.005)
    # The back-off the view noted is the base transport's: calls without options wait too.
    assert base._pool.pause_until > before
    assert base._paused_for() > 0
    assert client.generate("b").unwrap().text == "Echo: b"
    worker.join(NEVER_HANGS)
    assert outcome[0].unwrap().text == "Echo: a"
    assert openai_env.requests[0].json()["input"] == "a"
    client.close()


def test_a_429_on_a_call_without_retries_left_still_pauses_the_others(
    openai_env: OpenAIEmulator,
) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini", max_retries=2)
    openai_env.reply(429, openai_error("slow down", "rate_limit_error", None),
                     {"retry-after-ms": "3000"})
    before = time.monotonic()
    error = error_of(client.generate("a", max_retries=0))  # through a view, not retried
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.attempts) == (429, 1)
    # The provider asked the whole key to wait 3 s: the client's other calls are held back.
    assert client._backend.transport._pool.pause_until > before + 1
    assert client._backend.transport._paused_for() > 1
    client.close()


PER_CALL_BAD = [
    pytest.param({"timeout": 0}, id="timeout=0"),
    pytest.param({"timeout": -1}, id="timeout=-1"),
    pytest.param({"timeout": "5"}, id="timeout='5'"),
    pytest.param({"timeout": True}, id="timeout=True"),
    pytest.param({"timeout": float("nan")}, id="timeout=nan"),
    pytest.param({"max_retries": -1}, id="max_retries=-1"),
    pytest.param({"max_retries": 1.5}, id="max_retries=1.5"),
    pytest.param({"max_retries": True}, id="max_retries=True"),
    pytest.param({"max_retries": "2"}, id="max_retries='2'"),
]


@pytest.mark.parametrize("options", PER_CALL_BAD)
def test_invalid_per_call_options_raise_configuration_error(
    openai_env: OpenAIEmulator, options: dict[str, Any]
) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini")
    (key,) = options
    for call in (client.generate, client.get_response):
        with pytest.raises(ConfigurationError) as raised:
            call("a", **options)
        assert raised.value.key == key

    async def main() -> None:
        for acall in (client.agenerate, client.aget_response):
            with pytest.raises(ConfigurationError):
                await acall("a", **options)

    asyncio.run(main())
    with pytest.raises(ConfigurationError):
        llmbackend.generate("openai", "gpt-4o-mini", "a", **options)
    assert openai_env.requests == []


@pytest.mark.parametrize("face", FACES)
def test_map_takes_a_per_call_timeout_and_max_retries(emulator: OpenAIEmulator,
                                                      face: str) -> None:
    prompts = list(numbered(6))
    busy = openai_error("The server is busy.", "server_error", None)
    with FaultServer(upstream=emulator.base_url) as faults:
        faults.push(Forward(delay=2.0), when=prompt_is("item-2"))
        faults.push(Reply(503, busy, {"retry-after-ms": "1"}), when=prompt_is("item-4"))
        client = _client_of(faults, timeout=5, max_retries=2)
        results = run_map(client, prompts, face, concurrency=3, timeout=0.3, max_retries=0)
        sent = len(faults.served("POST /v1/responses"))
        client.close()
    slow_error, busy_error = error_of(results[2]), error_of(results[4])
    assert isinstance(slow_error, RequestTimeoutError)
    assert slow_error.attempts == 1
    assert isinstance(busy_error, HTTPStatusError)
    assert (busy_error.status, busy_error.attempts) == (503, 1)
    for index in (0, 1, 3, 5):
        assert results[index].unwrap().text == f"Echo: item-{index}"
    assert sent == len(prompts)  # no retries at all
    transport = client._backend.transport
    assert (transport.timeout, transport.retry.max_retries) == (5.0, 2)


def test_top_level_calls_with_other_timeouts_share_one_pool(openai_env: OpenAIEmulator) -> None:
    assert llmbackend.backends._shared == {}
    answers = [
        llmbackend.generate("openai", "gpt-4o-mini", "one", timeout=5),
        llmbackend.generate("openai", "gpt-4o-mini", "two", timeout=7),
        llmbackend.generate("openai", "gpt-4o-mini", "three", max_retries=0),
        llmbackend.generate("openai", "gpt-4o-mini", "four", timeout=9, max_retries=4),
        llmbackend.generate("openai", "gpt-4o-mini", "five"),
    ]
    assert texts(answers) == ["Echo: one", "Echo: two", "Echo: three", "Echo: four",
                              "Echo: five"]
    assert len(llmbackend.backends._shared) == 1
    assert len({request.peer for request in openai_env.requests}) == 1  # one connection


def test_top_level_per_call_options_take_effect(slow: FaultServer) -> None:
    where = {"api_key": OPENAI_KEY, "base_url": slow.base_url}
    slow.push(Forward(delay=2.0))
    error = error_of(llmbackend.generate("openai", "gpt-4o-mini", "slow", timeout=0.2,
                                         max_retries=0, **where))
    assert isinstance(error, RequestTimeoutError)
    assert error.attempts == 1
    slow.push(Forward(delay=0.3))
    assert llmbackend.get_response("openai", "gpt-4o-mini", "slow", timeout=5, **where) == \
        "Echo: slow"
    slow.push(Reply(503, openai_error("busy", "server_error", None), {"retry-after-ms": "1"}))
    error = error_of(llmbackend.generate("openai", "gpt-4o-mini", "busy", max_retries=0,
                                         **where))
    assert isinstance(error, HTTPStatusError)
    assert error.attempts == 1

    async def main() -> Outcome:
        slow.push(Forward(delay=2.0))
        return await llmbackend.agenerate("openai", "gpt-4o-mini", "slow", timeout=0.2,
                                          max_retries=0, **where)

    error = error_of(asyncio.run(main()))
    assert isinstance(error, RequestTimeoutError)
    assert error.attempts == 1
    assert len(llmbackend.backends._shared) == 1


# --- 10. local providers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_client(tiny_model: Path) -> Iterator[llmbackend.Client]:
    client = llmbackend.client("transformers", str(tiny_model), apply_chat_template=True)
    yield client
    client.close()


LOCAL_PROMPTS = ["Hello", "Hi there", "Why is the sky blue?", "Tell me a story", "Good night"]


@pytest.mark.runtime
def test_local_map_gives_every_result_in_order(local_client: llmbackend.Client) -> None:
    config = {"max_tokens": 6}
    alone = [local_client.generate(prompt, config).unwrap().text for prompt in LOCAL_PROMPTS]
    calls: list[tuple[int, int | None]] = []
    results = list(local_client.map(LOCAL_PROMPTS, config, concurrency=2,
                                    progress=lambda done, total: calls.append((done, total))))
    assert len(results) == 5
    # Greedy, and batched equals one by one for this model: each answer is its own prompt's.
    assert texts(results) == alone
    assert calls == [(done, 5) for done in range(1, 6)]

    async def main() -> list[Outcome]:
        async def source() -> AsyncIterator[str]:
            for prompt in LOCAL_PROMPTS:
                yield prompt

        return [result async for result in local_client.amap(source(), config, concurrency=2)]

    assert texts(asyncio.run(main())) == alone


@pytest.mark.runtime
@pytest.mark.parametrize("options", [{"timeout": 5}, {"max_retries": 1}],
                         ids=["timeout", "max_retries"])
def test_local_providers_refuse_network_options(local_client: llmbackend.Client,
                                                options: dict[str, Any]) -> None:
    for face in FACES:
        with pytest.raises(ConfigurationError) as raised:
            getattr(local_client, face)(LOCAL_PROMPTS, **options)
        assert raised.value.key == next(iter(options))
    with pytest.raises(ConfigurationError):
        local_client.generate("Hello", **options)


@pytest.mark.runtime
def test_a_local_batch_takes_concurrency_and_progress(local_client: llmbackend.Client) -> None:
    config = {"max_tokens": 6}
    alone = [local_client.generate(prompt, config).unwrap().text for prompt in LOCAL_PROMPTS]
    calls: list[tuple[int, int | None]] = []
    batch = local_client.submit_batch(
        LOCAL_PROMPTS, config, batch_options={
            "concurrency": 2, "custom_ids": list("abcde"),
            "progress": lambda done, total: calls.append((done, total))})
    assert batch.results() == alone
    assert batch.custom_ids == tuple("abcde")
    assert calls == [(done, 5) for done in range(1, 6)]  # three generate calls: 2, 2 and 1
    with pytest.raises(ConfigurationError) as raised:
        local_client.submit_batch(LOCAL_PROMPTS, batch_options={"concurrency": 0})
    assert raised.value.key == "concurrency"
    with pytest.raises(ConfigurationError) as raised:
        local_client.submit_batch(LOCAL_PROMPTS, batch_options={"windows": 2})
    assert raised.value.key == "windows"
