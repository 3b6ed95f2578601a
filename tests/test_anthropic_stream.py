"""The Anthropic stream: ``build_stream`` and ``MessageStreamReader`` against the recorded
streams (tests/data/streams/anthropic), any chunking of them, the ``anthropic`` SDK's own stream
reader (``messages.stream``) as an oracle, and faults synthesised from the recordings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from returns.result import Failure, Result, Success

from llmbackend.errors import (
    HTTPStatusError,
    LLMError,
    NoTextError,
    ProviderError,
    RefusalError,
    ResponseParseError,
    StreamError,
    ToolCallError,
    TransportError,
    TruncationError,
    UnsupportedError,
)
from llmbackend.messages import Message
from llmbackend.providers import anthropic, open_stream_reader, registration
from llmbackend.providers.anthropic_stream import MessageStreamReader
from llmbackend.streams import ServerEvent
from llmbackend.types import (
    Generation,
    GenerationConfig,
    GenerationRequest,
    StructuredOutput,
    Usage,
)
from tests import strategies
from tests.sse import capturing, events_of, recorded, serving, splits
from tests.test_anthropic import conversations

REQUEST = GenerationRequest(model="claude-sonnet-4-5", input="Two names for a pet pelican")
NAMES = ("text_basic", "thinking", "tool_use", "refusal")

# What each recording holds, read off the file (tests/data/streams/README.md).
EXPECTED: dict[str, dict[str, Any]] = {
    "text_basic": {
        "deltas": ["-", " Captain", "\n- Sc", "oop"],
        # message_delta's running total (10), not message_start's 1 + 10
        # message_start's usage (with the cache split and the tier), message_delta's totals
        "usage": Usage(input_tokens=17, output_tokens=10, cached_input_tokens=0,
                       cache_write_tokens=0, cache_write_5m_tokens=0, cache_write_1h_tokens=0,
                       service_tier="standard"),
        "finish_reason": "stop", "stop_reason": "end_turn",
        "model": "claude-sonnet-4-5-20250929", "id": "msg_014Z12bJxZvKUjLkhBzUz358"},
    "thinking": {
        "deltas": ["Scoop and Beaky"],
        # message_delta gives only output_tokens: input_tokens stays message_start's 45
        "usage": Usage(input_tokens=45, output_tokens=94, cached_input_tokens=0,
                       cache_write_tokens=0),
        "finish_reason": "stop", "stop_reason": "end_turn",
        "model": "claude-3-7-sonnet-20250219", "id": "msg_01SNKQD4WaGocVoAVDeL7eZX"},
    "tool_use": {
        "deltas": ["I", "'ll", " help", " you generate", " two names for a pet", " pelican using",
                   " the pel", "ican name", " generator tool."],
        "usage": Usage(input_tokens=310, output_tokens=82, cached_input_tokens=0,
                       cache_write_tokens=0),
        # text and tool calls: returned as text, saying so
        "finish_reason": "tool_calls", "stop_reason": "tool_use",
        "model": "claude-3-5-haiku-latest", "id": "msg_015S7FCRZ7rzjcyuJgzDu35c"},
}
THINKING = ("The person is asking for two names for a pet pelican, and they want me to be brief "
            "in my response. I'll provide two concise, creative names that would suit a "
            "pelican:\n\n1. Something that relates to their large beak/pouch\n2. Something that "
            "relates to water/fishing\n\nI'll keep my response very short as requested.")
OVERLOADED: dict[str, Any] = {"type": "error", "error": {"type": "overloaded_error",
                                                         "message": "Overloaded"}}


def events(name: str) -> list[tuple[str, dict[str, Any]]]:
    """The recording's events: each name and its data, decoded."""
    return [(event.event, json.loads(event.data))
            for event in events_of([recorded("anthropic", name)])]


def data_of(name: str, kind: str) -> list[dict[str, Any]]:
    return [data for _, data in events(name) if data["type"] == kind]


def sse(*items: tuple[str, dict[str, Any] | str]) -> bytes:
    """An SSE body as Anthropic writes one (named events, ``\\n`` line endings)."""
    return b"".join(
        f"event: {name}\ndata: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
        for name, data in items)


def edited(name: str, change: Any) -> list[tuple[str, Any]]:
    """The recording's events, each data passed through ``change`` (a copy to edit, returned,
    or ``None`` to drop the event)."""
    out = []
    for event_name, data in events(name):
        new = change(json.loads(json.dumps(data)))
        if new is not None:
            out.append((event_name, new))
    return out


def read(events_: list[ServerEvent], request: GenerationRequest = REQUEST
         ) -> tuple[list[Result[str, LLMError]], Result[Generation[str], LLMError], str]:
    """Feed ``events_`` (stopping at the first failure, as the shell does): the feed results,
    the finish, and the reader's text."""
    reader = open_stream_reader("anthropic", request)
    fed: list[Result[str, LLMError]] = []
    for event in events_:
        fed.append(reader.feed(event))
        if isinstance(fed[-1], Failure):
            break
    return fed, reader.finish(), reader.text


def read_body(body: bytes, request: GenerationRequest = REQUEST
              ) -> tuple[list[Result[str, LLMError]], Result[Generation[str], LLMError], str]:
    return read(events_of([body]), request)


def texts(fed: list[Result[str, LLMError]]) -> list[str]:
    return [result.unwrap() for result in fed if isinstance(result, Success) and result.unwrap()]


def whole_call_body(name: str) -> dict[str, Any]:
    """The message ``POST /v1/messages`` answers for the same answer without streaming, written
    out from the recording by hand: message_start's message, its final content blocks, the
    stop reason and message_delta's usage over message_start's."""
    (start,) = data_of(name, "message_start")
    (delta,) = data_of(name, "message_delta")
    message = start["message"]
    contents: dict[str, list[dict[str, Any]]] = {
        "text_basic": [{"type": "text", "text": "- Captain\n- Scoop"}],
        "thinking": [
            {"type": "thinking", "thinking": THINKING, "signature": signature_of("thinking")},
            {"type": "text", "text": "Scoop and Beaky"}],
        "tool_use": [
            {"type": "text", "text": "".join(EXPECTED["tool_use"]["deltas"])},
            {"type": "tool_use", "id": "toolu_017ngBid8gmdReTeroVSZf7r",
             "name": "pelican_name_generator", "input": {}},
            {"type": "tool_use", "id": "toolu_01FJrHJrmnfEqR6NxkQ3yhpu",
             "name": "pelican_name_generator", "input": {}}],
        "refusal": [],
    }
    content = contents[name]
    body = {**message, "content": content, "stop_reason": delta["delta"]["stop_reason"],
            "usage": {**message["usage"], **delta["usage"]}}
    if delta["delta"].get("stop_details") is not None:
        body["stop_details"] = delta["delta"]["stop_details"]
    return body


def signature_of(name: str) -> str | None:
    """The recording's one ``signature_delta`` signature."""
    return next((data["delta"]["signature"] for data in data_of(name, "content_block_delta")
                 if data["delta"]["type"] == "signature_delta"), None)


def without_nones(value: Any) -> Any:
    """``value`` with every ``None`` field left out (the SDK's models write unset fields as
    ``None``; the wire leaves them out)."""
    if isinstance(value, dict):
        return {key: without_nones(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nones(item) for item in value]
    return value


# --- the recordings -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["text_basic", "thinking", "tool_use"])
def test_a_recorded_stream_gives_its_deltas_and_the_whole_calls_generation(name: str) -> None:
    fed, finished, text = read_body(recorded("anthropic", name))
    expected = EXPECTED[name]
    assert texts(fed) == expected["deltas"]
    assert all(isinstance(result, Success) for result in fed)
    generation = finished.unwrap()
    assert text == "".join(expected["deltas"]) == generation.text == generation.parsed
    assert (generation.usage, generation.finish_reason, generation.model,
            generation.response_id, generation.provider) == (
        expected["usage"], expected["finish_reason"], expected["model"], expected["id"],
        "anthropic")
    assert generation.raw["stop_reason"] == expected["stop_reason"]
    # by construction, what the whole call's parser gives for the body it would have answered
    assert finished == anthropic.parse_message_object(REQUEST, whole_call_body(name))


def test_the_recorded_refusal_is_the_whole_calls_refusal() -> None:
    # refusal.sse: no content block at all, stop_reason "refusal" with stop_details (the
    # recording's model name is doubtful, see the README: not relied on)
    fed, finished, text = read_body(recorded("anthropic", "refusal"))
    assert texts(fed) == [] and text == ""
    error = finished.failure()
    assert type(error) is RefusalError and error.text == "" and error.provider == "anthropic"
    assert finished == anthropic.parse_message_object(REQUEST, whole_call_body("refusal"))
    reader = MessageStreamReader(REQUEST)
    for event in events_of([recorded("anthropic", "refusal")]):
        reader.feed(event)
    assert reader.message()["stop_details"]["category"] == "reasoning_extraction"
    assert reader.message()["usage"]["output_tokens_details"] == {"thinking_tokens": 0}


def test_thinking_never_reaches_the_text_but_stays_in_raw() -> None:
    fed, finished, text = read_body(recorded("anthropic", "thinking"))
    generation = finished.unwrap()
    # 11 thinking deltas and a signature delta gave no text
    assert [result.unwrap() for result in fed].count("") == len(fed) - 1
    assert "pelican" not in text and "pelican" not in generation.text
    thinking, answer = generation.raw["content"]
    assert thinking["thinking"] == THINKING and thinking["signature"].startswith("EuYBCkQY")
    assert answer == {"type": "text", "text": "Scoop and Beaky"}


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NAMES).flatmap(
    lambda name: st.tuples(st.just(name), splits(recorded("anthropic", name)))))
def test_any_chunking_gives_the_same_deltas_and_result(case: tuple[str, list[bytes]]) -> None:
    name, chunks = case
    assert read(events_of(chunks)) == read_body(recorded("anthropic", name))


# --- the anthropic SDK as the oracle --------------------------------------------------------------


def sdk_stream(body: bytes) -> tuple[list[str], Any]:
    """The SDK's ``messages.stream`` over ``body``: its ``text_stream`` and final message."""
    sdk = pytest.importorskip("anthropic")
    with serving(body) as url:
        client = sdk.Anthropic(base_url=url, api_key="x", max_retries=0)
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                                    messages=[{"role": "user", "content": "Hello"}]) as stream:
            return list(stream.text_stream), stream.get_final_message()


@pytest.mark.parametrize("name", NAMES)
def test_the_sdk_reads_the_same_text_usage_and_message(name: str) -> None:
    body = recorded("anthropic", name)
    sdk_texts, final = sdk_stream(body)
    reader = MessageStreamReader(REQUEST)
    fed = [reader.feed(event) for event in events_of([body])]
    assert texts(fed) == sdk_texts
    assert reader.text == "".join(sdk_texts) == "".join(
        block.text for block in final.content if block.type == "text")
    # the whole rebuilt message, field by field, is the SDK's
    assert without_nones(reader.message()) == without_nones(final.to_dict())
    finished = reader.finish()
    generation = finished.unwrap() if isinstance(finished, Success) else None
    if generation is None:
        assert final.stop_reason == "refusal" and isinstance(finished.failure(), RefusalError)
        return
    # normalized as Usage says: all the input tokens (Anthropic's input_tokens are the
    # uncached ones), the cache reads and writes among them, the split and the tier as given
    sdk = final.usage
    split = sdk.cache_creation
    assert generation.usage == Usage(
        input_tokens=sdk.input_tokens + (sdk.cache_read_input_tokens or 0)
        + (sdk.cache_creation_input_tokens or 0), output_tokens=sdk.output_tokens,
        cached_input_tokens=sdk.cache_read_input_tokens,
        cache_write_tokens=sdk.cache_creation_input_tokens,
        cache_write_5m_tokens=split.ephemeral_5m_input_tokens if split else None,
        cache_write_1h_tokens=split.ephemeral_1h_input_tokens if split else None,
        service_tier=sdk.service_tier)
    assert (generation.response_id, generation.model) == (final.id, final.model)
    assert generation.finish_reason == ("tool_calls" if final.stop_reason == "tool_use"
                                        else "stop")


def test_the_sdk_raises_the_error_event_we_report() -> None:
    sdk = pytest.importorskip("anthropic")
    # text_basic with an error event after its second text delta
    items = events("text_basic")
    body = sse(*items[:4], ("error", OVERLOADED), *items[4:])
    with pytest.raises(sdk.APIStatusError) as raised:
        sdk_stream(body)
    error = read_body(body)[1].failure()
    assert isinstance(error, StreamError) and isinstance(error.error, ProviderError)
    assert raised.value.body == OVERLOADED
    assert (error.error.error_type, error.text) == (OVERLOADED["error"]["type"], "- Captain")


def test_the_sdk_streams_with_our_path_and_body() -> None:
    sdk = pytest.importorskip("anthropic")
    with capturing(recorded("anthropic", "text_basic")) as (url, seen):
        client = sdk.Anthropic(base_url=url, api_key="x", max_retries=0)
        with client.messages.stream(
                model="claude-sonnet-4-5", max_tokens=64, system="Be brief.",
                stop_sequences=["END"],
                messages=[{"role": "user", "content": "Hello"}]) as stream:
            stream.until_done()
    ours = anthropic.build_stream(GenerationRequest(
        model="claude-sonnet-4-5", input=(Message("system", "Be brief."),
                                          Message("user", "Hello")),
        config=GenerationConfig(max_tokens=64, extra={"stop": "END"}))).unwrap()
    # the SDK (2.16) names a newer anthropic-version than llmbackend's API_VERSION: not compared
    assert seen == [(ours.path, ours.json)]
    assert ours.headers["anthropic-version"] == anthropic.API_VERSION
    assert ours.json["stream"] is True


# --- the builder ----------------------------------------------------------------------------------


@settings(max_examples=80)
@given(strategies.prompts | conversations, strategies.anthropic_configs,
       st.none() | strategies.json_schemas, st.sampled_from(["native", "tool"]),
       st.sampled_from(["official", "compatible"]))
def test_the_stream_request_is_the_whole_call_with_stream_on(
    prompt: str | tuple[Message, ...], config: GenerationConfig,
    schema: dict[str, Any] | None, method: str, server: str,
) -> None:
    request = GenerationRequest(
        model="claude-sonnet-4-5", input=prompt, config=config,
        schema=StructuredOutput(schema=schema) if schema else None,
        options={"structured_output": method, "server": server})
    whole, streamed = anthropic.build_messages_request(request), anthropic.build_stream(request)
    if isinstance(whole, Failure):
        assert streamed == whole  # refused alike
        return
    call, stream = whole.unwrap(), streamed.unwrap()
    assert "stream" not in call.json
    assert stream.json == {**call.json, "stream": True}
    assert (stream.method, stream.path, stream.headers, stream.warnings, stream.idempotent) == (
        call.method, call.path, call.headers, call.warnings, call.idempotent)


def test_the_stream_body_validates_as_the_sdks_streaming_params() -> None:
    from anthropic.types import message_create_params
    from pydantic import TypeAdapter, ValidationError

    request = GenerationRequest(model="claude-sonnet-4-5", input="Hello",
                                config=GenerationConfig(max_tokens=64, extra={"stop": "END"}))
    stream = anthropic.build_stream(request).unwrap().json
    call = anthropic.build_messages_request(request).unwrap().json
    streaming = TypeAdapter(message_create_params.MessageCreateParamsStreaming)
    whole = TypeAdapter(message_create_params.MessageCreateParamsNonStreaming)
    assert streaming.validate_python(stream)["stream"] is True
    whole.validate_python(call)
    with pytest.raises(ValidationError):
        streaming.validate_python(call)  # the streaming switch is the difference
    with pytest.raises(ValidationError):
        whole.validate_python(stream)


def test_the_provider_record_streams() -> None:
    assert anthropic.PROVIDER.build_stream is anthropic.build_stream
    # The registry names the reader (the provider module never imports its reader back).
    assert registration("anthropic").stream_reader == "llmbackend.providers.anthropic_stream"
    assert isinstance(open_stream_reader("anthropic", REQUEST), MessageStreamReader)
    assert anthropic.build_stream(REQUEST).unwrap().path == "/v1/messages"


def test_extra_stream_is_still_refused_and_points_at_the_streaming_face() -> None:
    request = GenerationRequest(model="m", input="x", config=GenerationConfig(
        extra={"stream": True}))
    for built in (anthropic.build_messages_request(request), anthropic.build_stream(request)):
        error = built.failure()
        assert isinstance(error, UnsupportedError) and error.parameter == "stream"
        assert "llmbackend.stream" in error.message


# --- faults, synthesised from the recordings ------------------------------------------------------


def test_a_stream_cut_before_message_stop_ended_early_with_the_text() -> None:
    # text_basic without its final message_stop event
    _fed, finished, text = read_body(sse(*events("text_basic")[:-1]))
    error = finished.failure()
    assert isinstance(error, StreamError) and isinstance(error.error, TransportError)
    assert error.text == text == "- Captain\n- Scoop"
    assert "message_stop" in error.message and error.provider == "anthropic"


def test_a_stream_cut_before_any_text_ended_early_with_no_text() -> None:
    # refusal.sse cut after message_start; and an empty body
    for body in (sse(*events("refusal")[:1]), b""):
        error = read_body(body)[1].failure()
        assert type(error) is TransportError and "ended without" in error.message


@pytest.mark.parametrize("name", NAMES)
def test_every_cut_of_a_recording_fails_or_is_the_whole_answer(name: str) -> None:
    body = recorded("anthropic", name)
    whole = read_body(body)[1]
    text = "".join(EXPECTED.get(name, {"deltas": []})["deltas"])
    for cut in range(len(body)):  # every byte offset, mid-line and mid-UTF-8 included
        _fed, finished, got = read_body(body[:cut])
        assert text.startswith(got), cut
        if finished == whole:
            # only a cut inside the last event's final line break(s): the decoder still
            # frames the whole message_stop event
            assert not body[cut:].strip(), cut
            continue
        error = finished.failure()
        # ended early: carrying the text so far, or (no text yet) the plain TransportError
        assert (isinstance(error, StreamError) and error.text == got) if got \
            else type(error) is TransportError, cut


def test_an_error_event_mid_stream_is_a_stream_error_carrying_the_provider_error() -> None:
    # text_basic with an overloaded error event after its second text delta
    items = events("text_basic")
    fed, finished, text = read_body(sse(*items[:4], ("error", OVERLOADED), *items[4:]))
    assert texts(fed) == ["-", " Captain"] == [text[:1], text[1:]]
    error = fed[-1].failure()
    assert finished == Failure(error)
    assert isinstance(error, StreamError) and error.text == "- Captain"
    assert not error.retryable
    cause = error.error
    # overloaded_error stands for HTTP 529 in Anthropic's errors reference: retryable, as the
    # same failure answered as a status would be (only ever retried before any text)
    assert type(cause) is HTTPStatusError and cause.provider == "anthropic"
    assert cause.status == 529 and cause.retryable
    assert (cause.error_type, cause.error_code) == ("overloaded_error", None)
    assert "Overloaded" in cause.message and "stream" in cause.message
    assert "overloaded_error" in (cause.body or "")


def test_an_error_event_before_any_text_is_the_error_itself() -> None:
    # text_basic with an error event right after message_start
    items = events("text_basic")
    rate = {"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}}
    fed, finished, text = read_body(sse(items[0], ("error", rate), *items[1:]))
    error = fed[-1].failure()
    assert finished == Failure(error) and text == ""
    assert type(error) is HTTPStatusError and error.error_type == "rate_limit_error"
    assert error.status == 429 and error.retryable
    assert error.message == "Anthropic reported an error in the stream (rate_limit_error): " \
        "Slow down"


def test_an_error_event_without_json_or_fields_is_still_a_provider_error() -> None:
    for data in ("Overloaded", json.dumps({"type": "error"}), json.dumps({"error": "x"})):
        error = read_body(sse(("error", data)))[0][0].failure()
        assert type(error) is ProviderError, data
    # a data type "error" under another event name is the error too
    error = read_body(sse(("message", OVERLOADED)))[0][0].failure()
    assert type(error) is HTTPStatusError and error.error_type == "overloaded_error"
    # a type the reference gives no retryable status stays a plain, final ProviderError
    invalid = {"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}
    error = read_body(sse(("error", invalid)))[0][0].failure()
    assert type(error) is ProviderError and not error.retryable


def test_malformed_json_is_a_failure_before_and_after_text() -> None:
    items = events("text_basic")
    fed, finished, _ = read_body(sse(("message_start", '{"type": "message_start", '),
                                     *items[1:]))
    assert isinstance(fed[0].failure(), ResponseParseError) and finished == fed[0]
    fed, finished, text = read_body(sse(*items[:3], ("content_block_delta", "[1, 2]")))
    error = fed[-1].failure()
    assert isinstance(error, StreamError) and isinstance(error.error, ResponseParseError)
    assert error.text == text == "-" and finished == Failure(error)


@pytest.mark.parametrize("bad", [
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}},
    {"type": "content_block_delta", "index": 5, "delta": {"type": "text_delta", "text": "x"}},
    {"type": "content_block_delta", "index": "0", "delta": {"type": "text_delta", "text": "x"}},
    {"type": "content_block_delta", "index": 0, "delta": "text"},
    {"type": "content_block_start", "index": 3, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_start", "index": 1},
    {"type": "message_delta", "delta": [], "usage": {}},
    {"type": "message_start", "message": {}},
])
def test_events_that_break_the_protocol_are_parse_failures(bad: dict[str, Any]) -> None:
    # text_basic with a malformed event after its first text delta
    items = events("text_basic")
    fed, finished, _ = read_body(sse(*items[:3], (bad["type"], bad), *items[3:]))
    error = fed[-1].failure()
    assert isinstance(error, StreamError) and isinstance(error.error, ResponseParseError)
    assert finished == Failure(error)


def test_a_content_event_before_message_start_is_a_parse_failure() -> None:
    items = events("text_basic")
    error = read_body(sse(items[1], *items))[0][0].failure()
    assert isinstance(error, ResponseParseError) and "message_start" in error.message


@settings(max_examples=300, deadline=None)
@given(st.text() | st.recursive(
    st.none() | st.booleans() | st.integers(-1, 3) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from([
        "type", "index", "delta", "text", "partial_json", "content_block", "message",
        "usage", "content", "stop_reason", "error", "input", "thinking", "citation"]),
        children, max_size=4)).map(json.dumps),
       st.sampled_from(["message_start", "content_block_start", "content_block_delta",
                        "content_block_stop", "message_delta", "message_stop", "error",
                        "ping", "other"]))
def test_the_reader_never_raises(data: str, name: str) -> None:
    items = events("tool_use")
    for cut in (1, 3, len(items) - 1):
        reader = MessageStreamReader(REQUEST)
        fed = [reader.feed(ServerEvent(event=n, data=json.dumps(d))) for n, d in items[:cut]]
        fed.append(reader.feed(ServerEvent(event=name, data=data)))
        fed += [reader.feed(ServerEvent(event=n, data=json.dumps(d))) for n, d in items[cut:]]
        assert all(isinstance(result, Success | Failure) for result in fed)
        finished = reader.finish()
        assert isinstance(finished, Success | Failure)
        if isinstance(finished, Success):
            assert finished.unwrap().text == reader.text


def with_stop_reason(reason: str) -> Any:
    def change(data: dict[str, Any]) -> dict[str, Any]:
        if data["type"] == "message_delta":
            data["delta"]["stop_reason"] = reason
        return data
    return change


@pytest.mark.parametrize(("reason", "kind"), [("max_tokens", TruncationError),
                                              ("model_context_window_exceeded", TruncationError),
                                              ("refusal", RefusalError)])
def test_truncated_and_refused_streams_fail_as_the_whole_call_with_the_text(
    reason: str, kind: type[LLMError],
) -> None:
    # text_basic with its message_delta's stop_reason edited
    body = sse(*edited("text_basic", with_stop_reason(reason)))
    fed, finished, text = read_body(body)
    error = finished.failure()
    assert type(error) is kind and isinstance(error, TruncationError | RefusalError)
    assert error.text == text == "- Captain\n- Scoop" == "".join(texts(fed))
    assert finished == anthropic.parse_message_object(
        REQUEST, {**whole_call_body("text_basic"), "stop_reason": reason})


def test_unknown_events_deltas_and_blocks_are_ignored() -> None:
    # text_basic with events, a delta type and a block type Anthropic does not send (yet)
    items = events("text_basic")
    future_block = {"type": "content_block_start", "index": 1,
                    "content_block": {"type": "hologram", "frames": 3}}
    body = sse(
        items[0], ("future_event", {"type": "future_event", "x": 1}), *items[1:3],
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "sparkle_delta", "sparkle": "*"}}),
        *items[3:7], ("content_block_start", future_block),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        *items[7:]) + b": a comment\n\n"
    fed, finished, text = read_body(body)
    assert texts(fed) == EXPECTED["text_basic"]["deltas"]
    generation = finished.unwrap()
    assert generation.text == text == "- Captain\n- Scoop"
    assert generation.raw["content"][1] == {"type": "hologram", "frames": 3}
    assert finished == anthropic.parse_message_object(REQUEST, {
        **whole_call_body("text_basic"),
        "content": [*whole_call_body("text_basic")["content"], future_block["content_block"]]})


def test_a_failed_reader_stays_failed() -> None:
    reader = MessageStreamReader(REQUEST)
    failed = reader.feed(ServerEvent(event="error", data=json.dumps(OVERLOADED)))
    start = data_of("text_basic", "message_start")[0]
    assert reader.feed(ServerEvent(event="message_start", data=json.dumps(start))) == failed
    assert reader.finish() == failed and reader.text == ""


def test_events_after_message_stop_change_nothing() -> None:
    # text_basic followed by a stray text delta and an error event
    items = events("text_basic")
    body = sse(*items, items[3], ("error", OVERLOADED))
    fed, finished, _text = read_body(body)
    assert texts(fed) == EXPECTED["text_basic"]["deltas"]
    assert finished == read_body(recorded("anthropic", "text_basic"))[1]


# --- tool input -----------------------------------------------------------------------------------


def with_tool_input(pieces: list[str], name: str | None = None) -> Any:
    """tool_use.sse edited: the first tool block's single empty partial_json replaced by
    ``pieces`` (the recording has only empty ones), and its name set to ``name``."""
    def change(data: dict[str, Any]) -> Any:
        if data["type"] == "content_block_delta" and data["index"] == 1:
            return [{**data, "delta": {"type": "input_json_delta", "partial_json": piece}}
                    for piece in pieces]
        if data["type"] == "content_block_start" and data["index"] == 1 and name:
            data["content_block"]["name"] = name
        return data
    out: list[tuple[str, dict[str, Any]]] = []
    for event_name, data in edited("tool_use", change):
        if isinstance(data, list):
            out.extend((event_name, one) for one in data)
        else:
            out.append((event_name, data))
    return out


def test_tool_input_pieces_are_parsed_when_the_block_stops() -> None:
    items = with_tool_input(['{"cou', 'nt": 2, "sty', 'le": "fun"}'])
    fed, finished, text = read_body(sse(*items))
    assert texts(fed) == EXPECTED["tool_use"]["deltas"]  # tool input is never answer text
    generation = finished.unwrap()
    assert generation.finish_reason == "tool_calls" and generation.text == text
    first, second = generation.raw["content"][1:]
    assert first["input"] == {"count": 2, "style": "fun"} and second["input"] == {}


def test_tool_calls_without_text_are_the_whole_calls_tool_call_error() -> None:
    # tool_use.sse without its text block (events 1 to 12), the blocks renumbered
    items = events("tool_use")
    kept = [items[0], *items[13:]]
    for _, data in kept:
        if "index" in data:
            data["index"] -= 1
    error = read_body(sse(*kept))[1].failure()
    assert isinstance(error, ToolCallError)
    assert error.calls == ("pelican_name_generator", "pelican_name_generator")


def test_an_unreadable_tool_input_is_a_parse_failure_unless_truncated() -> None:
    items = with_tool_input(['{"count": ', "2"])  # cut JSON
    error = read_body(sse(*items))[1].failure()
    assert isinstance(error, ResponseParseError) and '{"count": 2' in (error.body or "")
    # the same cut by max_tokens: the whole call's truncation, with the text
    truncated = [(n, {**d, "delta": {**d["delta"], "stop_reason": "max_tokens"}})
                 if d["type"] == "message_delta" else (n, d) for n, d in items]
    error = read_body(sse(*truncated))[1].failure()
    assert type(error) is TruncationError
    assert error.text == "".join(EXPECTED["tool_use"]["deltas"])


class Names(BaseModel):
    names: list[str]


FORCED = GenerationRequest(model="claude-3-5-haiku-latest", input="x",
                           schema=StructuredOutput(pydantic_model=Names),
                           options={"structured_output": "tool"})


def test_the_forced_tools_input_is_the_answer_handed_out_whole() -> None:
    # tool_use.sse with its first tool renamed to the schema's forced tool, and input pieces
    items = with_tool_input(['{"names": ["Sco', 'op", "Be', 'aky"]}'], name="Names")
    fed, finished, text = read_body(sse(*items), FORCED)
    answer = json.dumps({"names": ["Scoop", "Beaky"]})
    assert texts(fed) == [answer]  # at the tool block's stop; the text block is not the answer
    generation = finished.unwrap()
    assert generation.text == text == answer and generation.finish_reason == "stop"
    reader = MessageStreamReader(FORCED)
    for event in events_of([sse(*items)]):
        reader.feed(event)
    assert finished == anthropic.parse_message_object(FORCED, reader.message())
    assert reader.message()["content"][1]["input"] == {"names": ["Scoop", "Beaky"]}


def test_under_a_forced_tool_that_never_came_the_text_comes_at_the_end() -> None:
    # text_basic read with the forced-tool option: the text is held back to message_stop
    fed, finished, text = read_body(recorded("anthropic", "text_basic"), FORCED)
    assert texts(fed) == ["- Captain\n- Scoop"] and fed[-1] == Success("- Captain\n- Scoop")
    assert finished.unwrap().text == text


def test_a_stream_of_thinking_only_is_the_whole_calls_no_text_error() -> None:
    # thinking.sse without its text block (the last three content events)
    items = events("thinking")
    kept = [item for item in items if item[1].get("index") != 1]
    _fed, finished, text = read_body(sse(*kept))
    error = finished.failure()
    assert type(error) is NoTextError and error.kinds == ("thinking",) and text == ""
