"""The streaming face end to end: ``llmbackend.stream`` / ``astream`` and ``Client.stream`` /
``astream`` through the loopback emulators of OpenAI, Anthropic and Gemini (what reached the
wire is checked), and the tiny local model. The deltas join into the very generation
``generate`` returns; a schema streams raw JSON and ends validated; bad arguments raise before
anything is sent; closing mid-stream drops the connection at once (the fault server in front of
the emulator sees it go); errors and retries before any text are a whole call's."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
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
    LLMError,
    SchemaValidationError,
    StreamError,
    StructuredOutput,
)
from tests.anthropic_emulator import API_KEY as ANTHROPIC_KEY
from tests.anthropic_emulator import message_body
from tests.emulator import API_KEY as OPENAI_KEY
from tests.emulator import Scripted, Stream, response_events, split_text
from tests.emulator import response_body as openai_body
from tests.faults import FaultServer, Relayed, StreamRelay
from tests.gemini_emulator import API_KEY as GEMINI_KEY
from tests.gemini_emulator import response_body as gemini_body

PROMPT = "a river in three parts"
ANSWER = f"Echo: {PROMPT}"
FIRST = split_text(ANSWER)[0]  # the emulators' first delta
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5",
          "gemini": "gemini-2.5-flash"}
KEYS = {"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY, "gemini": GEMINI_KEY}
EMULATORS = {"openai": "emulator", "anthropic": "anthropic_emulator",
             "gemini": "gemini_emulator"}
PROVIDERS = list(MODELS)
FACES = ["top", "client"]
MODES = ["sync", "async"]
BOUND = 30.0  # seconds: a hang fails instead of hanging


class Item(BaseModel):
    title: str


ITEM = StructuredOutput(pydantic_model=Item)


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(main(), BOUND)

    return asyncio.run(bounded())


class Remote:
    """One provider behind its emulator (or a fault server in front of it)."""

    def __init__(self, name: str, emulator: Any) -> None:
        self.name, self.model, self.key, self.emulator = name, MODELS[name], KEYS[name], emulator
        self.base_url: str = emulator.base_url

    def options(self, **extra: Any) -> dict[str, Any]:
        return {"api_key": self.key, "base_url": self.base_url, **extra}

    def client(self, **extra: Any) -> llmbackend.Client:
        return llmbackend.client(self.name, self.model, **self.options(**extra))

    def stream(self, face: str, input: Any = PROMPT, schema: Any = None, **extra: Any
               ) -> llmbackend.TextStream[Any]:
        if face == "top":
            return llmbackend.stream(self.name, self.model, input, None, schema,
                                     **self.options(**extra))
        return self.client(**extra).stream(input, None, schema)

    def astream(self, face: str, input: Any = PROMPT, schema: Any = None, **extra: Any
                ) -> llmbackend.AsyncTextStream[Any]:
        if face == "top":
            return llmbackend.astream(self.name, self.model, input, None, schema,
                                      **self.options(**extra))
        return self.client(**extra).astream(input, None, schema)

    def generate(self, input: Any = PROMPT, schema: Any = None) -> Generation[Any]:
        outcome = llmbackend.generate(self.name, self.model, input, None, schema,
                                      **self.options())
        assert isinstance(outcome, Success), outcome
        generation: Generation[Any] = outcome.unwrap()
        return generation

    @property
    def requests(self) -> list[Any]:
        return list(self.emulator.requests)


@pytest.fixture(params=PROVIDERS)
def remote(request: pytest.FixtureRequest) -> Remote:
    return Remote(request.param, request.getfixturevalue(EMULATORS[request.param]))


@pytest.fixture
def planted(anthropic_emulator: Any, gemini_emulator: Any) -> None:
    """Answers with fixed ids (the default ones draw a fresh id per call): a stream and a whole
    call compare field for field. OpenAI's default answer has a fixed id already."""
    anthropic_emulator.message_overrides[PROMPT] = message_body(
        MODELS["anthropic"], [{"type": "text", "text": ANSWER}], input_tokens=7,
        output_tokens=5, message_id="msg_fixed")
    gemini_emulator.overrides[PROMPT] = gemini_body(MODELS["gemini"], ANSWER, prompt_tokens=7,
                                                    response_id="resp_fixed")


def read(stream: llmbackend.TextStream[Any]) -> tuple[list[str], Generation[Any]]:
    with stream:
        deltas = list(stream)
        return deltas, stream.generation


def aread(stream: llmbackend.AsyncTextStream[Any]) -> tuple[list[str], Generation[Any]]:
    async def main() -> tuple[list[str], Generation[Any]]:
        async with stream:
            deltas = [delta async for delta in stream]
            outcome = await stream.result()
            assert isinstance(outcome, Success), outcome
            assert stream.generation == outcome.unwrap()
            return deltas, stream.generation

    result: tuple[list[str], Generation[Any]] = run(main)
    return result


def streamed(remote: Remote, face: str, mode: str, input: Any = PROMPT, schema: Any = None,
             **extra: Any) -> tuple[list[str], Generation[Any]]:
    if mode == "sync":
        return read(remote.stream(face, input, schema, **extra))
    return aread(remote.astream(face, input, schema, **extra))


# --- the answer: deltas, generation, generate -----------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("face", FACES)
def test_the_deltas_join_into_what_generate_returns(remote: Remote, face: str, mode: str,
                                                    planted: None) -> None:
    deltas, generation = streamed(remote, face, mode)
    assert len(deltas) > 1 and all(deltas)  # it really streams
    assert "".join(deltas) == generation.text == generation.parsed == ANSWER
    whole = remote.generate()
    assert generation == whole  # usage, finish reason, id, model, raw body: all of it
    assert (generation.usage, generation.finish_reason, generation.response_id) == (
        whole.usage, "stop", whole.response_id)
    assert generation.response_id in ("resp_emulated", "msg_fixed", "resp_fixed")
    sent = remote.requests[0]
    if remote.name == "gemini":
        assert sent.path.endswith(":streamGenerateContent?alt=sse")
    else:
        assert sent.json()["stream"] is True
    assert "stream" not in remote.requests[-1].json()  # generate's own request: not streamed


CONVERSATION = [{"role": "system", "content": "Be brief."},
                llmbackend.Message(role="user", content="two rivers")]
#: CONVERSATION as each provider's body, with its streaming switch (Gemini's is the path).
CONVERSATION_WIRE: dict[str, dict[str, Any]] = {
    "openai": {"model": "gpt-4o-mini", "instructions": "Be brief.", "input": "two rivers",
               "stream": True},
    "anthropic": {"model": "claude-sonnet-4-5", "max_tokens": 4096, "system": "Be brief.",
                  "messages": [{"role": "user", "content": "two rivers"}], "stream": True},
    "gemini": {"systemInstruction": {"parts": [{"text": "Be brief."}]},
               "contents": [{"role": "user", "parts": [{"text": "two rivers"}]}]},
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("face", FACES)
def test_a_list_of_messages_streams(remote: Remote, face: str, mode: str) -> None:
    deltas, generation = streamed(remote, face, mode, CONVERSATION)
    assert "".join(deltas) == generation.text == "Echo: two rivers"
    [sent] = remote.requests
    assert sent.json() == CONVERSATION_WIRE[remote.name]
    if remote.name == "gemini":
        assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


# --- a schema -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("face", FACES)
def test_a_schema_streams_raw_json_and_ends_validated(remote: Remote, face: str,
                                                      mode: str) -> None:
    deltas, generation = streamed(remote, face, mode, schema=ITEM)
    assert len(deltas) > 1
    assert json.loads("".join(deltas)) == {"title": "example"}  # the raw JSON text
    assert generation.text == "".join(deltas)
    assert isinstance(generation.parsed, Item) and generation.parsed == Item(title="example")
    assert generation.parsed == remote.generate(schema=ITEM).parsed


def plant_invalid(remote: Remote, text: str) -> None:
    """The next answer is ``text`` (not valid for ``Item``), streamed."""
    if remote.name == "openai":
        events, _ = response_events(openai_body(MODELS["openai"], text))
        remote.emulator.script.append(Scripted(200, b"", stream=Stream(tuple(events))))
    elif remote.name == "anthropic":
        remote.emulator.message_overrides[PROMPT] = message_body(
            MODELS["anthropic"], [{"type": "text", "text": text}])
    else:
        remote.emulator.overrides[PROMPT] = gemini_body(MODELS["gemini"], text)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("text", ['{"title": 5}', '{"title": "cut'])
def test_an_answer_the_schema_refuses_is_a_schema_validation_error(remote: Remote, mode: str,
                                                                   text: str) -> None:
    plant_invalid(remote, text)
    if mode == "sync":
        with remote.stream("top", schema=ITEM) as stream:
            outcome = stream.result()  # never raises
            with pytest.raises(SchemaValidationError):
                _ = stream.generation
    else:
        async def main() -> Any:
            async with remote.astream("top", schema=ITEM) as stream:
                return await stream.result(), stream

        outcome, stream = run(main)
        with pytest.raises(SchemaValidationError):
            _ = stream.generation
    assert isinstance(outcome, Failure)
    assert isinstance(outcome.failure(), SchemaValidationError)
    assert stream.text == text  # every delta was handed out before the end said no


# --- the stream object: result, generation, the end, close ----------------------------------------


def test_result_never_raises_and_generation_raises_the_error(remote: Remote) -> None:
    remote.emulator.stream_fault(error=True)
    stream = remote.stream("top")
    outcome = stream.result()  # read to the end, without raising
    assert isinstance(outcome, Failure) and isinstance(outcome.failure(), StreamError)
    with pytest.raises(StreamError) as raised:
        _ = stream.generation
    assert raised.value is outcome.failure()
    assert stream.finished and stream.result() is outcome  # asked again: the same outcome
    assert list(stream) == []  # after the end: nothing more, no error


@pytest.mark.parametrize("mode", MODES)
def test_iterating_after_the_end_yields_nothing(remote: Remote, mode: str) -> None:
    if mode == "sync":
        stream = remote.stream("client")
        first = list(stream)
        assert "".join(first) == ANSWER and stream.finished
        assert list(stream) == [] and list(stream) == []
        assert stream.generation.text == ANSWER
        assert "finished" in repr(stream)
    else:
        async def main() -> None:
            stream = remote.astream("client")
            with pytest.raises(RuntimeError, match="not finished"):
                _ = stream.generation  # the async twin cannot read the rest without awaiting
            assert "".join([d async for d in stream]) == ANSWER
            assert [d async for d in stream] == []
            assert stream.generation.text == ANSWER

        run(main)
    assert len(remote.requests) == 1


def wait_for_relay(faults: FaultServer, seconds: float = 5.0) -> Relayed:
    deadline = time.monotonic() + seconds
    while not faults.relayed and time.monotonic() < deadline:
        time.sleep(0.01)
    [relayed] = faults.relayed
    return relayed


def assert_closed_mid_stream(faults: FaultServer, closed_at: float, first: str,
                             outcome: Any) -> None:
    relayed = wait_for_relay(faults)
    assert relayed.gone and relayed.sent < relayed.total  # the client left mid-stream
    assert relayed.at - closed_at < 0.25  # at once: before the next event was due (0.3 s)
    assert first == FIRST
    assert isinstance(outcome, Failure)
    error = outcome.failure()
    assert isinstance(error, StreamError) and error.text == first
    assert "closed" in error.message


@pytest.mark.parametrize("how", ["close", "with"])
def test_closing_mid_stream_drops_the_connection_at_once(remote: Remote, how: str) -> None:
    with FaultServer(upstream=remote.emulator.base_url) as faults:
        faults.push(StreamRelay(interval=0.3))
        remote.base_url = faults.base_url
        stream = remote.stream("top", timeout=5)
        if how == "close":
            first = next(stream)
            stream.close()
            closed_at = time.monotonic()
            stream.close()  # idempotent
        else:
            with stream:
                for _ in stream:
                    break  # leave the block after the first delta
            closed_at = time.monotonic()
            first = stream.text
        outcome = stream.result()
        assert_closed_mid_stream(faults, closed_at, first, outcome)
        assert list(stream) == [] and stream.text == first and stream.finished


@pytest.mark.parametrize("how", ["aclose", "async with"])
def test_closing_an_async_stream_mid_stream_drops_the_connection_at_once(
        remote: Remote, how: str) -> None:
    with FaultServer(upstream=remote.emulator.base_url) as faults:
        faults.push(StreamRelay(interval=0.3))
        remote.base_url = faults.base_url

        async def main() -> tuple[str, float, Any]:
            stream = remote.astream("top", timeout=5)
            if how == "aclose":
                first = await anext(stream)
                await stream.aclose()
            else:
                async with stream:
                    async for _ in stream:
                        break  # leave the block after the first delta
                first = stream.text
            closed_at = time.monotonic()
            return first, closed_at, await stream.result()

        first, closed_at, outcome = run(main)
        assert_closed_mid_stream(faults, closed_at, first, outcome)


# --- bad arguments, warnings ----------------------------------------------------------------------


class NotAStructuredOutput(BaseModel):
    x: int


BAD_CALLS: dict[str, Callable[[Remote, str], Any]] = {
    "unknown config key": lambda r, m: getattr(r.client(), m)(PROMPT, {"temprature": 0.1}),
    "bad message list": lambda r, m: getattr(r.client(), m)([{"role": "wizard", "content": "x"}]),
    "empty message list": lambda r, m: getattr(r.client(), m)([]),
    "bad schema": lambda r, m: getattr(r.client(), m)(PROMPT, schema=NotAStructuredOutput),
    "bad timeout": lambda r, m: getattr(r.client(), m)(PROMPT, timeout=-1.0),
    "bad max_retries": lambda r, m: getattr(r.client(), m)(PROMPT, max_retries=-2),
    "top-level unknown config key": lambda r, m: getattr(llmbackend, m)(
        r.name, r.model, PROMPT, {"temprature": 0.1}, **r.options()),
}


@pytest.mark.parametrize("method", ["stream", "astream"])
@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_arguments_raise_at_once_before_anything_is_sent(remote: Remote, method: str,
                                                             case: str) -> None:
    with pytest.raises(ConfigurationError):
        BAD_CALLS[case](remote, method)
    assert remote.requests == []


@pytest.mark.parametrize("method", ["stream", "astream"])
def test_a_dropped_parameter_warns_at_the_callers_line(openai_env: Any, method: str) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini", drop_unsupported_params=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stream = getattr(client, method)(PROMPT, {"seed": 7})
    ours = [w for w in caught if issubclass(w.category, LLMBackendWarning)]
    assert len(ours) == 1 and "no 'seed' parameter" in str(ours[0].message)
    assert ours[0].filename == __file__
    assert openai_env.requests == []  # said when the stream was made, before it was read
    if method == "stream":
        with stream:
            assert "".join(stream) == f"Echo: {PROMPT}"
    else:
        async def main() -> str:
            async with stream:
                return "".join([d async for d in stream])

        assert run(main) == f"Echo: {PROMPT}"
    [sent] = openai_env.requests
    assert "seed" not in sent.json() and sent.json()["stream"] is True


# --- errors and retries before any text -----------------------------------------------------------


def error_reply(remote: Remote, status: int, message: str) -> dict[str, Any]:
    if remote.name == "gemini":
        return {"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}}
    if remote.name == "anthropic":
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return {"error": {"message": message, "type": "invalid_request_error", "param": None,
                      "code": "invalid_api_key" if status == 401 else None}}


def first_error(stream: Any, mode: str) -> LLMError:
    """The error the first iteration raises (nothing handed out before it)."""
    if mode == "sync":
        with stream, pytest.raises(LLMError) as raised:
            next(stream)
        assert stream.text == ""
        return raised.value

    async def main() -> LLMError:
        async with stream:
            with pytest.raises(LLMError) as raised:
                await anext(stream)
            assert stream.text == ""
            return raised.value

    error: LLMError = run(main)
    return error


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("status", [400, 401])
def test_an_error_status_is_generates_error_raised_at_first_iteration_without_the_key(
        remote: Remote, mode: str, status: int) -> None:
    # a hostile body echoes the key: it must not reach the error's text
    message = f"Incorrect API key provided: {remote.key}"
    for _ in range(2):
        remote.emulator.reply(status, error_reply(remote, status, message))
    stream = remote.stream("top") if mode == "sync" else remote.astream("top")
    error = first_error(stream, mode)
    whole = llmbackend.generate(remote.name, remote.model, PROMPT, **remote.options())
    assert isinstance(whole, Failure)
    expected = whole.failure()
    assert isinstance(error, HTTPStatusError) and type(error) is type(expected)
    assert error.status == expected.status == status
    assert (error.error_type, error.error_code) == (expected.error_type, expected.error_code)
    assert error.message == expected.message
    for shown in (str(error), repr(error), error.message, error.body or ""):
        assert remote.key not in shown
    assert len(remote.requests) == 2  # not retried: one each


@pytest.mark.parametrize("mode", MODES)
def test_a_server_error_before_any_text_is_retried(remote: Remote, mode: str) -> None:
    remote.emulator.reply(500, error_reply(remote, 500, "boom"))
    deltas, generation = streamed(remote, "client", mode)
    assert "".join(deltas) == generation.text == ANSWER
    assert len(remote.requests) == 2


@pytest.mark.parametrize("mode", MODES)
def test_a_429_with_retry_after_waits_then_streams(remote: Remote, mode: str) -> None:
    remote.emulator.reply(429, error_reply(remote, 429, "slow down"),
                          headers={"Retry-After": "1"})
    started = time.monotonic()
    deltas, generation = streamed(remote, "top", mode)
    assert time.monotonic() - started >= 0.9  # the wait the server asked for
    assert "".join(deltas) == generation.text == ANSWER
    assert len(remote.requests) == 2


@pytest.mark.parametrize("mode", MODES)
def test_no_retries_gives_the_error(remote: Remote, mode: str) -> None:
    remote.emulator.reply(500, error_reply(remote, 500, "boom"))
    stream = (remote.client().stream(PROMPT, max_retries=0) if mode == "sync"
              else remote.client().astream(PROMPT, max_retries=0))
    error = first_error(stream, mode)
    assert isinstance(error, HTTPStatusError) and error.status == 500
    assert not isinstance(error, StreamError)
    assert len(remote.requests) == 1


# --- local: the tiny model on transformers --------------------------------------------------------


@pytest.fixture(scope="module")
def local(tiny_model: Path) -> Iterator[llmbackend.Client]:
    pytest.importorskip("transformers")
    client = llmbackend.client("transformers", str(tiny_model), apply_chat_template=True)
    yield client
    client.close()


LOCAL_CONFIG = {"max_tokens": 12}


@pytest.mark.runtime
def test_a_local_model_streams_what_generate_returns(local: llmbackend.Client) -> None:
    with local.stream("Once upon a time", LOCAL_CONFIG) as stream:
        deltas = list(stream)
        generation = stream.generation
    assert deltas and "".join(deltas) == generation.text
    whole = local.generate("Once upon a time", LOCAL_CONFIG)
    assert isinstance(whole, Success)
    assert whole.unwrap().text == generation.text  # greedy: the same tokens
    assert whole.unwrap().finish_reason == generation.finish_reason


@pytest.mark.runtime
def test_a_local_model_streams_on_an_event_loop(local: llmbackend.Client) -> None:
    async def main() -> tuple[list[str], Generation[str]]:
        async with local.astream("Once upon a time", LOCAL_CONFIG) as stream:
            deltas = [delta async for delta in stream]
            outcome = await stream.result()
        assert isinstance(outcome, Success), outcome
        return deltas, outcome.unwrap()

    deltas, generation = run(main)
    assert "".join(deltas) == generation.text
    whole = local.generate("Once upon a time", LOCAL_CONFIG)
    assert isinstance(whole, Success) and whole.unwrap().text == generation.text


@pytest.mark.runtime
def test_a_timeout_on_a_local_stream_is_a_configuration_error(local: llmbackend.Client) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        local.stream("hi", timeout=1.0)
    with pytest.raises(ConfigurationError, match="max_retries"):
        local.astream("hi", max_retries=1)

