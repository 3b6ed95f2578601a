"""Pure: conversion at the edges. User dicts become checked values, answers validated objects.

Strategy: user input goes through a strict cattrs converter (an unknown key is an error that names
it, and no value is coerced: ``"0.7"`` is not a temperature). Answers are validated with
jsonschema for JSON Schema dicts and with Pydantic's own ``model_validate_json`` for models; both
report the JSON path of the first mismatch. cattrs, jsonschema and Pydantic are imported on first
use, so that ``import llmbackend`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import fields
from returns.result import Failure, Result, Success

from llmbackend.errors import (
    ConfigurationError,
    LLMError,
    SchemaValidationError,
    did_you_mean,
)
from llmbackend.schemas import validator_class
from llmbackend.types import ConfigInput, GenerationConfig, StructuredOutput

if TYPE_CHECKING:
    from cattrs import Converter

__all__ = [
    "config_from",
    "json_path",
    "validate_output",
]

T = TypeVar("T")

_CONFIG_KEYS = tuple(a.name for a in fields(GenerationConfig))


# --- user config ----------------------------------------------------------------------------------


@cache
def _strict_converter() -> Converter:
    from cattrs import Converter

    converter = Converter(forbid_extra_keys=True)
    # Hand values over untouched: GenerationConfig's own validators check type and range and
    # name the key, where cattrs would coerce ("0.7" -> 0.7, 1.9 -> 1) or say less.
    passthrough = lambda value, _type: value  # noqa: E731
    converter.register_structure_hook_func(lambda _type: True, passthrough)
    converter.register_structure_hook(GenerationConfig, converter.gen_structure_attrs_fromdict(
        GenerationConfig
    ))
    return converter


def config_from(value: ConfigInput) -> GenerationConfig:
    """Pure: a ``GenerationConfig`` from a config, a plain dict or ``None``.

    Raises ``ConfigurationError`` naming the key for an unknown key or a bad value.
    """
    if value is None:
        return GenerationConfig()
    if isinstance(value, GenerationConfig):
        return value
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            message="config must be a dict or llmbackend.GenerationConfig, "
            f"got {type(value).__name__}",
            key="config",
        )
    from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

    try:
        return _strict_converter().structure(value, GenerationConfig)
    except ClassValidationError as group:
        for problem in group.exceptions:
            if isinstance(problem, ConfigurationError):
                raise problem from None
            if isinstance(problem, ForbiddenExtraKeysError):
                raise _unknown_keys(sorted(map(str, problem.extra_fields))) from None
        raise


def _unknown_keys(keys: list[str]) -> ConfigurationError:
    key = keys[0]
    hint = did_you_mean(key, _CONFIG_KEYS)
    return ConfigurationError(
        message=f"unknown config key {key!r}.{hint} Config keys are {', '.join(_CONFIG_KEYS)}; "
        "put provider-specific parameters under 'extra'.",
        key=key,
    )


# --- answers --------------------------------------------------------------------------------------


def json_path(location: tuple[int | str, ...]) -> str:
    """Pure: ``("tags", 0)`` -> ``$.tags[0]``; keys that are not identifiers are quoted."""
    parts = ["$"]
    for step in location:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif step.isidentifier():
            parts.append(f".{step}")
        else:
            parts.append(f"[{json.dumps(step)}]")
    return "".join(parts)


def validate_output(schema: StructuredOutput[T], text: str, provider: str) -> Result[T, LLMError]:
    """Pure: the answer ``text`` parsed and checked against ``schema``.

    Returns the Pydantic instance for a model, the JSON value for a dict schema, or a
    ``SchemaValidationError`` with the JSON path of the first mismatch.
    """
    if schema.pydantic_model is not None:
        return _validate_pydantic(schema.pydantic_model, text, provider)
    try:
        value = json.loads(text)
    except ValueError as exc:
        return Failure(SchemaValidationError(
            message=f"the answer is not valid JSON ({exc}); expected JSON matching the schema "
            f"{schema.name!r}",
            provider=provider, text=text, path="$",
        ))
    from jsonschema.exceptions import best_match

    validator = validator_class(schema.schema)
    problem = best_match(validator(schema.schema).iter_errors(value))
    if problem is not None:
        location = tuple(problem.absolute_path)
        if problem.validator == "required" and isinstance(problem.instance, Mapping):
            # Point at the missing property itself, as Pydantic does, not at its parent.
            missing = [n for n in problem.validator_value if n not in problem.instance]
            location = (*location, *missing[:1])
        path = json_path(location)
        return Failure(SchemaValidationError(
            message=f"the answer does not match the schema {schema.name!r} at {path}: "
            f"{problem.message}",
            provider=provider, text=text, path=path,
        ))
    return Success(cast(T, value))


def _validate_pydantic(model: type[T], text: str, provider: str) -> Result[T, LLMError]:
    from pydantic import ValidationError

    try:
        return Success(cast(Any, model).model_validate_json(text))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        path = json_path(tuple(first.get("loc", ())))
        return Failure(SchemaValidationError(
            message=f"the answer does not match {model.__name__} at {path}: {first['msg']} "
            f"({exc.error_count()} error(s) in all)",
            provider=provider, text=text, path=path,
        ))
