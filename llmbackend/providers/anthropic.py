"""Pure: Anthropic's Messages API (``POST /v1/messages``) as request builders and response parsers.

Reference: https://docs.anthropic.com/en/api/messages and the structured outputs guide
(https://docs.claude.com/en/docs/build-with-claude/structured-outputs).

Mapping of the portable config:
- ``max_tokens`` -> ``max_tokens``, which the API requires: ``DEFAULT_MAX_TOKENS`` (4096) when
  the config has none;
- ``temperature``, ``top_p`` and ``extra["top_k"]``: Anthropic's own API no longer takes them
  (``SAMPLING_PARAMETERS``; the ``anthropic`` SDK 2.16 lists none of them): each fails with
  ``UnsupportedError`` before sending, or is dropped with a warning under
  ``drop_unsupported_params=True``, as ``seed`` is. With the provider option
  ``server="compatible"`` (a compatible server behind ``base_url``, such as vLLM's
  ``/v1/messages``) they are sent: ``temperature`` (0 to 1: a larger value fails before
  sending), ``top_p``, ``top_k``;
- ``extra["system"]`` -> ``system``; ``extra["stop"]`` (a string or a list) -> ``stop_sequences``;
  every other ``extra`` key is passed through as is;
- ``seed``: the Messages API has none. It fails with ``UnsupportedError`` unless the client was
  made with ``drop_unsupported_params=True``, which drops it with a warning, as on OpenAI.

Messages (``input`` a conversation, ``llmbackend.messages``): the user and assistant turns go
into ``messages`` in order, consecutive turns of one role merged into one turn (their texts joined
by a blank line, ``"\n\n"``); the system messages are lifted into the top-level ``system``
(several joined by ``"\n\n"``), and meeting ``extra["system"]`` too they fail with
``UnsupportedError`` (parameter ``system``). The first turn must be the user's. A final assistant
turn is a prefill, sent as is (the answer continues it), except with a schema, with extended
thinking, or (on Anthropic's own API) ending in whitespace, which the API refuses: those fail with
``UnsupportedError`` (parameter ``input``). A one-user-message conversation builds exactly the
body of its text as a plain prompt.

Structured outputs use the native ``output_config.format`` (a JSON schema, adapted to the subset
Anthropic accepts by ``adapt_schema``). The provider option ``structured_output="tool"`` uses the
older forced-tool-call technique instead, for models without native support.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from attrs import evolve
from returns.result import Failure, Result, Success

from llmbackend.errors import (
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
from llmbackend.messages import split_system
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
from llmbackend.schemas import Schema
from llmbackend.types import (
    Generation,
    GenerationRequest,
    Usage,
    WireRequest,
    WireResponse,
)

__all__ = [
    "API_VERSION",
    "BASE_URL",
    "DEFAULT_MAX_TOKENS",
    "LABEL",
    "MAX_TEMPERATURE",
    "MESSAGES_PATH",
    "NAME",
    "PROVIDER",
    "SAMPLING_PARAMETERS",
    "STRUCTURED_OUTPUT_METHODS",
    "SUPPORTED_STRING_FORMATS",
    "SYSTEM_SEPARATOR",
    "TURN_SEPARATOR",
    "adapt_schema",
    "build_auth_headers",
    "build_messages_request",
    "build_stream",
    "parse_error",
    "parse_message",
    "parse_message_object",
    "parse_usage",
    "structured_output_method",
]

NAME = "anthropic"
LABEL = "Anthropic"
BASE_URL = "https://api.anthropic.com"
MESSAGES_PATH = "/v1/messages"
#: The API version every request names (``anthropic-version`` header).
API_VERSION = "2023-06-01"
#: ``max_tokens`` when the config sets none (the API requires one).
DEFAULT_MAX_TOKENS = 4096
#: Anthropic's temperature range is 0 to 1 (the portable config allows up to 2, for OpenAI).
MAX_TEMPERATURE = 1.0
#: Sampling parameters Anthropic's own Messages API no longer takes, for any model: the
#: ``anthropic`` SDK 2.16 lists none of them on ``messages.create`` (``MessageCreateParams``).
SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")
#: Joins the texts of several system messages into ``system``.
SYSTEM_SEPARATOR = "\n\n"
#: Joins the texts of consecutive same-role turns merged into one turn.
TURN_SEPARATOR = "\n\n"
#: How structured outputs are asked for (provider option ``structured_output``).
STRUCTURED_OUTPUT_METHODS = ("native", "tool")

#: String formats Anthropic's structured outputs accept; other formats go into the description.
SUPPORTED_STRING_FORMATS = frozenset({
    "date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid",
})
#: Keywords kept as they are by ``adapt_schema`` (the rest are described, not enforced).
_KEPT = frozenset({"type", "properties", "required", "items", "anyOf", "allOf", "enum", "$ref",
                   "$defs", "definitions", "description", "title", "additionalProperties",
                   "format", "minItems"})


def build_auth_headers(api_key: str) -> dict[str, str]:
    """Pure: the header that carries an Anthropic API key."""
    return {"x-api-key": api_key}


# --- request --------------------------------------------------------------------------------------


def build_messages_request(request: GenerationRequest) -> Result[WireRequest, LLMError]:
    """Pure: the ``POST /v1/messages`` request for one input: a prompt, or a conversation
    (mapped as the module docstring says).

    Fails with ``UnsupportedError`` naming the parameter when the request asks for something the
    Messages API cannot do (see the module docstring), or when ``extra`` collides with a field
    llmbackend sets itself.
    """
    config = request.config
    extra = dict(config.extra)
    warnings: list[str] = []

    if config.seed is not None or "seed" in extra:
        refused = refuse_or_drop(
            request, extra, warnings, name="seed", refusal=UnsupportedError(
                message="Anthropic's Messages API has no 'seed' parameter, so config.seed cannot "
                "be honoured. Remove it, or create the client with drop_unsupported_params=True "
                "to drop it with a warning.",
                provider=NAME, parameter="seed"),
            dropped="Anthropic's Messages API has no 'seed' parameter; it was dropped "
            "(drop_unsupported_params=True)")
        if refused is not None:
            return Failure(refused)
    sampling = _sampling(request, extra, warnings)
    if isinstance(sampling, Failure):
        return sampling
    temperature, top_p = sampling.unwrap()
    if extra.get("stream"):
        return Failure(UnsupportedError(
            message="config.extra['stream']=True is not supported: a whole call is a "
            "synchronous request read as one response; to stream an answer, call "
            "llmbackend.stream", provider=NAME, parameter="stream",
        ))

    conversation = _conversation(request, extra)
    if isinstance(conversation, Failure):
        return conversation
    messages, lifted = conversation.unwrap()
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": config.max_tokens if config.max_tokens is not None else DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    system = extra.pop("system", None)
    if system is not None:
        if not isinstance(system, str | list):
            return Failure(UnsupportedError(
                message="config.extra['system'] must be a string (or a list of text blocks)",
                provider=NAME, parameter="system",
            ))
        if lifted:
            return Failure(UnsupportedError(
                message="give the system prompt once: as a system message or in "
                "config.extra['system'], not both", provider=NAME, parameter="system",
            ))
        body["system"] = system
    elif lifted:
        body["system"] = SYSTEM_SEPARATOR.join(lifted)
    if temperature is not None:
        if temperature > MAX_TEMPERATURE:
            return Failure(UnsupportedError(
                message=f"Anthropic takes temperature from 0 to 1, got {temperature:g}",
                provider=NAME, parameter="temperature",
            ))
        body["temperature"] = temperature
    if top_p is not None:
        body["top_p"] = top_p
    stop = extra.pop("stop", None)
    if stop is not None:
        sequences = [stop] if isinstance(stop, str) else stop
        if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
            return Failure(UnsupportedError(
                message="config.extra['stop'] must be a string or a list of strings "
                "(it becomes stop_sequences)", provider=NAME, parameter="stop",
            ))
        body["stop_sequences"] = sequences
    if request.schema is not None:
        added = _add_structured_output(body, extra, request)
        if isinstance(added, Failure):
            return added

    for key, value in extra.items():
        if key in body:
            return Failure(UnsupportedError(
                message=f"config.extra[{key!r}] collides with {key!r}, which llmbackend sets "
                "from the request; set it in one place only", provider=NAME, parameter=key,
            ))
        body[key] = value
    return Success(WireRequest(
        method="POST", path=MESSAGES_PATH, json=body,
        headers={"anthropic-version": API_VERSION}, warnings=tuple(warnings),
    ))


def build_stream(request: GenerationRequest) -> Result[WireRequest, LLMError]:
    """Pure: the same request as ``build_messages_request``, streamed: the same ``POST
    /v1/messages`` with ``"stream": true`` added to the body (the answer comes as server-sent
    events, read by ``read_stream``). Refused exactly as the whole call is."""
    return build_messages_request(request).map(
        lambda wire: evolve(wire, json={**wire.json, "stream": True}))


def _conversation(request: GenerationRequest, extra: Mapping[str, Any]
                  ) -> Result[tuple[list[dict[str, str]], tuple[str, ...]], LLMError]:
    """The ``messages`` of ``request``'s input and the system texts to lift into ``system``: a
    prompt is one user turn; a conversation's turns are kept in order, consecutive same-role
    turns merged (``TURN_SEPARATOR``). Fails (parameter ``input``) when the first turn is not
    the user's, or on a prefill the API refuses (``_prefill_problem``)."""
    source = request.input
    if isinstance(source, str):
        return Success(([{"role": "user", "content": source}], ()))
    system, turns = split_system(source)
    if not turns or turns[0].role != "user":
        return Failure(UnsupportedError(
            message="Anthropic's Messages API takes a conversation that starts with a user "
            "turn (after its system messages); this one starts with "
            + (f"an {turns[0].role} turn" if turns else "no turn at all")
            + ": add the user's turn first", provider=NAME, parameter="input",
        ))
    messages: list[dict[str, str]] = []
    for turn in turns:
        if messages and messages[-1]["role"] == turn.role:
            messages[-1]["content"] += TURN_SEPARATOR + turn.content
        else:
            messages.append({"role": turn.role, "content": turn.content})
    last = messages[-1]
    if last["role"] == "assistant":
        problem = _prefill_problem(request, extra, last["content"])
        if problem is not None:
            return Failure(UnsupportedError(
                message="the conversation ends with an assistant turn (a prefill, which the "
                f"answer would continue), but {problem}: end it with the user's turn",
                provider=NAME, parameter="input",
            ))
    return Success((messages, system))


def _prefill_problem(request: GenerationRequest, extra: Mapping[str, Any], text: str
                     ) -> str | None:
    """Why the Messages API would refuse a prefill of ``text`` with ``request``'s config, or
    ``None``: prefill is not available with structured outputs (the native format or the
    forced tool), nor with extended thinking, and Anthropic's own API refuses one that ends
    with whitespace."""
    if request.schema is not None:
        return "a prefill cannot be combined with a schema (structured outputs)"
    thinking = extra.get("thinking")
    if thinking is not None and not (isinstance(thinking, Mapping)
                                     and thinking.get("type") == "disabled"):
        return ("a prefill cannot be combined with extended thinking "
                "(config.extra['thinking'])")
    if text != text.rstrip() and not is_compatible_server(request):
        return "Anthropic's Messages API refuses a prefill that ends with whitespace"
    return None


def _sampling(request: GenerationRequest, extra: dict[str, Any], warnings: list[str]
              ) -> Result[tuple[float | None, float | None], LLMError]:
    """The ``temperature`` and ``top_p`` to send. Anthropic's own API takes no sampling
    parameter (``SAMPLING_PARAMETERS``): each one set fails, or is dropped from ``extra`` with a
    warning under ``drop_unsupported``; a compatible server (``server="compatible"``) gets them."""
    config = request.config
    if is_compatible_server(request):
        return Success((config.temperature, config.top_p))
    portable = {"temperature": config.temperature, "top_p": config.top_p}
    for name in SAMPLING_PARAMETERS:
        if portable.get(name) is None and name not in extra:
            continue
        where = f"config.{name}" if portable.get(name) is not None else f"config.extra[{name!r}]"
        refused = refuse_or_drop(
            request, extra, warnings, name=name, refusal=UnsupportedError(
                message=f"Anthropic's Messages API no longer takes {name!r}, so {where} cannot "
                "be honoured. Remove it, or create the client with "
                "drop_unsupported_params=True to drop it with a warning. (For a compatible "
                "server that takes it, such as vLLM, create the client with "
                "server='compatible'.)",
                provider=NAME, parameter=name),
            dropped=f"Anthropic's Messages API no longer takes {name!r}; it was dropped "
            "(drop_unsupported_params=True)")
        if refused is not None:
            return Failure(refused)
    return Success((None, None))


def structured_output_method(request: GenerationRequest) -> str:
    """Pure: ``"native"`` or ``"tool"``: how ``request``'s schema is asked for."""
    method = request.options.get("structured_output", "native")
    return method if method in STRUCTURED_OUTPUT_METHODS else "native"


def _add_structured_output(
    body: dict[str, Any], extra: dict[str, Any], request: GenerationRequest
) -> Result[None, LLMError]:
    schema = request.schema
    assert schema is not None
    adapted = adapt_schema(schema.schema)
    if structured_output_method(request) == "tool":
        # The forced-tool technique: one tool whose input is the answer, and the model made to
        # call it. https://docs.claude.com/en/docs/agents-and-tools/tool-use/overview
        for key in ("tools", "tool_choice"):
            if key in extra:
                return Failure(UnsupportedError(
                    message=f"config.extra[{key!r}] cannot be combined with a schema when "
                    "structured_output='tool': the schema is sent as the one forced tool",
                    provider=NAME, parameter=key,
                ))
        body["tools"] = [{
            "name": schema.name,
            "description": str(schema.schema.get("description")
                               or "Record the answer in this exact structure."),
            "input_schema": adapted,
        }]
        body["tool_choice"] = {"type": "tool", "name": schema.name}
        return Success(None)
    output_config = extra.pop("output_config", {})
    if not isinstance(output_config, Mapping) or "format" in output_config:
        return Failure(UnsupportedError(
            message="config.extra['output_config'] may carry other output options (e.g. "
            "effort) but not 'format' when a schema is given: the schema sets the format",
            provider=NAME, parameter="output_config",
        ))
    body["output_config"] = {**output_config,
                             "format": {"type": "json_schema", "schema": adapted}}
    return Success(None)


def adapt_schema(schema: Mapping[str, Any]) -> Schema:
    """Pure: ``schema`` rewritten to the JSON Schema subset Anthropic's structured outputs take.

    Objects get ``additionalProperties: false``; ``oneOf`` becomes ``anyOf`` and ``const`` a
    one-value ``enum``; a ``$ref`` loses its sibling keywords; string formats outside
    ``SUPPORTED_STRING_FORMATS`` and ``minItems`` above 1 are moved, with every other keyword the
    API does not take (``minimum``, ``maxLength``, ``pattern``, ``default``...), into the
    ``description``, where the model still reads them. The answer is validated against the
    original schema, so no constraint is lost.
    """
    return _adapt(dict(schema))


def _adapt(node: dict[str, Any]) -> Schema:
    if "$ref" in node:
        kept: Schema = {"$ref": node["$ref"]}
        for key in ("$defs", "definitions"):
            if isinstance(node.get(key), Mapping):
                kept[key] = {name: _adapt(dict(child)) for name, child in node[key].items()
                             if isinstance(child, Mapping)}
        return kept
    out: Schema = {}
    moved: dict[str, Any] = {}
    if "oneOf" in node and "anyOf" not in node:
        node["anyOf"] = node.pop("oneOf")
    if "const" in node and "enum" not in node:
        node["enum"] = [node.pop("const")]
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, Mapping):
            out[key] = {name: _adapt(dict(child)) if isinstance(child, Mapping) else child
                        for name, child in value.items()}
        elif key in ("anyOf", "allOf") and isinstance(value, list):
            out[key] = [_adapt(dict(child)) if isinstance(child, Mapping) else child
                        for child in value]
        elif key == "items" and isinstance(value, Mapping):
            out[key] = _adapt(dict(value))
        elif key == "additionalProperties":
            continue  # set below for objects; never anything but false
        elif key in _KEPT and not _beyond_the_subset(key, value):
            out[key] = value
        else:
            moved[key] = value
    if node.get("type") == "object" or "properties" in node:
        out["additionalProperties"] = False
    if moved:
        note = "{" + ", ".join(f"{key}: {json.dumps(value)}" for key, value in moved.items()) + "}"
        described = out.get("description")
        out["description"] = f"{described}\n\n{note}" if isinstance(described, str) else note
    return out


def _beyond_the_subset(key: str, value: object) -> bool:
    return (key == "format" and value not in SUPPORTED_STRING_FORMATS) or (
        key == "minItems" and value not in (0, 1))


# --- response -------------------------------------------------------------------------------------


def parse_message(
    request: GenerationRequest, response: WireResponse
) -> Result[Generation[str], LLMError]:
    """Pure: the text answer of a ``POST /v1/messages`` exchange, or the typed failure it reports.

    - non-2xx -> ``HTTPStatusError`` with Anthropic's error type and message (529 overloaded is
      retryable, like 429 and other 5xx);
    - ``stop_reason`` ``refusal`` -> ``RefusalError``; ``max_tokens`` or
      ``model_context_window_exceeded`` -> ``TruncationError`` with the partial text;
    - a tool call and no text -> ``ToolCallError`` (an ``UnsupportedError`` and an
      ``OutputError``: llmbackend returns text), except the one forced tool of
      ``structured_output="tool"``, whose input is the answer;
    - no text block at all (an empty ``content``, or only thinking, ``server_tool_use``, tool
      result blocks...) -> ``NoTextError`` naming the block types; an empty text block is an
      empty answer, ``Success('')``;
    - a body that is not a message -> ``ResponseParseError``.
    Never raises, whatever the bytes.
    """
    if not 200 <= response.status < 300:
        return Failure(parse_error(response))
    body = json_object(response.body)
    if body is None or not isinstance(body.get("content"), list):
        return Failure(ResponseParseError(
            message=f"{LABEL} answered HTTP {response.status} with a body that is not a message "
            "(no 'content' list)", provider=NAME, body=excerpt(response.body),
        ))
    return parse_message_object(request, body)


def parse_message_object(
    request: GenerationRequest, body: Mapping[str, Any]
) -> Result[Generation[str], LLMError]:
    """Pure: ``parse_message`` for a message already decoded (a batch result carries one)."""
    content = body.get("content")
    texts: list[str] = []
    tools: list[dict[str, Any]] = []
    kinds: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            kinds.append(type(block).__name__)
            continue
        kind = block.get("type")
        kinds.append(str(kind))
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            tools.append(block)
        # thinking / redacted_thinking and server tool blocks are skipped: they stay in ``raw``.
    text = "".join(texts)
    reason = body.get("stop_reason")
    if reason == "refusal":
        return Failure(RefusalError(
            message=f"the model refused{': ' + text if text else ''}", provider=NAME, text=text))
    if reason in ("max_tokens", "model_context_window_exceeded"):
        return Failure(TruncationError(
            message=f"the answer was cut off ({reason}) after {len(text)} characters; raise "
            "max_tokens to get all of it", provider=NAME, text=text))
    if reason == "pause_turn":
        return Failure(ProviderError(
            message="the model paused a long-running turn (stop_reason pause_turn); llmbackend "
            "does not continue turns", provider=NAME, error_type="pause_turn",
            body=excerpt_json(body)))
    schema = request.schema
    if schema is not None and structured_output_method(request) == "tool":
        forced = next((t for t in tools if t.get("name") == schema.name), None)
        if forced is not None:
            try:
                text = json.dumps(forced.get("input"), ensure_ascii=False)
            except (RecursionError, ValueError):
                return Failure(ResponseParseError(
                    message="the forced tool's input cannot be read as JSON (nested too deep)",
                    provider=NAME))
            tools = []
            texts.append(text)
    if not text and (tools or not texts):
        return Failure(answer_without_text(
            provider=NAME, label=LABEL, kinds=kinds, calls=[str(t.get("name")) for t in tools],
            body=body, container="'content' list"))
    model = body.get("model")
    message_id = body.get("id")
    return Success(Generation(
        text=text,
        parsed=text,
        usage=parse_usage(body.get("usage")),
        # A text answer that also calls tools (stop_reason tool_use) is returned as text, and
        # says so here; the calls are in ``raw``.
        finish_reason="tool_calls" if tools else "stop",
        provider=NAME,
        model=model if isinstance(model, str) else request.model,
        response_id=message_id if isinstance(message_id, str) else None,
        raw=body,
    ))


def parse_usage(usage: object) -> Usage:
    """Pure: token counts from a message's ``usage``, normalized (``Usage``): Anthropic's
    ``input_tokens`` are the uncached ones only, so ``cache_read_input_tokens`` and
    ``cache_creation_input_tokens`` are added to make ``input_tokens`` all of them; the
    writes' split by lifetime is ``cache_creation.ephemeral_5m_input_tokens`` /
    ``ephemeral_1h_input_tokens``; the thinking tokens among the output ones are
    ``output_tokens_details.thinking_tokens``, where the answer gives them."""
    if not isinstance(usage, dict):
        return Usage()
    uncached = read_count(usage.get("input_tokens"))
    read = read_count(usage.get("cache_read_input_tokens"))
    written = read_count(usage.get("cache_creation_input_tokens"))
    split = usage.get("cache_creation")
    split = split if isinstance(split, dict) else {}
    details = usage.get("output_tokens_details")
    tier = usage.get("service_tier")
    return Usage(
        input_tokens=None if uncached is None else uncached + (read or 0) + (written or 0),
        output_tokens=read_count(usage.get("output_tokens")),
        reasoning_tokens=read_count(details.get("thinking_tokens"))
        if isinstance(details, dict) else None,
        cached_input_tokens=read,
        cache_write_tokens=written,
        cache_write_5m_tokens=read_count(split.get("ephemeral_5m_input_tokens")),
        cache_write_1h_tokens=read_count(split.get("ephemeral_1h_input_tokens")),
        service_tier=tier if isinstance(tier, str) else None,
    )


def parse_error(response: WireResponse, route: str | None = None) -> HTTPStatusError:
    """Pure: an ``HTTPStatusError`` from a non-2xx response, with Anthropic's
    ``{"type": "error", "error": {"type", "message"}}`` fields where the body has them.

    ``route`` names a batch route the request went to: a 404/405 there without Anthropic's error
    object says the server lacks it, and to use an immediate batch."""
    body = json_object(response.body)
    error = body.get("error") if body is not None else None
    error_type: str | None = None
    if isinstance(error, dict):
        error_type = _text(error.get("type"))
        message = _text(error.get("message")) or ""
    else:
        message = excerpt(response.body, 300)
    retries = f" after {response.attempts} attempts" if response.attempts > 1 else ""
    hint = (missing_route_hint(LABEL, route) if route is not None
            and response.status in (404, 405) and not isinstance(error, dict) else "")
    return HTTPStatusError(
        message=f"{LABEL} answered HTTP {response.status}{retries}"
        + (f" ({error_type})" if error_type else "") + (f": {message}" if message else "")
        + hint,
        provider=NAME, status=response.status, error_type=error_type,
        attempts=response.attempts, body=excerpt(response.body),
        retry_after=retry_after_seconds(response.headers),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


PROVIDER = Provider(
    name=NAME,
    label=LABEL,
    default_base_url=BASE_URL,
    api_key_env=("ANTHROPIC_API_KEY",),
    base_url_env=("ANTHROPIC_BASE_URL",),
    auth_headers=build_auth_headers,
    build_generation=build_messages_request,
    parse_generation=parse_message,
    options={"structured_output": STRUCTURED_OUTPUT_METHODS, "server": SERVER_KINDS},
    build_stream=build_stream,
)
