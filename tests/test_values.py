"""The core values: GenerationConfig, StructuredOutput, Secret, and the error classes."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

import llmbackend
from llmbackend.convert import config_from
from llmbackend.errors import (
    ConfigurationError,
    HTTPStatusError,
    InvalidSchemaError,
    LLMError,
    MissingDependencyError,
    RequestTimeoutError,
    SchemaValidationError,
    TruncationError,
)
from llmbackend.types import GenerationConfig, Secret, StructuredOutput
from tests import strategies

# --- GenerationConfig -----------------------------------------------------------------------------


@given(strategies.configs())
def test_a_valid_config_survives_the_dict_form(config: GenerationConfig) -> None:
    as_dict = {"temperature": config.temperature, "top_p": config.top_p,
               "max_tokens": config.max_tokens, "seed": config.seed, "extra": dict(config.extra)}
    assert config_from(as_dict) == config
    assert config_from(config) is config


def test_none_and_empty_dict_mean_defaults() -> None:
    assert config_from(None) == GenerationConfig() == config_from({})


@pytest.mark.parametrize(("config", "key"), [
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"temperature": "0.7"}, "temperature"),
    ({"temperature": True}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 10.0}, "max_tokens"),
    ({"seed": "42"}, "seed"),
    ({"extra": ["stop"]}, "extra"),
    ({"extra": {1: "x"}}, "extra"),
    ({"temprature": 0.7}, "temprature"),
    ({"max_token": 5, "stop": ["x"]}, "max_token"),
])
def test_bad_config_is_rejected_at_once_naming_the_key(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        config_from(config)
    assert caught.value.key == key
    assert repr(key) in str(caught.value)


def test_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigurationError, match="Did you mean 'temperature'"):
        config_from({"temprature": 0.7})


def test_the_class_checks_itself_too() -> None:
    with pytest.raises(ConfigurationError, match="top_p"):
        GenerationConfig(top_p=-1)
    with pytest.raises(ConfigurationError, match="config must be a dict"):
        config_from(["temperature", 1])  # type: ignore[arg-type]


def test_extra_is_copied_not_shared() -> None:
    extra = {"system": "be brief"}
    config = GenerationConfig(extra=extra)
    extra["system"] = "changed"
    assert config.extra == {"system": "be brief"}


# --- StructuredOutput -----------------------------------------------------------------------------


class Summary(BaseModel):
    title: str
    tags: list[str]


def test_pydantic_model_gives_its_schema_and_name() -> None:
    out = StructuredOutput(pydantic_model=Summary)
    assert out.pydantic_model is Summary
    assert out.name == "Summary"
    assert out.schema["properties"]["title"] == {"title": "Title", "type": "string"}


def test_dict_schema_is_copied_and_named_from_title() -> None:
    schema = {"title": "My Summary!", "type": "object", "properties": {"a": {"type": "string"}}}
    out = StructuredOutput(schema=schema)
    schema["title"] = "changed"
    assert out.name == "My_Summary"
    assert out.pydantic_model is None
    assert StructuredOutput(schema={"type": "object"}).name == "response"
    assert StructuredOutput(schema={"type": "object"}, name="x" * 80).name == "x" * 64


@pytest.mark.parametrize(("kwargs", "match"), [
    ({}, "exactly one"),
    ({"schema": {"type": "object"}, "pydantic_model": Summary}, "exactly one"),
    ({"schema": {"type": "objekt"}}, r"\$\.type"),
    ({"schema": {"type": "object", "properties": {"a": {"minLength": -1}}}},
     r"\$\.properties\.a\.minLength"),
    ({"schema": {"type": "object", "required": "title"}}, r"\$\.required"),
    ({"schema": {"$ref": "#/$defs/Missing"}}, "does not resolve"),
    ({"schema": {"$ref": "https://example.com/schema.json"}}, "points outside"),
    ({"schema": [1, 2]}, "must be a dict"),
    ({"pydantic_model": dict}, "Pydantic v2 model class"),
    ({"schema": {"type": "object"}, "strict": "yes"}, "strict"),
])
def test_malformed_schemas_are_rejected_at_construction(kwargs: dict[str, Any], match: str
                                                        ) -> None:
    with pytest.raises(ConfigurationError, match=match):
        StructuredOutput(**kwargs)


def test_invalid_schema_error_carries_the_path() -> None:
    with pytest.raises(InvalidSchemaError) as caught:
        StructuredOutput(schema={"type": "object", "properties": {"a": {"type": 5}}})
    assert caught.value.path == "$.properties.a.type"


@given(strategies.json_schemas)
def test_generated_schemas_are_accepted(schema: dict[str, Any]) -> None:
    assert StructuredOutput(schema=schema).schema == schema


# --- Secret and errors ----------------------------------------------------------------------------


def test_secret_never_shows_its_value() -> None:
    secret = Secret("sk-very-secret")
    assert "sk-very-secret" not in repr(secret)
    assert "sk-very-secret" not in str(secret)
    assert "sk-very-secret" not in f"{secret!r} {secret}"
    assert secret.reveal() == "sk-very-secret"


def test_errors_are_values_that_compare_equal() -> None:
    first = HTTPStatusError(message="m", provider="openai", status=429)
    assert first == HTTPStatusError(message="m", provider="openai", status=429)
    assert first != HTTPStatusError(message="m", provider="openai", status=500)
    assert str(first) == "m"
    assert isinstance(first, LLMError)


@pytest.mark.parametrize(("error", "retryable"), [
    (HTTPStatusError(message="m", status=429), True),
    (HTTPStatusError(message="m", status=503), True),
    (HTTPStatusError(message="m", status=400), False),
    (RequestTimeoutError(message="t"), True),
    (TruncationError(message="t", text="partial"), False),
])
def test_retryable_flag(error: LLMError, retryable: bool) -> None:
    assert error.retryable is retryable


@pytest.mark.parametrize("error", [
    HTTPStatusError(message="m", provider="openai", status=401, error_code="invalid_api_key"),
    SchemaValidationError(message="bad", text="{}", path="$.title"),
    ConfigurationError(message="c", key="temperature"),
    MissingDependencyError(message="pip install llmbackend[vllm]", extra="vllm"),
])
def test_errors_pickle_and_can_be_raised_and_caught(error: LLMError) -> None:
    assert pickle.loads(pickle.dumps(error)) == error
    with pytest.raises(type(error)) as caught:
        raise error
    assert caught.value is error


def test_missing_dependency_is_an_import_error_and_config_errors_are_value_errors() -> None:
    assert isinstance(MissingDependencyError(message="x"), ImportError)
    assert isinstance(ConfigurationError(message="x"), ValueError)


def test_facade_exports_every_public_name() -> None:
    for name in llmbackend.__all__:
        assert getattr(llmbackend, name) is not None
    with pytest.raises(AttributeError):
        llmbackend.no_such_name  # type: ignore[attr-defined]  # noqa: B018
    assert set(dir(llmbackend)) >= set(llmbackend.__all__)


@given(st.text())
def test_format_names_are_always_acceptable(candidate: str) -> None:
    name = StructuredOutput(schema={"type": "object"}, name=candidate).name
    assert 1 <= len(name) <= 64
    assert all(c.isascii() and (c.isalnum() or c in "_-") for c in name)
