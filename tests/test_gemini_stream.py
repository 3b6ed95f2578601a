"""The Gemini stream: ``build_stream`` and ``ContentStreamReader`` against the recorded streams
(tests/data/streams/gemini), any chunking of them, the google-genai SDK's own stream reader as
an oracle, and faults synthesised from the recordings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from llmbackend.errors import (
    BlockedError,
    HTTPStatusError,
    LLMError,
    NoTextError,
    ProviderError,
    ResponseParseError,
    StreamError,
    ToolCallError,
    TransportError,
    TruncationError,
    UnsupportedError,
)
from llmbackend.messages import Message
from llmbackend.providers import gemini, open_stream_reader, registration
from llmbackend.providers.gemini_stream import ContentStreamReader, merge_parts
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
from tests.test_gemini import conversations, gemini_configs

REQUEST = GenerationRequest(model="gemini-2.5-flash", input="What is the capital of France?")
NAMES = ("text_basic", "text_multichunk", "json_schema")

# What each recording holds, read off the file (tests/data/streams/README.md).
COUNTING = "\n".join(str(n) for n in range(1, 31))
EXPECTED: dict[str, dict[str, Any]] = {
    "text_basic": {
        "text": "The capital of France is **Paris**.",
        "deltas": ["The capital of France is **Paris**."],
        "usage": Usage(input_tokens=15, output_tokens=8 + 16, reasoning_tokens=16),
        "model": "gemini-2.5-flash", "response_id": "ezh8aaKTCYSnqtsP-qXkqQI"},
    "text_multichunk": {
        "text": COUNTING,
        # the text breaks inside "14" (the recording's "...13\n1" + "4\n15...")
        "deltas": [COUNTING[:COUNTING.index("14") + 1],
                   COUNTING[COUNTING.index("14") + 1:-1], "0"],
        # the last chunk's running total (80 candidates tokens), not the sum 31 + 79 + 80
        "usage": Usage(input_tokens=18, output_tokens=80 + 35, reasoning_tokens=35),
        "model": "gemini-2.5-flash", "response_id": "ru1garvBEoOiqtsP2fznmQw"},
    "json_schema": {
        "text": '{"city":"Mexico City","country":"Mexico"}',
        "deltas": ['{"city":"Mexico City","country":"Mexico"}', ""],
        "usage": Usage(input_tokens=9, output_tokens=10 + 261, reasoning_tokens=261),
        "model": "gemini-3-flash-preview", "response_id": "HrGQaZONJZjHvdIPrvyJuAk"},
}


def chunks_of(name: str) -> list[dict[str, Any]]:
    return [json.loads(event.data) for event in events_of([recorded("gemini", name)])]


def copied(chunk: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``chunk``, to edit."""
    value: dict[str, Any] = json.loads(json.dumps(chunk))
    return value


def sse(*chunks: dict[str, Any] | str) -> bytes:
    """An SSE body as Gemini writes one (``\\r\\n`` line endings, no event names)."""
    return b"".join(
        b"data: " + (chunk if isinstance(chunk, str) else json.dumps(chunk)).encode()
        + b"\r\n\r\n" for chunk in chunks)


def read(events: list[ServerEvent], request: GenerationRequest = REQUEST
         ) -> tuple[list[Result[str, LLMError]], Result[Generation[str], LLMError], str]:
    """Feed ``events`` (stopping at the first failure, as the shell does): the feed results,
    the finish, and the reader's text."""
    reader = open_stream_reader("gemini", request)
    fed: list[Result[str, LLMError]] = []
    for event in events:
        fed.append(reader.feed(event))
        if isinstance(fed[-1], Failure):
            break
    return fed, reader.finish(), reader.text


def read_body(body: bytes) -> tuple[list[Result[str, LLMError]],
                                    Result[Generation[str], LLMError], str]:
    return read(events_of([body]))


def whole_call_body(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The body ``generateContent`` answers for the same answer, written out independently of
    the reader: the last chunk, its candidate holding every chunk's text in one text part
    (with the signature the stream carried)."""
    last = copied(chunks[-1])
    parts = [part for chunk in chunks for part in chunk["candidates"][0]["content"]["parts"]]
    text_part: dict[str, Any] = {"text": "".join(part["text"] for part in parts)}
    signatures = [part["thoughtSignature"] for part in parts if "thoughtSignature" in part]
    if signatures:
        text_part["thoughtSignature"] = signatures[-1]
    last["candidates"][0]["content"]["parts"] = [text_part]
    return last


# --- the recordings -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_recorded_stream_gives_its_deltas_and_the_whole_calls_generation(name: str) -> None:
    fed, finished, text = read_body(recorded("gemini", name))
    expected = EXPECTED[name]
    assert [result.unwrap() for result in fed] == expected["deltas"]
    generation = finished.unwrap()
    assert text == "".join(expected["deltas"]) == generation.text == expected["text"]
    assert (generation.usage, generation.finish_reason, generation.model,
            generation.response_id, generation.provider) == (
        expected["usage"], "stop", expected["model"], expected["response_id"], "gemini")
    # by construction, what the whole call's parser gives for the body it would have answered
    assert finished == gemini.parse_response_object(REQUEST, whole_call_body(chunks_of(name)))


def test_the_signature_only_part_carries_no_text_but_stays_in_raw() -> None:
    generation = read_body(recorded("gemini", "json_schema"))[1].unwrap()
    (part,) = generation.raw["candidates"][0]["content"]["parts"]
    assert part["text"] == EXPECTED["json_schema"]["text"]
    assert part["thoughtSignature"].startswith("EusICugI")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(NAMES).flatmap(
    lambda name: st.tuples(st.just(name), splits(recorded("gemini", name)))))
def test_any_chunking_gives_the_same_deltas_and_result(case: tuple[str, list[bytes]]) -> None:
    name, chunks = case
    fed, finished, text = read(events_of(chunks))
    assert (fed, finished, text) == read_body(recorded("gemini", name))


# --- the google-genai SDK as the oracle -----------------------------------------------------------


def sdk_stream(body: bytes, model: str = "gemini-2.5-flash") -> list[Any]:
    genai = pytest.importorskip("google.genai")
    types = pytest.importorskip("google.genai.types")
    with serving(body) as url:
        client = genai.Client(api_key="x", http_options=types.HttpOptions(base_url=url))
        return list(client.models.generate_content_stream(model=model, contents="Hello"))


@pytest.mark.parametrize("name", NAMES)
def test_the_sdk_reads_the_same_text_and_usage(name: str) -> None:
    body = recorded("gemini", name)
    sdk = sdk_stream(body)
    fed, finished, text = read_body(body)
    generation = finished.unwrap()
    assert [chunk.text or "" for chunk in sdk] == [result.unwrap() for result in fed]
    assert "".join(chunk.text or "" for chunk in sdk) == text == generation.text
    usage = sdk[-1].usage_metadata
    assert generation.usage == Usage(
        input_tokens=usage.prompt_token_count,
        output_tokens=usage.candidates_token_count + usage.thoughts_token_count,
        reasoning_tokens=usage.thoughts_token_count)
    assert (sdk[-1].response_id, sdk[-1].model_version) == (generation.response_id,
                                                            generation.model)
    assert str(sdk[-1].candidates[0].finish_reason.value) == "STOP"


def test_the_sdk_raises_the_error_chunk_we_report() -> None:
    errors = pytest.importorskip("google.genai.errors")
    body = sse(chunks_of("text_multichunk")[0], OVERLOADED)
    with pytest.raises(errors.APIError) as raised:
        sdk_stream(body)
    error = read_body(body)[1].failure()
    assert isinstance(error, StreamError) and isinstance(error.error, HTTPStatusError)
    assert (raised.value.code, raised.value.status, raised.value.message) == (
        error.error.status, error.error.error_type, OVERLOADED["error"]["message"])


def test_the_sdk_streams_with_our_path_and_body() -> None:
    genai = pytest.importorskip("google.genai")
    types = pytest.importorskip("google.genai.types")
    with capturing(recorded("gemini", "text_basic")) as (url, seen):
        # this SDK's default version is v1; llmbackend speaks v1beta (gemini.API_VERSION)
        client = genai.Client(api_key="x", http_options=types.HttpOptions(
            base_url=url, api_version=gemini.API_VERSION))
        list(client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Hello",
            config=types.GenerateContentConfig(temperature=0.0, max_output_tokens=64)))
    ours = gemini.build_stream(GenerationRequest(
        model="gemini-2.5-flash", input="Hello",
        config=GenerationConfig(temperature=0.0, max_tokens=64))).unwrap()
    assert seen == [(ours.path, ours.json)]


# --- the builder ----------------------------------------------------------------------------------


@settings(max_examples=80)
@given(st.sampled_from(["gemini-2.5-flash", "models/gemini-3-flash-preview",
                        "tunedModels/my model"]),
       strategies.prompts | conversations, gemini_configs,
       st.none() | strategies.json_schemas)
def test_the_stream_request_is_the_whole_call_streamed(
    model: str, prompt: str | tuple[Message, ...], config: GenerationConfig,
    schema: dict[str, Any] | None,
) -> None:
    request = GenerationRequest(model=model, input=prompt, config=config,
                                schema=StructuredOutput(schema=schema) if schema else None)
    whole, streamed = gemini.build_generate_content(request), gemini.build_stream(request)
    if isinstance(whole, Failure):
        assert streamed == whole  # refused alike
        return
    call, stream = whole.unwrap(), streamed.unwrap()
    assert call.path.endswith(":generateContent")
    assert stream.path == call.path.removesuffix(":generateContent") + (
        ":streamGenerateContent?alt=sse")
    assert (stream.method, stream.json, stream.headers, stream.warnings, stream.idempotent) == (
        call.method, call.json, call.headers, call.warnings, call.idempotent)


def test_the_provider_record_streams() -> None:
    assert gemini.PROVIDER.build_stream is gemini.build_stream
    # The registry names the reader (the provider module never imports its reader back).
    assert registration("gemini").stream_reader == "llmbackend.providers.gemini_stream"
    assert isinstance(open_stream_reader("gemini", REQUEST), ContentStreamReader)
    assert gemini.build_stream(REQUEST).unwrap().path == (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")


def test_extra_stream_is_still_refused_and_points_at_the_streaming_face() -> None:
    request = GenerationRequest(model="m", input="x", config=GenerationConfig(
        extra={"stream": True}))
    for built in (gemini.build_generate_content(request), gemini.build_stream(request)):
        error = built.failure()
        assert isinstance(error, UnsupportedError) and error.parameter == "stream"
        assert "llmbackend.stream" in error.message


# --- faults, synthesised from the recordings ------------------------------------------------------

OVERLOADED = {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                        "status": "UNAVAILABLE"}}
RATE_LIMITED = {"error": {
    "code": 429, "message": "Resource has been exhausted (e.g. check quota).",
    "status": "RESOURCE_EXHAUSTED",
    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                 "reason": "RATE_LIMIT_EXCEEDED"}]}}


def with_finish(chunk: dict[str, Any], reason: str) -> dict[str, Any]:
    edited = copied(chunk)
    edited["candidates"][0]["finishReason"] = reason
    return edited


def test_a_stream_cut_before_its_finishing_chunk_ended_early_with_the_text() -> None:
    # text_multichunk without its last chunk (the one with finishReason STOP)
    first, second, _ = chunks_of("text_multichunk")
    _fed, finished, text = read_body(sse(first, second))
    error = finished.failure()
    assert isinstance(error, StreamError) and isinstance(error.error, TransportError)
    assert error.text == text == COUNTING[:-1]
    assert "finishReason" in error.message and error.provider == "gemini"


def test_an_empty_body_ended_early_with_no_text() -> None:
    error = read_body(b"")[1].failure()
    assert type(error) is TransportError and "ended without" in error.message


@pytest.mark.parametrize("name", NAMES)
def test_every_cut_of_a_recording_fails_or_is_the_whole_answer(name: str) -> None:
    body = recorded("gemini", name)
    whole = read_body(body)[1]
    for cut in range(len(body)):  # every byte offset, mid-line and mid-UTF-8 included
        _fed, finished, text = read_body(body[:cut])
        assert EXPECTED[name]["text"].startswith(text)
        if isinstance(finished, Success):
            # only a cut inside the last event's line endings (httpx2's decoder frames "}\r"
            # and "}\r\n\r" as a whole event): elsewhere it drops the unterminated event
            assert not body[cut:].strip() and finished == whole
            continue
        error = finished.failure()
        # ended early: carrying the text so far, or (no text yet) the plain TransportError
        assert (isinstance(error, StreamError) and error.text == text) if text \
            else type(error) is TransportError, cut


@pytest.mark.parametrize("error_chunk", [OVERLOADED, RATE_LIMITED])
def test_an_error_chunk_mid_stream_is_a_stream_error_carrying_the_provider_error(
    error_chunk: dict[str, Any],
) -> None:
    first, second, last = chunks_of("text_multichunk")
    fed, finished, text = read_body(sse(first, error_chunk, second, last))
    assert len(fed) == 2 and fed[0].unwrap() == text == EXPECTED["text_multichunk"]["deltas"][0]
    error = fed[1].failure()
    assert finished == Failure(error)
    assert isinstance(error, StreamError) and error.text == text
    assert isinstance(error.error, HTTPStatusError) and not error.retryable
    detail = error_chunk["error"]
    assert (error.error.status, error.error.error_type, error.error.provider) == (
        detail["code"], detail["status"], "gemini")
    assert error.error.error_code == (detail.get("details") or [{}])[0].get("reason")
    assert detail["message"] in error.error.message and "stream" in error.error.message


def test_an_error_chunk_before_any_text_is_the_error_itself_retried_as_its_status() -> None:
    fed, finished, text = read_body(sse(RATE_LIMITED, *chunks_of("text_basic")))
    error = fed[0].failure()
    assert finished == Failure(error) and text == ""
    assert isinstance(error, HTTPStatusError) and error.retryable
    assert (error.status, error.error_type, error.error_code) == (
        429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED")
    # the same mapping as a whole call answered HTTP 429 with the same object
    whole = gemini.parse_error(gemini_response(429, RATE_LIMITED))
    assert (error.error_type, error.error_code, error.body) == (
        whole.error_type, whole.error_code, whole.body)


def gemini_response(status: int, body: dict[str, Any]) -> Any:
    from llmbackend.types import WireResponse

    return WireResponse(status=status, body=json.dumps(body).encode())


def test_an_error_chunk_without_an_http_code_is_a_provider_error() -> None:
    fed = read_body(sse({"error": {"code": 7, "message": "odd", "status": "SOMETHING"}}))[0]
    error = fed[0].failure()
    assert type(error) is ProviderError and error.error_type == "SOMETHING"
    assert "odd" in error.message
    assert isinstance(read_body(sse({"error": "text"}))[0][0].failure(), ProviderError)


def test_malformed_json_is_a_failure_before_and_after_text() -> None:
    fed, finished, _ = read_body(sse('{"candidates": [', *chunks_of("text_basic")))
    assert isinstance(fed[0].failure(), ResponseParseError) and finished == fed[0]
    first = chunks_of("text_multichunk")[0]
    fed, finished, text = read_body(sse(first, "[1, 2]"))
    error = fed[1].failure()
    assert isinstance(error, StreamError) and isinstance(error.error, ResponseParseError)
    assert error.text == text == EXPECTED["text_multichunk"]["deltas"][0]
    for bad in ('{"candidates": 3}', '{"candidates": [1]}'):
        assert isinstance(read_body(sse(bad))[0][0].failure(), ResponseParseError)


@settings(max_examples=300)
@given(st.text() | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["candidates", "content", "parts", "text", "thought",
                                       "finishReason", "error", "code", "promptFeedback",
                                       "blockReason", "usageMetadata", "x"]), children,
                      max_size=4)).map(json.dumps),
       st.sampled_from(["message", "other"]))
def test_the_reader_never_raises(data: str, name: str) -> None:
    reader = ContentStreamReader(REQUEST)
    for event in (ServerEvent(data=json.dumps(chunks_of("text_multichunk")[0])),
                  ServerEvent(event=name, data=data), ServerEvent(data=data)):
        assert isinstance(reader.feed(event), Success | Failure)
    finished = reader.finish()
    assert isinstance(finished, Success | Failure)
    if isinstance(finished, Success):
        assert finished.unwrap().text == reader.text


@pytest.mark.parametrize(("reason", "kind"), [("MAX_TOKENS", TruncationError),
                                              ("SAFETY", BlockedError),
                                              ("RECITATION", BlockedError)])
def test_truncated_and_blocked_streams_fail_as_the_whole_call_with_the_text(
    reason: str, kind: type[LLMError],
) -> None:
    # text_multichunk with its last chunk's finishReason edited
    first, second, last = chunks_of("text_multichunk")
    chunks = [first, second, with_finish(last, reason)]
    _fed, finished, text = read_body(sse(*chunks))
    error = finished.failure()
    assert isinstance(error, kind) and isinstance(error, TruncationError | BlockedError)
    assert error.text == text == COUNTING
    assert finished == gemini.parse_response_object(REQUEST, whole_call_body(chunks))
    if isinstance(error, BlockedError):
        assert error.reason == reason


def test_a_blocked_prompt_is_the_whole_calls_blocked_error() -> None:
    # the shape a blocked prompt takes: no candidates, only the feedback (and usage)
    chunk = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
             "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
             "modelVersion": "gemini-2.5-flash", "responseId": "r-1"}
    fed, finished, text = read_body(sse(chunk))
    assert fed == [Success("")] and text == ""
    error = finished.failure()
    assert isinstance(error, BlockedError) and error.reason == "PROHIBITED_CONTENT"
    assert finished == gemini.parse_response_object(REQUEST, chunk)


def thought(text: str, **more: Any) -> dict[str, Any]:
    chunk = copied(chunks_of("text_multichunk")[0])
    chunk["candidates"][0]["content"]["parts"] = [{"text": text, "thought": True, **more}]
    return chunk


def test_thinking_never_reaches_the_text_but_stays_in_raw() -> None:
    # text_multichunk with two thought-summary chunks inserted before it (and one amid it)
    first, second, last = chunks_of("text_multichunk")
    fed, finished, text = read_body(sse(thought("**Counting**\n"), thought("one by one"),
                                        first, thought("still counting"), second, last))
    assert [result.unwrap() for result in fed] == ["", "", *EXPECTED["text_multichunk"]["deltas"]
                                                   [:1], "", *EXPECTED["text_multichunk"][
                                                       "deltas"][1:]]
    generation = finished.unwrap()
    assert generation.text == text == COUNTING
    parts = generation.raw["candidates"][0]["content"]["parts"]
    assert [part.get("thought", False) for part in parts] == [True, False, True, False]
    assert parts[0]["text"] == "**Counting**\none by one"


def test_a_stream_of_thoughts_only_is_the_whole_calls_no_text_error() -> None:
    _fed, finished, text = read_body(sse(thought("hmm"), with_finish(thought("done"), "STOP")))
    error = finished.failure()
    assert type(error) is NoTextError and error.kinds == ("thought",) and text == ""
    body = with_finish(thought("hmmdone"), "STOP")
    assert finished == gemini.parse_response_object(REQUEST, body)


def test_function_calls_are_kept_and_are_the_whole_calls_tool_call_error() -> None:
    call = copied(chunks_of("text_basic")[0])
    call["candidates"][0]["content"]["parts"] = [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]
    error = read_body(sse(call))[1].failure()
    assert isinstance(error, ToolCallError) and error.calls == ("get_weather",)
    assert Failure(error) == gemini.parse_response_object(REQUEST, call)


def test_unknown_events_and_fields_are_ignored() -> None:
    # text_basic with an event under a name Gemini does not send, and a field it does not send
    chunk = chunks_of("text_basic")[0]
    future = {**chunk, "somethingNew": {"a": 1}}
    body = (b"event: future\r\ndata: {\"whatever\": true}\r\n\r\n: a comment\r\n\r\n"
            + sse(future))
    fed, finished, text = read_body(body)
    assert [result.unwrap() for result in fed] == ["", EXPECTED["text_basic"]["text"]]
    assert text == EXPECTED["text_basic"]["text"]
    assert finished == gemini.parse_response_object(REQUEST, future)


def test_a_failed_reader_stays_failed() -> None:
    reader = ContentStreamReader(REQUEST)
    failed = reader.feed(ServerEvent(data=json.dumps(OVERLOADED)))
    assert reader.feed(ServerEvent(data=json.dumps(chunks_of("text_basic")[0]))) == failed
    assert reader.finish() == failed and reader.text == ""


def test_usage_and_ids_are_the_last_chunks() -> None:
    first, second, last = chunks_of("text_multichunk")
    reader = ContentStreamReader(REQUEST)
    for chunk in (first, second, last):
        reader.feed(ServerEvent(data=json.dumps(chunk)))
    assert reader.response()["usageMetadata"] == last["usageMetadata"]


def test_text_parts_join_by_kind_and_other_parts_stay() -> None:
    call = {"functionCall": {"name": "f"}}
    assert merge_parts([{"text": "a"}], [{"text": "b"}, call, {"text": "c"},
                                         {"text": "d", "thought": True}]) == [
        {"text": "ab"}, call, {"text": "c"}, {"text": "d", "thought": True}]
    # two signatures stay on their own parts
    assert merge_parts([{"text": "a", "thoughtSignature": "s1"}],
                       [{"text": "", "thoughtSignature": "s2"}]) == [
        {"text": "a", "thoughtSignature": "s1"}, {"text": "", "thoughtSignature": "s2"}]


def test_a_usage_chunk_after_the_finishing_chunk_still_counts() -> None:
    # text_basic with its usage moved to a chunk of its own after the finishing chunk
    chunk = copied(chunks_of("text_basic")[0])
    usage = chunk.pop("usageMetadata")
    fed, finished, text = read_body(sse(chunk, {"usageMetadata": usage,
                                                "modelVersion": chunk["modelVersion"]}))
    assert [result.unwrap() for result in fed] == [text, ""]
    assert finished.unwrap().usage == EXPECTED["text_basic"]["usage"]
    assert finished == gemini.parse_response_object(REQUEST, {**chunk, "usageMetadata": usage})


def test_each_candidate_is_merged_and_the_first_gives_the_text() -> None:
    # text_multichunk with a second candidate (candidateCount 2) beside the first in each chunk
    chunks = []
    for chunk in chunks_of("text_multichunk"):
        edited = copied(chunk)
        other = copied(chunk["candidates"][0])
        other["index"] = 1
        other["content"]["parts"] = [{"text": "x"}]
        edited["candidates"].append(other)
        chunks.append(edited)
    generation = read_body(sse(*chunks))[1].unwrap()
    assert generation.text == COUNTING
    assert generation.raw["candidates"][1]["content"]["parts"] == [{"text": "xxx"}]
