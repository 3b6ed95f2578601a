"""Pure: OpenAI's Responses API (``POST /responses``) as request builders and response parsers.

Reference: https://platform.openai.com/docs/api-reference/responses/create and the official
OpenAPI description (``CreateResponse``, ``Response``), against which the tests validate every
body built here.

Mapping of the portable config:
- ``temperature`` -> ``temperature``, ``top_p`` -> ``top_p``,
  ``max_tokens`` -> ``max_output_tokens`` (the API's minimum is 16);
- ``extra["system"]`` -> ``instructions``; every other ``extra`` key is passed through as is;
- a conversation -> ``input`` as a list of ``{"role", "content"}`` items, its system messages
  -> ``instructions`` (``build_input``: a prefill, or system messages beside ``extra["system"]``,
  fail with ``UnsupportedError``);
- ``seed`` and ``extra["stop"]`` have no equivalent in OpenAI's own Responses API: there they
  fail with ``UnsupportedError`` unless the client was made with ``drop_unsupported_params=True``,
  which drops them with a warning. Nothing is ever dropped silently. With the provider option
  ``server="compatible"`` (an OpenAI-compatible server behind ``base_url``, such as vLLM, whose
  ``/v1/responses`` takes both) they are sent as ``seed`` and ``stop``.

Structured outputs use ``text.format`` of type ``json_schema``, strict where the schema allows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import evolve
from returns.result import Failure, Result, Success

from llmbackend.errors import (
    BlockedError,
    HTTPStatusError,
    LLMError,
    ProviderError,
    RefusalError,
    ResponseParseError,
    TruncationError,
    UnsupportedError,
    excerpt,
    excerpt_json,
)
from llmbackend.messages import Conversation, split_system
from llmbackend.providers import (
    SERVER_KINDS,
    Provider,
    answer_without_text,
    is_compatible_server,
    json_object,
    missing_route_hint,
    read_count,
    refuse_or_drop,
)
from llmbackend.retrying import retry_after_seconds
from llmbackend.schemas import Schema, is_object_schema, resolve_local_ref, rewrite, subschemas
from llmbackend.types import (
    Generation,
    GenerationRequest,
    StructuredOutput,
    Usage,
    WireRequest,
    WireResponse,
)

__all__ = [
    "BASE_URL",
    "LABEL",
    "MIN_OUTPUT_TOKENS",
    "NAME",
    "PROVIDER",
    "RESPONSES_PATH",
    "STRICT_UNSUPPORTED_KEYWORDS",
    "build_auth_headers",
    "build_input",
    "build_response_request",
    "build_stream",
    "build_text_format",
    "collect_output",
    "make_strict",
    "parse_error",
    "parse_response",
    "parse_response_object",
    "parse_usage",
    "strict_violations",
]

NAME = "openai"
LABEL = "OpenAI"
BASE_URL = "https://api.openai.com/v1"
RESPONSES_PATH = "/responses"
#: The API rejects a smaller ``max_output_tokens`` (OpenAPI: ``minimum: 16``).
MIN_OUTPUT_TOKENS = 16

#: JSON Schema keywords that OpenAI's strict mode does not accept.
#: https://platform.openai.com/docs/guides/structured-outputs#supported-schemas
STRICT_UNSUPPORTED_KEYWORDS = frozenset({
    "allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas",
    "patternProperties", "unevaluatedProperties", "propertyNames", "minProperties",
    "maxProperties", "unevaluatedItems", "contains", "minContains", "maxContains", "uniqueItems",
})


def build_auth_headers(api_key: str) -> dict[str, str]:
    """Pure: the header that carries an OpenAI API key."""
    return {"Authorization": f"Bearer {api_key}"}


# --- request --------------------------------------------------------------------------------------


def build_response_request(request: GenerationRequest) -> Result[WireRequest, LLMError]:
    """Pure: the ``POST /responses`` request for one prompt or conversation (``build_input``).

    Fails with ``UnsupportedError`` naming the parameter when the request asks for something the
    Responses API cannot do (see the module docstring), or when ``extra`` collides with a field
    llmbackend sets itself.
    """
    config = request.config
    extra = dict(config.extra)
    warnings: list[str] = []
    # OpenAI's own API has neither; a compatible server (vLLM) takes both.
    official = not is_compatible_server(request)

    for name, present in (
        ("seed", config.seed is not None or "seed" in extra),
        ("stop", "stop" in extra),
    ):
        if not present or not official:
            continue
        refused = refuse_or_drop(
            request, extra, warnings, name=name, refusal=_unsupported_portable(name),
            dropped=f"OpenAI's Responses API has no {name!r} parameter; it was dropped "
            "(drop_unsupported_params=True)")
        if refused is not None:
            return Failure(refused)

    if extra.get("stream"):
        return Failure(UnsupportedError(
            message="config.extra['stream']=True is not supported: to stream an answer, call "
            "llmbackend.stream", provider=NAME, parameter="stream",
        ))
    if extra.get("background"):
        return Failure(UnsupportedError(
            message="config.extra['background']=True is not supported: llmbackend sends "
            "synchronous requests and reads whole responses",
            provider=NAME, parameter="background",
        ))

    system = extra.pop("system", None)
    if system is not None and not isinstance(system, str):
        return Failure(UnsupportedError(
            message="config.extra['system'] must be a string (it becomes 'instructions')",
            provider=NAME, parameter="system",
        ))
    mapped = build_input(request.input, system)
    if isinstance(mapped, Failure):
        return mapped
    sent_input, instructions = mapped.unwrap()
    body: dict[str, Any] = {"model": request.model, "input": sent_input}
    if instructions is not None:
        body["instructions"] = instructions
    if config.temperature is not None:
        body["temperature"] = config.temperature
    if config.top_p is not None:
        body["top_p"] = config.top_p
    if config.seed is not None and not official:
        body["seed"] = config.seed
    if config.max_tokens is not None:
        if config.max_tokens < MIN_OUTPUT_TOKENS:
            return Failure(UnsupportedError(
                message=f"OpenAI's Responses API needs max_tokens >= {MIN_OUTPUT_TOKENS} "
                f"(max_output_tokens), got {config.max_tokens}",
                provider=NAME, parameter="max_tokens",
            ))
        body["max_output_tokens"] = config.max_tokens
    if request.schema is not None:
        text_options = extra.pop("text", {})
        if not isinstance(text_options, Mapping) or "format" in text_options:
            return Failure(UnsupportedError(
                message="config.extra['text'] may carry other text options (e.g. verbosity) but "
                "not 'format' when a schema is given: the schema sets the format",
                provider=NAME, parameter="text",
            ))
        fmt = build_text_format(request.schema)
        if isinstance(fmt, Failure):
            return fmt
        body["text"] = {**text_options, "format": fmt.unwrap()}

    for key, value in extra.items():
        if key in body:
            return Failure(UnsupportedError(
                message=f"config.extra[{key!r}] collides with {key!r}, which llmbackend sets "
                "from the request; set it in one place only",
                provider=NAME, parameter=key,
            ))
        body[key] = value
    return Success(WireRequest(
        method="POST", path=RESPONSES_PATH, json=body, warnings=tuple(warnings)
    ))


def build_stream(request: GenerationRequest) -> Result[WireRequest, LLMError]:
    """Pure: the same request as ``build_response_request``, streamed: the same body with
    ``"stream": true`` (the answer comes as server-sent events, read by ``read_stream``). It
    fails where the whole call's builder does, with the same error."""
    built = build_response_request(request)
    if isinstance(built, Failure):
        return built
    wire = built.unwrap()
    return Success(evolve(wire, json={**wire.json, "stream": True}))


def build_input(
    value: str | Conversation, system: str | None = None
) -> Result[tuple[str | list[dict[str, str]], str | None], LLMError]:
    """Pure: the ``input`` and ``instructions`` of a request for a prompt or a conversation.

    ``system`` is ``config.extra["system"]``. A prompt is sent as it is, with ``system`` as the
    instructions. A conversation's system messages become ``instructions`` (several joined with a
    blank line, in order), and its other turns the ``input`` list of ``{"role", "content"}``
    items (the spec's ``EasyInputMessage``), in order; turns that are one user message are sent
    as the plain string, which the API reads as exactly that. Fails with ``UnsupportedError``:
    parameter ``system`` when the conversation has system messages and ``system`` is also set;
    parameter ``input`` when it ends with an assistant turn (a prefill, which the Responses API
    does not continue) or has no turn besides the system messages.
    """
    if isinstance(value, str):
        return Success((value, system))
    texts, turns = split_system(value)
    if texts and system is not None:
        return Failure(UnsupportedError(
            message="give the system prompt once: as a system message or in "
            "config.extra['system'], not both",
            provider=NAME, parameter="system",
        ))
    if not turns:
        return Failure(UnsupportedError(
            message="the conversation has only system messages: add the user's turn",
            provider=NAME, parameter="input",
        ))
    if turns[-1].role == "assistant":
        return Failure(UnsupportedError(
            message="the conversation ends with an assistant message (a prefill), which "
            "OpenAI's Responses API does not continue: it reads assistant messages as earlier "
            "answers and writes a new one. End the conversation with a user message",
            provider=NAME, parameter="input",
        ))
    instructions = "\n\n".join(texts) if texts else system
    if len(turns) == 1:  # one user message: the API reads a string input as exactly that
        return Success((turns[0].content, instructions))
    return Success(([{"role": turn.role, "content": turn.content} for turn in turns],
                    instructions))


def _unsupported_portable(name: str) -> UnsupportedError:
    where = "config.seed" if name == "seed" else "config.extra['stop']"
    return UnsupportedError(
        message=f"OpenAI's Responses API has no {name!r} parameter, so {where} cannot be honoured. "
        "Remove it, or create the client with drop_unsupported_params=True to drop it with a "
        "warning. (For an OpenAI-compatible server that takes it, such as vLLM, create the "
        "client with server='compatible'.)",
        provider=NAME, parameter=name,
    )


def build_text_format(schema: StructuredOutput[Any]) -> Result[dict[str, Any], LLMError]:
    """Pure: the ``text.format`` object for a structured output.

    A Pydantic model's schema is adapted to strict mode first (see ``make_strict``); a JSON Schema
    dict is sent as written. Strict mode is used when the resulting schema satisfies OpenAI's
    rules, unless ``schema.strict`` says otherwise; ``strict=True`` on an unsuitable schema fails
    with ``UnsupportedError`` saying why.
    """
    adapted = make_strict(schema.schema) if schema.pydantic_model is not None else None
    candidate = adapted if adapted is not None else dict(schema.schema)
    problems = strict_violations(candidate)
    if schema.strict is True and problems:
        return Failure(UnsupportedError(
            message=f"schema {schema.name!r} cannot use OpenAI's strict mode: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            provider=NAME, parameter="strict",
        ))
    strict = not problems and schema.strict is not False
    sent = candidate if strict else dict(schema.schema)
    fmt: dict[str, Any] = {"type": "json_schema", "name": schema.name, "schema": sent,
                           "strict": strict}
    description = sent.get("description")
    if isinstance(description, str):
        fmt["description"] = description
    return Success(fmt)


def strict_violations(schema: Mapping[str, Any]) -> list[str]:
    """Pure: why ``schema`` cannot be used in OpenAI's strict mode (empty when it can).

    The rules: the root is an object (not ``anyOf``); every object sets
    ``additionalProperties: false`` and lists all its properties in ``required``; and no keyword
    of ``STRICT_UNSUPPORTED_KEYWORDS`` appears.
    """
    problems: list[str] = []
    if schema.get("type") != "object" or "anyOf" in schema:
        problems.append("the root must be a plain object schema ('type': 'object')")
    for path, node in subschemas(schema):
        for keyword in sorted(STRICT_UNSUPPORTED_KEYWORDS.intersection(node)):
            problems.append(f"{path} uses {keyword!r}, which strict mode does not support")
        if not is_object_schema(node):
            continue
        if node.get("additionalProperties") is not False:
            problems.append(f"{path} must set 'additionalProperties': false")
        properties = node.get("properties", {})
        required = node.get("required", [])
        if isinstance(properties, Mapping) and isinstance(required, list):
            missing = [name for name in properties if name not in required]
            if missing:
                problems.append(f"{path} must list every property in 'required' "
                                f"(missing {', '.join(map(repr, missing))})")
    return problems


def make_strict(schema: Mapping[str, Any]) -> Schema:
    """Pure: a Pydantic model's schema adapted to OpenAI's strict rules.

    Objects get ``additionalProperties: false`` (unless they set it, as ``dict`` fields do) and list
    every property as required: the model then always writes every field, and Pydantic still
    validates the answer against the model. ``default`` (not accepted in strict mode) is dropped.
    A ``$ref`` with sibling keywords (Pydantic writes a field's description beside the reference)
    is inlined, since strict mode wants a bare ``$ref``.
    """

    inlining: set[str] = set()  # references being inlined now: a recursive model stops here

    def adapt(node: Schema) -> Schema:
        node.pop("default", None)
        ref = node.get("$ref")
        if isinstance(ref, str) and len(node) > 1 and ref not in inlining:
            target = resolve_local_ref(schema, ref)
            if target is not None:
                inlining.add(ref)
                siblings = {k: v for k, v in node.items() if k != "$ref"}
                node = {**rewrite(target, adapt), **siblings}
                inlining.discard(ref)
        if is_object_schema(node):
            node.setdefault("additionalProperties", False)
            properties = node.get("properties")
            if isinstance(properties, Mapping):
                node["required"] = list(properties)
        return node

    return rewrite(schema, adapt)


# --- response -------------------------------------------------------------------------------------


def parse_response(
    request: GenerationRequest, response: WireResponse
) -> Result[Generation[str], LLMError]:
    """Pure: the text answer of a ``POST /responses`` exchange, or the typed failure it reports.

    - non-2xx -> ``HTTPStatusError`` with OpenAI's error type, code, param and message;
    - a ``refusal`` content item -> ``RefusalError`` with the refusal text;
    - ``status: incomplete`` -> ``TruncationError`` (``max_output_tokens``) or ``BlockedError``
      (``content_filter``), carrying the partial text;
    - ``status: failed`` or another unfinished status -> ``ProviderError``;
    - tool calls and no text -> ``ToolCallError`` (an ``UnsupportedError`` and an
      ``OutputError``: llmbackend returns text);
    - no ``output_text`` part at all (an empty ``output``, or only items such as reasoning,
      ``mcp_approval_request`` or ``program``) -> ``NoTextError`` naming the item types; an empty
      ``output_text`` is an empty answer, ``Success('')``;
    - a body that is not a Responses object -> ``ResponseParseError``.
    Never raises, whatever the bytes.
    """
    if not 200 <= response.status < 300:
        return Failure(parse_error(response))
    body = json_object(response.body)
    if body is None or not isinstance(body.get("output"), list):
        return Failure(ResponseParseError(
            message=f"{LABEL} answered HTTP {response.status} with a body that is not a "
            "Responses API object (no 'output' list)",
            provider=NAME, body=excerpt(response.body),
        ))
    return parse_response_object(request, body)


def parse_response_object(
    request: GenerationRequest, body: Mapping[str, Any]
) -> Result[Generation[str], LLMError]:
    """Pure: ``parse_response`` for a body already decoded (a batch result line carries one).

    ``body`` must be a mapping with an ``output`` list; the outcome is as ``parse_response``
    describes.
    """
    output = body.get("output")
    text, refusal, tool_calls = collect_output(output if isinstance(output, list) else [])
    status = body.get("status")
    if refusal is not None:
        return Failure(RefusalError(message=f"the model refused: {refusal}", provider=NAME,
                                    text=refusal))
    if status == "incomplete":
        details = body.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        if reason == "content_filter":
            return Failure(BlockedError(
                message="OpenAI's content filter stopped the answer (status incomplete, "
                "reason content_filter)", provider=NAME, text=text, reason="content_filter",
            ))
        return Failure(TruncationError(
            message=f"the answer was cut off ({reason or 'incomplete'}) after "
            f"{len(text)} characters; raise max_tokens to get all of it",
            provider=NAME, text=text,
        ))
    if status not in (None, "completed"):
        error = body.get("error")
        code, message = _error_fields(error if isinstance(error, dict) else {})
        return Failure(ProviderError(
            message=f"{LABEL} response status is {status!r}"
            + (f": {message}" if message else ""),
            provider=NAME, error_type=str(status), error_code=code, body=excerpt_json(body),
        ))
    items = output if isinstance(output, list) else []
    if not text and (tool_calls or not _has_text_part(items)):
        return Failure(answer_without_text(
            provider=NAME, label=LABEL, kinds=_item_kinds(items), calls=tool_calls, body=body,
            container="'output' list"))
    model = body.get("model")
    response_id = body.get("id")
    return Success(Generation(
        text=text,
        parsed=text,
        usage=parse_usage(body.get("usage"), body.get("service_tier")),
        finish_reason="stop",
        provider=NAME,
        model=model if isinstance(model, str) else request.model,
        response_id=response_id if isinstance(response_id, str) else None,
        raw=body,
    ))


def collect_output(output: list[Any]) -> tuple[str, str | None, list[str]]:
    """Pure: from a Responses ``output`` list, the joined ``output_text`` of the message items, the
    joined refusal (``None`` if there is none) and the names of any tool calls. Items of other
    kinds (reasoning, web search...) are skipped; their content stays in the raw body."""
    texts: list[str] = []
    refusals: list[str] = []
    tool_calls: list[str] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message" and isinstance(item.get("content"), list):
            for part in item["content"]:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                    refusals.append(part["refusal"])
        elif isinstance(kind, str) and kind.endswith("_call"):
            name = item.get("name")
            tool_calls.append(name if isinstance(name, str) else kind)
    return "".join(texts), ("".join(refusals) if refusals else None), tool_calls


def _item_kinds(output: list[Any]) -> list[str]:
    return [str(item.get("type")) if isinstance(item, dict) else type(item).__name__
            for item in output]


def _has_text_part(output: list[Any]) -> bool:
    """Whether a message item holds an ``output_text`` part (an empty one is an empty answer)."""
    return any(
        isinstance(part, dict) and part.get("type") == "output_text"
        and isinstance(part.get("text"), str)
        for item in output
        if isinstance(item, dict) and item.get("type") == "message"
        and isinstance(item.get("content"), list)
        for part in item["content"])


def parse_usage(usage: object, service_tier: object = None) -> Usage:
    """Pure: token counts from a Responses ``usage`` object (missing or odd fields -> ``None``),
    and the response's ``service_tier``. OpenAI's ``input_tokens`` already include the cached
    ones (``input_tokens_details.cached_tokens``); it reports no cache writes."""
    tier = service_tier if isinstance(service_tier, str) else None
    if not isinstance(usage, dict):
        return Usage(service_tier=tier)
    input_details = usage.get("input_tokens_details")
    output_details = usage.get("output_tokens_details")
    return Usage(
        input_tokens=read_count(usage.get("input_tokens")),
        output_tokens=read_count(usage.get("output_tokens")),
        reasoning_tokens=read_count(output_details.get("reasoning_tokens"))
        if isinstance(output_details, dict) else None,
        cached_input_tokens=read_count(input_details.get("cached_tokens"))
        if isinstance(input_details, dict) else None,
        service_tier=tier,
    )


def parse_error(response: WireResponse, route: str | None = None) -> HTTPStatusError:
    """Pure: an ``HTTPStatusError`` from a non-2xx response, with OpenAI's ``error`` fields
    (``{"error": {"message", "type", "param", "code"}}``) where the body has them.

    ``route`` names a batch route (``"POST /files"``) the request went to: a 404/405 there
    without OpenAI's error object says the server lacks it, and to use an immediate batch."""
    body = json_object(response.body)
    error = body.get("error") if body is not None else None
    error_type = param = None
    if isinstance(error, dict):
        code, message = _error_fields(error)
        error_type = _text(error.get("type"))
        param = _text(error.get("param"))
    else:
        code = None
        message = error if isinstance(error, str) else excerpt(response.body, 300)
    kind = "/".join(part for part in (error_type, code) if part)
    retries = f" after {response.attempts} attempts" if response.attempts > 1 else ""
    # A 404/405 without OpenAI's error object is a server that lacks the route, which is how an
    # OpenAI-compatible server without the Responses API (or without Files/Batches) answers.
    hint = ""
    if response.status in (404, 405) and not isinstance(error, dict):
        hint = (missing_route_hint(LABEL, route) if route is not None else
                " (the server has no such route: an OpenAI-compatible server behind base_url "
                "must implement the Responses API, POST /v1/responses, which is the only OpenAI "
                "API llmbackend speaks for answers)")
    return HTTPStatusError(
        message=f"{LABEL} answered HTTP {response.status}{retries}"
        + (f" ({kind})" if kind else "") + (f": {message}" if message else "") + hint,
        provider=NAME,
        status=response.status,
        error_type=error_type,
        error_code=code,
        error_param=param,
        attempts=response.attempts,
        body=excerpt(response.body),
        retry_after=retry_after_seconds(response.headers),
    )


def _error_fields(error: Mapping[str, Any]) -> tuple[str | None, str]:
    return _text(error.get("code")), _text(error.get("message")) or ""


def _text(value: object) -> str | None:
    if value is None or isinstance(value, Mapping | list):
        return None
    return str(value)


PROVIDER = Provider(
    name=NAME,
    label=LABEL,
    default_base_url=BASE_URL,
    api_key_env=("OPENAI_API_KEY",),
    base_url_env=("OPENAI_BASE_URL",),
    auth_headers=build_auth_headers,
    build_generation=build_response_request,
    parse_generation=parse_response,
    options={"server": SERVER_KINDS},
    build_stream=build_stream,
)
