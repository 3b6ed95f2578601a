"""The pure Gemini builders and parsers (generateContent, batches, files): properties, every
recorded fixture, and the google-genai SDK's typed models as an oracle."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

from llmbackend.batching import BatchCounts
from llmbackend.errors import (
    BlockedError,
    ConfigurationError,
    HTTPStatusError,
    NoTextError,
    ProviderError,
    ToolCallError,
    TruncationError,
    UnsupportedError,
)
from llmbackend.messages import ROLES, Message, check_input
from llmbackend.providers import gemini
from llmbackend.providers import gemini_batch as wire
from llmbackend.types import (
    GenerationConfig,
    GenerationRequest,
    StreamBody,
    StructuredOutput,
    WireRequest,
    WireResponse,
)
from tests import strategies
from tests.conftest import fixture_names, load_fixture

REQUEST = GenerationRequest(model="gemini-2.5-flash", input="")


def build(config: GenerationConfig | None = None, schema: StructuredOutput[Any] | None = None,
          prompt: str = "Hello") -> WireRequest:
    return gemini.build_generate_content(GenerationRequest(
        model="gemini-2.5-flash", input=prompt, config=config or GenerationConfig(),
        schema=schema)).unwrap()


def failure_of(config: GenerationConfig) -> UnsupportedError:
    error = gemini.build_generate_content(GenerationRequest(
        model="m", input="x", config=config)).failure()
    assert isinstance(error, UnsupportedError)
    return error


def response(body: Any, status: int = 200) -> WireResponse:
    return WireResponse(status=status,
                        body=body if isinstance(body, bytes) else json.dumps(body).encode())


# --- the request ----------------------------------------------------------------------------------


def test_the_minimal_request() -> None:
    wire_request = build()
    assert (wire_request.method, wire_request.path) == (
        "POST", "/v1beta/models/gemini-2.5-flash:generateContent")
    assert wire_request.json == {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}
    assert gemini.build_auth_headers("AIza") == {"x-goog-api-key": "AIza"}
    assert "key=" not in wire_request.path  # the key never goes in the URL


@pytest.mark.parametrize(("model", "path"), [
    ("gemini-2.5-flash", "models/gemini-2.5-flash"),
    ("models/gemini-2.5-flash", "models/gemini-2.5-flash"),
    ("tunedModels/my-model-1", "tunedModels/my-model-1"),
    ("bad model?x=1", "models/bad%20model%3Fx%3D1"),
])
def test_model_paths(model: str, path: str) -> None:
    assert gemini.model_path(model) == path


@given(prompt=strategies.prompts, temperature=strategies.temperatures, top_p=strategies.top_ps,
       max_tokens=st.none() | st.integers(1, 100_000), seed=st.none() | st.integers(),
       stop=st.none() | st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=3),
       system=st.none() | st.text(max_size=20))
def test_config_maps_into_generation_config(
    *, prompt: str, temperature: float | None, top_p: float | None, max_tokens: int | None,
    seed: int | None, stop: str | list[str] | None, system: str | None,
) -> None:
    extra: dict[str, Any] = {}
    if stop is not None:
        extra["stop"] = stop
    if system is not None:
        extra["system_instruction"] = system
    body = build(GenerationConfig(temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                  seed=seed, extra=extra), prompt=prompt).json
    generation = body.get("generationConfig", {})
    assert body["contents"] == [{"role": "user", "parts": [{"text": prompt}]}]
    assert generation.get("temperature") == temperature
    assert generation.get("topP") == top_p
    assert generation.get("maxOutputTokens") == max_tokens
    assert generation.get("seed") == seed
    assert generation.get("stopSequences") == ([stop] if isinstance(stop, str) else stop)
    assert body.get("systemInstruction") == (
        None if system is None else {"parts": [{"text": system}]})
    json.dumps(body)


def test_extra_keys_go_where_the_api_wants_them() -> None:
    body = build(GenerationConfig(temperature=0.3, extra={
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "tool_config": {"functionCallingConfig": {"mode": "NONE"}},
        "topK": 20, "thinkingConfig": {"thinkingBudget": 0},
        "generationConfig": {"candidateCount": 1}})).json
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    assert body["generationConfig"] == {"candidateCount": 1, "temperature": 0.3, "topK": 20,
                                        "thinkingConfig": {"thinkingBudget": 0}}


@pytest.mark.parametrize(("config", "parameter"), [
    (GenerationConfig(temperature=0.1, extra={"temperature": 0.5}), "temperature"),
    (GenerationConfig(max_tokens=5, extra={"max_output_tokens": 9}), "max_output_tokens"),
    (GenerationConfig(extra={"contents": []}), "contents"),
    (GenerationConfig(extra={"system": "a", "system_instruction": "b"}), "system_instruction"),
    (GenerationConfig(extra={"system_instruction": 3}), "system_instruction"),
    (GenerationConfig(extra={"stop": 3}), "stop"),
    (GenerationConfig(extra={"generationConfig": [1]}), "generationConfig"),
    (GenerationConfig(extra={"stream": True}), "stream"),
])
def test_what_cannot_be_sent_fails_before_sending(config: GenerationConfig, parameter: str
                                                  ) -> None:
    assert failure_of(config).parameter == parameter


def test_structured_output_uses_response_json_schema() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"]}
    generation = build(schema=StructuredOutput(schema=schema)).json["generationConfig"]
    assert generation == {"responseMimeType": "application/json",
                          "responseJsonSchema": schema}
    recorded = load_fixture("gemini", "generate_response_json_schema.json")["request"]["body"]
    assert set(generation) <= set(recorded["generationConfig"])


# --- recorded traffic -----------------------------------------------------------------------------

GENERATE_FIXTURES = [n for n in fixture_names("gemini") if n.startswith("generate_")]
EXPECTED: dict[str, tuple[type, str]] = {
    "generate_error_400_api_key_invalid.json": (HTTPStatusError,
                                                "INVALID_ARGUMENT/API_KEY_INVALID"),
    "generate_error_404_model_not_found.json": (HTTPStatusError, "NOT_FOUND"),
    "generate_function_call.json": (UnsupportedError, "secret_retrieval_tool"),
    "generate_function_call_with_response_json_schema_gemini3.json": (
        UnsupportedError, "get_user_country"),
    "generate_max_tokens.json": (TruncationError, "The capital of France is"),
    "generate_response_json_schema.json": (Success, '{\n  "city": "Mexico City"'),
    "generate_response_schema.json": (Success, '{"title":"THE NAME OF THE WIND"'),
    "generate_text_basic.json": (Success, "To calculate 4200 + 42:"),
    "generate_thinking.json": (Success, "The primes below 400 that contain"),
}


def test_every_generate_fixture_has_an_expectation() -> None:
    assert sorted(EXPECTED) == GENERATE_FIXTURES


@pytest.mark.parametrize("name", GENERATE_FIXTURES)
def test_recorded_responses_parse_to_their_expected_outcome(name: str) -> None:
    fixture = load_fixture("gemini", name)
    outcome = gemini.parse_generate_content(REQUEST, response(fixture["response"]["body"],
                                                              fixture["response"]["status"]))
    kind, words = EXPECTED[name]
    if kind is Success:
        assert outcome.unwrap().text.startswith(words)
    else:
        error = outcome.failure()
        assert isinstance(error, kind)
        assert words in str(error) + getattr(error, "text", "")


@pytest.mark.parametrize("name", [n for n in GENERATE_FIXTURES if "error" not in n])
def test_recorded_responses_read_as_google_genai_reads_them(name: str) -> None:
    from google.genai import types

    body = load_fixture("gemini", name)["response"]["body"]
    # How the SDK reads a response: unknown (newer) fields are dropped first.
    sdk = types.GenerateContentResponse._from_response(response=body, kwargs={})
    ours = gemini.parse_response_object(REQUEST, body)
    candidate = sdk.candidates[0] if sdk.candidates else None
    assert candidate is not None and candidate.content is not None
    text = "".join(part.text for part in candidate.content.parts or []
                   if part.text is not None and not part.thought)
    if isinstance(ours, Failure):
        error = ours.failure()
        assert isinstance(error, TruncationError | UnsupportedError)
        if isinstance(error, TruncationError):
            assert error.text == text
        return
    generation = ours.unwrap()
    assert generation.text == text
    usage = sdk.usage_metadata
    assert usage is not None
    assert generation.usage.input_tokens == usage.prompt_token_count
    assert generation.usage.reasoning_tokens == usage.thoughts_token_count
    assert generation.usage.output_tokens == (usage.candidates_token_count or 0) + (
        usage.thoughts_token_count or 0)
    assert generation.response_id == sdk.response_id
    assert generation.model == (sdk.model_version or REQUEST.model)


def test_thought_parts_are_skipped_but_kept_in_raw() -> None:
    body = load_fixture("gemini", "generate_thinking.json")["response"]["body"]
    generation = gemini.parse_response_object(REQUEST, body).unwrap()
    assert "Analyzing Prime Numbers" not in generation.text
    assert generation.raw["candidates"][0]["content"]["parts"][0]["thought"] is True


def _candidate(text: str, reason: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"},
                                 "index": 0}
    if reason is not None:
        candidate["finishReason"] = reason
    return {"candidates": [candidate]}


@pytest.mark.parametrize("reason", sorted(gemini.BLOCKED_REASONS))
def test_safety_stops_are_blocked_failures_naming_the_reason(reason: str) -> None:
    error = gemini.parse_response_object(REQUEST, _candidate("partial", reason)).failure()
    assert isinstance(error, BlockedError)
    assert (error.reason, error.text) == (reason, "partial")


def test_a_blocked_prompt_and_other_endings() -> None:
    blocked = gemini.parse_response_object(REQUEST, {"promptFeedback": {
        "blockReason": "PROHIBITED_CONTENT"}}).failure()
    assert isinstance(blocked, BlockedError)
    assert blocked.reason == "PROHIBITED_CONTENT"
    other = gemini.parse_response_object(REQUEST, _candidate("", "OTHER")).failure()
    assert isinstance(other, ProviderError)
    assert other.error_type == "OTHER"
    assert gemini.parse_response_object(REQUEST, _candidate("ok", None)).unwrap().text == "ok"
    # No candidate and no block reason: an answer without text (issue 14; was a parse error).
    assert isinstance(gemini.parse_response_object(REQUEST, {"candidates": []}).failure(),
                      NoTextError)


def test_a_429_is_retryable_with_googles_status() -> None:
    error = gemini.parse_generate_content(REQUEST, response({"error": {
        "code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}},
        429)).failure()
    assert isinstance(error, HTTPStatusError)
    assert (error.error_type, error.retryable) == ("RESOURCE_EXHAUSTED", True)


@given(st.binary() | strategies.json_values.map(lambda v: json.dumps(v).encode()),
       strategies.http_statuses)
def test_the_parser_never_raises(body: bytes, status: int) -> None:
    outcome = gemini.parse_generate_content(REQUEST, WireResponse(status=status, body=body))
    assert isinstance(outcome, Success | Failure)


# --- batches --------------------------------------------------------------------------------------

keys = st.text(min_size=1, max_size=20)


@settings(max_examples=80)
@given(strategies.configs(seeds=st.none() | st.integers(), extra=st.just({})),
       st.none() | strategies.json_schemas,
       st.lists(st.tuples(keys, strategies.prompts), max_size=5, unique_by=lambda i: i[0]))
def test_batch_items_carry_exactly_the_sync_request_and_their_key(
    config: GenerationConfig, schema: dict[str, Any] | None, items: list[tuple[str, str]]
) -> None:
    request = GenerationRequest(model="gemini-2.5-flash", input="", config=config,
                                schema=StructuredOutput(schema=schema) if schema else None)
    encoder = wire.build_item_encoder(request).unwrap()
    for key, prompt in items:
        sync = gemini.build_request_body(GenerationRequest(
            model=request.model, input=prompt, config=config, schema=request.schema)).unwrap()
        assert json.loads(encoder.inline(key, prompt)) == {"request": sync,
                                                            "metadata": {"key": key}}
        line = encoder.line(key, prompt)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert json.loads(line) == {"request": sync, "key": key}
    joined = b",".join(encoder.inline(k, p) for k, p in items)
    create = wire.build_inline_create(request.model, lambda: iter([joined]), len(joined), "x")
    assert isinstance(create.content, StreamBody)
    raw = b"".join(create.content.chunks())
    assert len(raw) == create.content.length
    assert json.loads(raw) == {"batch": {"model": "models/gemini-2.5-flash", "displayName": "x",
                                         "inputConfig": {"requests": {"requests": [
                                             json.loads(encoder.inline(k, p))
                                             for k, p in items]}}}}


def test_the_recorded_inline_create_has_our_shape() -> None:
    recorded = load_fixture("gemini", "batches_create_inline_pending.json")["request"]
    item = recorded["body"]["batch"]["inputConfig"]["requests"]["requests"][0]
    ours = json.loads(wire.build_item_encoder(REQUEST).unwrap().inline("k", "p"))
    assert set(item) <= set(ours)
    assert set(item["request"]) >= {"contents"}


@pytest.mark.parametrize(("name", "value", "counts"), [
    ("batches_create_inline_pending.json", "pending", BatchCounts(total=2)),
    ("batches_get_succeeded_inline.json", "completed", BatchCounts(total=3, completed=3)),
    ("batches_get_succeeded_file.json", "completed", BatchCounts(total=4, completed=4)),
])
def test_recorded_batches_parse(name: str, value: str, counts: BatchCounts) -> None:
    batch = wire.parse_batch(response(load_fixture("gemini", name)["response"]["body"])).unwrap()
    assert batch.status.value == value
    assert batch.counts == counts
    assert batch.name.startswith("batches/")


def test_recorded_batch_outputs_are_read() -> None:
    inline = wire.parse_batch(response(load_fixture(
        "gemini", "batches_get_succeeded_inline.json")["response"]["body"])).unwrap()
    assert inline.inlined is not None and len(inline.inlined) == 3
    # These responses echo no key (the request sent none): they are never matched by position.
    assert [wire.inline_key(item) for item in inline.inlined] == [None] * 3
    assert wire.parse_result(REQUEST, inline.inlined[0], None).unwrap().text == (
        "The capital of France is **Paris**.")
    in_file = wire.parse_batch(response(load_fixture(
        "gemini", "batches_get_succeeded_file.json")["response"]["body"])).unwrap()
    assert in_file.responses_file == "files/batch-o6k1fq34vm2ou69wy5w72wqw56qjigbln6yy"


def test_the_recorded_results_file_is_read_by_key() -> None:
    text = load_fixture("gemini", "batch_results_file_jsonl.json")["response"]["body"]
    parsed = [wire.parse_result_line(REQUEST, line.encode()) for line in text.splitlines()]
    assert [key for key, _ in parsed] == [f"request_{i}" for i in range(1, len(parsed) + 1)]
    assert parsed[0][1].unwrap().text.startswith("AI learns patterns")


@pytest.mark.parametrize(("name", "file"), [
    ("files_upload_resumable_finalize.json", "files/o3s42u5uu1z2"),
    ("files_get.json", "files/o3s42u5uu1z2")])
def test_recorded_files_give_their_name(name: str, file: str) -> None:
    assert wire.parse_file(response(load_fixture("gemini", name)["response"]["body"])) == Success(
        file)


@pytest.mark.parametrize("state", [f"{p}_{s}" for p in ("BATCH_STATE", "JOB_STATE")
                                   for s in ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED",
                                             "PENDING", "RUNNING")])
def test_the_seed_gemini_loop_ends_for_every_terminal_state(state: str) -> None:
    body = {"name": "batches/x", "metadata": {"name": "batches/x", "state": state}}
    status = wire.parse_batch(response(body)).unwrap().status
    if status in ("SUCCEEDED", "COMPLETED", "completed"):
        turn = "done"
    elif status in ("FAILED", "CANCELLED"):
        turn = "raise"
    else:
        turn = "sleep"
    expected = {"SUCCEEDED": "done", "PENDING": "sleep", "RUNNING": "sleep"}.get(
        state.rsplit("_", 1)[1], "raise")
    assert turn == expected
    assert status == state


def test_item_errors_and_missing_results() -> None:
    error = wire.parse_result(REQUEST, {"error": {"code": 400, "message": "bad",
                                                  "status": "INVALID_ARGUMENT"}}, "k").failure()
    assert isinstance(error, ProviderError)
    assert (error.error_type, error.error_code) == ("INVALID_ARGUMENT", "batch_errored")
    batch = wire.parse_batch(response({"name": "batches/x", "metadata": {
        "name": "batches/x", "state": "BATCH_STATE_EXPIRED"}})).unwrap()
    assert wire.missing_result_error(batch, "k").error_code == "batch_expired"  # type: ignore[attr-defined]


def test_upload_urls_must_stay_on_the_base_url() -> None:
    base = "http://127.0.0.1:8080"
    assert wire.upload_path(f"{base}/upload/v1beta/files?upload_id=1", base) == (
        "/upload/v1beta/files?upload_id=1")
    assert wire.upload_path("http://127.0.0.1:80800/upload", base) is None
    assert wire.upload_path("https://evil.example/upload", base) is None


def test_batch_names() -> None:
    assert wire.batch_name("abc-1") == "batches/abc-1"
    assert wire.batch_name("batches/abc-1") == "batches/abc-1"
    # Any printable string is an id, but one segment of the name: no "/" (nor the ":" of a verb).
    assert wire.batch_name("x y+z") == "batches/x y+z"
    assert wire.build_retrieve_batch("batches/x y+z").path == "/v1beta/batches/x%20y%2Bz"
    assert wire.build_cancel_batch("batches/x y").path == "/v1beta/batches/x%20y:cancel"
    for bad in ("", "batches/", "batches/../files", "a/b", "a:cancel", "..", "a\nb", None):
        with pytest.raises(ConfigurationError):
            wire.batch_name(bad)


@given(st.binary() | strategies.json_values.map(lambda v: json.dumps(v).encode()))
def test_batch_parsers_never_raise(body: bytes) -> None:
    for status in (200, 400):
        assert isinstance(wire.parse_batch(WireResponse(status=status, body=body)),
                          Success | Failure)
        assert isinstance(wire.parse_file(WireResponse(status=status, body=body)),
                          Success | Failure)
    _, outcome = wire.parse_result_line(REQUEST, body)
    assert isinstance(outcome, Success | Failure)


# --- answers without text (issue 14) --------------------------------------------------------------


def _sdk_part_kinds() -> list[str]:
    """The data fields of the google-genai SDK's ``Part``, as the wire spells them."""
    genai = pytest.importorskip("google.genai.types")
    metadata = {"text", "thought", "thought_signature", "part_metadata", "media_resolution"}
    names = [name for name in genai.Part.model_fields
             if name not in metadata and not name.endswith("_metadata")]
    return [name.split("_")[0] + "".join(w.title() for w in name.split("_")[1:])
            for name in names]


PART_KINDS = _sdk_part_kinds()


def _parts(parts: list[dict[str, Any]], reason: str = "STOP") -> dict[str, Any]:
    return {"candidates": [{"content": {"parts": parts, "role": "model"}, "index": 0,
                            "finishReason": reason}]}


def test_the_part_kinds_are_read() -> None:
    assert {"inlineData", "functionCall", "executableCode"} <= set(PART_KINDS)


@pytest.mark.parametrize("kind", PART_KINDS)
def test_an_answer_of_parts_without_text_is_an_error_naming_them(kind: str) -> None:
    error = gemini.parse_response_object(REQUEST, _parts([{kind: {"name": "lookup"}}])).failure()
    assert isinstance(error, NoTextError)  # never Success('')
    assert (error.kinds, error.provider) == ((kind,), "gemini")
    if kind == "functionCall":
        assert isinstance(error, ToolCallError) and isinstance(error, UnsupportedError)
        assert error.calls == ("lookup",)
    else:
        assert not isinstance(error, UnsupportedError)
        assert kind in error.message


def test_no_parts_or_only_thoughts_is_an_error_and_an_empty_text_an_empty_answer() -> None:
    for body, kinds in ((_parts([]), ()), ({"candidates": [{"finishReason": "STOP"}]}, ()),
                        (_parts([{"text": "hmm", "thought": True}]), ("thought",))):
        error = gemini.parse_response_object(REQUEST, body).failure()
        assert isinstance(error, NoTextError), body
        assert error.kinds == kinds
    assert gemini.parse_response_object(REQUEST, _parts([{"text": ""}])).unwrap().text == ""


@pytest.mark.parametrize(("parse_wire", "route"), [
    (wire.parse_upload_url, "POST /upload/v1beta/files"),
    (wire.parse_file, "POST /upload/v1beta/files"),
    (wire.parse_batch, "POST /v1beta/models/{model}:batchGenerateContent"),
])
def test_a_server_without_the_batch_routes_names_the_route_and_the_immediate_mode(
    parse_wire: Any, route: str
) -> None:
    error = parse_wire(WireResponse(status=404, body=b"404 page not found")).failure()
    assert isinstance(error, HTTPStatusError)
    assert f"no {route} route" in error.message
    assert "batch_options={'mode': 'immediate'}" in error.message


# --- messages (issue 15) --------------------------------------------------------------------------

#: Any valid conversation: roles from ``ROLES``, text contents, at least one non-system turn.
conversations = st.lists(
    st.builds(Message, role=st.sampled_from(ROLES), content=strategies.prompts),
    min_size=1, max_size=8,
).filter(lambda messages: any(m.role != "system" for m in messages)).map(tuple)
#: Gemini configs, with or without a system instruction given in ``extra``.
gemini_configs = strategies.configs(seeds=st.none() | st.integers(), extra=st.fixed_dictionaries(
    {}, optional={"stop": st.text(max_size=5), "topK": st.integers(1, 40)})
    | st.sampled_from(gemini.SYSTEM_KEYS).flatmap(
        lambda key: st.fixed_dictionaries({key: st.text(max_size=20)})))


def _body(input: str | tuple[Message, ...], config: GenerationConfig | None = None,
          schema: StructuredOutput[Any] | None = None) -> Any:
    return gemini.build_request_body(GenerationRequest(
        model="gemini-2.5-flash", input=input, config=config or GenerationConfig(),
        schema=schema))


def _ends_with_a_prefill(messages: tuple[Message, ...]) -> bool:
    return [m for m in messages if m.role != "system"][-1].role == "assistant"


def test_a_conversation_maps_to_contents_and_system_instruction() -> None:
    messages = check_input([
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
        Message(role="system", content="Answer in French."),
        {"role": "user", "content": "3+3?"}])
    assert isinstance(messages, tuple)
    assert _body(messages, GenerationConfig(temperature=0.0)).unwrap() == {
        "contents": [{"role": "user", "parts": [{"text": "2+2?"}]},
                     {"role": "model", "parts": [{"text": "4"}]},
                     {"role": "user", "parts": [{"text": "3+3?"}]}],
        "systemInstruction": {"parts": [{"text": "You are terse.\n\nAnswer in French."}]},
        "generationConfig": {"temperature": 0.0},
    }
    request = gemini.build_generate_content(GenerationRequest(model="gemini-2.5-flash",
                                                              input=messages)).unwrap()
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"


@settings(max_examples=150)
@given(conversations, gemini_configs)
def test_any_conversation_builds_and_keeps_its_turns_in_order(
    messages: tuple[Message, ...], config: GenerationConfig
) -> None:
    built = _body(messages, config)
    config_system = any(key in config.extra for key in gemini.SYSTEM_KEYS)
    has_system = any(m.role == "system" for m in messages)
    if has_system and config_system:
        error = built.failure()
        assert isinstance(error, UnsupportedError) and error.parameter == "system"
        return
    if _ends_with_a_prefill(messages):
        error = built.failure()
        assert isinstance(error, UnsupportedError) and error.parameter == "input"
        return
    body = built.unwrap()
    turns = [m for m in messages if m.role != "system"]
    assert [(c["role"], [p["text"] for p in c["parts"]]) for c in body["contents"]] == [
        ({"user": "user", "assistant": "model"}[m.role], [m.content]) for m in turns]
    if has_system:
        assert body["systemInstruction"] == {"parts": [{"text": "\n\n".join(
            m.content for m in messages if m.role == "system")}]}
    else:
        assert body.get("systemInstruction") == _body("x", config).unwrap().get(
            "systemInstruction")
    assert {k: v for k, v in body.items() if k not in ("contents", "systemInstruction")} == {
        k: v for k, v in _body("x", config).unwrap().items()
        if k not in ("contents", "systemInstruction")}
    json.dumps(body)


@settings(max_examples=100)
@given(strategies.prompts, gemini_configs, st.none() | strategies.json_schemas)
def test_one_user_message_builds_exactly_the_string_body(
    prompt: str, config: GenerationConfig, schema: dict[str, Any] | None
) -> None:
    structured = StructuredOutput(schema=schema) if schema else None
    conversation = (Message(role="user", content=prompt),)
    assert _body(conversation, config, structured) == _body(prompt, config, structured)
    assert json.dumps(_body(conversation, config, structured).unwrap()) == json.dumps(
        _body(prompt, config, structured).unwrap())  # the same keys in the same order


@pytest.mark.parametrize("key", gemini.SYSTEM_KEYS)
def test_a_system_message_and_a_config_system_instruction_are_refused(key: str) -> None:
    messages = (Message(role="system", content="a"), Message(role="user", content="b"))
    error = _body(messages, GenerationConfig(extra={key: "c"})).failure()
    assert isinstance(error, UnsupportedError)
    assert (error.parameter, error.provider) == ("system", "gemini")
    assert error.message == ("give the system prompt once: as a system message or in "
                             f"config.extra[{key!r}], not both")
    # without system messages, the config's system instruction is used as it is
    assert _body(messages[1:], GenerationConfig(extra={key: "c"})).unwrap() == _body(
        "b", GenerationConfig(extra={key: "c"})).unwrap()


def test_a_trailing_assistant_turn_is_refused() -> None:
    for messages in ((Message(role="user", content="Name a color."),
                      Message(role="assistant", content="The color is")),
                     (Message(role="assistant", content="Hi"),
                      Message(role="system", content="Be kind."))):
        error = _body(messages).failure()
        assert isinstance(error, UnsupportedError)
        assert (error.parameter, error.provider) == ("input", "gemini")
        assert "trailing assistant turn" in error.message
    # an assistant turn anywhere else is history, and a conversation may open with one
    assert _body((Message(role="assistant", content="Hello!"),
                  Message(role="user", content="Hi"))).unwrap()["contents"][0] == {
        "role": "model", "parts": [{"text": "Hello!"}]}


def _sdk_body(messages: tuple[Message, ...], config: GenerationConfig) -> dict[str, Any]:
    """The body the google-genai SDK sends for the same conversation, built with its own types
    (``Content``, ``Part``, ``GenerateContentConfig``) and its own request converter."""
    genai_types = pytest.importorskip("google.genai.types")
    models = pytest.importorskip("google.genai.models")
    api_client = pytest.importorskip("google.genai._api_client")
    convert = getattr(models, "_GenerateContentParameters_to_mldev", None)
    if convert is None:
        pytest.skip("this google-genai has no request converter")
    system = [m.content for m in messages if m.role == "system"]
    params = genai_types._GenerateContentParameters(
        model="gemini-2.5-flash",
        contents=[genai_types.Content(role={"user": "user", "assistant": "model"}[m.role],
                                      parts=[genai_types.Part(text=m.content)])
                  for m in messages if m.role != "system"],
        config=genai_types.GenerateContentConfig(
            system_instruction=genai_types.Content(
                parts=[genai_types.Part(text="\n\n".join(system))]) if system else None,
            temperature=config.temperature, top_p=config.top_p,
            max_output_tokens=config.max_tokens, seed=config.seed))
    body: dict[str, Any] = convert(api_client.BaseApiClient(api_key="unused"), params)
    body.pop("_url", None)
    if not body.get("generationConfig"):
        body.pop("generationConfig", None)
    return body


@settings(max_examples=60, deadline=None)
@given(conversations.filter(lambda messages: not _ends_with_a_prefill(messages)),
       strategies.configs(seeds=st.none() | st.integers(0, 2**31 - 1), extra=st.just({})))
def test_a_conversation_is_sent_as_the_google_genai_sdk_sends_it(
    messages: tuple[Message, ...], config: GenerationConfig
) -> None:
    assert _body(messages, config).unwrap() == _sdk_body(messages, config)


@settings(max_examples=80)
@given(gemini_configs, st.none() | strategies.json_schemas,
       st.lists(st.tuples(keys, strategies.prompts | conversations), max_size=5,
                unique_by=lambda i: i[0]))
def test_batch_items_carry_a_conversation_exactly_as_the_sync_request(
    config: GenerationConfig, schema: dict[str, Any] | None,
    items: list[tuple[str, str | tuple[Message, ...]]]
) -> None:
    request = GenerationRequest(model="gemini-2.5-flash", input="", config=config,
                                schema=StructuredOutput(schema=schema) if schema else None)
    encoder = wire.build_item_encoder(request).unwrap()
    for key, item in items:
        sync = gemini.build_request_body(GenerationRequest(
            model=request.model, input=item, config=config, schema=request.schema))
        if isinstance(sync, Failure):
            assert encoder.encode_inline(key, item) == sync
            assert encoder.encode_line(key, item) == sync
            with pytest.raises(UnsupportedError):
                encoder.inline(key, item)
            with pytest.raises(UnsupportedError):
                encoder.line(key, item)
            continue
        body = sync.unwrap()
        inline = encoder.inline(key, item)
        assert encoder.encode_inline(key, item).unwrap() == inline
        assert json.loads(inline) == {"request": body, "metadata": {"key": key}}
        # byte for byte what encoding the synchronous body gives
        assert inline == json.dumps({"request": body, "metadata": {"key": key}},
                                    ensure_ascii=False, separators=(",", ":")).encode()
        line = encoder.line(key, item)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert json.loads(line) == {"request": body, "key": key}
