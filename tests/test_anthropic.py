"""The pure Anthropic Messages builder and parser: properties, every recorded fixture, and the
official SDK's typed models as an oracle."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field
from returns.result import Failure, Success

from llmbackend.errors import (
    HTTPStatusError,
    NoTextError,
    ProviderError,
    RefusalError,
    ResponseParseError,
    ToolCallError,
    TruncationError,
    UnsupportedError,
)
from llmbackend.providers import anthropic
from llmbackend.schemas import subschemas
from llmbackend.types import (
    GenerationConfig,
    GenerationRequest,
    StructuredOutput,
    WireRequest,
    WireResponse,
)
from tests import strategies
from tests.conftest import fixture_names, load_fixture

ALLOWED_KEYWORDS = {"type", "properties", "required", "items", "anyOf", "allOf", "enum", "$ref",
                    "$defs", "definitions", "description", "title", "additionalProperties",
                    "format", "minItems"}


def build(config: GenerationConfig | None = None, schema: StructuredOutput[Any] | None = None,
          *, prompt: str = "Hello", drop: bool = False, **options: Any) -> WireRequest:
    result = anthropic.build_messages_request(GenerationRequest(
        model="claude-sonnet-4-5", input=prompt, config=config or GenerationConfig(),
        schema=schema, drop_unsupported=drop, options=options))
    assert isinstance(result, Success), result
    return result.unwrap()


def failure_of(config: GenerationConfig, **options: Any) -> UnsupportedError:
    result = anthropic.build_messages_request(GenerationRequest(
        model="m", input="x", config=config, options=options))
    assert isinstance(result, Failure), result
    error = result.failure()
    assert isinstance(error, UnsupportedError)
    return error


def response(body: Any, status: int = 200) -> WireResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return WireResponse(status=status, body=raw)


REQUEST = GenerationRequest(model="claude-sonnet-4-5", input="x")


# --- the request ----------------------------------------------------------------------------------


def test_the_minimal_request_names_version_model_max_tokens_and_the_prompt() -> None:
    wire = build()
    assert (wire.method, wire.path) == ("POST", "/v1/messages")
    assert wire.headers == {"anthropic-version": "2023-06-01"}
    assert wire.json == {"model": "claude-sonnet-4-5", "max_tokens": 4096,
                         "messages": [{"role": "user", "content": "Hello"}]}
    assert anthropic.build_auth_headers("k") == {"x-api-key": "k"}


@given(prompt=strategies.prompts, temperature=st.none() | st.floats(0.0, 1.0),
       top_p=strategies.top_ps, max_tokens=st.none() | st.integers(1, 100_000),
       system=st.none() | st.text(max_size=20),
       stop=st.none() | st.text(max_size=5) | st.lists(st.text(max_size=5), max_size=3))
def test_config_maps_to_the_messages_fields(
    *, prompt: str, temperature: float | None, top_p: float | None, max_tokens: int | None,
    system: str | None, stop: str | list[str] | None,
) -> None:
    extra: dict[str, Any] = {}
    if system is not None:
        extra["system"] = system
    if stop is not None:
        extra["stop"] = stop
    body = build(GenerationConfig(temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                  extra=extra), prompt=prompt, server="compatible").json
    assert body["messages"] == [{"role": "user", "content": prompt}]
    assert body["max_tokens"] == (max_tokens if max_tokens is not None else 4096)
    assert body.get("temperature") == temperature
    assert body.get("top_p") == top_p
    assert body.get("system") == system
    assert body.get("stop_sequences") == ([stop] if isinstance(stop, str) else stop)
    assert "seed" not in body and "stop" not in body
    json.dumps(body)  # always JSON


def test_other_extra_keys_pass_through_and_collisions_are_refused() -> None:
    body = build(GenerationConfig(extra={"metadata": {"user_id": "u1"},
                                         "thinking": {"type": "enabled", "budget_tokens": 2048}}
                                  )).json
    assert body["metadata"] == {"user_id": "u1"}
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert failure_of(GenerationConfig(extra={"model": "other"})).parameter == "model"
    assert failure_of(GenerationConfig(extra={"max_tokens": 5})).parameter == "max_tokens"


@pytest.mark.parametrize(("config", "parameter", "words"), [
    (GenerationConfig(seed=1), "seed", "no 'seed' parameter"),
    (GenerationConfig(extra={"seed": 1}), "seed", "drop_unsupported_params=True"),
    (GenerationConfig(temperature=0.5), "temperature", "no longer takes 'temperature'"),
    (GenerationConfig(extra={"stop": [1]}), "stop", "string or a list of strings"),
    (GenerationConfig(extra={"system": 3}), "system", "must be a string"),
    (GenerationConfig(extra={"stream": True}), "stream", "synchronous"),
])
def test_what_the_api_cannot_do_fails_before_sending(
    config: GenerationConfig, parameter: str, words: str
) -> None:
    error = failure_of(config)
    assert error.parameter == parameter
    assert words in str(error)


def test_seed_is_dropped_with_a_warning_only_when_asked() -> None:
    wire = build(GenerationConfig(seed=3, extra={"seed": 3}), drop=True)
    assert "seed" not in wire.json
    assert wire.warnings and "dropped" in wire.warnings[0]


def test_the_sdk_lists_none_of_the_sampling_parameters() -> None:
    """The source of the rule below: the ``anthropic`` SDK's ``messages.create`` parameters."""
    from anthropic.types.message_create_params import MessageCreateParamsBase

    assert set(MessageCreateParamsBase.__annotations__).isdisjoint(anthropic.SAMPLING_PARAMETERS)


@pytest.mark.parametrize(("config", "parameter", "value"), [
    (GenerationConfig(temperature=0.0), "temperature", 0.0),
    (GenerationConfig(top_p=0.9), "top_p", 0.9),
    (GenerationConfig(extra={"top_k": 5}), "top_k", 5),
    (GenerationConfig(extra={"temperature": 0.3}), "temperature", 0.3),
])
def test_sampling_parameters_are_treated_as_seed_on_anthropics_own_api(
    config: GenerationConfig, parameter: str, value: object
) -> None:
    error = failure_of(config)  # before sending, never a 400 from the API
    assert error.parameter == parameter
    assert repr(parameter) in str(error) and "server='compatible'" in str(error)
    dropped = build(config, drop=True)
    assert parameter not in dropped.json
    assert dropped.warnings and "dropped" in dropped.warnings[0]
    assert build(config, server="compatible").json[parameter] == value


def test_a_compatible_server_still_gets_the_temperature_range_checked() -> None:
    error = failure_of(GenerationConfig(temperature=1.5), server="compatible")
    assert (error.parameter, "from 0 to 1, got 1.5" in str(error)) == ("temperature", True)


# --- structured outputs ---------------------------------------------------------------------------


class Author(BaseModel):
    first_name: str
    last_name: str = Field(min_length=1, description="Family name")


class Book(BaseModel):
    """A book with a rating."""

    title: str
    author: Author
    rating: int = Field(ge=1, le=10)
    tags: list[str] = Field(default_factory=list, min_length=2)
    published: str | None = Field(default=None, json_schema_extra={"format": "date"})


def test_native_structured_output_uses_output_config() -> None:
    schema = StructuredOutput(pydantic_model=Book)
    body = build(GenerationConfig(extra={"output_config": {"effort": "low"}}), schema).json
    assert body["output_config"] == {
        "effort": "low",
        "format": {"type": "json_schema", "schema": anthropic.adapt_schema(schema.schema)}}
    assert "tools" not in body


def test_a_pydantic_schema_is_adapted_to_the_subset_anthropic_takes() -> None:
    adapted = anthropic.adapt_schema(StructuredOutput(pydantic_model=Book).schema)
    for path, node in subschemas(adapted):
        assert set(node) <= ALLOWED_KEYWORDS, (path, set(node) - ALLOWED_KEYWORDS)
        if node.get("type") == "object":
            assert node["additionalProperties"] is False, path
    rating = adapted["properties"]["rating"]
    assert rating["type"] == "integer"
    assert "maximum: 10" in rating["description"] and "minimum: 1" in rating["description"]
    assert "minItems: 2" in adapted["properties"]["tags"]["description"]
    assert adapted["properties"]["author"] == {"$ref": "#/$defs/Author"}
    last = adapted["$defs"]["Author"]["properties"]["last_name"]
    assert last["description"] == 'Family name\n\n{minLength: 1}'


@settings(max_examples=80)
@given(strategies.json_schemas)
def test_adapted_schemas_use_only_the_subset_and_adapting_twice_changes_nothing(
    schema: dict[str, Any]
) -> None:
    adapted = anthropic.adapt_schema(schema)
    for path, node in subschemas(adapted):
        assert set(node) <= ALLOWED_KEYWORDS, path
    assert anthropic.adapt_schema(adapted) == adapted
    assert schema == json.loads(json.dumps(schema))  # the caller's schema is untouched


def test_const_one_of_and_unknown_formats_are_rewritten() -> None:
    adapted = anthropic.adapt_schema({
        "type": "object",
        "properties": {"kind": {"const": "a"},
                       "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                       "ip": {"type": "string", "format": "ipv4"},
                       "phone": {"type": "string", "format": "phone", "pattern": "^[0-9]+$"}},
        "additionalProperties": True})
    assert adapted["additionalProperties"] is False
    assert adapted["properties"]["kind"] == {"enum": ["a"]}
    assert adapted["properties"]["either"] == {"anyOf": [{"type": "string"},
                                                         {"type": "integer"}]}
    assert adapted["properties"]["ip"] == {"type": "string", "format": "ipv4"}
    assert adapted["properties"]["phone"] == {
        "type": "string", "description": '{format: "phone", pattern: "^[0-9]+$"}'}


def test_the_forced_tool_technique_on_request() -> None:
    schema = StructuredOutput(pydantic_model=Book)
    body = build(schema=schema, structured_output="tool").json
    assert body["tools"] == [{"name": "Book", "description": "A book with a rating.",
                              "input_schema": anthropic.adapt_schema(schema.schema)}]
    assert body["tool_choice"] == {"type": "tool", "name": "Book"}
    assert "output_config" not in body
    clash = anthropic.build_messages_request(GenerationRequest(
        model="m", input="x", schema=schema, config=GenerationConfig(extra={"tools": []}),
        options={"structured_output": "tool"}))
    assert clash.failure().parameter == "tools"  # type: ignore[attr-defined]


def test_a_format_in_extra_output_config_is_refused_with_a_schema() -> None:
    result = anthropic.build_messages_request(GenerationRequest(
        model="m", input="x", schema=StructuredOutput(schema={"type": "object"}),
        config=GenerationConfig(extra={"output_config": {"format": {}}})))
    assert result.failure().parameter == "output_config"  # type: ignore[attr-defined]


def test_the_forced_tool_answer_is_the_structured_answer() -> None:
    schema = StructuredOutput(pydantic_model=Author)
    request = GenerationRequest(model="m", input="x", schema=schema,
                                options={"structured_output": "tool"})
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "Author",
                         "input": {"first_name": "Ada", "last_name": "Lovelace"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 4}}
    generation = anthropic.parse_message(request, response(body)).unwrap()
    assert json.loads(generation.text) == {"first_name": "Ada", "last_name": "Lovelace"}
    # Without the tool option the same answer is a tool call, which llmbackend does not return.
    plain = anthropic.parse_message(REQUEST, response(body))
    assert isinstance(plain.failure(), UnsupportedError)


# --- recorded traffic -----------------------------------------------------------------------------

MESSAGE_FIXTURES = [name for name in fixture_names("anthropic") if name.startswith("messages_")]
EXPECTED: dict[str, tuple[type, str]] = {
    "messages_error_401_invalid_api_key.json": (HTTPStatusError, "authentication_error"),
    "messages_error_404_model_not_found.json": (HTTPStatusError, "not_found_error"),
    "messages_max_tokens_beta.json": (TruncationError, "Here are all 50 U.S. states"),
    "messages_structured_output_config_format.json": (
        Success, '{"city":"London","country":"United Kingdom","population":9002488}'),
    "messages_structured_output_format_beta.json": (Success, '{"title": "THE NAME OF THE WIND"'),
    "messages_text_basic.json": (Success, "4200 + 42 = 4242"),
    "messages_thinking.json": (Success, ""),
    "messages_tool_result_followup.json": (Success, "Here are the secrets retrieved"),
    "messages_tool_use.json": (Success, "I'll retrieve the secrets for both passwords"),
}


def test_every_message_fixture_has_an_expectation() -> None:
    assert sorted(EXPECTED) == MESSAGE_FIXTURES


@pytest.mark.parametrize("name", MESSAGE_FIXTURES)
def test_recorded_messages_parse_to_their_expected_outcome(name: str) -> None:
    fixture = load_fixture("anthropic", name)
    outcome = anthropic.parse_message(REQUEST, response(fixture["response"]["body"],
                                                        fixture["response"]["status"]))
    kind, words = EXPECTED[name]
    if kind is Success:
        assert isinstance(outcome, Success), outcome
        assert outcome.unwrap().text.startswith(words)
    else:
        error = outcome.failure()
        assert isinstance(error, kind)
        assert words in (str(error) + str(getattr(error, "error_type", "")) +
                         getattr(error, "text", ""))


@pytest.mark.parametrize("name", [n for n in MESSAGE_FIXTURES if "error" not in n])
def test_recorded_messages_read_as_the_sdk_reads_them(name: str) -> None:
    from anthropic.types import Message

    body = load_fixture("anthropic", name)["response"]["body"]
    sdk = Message.model_validate(body)
    ours = anthropic.parse_message_object(REQUEST, body)
    text = "".join(block.text for block in sdk.content if block.type == "text")
    if sdk.stop_reason == "max_tokens":
        error = ours.failure()
        assert isinstance(error, TruncationError)
        assert error.text == text
        return
    generation = ours.unwrap()
    assert generation.text == text
    assert generation.response_id == sdk.id
    assert generation.model == sdk.model
    assert generation.usage.input_tokens == sdk.usage.input_tokens
    assert generation.usage.output_tokens == sdk.usage.output_tokens
    assert generation.usage.cached_input_tokens == sdk.usage.cache_read_input_tokens
    assert generation.finish_reason == ("tool_calls" if sdk.stop_reason == "tool_use"
                                        else "stop")


def test_thinking_is_skipped_but_kept_in_raw() -> None:
    body = load_fixture("anthropic", "messages_thinking.json")["response"]["body"]
    generation = anthropic.parse_message_object(REQUEST, body).unwrap()
    assert "I need to find all primes" not in generation.text
    assert generation.raw["content"][0]["type"] == "thinking"


def test_a_recorded_structured_answer_validates_against_its_schema() -> None:
    from llmbackend.pipeline import attach_parsed

    fixture = load_fixture("anthropic", "messages_structured_output_config_format.json")
    schema = StructuredOutput(
        schema=fixture["request"]["body"]["output_config"]["format"]["schema"])
    generation = anthropic.parse_message(REQUEST, response(fixture["response"]["body"])).unwrap()
    parsed = attach_parsed(schema, generation).unwrap().parsed
    assert parsed == {"city": "London", "country": "United Kingdom", "population": 9002488}


# --- refusals, errors, robustness -----------------------------------------------------------------


def _message(content: list[dict[str, Any]], stop_reason: str) -> dict[str, Any]:
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
            "content": content, "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1}}


def test_refusal_and_pause_turn_are_typed_failures() -> None:
    refused = anthropic.parse_message(REQUEST, response(_message(
        [{"type": "text", "text": "I can't help with that."}], "refusal"))).failure()
    assert isinstance(refused, RefusalError)
    assert refused.text == "I can't help with that."
    paused = anthropic.parse_message(REQUEST, response(_message([], "pause_turn"))).failure()
    assert isinstance(paused, ProviderError)
    assert paused.error_type == "pause_turn"


def test_overloaded_is_a_retryable_http_error() -> None:
    error = anthropic.parse_message(REQUEST, response(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        529)).failure()
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.error_type, error.retryable) == (529, "overloaded_error", True)
    assert str(error) == "Anthropic answered HTTP 529 (overloaded_error): Overloaded"


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"content": "text"}', b"{}"])
def test_bodies_that_are_not_messages_are_parse_errors(body: bytes) -> None:
    assert isinstance(anthropic.parse_message(REQUEST, response(body)).failure(),
                      ResponseParseError)


@given(st.binary() | strategies.json_values.map(lambda v: json.dumps(v).encode()),
       strategies.http_statuses)
def test_the_parser_never_raises(body: bytes, status: int) -> None:
    outcome = anthropic.parse_message(REQUEST, WireResponse(status=status, body=body))
    assert isinstance(outcome, Success | Failure)


@given(st.lists(st.text(max_size=30), max_size=4),
       st.sampled_from(["end_turn", "stop_sequence"]))
def test_text_blocks_are_joined_and_everything_else_skipped(texts: list[str], reason: str
                                                            ) -> None:
    blocks: list[dict[str, Any]] = []
    for text in texts:
        blocks += [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                   {"type": "text", "text": text}]
    if not texts:  # no text block at all: an error, not Success('') (issue 14)
        failed = anthropic.parse_message(REQUEST, response(_message(blocks, reason))).failure()
        assert isinstance(failed, NoTextError)
        return
    generation = anthropic.parse_message(REQUEST, response(_message(blocks, reason))).unwrap()
    assert generation.text == "".join(texts)
    assert generation.finish_reason == "stop"


# --- answers without text (issue 14) --------------------------------------------------------------


def _sdk_block_types() -> list[str]:
    """Every content block type of the SDK's ``ContentBlock`` union."""
    import typing

    from anthropic.types import ContentBlock

    union = typing.get_args(ContentBlock)
    members = typing.get_args(union[0]) if typing.get_origin(ContentBlock) is typing.Annotated \
        else union
    return [typing.get_args(member.model_fields["type"].annotation)[0] for member in members]


BLOCK_TYPES = _sdk_block_types()


def test_the_block_union_is_read() -> None:
    assert {"text", "tool_use", "server_tool_use", "thinking"} <= set(BLOCK_TYPES)


@pytest.mark.parametrize("kind", [k for k in BLOCK_TYPES if k != "text"])
def test_an_answer_of_blocks_without_text_is_an_error_naming_them(kind: str) -> None:
    block: dict[str, Any] = {"type": kind, "id": "toolu_1", "name": "lookup", "input": {}}
    error = anthropic.parse_message(REQUEST, response(_message([block], "end_turn"))).failure()
    assert isinstance(error, NoTextError)
    assert error.kinds == (kind,)
    assert error.provider == "anthropic"
    if kind == "tool_use":  # a call the caller must run: also an UnsupportedError, as before
        assert isinstance(error, ToolCallError) and isinstance(error, UnsupportedError)
        assert (error.calls, error.parameter) == (("lookup",), "tools")
        assert "lookup" in error.message
    else:
        assert not isinstance(error, UnsupportedError)
        assert kind in error.message


def test_an_empty_content_is_an_error_and_an_empty_text_block_an_empty_answer() -> None:
    empty = anthropic.parse_message(REQUEST, response(_message([], "end_turn"))).failure()
    assert isinstance(empty, NoTextError) and empty.kinds == ()
    assert "empty 'content' list" in empty.message
    text = anthropic.parse_message(REQUEST, response(_message(
        [{"type": "text", "text": ""}], "end_turn"))).unwrap()
    assert text.text == ""


def test_a_missing_batch_route_names_it_and_the_immediate_mode() -> None:
    from llmbackend.providers import anthropic_batch

    error = anthropic_batch.parse_batch_object(WireResponse(
        status=404, body=b'{"detail":"Not Found"}')).failure()
    assert isinstance(error, HTTPStatusError)
    assert "POST /v1/messages/batches" in error.message
    assert "batch_options={'mode': 'immediate'}" in error.message


# --- messages in ----------------------------------------------------------------------------------

from itertools import groupby, pairwise  # noqa: E402

from llmbackend.messages import ROLES, Conversation, Message, check_input, split_system  # noqa: E402

message_texts = st.text(max_size=40)  # no lone surrogates: the default alphabet excludes them
#: Any valid conversation: roles from ``ROLES``, at least one turn that is not a system message.
conversations = st.lists(st.builds(Message, st.sampled_from(ROLES), message_texts),
                         min_size=1, max_size=8).filter(
    lambda turns: any(turn.role != "system" for turn in turns)).map(tuple)


def build_input(value: str | Conversation, config: GenerationConfig | None = None,
                schema: StructuredOutput[Any] | None = None, **options: Any
                ) -> Success[WireRequest] | Failure[Any]:
    result = anthropic.build_messages_request(GenerationRequest(
        model="claude-sonnet-4-5", input=value, config=config or GenerationConfig(),
        schema=schema, options=options))
    assert isinstance(result, Success | Failure)
    return result


def refused(value: str | Conversation, config: GenerationConfig | None = None,
            schema: StructuredOutput[Any] | None = None, **options: Any) -> UnsupportedError:
    result = build_input(value, config, schema, **options)
    assert isinstance(result, Failure), result
    error = result.failure()
    assert isinstance(error, UnsupportedError)
    return error


def merged_turns(turns: Conversation) -> list[dict[str, str]]:
    """The rule, written again: consecutive same-role turns joined by a blank line."""
    return [{"role": role, "content": "\n\n".join(turn.content for turn in group)}
            for role, group in groupby(turns, key=lambda turn: turn.role)]


def conversation(*pairs: tuple[str, str]) -> Conversation:
    checked = check_input([{"role": role, "content": content} for role, content in pairs])
    assert isinstance(checked, tuple)
    return checked


@settings(max_examples=200)
@given(conversations, st.sampled_from(["official", "compatible"]))
def test_any_conversation_builds_and_its_turns_survive_in_order(
    turns: Conversation, server: str
) -> None:
    system, rest = split_system(turns)
    prefill = rest[-1].content if rest[-1].role == "assistant" else None
    result = build_input(turns, server=server)
    if rest[0].role != "user":
        error = result.failure()
        assert isinstance(error, UnsupportedError) and error.parameter == "input"
        assert "starts with an assistant turn" in str(error)
        return
    if prefill is not None and server == "official":
        ends = merged_turns(rest)[-1]["content"]
        if ends != ends.rstrip():
            error = result.failure()
            assert isinstance(error, UnsupportedError) and error.parameter == "input"
            assert "ends with whitespace" in str(error)
            return
    assert isinstance(result, Success), result
    body = result.unwrap().json
    assert body["messages"] == merged_turns(rest)
    roles = [message["role"] for message in body["messages"]]
    assert roles[0] == "user"
    assert all(a != b for a, b in pairwise(roles))  # alternating
    assert body.get("system") == ("\n\n".join(system) if system else None)
    assert json.loads(json.dumps(body)) == body


@given(strategies.prompts, strategies.anthropic_configs)
def test_one_user_message_builds_exactly_the_body_of_the_plain_prompt(
    prompt: str, config: GenerationConfig
) -> None:
    plain = build_input(prompt, config, server="compatible")
    assert build_input((Message("user", prompt),), config, server="compatible") == plain


def test_system_messages_are_lifted_into_system_joined_in_order() -> None:
    turns = conversation(("system", "Be brief."), ("user", "Hi"), ("system", "Answer in French."),
                         ("assistant", "Bonjour"), ("user", "Ça va ?"))
    body = build_input(turns).unwrap().json
    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": "Hi"},
                                {"role": "assistant", "content": "Bonjour"},
                                {"role": "user", "content": "Ça va ?"}]


def test_consecutive_turns_of_one_role_are_merged_with_a_blank_line() -> None:
    turns = conversation(("user", "First."), ("user", "Second."), ("assistant", "A"),
                         ("assistant", "B"), ("user", "Third."))
    assert build_input(turns).unwrap().json["messages"] == [
        {"role": "user", "content": "First.\n\nSecond."},
        {"role": "assistant", "content": "A\n\nB"},
        {"role": "user", "content": "Third."}]


@pytest.mark.parametrize("system", ["Be brief.", [{"type": "text", "text": "Be brief."}]])
def test_a_system_message_and_extra_system_together_are_refused(system: object) -> None:
    error = refused(conversation(("system", "Be kind."), ("user", "Hi")),
                    GenerationConfig(extra={"system": system}))
    assert error.parameter == "system"
    assert str(error) == ("give the system prompt once: as a system message or in "
                          "config.extra['system'], not both")
    # Either alone is fine.
    body = build_input(conversation(("user", "Hi")), GenerationConfig(extra={"system": system})
                       ).unwrap().json
    assert body["system"] == system


def test_a_conversation_must_start_with_the_users_turn() -> None:
    error = refused(conversation(("system", "S"), ("assistant", "Hello!"), ("user", "Hi")))
    assert error.parameter == "input"
    assert "starts with an assistant turn" in str(error)


def test_a_trailing_assistant_turn_is_sent_as_a_prefill() -> None:
    turns = conversation(("user", "Greek name for the Sun? (A) Sol (B) Helios"),
                         ("assistant", "The best answer is ("))
    body = build_input(turns).unwrap().json
    assert body["messages"][-1] == {"role": "assistant", "content": "The best answer is ("}
    disabled = GenerationConfig(extra={"thinking": {"type": "disabled"}})
    assert build_input(turns, disabled).unwrap().json["messages"] == body["messages"]


@pytest.mark.parametrize(("config", "schema", "options", "words"), [
    (None, StructuredOutput(pydantic_model=Author), {}, "schema"),
    (None, StructuredOutput(pydantic_model=Author), {"structured_output": "tool"}, "schema"),
    (GenerationConfig(extra={"thinking": {"type": "enabled", "budget_tokens": 2048}}), None, {},
     "extended thinking"),
    (GenerationConfig(extra={"thinking": {"type": "adaptive"}}), None, {}, "extended thinking"),
])
def test_a_prefill_the_api_refuses_fails_before_sending(
    config: GenerationConfig | None, schema: StructuredOutput[Any] | None,
    options: dict[str, Any], words: str
) -> None:
    turns = conversation(("user", "Name a city"), ("assistant", "{"))
    error = refused(turns, config, schema, **options)
    assert error.parameter == "input"
    assert "ends with an assistant turn" in str(error) and words in str(error)
    # The same conversation ending with the user's turn builds.
    assert isinstance(build_input(turns[:1], config, schema, **options), Success)


def test_a_prefill_ending_in_whitespace_is_refused_on_anthropics_own_api_only() -> None:
    turns = conversation(("user", "Go on"), ("assistant", "As an AI assistant, I "))
    assert "ends with whitespace" in str(refused(turns))
    assert build_input(turns, server="compatible").unwrap().json["messages"][-1]["content"] == (
        "As an AI assistant, I ")


def _sdk_body(**params: Any) -> tuple[str, dict[str, Any]]:
    """What the ``anthropic`` SDK itself sends for ``messages.create(**params)``: captured by an
    httpx mock transport in front of the SDK's own request building (the SDK runs on
    ``httpx2``)."""
    import anthropic as sdk
    import httpx2

    seen: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={
            "id": "msg_1", "type": "message", "role": "assistant", "model": params["model"],
            "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}})

    with httpx2.Client(transport=httpx2.MockTransport(answer)) as http, sdk.Anthropic(
            api_key="k", base_url="http://sdk.invalid", max_retries=0, http_client=http) as client:
        client.messages.create(**params)
    (request,) = seen
    return request.url.path, json.loads(request.content)


def test_a_conversation_is_the_body_the_sdk_sends_for_its_own_typed_messages() -> None:
    from anthropic.types import MessageParam, TextBlockParam

    turns = conversation(("system", "You translate."), ("system", "Be literal."),
                         ("user", "cat"), ("assistant", "chat"), ("user", "dog"),
                         ("assistant", "chi"))
    ours = build_input(turns, GenerationConfig(max_tokens=64)).unwrap()
    sdk_messages: list[MessageParam] = [
        {"role": "user", "content": "cat"}, {"role": "assistant", "content": "chat"},
        {"role": "user", "content": "dog"}, {"role": "assistant", "content": "chi"}]
    path, sent = _sdk_body(model="claude-sonnet-4-5", max_tokens=64, messages=sdk_messages,
                           system="You translate.\n\nBe literal.")
    assert (ours.method, ours.path) == ("POST", path)
    assert ours.json == sent
    # The string content is the SDK's shorthand for one text block: the block form reads the same.
    blocks: list[TextBlockParam] = [{"type": "text", "text": "cat"}]
    _, block_form = _sdk_body(model="claude-sonnet-4-5", max_tokens=64,
                              messages=[{"role": "user", "content": blocks}])
    assert block_form["messages"][0]["content"][0]["text"] == ours.json["messages"][0]["content"]


@settings(max_examples=40, deadline=None)
@given(conversations.filter(lambda turns: split_system(turns)[1][0].role == "user"))
def test_any_conversation_validates_as_the_sdks_create_params(turns: Conversation) -> None:
    from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
    from pydantic import TypeAdapter

    result = build_input(turns, server="compatible")  # compatible: no whitespace rule
    body = result.unwrap().json
    params = TypeAdapter(MessageCreateParamsNonStreaming).validate_python(body)
    assert [dict(message) for message in params["messages"]] == body["messages"]
    _, sent = _sdk_body(**body)
    assert sent == body
