"""Properties of the OpenAI Responses request builder, checked against the official OpenAPI spec."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field
from returns.result import Failure, Success

from llmbackend.convert import validate_output
from llmbackend.errors import UnsupportedError
from llmbackend.providers.openai import (
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
