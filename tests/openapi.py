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
