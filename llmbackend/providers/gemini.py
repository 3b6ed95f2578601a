"""Pure: the Gemini Developer API's ``generateContent`` as request builders and response parsers.

Reference: https://ai.google.dev/api/generate-content and the structured output guide
(https://ai.google.dev/gemini-api/docs/structured-output). llmbackend speaks the REST API that the
``google-genai`` SDK speaks (the ``google-generativeai`` SDK the seed README names reached its end
of life on 2025-11-30 and never had the Batch API); no SDK is needed at run time.

Mapping of the portable config (into ``generationConfig``):
- ``temperature`` -> ``temperature``, ``top_p`` -> ``topP``, ``max_tokens`` ->
  ``maxOutputTokens``, ``seed`` -> ``seed``, ``extra["stop"]`` -> ``stopSequences``;
- ``extra["system_instruction"]`` (or ``extra["system"]``) -> ``systemInstruction``;
- ``extra`` keys that are request fields (``safetySettings``, ``tools``, ``toolConfig``,
  ``cachedContent``, in camelCase or snake_case) go to the top level of the request; every other
  ``extra`` key goes into ``generationConfig`` (``topK``, ``thinkingConfig``, ``candidateCount``,
  ``responseModalities``...), and ``extra["generationConfig"]`` is merged into it.

Messages (``build_contents``): each turn its own ``Content`` in ``contents``, ``user`` as
``user`` and ``assistant`` as ``model``, one text part each, in order (consecutive same-role
turns are sent as they are); system messages are lifted into ``systemInstruction`` (joined with
a blank line). A system message beside a config system prompt, and a trailing assistant turn (a
prefill: Gemini does not continue a ``model`` turn), are ``UnsupportedError``. A one-user-message
conversation builds the very body of its string.

Structured outputs: ``responseMimeType: application/json`` with ``responseJsonSchema`` (the JSON
schema as written, from a dict or a Pydantic model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from returns.result import Failure, Result, Success

from llmbackend.errors import (
    BlockedError,
    HTTPStatusError,
    LLMError,
    ProviderError,
    ResponseParseError,
    TruncationError,
    UnsupportedError,
    excerpt,
    excerpt_json,
)
from llmbackend.messages import Conversation, split_system
from llmbackend.providers import (
    Provider,
    answer_without_text,
    json_object,
    missing_route_hint,
    path_segment,
    read_count,
)
from llmbackend.retrying import retry_after_seconds
from llmbackend.types import Generation, GenerationRequest, Usage, WireRequest, WireResponse

__all__ = [
    "API_VERSION",
    "BASE_URL",
    "BLOCKED_REASONS",
    "CONTENT_ROLES",
    "LABEL",
    "NAME",
    "PROVIDER",
    "REQUEST_FIELDS",
    "SYSTEM_KEYS",
    "build_auth_headers",
    "build_contents",
    "build_generate_content",
    "build_request_body",
    "build_stream",
    "model_path",
    "parse_error",
    "parse_generate_content",
    "parse_response_object",
    "parse_usage",
    "part_kind",
]

NAME = "gemini"
LABEL = "Gemini"
BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"

#: ``extra`` keys that are fields of the request itself, not of ``generationConfig``.
REQUEST_FIELDS = {
    "safetySettings": "safetySettings", "safety_settings": "safetySettings",
    "tools": "tools", "toolConfig": "toolConfig", "tool_config": "toolConfig",
    "cachedContent": "cachedContent", "cached_content": "cachedContent",
    "labels": "labels",
}
#: ``finishReason`` values that mean the provider's safety or policy filters stopped the answer.
BLOCKED_REASONS = frozenset({
    "SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
})
_DONE_REASONS = frozenset({"STOP", "FINISH_REASON_UNSPECIFIED"})
#: The ``Content`` role of each non-system message role.
CONTENT_ROLES = {"user": "user", "assistant": "model"}
#: The ``extra`` keys that give the system instruction (one of them at most).
SYSTEM_KEYS = ("system_instruction", "systemInstruction", "system")


def build_auth_headers(api_key: str) -> dict[str, str]:
    """Pure: the header that carries a Gemini API key (never the URL: URLs end up in logs)."""
    return {"x-goog-api-key": api_key}


def model_path(model: str) -> str:
    """Pure: ``models/<model>`` (a name that already says ``models/`` or ``tunedModels/`` is kept),
    safe to put in a URL path."""
    name = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
    return path_segment(name, safe="/")


# --- request --------------------------------------------------------------------------------------


def build_generate_content(request: GenerationRequest) -> Result[WireRequest, LLMError]:
    """Pure: the ``POST /v1beta/models/{model}:generateContent`` request for one prompt.

    Fails with ``UnsupportedError`` naming the parameter when ``extra`` collides with a field
    llmbackend sets, or holds something the request cannot carry.
    """
    return _build_call(request, "generateContent")


def build_stream(request: GenerationRequest) -> Result[WireRequest, LLMError]:
    """Pure: the same request as ``build_generate_content``, streamed: ``POST
    /v1beta/models/{model}:streamGenerateContent?alt=sse`` with the same body (the answer comes
    as server-sent events, read by ``read_stream``)."""
    return _build_call(request, "streamGenerateContent?alt=sse")


def _build_call(request: GenerationRequest, method: str) -> Result[WireRequest, LLMError]:
    body = build_request_body(request)
    if isinstance(body, Failure):
        return body
    return Success(WireRequest(
        method="POST", path=f"/{API_VERSION}/{model_path(request.model)}:{method}",
        json=body.unwrap(),
    ))


def build_request_body(request: GenerationRequest) -> Result[dict[str, Any], LLMError]:
    """Pure: the ``GenerateContentRequest`` JSON for one prompt or conversation (also a batch
    item's request)."""
    config = request.config
    extra = dict(config.extra)
    if extra.pop("stream", False):
        return Failure(UnsupportedError(
            message="config.extra['stream']=True is not supported: to stream an answer, call "
            "llmbackend.stream", provider=NAME, parameter="stream"))
    given = next((key for key in SYSTEM_KEYS if key in extra), None)
    system = _pop_system(extra)
    if isinstance(system, Failure):
        return system
    built = build_contents(request.input, given)
    if isinstance(built, Failure):
        return built
    contents, lifted = built.unwrap()
    body: dict[str, Any] = {"contents": contents}
    instruction = lifted if lifted is not None else system.unwrap()
    if instruction is not None:
        body["systemInstruction"] = instruction

    generation: dict[str, Any] = {}
    for key in ("generationConfig", "generation_config"):
        merged = extra.pop(key, None)
        if merged is None:
            continue
        if not isinstance(merged, Mapping):
            return Failure(UnsupportedError(
                message=f"config.extra[{key!r}] must be a dict", provider=NAME, parameter=key))
        generation.update(merged)
    if config.temperature is not None:
        generation["temperature"] = config.temperature
    if config.top_p is not None:
        generation["topP"] = config.top_p
    if config.max_tokens is not None:
        generation["maxOutputTokens"] = config.max_tokens
    if config.seed is not None:
        generation["seed"] = config.seed
    stop = extra.pop("stop", None)
    if stop is not None:
        sequences = [stop] if isinstance(stop, str) else stop
        if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
            return Failure(UnsupportedError(
                message="config.extra['stop'] must be a string or a list of strings "
                "(it becomes stopSequences)", provider=NAME, parameter="stop"))
        generation["stopSequences"] = sequences
    if request.schema is not None:
        generation["responseMimeType"] = "application/json"
        generation["responseJsonSchema"] = dict(request.schema.schema)

    set_by_llmbackend = {_snake(name) for name in generation}
    for key, value in extra.items():
        field = REQUEST_FIELDS.get(key)
        target, name = (body, field) if field is not None else (generation, key)
        if name in body or _snake(name) in set_by_llmbackend:
            return Failure(UnsupportedError(
                message=f"config.extra[{key!r}] collides with {name!r}, which llmbackend sets "
                "from the request; set it in one place only", provider=NAME, parameter=key))
        target[name] = value
    if generation:
        body["generationConfig"] = generation
    return Success(body)


def build_contents(
    prompt: str | Conversation, system_key: str | None = None
) -> Result[tuple[list[dict[str, Any]], dict[str, Any] | None], LLMError]:
    """Pure: the ``contents`` of a prompt or a conversation, and the ``systemInstruction`` its
    system messages make (``None`` without any).

    ``system_key`` names the ``extra`` key that already gives a system instruction, if one
    does: a system message beside it is an ``UnsupportedError`` (parameter ``system``), as is
    a trailing assistant turn (parameter ``input``): Gemini does not continue a ``model`` turn.
    """
    if isinstance(prompt, str):
        return Success(([{"role": "user", "parts": [{"text": prompt}]}], None))
    system, turns = split_system(prompt)
    if system and system_key is not None:
        return Failure(UnsupportedError(
            message="give the system prompt once: as a system message or in "
            f"config.extra[{system_key!r}], not both", provider=NAME, parameter="system"))
    if turns and turns[-1].role == "assistant":
        return Failure(UnsupportedError(
            message=f"{LABEL} does not continue a trailing assistant turn (a prefill): end the "
            "messages with a user turn", provider=NAME, parameter="input"))
    contents = [{"role": CONTENT_ROLES[message.role], "parts": [{"text": message.content}]}
                for message in turns]
    return Success((contents, {"parts": [{"text": "\n\n".join(system)}]} if system else None))


def _pop_system(extra: dict[str, Any]) -> Result[dict[str, Any] | None, LLMError]:
    given = {key: extra.pop(key) for key in SYSTEM_KEYS if key in extra}
    if not given:
        return Success(None)
    if len(given) > 1:
        return Failure(UnsupportedError(
            message=f"set the system instruction once: {', '.join(sorted(given))} were all given",
            provider=NAME, parameter="system_instruction"))
    (key, value), = given.items()
    if isinstance(value, str):
        return Success({"parts": [{"text": value}]})
    if isinstance(value, Mapping) and isinstance(value.get("parts"), list):
        return Success(dict(value))
    return Failure(UnsupportedError(
        message=f"config.extra[{key!r}] must be a string (or a Content dict with 'parts')",
        provider=NAME, parameter=key))


def _snake(name: str) -> str:
    """``maxOutputTokens`` -> ``max_output_tokens``: proto JSON accepts both spellings."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


# --- response -------------------------------------------------------------------------------------


def parse_generate_content(
    request: GenerationRequest, response: WireResponse
) -> Result[Generation[str], LLMError]:
    """Pure: the text answer of a ``generateContent`` exchange, or the typed failure it reports.

    - non-2xx -> ``HTTPStatusError`` with Google's status (``INVALID_ARGUMENT``...) and reason;
    - ``promptFeedback.blockReason``, or a ``finishReason`` of ``SAFETY``, ``RECITATION``,
      ``PROHIBITED_CONTENT`` and the like -> ``BlockedError`` naming the reason;
    - ``MAX_TOKENS`` -> ``TruncationError`` with any partial text;
    - another unfinished ``finishReason`` (``OTHER``, ``MALFORMED_FUNCTION_CALL``...) ->
      ``ProviderError``; function calls and no text -> ``ToolCallError`` (an
      ``UnsupportedError`` and an ``OutputError``);
    - no text part at all (an empty ``candidates`` list, a candidate without parts, or parts
      such as ``inlineData`` or ``executableCode`` only) -> ``NoTextError`` naming the part
      kinds; an empty text part is an empty answer, ``Success('')``;
    - no ``candidates`` list at all (and no block reason) -> ``ResponseParseError``;
    - a body that is not a response -> ``ResponseParseError``.
    Never raises, whatever the bytes.
    """
    if not 200 <= response.status < 300:
        return Failure(parse_error(response))
    body = json_object(response.body)
    if body is None:
        return Failure(ResponseParseError(
            message=f"{LABEL} answered HTTP {response.status} with a body that is not a JSON "
            "object", provider=NAME, body=excerpt(response.body)))
    return parse_response_object(request, body)


def parse_response_object(
    request: GenerationRequest, body: Mapping[str, Any]
) -> Result[Generation[str], LLMError]:
    """Pure: ``parse_generate_content`` for a response already decoded (a batch carries them)."""
    feedback = body.get("promptFeedback")
    blocked = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if isinstance(blocked, str) and blocked != "BLOCK_REASON_UNSPECIFIED":
        return Failure(BlockedError(
            message=f"{LABEL} blocked the prompt ({blocked})", provider=NAME, reason=blocked))
    candidates = body.get("candidates")
    candidate = candidates[0] if isinstance(candidates, list) and candidates else None
    if not isinstance(candidates, list):  # as OpenAI's missing 'output': not a response
        return Failure(ResponseParseError(
            message=f"{LABEL} answered with a body that is not a response (no 'candidates' "
            "list)", provider=NAME, body=excerpt_json(body)))
    if candidate is None:
        return Failure(answer_without_text(provider=NAME, label=LABEL, kinds=(), body=body,
                                           container="'candidates' list"))
    if not isinstance(candidate, dict):
        return Failure(ResponseParseError(
            message=f"{LABEL} answered with a candidate that is not an object", provider=NAME,
            body=excerpt_json(body)))
    texts: list[str] = []
    calls: list[str] = []
    kinds: list[str] = []
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    for part in parts if isinstance(parts, list) else []:
        kinds.append(part_kind(part))
        if not isinstance(part, dict) or part.get("thought") is True:
            continue  # thought summaries stay in ``raw``
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part.get("functionCall"), dict):
            calls.append(str(part["functionCall"].get("name")))
    text = "".join(texts)
    reason = candidate.get("finishReason")
    if reason == "MAX_TOKENS":
        return Failure(TruncationError(
            message=f"the answer was cut off (MAX_TOKENS) after {len(text)} characters; raise "
            "max_tokens to get all of it", provider=NAME, text=text))
    if reason in BLOCKED_REASONS:
        return Failure(BlockedError(
            message=f"{LABEL} stopped the answer ({reason})", provider=NAME, text=text,
            reason=str(reason)))
    if reason is not None and reason not in _DONE_REASONS:
        message = candidate.get("finishMessage")
        return Failure(ProviderError(
            message=f"{LABEL} ended the answer with finishReason {reason}"
            + (f": {message}" if isinstance(message, str) else ""),
            provider=NAME, error_type=str(reason), body=excerpt_json(body)))
    if not text and (calls or not texts):
        return Failure(answer_without_text(
            provider=NAME, label=LABEL, kinds=kinds, calls=calls, body=body,
            container="candidate's parts"))
    model = body.get("modelVersion")
    response_id = body.get("responseId")
    return Success(Generation(
        text=text, parsed=text, usage=parse_usage(body.get("usageMetadata")),
        finish_reason="tool_calls" if calls else "stop", provider=NAME,
        model=model if isinstance(model, str) else request.model,
        response_id=response_id if isinstance(response_id, str) else None, raw=body,
    ))


#: Keys of a ``Part`` that are flags or metadata, not what the part holds.
_PART_METADATA = frozenset({"thought", "thoughtSignature", "partMetadata", "videoMetadata",
                            "mediaResolution", "audioMetadata", "documentMetadata",
                            "speechMetadata", "spreadsheetMetadata"})


def part_kind(part: object) -> str:
    """Pure: what a ``Part`` holds, for messages: ``thought`` for a thought summary, else its data
    field (``text``, ``inlineData``, ``functionCall``, ``executableCode``...)."""
    if not isinstance(part, dict):
        return type(part).__name__
    if part.get("thought") is True:
        return "thought"
    return next((str(key) for key in part if key not in _PART_METADATA), "empty part")


def parse_usage(usage: object) -> Usage:
    """Pure: token counts from ``usageMetadata``. ``promptTokenCount`` already includes the
    cached ones (``cachedContentTokenCount``); Gemini reports no cache writes (an explicit cache
    is made by its own request, and implicit caching writes for free). Output tokens include the
    thinking tokens (Gemini bills them as output), which are also given as
    ``reasoning_tokens``."""
    if not isinstance(usage, dict):
        return Usage()
    candidates = read_count(usage.get("candidatesTokenCount"))
    thoughts = read_count(usage.get("thoughtsTokenCount"))
    output = None if candidates is None and thoughts is None else (candidates or 0) + (
        thoughts or 0)
    return Usage(input_tokens=read_count(usage.get("promptTokenCount")), output_tokens=output,
                 reasoning_tokens=thoughts,
                 cached_input_tokens=read_count(usage.get("cachedContentTokenCount")))


def parse_error(response: WireResponse, route: str | None = None) -> HTTPStatusError:
    """Pure: an ``HTTPStatusError`` from a non-2xx response, with Google's
    ``{"error": {"code", "message", "status", "details": [{"reason"}]}}`` fields.

    ``route`` names a batch route the request went to: a 404/405 there without Google's error
    object says the server lacks it, and to use an immediate batch."""
    body = json_object(response.body)
    error = body.get("error") if body is not None else None
    status = reason = None
    if isinstance(error, dict):
        status = error.get("status") if isinstance(error.get("status"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else ""
        details = error.get("details")
        for detail in details if isinstance(details, list) else []:
            if isinstance(detail, dict) and isinstance(detail.get("reason"), str):
                reason = detail["reason"]
                break
    else:
        message = excerpt(response.body, 300)
    kind = "/".join(part for part in (status, reason) if part)
    retries = f" after {response.attempts} attempts" if response.attempts > 1 else ""
    hint = (missing_route_hint(LABEL, route) if route is not None
            and response.status in (404, 405) and not isinstance(error, dict) else "")
    return HTTPStatusError(
        message=f"{LABEL} answered HTTP {response.status}{retries}"
        + (f" ({kind})" if kind else "") + (f": {message}" if message else "") + hint,
        provider=NAME, status=response.status, error_type=status, error_code=reason,
        attempts=response.attempts, body=excerpt(response.body),
        retry_after=retry_after_seconds(response.headers),
    )


PROVIDER = Provider(
    name=NAME,
    label=LABEL,
    default_base_url=BASE_URL,
    api_key_env=("GOOGLE_API_KEY", "GEMINI_API_KEY"),
    base_url_env=("GOOGLE_GEMINI_BASE_URL", "GEMINI_BASE_URL"),
    auth_headers=build_auth_headers,
    build_generation=build_generate_content,
    parse_generation=parse_generate_content,
    build_stream=build_stream,
)
