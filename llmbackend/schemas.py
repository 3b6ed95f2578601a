"""Pure: walking and rewriting JSON Schemas, for the providers' structured-output dialects.

Strategy: providers accept subsets of JSON Schema (OpenAI's strict mode, Anthropic's and Gemini's
own rules). This module knows where subschemas live; each provider states its rules on top of it.
Rewrites return new dicts and never touch the caller's schema.

It also says what JSON can carry (``json_problem``, ``text_problem``): a schema, a config's
``extra`` and a prompt are checked with it before anything is sent. A checked schema is nested at
most ``MAX_DEPTH`` levels, so the recursive walkers here stay far from Python's recursion limit;
its ``$ref`` chains are finite (``check_schema``), so a walker that follows them terminates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from llmbackend.errors import ConfigurationError, InvalidSchemaError

__all__ = [
    "MAX_DEPTH",
    "Schema",
    "check_schema",
    "is_object_schema",
    "json_problem",
    "pydantic_schema",
    "resolve_local_ref",
    "rewrite",
    "short_path",
    "subschemas",
    "text_problem",
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

#: How deeply a JSON value we send may nest (objects and arrays, the outermost counting as 1): a
#: schema, a config's ``extra``. Deeper values are refused before anything is sent.
MAX_DEPTH = 64


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


# --- what JSON can carry --------------------------------------------------------------------------


def text_problem(text: str) -> str | None:
    """Pure: why ``text`` cannot be sent (a lone surrogate, which UTF-8 cannot encode), or
    ``None``. The message shows the character escaped, so that it can itself be printed."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return (f"holds a lone surrogate ({text[error.start]!a} at index {error.start}), "
                "which UTF-8 cannot encode: it is not text (fix the text, e.g. decode it with "
                "errors='replace')")
    return None


def json_problem(value: object, path: str = "$") -> tuple[str, str] | None:
    """Pure: where and why ``value`` is not JSON that can be sent, as ``(path, reason)``, or
    ``None`` when it is.

    JSON here is strict: objects with string keys, arrays (lists or tuples), strings that UTF-8
    can encode, finite numbers, booleans and null; nested at most ``MAX_DEPTH`` levels (which
    also refuses a dict that contains itself). The walk is iterative, so any input is safe.
    """
    stack: list[tuple[object, str, int]] = [(value, path, 1)]
    while stack:
        node, where, depth = stack.pop()
        if node is None or isinstance(node, bool | int):
            continue
        if isinstance(node, float):
            if not math.isfinite(node):
                return where, f"{node!r}: JSON has no NaN or infinity"
            continue
        if isinstance(node, str):
            problem = text_problem(node)
            if problem is not None:
                return where, f"a string that {problem}"
            continue
        if not isinstance(node, Mapping | list | tuple):
            return where, f"of type {type(node).__name__}, which JSON cannot carry (use objects, " \
                "arrays, strings, numbers, booleans and null)"
        if depth > MAX_DEPTH:
            return where, f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(node, Mapping):
            for key, child in node.items():
                if not isinstance(key, str):
                    return where, f"an object with the key {key!r}: JSON keys are strings"
                problem = text_problem(key)
                if problem is not None:
                    return where, f"an object with the key {key!a}, which {problem}"
                stack.append((child, f"{where}.{key}" if key.isidentifier()
                              else f"{where}[{key!r}]", depth + 1))
        else:
            stack.extend((child, f"{where}[{index}]", depth + 1)
                         for index, child in enumerate(node))
    return None


# --- checking schemas -----------------------------------------------------------------------------


def pydantic_schema(model: object) -> dict[str, Any]:
    """Pure: the JSON Schema of a Pydantic model class: ``ConfigurationError`` if it is not one,
    ``InvalidSchemaError`` (with Pydantic's reason) if Pydantic cannot write its schema."""
    make_schema = getattr(model, "model_json_schema", None)
    if not isinstance(model, type) or not callable(make_schema):
        raise ConfigurationError(
            message="pydantic_model= must be a Pydantic v2 model class (a BaseModel subclass), "
            f"got {model!r}",
            key="pydantic_model",
        )
    from pydantic.errors import PydanticUndefinedAnnotation, PydanticUserError

    try:
        return cast(dict[str, Any], make_schema())
    except (PydanticUserError, PydanticUndefinedAnnotation) as error:
        reason = str(getattr(error, "message", error)).strip().splitlines()[0]
        raise InvalidSchemaError(
            message=f"pydantic_model={model.__name__} cannot be turned into a JSON Schema: "
            f"{reason}", key="pydantic_model") from error


def short_path(path: str, limit: int = 120) -> str:
    """Pure: a JSON path as a message shows it: whole when short, else its two ends."""
    return path if len(path) <= limit else f"{path[:limit // 2]}...{path[-limit // 2:]}"


def _invalid(message: str, path: str) -> InvalidSchemaError:
    return InvalidSchemaError(message=message, key="schema", path=path)


def check_schema(schema: Mapping[str, Any]) -> None:
    """Pure: raise ``InvalidSchemaError`` (with the JSON path of the problem) unless ``schema``
    is JSON (``json_problem``: at most ``MAX_DEPTH`` levels deep, no NaN, no lone surrogate),
    valid JSON Schema, with every ``pattern`` a regular expression answers can be checked with
    (Python's ``re``), and every ``$ref`` pointing inside it (answers are validated offline, so a
    remote ``$ref`` could never resolve) without a loop of references that never moves into the
    answer (``{"$ref": "#"}``: checking an answer against it would never end). A recursive
    schema whose ``$ref`` sits under ``properties`` or ``items`` (a tree) is fine.
    """
    problem = json_problem(schema)
    if problem is not None:
        where, reason = problem
        raise _invalid(f"the schema is not JSON that can be sent: {short_path(where)} is "
                       f"{reason}", where)
    dialect = schema.get("$schema")
    if dialect is not None and not isinstance(dialect, str):
        raise _invalid("the schema's '$schema' must be a string (the dialect's URI), got "
                       f"{type(dialect).__name__}", "$['$schema']")
    from jsonschema.exceptions import best_match

    validator = validator_class(schema)
    mismatch = best_match(validator(validator.META_SCHEMA).iter_errors(schema))
    if mismatch is not None:
        raise _invalid(f"invalid JSON Schema at {mismatch.json_path}: {mismatch.message}",
                       mismatch.json_path)
    anchors = {node["$anchor"]: node for _path, node in subschemas(schema)
               if isinstance(node.get("$anchor"), str)}
    for path, node in subschemas(schema):
        _check_patterns(node, path)
        ref = node.get("$ref")
        if isinstance(ref, str) and _ref_target(schema, anchors, ref, path) is None:
            raise _invalid(f"$ref {ref!r} at {path} does not resolve inside the schema", path)
    _check_ref_loops(schema, anchors)


def _check_patterns(node: Mapping[str, Any], path: str) -> None:
    """Every ``pattern`` and ``patternProperties`` key of ``node`` compiles with Python's ``re``
    (what answers are validated with; JSON Schema's ECMA-262 dialect mostly agrees)."""
    pattern = node.get("pattern")
    names = node.get("patternProperties")
    candidates = [(f"{path}.pattern", pattern)] if isinstance(pattern, str) else []
    if isinstance(names, Mapping):
        candidates += [(f"{path}.patternProperties", name) for name in names]
    for where, text in candidates:
        try:
            re.compile(text)
        except re.error as error:
            raise _invalid(f"the pattern {text!r} at {where} is not a regular expression "
                           f"answers can be checked with (Python's re: {error})",
                           where) from None


def _ref_target(root: Mapping[str, Any], anchors: Mapping[str, Mapping[str, Any]], ref: str,
                path: str = "$") -> Mapping[str, Any] | None:
    """The node a local ``$ref`` names (``#``, ``#/json/pointer`` or ``#anchor``), or ``None``;
    ``InvalidSchemaError`` for a reference outside the schema."""
    if not ref.startswith("#"):
        raise _invalid(f"$ref {ref!r} at {path} points outside the schema; only local "
                       "references ('#/$defs/...') are supported", path)
    if ref == "#":
        return root
    if ref.startswith("#/"):
        return resolve_local_ref(root, ref)
    return anchors.get(ref[1:])


#: Keywords that apply their subschemas to the same value (not to a part of it): a cycle of
#: references through only these never ends.
_IN_PLACE_SINGLE = ("not", "if", "then", "else")
_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")


def _in_place(root: Mapping[str, Any], anchors: Mapping[str, Mapping[str, Any]],
              node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The schemas ``node`` applies to the very value it checks: its ``$ref`` target and its
    in-place applicators' subschemas."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = _ref_target(root, anchors, ref)
        if target is not None:
            yield target
    for keyword in _IN_PLACE_SINGLE:
        child = node.get(keyword)
        if isinstance(child, Mapping):
            yield child
    for keyword in _IN_PLACE_LISTS:
        children = node.get(keyword)
        if isinstance(children, list):
            yield from (child for child in children if isinstance(child, Mapping))
    dependent = node.get("dependentSchemas")
    if isinstance(dependent, Mapping):
        yield from (child for child in dependent.values() if isinstance(child, Mapping))


def _check_ref_loops(root: Mapping[str, Any], anchors: Mapping[str, Mapping[str, Any]]) -> None:
    """``InvalidSchemaError`` if some schema reaches itself through ``$ref`` and in-place
    applicators alone (an iterative depth-first search, so a long chain is safe)."""
    paths = {id(node): path for path, node in subschemas(root)}
    done: set[int] = set()
    for start in [node for _path, node in subschemas(root)]:
        if id(start) in done:
            continue
        on_path = {id(start)}
        stack = [(start, _in_place(root, anchors, start))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_path.discard(id(node))
                done.add(id(node))
                continue
            if id(child) in on_path:
                where = paths.get(id(node), "$")
                raise _invalid(f"the $ref at {where} loops back to itself without moving into "
                               "the answer (no properties or items on the way): checking an "
                               "answer against it would never end", where)
            if id(child) not in done:
                on_path.add(id(child))
                stack.append((child, _in_place(root, anchors, child)))


def validator_class(schema: Mapping[str, Any]) -> Any:
    """Pure: the jsonschema validator class for ``schema``'s dialect (2020-12 by default)."""
    from jsonschema import Draft202012Validator
    from jsonschema.validators import validator_for

    return validator_for(schema, default=Draft202012Validator)
