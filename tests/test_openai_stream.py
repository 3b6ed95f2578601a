"""The OpenAI Responses stream: ``build_stream`` and ``ResponseStreamReader`` against the
recorded streams (tests/data/streams/openai), any chunking of them, the openai SDK's own stream
readers as an oracle, and faults synthesised from the recordings."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai as openai_sdk
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from llmbackend.errors import (
    BlockedError,
    LLMError,
    ProviderError,
    RefusalError,
    ResponseParseError,
    StreamError,
    ToolCallError,
    TransportError,
    TruncationError,
    UnsupportedError,
)
from llmbackend.providers import open_stream_reader, openai, registration
from llmbackend.providers.openai_stream import SKIPPED_EVENTS, ResponseStreamReader, stream_error
from llmbackend.streams import ServerEvent
from llmbackend.types import (
    Generation,
    GenerationConfig,
    GenerationRequest,
    StructuredOutput,
    Usage,
    WireResponse,
)
from tests import strategies
from tests.openapi import problems
from tests.sse import events_of, recorded, serving, splits

REQUEST = GenerationRequest(model="gpt-4.1", input="Reply exactly: streamed")
NAMES = ("text_basic", "reasoning_item_text", "json_schema")
ALL_NAMES = (*NAMES, "error_insufficient_quota")

# What each recording holds, read off the file (tests/data/streams/README.md).
JSON_TEXT = '{"temperatureCelsius":22,"condition":"Partly Cloudy"}'
EXPECTED: dict[str, dict[str, Any]] = {
    "text_basic": {
        "deltas": ["stream", "ed"],
        "usage": Usage(input_tokens=21, output_tokens=3, reasoning_tokens=0,
                       cached_input_tokens=0, service_tier="default"),
        "model": "gpt-4.1-2025-04-14",
        "response_id": "resp_01000000000000000000000000000000000000000000000000"},
    "reasoning_item_text": {
        "deltas": ["Hello", ",", " World", "!"],
        "usage": Usage(input_tokens=12, output_tokens=10, reasoning_tokens=0,
                       cached_input_tokens=0, service_tier="default"),
        "model": "gpt-5-2025-08-07",
        "response_id": "resp_68d7eff889908196bde536de7b601b7d07152cb8c6ac9072"},
    "json_schema": {
        "deltas": ['{"', "temperature", "C", "elsius", '":', "22", ',"', "condition", '":"',
                   "Part", "ly", " Cloud", "y", '"}'],
        "usage": Usage(input_tokens=76, output_tokens=23, reasoning_tokens=0,
                       cached_input_tokens=0, service_tier="default"),
        "model": "gpt-5.2-2025-12-11",
        "response_id": "resp_099b1acf00be9156016968ca7336248194b0ee603e010cde66"},
}
TEXTS = {"text_basic": "streamed", "reasoning_item_text": "Hello, World!",
         "json_schema": JSON_TEXT}
QUOTA_MESSAGE = ("You exceeded your current quota, please check your plan and billing details. "
                 "For more information on this error, read the docs: "
                 "https://platform.openai.com/docs/guides/error-codes/api-errors.")


def events(name: str) -> list[dict[str, Any]]:
    """The recording's event payloads, decoded (fresh copies, to edit)."""
    return [json.loads(event.data) for event in events_of([recorded("openai", name)])]


def sse(*payloads: dict[str, Any] | str, name: str | None = None) -> bytes:
    """An SSE body as OpenAI writes one: ``event: <type>`` then ``data: <json>``, ``\\n\\n``."""
    out = b""
    for payload in payloads:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        kind = name or (payload.get("type") if isinstance(payload, dict) else None) or "message"
        out += f"event: {kind}\ndata: {data}\n\n".encode()
    return out


def read(chunks: list[bytes], request: GenerationRequest = REQUEST
         ) -> tuple[list[Result[str, LLMError]], Result[Generation[str], LLMError], str]:
    """Feed the events of ``chunks`` (stopping at the first failure, as the shell does): the
    feed results, the finish, and the reader's text."""
    reader = open_stream_reader("openai", request)
    fed: list[Result[str, LLMError]] = []
    for event in events_of(chunks):
        fed.append(reader.feed(event))
        if isinstance(fed[-1], Failure):
            break
    return fed, reader.finish(), reader.text


def read_body(body: bytes) -> tuple[list[Result[str, LLMError]],
                                    Result[Generation[str], LLMError], str]:
    return read([body])


def final_response(name: str) -> dict[str, Any]:
    """The ``response`` of the recording's final event: what the same call answers whole."""
    response: dict[str, Any] = events(name)[-1]["response"]
    return response


def whole_call(body: dict[str, Any]) -> Result[Generation[str], LLMError]:
    """What ``generate`` gives for ``body`` answered as a whole HTTP 200 response."""
    return openai.parse_response(REQUEST, WireResponse(status=200,
                                                       body=json.dumps(body).encode()))


def nonempty(fed: list[Result[str, LLMError]]) -> list[str]:
    return [delta for delta in (result.unwrap() for result in fed) if delta]


# --- the recordings -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_recorded_stream_gives_its_deltas_and_the_whole_calls_generation(name: str) -> None:
    fed, finished, text = read_body(recorded("openai", name))
    expected = EXPECTED[name]
    assert all(isinstance(result, Success) for result in fed)
    assert nonempty(fed) == expected["deltas"]
    generation = finished.unwrap()
    assert text == "".join(expected["deltas"]) == generation.text == TEXTS[name]
    assert (generation.usage, generation.finish_reason, generation.model,
            generation.response_id, generation.provider) == (
        expected["usage"], "stop", expected["model"], expected["response_id"], "openai")
    # by construction, what the whole call's parser gives for the body it would have answered
    assert finished == whole_call(final_response(name))
    assert generation.raw == final_response(name)


def test_the_reasoning_item_stays_in_raw_and_out_of_the_text() -> None:
    generation = read_body(recorded("openai", "reasoning_item_text"))[1].unwrap()
    assert [item["type"] for item in generation.raw["output"]] == ["reasoning", "message"]
    assert generation.text == "Hello, World!"


def test_the_recorded_error_event_is_the_provider_error_itself() -> None:
    # error_insufficient_quota: created, in_progress, error, failed; no text had flowed
    fed, finished, text = read_body(recorded("openai", "error_insufficient_quota"))
    assert fed[:2] == [Success(""), Success("")] and len(fed) == 3 and text == ""
    error = fed[2].failure()
    assert finished == Failure(error)
    assert type(error) is ProviderError and not error.retryable
    assert (error.error_type, error.error_code, error.provider) == (
        "insufficient_quota", "insufficient_quota", "openai")
    assert QUOTA_MESSAGE in error.message and "stream" in error.message


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(ALL_NAMES).flatmap(
    lambda name: st.tuples(st.just(name), splits(recorded("openai", name)))))
def test_any_chunking_gives_the_same_deltas_and_result(case: tuple[str, list[bytes]]) -> None:
    name, chunks = case
    assert read(chunks) == read_body(recorded("openai", name))


# --- the openai SDK as the oracle -----------------------------------------------------------------


def sdk_client(url: str) -> openai_sdk.OpenAI:
    return openai_sdk.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)


@pytest.mark.parametrize("name", NAMES)
def test_the_sdk_reads_the_same_deltas_text_and_usage(name: str) -> None:
    body = recorded("openai", name)
    with serving(body) as url:
        sdk_events = list(sdk_client(url).responses.create(model="m", input="x", stream=True))
        with sdk_client(url).responses.stream(model="m", input="x") as stream:
            final = stream.get_final_response()
    fed, finished, text = read_body(body)
    generation = finished.unwrap()
    sdk_deltas = [event.delta for event in sdk_events
                  if event.type == "response.output_text.delta"]
    assert sdk_deltas == nonempty(fed)
    assert "".join(sdk_deltas) == final.output_text == text == generation.text
    usage = final.usage
    assert usage is not None
    assert generation.usage == Usage(
        input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
        reasoning_tokens=usage.output_tokens_details.reasoning_tokens,
        cached_input_tokens=usage.input_tokens_details.cached_tokens,
        service_tier=final.service_tier)
    assert (final.id, final.model, final.status) == (
        generation.response_id, generation.model, "completed")
    assert sdk_events[-1].type == "response.completed"


def test_the_sdk_raises_the_error_event_we_report() -> None:
    body = recorded("openai", "error_insufficient_quota")
    with serving(body) as url, pytest.raises(openai_sdk.APIError) as raised:
        list(sdk_client(url).responses.create(model="m", input="x", stream=True))
    error = read_body(body)[1].failure()
    assert isinstance(error, ProviderError)
    assert (raised.value.type, raised.value.code, raised.value.message) == (
        error.error_type, error.error_code, QUOTA_MESSAGE)


def test_the_sdk_reads_a_synthesised_truncation_as_incomplete_with_our_text() -> None:
    body = sse(*truncated("max_output_tokens"))
    with serving(body) as url:
        sdk_events = list(sdk_client(url).responses.create(model="m", input="x", stream=True))
    last = sdk_events[-1]
    assert last.type == "response.incomplete"
    error = read_body(body)[1].failure()
    assert isinstance(error, TruncationError)
    assert last.response.output_text == error.text == "streamed"


_sent: list[dict[str, Any]] = []


def _capture(request: httpx2.Request) -> httpx2.Response:
    _sent.append(json.loads(request.content))
    return httpx2.Response(200, headers={"content-type": "text/event-stream"},
                           content=recorded("openai", "text_basic"))


def test_the_sdk_streams_with_our_path_and_body() -> None:
    sdk = openai_sdk.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_retries=0,
                            http_client=httpx2.Client(transport=httpx2.MockTransport(_capture)))
    _sent.clear()
    list(sdk.responses.create(model="gpt-4.1", input="Hello", temperature=0.5,
                              max_output_tokens=64, instructions="Be brief.", stream=True))
    ours = openai.build_stream(GenerationRequest(
        model="gpt-4.1", input="Hello", config=GenerationConfig(
            temperature=0.5, max_tokens=64, extra={"system": "Be brief."}))).unwrap()
    assert _sent == [ours.json] and ours.path == "/responses" and ours.method == "POST"


# --- the builder ----------------------------------------------------------------------------------


@settings(max_examples=100)
@given(strategies.models, strategies.prompts, strategies.configs(),
       st.none() | strategies.json_schemas, st.booleans())
def test_the_stream_request_is_the_whole_call_streamed(
    model: str, prompt: str, config: GenerationConfig, schema: dict[str, Any] | None,
    drop: bool,
) -> None:
    request = GenerationRequest(model=model, input=prompt, config=config, drop_unsupported=drop,
                                schema=StructuredOutput(schema=schema) if schema else None)
    whole, streamed = openai.build_response_request(request), openai.build_stream(request)
    if isinstance(whole, Failure):
        assert streamed == whole  # refused alike
        return
    call, stream = whole.unwrap(), streamed.unwrap()
    assert stream.json == {**call.json, "stream": True}
    assert (stream.method, stream.path, stream.headers, stream.warnings, stream.idempotent) == (
        call.method, call.path, call.headers, call.warnings, call.idempotent)


@settings(max_examples=80)
@given(strategies.models, strategies.prompts, strategies.openai_configs,
       st.none() | strategies.json_schemas)
def test_the_stream_body_validates_against_the_openapi_spec(
    model: str, prompt: str, config: GenerationConfig, schema: dict[str, Any] | None,
) -> None:
    stream = openai.build_stream(GenerationRequest(
        model=model, input=prompt, config=config,
        schema=StructuredOutput(schema=schema) if schema is not None else None)).unwrap()
    assert problems("CreateResponse", stream.json) == []
    assert stream.json["stream"] is True
    json.dumps(stream.json, allow_nan=False)


def test_the_provider_record_streams() -> None:
    assert openai.PROVIDER.build_stream is openai.build_stream
    # The registry names the reader (the provider module never imports its reader back).
    assert registration("openai").stream_reader == "llmbackend.providers.openai_stream"
    assert isinstance(open_stream_reader("openai", REQUEST), ResponseStreamReader)
    # A local runtime streams in process, through its engine: no reader of HTTP events.
    with pytest.raises(UnsupportedError, match="no stream reader") as raised:
        open_stream_reader("transformers", REQUEST)
    assert raised.value.parameter == "stream"
    assert openai.build_stream(REQUEST).unwrap().json == {
        "model": "gpt-4.1", "input": "Reply exactly: streamed", "stream": True}


def test_extra_stream_is_still_refused_and_points_at_the_streaming_face() -> None:
    request = GenerationRequest(model="m", input="x", config=GenerationConfig(
        extra={"stream": True}))
    for built in (openai.build_response_request(request), openai.build_stream(request)):
        error = built.failure()
        assert isinstance(error, UnsupportedError) and error.parameter == "stream"
        assert "llmbackend.stream" in error.message
    background = openai.build_stream(GenerationRequest(model="m", input="x", config=(
        GenerationConfig(extra={"background": True})))).failure()
    assert isinstance(background, UnsupportedError) and background.parameter == "background"


# --- faults, synthesised from the recordings ------------------------------------------------------


def text_basic_without(*kinds: str) -> list[dict[str, Any]]:
    return [event for event in events("text_basic") if event["type"] not in kinds]


QUOTA_ERROR_EVENT = events("error_insufficient_quota")[2]
#: The ``error`` event as the OpenAPI spec's ``ResponseErrorEvent`` writes it (fields on top).
SPEC_ERROR_EVENT: dict[str, Any] = {
    "type": "error", "code": "server_error", "param": None,
    "message": "The server had an error while processing your request.", "sequence_number": 5}


def test_a_stream_cut_before_its_final_event_ended_early_with_the_text() -> None:
    # text_basic without its response.completed event
    fed, finished, text = read_body(sse(*text_basic_without("response.completed")))
    assert nonempty(fed) == ["stream", "ed"]
    error = finished.failure()
    assert isinstance(error, StreamError) and isinstance(error.error, TransportError)
    assert error.text == text == "streamed"
    assert "response.completed" in error.message and error.provider == "openai"


def test_a_stream_cut_before_any_text_ended_early_with_no_text() -> None:
    # text_basic cut after response.in_progress; and an empty body
    for body in (sse(*events("text_basic")[:2]), b""):
        error = read_body(body)[1].failure()
        assert type(error) is TransportError and "ended without" in error.message


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_cut_of_a_recording_fails_or_is_the_whole_answer(name: str) -> None:
    body = recorded("openai", name)
    whole = read_body(body)
    # where the recorded error event has ended (its data line and the blank line after it)
    error_seen = (body.index(b"\n", body.index(b"data: ", body.index(b"event: error\n"))) + 2
                  if b"event: error\n" in body else len(body) + 1)
    for cut in range(len(body)):  # every byte offset, mid-line, mid-JSON and mid-UTF-8 included
        _fed, finished, text = read_body(body[:cut])
        assert TEXTS.get(name, "").startswith(text), cut
        if isinstance(finished, Success):
            # only a cut inside the last event's line ending (httpx2's decoder frames "}\n"
            # as a whole event): elsewhere it drops the unterminated event
            assert not body[cut:].strip() and finished == whole[1], cut
            continue
        error = finished.failure()
        if cut >= error_seen:  # the error before any text: the provider error itself
            assert type(error) is ProviderError and finished == whole[1], cut
            continue
        # ended early: carrying the text so far, or (no text yet) the plain TransportError
        assert (isinstance(error, StreamError) and error.text == text) if text \
            else type(error) is TransportError, cut


def test_an_error_event_mid_stream_is_a_stream_error_carrying_the_provider_error() -> None:
    # text_basic with the recorded insufficient_quota error event after its first delta
    payloads = events("text_basic")
    payloads.insert(5, QUOTA_ERROR_EVENT)
    fed, finished, text = read_body(sse(*payloads))
    assert nonempty(fed[:-1]) == ["stream"] and text == "stream"
    error = fed[-1].failure()
    assert finished == Failure(error) and len(fed) == 6
    assert isinstance(error, StreamError) and error.text == "stream" and not error.retryable
    assert error.error == read_body(sse(QUOTA_ERROR_EVENT))[1].failure()
    assert isinstance(error.error, ProviderError)
    assert (error.error.error_type, error.error.error_code) == ("insufficient_quota",) * 2


def test_an_error_event_shaped_as_the_spec_says_is_read_too() -> None:
    # text_basic with the spec's error event (code and message on the event) before any text
    payloads = events("text_basic")
    payloads.insert(2, SPEC_ERROR_EVENT)
    fed, finished, _ = read_body(sse(*payloads))
    error = fed[-1].failure()
    assert finished == Failure(error) and type(error) is ProviderError
    assert (error.error_type, error.error_code) == (None, "server_error")
    assert SPEC_ERROR_EVENT["message"] in error.message
    # an error event without an event name, or with a bare string
    assert read_body(sse(SPEC_ERROR_EVENT, name="message"))[1] == finished
    assert "boom" in stream_error({"error": "boom"}, "").message


def failed(payload: dict[str, Any]) -> dict[str, Any]:
    edited: dict[str, Any] = json.loads(json.dumps(payload))
    edited["type"] = "response.failed"
    edited["response"]["status"] = "failed"
    edited["response"]["error"] = {"code": "server_error", "message": "The model crashed."}
    return edited


def test_a_failed_response_is_the_whole_calls_provider_error() -> None:
    # error_insufficient_quota without its error event: the response.failed one reports it
    payloads = [event for event in events("error_insufficient_quota") if event["type"] != "error"]
    fed, finished, text = read_body(sse(*payloads))
    error = fed[-1].failure()
    assert finished == Failure(error) and text == ""
    assert type(error) is ProviderError and error.error_code == "insufficient_quota"
    assert finished == whole_call(payloads[-1]["response"])
    # text_basic whose final event says failed: after text, a StreamError carrying it
    payloads = events("text_basic")
    payloads[-1] = failed(payloads[-1])
    fed, finished, text = read_body(sse(*payloads))
    error = fed[-1].failure()
    assert isinstance(error, StreamError) and error.text == text == "streamed"
    assert isinstance(error.error, ProviderError) and error.error.error_type == "failed"
    assert Failure(error.error) == whole_call(payloads[-1]["response"])
    # a response.failed whose response claims to be completed is still a failure
    payloads[-1]["response"]["status"] = "completed"
    fed, finished, _ = read_body(sse(*payloads))
    assert isinstance(finished.failure(), StreamError)


def test_malformed_json_is_a_failure_before_and_after_text() -> None:
    payloads: list[dict[str, Any] | str] = [*events("text_basic")]
    payloads.insert(2, '{"type": "response.output_item.added", "item": ')
    fed, finished, text = read_body(sse(*payloads))
    assert isinstance(fed[-1].failure(), ResponseParseError) and finished == fed[-1]
    assert text == ""
    payloads = [*events("text_basic")]
    payloads.insert(5, "[1, 2]")
    fed, finished, text = read_body(sse(*payloads, name="response.output_text.delta"))
    error = fed[-1].failure()
    assert isinstance(error, StreamError) and isinstance(error.error, ResponseParseError)
    assert error.text == text == "stream" and finished == fed[-1]
    for bad in ({"type": "response.output_text.delta", "delta": 5},
                {"type": "response.completed", "response": "done"},
                {"type": "response.completed"}):
        assert isinstance(read_body(sse(bad))[0][0].failure(), ResponseParseError)


@settings(max_examples=300)
@given(st.text() | st.recursive(
    st.none() | st.booleans() | st.integers(-2, 3) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from([
        "type", "delta", "output_index", "content_index", "item", "part", "content", "text",
        "refusal", "response", "output", "status", "error", "code", "message", "usage", "x"]),
        children, max_size=4)).map(json.dumps),
       st.sampled_from(["message", "response.output_text.delta", "response.completed",
                        "response.content_part.added", "response.output_item.added",
                        "response.incomplete", "response.failed", "error"]))
def test_the_reader_never_raises(data: str, name: str) -> None:
    reader = ResponseStreamReader(REQUEST)
    for event in (*events_of([sse(*events("text_basic")[:5])]),
                  ServerEvent(event=name, data=data), ServerEvent(data=data)):
        assert isinstance(reader.feed(event), Success | Failure)
    finished = reader.finish()
    assert isinstance(finished, Success | Failure)
    if isinstance(finished, Success):
        assert isinstance(finished.unwrap().text, str)


def truncated(reason: str) -> list[dict[str, Any]]:
    """text_basic edited into a stream the token limit (or the content filter) stopped: the
    message item and the final response incomplete, the final event response.incomplete."""
    payloads = events("text_basic")
    for payload in payloads:
        item = payload.get("item") or {}
        if payload["type"] == "response.output_item.done":
            item["status"] = "incomplete"
    final = payloads[-1]
    final["type"] = "response.incomplete"
    final["response"].update(status="incomplete", incomplete_details={"reason": reason},
                             max_output_tokens=16)
    final["response"]["output"][0]["status"] = "incomplete"
    return payloads


@pytest.mark.parametrize(("reason", "kind"), [("max_output_tokens", TruncationError),
                                              ("content_filter", BlockedError)])
def test_truncated_and_blocked_streams_fail_as_the_whole_call_with_the_text(
    reason: str, kind: type[LLMError],
) -> None:
    payloads = truncated(reason)
    fed, finished, text = read_body(sse(*payloads))
    assert nonempty(fed) == ["stream", "ed"] and fed[-1] == Success("")
    error = finished.failure()
    assert type(error) is kind and isinstance(error, TruncationError | BlockedError)
    assert error.text == text == "streamed"
    assert finished == whole_call(payloads[-1]["response"])


def test_a_final_object_without_output_is_rebuilt_from_the_events() -> None:
    # text_basic whose final response has no output (the SDK's accumulator fills it in alike)
    payloads = events("text_basic")
    del payloads[-1]["response"]["output"]
    finished = read_body(sse(*payloads))[1]
    assert finished.unwrap().text == "streamed"
    assert finished.unwrap().raw["output"] == final_response("text_basic")["output"]
    # and a truncated one cut short of its item's done event: the deltas build the item
    payloads = [event for event in truncated("max_output_tokens")
                if not event["type"].endswith(".done")]
    payloads[-1]["response"]["output"] = None
    error = read_body(sse(*payloads))[1].failure()
    assert isinstance(error, TruncationError) and error.text == "streamed"


def refused() -> tuple[list[dict[str, Any]], str]:
    """text_basic edited into a refusal: a refusal part, refusal deltas, the final object's
    message holding the refusal (the shape of ``response.refusal.*`` in the OpenAPI spec)."""
    refusal = "I can't help with that."
    payloads: list[dict[str, Any]] = []
    for recorded_payload in events("text_basic"):
        payload, kind = recorded_payload, recorded_payload["type"]
        if kind == "response.content_part.added":
            payload["part"] = {"type": "refusal", "refusal": ""}
        elif kind == "response.output_text.delta":
            payload["type"] = "response.refusal.delta"
            payload["delta"] = refusal[:7] if payload["delta"] == "stream" else refusal[7:]
        elif kind == "response.output_text.done":
            payload = {"type": "response.refusal.done", "refusal": refusal,
                       **{key: payload[key] for key in ("item_id", "output_index",
                                                        "content_index", "sequence_number")}}
        elif kind == "response.content_part.done":
            payload["part"] = {"type": "refusal", "refusal": refusal}
        elif kind in ("response.output_item.done", "response.completed"):
            item = payload["item"] if "item" in payload else payload["response"]["output"][0]
            item["content"] = [{"type": "refusal", "refusal": refusal}]
        payloads.append(payload)
    return payloads, refusal


def test_a_refusal_stream_is_the_whole_calls_refusal_and_no_answer_text() -> None:
    payloads, refusal = refused()
    fed, finished, text = read_body(sse(*payloads))
    assert nonempty(fed) == [] and text == ""
    error = finished.failure()
    assert isinstance(error, RefusalError) and error.text == refusal
    assert finished == whole_call(payloads[-1]["response"])
    # with no output on the final object, the refusal deltas rebuild the refusal
    del payloads[-1]["response"]["output"]
    payloads = [event for event in payloads if event["type"] != "response.output_item.done"]
    assert read_body(sse(*payloads))[1] == finished


def reasoning_events(output_index: int) -> list[dict[str, Any]]:
    """Reasoning summary and reasoning text events, shaped as the OpenAPI spec's
    ``ResponseReasoningSummary*`` / ``ResponseReasoningText*`` events."""
    item_id = "rs_68d7eff985648196883d78673232885e07152cb8c6ac9072"
    where = {"item_id": item_id, "output_index": output_index, "sequence_number": 0}
    return [
        {"type": "response.reasoning_summary_part.added", "summary_index": 0,
         "part": {"type": "summary_text", "text": ""}, **where},
        {"type": "response.reasoning_summary_text.delta", "summary_index": 0,
         "delta": "**Greeting** thinking about it", **where},
        {"type": "response.reasoning_summary_text.done", "summary_index": 0,
         "text": "**Greeting** thinking about it", **where},
        {"type": "response.reasoning_text.delta", "content_index": 0,
         "delta": "secret thoughts", **where},
        {"type": "response.reasoning_text.done", "content_index": 0,
         "text": "secret thoughts", **where},
    ]


def test_reasoning_never_reaches_the_deltas_or_the_text() -> None:
    # reasoning_item_text with summary and reasoning-text events inside its reasoning item
    payloads = events("reasoning_item_text")
    payloads[3:3] = reasoning_events(0)
    fed, finished, text = read_body(sse(*payloads))
    assert nonempty(fed) == EXPECTED["reasoning_item_text"]["deltas"]
    assert text == finished.unwrap().text == "Hello, World!"
    assert finished == read_body(recorded("openai", "reasoning_item_text"))[1]


def test_unknown_events_and_events_after_the_final_one_are_ignored() -> None:
    # text_basic with an event type OpenAI does not send (carrying a 'delta'), an event whose
    # only name is its data's type, a comment, and events after response.completed
    payloads = events("text_basic")
    future = {"type": "response.something_new", "delta": "x", "output_index": 0,
              "sequence_number": 5}
    body = (sse(*payloads[:5]) + sse(future) + b": keep-alive\n\n"
            + sse(payloads[5], name="message") + sse(*payloads[6:])
            + sse(SPEC_ERROR_EVENT) + b"data: [DONE]\n\n")
    fed, finished, text = read_body(body)
    assert nonempty(fed) == ["stream", "ed"] and text == "streamed"
    assert finished == read_body(recorded("openai", "text_basic"))[1]


def test_a_function_call_answer_is_the_whole_calls_tool_call_error() -> None:
    # text_basic's final response with its message replaced by a function call
    payloads = events("text_basic")[:2]
    final = events("text_basic")[-1]
    final["response"]["output"] = [{"type": "function_call", "id": "fc_1", "call_id": "call_1",
                                    "name": "get_weather", "arguments": "{}",
                                    "status": "completed"}]
    arguments = {"type": "response.function_call_arguments.delta", "delta": "{}",
                 "item_id": "fc_1", "output_index": 0, "sequence_number": 3}
    fed, finished, text = read_body(sse(*payloads, arguments, final))
    assert nonempty(fed) == [] and text == ""
    error = finished.failure()
    assert isinstance(error, ToolCallError) and error.calls == ("get_weather",)
    assert finished == whole_call(final["response"])


def test_a_failed_reader_stays_failed() -> None:
    reader = ResponseStreamReader(REQUEST)
    failed_once = reader.feed(ServerEvent(event="error", data=json.dumps(SPEC_ERROR_EVENT)))
    assert isinstance(failed_once, Failure)
    for event in events_of([recorded("openai", "text_basic")]):
        assert reader.feed(event) == failed_once
    assert reader.finish() == failed_once and reader.text == ""
    assert reader.response() is None


def test_any_event_with_a_top_level_error_is_one_as_the_sdk_reads_it() -> None:
    # text_basic with, after its first delta, an event naming no type that carries an 'error'
    # object (as a proxy or compatible server may send): the SDK's Stream raises on it too
    bare = {"error": {"type": "server_error", "code": None, "message": "Upstream went away."}}
    body = sse(*events("text_basic")[:5]) + b"data: " + json.dumps(bare).encode() + b"\n\n" + (
        sse(*events("text_basic")[5:]))
    with serving(body) as url, pytest.raises(openai_sdk.APIError) as raised:
        list(sdk_client(url).responses.create(model="m", input="x", stream=True))
    fed, finished, text = read_body(body)
    error = fed[-1].failure()
    assert finished == Failure(error) and len(fed) == 6
    assert isinstance(error, StreamError) and error.text == text == "stream"
    assert isinstance(error.error, ProviderError)
    assert (error.error.error_type, error.error.error_code) == (raised.value.type, None)
    assert raised.value.message in error.error.message


def test_status_updates_and_done_events_are_not_decoded_by_name_only() -> None:
    # text_basic, its status updates and "done" events replaced by bytes that are not JSON:
    # named by their event field, they are skipped (the answer needs nothing from them)
    payloads = events("text_basic")
    expected = read_body(sse(*payloads))
    garbled = sse(*[p for p in payloads if p["type"] not in SKIPPED_EVENTS]).replace(
        b"event: response.output_item.added", sse("{garbage", name="response.created")
        + sse("{garbage", name="response.output_text.done")
        + b"event: response.output_item.added", 1)
    assert b"{garbage" in garbled
    assert read_body(garbled)[1:] == expected[1:]
    # the same bytes under no name (or another) are decoded, and fail
    fed, finished, _ = read_body(sse("{garbage"))
    assert isinstance(finished.failure(), ResponseParseError) and fed[-1] == finished
    # every skipped name the recordings use carries data the final response repeats
    for name in ("text_basic", "json_schema", "reasoning_item_text"):
        kinds = {p["type"] for p in events(name)}
        assert kinds & SKIPPED_EVENTS and "response.completed" in kinds
