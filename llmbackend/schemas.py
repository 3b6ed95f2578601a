"""Pure: walking and rewriting JSON Schemas, for the providers' structured-output dialects.

Strategy: providers accept subsets of JSON Schema (OpenAI's strict mode, Anthropic's and Gemini's
own rules). This module knows where subschemas live; each provider states its rules on top of it.
Rewrites return new dicts and never touch the caller's schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from llmbackend.errors import ConfigurationError, InvalidSchemaError

__all__ = [
    "Schema",
    "check_schema",
    "is_object_schema",
    "pydantic_schema",
    "resolve_local_ref",
    "rewrite",
    "subschemas",
    "validator_class",
]

#: Keywords whose value is one subschema.
_SINGLE = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
           "propertyNames", "unevaluatedItems", "unevaluatedProperties", "additionalItems")
#: Keywords whose value is a list of subschemas.
_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
#: Keywords whose value maps names to subschemas.
_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")

Schema = dict[str, Any]


def subschemas(
    schema: Mapping[str, Any], path: str = "$"
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Pure: every schema node with its JSON path, the root first."""
    yield path, schema
    for keyword in _SINGLE:
        child = schema.get(keyword)
        if isinstance(child, Mapping):
            yield from subschemas(child, f"{path}.{keyword}")
    for keyword in _LISTS:
        children = schema.get(keyword)
        if isinstance(children, list):
            for index, child in enumerate(children):
                if isinstance(child, Mapping):
                    yield from subschemas(child, f"{path}.{keyword}[{index}]")
    for keyword in _MAPS:
        children = schema.get(keyword)
        if isinstance(children, Mapping):
            for name, child in children.items():
                if isinstance(child, Mapping):
                    yield from subschemas(child, f"{path}.{keyword}.{name}")


def is_object_schema(node: Mapping[str, Any]) -> bool:
    """Pure: whether a node describes JSON objects."""
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node


def rewrite(schema: Mapping[str, Any], node_rule: Callable[[Schema], Schema]) -> Schema:
    """Pure: a copy of ``schema`` with ``node_rule`` applied to every node, children first."""
    node: Schema = dict(schema)
    for keyword in _SINGLE:
        if isinstance(node.get(keyword), Mapping):
            node[keyword] = rewrite(node[keyword], node_rule)
    for keyword in _LISTS:
        if isinstance(node.get(keyword), list):
            node[keyword] = [
                rewrite(child, node_rule) if isinstance(child, Mapping) else child
                for child in node[keyword]
            ]
    for keyword in _MAPS:
        if isinstance(node.get(keyword), Mapping):
            node[keyword] = {
                name: rewrite(child, node_rule) if isinstance(child, Mapping) else child
                for name, child in node[keyword].items()
            }
    return node_rule(node)


def resolve_local_ref(root: Mapping[str, Any], ref: str) -> Mapping[str, Any] | None:
    """Pure: the node a local ``#/...`` reference points to, or ``None``."""
    if not ref.startswith("#/"):
        return None
    node: object = root
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdecimal() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node if isinstance(node, Mapping) else None


# --- checking schemas -----------------------------------------------------------------------------


def pydantic_schema(model: object) -> dict[str, Any]:
    """Pure: the JSON Schema of a Pydantic model class (raises ``ConfigurationError`` otherwise)."""
    make_schema = getattr(model, "model_json_schema", None)
    if not isinstance(model, type) or not callable(make_schema):
        raise ConfigurationError(
            message="pydantic_model= must be a Pydantic v2 model class (a BaseModel subclass), "
            f"got {model!r}",
            key="pydantic_model",
        )
    return cast(dict[str, Any], make_schema())


def check_schema(schema: Mapping[str, Any]) -> None:
    """Pure: raise ``InvalidSchemaError`` unless ``schema`` is valid JSON Schema whose ``$ref``s
    all point inside it (answers are validated offline, so a remote ``$ref`` could never resolve).
    """
    from jsonschema.exceptions import best_match

    validator = validator_class(schema)
    problem = best_match(validator(validator.META_SCHEMA).iter_errors(schema))
    if problem is not None:
        raise InvalidSchemaError(
            message=f"invalid JSON Schema at {problem.json_path}: {problem.message}",
            key="schema",
            path=problem.json_path,
        )
    for path, node in subschemas(schema):
        ref = node.get("$ref")
        if not isinstance(ref, str):
            continue
        if not ref.startswith("#"):
            raise InvalidSchemaError(
                message=f"$ref {ref!r} at {path} points outside the schema; only local "
                "references ('#/$defs/...') are supported",
                key="schema",
                path=path,
            )
        if ref.startswith("#/") and resolve_local_ref(schema, ref) is None:
            raise InvalidSchemaError(
                message=f"$ref {ref!r} at {path} does not resolve inside the schema",
                key="schema",
                path=path,
            )


def validator_class(schema: Mapping[str, Any]) -> Any:
    """Pure: the jsonschema validator class for ``schema``'s dialect (2020-12 by default)."""
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for

    return validator_for(schema, default=Draft202012Validator)
