"""The pure OpenAI batch builders and parsers: properties, the official OpenAPI spec, the recorded
batch and file traffic, and the SDK's typed models as an oracle."""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from typing import Any
from urllib.parse import unquote

import pytest
from attrs import evolve
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

from llmbackend.batching import BatchCounts, default_custom_ids
from llmbackend.errors import (
    ConfigurationError,
    HTTPStatusError,
    ProviderError,
    RefusalError,
    ResponseParseError,
    UnsupportedError,
)
from llmbackend.messages import Message, check_input
from llmbackend.providers import openai_batch as wire
from llmbackend.providers.openai import build_response_request
from llmbackend.types import GenerationConfig, GenerationRequest, StructuredOutput, WireResponse
from tests import strategies
from tests.conftest import fixture_names, load_fixture
from tests.emulator import UNUSABLE_BATCH_IDS, USABLE_BATCH_IDS, response_body
from tests.openapi import problems
from tests.test_openai_builder import sendable_lists

REQUEST = GenerationRequest(model="gpt-4o-mini", input="")
custom_ids = st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True)


def response_of(fixture: dict[str, Any]) -> WireResponse:
    body = fixture["response"]["body"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return WireResponse(status=fixture["response"]["status"], body=raw)


# --- batch options --------------------------------------------------------------------------------


def test_options_default_to_openai_limits() -> None:
    options = wire.parse_batch_options(None, 3)
    assert options == wire.OpenAIBatchOptions()
    assert options.completion_window == "24h"
    assert options.max_requests_per_batch == 50_000
    assert default_custom_ids(3) == ("request-0", "request-1", "request-2")


def test_seed_options_are_accepted() -> None:
    options = wire.parse_batch_options({"display_name": "titles", "completion_window": "24h",
                                        "custom_ids": ["a", "b"], "system": "Be brief."}, 2)
    assert options.display_name == "titles"
    assert options.custom_ids == ("a", "b")
    assert options.system == "Be brief."


@pytest.mark.parametrize(("options", "key", "words"), [
    ({"display_nam": "x"}, "display_nam", "Did you mean 'display_name'?"),
    ({"completion_window": "1h"}, "completion_window", "'24h'"),
    ({"completion_window": 24}, "completion_window", "got 24"),
    ({"display_name": "x" * 513}, "display_name", "at most 512"),
    ({"display_name": 7}, "display_name", "string"),
    ({"system": ["a"]}, "system", "string"),
    ({"max_requests_per_batch": 0}, "max_requests_per_batch", "from 1 to 50,000"),
    ({"max_requests_per_batch": 50_001}, "max_requests_per_batch", "from 1 to 50,000"),
    ({"max_requests_per_batch": True}, "max_requests_per_batch", "got True"),
    ({"custom_ids": ["a"]}, "custom_ids", "1 ids for 2 inputs"),
    ({"custom_ids": "ab"}, "custom_ids", "list of strings"),
    ({"custom_ids": ["a", "a"]}, "custom_ids", "'a' is used twice (inputs #0 and #1)"),
    ({"custom_ids": ["a", "b c"]}, "custom_ids", "custom id #1 'b c' is not valid"),
    ({"custom_ids": ["a", "x" * 65]}, "custom_ids", "1 to 64 characters"),
    ({"custom_ids": ["a", ""]}, "custom_ids", "#1 '' is not valid"),
    ({"custom_ids": ["a", 2]}, "custom_ids", "#1 2 is not valid"),
])
def test_bad_options_fail_naming_the_option(options: dict[str, Any], key: str, words: str
                                            ) -> None:
    with pytest.raises(ConfigurationError) as raised:
        wire.parse_batch_options(options, 2)
    assert raised.value.key == key
    assert words in str(raised.value)


def test_options_must_be_a_dict() -> None:
    with pytest.raises(ConfigurationError, match="batch_options must be a dict"):
        wire.parse_batch_options(["display_name"], 1)  # type: ignore[arg-type]


@given(st.lists(custom_ids, unique=True, min_size=1, max_size=20))
def test_valid_custom_ids_pass_unchanged(ids: list[str]) -> None:
    assert wire.check_custom_ids(ids, len(ids)) == tuple(ids)


def test_system_option_becomes_instructions_unless_it_conflicts() -> None:
    config = wire.apply_system(GenerationConfig(temperature=0.5), "Be brief.")
    assert config.extra == {"system": "Be brief."}
    assert wire.apply_system(config, "Be brief.") == config
    assert wire.apply_system(config, None) is config
    with pytest.raises(ConfigurationError, match="both set and differ"):
        wire.apply_system(config, "Be long.")


# --- input lines ----------------------------------------------------------------------------------


@settings(max_examples=150)
@given(strategies.models, strategies.openai_configs, st.none() | strategies.json_schemas,
       st.lists(st.tuples(custom_ids, strategies.prompts), max_size=5))
def test_each_line_carries_exactly_the_sync_body(
    model: str, config: GenerationConfig, schema: dict[str, Any] | None,
    items: list[tuple[str, str]],
) -> None:
    request = GenerationRequest(model=model, input="", config=config,
                                schema=StructuredOutput(schema=schema) if schema else None)
    encoder = wire.build_line_encoder(request).unwrap()
    for custom_id, prompt in items:
        line = encoder.line(custom_id, prompt)
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1  # one request per line, whatever the prompt holds
        sync = build_response_request(GenerationRequest(
            model=model, input=prompt, config=config, schema=request.schema)).unwrap()
        assert json.loads(line) == {"custom_id": custom_id, "method": "POST",
                                    "url": "/v1/responses", "body": sync.json}
        assert problems("CreateResponse", sync.json) == []


def test_lines_keep_key_order_and_unicode() -> None:
    encoder = wire.build_line_encoder(GenerationRequest(
        model="gpt-4o-mini", input="", config=GenerationConfig(temperature=0.2))).unwrap()
    assert encoder.line("a", "Grüße\n\u2028") == (
        '{"custom_id":"a","method":"POST","url":"/v1/responses","body":{"model":"gpt-4o-mini",'
        '"input":"Grüße\\n\u2028","temperature":0.2}}\n').encode()
    assert list(encoder.lines(["x", "y"], ["1", "2"])) == [encoder.line("x", "1"),
                                                           encoder.line("y", "2")]


def test_the_encoder_fails_as_the_sync_builder_does() -> None:
    result = wire.build_line_encoder(GenerationRequest(
        model="m", input="", config=GenerationConfig(seed=1)))
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), UnsupportedError)
    dropped = wire.build_line_encoder(GenerationRequest(
        model="m", input="", config=GenerationConfig(seed=1), drop_unsupported=True)).unwrap()
    assert dropped.warnings and "seed" in dropped.warnings[0]
    assert "seed" not in json.loads(dropped.line("a", "b"))["body"]


def test_recorded_input_lines_are_read_back() -> None:
    fixture = load_fixture("openai", "files_upload_batch_input_responses.json")
    content = fixture["request"]["body"]["multipart_form"]["files"][0]["content"]
    lines = [wire.parse_input_line(line.encode()) for line in content.splitlines()]
    assert [line.custom_id for line in lines] == ["request-0", "request-1"]
    assert lines[0].body is not None
    assert lines[0].body["model"] == "gpt-4.1"
    assert wire.parse_input_line(b"not json") == wire.InputLine(custom_id=None)
    assert wire.parse_input_line(b"[1]") == wire.InputLine(custom_id=None)


# --- requests -------------------------------------------------------------------------------------


def test_the_upload_is_a_multipart_form_with_purpose_batch() -> None:
    content = b'{"custom_id":"a"}\n{"custom_id":"b"}\n'
    upload = wire.build_file_upload("in.jsonl", len(content), lambda: iter([content[:5],
                                                                            content[5:]]),
                                    boundary="llmbackend-0123")
    assert (upload.method, upload.path) == ("POST", "/files")
    body = upload.content
    assert isinstance(body, wire.StreamBody)
    raw = b"".join(body.chunks())
    assert raw == b"".join(body.chunks())  # re-readable, for retries
    assert len(raw) == body.length
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + upload.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
    parts = {part.get_param("name", header="content-disposition"): part
             for part in message.iter_parts()}
    assert parts["purpose"].get_content() == "batch"
    assert parts["file"].get_filename() == "in.jsonl"
    assert parts["file"].get_payload(decode=True) == content


@pytest.mark.parametrize(("display_name", "part", "parts", "metadata"), [
    (None, 0, 1, None),
    ("titles", 0, 1, {"display_name": "titles"}),
    ("titles", 1, 3, {"display_name": "titles", "llmbackend_part": "2/3"}),
    (None, 0, 2, {"llmbackend_part": "1/2"}),
])
def test_create_bodies_validate_against_the_openapi_spec(
    display_name: str | None, part: int, parts: int, metadata: dict[str, str] | None
) -> None:
    options = wire.OpenAIBatchOptions(display_name=display_name)
    create = wire.build_create_batch("file-abc", options, part, parts)
    assert (create.method, create.path) == ("POST", "/batches")
    assert problems("CreateBatchRequest", create.json) == []
    assert create.json.get("metadata") == metadata
    recorded = load_fixture("openai", "batches_create_validating_responses.json")
    assert {k: v for k, v in create.json.items() if k != "metadata"} == {
        **recorded["request"]["body"], "input_file_id": "file-abc"}


def test_ids_in_paths_are_escaped() -> None:
    assert wire.build_retrieve_batch("batch_1").path == "/batches/batch_1"
    assert wire.build_cancel_batch("batch_1").path == "/batches/batch_1/cancel"
    assert wire.build_file_content("file-x/../y").path == "/files/file-x%2F..%2Fy/content"


def test_batch_ids_split_and_join() -> None:
    assert wire.split_batch_id("batch_a") == ("batch_a",)
    assert wire.split_batch_id("batch_a+batch_b") == ("batch_a", "batch_b")
    assert wire.join_batch_ids(["batch_a", "batch_b"]) == "batch_a+batch_b"
    # Any printable string is an id (it is percent-encoded into the path): a space, a slash.
    assert wire.split_batch_id("batch a+batch/../x") == ("batch a", "batch/../x")
    for bad in ("", "a++b", "+a", "a+", "..", "a\nb", None, 3):
        with pytest.raises(ConfigurationError, match="batch id"):
            wire.split_batch_id(bad)


@pytest.mark.parametrize("batch_id", USABLE_BATCH_IDS)
def test_an_id_taken_from_the_server_is_taken_back_from_the_user(batch_id: str) -> None:
    """One rule at both ends: the id a batch object gives is the id attach and restore take."""
    body = {"id": batch_id, "object": "batch", "status": "validating"}
    batch = wire.parse_batch_object(WireResponse(status=200, body=json.dumps(body).encode()))
    assert batch.unwrap().id == batch_id
    assert wire.split_batch_id(batch_id) == (batch_id,)
    assert wire.check_part_id(batch_id) == batch_id
    segment = wire.build_retrieve_batch(batch_id).path.removeprefix("/batches/")
    assert "/" not in segment and unquote(segment) == batch_id  # one path segment, exactly


@pytest.mark.parametrize("batch_id", UNUSABLE_BATCH_IDS)
def test_an_id_llmbackend_cannot_use_is_refused_at_both_ends_and_shown_escaped(
        batch_id: str) -> None:
    body = json.dumps({"id": batch_id, "object": "batch", "status": "validating"}).encode()
    refused = wire.parse_batch_object(WireResponse(status=200, body=body))
    assert isinstance(refused, Failure)
    error = refused.failure()
    assert isinstance(error, ProviderError) and error.error_type == "invalid_batch_id"
    assert str(error).isprintable()  # no line break, escape code or surrogate reaches a terminal
    assert repr(batch_id)[:40] in str(error)
    assert "cancel it there" in str(error)  # it may have been made, and billed
    checks = [wire.check_part_id]
    if batch_id == "a+b":  # as a handle's id, the documented join of two parts' ids
        assert wire.split_batch_id(batch_id) == ("a", "b")
    else:
        checks.append(wire.split_batch_id)
    for check in checks:
        with pytest.raises(ConfigurationError) as raised:
            check(batch_id)
        assert str(raised.value).isprintable()


@given(st.text(st.characters(exclude_categories=()), max_size=40))  # surrogates too
def test_whatever_a_batch_object_gives_is_refused_there_or_taken_back_everywhere(
        batch_id: str) -> None:
    body = json.dumps({"id": batch_id, "status": "validating"}).encode()
    parsed = wire.parse_batch_object(WireResponse(status=200, body=body))
    if isinstance(parsed, Failure):
        assert str(parsed.failure()).isprintable()
        with pytest.raises(ConfigurationError):
            wire.check_part_id(batch_id)
        return
    assert parsed.unwrap().id == batch_id == wire.check_part_id(batch_id)
    assert wire.split_batch_id(batch_id) == (batch_id,)
    assert unquote(wire.build_cancel_batch(batch_id).path) == f"/batches/{batch_id}/cancel"


def test_the_rule_says_why() -> None:
    from llmbackend.batching import MAX_BATCH_ID, batch_id_problem

    assert batch_id_problem("batch 1/..%2F") is None
    assert batch_id_problem("z" * MAX_BATCH_ID) is None
    assert batch_id_problem("a+b", "+") == "it holds '+', which cannot be part of one id"
    assert batch_id_problem("a+b") is None  # "+" is only reserved where it joins parts
    assert "printed on one line" in (batch_id_problem("a\x1bb") or "")
    assert "path" in (batch_id_problem("..") or "")
    assert "empty" in (batch_id_problem("") or "")
    assert "characters long" in (batch_id_problem("z" * (MAX_BATCH_ID + 1)) or "")
    assert "not a string" in (batch_id_problem(None) or "")


# --- recorded traffic -----------------------------------------------------------------------------

BATCH_FIXTURES = [name for name in fixture_names("openai") if name.startswith("batches_")]


@pytest.mark.parametrize("name", BATCH_FIXTURES)
def test_recorded_batch_objects_parse_as_the_sdk_reads_them(name: str) -> None:
    from openai.types import Batch as SDKBatch

    fixture = load_fixture("openai", name)
    ours = wire.parse_batch_object(response_of(fixture)).unwrap()
    sdk = SDKBatch.model_validate(fixture["response"]["body"])
    assert ours.id == sdk.id
    assert ours.status == sdk.status
    assert ours.status.raw == sdk.status
    assert ours.endpoint == sdk.endpoint
    assert ours.input_file_id == sdk.input_file_id
    assert ours.output_file_id == sdk.output_file_id
    assert ours.error_file_id == sdk.error_file_id
    assert sdk.request_counts is not None
    assert ours.counts == BatchCounts(total=sdk.request_counts.total,
                                      completed=sdk.request_counts.completed,
                                      failed=sdk.request_counts.failed)


def test_recorded_batch_statuses_normalize() -> None:
    statuses = {name: wire.parse_batch_object(response_of(load_fixture("openai", name)))
                .unwrap().status.value for name in BATCH_FIXTURES}
    assert statuses == {
        "batches_create_validating_responses.json": "pending",
        "batches_get_completed_chat.json": "completed",
        "batches_get_completed_responses.json": "completed",
        "batches_get_in_progress.json": "running",
    }


@pytest.mark.parametrize("name", ["files_upload_batch_input_responses.json",
                                  "files_get_batch_input.json"])
def test_recorded_file_objects_give_their_id(name: str) -> None:
    fixture = load_fixture("openai", name)
    assert wire.parse_file_object(response_of(fixture)) == Success(
        fixture["response"]["body"]["id"])


def test_recorded_responses_output_file_gives_every_answer() -> None:
    fixture = load_fixture("openai", "files_content_batch_output_responses.json")
    parsed = [wire.parse_result_line(REQUEST, line.encode())
              for line in fixture["response"]["body"].splitlines()]
    assert [(cid, outcome.unwrap().text) for cid, outcome in parsed] == [
        ("request-0", "The capital of France is Paris."),
        ("request-1", "The capital of Germany is Berlin."),
    ]
    first = parsed[0][1].unwrap()
    assert first.usage.input_tokens == 13
    assert first.usage.output_tokens == 8
    assert first.model == "gpt-4o-mini-2024-07-18"
    assert first.response_id == "resp_03fadd1c6825c64d01690a90c90f248195a00b1029648d022b"


def test_a_chat_completions_output_file_is_reported_not_misread() -> None:
    fixture = load_fixture("openai", "files_content_batch_output_chat.json")
    for line in fixture["response"]["body"].splitlines():
        custom_id, outcome = wire.parse_result_line(REQUEST, line.encode())
        assert custom_id in {"0", "1", "2"}
        assert isinstance(outcome, Failure)
        assert isinstance(outcome.failure(), ResponseParseError)


# --- result lines ---------------------------------------------------------------------------------


def _line(**fields: Any) -> bytes:
    return json.dumps({"id": "batch_req_1", "custom_id": "a", "response": None, "error": None,
                       **fields}).encode()


def test_an_error_line_is_a_provider_error_with_openai_code() -> None:
    custom_id, outcome = wire.parse_result_line(REQUEST, _line(error={
        "code": "batch_expired",
        "message": "This request could not be executed before the completion window expired."}))
    assert custom_id == "a"
    error = outcome.failure()
    assert isinstance(error, ProviderError)
    assert error.error_code == "batch_expired"
    assert "completion window expired" in str(error)


def test_a_non_2xx_line_is_the_http_error_the_sync_call_would_give() -> None:
    body = {"error": {"message": "Invalid 'max_output_tokens'", "type": "invalid_request_error",
                      "param": "max_output_tokens", "code": "integer_below_min_value"}}
    _, outcome = wire.parse_result_line(REQUEST, _line(response={
        "status_code": 400, "request_id": "r1", "body": body}))
    error = outcome.failure()
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.error_type, error.error_code, error.error_param) == (
        400, "invalid_request_error", "integer_below_min_value", "max_output_tokens")


def test_a_2xx_line_is_parsed_like_a_sync_answer() -> None:
    refusal = response_body("gpt-4o-mini", "", output=[{
        "type": "message", "role": "assistant", "status": "completed",
        "content": [{"type": "refusal", "refusal": "I can't help with that."}]}])
    _, outcome = wire.parse_result_line(REQUEST, _line(response={
        "status_code": 200, "request_id": "r", "body": refusal}))
    assert isinstance(outcome.failure(), RefusalError)
    _, ok = wire.parse_result_line(REQUEST, _line(response={
        "status_code": 200, "request_id": "r", "body": response_body("m", "hi")}))
    assert ok.unwrap().text == "hi"


@pytest.mark.parametrize(("line", "custom_id"), [
    (b"", None), (b"{", None), (b"[]", None), (b'{"custom_id": 3}', None),
    (b'{"custom_id": "a"}', "a"), (b'{"custom_id": "a", "response": {"status_code": "200"}}', "a"),
    (b'{"custom_id": "a", "response": {"status_code": 200, "body": "text"}}', "a"),
])
def test_unreadable_lines_fail_without_raising(line: bytes, custom_id: str | None) -> None:
    got, outcome = wire.parse_result_line(REQUEST, line)
    assert got == custom_id
    assert isinstance(outcome, Failure)


@given(st.binary() | strategies.json_values.map(lambda v: json.dumps(v).encode()))
def test_result_line_parser_never_raises(line: bytes) -> None:
    custom_id, outcome = wire.parse_result_line(REQUEST, line)
    assert custom_id is None or isinstance(custom_id, str)
    assert isinstance(outcome, Success | Failure)


@given(st.binary() | strategies.json_values.map(lambda v: json.dumps(v).encode()))
def test_batch_and_file_parsers_never_raise(body: bytes) -> None:
    for status in (200, 404, 500):
        response = WireResponse(status=status, body=body)
        assert isinstance(wire.parse_batch_object(response), Success | Failure)
        assert isinstance(wire.parse_file_object(response), Success | Failure)


# --- missing lines --------------------------------------------------------------------------------


def _batch(status: str, issues: tuple[wire.BatchIssue, ...] = ()) -> wire.OpenAIBatch:
    from llmbackend.batching import BatchStatus

    return wire.OpenAIBatch(id="batch_1", status=BatchStatus(status), counts=BatchCounts(),
                            issues=issues)


@pytest.mark.parametrize(("status", "code", "words"), [
    ("expired", "batch_expired", "the batch expired"),
    ("cancelled", "batch_cancelled", "the batch was cancelled"),
    ("completed", "missing_result", "no line for request 'a'"),
])
def test_a_missing_line_says_why_from_the_batch_end(status: str, code: str, words: str) -> None:
    error = wire.missing_result_error(_batch(status), "a", 1)
    assert isinstance(error, ProviderError)
    assert error.error_code == code
    assert words in str(error)


def test_a_failed_batch_names_the_line_specific_error() -> None:
    batch = _batch("failed", (
        wire.BatchIssue(code="duplicate_custom_id", message="Duplicate custom_id", line=2),
        wire.BatchIssue(code="invalid_json_line", message="Bad JSON", line=3)))
    own = wire.missing_result_error(batch, "b", 2)
    assert own.error_code == "duplicate_custom_id"  # type: ignore[attr-defined]
    assert "this request: Duplicate custom_id" in str(own)
    other = wire.missing_result_error(batch, "a", 1)
    assert "the batch: Duplicate custom_id (and 1 more errors)" in str(other)
    assert "4 result line(s) could not be read" in str(
        wire.missing_result_error(_batch("completed"), "a", 1, unreadable_lines=4))


def test_batch_errors_are_read_from_the_batch_object() -> None:
    body = {"id": "batch_1", "status": "failed", "errors": {"object": "list", "data": [
        {"code": "too_many_requests", "message": "Too many", "param": None, "line": None},
        {"code": "invalid_json_line", "message": "Bad JSON", "param": None, "line": 4}, "junk"]}}
    batch = wire.parse_batch_object(WireResponse(status=200, body=json.dumps(body).encode()))
    assert batch.unwrap().issues == (
        wire.BatchIssue(code="too_many_requests", message="Too many", line=None),
        wire.BatchIssue(code="invalid_json_line", message="Bad JSON", line=4))


def test_a_structured_batch_schema_is_read_back_from_its_input_body() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}},
              "required": ["title"], "additionalProperties": False}
    body = build_response_request(GenerationRequest(
        model="m", input="x", schema=StructuredOutput(schema=schema, name="Item"))).unwrap().json
    restored = wire.schema_from_body(body)
    assert restored is not None
    assert restored.name == "Item"
    assert restored.schema == schema
    assert wire.schema_from_body({"model": "m", "input": "x"}) is None
    assert wire.schema_from_body(None) is None


@given(st.lists(st.tuples(custom_ids, strategies.prompts), max_size=8,
                unique_by=lambda item: item[0]))
def test_input_lines_round_trip(items: list[tuple[str, str]]) -> None:
    encoder = wire.build_line_encoder(REQUEST).unwrap()
    jsonl = b"".join(encoder.lines([cid for cid, _ in items], [p for _, p in items]))
    read = [wire.parse_input_line(line) for line in jsonl.splitlines(keepends=True)]
    assert [(line.custom_id, line.body and line.body["input"]) for line in read] == items


def test_batch_lists_are_read_and_searched_by_input_file() -> None:
    recorded = [load_fixture("openai", name)["response"]["body"] for name in BATCH_FIXTURES]
    page = {"object": "list", "data": [*recorded, {"id": 3}, "junk"], "has_more": False}
    batches = wire.parse_batch_list(WireResponse(status=200, body=json.dumps(page).encode()))
    assert [b.id for b in batches.unwrap()] == [b["id"] for b in recorded]
    found = wire.find_batch(batches.unwrap(), "file-Hy1cokeAuvAfjsi5TPnoEs")
    assert found is not None
    assert found.id == "batch_690a6884adc881908499477522442f77"
    assert wire.find_batch(batches.unwrap(), "file-other") is None
    assert isinstance(wire.parse_batch_list(WireResponse(status=200, body=b"{}")), Failure)
    assert wire.build_list_batches().path == "/batches?limit=100"
    assert wire.build_create_batch("f", wire.OpenAIBatchOptions(), 0, 1).idempotent is False


# --- conversations (issue 15) ---------------------------------------------------------------------


@settings(max_examples=100)
@given(strategies.models, strategies.openai_configs, st.none() | strategies.json_schemas,
       st.lists(st.tuples(custom_ids, strategies.prompts | sendable_lists), max_size=5))
def test_a_conversation_line_carries_exactly_its_sync_body(
    model: str, config: GenerationConfig, schema: dict[str, Any] | None,
    items: list[tuple[str, str | list[dict[str, str]]]],
) -> None:
    """Each item its own messages, mixed with prompts: every line is the synchronous body."""
    request = GenerationRequest(model=model, input="", config=config,
                                schema=StructuredOutput(schema=schema) if schema else None)
    encoder = wire.build_line_encoder(request).unwrap()
    inputs = [check_input(value) for _, value in items]
    sendable = [build_response_request(evolve(request, input=value)) for value in inputs]
    if not all(isinstance(built, Success) for built in sendable):
        # System messages beside config.extra["system"]: refused, naming the first such input.
        first = next(i for i, built in enumerate(sendable) if isinstance(built, Failure))
        with pytest.raises(UnsupportedError, match="^" + re.escape(
                f"input #{first} (custom id {items[first][0]!r}): give the system prompt")):
            list(encoder.lines([cid for cid, _ in items], inputs))
        return
    lines = list(encoder.lines([cid for cid, _ in items], inputs))
    for (custom_id, _), value, line, sync in zip(items, inputs, lines, sendable, strict=True):
        assert line == encoder.line(custom_id, value) == encoder.encode(custom_id, value).unwrap()
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
        assert json.loads(line) == {"custom_id": custom_id, "method": "POST",
                                    "url": "/v1/responses", "body": sync.unwrap().json}
        assert problems("CreateResponse", json.loads(line)["body"]) == []


@given(custom_ids, strategies.prompts, strategies.openai_configs)
def test_a_one_user_message_line_is_byte_for_byte_the_prompt_line(
    custom_id: str, prompt: str, config: GenerationConfig,
) -> None:
    encoder = wire.build_line_encoder(GenerationRequest(model="m", input="",
                                                        config=config)).unwrap()
    assert encoder.line(custom_id, (Message("user", prompt),)) == encoder.line(custom_id, prompt)


def test_conversation_lines_lift_the_system_and_keep_the_turns() -> None:
    encoder = wire.build_line_encoder(GenerationRequest(
        model="gpt-4o-mini", input="", config=GenerationConfig(temperature=0.2))).unwrap()
    conversation = check_input([{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Hi"},
                                {"role": "assistant", "content": "Hello"},
                                {"role": "user", "content": "Grüße"}])
    assert encoder.line("a", conversation) == (
        '{"custom_id":"a","method":"POST","url":"/v1/responses","body":{"model":"gpt-4o-mini",'
        '"input":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"},'
        '{"role":"user","content":"Grüße"}],"instructions":"Be brief.","temperature":0.2}}\n'
    ).encode()


def test_a_batch_conversation_the_api_cannot_take_fails_naming_the_input() -> None:
    encoder = wire.build_line_encoder(GenerationRequest(
        model="m", input="", config=GenerationConfig(extra={"system": "Be brief."}))).unwrap()
    prefill = check_input([{"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": "Well"}])
    both = check_input([{"role": "system", "content": "x"}, {"role": "user", "content": "Hi"}])
    for value, parameter in ((prefill, "input"), (both, "system")):
        error = encoder.encode("a", value).failure()
        assert isinstance(error, UnsupportedError)
        assert error.parameter == parameter
        with pytest.raises(UnsupportedError) as raised:
            encoder.line("a", value)
        assert raised.value == error
        made: list[bytes] = []
        with pytest.raises(UnsupportedError) as raised:
            for line in encoder.lines(["a", "b", "c"], ["fine", value, "never made"]):
                made.append(line)
        assert made == [encoder.line("a", "fine")]  # it stops at the bad input
        assert raised.value.parameter == parameter
        assert raised.value.message == f"input #1 (custom id 'b'): {error.message}"


def test_batch_option_system_meets_a_system_message_as_extra_system_does() -> None:
    config = wire.apply_system(GenerationConfig(), "Be brief.")
    encoder = wire.build_line_encoder(GenerationRequest(model="m", input="",
                                                        config=config)).unwrap()
    error = encoder.encode("a", check_input([{"role": "system", "content": "x"},
                                             {"role": "user", "content": "y"}])).failure()
    assert isinstance(error, UnsupportedError)
    assert error.parameter == "system"
