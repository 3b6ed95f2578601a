"""The OpenAI Responses parser: recorded traffic replayed, the SDK as an oracle, and properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.responses import Response as SDKResponse
from pydantic import BaseModel
from returns.result import Failure, Result, Success

from llmbackend.errors import (
    BlockedError,
    HTTPStatusError,
    LLMError,
    NoTextError,
    ProviderError,
    RefusalError,
    ResponseParseError,
    SchemaValidationError,
    ToolCallError,
    TruncationError,
    UnsupportedError,
)
from llmbackend.pipeline import attach_parsed
from llmbackend.providers import openai_batch
from llmbackend.providers.openai import collect_output, parse_response
from llmbackend.types import Generation, GenerationRequest, StructuredOutput, WireResponse
from tests import strategies
from tests.conftest import fixture_names, load_fixture
from tests.emulator import response_body
from tests.openapi import union_types, validator

REQUEST = GenerationRequest(model="gpt-4o-mini", input="x")


def parse(body: Any, status: int = 200, request: GenerationRequest = REQUEST,
          attempts: int = 1) -> Result[Generation[Any], LLMError]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_response(request, WireResponse(status=status, body=raw, attempts=attempts)).bind(
        lambda generation: attach_parsed(request.schema, generation))


# --- replay of recorded traffic -------------------------------------------------------------------

RESPONSES_FIXTURES = [name for name in fixture_names("openai")
                      if load_fixture("openai", name)["request"]["path"] == "/v1/responses"]


class Author(BaseModel):
    first_name: str
    last_name: str


class Book(BaseModel):
    title: str
    author: Author
    rating: int


def _schema_of(fixture: dict[str, Any]) -> StructuredOutput[Any] | None:
    fmt = (fixture["request"]["body"].get("text") or {}).get("format") or {}
    return StructuredOutput(schema=fmt["schema"], name=fmt["name"]) if fmt.get(
        "type") == "json_schema" else None


def _expect_text(text: str, input_tokens: int, output_tokens: int) -> Any:
    def check(result: Result[Generation[Any], LLMError]) -> None:
        generation = result.unwrap()
        assert generation.text == text
        assert (generation.usage.input_tokens, generation.usage.output_tokens) == (
            input_tokens, output_tokens)
        assert generation.finish_reason == "stop"
        assert generation.response_id is not None
        assert generation.response_id.startswith("resp_")
    return check


def _expect_parsed(value: Any) -> Any:
    def check(result: Result[Generation[Any], LLMError]) -> None:
        assert result.unwrap().parsed == value
    return check


def _expect_failure(kind: type[LLMError], **fields: Any) -> Any:
    def check(result: Result[Generation[Any], LLMError]) -> None:
        assert isinstance(result, Failure), result
        error = result.failure()
        assert type(error) is kind
        for name, value in fields.items():
            assert getattr(error, name) == value, name
    return check


#: The outcome each recorded Responses exchange must give. A new fixture must be added here.
EXPECTED = {
    "responses_text_basic.json": _expect_text("The capital of France is Paris.", 14, 8),
    "responses_reasoning_gpt5.json": _expect_text("3", 32, 1095),
    "responses_structured_json_schema.json": _expect_parsed({
        "title": "THE NAME OF THE WIND", "author": {"first_name": "Patrick",
                                                    "last_name": "Rothfuss"}, "rating": 7}),
    "responses_structured_after_tool_result.json": _expect_parsed({
        "city": "Mexico City", "country": "Mexico"}),
    # Read from the answer: a ToolCallError, which is still an UnsupportedError (issue 14).
    "responses_function_call_with_json_schema_format.json": _expect_failure(
        ToolCallError, parameter="tools", provider="openai", calls=("get_user_country",)),
    "responses_error_400_invalid_temperature.json": _expect_failure(
        HTTPStatusError, status=400, error_type="invalid_request_error",
        error_code="decimal_below_min_value", error_param="temperature", retryable=False),
    "responses_error_401_invalid_api_key.json": _expect_failure(
        HTTPStatusError, status=401, error_type="invalid_request_error",
        error_code="invalid_api_key", retryable=False),
}


def test_every_recorded_responses_exchange_has_an_expected_outcome() -> None:
    assert sorted(EXPECTED) == RESPONSES_FIXTURES


@pytest.mark.parametrize("name", RESPONSES_FIXTURES)
def test_replay_recorded_exchange(name: str) -> None:
    fixture = load_fixture("openai", name)
    request = GenerationRequest(model=fixture["request"]["body"]["model"], input="x",
                                schema=_schema_of(fixture))
    EXPECTED[name](parse(fixture["response"]["body"], fixture["response"]["status"], request))


def test_recorded_structured_answer_parses_into_a_pydantic_model() -> None:
    body = load_fixture("openai", "responses_structured_json_schema.json")["response"]["body"]
    request = GenerationRequest(model="gpt-4o", input="x",
                                schema=StructuredOutput(pydantic_model=Book))
    assert parse(body, request=request).unwrap().parsed == Book(
        title="THE NAME OF THE WIND", author=Author(first_name="Patrick", last_name="Rothfuss"),
        rating=7)


def test_recorded_error_message_is_kept_and_reasoning_tokens_counted() -> None:
    error = parse(*_body_and_status("responses_error_401_invalid_api_key.json")).failure()
    assert "Incorrect API key provided" in str(error)
    assert "HTTP 401" in str(error)
    usage = parse(*_body_and_status("responses_reasoning_gpt5.json")).unwrap().usage
    assert usage.reasoning_tokens == 1088
    assert usage.total_tokens == 1127


def _body_and_status(name: str) -> tuple[Any, int]:
    fixture = load_fixture("openai", name)
    return fixture["response"]["body"], fixture["response"]["status"]


# --- the official SDK as an oracle ----------------------------------------------------------------


def sdk_read(body: dict[str, Any]) -> SDKResponse:
    """The SDK's reading of a body. Like the SDK's own client, construct without validating:
    newer SDK models require fields (e.g. ``cache_write_tokens``) that older recordings lack."""
    return SDKResponse.construct(**body)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", [n for n in RESPONSES_FIXTURES
                                  if load_fixture("openai", n)["response"]["status"] == 200])
def test_sdk_reads_the_same_text_from_recorded_bodies(name: str) -> None:
    body = load_fixture("openai", name)["response"]["body"]
    sdk = sdk_read(body)
    text, _refusal, _tools = collect_output(body["output"])
    assert text == sdk.output_text
    if sdk.usage is not None:
        usage = parse_response(REQUEST, WireResponse(status=200, body=json.dumps(body).encode()))
        if isinstance(usage, Success):
            assert usage.unwrap().usage.output_tokens == sdk.usage.output_tokens


def _has_output_text(output: list[dict[str, Any]]) -> bool:
    return any(part["type"] == "output_text" for item in output if item["type"] == "message"
               for part in item["content"])


@given(strategies.response_bodies)
def test_sdk_and_parser_agree_on_synthesised_bodies(body: dict[str, Any]) -> None:
    sdk = sdk_read(body)
    if not _has_output_text(body["output"]):  # no text part at all: an error (issue 14)
        assert sdk.output_text == ""
        assert isinstance(parse(body).failure(), NoTextError)
        return
    generation = parse(body).unwrap()
    assert generation.text == sdk.output_text == strategies.expected_text(body["output"])
    assert sdk.usage is not None
    assert generation.usage.input_tokens == sdk.usage.input_tokens
    assert generation.usage.output_tokens == sdk.usage.output_tokens
    assert generation.response_id == sdk.id


# --- properties -----------------------------------------------------------------------------------


@given(st.binary(max_size=300), strategies.http_statuses)
def test_parser_never_raises_on_arbitrary_bytes(raw: bytes, status: int) -> None:
    assert isinstance(parse(raw, status), Success | Failure)


@given(strategies.json_values, strategies.http_statuses)
def test_parser_never_raises_on_arbitrary_json(value: Any, status: int) -> None:
    result = parse(value, status)
    if not 200 <= status < 300:
        assert isinstance(result.failure(), HTTPStatusError)
        assert result.failure().status == status  # type: ignore[attr-defined]


@given(st.dictionaries(st.sampled_from(["id", "status", "output", "usage", "model", "error",
                                        "incomplete_details"]), strategies.json_values))
def test_parser_never_raises_on_response_shaped_junk(body: dict[str, Any]) -> None:
    assert isinstance(parse(body), Success | Failure)


@given(strategies.text_outputs)
def test_parse_of_a_synthesised_response_recovers_the_text(output: list[Any]) -> None:
    body = response_body("gpt-4o-mini", "", output=output)
    if not _has_output_text(output):  # no text part at all: an error (issue 14)
        assert isinstance(parse(body).failure(), NoTextError)
        return
    assert parse(body).unwrap().text == strategies.expected_text(output)


def test_emulator_bodies_are_valid_responses() -> None:
    body = response_body("gpt-4o-mini", "hello")
    assert list(validator("Response", closed=False).iter_errors(body)) == []


@given(st.text(min_size=1, max_size=50))
def test_a_refusal_item_is_a_refusal_error_with_its_text(refusal: str) -> None:
    output = [{"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "refusal", "refusal": refusal}]}]
    schema = StructuredOutput(schema={"type": "object"})
    request = GenerationRequest(model="m", input="x", schema=schema)
    error = parse(response_body("m", "", output=output), request=request).failure()
    assert error == RefusalError(message=f"the model refused: {refusal}", provider="openai",
                                 text=refusal)


@given(st.text(max_size=50))
def test_incomplete_responses_carry_the_partial_text(partial: str) -> None:
    body = response_body("m", partial, status="incomplete",
                         incomplete_reason="max_output_tokens")
    error = parse(body).failure()
    assert isinstance(error, TruncationError)
    assert error.text == partial
    assert "max_tokens" in error.message
    body = response_body("m", partial, status="incomplete", incomplete_reason="content_filter")
    blocked = parse(body).failure()
    assert isinstance(blocked, BlockedError)
    assert (blocked.reason, blocked.text) == ("content_filter", partial)


@pytest.mark.parametrize("status", ["failed", "queued", "in_progress", "cancelled"])
def test_unfinished_or_failed_responses_are_provider_errors(status: str) -> None:
    body = response_body("m", "", status=status)
    body["error"] = {"code": "server_error", "message": "The model crashed."}
    error = parse(body).failure()
    assert isinstance(error, ProviderError)
    assert error.error_code == "server_error"
    assert status in error.message


@given(st.integers(400, 599), st.text(max_size=40), st.sampled_from([
    "invalid_request_error", "rate_limit_exceeded", "server_error"]), st.none() | st.text(
        "abc_", min_size=1, max_size=10))
def test_error_bodies_become_http_errors(status: int, message: str, error_type: str,
                                         code: str | None) -> None:
    body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    error = parse(body, status, attempts=3).failure()
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.error_type, error.error_code) == (status, error_type, code)
    assert error.retryable == (status in (408, 409, 429) or status >= 500)
    assert error.attempts == 3
    assert message in error.message


def test_non_json_error_body_is_quoted() -> None:
    error = parse(b"<html>502 Bad Gateway</html>", 502).failure()
    assert isinstance(error, HTTPStatusError)
    assert "502 Bad Gateway" in error.message
    assert error.retryable


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'{"id": "resp_1"}',
                                 b'{"output": "text"}', b"\xff\xfe"])
def test_a_200_that_is_not_a_response_object_is_a_parse_error(raw: bytes) -> None:
    assert isinstance(parse(raw).failure(), ResponseParseError)


@pytest.mark.parametrize(("answer", "path"), [
    ('{"title": "T", "author": {"first_name": "A", "last_name": "B"}, "rating": "seven"}',
     "$.rating"),
    ('{"title": "T", "author": {"first_name": "A"}, "rating": 1}', "$.author.last_name"),
    ("Sure! Here is the JSON you asked for", "$"),
])
def test_answers_that_do_not_match_the_schema_name_the_path(answer: str, path: str) -> None:
    for schema in (StructuredOutput(pydantic_model=Book),
                   StructuredOutput(schema=Book.model_json_schema())):
        request = GenerationRequest(model="m", input="x", schema=schema)
        error = parse(response_body("m", answer), request=request).failure()
        assert isinstance(error, SchemaValidationError)
        assert error.path == path
        assert error.text == answer


@pytest.mark.parametrize(("status", "body", "hinted"), [
    # llama.cpp's llama-server and other compatible servers without the Responses API.
    (404, b'{"code":404,"message":"File Not Found","type":"not_found_error"}', True),
    (404, b"404 page not found", True),
    (405, b"", True),
    # OpenAI's own 404 (an unknown model) is an OpenAI error object: no hint.
    (404, b'{"error": {"message": "The model `x` does not exist", "type": '
          b'"invalid_request_error", "param": null, "code": "model_not_found"}}', False),
])
def test_a_server_without_the_responses_route_says_so(status: int, body: bytes,
                                                      hinted: bool) -> None:
    request = GenerationRequest(model="m", input="hi")
    error = parse_response(request, WireResponse(status=status, body=body)).failure()
    assert isinstance(error, HTTPStatusError)
    assert error.status == status
    assert ("POST /v1/responses" in error.message) is hinted


# --- answers without text (issue 14) --------------------------------------------------------------

#: Every kind of item the spec's ``OutputItem`` union allows in a response's ``output``.
OUTPUT_ITEM_TYPES = union_types("OutputItem")


def test_the_output_item_union_is_read_from_the_spec() -> None:
    assert {"message", "function_call", "mcp_approval_request", "program"} <= set(
        OUTPUT_ITEM_TYPES)


@pytest.mark.parametrize("kind", OUTPUT_ITEM_TYPES)
def test_a_completed_answer_without_text_is_an_error_naming_what_came_back(kind: str) -> None:
    item = {"type": kind, "id": "item_1", "status": "completed", "name": "lookup",
            "arguments": "{}", "call_id": "call_1", "content": [], "summary": []}
    error = parse(response_body("gpt-4o-mini", "", output=[item])).failure()
    assert isinstance(error, NoTextError)  # never Success('')
    assert (error.kinds, error.provider) == ((kind,), "openai")
    assert error.body is not None and kind in error.body
    if kind.endswith("_call"):  # a call the caller must run: also an UnsupportedError
        assert isinstance(error, ToolCallError) and isinstance(error, UnsupportedError)
        assert (error.calls, error.parameter) == (("lookup",), "tools")
    else:
        assert not isinstance(error, UnsupportedError)
        assert kind in error.message


def test_an_empty_output_is_an_error_and_an_empty_output_text_an_empty_answer() -> None:
    empty = parse(response_body("gpt-4o-mini", "", output=[])).failure()
    assert isinstance(empty, NoTextError) and empty.kinds == ()
    assert "empty 'output' list" in empty.message
    assert parse(response_body("gpt-4o-mini", "")).unwrap().text == ""


def test_text_beside_tool_like_items_is_the_answer() -> None:
    output = [{"type": "mcp_approval_request", "id": "a", "name": "n", "arguments": "{}",
               "server_label": "s"},
              *response_body("gpt-4o-mini", "hello")["output"]]
    assert parse(response_body("gpt-4o-mini", "", output=output)).unwrap().text == "hello"


@pytest.mark.parametrize(("parse_wire", "route"), [
    (openai_batch.parse_file_object, "POST /files"),
    (openai_batch.parse_batch_object, "POST /batches"),
])
def test_a_server_without_the_batch_routes_names_the_route_and_the_immediate_mode(
    parse_wire: Any, route: str
) -> None:
    error = parse_wire(WireResponse(status=404, body=b'{"detail":"Not Found"}')).failure()
    assert isinstance(error, HTTPStatusError)
    assert f"no {route} route" in error.message
    assert "batch_options={'mode': 'immediate'}" in error.message
    assert "must implement the Responses API" not in error.message
