"""The three loopback emulators stream their answers in each provider's wire format: the
official SDKs read them (joined deltas and final objects equal the non-streaming answers),
llmbackend's own pure stream readers rebuild what ``llmbackend.generate`` returns, and each
scripted fault (a cut, an error event, a trickle, a stall) does what it says."""

from __future__ import annotations

import itertools
import json
import statistics
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from anthropic import Anthropic
from google import genai
from google.genai.types import HttpOptions
from openai import OpenAI
from returns.result import Failure, Success

import llmbackend
from llmbackend.providers import open_stream_reader
from llmbackend.streams import ServerEvent
from llmbackend.types import Generation, GenerationRequest
from tests.anthropic_emulator import ANTHROPIC_VERSION, AnthropicEmulator, message_body
from tests.anthropic_emulator import API_KEY as ANTHROPIC_KEY
from tests.emulator import API_KEY, OpenAIEmulator
from tests.gemini_emulator import API_KEY as GEMINI_KEY
from tests.gemini_emulator import GeminiEmulator, response_body
from tests.sse import events_of

PROMPT = "tell me a short story about streams"
GEMINI_MODEL = "gemini-2.5-flash"
CLAUDE = "claude-sonnet-4-5"
# Planted whole answers with fixed ids (the default ones draw a fresh id per call), so that a
# stream and a whole call can be compared object for object.
CLAUDE_ANSWER = message_body(CLAUDE, [{"type": "text", "text": "Once upon a time, a stream."}],
                             input_tokens=7, output_tokens=6, message_id="msg_fixed")
GEMINI_ANSWER = response_body(GEMINI_MODEL, "Once upon a time, a stream ran.", prompt_tokens=7,
                              response_id="resp_fixed")


# --- raw access -----------------------------------------------------------------------------------


def openai_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {API_KEY}"}


def anthropic_headers() -> dict[str, str]:
    return {"x-api-key": ANTHROPIC_KEY, "anthropic-version": ANTHROPIC_VERSION}


def gemini_headers() -> dict[str, str]:
    return {"x-goog-api-key": GEMINI_KEY}


def post(url: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, json=body, headers=headers, timeout=10)


def timed_events(url: str, body: Any, headers: dict[str, str]
                 ) -> tuple[httpx.Response, list[tuple[float, ServerEvent]]]:
    """Each event of a stream with the time (since the request) its last byte came."""
    started = time.monotonic()
    timed: list[tuple[float, ServerEvent]] = []
    with httpx.stream("POST", url, json=body, headers=headers, timeout=10) as response:
        buffer = b""
        for chunk in response.iter_bytes():
            buffer += chunk
            while True:
                cut = min((at for at in (buffer.find(b"\n\n"), buffer.find(b"\r\n\r\n"))
                           if at >= 0), default=-1)
                if cut < 0:
                    break
                sep = 4 if buffer[cut:cut + 4] == b"\r\n\r\n" else 2
                frame, buffer = buffer[:cut + sep], buffer[cut + sep:]
                timed += [(time.monotonic() - started, event) for event in events_of([frame])]
    return response, timed


@pytest.fixture
def claude(anthropic_emulator: AnthropicEmulator) -> Iterator[Anthropic]:
    # the fixture takes only x-api-key (as llmbackend sends it): the SDK sends it along too
    with Anthropic(base_url=anthropic_emulator.base_url, api_key=ANTHROPIC_KEY, max_retries=0,
                   default_headers={"x-api-key": ANTHROPIC_KEY}) as client:
        yield client


def openai_body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "input": PROMPT, **extra}


def claude_body(**extra: Any) -> dict[str, Any]:
    return {"model": CLAUDE, "max_tokens": 100,
            "messages": [{"role": "user", "content": PROMPT}], **extra}


def gemini_body() -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}


def gemini_url(emulator: GeminiEmulator, method: str = "streamGenerateContent?alt=sse") -> str:
    return f"{emulator.base_url}/v1beta/models/{GEMINI_MODEL}:{method}"


@pytest.fixture
def planted(anthropic_emulator: AnthropicEmulator, gemini_emulator: GeminiEmulator
            ) -> Iterator[None]:
    anthropic_emulator.message_overrides[PROMPT] = CLAUDE_ANSWER
    gemini_emulator.overrides[PROMPT] = GEMINI_ANSWER
    yield


# --- the official SDKs ----------------------------------------------------------------------------


def test_openai_sdk_streams_the_whole_answer(emulator: OpenAIEmulator,
                                             request: pytest.FixtureRequest) -> None:
    client = OpenAI(base_url=emulator.base_url, api_key=API_KEY, max_retries=0)
    request.addfinalizer(client.close)  # its connections, closed (no ResourceWarning later)
    whole = client.responses.create(model="gpt-4o-mini", input=PROMPT)
    deltas: list[str] = []
    final = None
    numbers: list[int] = []
    for event in client.responses.create(model="gpt-4o-mini", input=PROMPT, stream=True):
        numbers.append(event.sequence_number)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.completed":
            final = event.response
    assert len(deltas) > 1
    assert "".join(deltas) == whole.output_text
    assert final == whole
    assert numbers == list(range(len(numbers)))
    assert emulator.requests[-1].json()["stream"] is True


def test_openai_stream_is_the_recorded_event_sequence(emulator: OpenAIEmulator) -> None:
    response = post(emulator.base_url + "/responses", openai_body(stream=True), openai_headers())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = events_of([response.content])
    kinds = [event.event for event in events]
    deltas = kinds.count("response.output_text.delta")
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * deltas,
                     "response.output_text.done", "response.content_part.done",
                     "response.output_item.done", "response.completed"]
    assert all(json.loads(event.data)["type"] == event.event for event in events)
    whole = post(emulator.base_url + "/responses", openai_body(), openai_headers()).json()
    assert json.loads(events[-1].data)["response"] == whole


def test_anthropic_sdk_streams_the_whole_message(claude: Anthropic, planted: None) -> None:
    client = claude
    params = claude_body()
    whole = client.messages.create(**params)
    with client.messages.stream(**params) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(deltas) > 1
    assert "".join(deltas) == whole.content[0].text == CLAUDE_ANSWER["content"][0]["text"]
    assert final.model_dump() == whole.model_dump()  # the stream's is a ParsedMessage


def test_anthropic_default_answer_streams_too(claude: Anthropic) -> None:
    client = claude
    whole = client.messages.create(**claude_body())
    with client.messages.stream(**claude_body()) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text == f"Echo: {PROMPT}"
    assert final.model_dump() == {**whole.model_dump(), "id": final.id}  # ids are per call


def test_anthropic_stream_is_the_recorded_event_sequence(anthropic_emulator: AnthropicEmulator,
                                                         planted: None) -> None:
    response = post(anthropic_emulator.base_url + "/v1/messages", claude_body(stream=True),
                    anthropic_headers())
    assert response.headers["content-type"].startswith("text/event-stream")
    kinds = [event.event for event in events_of([response.content])]
    deltas = kinds.count("content_block_delta")
    assert deltas > 1
    assert kinds == ["message_start", "content_block_start", "ping",
                     *["content_block_delta"] * deltas, "content_block_stop", "message_delta",
                     "message_stop"]


def test_gemini_sdk_streams_the_whole_answer(gemini_emulator: GeminiEmulator, planted: None,
                                             request: pytest.FixtureRequest) -> None:
    client = genai.Client(api_key=GEMINI_KEY, http_options=HttpOptions(
        base_url=gemini_emulator.base_url, api_version="v1beta"))
    request.addfinalizer(client.close)
    whole = client.models.generate_content(model=GEMINI_MODEL, contents=PROMPT)
    chunks = list(client.models.generate_content_stream(model=GEMINI_MODEL, contents=PROMPT))
    assert len(chunks) > 1
    assert "".join(chunk.text or "" for chunk in chunks) == whole.text
    assert chunks[-1].candidates[0].finish_reason == whole.candidates[0].finish_reason
    assert chunks[-1].usage_metadata == whole.usage_metadata
    assert all(chunk.candidates[0].finish_reason is None for chunk in chunks[:-1])
    assert gemini_emulator.requests[-1].path.endswith(":streamGenerateContent?alt=sse")


def test_gemini_stream_wire_format(gemini_emulator: GeminiEmulator, planted: None) -> None:
    response = post(gemini_url(gemini_emulator), gemini_body(), gemini_headers())
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.content.startswith(b"data: {") and response.content.endswith(b"}\r\n\r\n")
    frames = response.content.split(b"\r\n\r\n")[:-1]
    assert len(frames) > 1 and all(frame.startswith(b"data: ") for frame in frames)
    # without alt=sse: the same chunks as one JSON array
    array = post(gemini_url(gemini_emulator, "streamGenerateContent"), gemini_body(),
                 gemini_headers()).json()
    assert array == [json.loads(event.data) for event in events_of([response.content])]


# --- llmbackend's own readers, against generate ---------------------------------------------------


def read(provider: str, model: str, body: bytes) -> Any:
    reader = open_stream_reader(provider, GenerationRequest(model=model, input=PROMPT))
    for event in events_of([body]):
        assert isinstance(reader.feed(event), Success)
    return reader.finish()


def whole_generation(result: Any) -> Generation[str]:
    assert isinstance(result, Success), result
    generation: Generation[str] = result.unwrap()
    return generation


def test_openai_reader_rebuilds_generate(emulator: OpenAIEmulator) -> None:
    whole = whole_generation(llmbackend.generate("openai", "gpt-4o-mini", PROMPT,
                                                 api_key=API_KEY, base_url=emulator.base_url))
    sent = emulator.requests[-1].json()
    body = post(emulator.base_url + "/responses", {**sent, "stream": True}, openai_headers())
    assert whole_generation(read("openai", "gpt-4o-mini", body.content)) == whole


def test_anthropic_reader_rebuilds_generate(anthropic_emulator: AnthropicEmulator,
                                            planted: None) -> None:
    whole = whole_generation(llmbackend.generate(
        "anthropic", CLAUDE, PROMPT, api_key=ANTHROPIC_KEY,
        base_url=anthropic_emulator.base_url))
    sent = anthropic_emulator.requests[-1].json()
    body = post(anthropic_emulator.base_url + "/v1/messages", {**sent, "stream": True},
                anthropic_headers())
    assert whole_generation(read("anthropic", CLAUDE, body.content)) == whole


def test_gemini_reader_rebuilds_generate(gemini_emulator: GeminiEmulator,
                                         planted: None) -> None:
    whole = whole_generation(llmbackend.generate(
        "gemini", GEMINI_MODEL, PROMPT, api_key=GEMINI_KEY, base_url=gemini_emulator.base_url))
    sent = gemini_emulator.requests[-1].json()
    body = post(gemini_url(gemini_emulator), sent, gemini_headers())
    assert whole_generation(read("gemini", GEMINI_MODEL, body.content)) == whole


# --- before the stream starts: errors, scripted replies, latency ----------------------------------


def test_errors_before_a_stream_are_json_with_their_status(
        emulator: OpenAIEmulator, anthropic_emulator: AnthropicEmulator,
        gemini_emulator: GeminiEmulator) -> None:
    refused = post(emulator.base_url + "/responses", openai_body(stream=True), {})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    emulator.reply(429, {"error": {"message": "slow down", "type": "rate_limit"}}, delay=0.05)
    scripted = post(emulator.base_url + "/responses", openai_body(stream=True), openai_headers())
    assert (scripted.status_code, scripted.json()["error"]["message"]) == (429, "slow down")
    anthropic_emulator.message_errors[PROMPT] = (529, "overloaded_error", "Overloaded")
    overloaded = post(anthropic_emulator.base_url + "/v1/messages", claude_body(stream=True),
                      anthropic_headers())
    assert overloaded.status_code == 529
    assert overloaded.headers["content-type"] == "application/json"
    assert overloaded.json()["error"]["type"] == "overloaded_error"
    gemini_emulator.errors[PROMPT] = (503, "UNAVAILABLE", "The model is overloaded.")
    unavailable = post(gemini_url(gemini_emulator), gemini_body(), gemini_headers())
    assert (unavailable.status_code, unavailable.json()["error"]["status"]) == (
        503, "UNAVAILABLE")
    no_key = post(gemini_url(gemini_emulator), gemini_body(), {})
    assert no_key.status_code == 400
    # every stream request is recorded, as the others are
    assert len(emulator.requests) == 2 and len(gemini_emulator.requests) == 2
    assert len(anthropic_emulator.requests) == 1


def test_latency_applies_to_streams(gemini_emulator: GeminiEmulator) -> None:
    gemini_emulator.latency = 0.3
    started = time.monotonic()
    response = post(gemini_url(gemini_emulator), gemini_body(), gemini_headers())
    assert response.status_code == 200 and time.monotonic() - started >= 0.3
    assert gemini_emulator.max_in_flight == 1


# --- scripted faults ------------------------------------------------------------------------------

FINAL = {"openai": "response.completed", "anthropic": "message_stop"}


def test_a_cut_stream_lacks_its_final_event(emulator: OpenAIEmulator,
                                            anthropic_emulator: AnthropicEmulator,
                                            gemini_emulator: GeminiEmulator) -> None:
    emulator.stream_fault(cut=True)
    cut = events_of([post(emulator.base_url + "/responses", openai_body(stream=True),
                          openai_headers()).content])
    assert cut and FINAL["openai"] not in [event.event for event in cut]
    assert isinstance(read("openai", "gpt-4o-mini", b"".join(
        f"event: {e.event}\ndata: {e.data}\n\n".encode() for e in cut)), Failure)
    whole = events_of([post(emulator.base_url + "/responses", openai_body(stream=True),
                            openai_headers()).content])  # the fault was for one stream only
    assert whole[-1].event == FINAL["openai"]
    anthropic_emulator.stream_fault(cut=True)
    kinds = [event.event for event in events_of([post(
        anthropic_emulator.base_url + "/v1/messages", claude_body(stream=True),
        anthropic_headers()).content])]
    assert kinds[-1] == "message_delta" and FINAL["anthropic"] not in kinds
    gemini_emulator.stream_fault(cut=True)
    chunks = [json.loads(event.data) for event in events_of([post(
        gemini_url(gemini_emulator), gemini_body(), gemini_headers()).content])]
    assert chunks and not any("finishReason" in chunk["candidates"][0] for chunk in chunks)


def test_an_error_event_follows_the_first_delta(emulator: OpenAIEmulator,
                                                anthropic_emulator: AnthropicEmulator,
                                                gemini_emulator: GeminiEmulator) -> None:
    emulator.stream_fault(error=True)
    events = events_of([post(emulator.base_url + "/responses", openai_body(stream=True),
                             openai_headers()).content])
    assert [event.event for event in events[-2:]] == ["response.output_text.delta", "error"]
    assert json.loads(events[-1].data)["sequence_number"] == len(events) - 1
    anthropic_emulator.stream_fault(error=True)
    events = events_of([post(anthropic_emulator.base_url + "/v1/messages",
                             claude_body(stream=True), anthropic_headers()).content])
    assert [event.event for event in events[-2:]] == ["content_block_delta", "error"]
    assert json.loads(events[-1].data)["error"]["type"] == "overloaded_error"
    gemini_emulator.stream_fault(error=True)
    body = post(gemini_url(gemini_emulator), gemini_body(), gemini_headers()).content
    chunks = [json.loads(event.data) for event in events_of([body])]
    assert len(chunks) == 2 and "text" in chunks[0]["candidates"][0]["content"]["parts"][0]
    assert chunks[1]["error"]["status"] == "INTERNAL"
    failed = read_failure("gemini", GEMINI_MODEL, body)
    assert "INTERNAL" in failed.message or "Internal" in failed.message


def read_failure(provider: str, model: str, body: bytes) -> Any:
    reader = open_stream_reader(provider, GenerationRequest(model=model, input=PROMPT))
    for event in events_of([body]):
        fed = reader.feed(event)
        if isinstance(fed, Failure):
            return fed.failure()
    raise AssertionError("the stream reported no error")


def test_a_trickling_stream_waits_between_events(anthropic_emulator: AnthropicEmulator) -> None:
    anthropic_emulator.stream_fault(trickle=0.05)
    response, timed = timed_events(anthropic_emulator.base_url + "/v1/messages",
                                   claude_body(stream=True), anthropic_headers())
    assert response.status_code == 200
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(timed)]
    # each event waits 0.05 s (a gap the client sees may shrink if it read the one before late)
    assert len(gaps) >= 6 and statistics.median(gaps) >= 0.04
    assert sum(gaps) >= 0.05 * len(gaps) - 0.03
    assert timed[-1][1].event == "message_stop"


def test_a_stalled_stream_keeps_the_connection_open(emulator: OpenAIEmulator,
                                                    gemini_emulator: GeminiEmulator) -> None:
    emulator.stream_fault(stall=0.3)
    _, timed = timed_events(emulator.base_url + "/responses", openai_body(stream=True),
                            openai_headers())
    kinds = [event.event for _, event in timed]
    first = kinds.index("response.output_text.delta")
    # silence, then the rest (a little slack: the client may see the delta itself late)
    assert timed[first + 1][0] - timed[first][0] >= 0.25
    assert max(later - earlier for (earlier, _), (later, _)
               in itertools.pairwise(timed[first + 1:])) < 0.2
    assert kinds[-1] == "response.completed"
    gemini_emulator.stream_fault(stall=0.3)
    _, timed = timed_events(gemini_url(gemini_emulator), gemini_body(), gemini_headers())
    assert timed[1][0] - timed[0][0] >= 0.25
    with pytest.raises(httpx.ReadTimeout):  # a reader with a shorter timeout sees the stall
        emulator.stream_fault(stall=0.3)
        with httpx.stream("POST", emulator.base_url + "/responses", json=openai_body(
                stream=True), headers=openai_headers(), timeout=0.1) as response:
            for _ in response.iter_bytes():
                pass
