"""Properties of the OpenAI Responses request builder, checked against the official OpenAPI spec."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import jsonschema
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import EasyInputMessageParam, ResponseInputItemParam
from pydantic import BaseModel, Field
from returns.result import Failure, Result, Success

from llmbackend.convert import validate_output
from llmbackend.errors import LLMError, UnsupportedError
from llmbackend.messages import ROLES, Conversation, Message, check_input
from llmbackend.providers.openai import (
    build_input,
    build_response_request,
    build_text_format,
    make_strict,
    strict_violations,
)
from llmbackend.types import GenerationConfig, GenerationRequest, StructuredOutput, WireRequest
from tests import strategies
from tests.openapi import problems


def build(config: GenerationConfig | None = None, schema: StructuredOutput[Any] | None = None,
          *, drop: bool = False, prompt: str = "Hello") -> WireRequest:
    result = build_response_request(GenerationRequest(
        model="gpt-4o-mini", input=prompt, config=config or GenerationConfig(), schema=schema,
        drop_unsupported=drop))
    assert isinstance(result, Success), result
    return result.unwrap()


def build_failure(config: GenerationConfig, *, drop: bool = False) -> UnsupportedError:
    result = build_response_request(GenerationRequest(
        model="m", input="x", config=config, drop_unsupported=drop))
    assert isinstance(result, Failure), result
    error = result.failure()
    assert isinstance(error, UnsupportedError)
    return error


# --- every body is a valid CreateResponse ---------------------------------------------------------


@settings(max_examples=150)
@given(strategies.models, strategies.prompts, strategies.openai_configs,
       st.none() | strategies.json_schemas)
def test_built_bodies_validate_against_the_openapi_spec(
    model: str, prompt: str, config: GenerationConfig, schema: dict[str, Any] | None
) -> None:
    request = build_response_request(GenerationRequest(
        model=model, input=prompt, config=config,
        schema=StructuredOutput(schema=schema) if schema is not None else None))
    wire = request.unwrap()
    assert wire.method == "POST"
    assert wire.path == "/responses"
    assert problems("CreateResponse", wire.json) == []
    json.dumps(wire.json, allow_nan=False)  # the transport sends exactly this


@settings(max_examples=50)
@given(strategies.pydantic_models())
def test_pydantic_bodies_validate_against_the_openapi_spec(model: type[BaseModel]) -> None:
    wire = build(schema=StructuredOutput(pydantic_model=model))
    assert problems("CreateResponse", wire.json) == []


@given(strategies.configs(), st.booleans())
def test_builder_is_total(config: GenerationConfig, drop: bool) -> None:
    result = build_response_request(GenerationRequest(model="m", input="x", config=config,
                                                      drop_unsupported=drop))
    match result:
        case Success(wire):
            assert problems("CreateResponse", wire.json) == []
        case Failure(error):
            assert isinstance(error, UnsupportedError)
            assert error.parameter in {"seed", "stop", "max_tokens"}


# --- mapping --------------------------------------------------------------------------------------


@given(strategies.openai_configs)
def test_set_fields_appear_under_openai_names_and_unset_ones_are_absent(
    config: GenerationConfig,
) -> None:
    body = build(config).json
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"),
                         ("max_tokens", "max_output_tokens")):
        value = getattr(config, ours)
        if value is None:
            assert theirs not in body
        else:
            assert body[theirs] == value
    extra = dict(config.extra)
    if "system" in extra:
        assert body["instructions"] == extra.pop("system")
    else:
        assert "instructions" not in body
    for key, value in extra.items():
        assert body[key] == value
    assert set(body) <= {"model", "input", "temperature", "top_p", "max_output_tokens",
                         "instructions", *config.extra}
    assert body["input"] == "Hello"
    assert body["model"] == "gpt-4o-mini"


def test_minimal_body_is_exactly_model_and_input() -> None:
    assert build().json == {"model": "gpt-4o-mini", "input": "Hello"}


@pytest.mark.parametrize("config", [
    GenerationConfig(seed=42),
    GenerationConfig(extra={"seed": 42}),
    GenerationConfig(extra={"stop": ["\n"]}),
])
def test_seed_and_stop_fail_by_default_naming_the_way_out(config: GenerationConfig) -> None:
    error = build_failure(config)
    assert error.parameter in {"seed", "stop"}
    assert "drop_unsupported_params=True" in error.message


@pytest.mark.parametrize(("config", "sent"), [
    (GenerationConfig(seed=42), {"seed": 42}),
    (GenerationConfig(extra={"seed": 42}), {"seed": 42}),
    (GenerationConfig(extra={"stop": ["\n"]}), {"stop": ["\n"]}),
    (GenerationConfig(seed=1, extra={"stop": "END"}), {"seed": 1, "stop": "END"}),
])
def test_a_compatible_server_gets_seed_and_stop_as_given(
    config: GenerationConfig, sent: dict[str, Any]
) -> None:
    """vLLM's /v1/responses takes both: ``server="compatible"`` sends them (issue 14)."""
    result = build_response_request(GenerationRequest(
        model="m", input="x", config=config, options={"server": "compatible"}))
    wire = result.unwrap()
    assert {key: wire.json[key] for key in sent} == sent
    assert wire.warnings == ()
    official = build_response_request(GenerationRequest(
        model="m", input="x", config=config, options={"server": "official"})).failure()
    assert isinstance(official, UnsupportedError)
    assert "server='compatible'" in official.message


@given(strategies.configs(max_tokens=st.none(), seeds=st.integers(),
                          extra=st.fixed_dictionaries({}, optional={"stop": st.just(["x"])})))
def test_seed_and_stop_are_dropped_with_a_warning_on_request(config: GenerationConfig) -> None:
    wire = build(config, drop=True)
    assert "seed" not in wire.json
    assert "stop" not in wire.json
    dropped = {"seed", *(["stop"] if "stop" in config.extra else [])}
    assert len(wire.warnings) == len(dropped)
    for name in dropped:
        assert any(repr(name) in warning for warning in wire.warnings)


@given(st.integers(1, 15))
def test_max_tokens_below_the_api_minimum_is_refused(max_tokens: int) -> None:
    error = build_failure(GenerationConfig(max_tokens=max_tokens))
    assert error.parameter == "max_tokens"
    assert "16" in error.message


@pytest.mark.parametrize(("extra", "parameter"), [
    ({"model": "other"}, "model"),
    ({"input": "other"}, "input"),
    ({"system": "a", "instructions": "b"}, "instructions"),
    ({"stream": True}, "stream"),
    ({"background": True}, "background"),
    ({"system": 5}, "system"),
])
def test_extra_cannot_override_or_break_what_llmbackend_sets(extra: dict[str, Any],
                                                             parameter: str) -> None:
    assert build_failure(GenerationConfig(extra=extra)).parameter == parameter


def test_extra_text_options_merge_with_the_schema_format() -> None:
    schema = StructuredOutput(schema={"type": "object"})
    body = build(GenerationConfig(extra={"text": {"verbosity": "low"}}), schema).json
    assert body["text"]["verbosity"] == "low"
    assert body["text"]["format"]["type"] == "json_schema"
    result = build_response_request(GenerationRequest(
        model="m", input="x", schema=schema,
        config=GenerationConfig(extra={"text": {"format": {"type": "text"}}})))
    assert isinstance(result, Failure)
    assert result.failure().parameter == "text"  # type: ignore[attr-defined]


# --- structured outputs ---------------------------------------------------------------------------


@given(strategies.strict_json_schemas)
def test_strict_compatible_dict_schemas_are_sent_strict_and_unchanged(schema: dict[str, Any]
                                                                      ) -> None:
    assert strict_violations(schema) == []
    fmt = build_text_format(StructuredOutput(schema=schema)).unwrap()
    assert fmt["strict"] is True
    assert fmt["schema"] == schema


@given(strategies.json_schemas)
def test_strict_is_used_exactly_when_the_schema_allows_it(schema: dict[str, Any]) -> None:
    fmt = build_text_format(StructuredOutput(schema=schema)).unwrap()
    assert fmt["strict"] is (strict_violations(schema) == [])
    assert fmt["schema"] == schema  # a dict schema is the user's contract: never rewritten
    forced = build_text_format(StructuredOutput(schema=schema, strict=True))
    if fmt["strict"]:
        assert forced.unwrap()["strict"] is True
    else:
        assert isinstance(forced, Failure)
        assert forced.failure().parameter == "strict"  # type: ignore[attr-defined]
    assert build_text_format(StructuredOutput(schema=schema, strict=False)).unwrap()[
        "strict"] is False


def test_seed_readme_dict_schema_is_not_strict_because_tags_is_optional() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}, "tags": {
        "type": "array", "items": {"type": "string"}}}, "required": ["title"],
        "additionalProperties": False}
    assert strict_violations(schema) == ["$ must list every property in 'required' "
                                         "(missing 'tags')"]


@settings(max_examples=60)
@given(st.data(), strategies.pydantic_models())
def test_pydantic_adaptation_keeps_every_valid_answer_valid(data: st.DataObject,
                                                            model: type[BaseModel]) -> None:
    schema = StructuredOutput(pydantic_model=model)
    fmt = build_text_format(schema).unwrap()
    instance = data.draw(st.builds(model))
    answer = instance.model_dump_json()
    # The schema OpenAI receives accepts the answer, and the answer parses back to the instance.
    jsonschema.validate(json.loads(answer), fmt["schema"])
    assert validate_output(schema, answer, "openai") == Success(instance)
    # Strict exactly when the adapted schema qualifies (dict[str, int] fields cannot).
    assert fmt["strict"] is (strict_violations(make_strict(schema.schema)) == [])


class Author(BaseModel):
    first_name: str
    last_name: str


class Book(BaseModel):
    """A book with a rating."""

    title: str
    author: Author = Field(description="Who wrote it")
    rating: int = 5
    subtitle: str | None = None


def test_pydantic_schema_adapted_like_the_recorded_strict_request() -> None:
    fmt = build_text_format(StructuredOutput(pydantic_model=Book)).unwrap()
    assert fmt["strict"] is True
    assert fmt["name"] == "Book"
    assert fmt["description"] == "A book with a rating."
    sent = fmt["schema"]
    assert sent["required"] == ["title", "author", "rating", "subtitle"]
    assert sent["additionalProperties"] is False
    assert "default" not in json.dumps(sent)
    # The description sibling forced the reference to be inlined.
    assert sent["properties"]["author"]["required"] == ["first_name", "last_name"]
    assert sent["properties"]["author"]["description"] == "Who wrote it"
    assert strict_violations(sent) == []


class Node(BaseModel):
    value: int
    children: list[Node] = Field(default_factory=list, description="sub-trees")
    parent: Node | None = Field(default=None, description="the parent")


def test_recursive_models_adapt_without_looping() -> None:
    fmt = build_text_format(StructuredOutput(pydantic_model=Node)).unwrap()
    jsonschema.validate({"value": 1, "children": [{"value": 2, "children": [], "parent": None}],
                         "parent": None}, fmt["schema"])


def test_non_object_root_is_sent_but_not_strict() -> None:
    fmt = build_text_format(StructuredOutput(schema={"type": "array", "items": {
        "type": "string"}})).unwrap()
    assert fmt["strict"] is False


# --- messages (issue 15) --------------------------------------------------------------------------

#: Message text: any text UTF-8 can encode (a lone surrogate is refused by ``check_input``).
message_texts = st.text(st.characters(codec="utf-8"), max_size=40)
#: Any valid message list, as callers write it: roles from ``ROLES``, one non-system at least.
message_lists = st.lists(
    st.builds(lambda role, content: {"role": role, "content": content},
              st.sampled_from(ROLES), message_texts),
    min_size=1, max_size=8,
).filter(lambda items: any(item["role"] != "system" for item in items))
#: Valid message lists that the Responses API takes: the last non-system turn is the user's.
sendable_lists = message_lists.filter(
    lambda items: [item for item in items if item["role"] != "system"][-1]["role"] == "user")


def conversation(items: list[dict[str, str]]) -> Conversation:
    checked = check_input(items)
    assert isinstance(checked, tuple)
    return checked


def build_messages(items: list[dict[str, str]], config: GenerationConfig | None = None,
                   model: str = "gpt-4o-mini") -> Result[WireRequest, LLMError]:
    return build_response_request(GenerationRequest(
        model=model, input=conversation(items), config=config or GenerationConfig()))


def read_back(body: dict[str, Any]) -> tuple[str | None, list[dict[str, str]]]:
    """The instructions and the turns a body sends: a string input is one user turn."""
    sent = body["input"]
    turns = [{"role": "user", "content": sent}] if isinstance(sent, str) else sent
    return body.get("instructions"), turns


@settings(max_examples=200)
@given(strategies.models, message_lists, strategies.openai_configs)
def test_any_conversation_builds_a_valid_body_keeping_its_turns_or_fails_by_the_rules(
    model: str, items: list[dict[str, str]], config: GenerationConfig,
) -> None:
    result = build_messages(items, config, model)
    system = [item["content"] for item in items if item["role"] == "system"]
    turns = [item for item in items if item["role"] != "system"]
    if system and "system" in config.extra:
        error = result.failure()
        assert isinstance(error, UnsupportedError)
        assert error.parameter == "system"
        assert "give the system prompt once" in error.message
        return
    if turns[-1]["role"] == "assistant":
        error = result.failure()
        assert isinstance(error, UnsupportedError)
        assert error.parameter == "input"
        return
    body = result.unwrap().json
    assert problems("CreateResponse", body) == []
    json.dumps(body, allow_nan=False)
    instructions, sent = read_back(body)
    assert sent == turns  # every turn, in order, role and content as given
    assert instructions == ("\n\n".join(system) if system else config.extra.get("system"))
    assert isinstance(body["input"], str) is (len(turns) == 1)
    assert "instructions" in body or (not system and "system" not in config.extra)


@settings(max_examples=150)
@given(strategies.models, strategies.prompts, strategies.configs(), st.booleans(),
       st.none() | strategies.json_schemas)
def test_one_user_message_builds_exactly_the_string_body(
    model: str, prompt: str, config: GenerationConfig, drop: bool,
    schema: dict[str, Any] | None,
) -> None:
    def built(value: str | Conversation) -> Result[WireRequest, LLMError]:
        return build_response_request(GenerationRequest(
            model=model, input=value, config=config, drop_unsupported=drop,
            schema=StructuredOutput(schema=schema) if schema is not None else None))

    assert built(conversation([{"role": "user", "content": prompt}])) == built(prompt)


@given(strategies.prompts, message_texts, message_texts)
def test_system_messages_are_the_instructions_extra_system_gives(
    prompt: str, first: str, second: str,
) -> None:
    """A system message is what ``config.extra['system']`` is: ``instructions``."""
    as_messages = build_messages([{"role": "system", "content": first},
                                  {"role": "user", "content": prompt}]).unwrap()
    assert as_messages == build(GenerationConfig(extra={"system": first}), prompt=prompt)
    two = build_messages([{"role": "system", "content": first},
                          {"role": "user", "content": prompt},
                          {"role": "system", "content": second}]).unwrap()
    assert two.json["instructions"] == f"{first}\n\n{second}"


def test_a_conversation_body_is_role_items_with_the_system_as_instructions() -> None:
    wire = build_messages([
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Thanks"},
    ], GenerationConfig(temperature=0.0)).unwrap()
    assert wire.json == {
        "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": "Hello"},
                  {"role": "assistant", "content": "Bonjour"},
                  {"role": "user", "content": "Thanks"}],
        "instructions": "Answer in French.",
        "temperature": 0.0,
    }
    assert problems("CreateResponse", wire.json) == []
    assert problems("EasyInputMessage", wire.json["input"][1]) == []


@pytest.mark.parametrize("extra", [{"system": "Be brief."}, {"system": ""}])
def test_a_system_message_beside_extra_system_is_refused(extra: dict[str, Any]) -> None:
    error = build_messages([{"role": "system", "content": "Be kind."},
                            {"role": "user", "content": "Hi"}],
                           GenerationConfig(extra=extra)).failure()
    assert isinstance(error, UnsupportedError)
    assert error.parameter == "system"
    assert error.message == ("give the system prompt once: as a system message or in "
                             "config.extra['system'], not both")
    # Without system messages, extra["system"] is the instructions of a conversation too.
    body = build_messages([{"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": "Hello"},
                           {"role": "user", "content": "Bye"}],
                          GenerationConfig(extra=extra)).unwrap().json
    assert body["instructions"] == extra["system"]


def test_a_system_message_beside_extra_instructions_collides() -> None:
    error = build_messages([{"role": "system", "content": "Be kind."},
                            {"role": "user", "content": "Hi"}],
                           GenerationConfig(extra={"instructions": "x"})).failure()
    assert isinstance(error, UnsupportedError)
    assert error.parameter == "instructions"


@pytest.mark.parametrize("items", [
    [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "The"}],
    [{"role": "assistant", "content": "Hi"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
     {"role": "system", "content": "c"}],
])
def test_a_trailing_assistant_turn_is_refused_as_a_prefill(items: list[dict[str, str]]) -> None:
    error = build_messages(items).failure()
    assert isinstance(error, UnsupportedError)
    assert error.parameter == "input"
    assert "prefill" in error.message
    assert "End the conversation with a user message" in error.message


def test_assistant_turns_before_the_last_user_turn_are_sent() -> None:
    body = build_messages([{"role": "assistant", "content": "How can I help?"},
                           {"role": "user", "content": "Hi"}]).unwrap().json
    assert body["input"] == [{"role": "assistant", "content": "How can I help?"},
                             {"role": "user", "content": "Hi"}]


def test_an_unchecked_conversation_without_turns_fails_as_a_value() -> None:
    """``check_input`` refuses it first; the builder stays total anyway."""
    error = build_response_request(GenerationRequest(
        model="m", input=(Message("system", "x"),))).failure()
    assert isinstance(error, UnsupportedError)
    assert error.parameter == "input"
    empty = build_input((), None).failure()
    assert isinstance(empty, UnsupportedError)
    assert empty.parameter == "input"


# The SDK as an oracle: the same conversation, given to ``responses.create`` with the SDK's own
# input types, makes the same request body (a string input is the API's one user turn).

_sent: list[dict[str, Any]] = []


def _capture(request: httpx2.Request) -> httpx2.Response:
    _sent.append(json.loads(request.content))
    return httpx2.Response(200, json={"id": "resp_1", "object": "response", "output": []})


#: Nothing leaves the process: the SDK's own HTTP client (httpx2) answers from ``_capture``.
_SDK = openai.OpenAI(api_key="sk-test", base_url="http://127.0.0.1:9/v1", max_retries=0,
                     http_client=httpx2.Client(transport=httpx2.MockTransport(_capture)))


@settings(max_examples=60)
@given(sendable_lists, strategies.models)
def test_conversation_bodies_are_what_the_sdk_sends(items: list[dict[str, str]],
                                                    model: str) -> None:
    ours = build_messages(items, model=model).unwrap().json
    system = [item["content"] for item in items if item["role"] == "system"]
    sdk_input: list[ResponseInputItemParam] = [
        EasyInputMessageParam(role="user" if item["role"] == "user" else "assistant",
                              content=item["content"])
        for item in items if item["role"] != "system"]
    _sent.clear()
    if system:
        _SDK.responses.create(model=model, input=sdk_input, instructions="\n\n".join(system))
    else:
        _SDK.responses.create(model=model, input=sdk_input)
    (theirs,) = _sent
    instructions, turns = read_back(ours)
    assert {**ours, "input": turns} == theirs
    assert instructions == theirs.get("instructions")
