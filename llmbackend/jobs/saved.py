"""Pure: the saved-handle format (``Batch.to_dict()``): writing it, checking it, reading it back.

The format (``HANDLE_FORMAT``) is plain JSON data::

    {"format": "llmbackend.batch/1", "provider": "openai", "id": "<the handle's id>",
     "parts": [{"id": "<provider batch id>", "custom_ids": ["request-0", ...] | null}, ...],
     "model": "...", "schema": null | {"name": ..., "schema": {...}}, "options": {...},
     "order": [...]}                     # "order" only when the caller chose an item order

``model`` / ``schema`` / ``options`` are absent for an OpenAI job attached by id (it reads them
back from its input files). It never holds a credential or a URL.

Strategy: a saved handle may have been edited by hand, or written by an older version; a shape
``restore_batch`` cannot use is said by ``check_saved`` as a ``ConfigurationError`` naming the
field, never a ``KeyError``. ``summarize`` is the command line's tolerant reading for listings:
it never raises, whatever the file holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

from llmbackend.errors import ConfigurationError
from llmbackend.schemas import json_problem, text_problem
from llmbackend.types import GenerationRequest, StructuredOutput

__all__ = [
    "HANDLE_FORMAT",
    "SavedHandle",
    "SavedSummary",
    "check_saved",
    "request_from_dict",
    "request_to_dict",
    "summarize",
]

#: The ``format`` of ``Batch.to_dict()``.
HANDLE_FORMAT = "llmbackend.batch/1"


@frozen(kw_only=True)
class SavedHandle:
    """A checked saved handle: what a provider's job needs to re-attach without asking.

    - ``part_custom_ids``: each part's custom ids in input order, or ``None`` unless every part
      saved them (then they are read back from the provider);
    - ``order``: the item order the caller chose (``get_batch(custom_ids=...)``), if any;
    - ``request``: the request to read the answers with (model, schema, provider options).
    """

    provider: str
    id: str
    part_ids: tuple[str, ...]
    part_custom_ids: tuple[tuple[str, ...], ...] | None = field(repr=False)
    order: tuple[str, ...] | None = field(repr=False)
    request: GenerationRequest = field(repr=False)


@frozen(kw_only=True)
class SavedSummary:
    """What a listing shows of a saved handle; each field ``None`` when the file does not say."""

    id: str | None
    provider: str | None
    model: str | None
    #: How many requests the batch holds: the sum of its parts' custom ids when every part has
    #: them, else ``None``.
    requests: int | None


def request_to_dict(request: GenerationRequest | None) -> dict[str, Any]:
    """What of a batch's request its answers are read with: model, schema, provider options."""
    if request is None:
        return {}
    schema = request.schema
    return {"model": request.model,
            "schema": None if schema is None else {"name": schema.name,
                                                   "schema": dict(schema.schema)},
            "options": dict(request.options)}


def request_from_dict(data: Mapping[str, Any], schema: StructuredOutput[Any] | None
                      ) -> GenerationRequest:
    """The request to read a restored batch's answers with: ``schema`` when given (to get a
    Pydantic model's objects back), else the saved JSON schema (``ConfigurationError``, key
    ``batch``, if it is not a valid one)."""
    saved = data.get("schema")
    if schema is None and isinstance(saved, Mapping):
        try:
            schema = StructuredOutput(schema=saved["schema"], name=str(saved.get("name")))
        except ConfigurationError as error:
            raise _bad(f"its 'schema' is not a valid JSON schema: {error.message}") from None
    options = data.get("options")
    return GenerationRequest(model=str(data.get("model") or ""), input="", schema=schema,
                             options=dict(options) if isinstance(options, Mapping) else {})


def _bad(problem: str) -> ConfigurationError:
    return ConfigurationError(message=f"the saved batch cannot be restored: {problem} (restore "
                              "what Batch.to_dict() wrote)", key="batch")


def _id_list(value: object, what: str) -> tuple[str, ...]:
    """``value`` as ids if it is a list of unique non-empty strings; ``what`` names it."""
    if not isinstance(value, list):
        raise _bad(f"{what} must be a list of strings, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item or text_problem(item) is not None:
            raise _bad(f"{what}[{index}] must be a non-empty string, got {item!a}")
    if len(set(value)) != len(value):
        twice = next(item for index, item in enumerate(value) if item in value[:index])
        raise _bad(f"{what} holds {twice!a} twice; ids are unique")
    return tuple(value)


def check_saved(data: object, schema: StructuredOutput[Any] | None = None) -> SavedHandle:
    """``data`` read as a saved handle (``Batch.to_dict()``), its answers to be read with
    ``schema`` when given (else the saved JSON schema); ``ConfigurationError`` (key ``batch``,
    or ``provider``) for anything else.

    Every field is checked, since the file may have been edited by hand: the parts' ids and
    custom ids (lists of unique non-empty strings, unique across the parts), the ``order``
    (the same ids, each once), the model, the saved schema (a valid JSON schema) and the
    options (JSON data).
    """
    if not isinstance(data, Mapping) or data.get("format") != HANDLE_FORMAT:
        raise ConfigurationError(
            message="restore_batch takes what Batch.to_dict() returned (a dict with "
            f"format {HANDLE_FORMAT!r})", key="batch")
    parts = data.get("parts")
    if not isinstance(parts, list) or not parts or not all(
        isinstance(part, Mapping) and isinstance(part.get("id"), str) and part["id"]
        for part in parts
    ):
        raise ConfigurationError(message="the saved batch has no parts with ids", key="batch")
    part_ids = _id_list([part["id"] for part in parts], "its parts' 'id's")
    saved_schema = data.get("schema")
    if saved_schema is not None and not (isinstance(saved_schema, Mapping)
                                         and isinstance(saved_schema.get("schema"), Mapping)):
        raise ConfigurationError(
            message="the saved batch's 'schema' must be null or {\"name\": ..., \"schema\": "
            "{...}} (a JSON schema)", key="batch")
    for name, kind in (("options", Mapping), ("order", list)):
        if data.get(name) is not None and not isinstance(data.get(name), kind):
            raise ConfigurationError(
                message=f"the saved batch's {name!r} must be "
                f"{'an object' if kind is Mapping else 'a list'}", key="batch")
    problem = json_problem(data.get("options"), "options")
    if problem is not None:
        raise _bad(f"its {problem[0]} is {problem[1]}")
    for name in ("id", "model"):
        if data.get(name) is not None and not isinstance(data.get(name), str):
            raise _bad(f"its {name!r} must be a string, got {type(data.get(name)).__name__}")
    # Strategy: ``null`` is what a handle writes for a part whose ids are not known yet (a job
    # attached by id and saved before its results were read); they are then read back.
    if any(part.get("custom_ids") is not None and not isinstance(part.get("custom_ids"), list)
           for part in parts):
        raise ConfigurationError(message="the saved batch's parts' 'custom_ids' must be lists",
                                 key="batch")
    provider = data.get("provider")
    if not isinstance(provider, str):
        raise ConfigurationError(message=f"the saved batch names an unknown provider "
                                 f"{provider!r}", key="provider")
    saved_ids = [None if part.get("custom_ids") is None
                 else _id_list(part["custom_ids"], f"part {index}'s 'custom_ids'")
                 for index, part in enumerate(parts)]
    known = [ids for ids in saved_ids if ids is not None]
    _id_list([i for ids in known for i in ids], "the parts' 'custom_ids' together")
    order = None if data.get("order") is None else _id_list(data["order"], "its 'order'")
    # The saved ids are used only when every part has them (else they are read back).
    part_custom_ids = tuple(known) if len(known) == len(saved_ids) else None
    if order is not None and part_custom_ids is not None and set(order) != {
            i for ids in part_custom_ids for i in ids}:
        raise _bad("its 'order' must name each of the parts' custom ids once")
    saved_id = data.get("id")
    return SavedHandle(
        provider=provider,
        id=saved_id if isinstance(saved_id, str) else "",
        part_ids=part_ids,
        part_custom_ids=part_custom_ids,
        order=order,
        request=request_from_dict(data, schema),
    )


def summarize(data: object) -> SavedSummary:
    """What a listing shows of ``data``, a saved handle read from a file that may have been
    edited by hand: never raises; a field the file does not give (or gives wrongly) is ``None``."""
    if not isinstance(data, Mapping):
        return SavedSummary(id=None, provider=None, model=None, requests=None)

    def text(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) else None

    parts = data.get("parts")
    parts = parts if isinstance(parts, list) else []
    sizes = [len(part["custom_ids"]) for part in parts
             if isinstance(part, Mapping) and isinstance(part.get("custom_ids"), list)]
    return SavedSummary(id=text("id"), provider=text("provider"), model=text("model"),
                        requests=sum(sizes) if parts and len(sizes) == len(parts) else None)
