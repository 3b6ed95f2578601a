"""Pure: walking and rewriting JSON Schemas, for the providers' structured-output dialects.

Strategy: providers accept subsets of JSON Schema (OpenAI's strict mode, Anthropic's and Gemini's
own rules). This module knows where subschemas live; each provider states its rules on top of it.
Rewrites return new dicts and never touch the caller's schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

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
