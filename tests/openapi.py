"""The official OpenAI OpenAPI description, as a jsonschema validator for request bodies."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import SPECS

SPEC_URI = "urn:openai-openapi"


@cache
def _registry() -> Registry[Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(SPECS / "openai-openapi.yaml", encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=loader)  # a safe loader
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return Registry().with_resource(SPEC_URI, resource)


@cache
def validator(component: str, *, closed: bool = True) -> Draft202012Validator:
    """A validator for ``#/components/schemas/<component>``. ``closed`` also rejects any top-level
    key the component does not define (``unevaluatedProperties: false`` sees through its allOf)."""
    schema: dict[str, Any] = {"$ref": f"{SPEC_URI}#/components/schemas/{component}"}
    if closed:
        schema["unevaluatedProperties"] = False
    return Draft202012Validator(schema, registry=_registry())


def problems(component: str, instance: Any) -> list[str]:
    return [f"{error.json_path}: {error.message}"
            for error in validator(component).iter_errors(instance)]


def union_types(component: str) -> list[str]:
    """The ``type`` discriminator value of every member of the ``oneOf`` union ``component``
    (e.g. ``OutputItem``: every kind of item a response's ``output`` may hold)."""
    schemas = _registry().contents(SPEC_URI)["components"]["schemas"]

    def kind_of(schema: dict[str, Any]) -> str | None:
        if "$ref" in schema:
            return kind_of(schemas[schema["$ref"].rsplit("/", 1)[-1]])
        kind = schema.get("properties", {}).get("type")
        if isinstance(kind, dict) and ("enum" in kind or "default" in kind):
            return str(kind["enum"][0] if "enum" in kind else kind["default"])
        return next((found for part in schema.get("allOf", [])
                     if (found := kind_of(part)) is not None), None)

    kinds = [kind_of(member) for member in schemas[component]["oneOf"]]
    assert all(kinds), kinds
    return [kind for kind in kinds if kind is not None]
