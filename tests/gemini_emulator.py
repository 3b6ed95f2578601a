"""A loopback emulator of the Gemini Developer API (``generativelanguage.googleapis.com``, REST,
``v1beta``), for tests and benchmarks (127.0.0.1 only).

It is a real HTTP/1.1 server (keep-alive; request bodies with Content-Length or chunked) on a
random port, the sibling of ``tests.emulator.OpenAIEmulator`` and
``tests.anthropic_emulator.AnthropicEmulator``. ``base_url`` is the host alone
(``http://127.0.0.1:<port>``): paths start with ``/v1beta/...``, ``/upload/v1beta/...`` and
``/download/v1beta/...`` as Google's do (google-genai 3.x defaults to ``v1``: give it
``HttpOptions(api_version="v1beta")``, or widen ``api_versions``). The key goes in the
``x-goog-api-key`` header; a ``?key=`` in the URL is refused unless ``accept_query_key`` is set.

``POST /v1beta/models/{model}:generateContent`` parses its body the way Google's proto-JSON parser
does (camelCase and snake_case names, ``Unknown name "x" at '...': Cannot find field.``), checks
it (400 ``INVALID_ARGUMENT`` naming the field) and answers with a tiny deterministic "model": a
JSON response MIME type with a schema gets a small valid instance as compact JSON, a function
forced with ``toolConfig`` mode ``ANY`` gets a ``functionCall``, anything else echoes the last user
turn (``"Echo: <text>"``), cut at ``maxOutputTokens`` words (``MAX_TOKENS``) or before a stop
sequence (``STOP``). Tests can plant whole answers or errors per prompt (``overrides``,
``errors``), queue scripted replies that are served first, in order, on any route (``reply``),
slow every generateContent down (``latency``) and read how many were served at once
(``in_flight``, ``max_in_flight``). Every request is recorded (``requests``).

The Batch API (``models/{model}:batchGenerateContent``, ``batches/{id}``) takes inline requests
or a JSONL file uploaded through the Files API, walks a batch one step per retrieve (PENDING ->
RUNNING -> terminal) and keeps every batch in ``GeminiEmulator.batches``; how it ends (succeeded,
failed, cancelled, expired, which items fail, in which order responses come, which are missing,
doubled or lack their metadata) follows ``GeminiEmulator.batch_plan``, a ``GeminiBatchPlan``.

The Files API takes resumable uploads exactly as google-genai sends them (``start``, then
``upload, finalize`` on the returned ``x-goog-upload-url``), serves ``files/{id}`` resources and
lets only generated files (batch results) be downloaded.

Streaming: ``POST .../models/{model}:streamGenerateContent?alt=sse`` answers
``text/event-stream`` (chunked) with ``data: {chunk}\r\n\r\n`` events, as Google does: the
answer's text parts split over a few ``GenerateContentResponse`` chunks (other parts whole, in
order), each with ``modelVersion``, ``responseId`` and the prompt's ``usageMetadata``, the last
with ``finishReason`` and the whole ``usageMetadata``; merged, they are the very body
``generateContent`` answers (an answer with several candidates or none comes as one chunk).
Without ``alt=sse`` the same chunks come as one JSON array. Parsing, validation,
authentication, ``errors``, ``latency`` and scripted replies apply before the stream starts (an
error is JSON with its status). ``stream_fault(...)`` queues a ``tests.emulator.StreamFault``
for the next stream (cut before the last chunk, an ``{"error": ...}`` chunk (500 INTERNAL)
after the first text chunk, a trickle, a stall), as the OpenAI emulator's docstring describes.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
import re
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
from attrs import define, field

from tests.emulator import (
    Recorded,
    Scripted,
    StreamFault,
    StreamFaults,
    example_instance,
    faulted,
    quiet_on_reset,
    split_text,
    sse_event,
    write_stream,
)

__all__ = [
    "API_KEY",
    "API_VERSION",
    "BATCH_OUTPUT_TYPE",
    "BATCH_STATES",
    "BATCH_TYPE",
    "FILE_TTL_SECONDS",
    "MAX_CANDIDATES",
    "MAX_FILE_BYTES",
    "MAX_INLINE_BYTES",
    "MAX_STOP_SEQUENCES",
    "MISSING_MODEL",
    "RESPONSE_MIME_TYPES",
    "BatchItem",
    "EmulatedGeminiBatch",
    "GeminiBatchPlan",
    "GeminiEmulator",
    "Recorded",
    "Scripted",
    "StoredGeminiFile",
    "UploadSession",
    "default_answer",
    "error_body",
    "error_object",
    "example_instance",
    "last_user_text",
    "response_body",
    "timestamp",
    "to_json_schema",
    "truncate",
    "validate_request",
]

API_KEY = "AIza-test-emulator-0123456789"
API_VERSION = "v1beta"
MISSING_MODEL = "missing-model"  # answered 404 NOT_FOUND like generate_error_404_model_not_found
MAX_INLINE_BYTES = 20_000_000  # a request body (generateContent, an inline batch)
MAX_FILE_BYTES = 2 * 1024**3  # 2 GB per uploaded file
MAX_STOP_SEQUENCES = 5
MAX_CANDIDATES = 8
FILE_TTL_SECONDS = 48 * 3600  # files live 48 hours
SERVICE = "generativelanguage.googleapis.com"
_TYPE_PREFIX = "type.googleapis.com/google.ai.generativelanguage.v1main."
BATCH_TYPE = _TYPE_PREFIX + "GenerateContentBatch"
BATCH_OUTPUT_TYPE = _TYPE_PREFIX + "GenerateContentBatchOutput"
RESPONSE_MIME_TYPES = ("text/plain", "application/json", "application/xml", "application/yaml",
                       "text/x.enum")
BATCH_STATES = {"pending": "BATCH_STATE_PENDING", "running": "BATCH_STATE_RUNNING",
                "succeeded": "BATCH_STATE_SUCCEEDED", "failed": "BATCH_STATE_FAILED",
                "cancelled": "BATCH_STATE_CANCELLED", "expired": "BATCH_STATE_EXPIRED"}
_TERMINAL = frozenset(BATCH_STATES[name] for name in ("succeeded", "failed", "cancelled",
                                                       "expired"))
_WORD = re.compile(r"\S+")
_FILE_NAME = re.compile(r"^[a-z0-9-]{1,40}$")
_LOWER_ALNUM = string.ascii_lowercase + string.digits
_URL_SAFE = string.ascii_letters + string.digits + "-_"
_rng = random.Random(secrets.randbits(128))  # ids only: unpredictable enough, and fast


def _random_id(alphabet: str, length: int) -> str:
    return "".join(_rng.choices(alphabet, k=length))


def _response_id() -> str:
    return _random_id(_URL_SAFE, 23)  # like "SJfyaMbrNJKlqtsPvNOW8Ao"


def timestamp(seconds: float) -> str:
    """RFC 3339 with nanoseconds and ``Z``, as Google writes them:
    ``2026-07-21T16:05:49.689379878Z``."""
    whole = int(seconds)
    nanos = round((seconds - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return f"{datetime.fromtimestamp(whole, UTC):%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


# --- errors ---------------------------------------------------------------------------------------


def error_object(code: int, status: str, message: str, reason: str | None = None,
                 details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Google's error envelope ``{"error": {"code", "message", "status"}}``; a ``reason`` adds the
    ``ErrorInfo`` and ``LocalizedMessage`` details that generate_error_400_api_key_invalid has."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason is not None:
        details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                    "domain": "googleapis.com", "metadata": {"service": SERVICE}},
                   {"@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                    "locale": "en-US", "message": message}, *(details or [])]
    if details:
        error["details"] = details
    return {"error": error}


def error_body(code: int, status: str, message: str, reason: str | None = None) -> bytes:
    """``error_object`` as the bytes of an HTTP error body."""
    return json.dumps(error_object(code, status, message, reason), ensure_ascii=False).encode()


_JSON_TYPE = "application/json; charset=UTF-8"


def _json(status: int, value: Any, headers: Mapping[str, str] | None = None) -> Scripted:
    text = json.dumps(value, ensure_ascii=False)
    try:
        body = text.encode()
    except UnicodeEncodeError:  # a lone surrogate (a hostile batch id): JSON escapes it
        body = json.dumps(value).encode()
    return Scripted(status, body, {"Content-Type": _JSON_TYPE, **(headers or {})})


def _error(code: int, status: str, message: str, reason: str | None = None, *,
           details: list[dict[str, Any]] | None = None,
           headers: Mapping[str, str] | None = None) -> Scripted:
    return _json(code, error_object(code, status, message, reason, details), headers)


def _invalid(message: str, details: list[dict[str, Any]] | None = None,
             headers: Mapping[str, str] | None = None) -> Scripted:
    return _error(400, "INVALID_ARGUMENT", message, details=details, headers=headers)


def _model_not_found(model: str, method: str, version: str = API_VERSION) -> Scripted:
    return _error(404, "NOT_FOUND", f"models/{model} is not found for API version {version}, or "
                  f"is not supported for {method}. Call ListModels to see the list of available "
                  "models and their supported methods.")


def _no_file(file_id: str) -> Scripted:
    return _error(403, "PERMISSION_DENIED", f"You do not have permission to access the File "
                  f"{file_id} or it may not exist.")


# --- the tiny model -------------------------------------------------------------------------------


def _words(text: str) -> int:
    return len(text.split())


def truncate(text: str, max_tokens: int | None, stop_sequences: Collection[str] = ()
             ) -> tuple[str, str]:
    """``(text, finishReason)`` for a model that would say ``text``.

    A token is a whitespace-separated word. Generation stops at whichever comes first: the
    earliest stop sequence (cut before it, ``"STOP"``, as Gemini does) or the ``max_tokens``-th
    word (cut after it: ``"MAX_TOKENS"``); else the whole text, ``"STOP"``.
    """
    words = list(_WORD.finditer(text))
    limit = words[max_tokens - 1].end() if max_tokens and len(words) > max_tokens else None
    end = len(text) if limit is None else limit
    found: int | None = None
    for sequence in stop_sequences:
        at = text.find(sequence) if sequence else -1
        if 0 <= at < end and (found is None or at < found):
            found = at
    if found is not None:
        return text[:found], "STOP"
    if limit is not None:
        return text[:limit], "MAX_TOKENS"
    return text, "STOP"


def to_json_schema(schema: Any) -> Any:
    """A ``responseSchema`` (Google's OpenAPI subset: ``"type": "OBJECT"``, ``nullable``,
    ``propertyOrdering``) as the JSON Schema that ``example_instance`` reads."""
    if isinstance(schema, list):
        return [to_json_schema(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for name, value in schema.items():
        key = _camel(name)
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "properties" and isinstance(value, Mapping):
            out["properties"] = {prop: to_json_schema(sub) for prop, sub in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    order = out.pop("propertyOrdering", None)
    if isinstance(order, list) and isinstance(out.get("properties"), dict):
        props = out["properties"]
        out["properties"] = {**{k: props[k] for k in order if k in props},
                             **{k: v for k, v in props.items() if k not in order}}
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _part_texts(parts: Any) -> list[str]:
    return [part["text"] for part in parts or []
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
            and not part.get("thought")]


def last_user_text(request: Mapping[str, Any]) -> str:
    """The text of the last ``user`` turn (its text parts, thoughts left out, joined with nothing,
    as ``GenerateContentResponse.text`` joins them): the key of ``overrides`` and ``errors``."""
    contents = request.get("contents")
    for content in reversed(contents if isinstance(contents, list) else []):
        if isinstance(content, Mapping) and content.get("role", "user") in ("user", "", None):
            return "".join(_part_texts(content.get("parts")))
    return ""


def _prompt_tokens(request: Mapping[str, Any]) -> int:
    total = 0
    system = request.get("systemInstruction")
    if isinstance(system, Mapping):
        total += sum(_words(text) for text in _part_texts(system.get("parts")))
    for content in request.get("contents") or []:
        if isinstance(content, Mapping):
            total += sum(_words(text) for text in _part_texts(content.get("parts")))
    return max(1, total)


def response_body(model: str, text: str | None = None, *, finish_reason: str = "STOP",
                  parts: list[dict[str, Any]] | None = None, prompt_tokens: int = 1,
                  candidates_tokens: int | None = None, thoughts_tokens: int = 0,
                  candidate_count: int = 1, response_id: str | None = None) -> dict[str, Any]:
    """A generateContent response shaped like the recorded ones (keys in their order)."""
    parts = parts if parts is not None else [{"text": text or ""}]
    if candidates_tokens is None:
        candidates_tokens = sum(_words(p.get("text", "")) for p in parts if not p.get("thought"))
    candidates_tokens *= candidate_count
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens, "candidatesTokenCount": candidates_tokens,
        "totalTokenCount": prompt_tokens + candidates_tokens + thoughts_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]}
    if thoughts_tokens:
        usage["thoughtsTokenCount"] = thoughts_tokens
    return {
        "candidates": [{"content": {"parts": copy.deepcopy(parts), "role": "model"},
                        "finishReason": finish_reason, "index": index}
                       for index in range(candidate_count)],
        "usageMetadata": usage, "modelVersion": model,
        "responseId": response_id or _response_id()}


def _schema_of(config: Mapping[str, Any]) -> Any:
    if isinstance(config.get("responseJsonSchema"), Mapping):
        return config["responseJsonSchema"]
    if isinstance(config.get("responseSchema"), Mapping):
        return to_json_schema(config["responseSchema"])
    return None


def _forced_function(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The declaration ``toolConfig.functionCallingConfig`` mode ``ANY`` forces (the first of
    ``allowedFunctionNames``, or the first declared)."""
    config = request.get("toolConfig")
    calling = config.get("functionCallingConfig") if isinstance(config, Mapping) else None
    if not isinstance(calling, Mapping) or calling.get("mode") != "ANY":
        return None
    declared = [d for tool in request.get("tools") or [] if isinstance(tool, Mapping)
                for d in tool.get("functionDeclarations") or [] if isinstance(d, Mapping)]
    allowed = calling.get("allowedFunctionNames")
    if allowed:
        declared = [d for d in declared if d.get("name") in allowed]
    return declared[0] if declared else None


def default_answer(model: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """What the emulated model answers to a valid, normalized (camelCase) request."""
    config = request.get("generationConfig") or {}
    prompt = last_user_text(request)
    parts: list[dict[str, Any]] = []
    thoughts = 0
    thinking = config.get("thinkingConfig") or {}
    if thinking.get("includeThoughts"):
        thought = f"Thinking about: {prompt}"
        parts.append({"text": thought, "thought": True})
        thoughts = _words(thought)
    forced = _forced_function(request)
    if forced is not None:
        schema = forced.get("parametersJsonSchema")
        if schema is None:
            schema = to_json_schema(forced.get("parameters") or {"type": "object"})
        arguments = example_instance(schema)
        parts.append({"functionCall": {"name": forced.get("name"), "args": arguments}})
        finish, tokens = "STOP", max(1, _words(json.dumps(arguments)))
    else:
        mime, schema = config.get("responseMimeType"), _schema_of(config)
        if mime == "application/json":
            value = example_instance(schema) if schema is not None else "Echo: " + prompt
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        elif mime == "text/x.enum" and schema is not None and schema.get("enum"):
            text = str(schema["enum"][0])
        else:
            text = "Echo: " + prompt
        text, finish = truncate(text, config.get("maxOutputTokens"),
                                config.get("stopSequences") or ())
        parts.append({"text": text})
        tokens = _words(text)
    return response_body(model, parts=parts, finish_reason=finish,
                         prompt_tokens=_prompt_tokens(request), candidates_tokens=tokens,
                         thoughts_tokens=thoughts,
                         candidate_count=config.get("candidateCount") or 1)


# --- validation (Google's proto-JSON parser, then the API's own checks) ---------------------------


class _InvalidError(Exception):
    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


_KNOWN_REQUEST = frozenset({
    "model", "contents", "systemInstruction", "tools", "toolConfig", "safetySettings",
    "cachedContent", "generationConfig", "labels", "serviceTier", "store"})
_KNOWN_CONTENT = frozenset({"role", "parts"})
_PART_DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse",
              "executableCode", "codeExecutionResult")
_KNOWN_PART = frozenset({*_PART_DATA, "thought", "thoughtSignature", "videoMetadata",
                         "partMetadata", "mediaResolution"})
_KNOWN_GENERATION_CONFIG = frozenset({
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
    "responseModalities", "candidateCount", "maxOutputTokens", "temperature", "topP", "topK",
    "seed", "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs",
    "enableEnhancedCivicAnswers", "speechConfig", "thinkingConfig", "imageConfig",
    "mediaResolution"})
_KNOWN_THINKING = frozenset({"includeThoughts", "thinkingBudget", "thinkingLevel"})
_MODALITIES = ("TEXT", "IMAGE", "AUDIO")
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


class _Checker:
    """Checks one GenerateContentRequest at ``where`` (a snake_case proto path: ``""``, or
    ``batch.input_config.requests.requests[3].request`` in a batch) of a ``root`` message."""

    def __init__(self, where: str, root: str) -> None:
        self.where, self.root = where, root

    def at(self, *names: str) -> str:
        path = self.where
        for name in names:
            path = f"{path}{name}" if name.startswith("[") else _join(path, _snake(name))
        return path

    def problem(self, path: str, text: str) -> _InvalidError:
        return _InvalidError(f"* {self.root}.{path}: {text}\n", [
            {"@type": _BAD_REQUEST, "fieldViolations": [{"field": path, "description": text}]}])

    @staticmethod
    def fields(value: Any, path: str, known: Collection[str], kind: str) -> dict[str, Any]:
        """The object at ``path`` with camelCase names, as the proto-JSON parser reads it
        (snake_case accepted, unknown names refused)."""
        if not isinstance(value, dict):
            raise _InvalidError(f"Invalid value at '{path}' ({kind}), {json.dumps(value)}")
        out: dict[str, Any] = {}
        for name, item in value.items():
            camel = _camel(name)
            if camel not in known:
                at = f" at '{path}'" if path else ""
                message = f'Invalid JSON payload received. Unknown name "{name}"{at}: ' \
                          "Cannot find field."
                raise _InvalidError(message, [{"@type": _BAD_REQUEST, "fieldViolations": [
                    {"field": path, "description": message}]}])
            out[camel] = item
        return out

    @staticmethod
    def typed(value: Any, path: str, kind: str) -> Any:
        """A scalar as proto3 JSON reads it (numbers may come as strings), else the parser's
        ``Invalid value at '...' (TYPE_...)`` error."""
        bad = _InvalidError(f"Invalid value at '{path}' ({kind}), {json.dumps(value)}")
        if kind == "TYPE_STRING":
            if not isinstance(value, str):
                raise bad
            return value
        if kind == "TYPE_BOOL":
            if not isinstance(value, bool):
                raise bad
            return value
        if isinstance(value, bool):
            raise bad
        if isinstance(value, str):
            try:
                value = float(value) if kind == "TYPE_FLOAT" else int(value)
            except ValueError:
                raise bad from None
        if kind == "TYPE_FLOAT" and isinstance(value, int | float):
            return float(value)
        if kind == "TYPE_INT32" and isinstance(value, int):
            return value
        if kind == "TYPE_INT32" and isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad

    def parts(self, value: Any, path: str, owner: str) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise _InvalidError(f"Invalid value at '{path}' (type.googleapis.com/google.ai."
                                f"generativelanguage.v1beta.Part), {json.dumps(value)}")
        if not value:
            raise self.problem(path, f"{owner}.parts must not be empty.")
        parts = []
        for index, raw in enumerate(value):
            where = f"{path}[{index}]"
            part = self.fields(raw, where, _KNOWN_PART,
                               "type.googleapis.com/google.ai.generativelanguage.v1beta.Part")
            data = [name for name in _PART_DATA if name in part]
            if len(data) > 1:
                raise _InvalidError(f"Invalid JSON payload received. Oneof field 'data' is "
                                    f"already set. Cannot set '{data[1]}'")
            if "text" in part:
                self.typed(part["text"], f"{where}.text", "TYPE_STRING")
            if not data or part.get("text") == "":
                raise self.problem(f"{where}.data", "required oneof field 'data' must have one "
                                   "initialized field")
            if "thought" in part:
                self.typed(part["thought"], f"{where}.thought", "TYPE_BOOL")
            parts.append(part)
        return parts

    def contents(self, value: Any) -> list[dict[str, Any]]:
        path = self.at("contents")
        if value is None or value == []:
            raise self.problem(path, "contents is not specified")
        if not isinstance(value, list):
            raise _InvalidError(f"Invalid value at '{path}' (type.googleapis.com/google.ai."
                                f"generativelanguage.v1beta.Content), {json.dumps(value)}")
        contents = []
        for index, raw in enumerate(value):
            where = f"{path}[{index}]"
            content = self.fields(raw, where, _KNOWN_CONTENT,
                                  "type.googleapis.com/google.ai.generativelanguage.v1beta."
                                  "Content")
            role = content.get("role", "")
            if role is None:
                role = ""
            self.typed(role, f"{where}.role", "TYPE_STRING")
            if role not in ("", "user", "model"):
                raise _InvalidError("Please use a valid role: user, model.")
            contents.append({"role": role or "user",
                             "parts": self.parts(content.get("parts", []), f"{where}.parts",
                                                 "contents")})
        return contents

    def system_instruction(self, value: Any) -> dict[str, Any]:
        path = self.at("systemInstruction")
        content = self.fields(value, path, _KNOWN_CONTENT,
                              "type.googleapis.com/google.ai.generativelanguage.v1beta.Content")
        out: dict[str, Any] = {"parts": self.parts(content.get("parts", []), f"{path}.parts",
                                                   "system_instruction")}
        if content.get("role") is not None:
            out["role"] = self.typed(content["role"], f"{path}.role", "TYPE_STRING")
        return out

    def number(self, config: dict[str, Any], name: str, kind: str,
               low: float | None = None, high: float | None = None) -> None:
        if config.get(name) is None:
            return
        path = self.at("generationConfig", name)
        value = config[name] = self.typed(config[name], path, kind)
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"in the range [{low}, {high}]" if high is not None else f"at least {low}"
            raise self.problem(path, f"{_snake(name)} must be {bounds}, got {value}.")

    def generation_config(self, value: Any) -> dict[str, Any]:
        path = self.at("generationConfig")
        config = self.fields(value, path, _KNOWN_GENERATION_CONFIG,
                             "type.googleapis.com/google.ai.generativelanguage.v1beta."
                             "GenerationConfig")
        self.number(config, "temperature", "TYPE_FLOAT", 0.0, 2.0)
        self.number(config, "topP", "TYPE_FLOAT", 0.0, 1.0)
        self.number(config, "topK", "TYPE_INT32", 1)
        self.number(config, "maxOutputTokens", "TYPE_INT32", 1)
        self.number(config, "candidateCount", "TYPE_INT32", 1, MAX_CANDIDATES)
        self.number(config, "seed", "TYPE_INT32")
        self.number(config, "presencePenalty", "TYPE_FLOAT")
        self.number(config, "frequencyPenalty", "TYPE_FLOAT")
        self.number(config, "logprobs", "TYPE_INT32", 0, 20)
        if config.get("responseLogprobs") is not None:
            self.typed(config["responseLogprobs"], f"{path}.response_logprobs", "TYPE_BOOL")
        stops = config.get("stopSequences")
        if stops is not None:
            where = f"{path}.stop_sequences"
            if not isinstance(stops, list):
                stops = [stops]  # proto3 JSON takes a lone value for a repeated field
            for index, stop in enumerate(stops):
                self.typed(stop, f"{where}[{index}]", "TYPE_STRING")
            if len(stops) > MAX_STOP_SEQUENCES:
                raise self.problem(where, f"stop_sequences must have at most "
                                   f"{MAX_STOP_SEQUENCES} elements, got {len(stops)}.")
            config["stopSequences"] = stops
        mime = config.get("responseMimeType")
        if mime is not None:
            self.typed(mime, f"{path}.response_mime_type", "TYPE_STRING")
            if mime not in RESPONSE_MIME_TYPES:
                raise self.problem(f"{path}.response_mime_type", "allowed mimetypes are "
                                   + ", ".join(f"`{m}`" for m in RESPONSE_MIME_TYPES[:-1])
                                   + f" and `{RESPONSE_MIME_TYPES[-1]}`.")
        if config.get("responseSchema") is not None and \
                not isinstance(config["responseSchema"], dict):
            raise _InvalidError(f"Invalid value at '{path}.response_schema' (type.googleapis.com/"
                                "google.ai.generativelanguage.v1beta.Schema), "
                                f"{json.dumps(config['responseSchema'])}")
        if config.get("responseJsonSchema") is not None and \
                not isinstance(config["responseJsonSchema"], dict | bool):
            raise self.problem(f"{path}.response_json_schema",
                               "response_json_schema must be a JSON Schema object.")
        if config.get("responseSchema") is not None and \
                config.get("responseJsonSchema") is not None:
            raise self.problem(f"{path}.response_schema", "response_schema and "
                               "response_json_schema cannot both be set.")
        if (config.get("responseSchema") is not None
                or config.get("responseJsonSchema") is not None) and \
                mime not in ("application/json", "text/x.enum"):
            raise self.problem(f"{path}.response_mime_type", "response_mime_type must be "
                               "`application/json` (or `text/x.enum`) when a response schema is "
                               f"set, got {json.dumps(mime)}.")
        modalities = config.get("responseModalities")
        if modalities is not None:
            where = f"{path}.response_modalities"
            for index, modality in enumerate(modalities if isinstance(modalities, list)
                                             else [modalities]):
                if modality not in _MODALITIES:
                    raise _InvalidError(f"Invalid value at '{where}[{index}]' (type.googleapis."
                                        f"com/google.ai.generativelanguage.v1beta.GenerationConfig"
                                        f".Modality), {json.dumps(modality)}")
        if config.get("thinkingConfig") is not None:
            where = f"{path}.thinking_config"
            thinking = config["thinkingConfig"] = self.fields(
                config["thinkingConfig"], where, _KNOWN_THINKING,
                "type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig")
            if thinking.get("includeThoughts") is not None:
                self.typed(thinking["includeThoughts"], f"{where}.include_thoughts", "TYPE_BOOL")
            if thinking.get("thinkingBudget") is not None:
                thinking["thinkingBudget"] = self.typed(thinking["thinkingBudget"],
                                                        f"{where}.thinking_budget", "TYPE_INT32")
            if thinking.get("thinkingLevel") is not None:
                self.typed(thinking["thinkingLevel"], f"{where}.thinking_level", "TYPE_STRING")
        return config

    def request(self, body: Any) -> dict[str, Any]:
        request = self.fields(body, self.where, _KNOWN_REQUEST,
                              "type.googleapis.com/google.ai.generativelanguage.v1beta."
                              "GenerateContentRequest")
        out: dict[str, Any] = {**request, "contents": self.contents(request.get("contents"))}
        if request.get("model") is not None:
            self.typed(request["model"], self.at("model"), "TYPE_STRING")
        if request.get("systemInstruction") is not None:
            out["systemInstruction"] = self.system_instruction(request["systemInstruction"])
        if request.get("generationConfig") is not None:
            out["generationConfig"] = self.generation_config(request["generationConfig"])
        for name, kind in (("tools", "Tool"), ("safetySettings", "SafetySetting")):
            if request.get(name) is not None and not isinstance(request[name], list | dict):
                raise _InvalidError(f"Invalid value at '{self.at(name)}' (type.googleapis.com/"
                                    f"google.ai.generativelanguage.v1beta.{kind}), "
                                    f"{json.dumps(request[name])}")
        out["tools"] = [_camel_keys(tool) for tool in _as_list(request.get("tools"))]
        if request.get("toolConfig") is not None:
            out["toolConfig"] = _camel_keys(request["toolConfig"])
        return out


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _camel_keys(value: Any) -> Any:
    """Keys of tools and toolConfig in camelCase (schemas inside kept as sent)."""
    if isinstance(value, list):
        return [_camel_keys(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for name, item in value.items():
        key = _camel(name)
        out[key] = item if key in ("parameters", "parametersJsonSchema", "response",
                                   "responseJsonSchema") else _camel_keys(item)
    return out


def _normalize(body: Any, where: str = "", root: str = "GenerateContentRequest"
               ) -> dict[str, Any]:
    return _Checker(where, root).request(body)


def validate_request(request: Any, where: str = "", root: str = "GenerateContentRequest"
                     ) -> str | None:
    """``None`` if ``request`` is a valid GenerateContentRequest body, else the API's message
    (``* GenerateContentRequest.generation_config.temperature: ...``; the path under ``where``
    and the message root ``root`` inside a batch)."""
    try:
        _normalize(request, where, root)
    except _InvalidError as problem:
        return problem.message
    return None


# --- batches and files ----------------------------------------------------------------------------


@define
class GeminiBatchPlan:
    """How the emulated Batch API ends a batch (set ``GeminiEmulator.batch_plan`` first).

    The plan is copied (shallowly) into each batch when it is created
    (``EmulatedGeminiBatch.plan``); changing it afterwards touches only later batches.

    Items are named by their key: ``metadata["key"]`` of an inline request, ``key`` of a file line.

    - ``outcome``: ``"succeeded"`` runs every item. ``"expired"`` and ``"cancelled"`` run the
      first ``done`` items (input order) and end that way; items that did not run get no response
      at all (as the API gives none). ``"failed"`` ends the batch ``BATCH_STATE_FAILED`` with the
      top-level ``error`` ``failure`` (code, status, message) and no responses (an input file
      with a bad line fails whatever the outcome, with its own error).
    - ``done``: how many items ran before an expiry or cancel (also a user's cancel); ``None``:
      half, rounded down.
    - ``item_errors``: key -> (code, status, message): that item answers ``{"error": ...}``.
    - ``item_bodies``: key -> a whole generateContent response, that item's ``response``.
    - ``shuffle_seed``: when set, inline responses and result file lines come in a seeded
      shuffled order (the real API has been seen to return inline responses out of order).
    - ``finish_after``: the retrieve that shows the batch ended (default 2: the first retrieve
      is RUNNING, the second terminal); 1: the first retrieve; 0: the create answer itself.
    - ``omit``: keys whose response is left out (they still count in ``batchStats``).
    - ``duplicate``: keys whose response is written twice (the copy goes at the end).
    - ``drop_metadata``: inline responses come without their ``metadata`` (a client must then
      not fall back to matching by position). Inline mode only: file lines keep their ``key``.
    - ``failure``: the top-level ``error`` of a batch planned ``"failed"``.

    Other items answer what ``generateContent`` would (``overrides`` and ``errors`` apply).
    """

    outcome: Literal["succeeded", "failed", "cancelled", "expired"] = "succeeded"
    done: int | None = None
    item_errors: Mapping[str, tuple[int, str, str]] = field(factory=dict)
    item_bodies: Mapping[str, Mapping[str, Any]] = field(factory=dict)
    shuffle_seed: int | None = None
    finish_after: int = 2
    omit: Collection[str] = field(factory=set)
    duplicate: Collection[str] = field(factory=set)
    drop_metadata: bool = False
    failure: tuple[int, str, str] = (500, "INTERNAL", "The batch failed: an internal error "
                                     "occurred while processing it.")

    def ran(self, total: int, outcome: str) -> int:
        """How many items (in input order) ran for a batch of ``total`` that ends ``outcome``."""
        if outcome == "succeeded":
            return total
        if outcome == "failed":
            return 0
        return max(0, min(total, total // 2 if self.done is None else self.done))


@define
class BatchItem:
    """One request of a batch: its key (``None``: none), the inline ``metadata`` as sent, the
    normalized request, and (file mode) why the request is invalid."""

    key: str | None
    metadata: Any
    request: dict[str, Any]
    problem: str | None = None


@define
class EmulatedGeminiBatch:
    """A batch: its items, where it stands, and (once ended) its responses."""

    id: str
    plan: GeminiBatchPlan
    model: str
    items: list[BatchItem]
    api_object: dict[str, Any] = field(factory=dict)  # the Operation as GET answers it now
    display_name: str | None = None
    input_file: str | None = None  # "files/<id>" in file mode
    state: str = BATCH_STATES["pending"]
    create_time: float = 0.0
    update_time: float = 0.0
    end_time: float | None = None
    retrieves: int = 0
    cancel_requested: bool = False
    failure: tuple[int, str, str] | None = None  # a bad input file
    error: dict[str, Any] | None = None  # the top-level error of a FAILED batch
    output: dict[str, Any] | None = None  # metadata.output (and response, with its @type)
    stats: dict[str, str] = field(factory=dict)
    responses: list[dict[str, Any]] = field(factory=list)  # inline entries / file lines, served
    outcomes: dict[str, str] = field(factory=dict)  # key -> "response" | "error" | "not_run"

    @property
    def name(self) -> str:
        return f"batches/{self.id}"

    @property
    def mode(self) -> Literal["inline", "file"]:
        return "file" if self.input_file is not None else "inline"

    @property
    def ended(self) -> bool:
        return self.state in _TERMINAL


@define
class StoredGeminiFile:
    """An uploaded file, or a generated one (a batch's responses file)."""

    id: str
    mime_type: str
    content: bytes
    create_time: float
    display_name: str | None = None
    source: Literal["UPLOADED", "GENERATED"] = "UPLOADED"
    api_object: dict[str, Any] = field(factory=dict)

    @property
    def name(self) -> str:
        return f"files/{self.id}"

    def lines(self) -> list[dict[str, Any]]:
        """The content as JSONL, parsed."""
        return [json.loads(line) for line in self.content.splitlines() if line.strip()]


@define
class UploadSession:
    """A resumable upload between ``start`` and ``finalize``."""

    id: str
    file_id: str
    size: int
    mime_type: str
    display_name: str | None
    received: bytearray = field(factory=bytearray)


def _stats(request: int, successful: int = 0, failed: int = 0, pending: int = 0
           ) -> dict[str, str]:
    """``batchStats`` as proto3 JSON writes them: int64 as strings, zero counts left out."""
    counts = {"requestCount": request, "successfulRequestCount": successful,
              "failedRequestCount": failed, "pendingRequestCount": pending}
    return {name: str(value) for name, value in counts.items() if value}


def _item_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


# --- the server -----------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # many concurrent clients connect at once in benchmarks


_GENERATE_PATH = re.compile(r"^/[^/]+/models/[^/]+:(generateContent|streamGenerateContent)$")


def content_chunks(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stream chunks whose merge is ``body`` (a whole generateContent response): its one
    candidate's text parts split in pieces, one chunk each; the last carries ``finishReason``
    (and whatever else the candidate has) and the whole ``usageMetadata``."""
    candidates = body.get("candidates") or []
    if len(candidates) != 1:
        return [copy.deepcopy(dict(body))]
    candidate = candidates[0]
    content = candidate.get("content") or {}
    pieces: list[dict[str, Any]] = []
    for part in content.get("parts") or []:
        texts = split_text(part["text"]) if isinstance(part.get("text"), str) else []
        pieces += [{**part, "text": text} for text in texts] or [copy.deepcopy(part)]
    if not pieces:
        return [copy.deepcopy(dict(body))]
    usage = body.get("usageMetadata") or {}
    early_usage = {key: usage[key] for key in ("promptTokenCount", "promptTokensDetails")
                   if key in usage}
    rest = {key: value for key, value in body.items()
            if key not in ("candidates", "usageMetadata")}
    chunks: list[dict[str, Any]] = []
    for number, piece in enumerate(pieces):
        last = number == len(pieces) - 1
        shaped = {key: value for key, value in candidate.items() if key != "content"}
        if not last:
            shaped = {"index": candidate.get("index", 0)}
        chunk: dict[str, Any] = {"candidates": [{
            "content": {"parts": [piece], "role": content.get("role", "model")}, **shaped}]}
        chunk["usageMetadata"] = copy.deepcopy(usage if last else early_usage)
        chunks.append({**chunk, **copy.deepcopy(rest)})
    return chunks


def stream_error_event(_index: int) -> bytes:
    """The chunk Google sends when a stream fails midway (a 500 INTERNAL)."""
    return sse_event({"error": {"code": 500, "message": "Internal error encountered.",
                                "status": "INTERNAL"}}, newline="\r\n")


@define
class GeminiEmulator(StreamFaults):
    """The emulated API (see the module docstring). ``start()`` it, point a client at
    ``base_url`` with ``API_KEY`` (header ``x-goog-api-key``), ``stop()`` it."""

    API_KEY: ClassVar[str] = API_KEY

    api_key: str | None = API_KEY  # None: no authentication
    accept_query_key: bool = False  # True: ?key=<key> authenticates too (llmbackend never does)
    # The API authorizes the second step of a resumable upload by its upload_id (google-genai
    # sends no key there). A key sent there must still be right; True: it is required.
    upload_requires_key: bool = False
    api_versions: tuple[str, ...] = (API_VERSION,)  # e.g. ("v1beta", "v1") to take both
    requests: list[Recorded] = field(factory=list)
    script: deque[Scripted] = field(factory=deque)
    latency: float = 0.0  # seconds slept before answering each generateContent
    # Per prompt (the last user turn's text): a whole response body to answer instead, or an
    # error (code, status, message). Both apply to batch items too.
    overrides: dict[str, dict[str, Any]] = field(factory=dict)
    errors: dict[str, tuple[int, str, str]] = field(factory=dict)
    missing_models: set[str] = field(factory=lambda: {MISSING_MODEL})
    # Batches: set batch_plan before creating a batch; batches and files by id, in order.
    batch_plan: GeminiBatchPlan = field(factory=GeminiBatchPlan)
    batches: dict[str, EmulatedGeminiBatch] = field(factory=dict)
    # The ids the next batches get, in order (then random ones); a batch's name is batches/<id>.
    batch_ids: deque[str] = field(factory=deque)
    files: dict[str, StoredGeminiFile] = field(factory=dict)
    uploads: dict[str, UploadSession] = field(factory=dict)
    # Streaming: how the next streams go wrong, in order (see ``stream_fault``).
    stream_faults: deque[StreamFault] = field(factory=deque)
    max_inline_bytes: int = MAX_INLINE_BYTES
    max_file_bytes: int = MAX_FILE_BYTES
    clock: Callable[[], float] = time.time
    in_flight: int = 0  # generateContent requests being served now
    max_in_flight: int = 0  # the most at once since start (or since reset_counters)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(factory=threading.Lock)
    _flight_lock: threading.Lock = field(factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the emulator first"
        return f"http://127.0.0.1:{self._server.server_port}"

    def reply(self, status: int, body: bytes | Mapping[str, Any],
              headers: Mapping[str, str] | None = None, delay: float = 0.0) -> None:
        """Queue one scripted reply; scripted replies are served first, in order, on any route."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.script.append(Scripted(status, raw, dict(headers or {}), delay))

    def reset_counters(self) -> None:
        with self._flight_lock:
            self.max_in_flight = self.in_flight

    def _enter(self) -> None:
        with self._flight_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._flight_lock:
            self.in_flight -= 1

    def start(self) -> GeminiEmulator:
        emulator = self

        @quiet_on_reset
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms stall

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self._serve()

            def do_GET(self) -> None:
                self._serve()

            def do_DELETE(self) -> None:
                self._serve()

            def do_PATCH(self) -> None:
                self._serve()

            def do_PUT(self) -> None:
                self._serve()

            def _read_body(self) -> bytes:
                """The request body, sent with Content-Length or chunked."""
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline(65537).split(b";", 1)[0].strip(), 16)
                        if size == 0:
                            break
                        chunk = self.rfile.read(size)
                        if len(chunk) != size or self.rfile.readline(3).strip():
                            raise ValueError("a truncated or malformed chunk")
                        chunks.append(chunk)
                    while self.rfile.readline(65537).strip():
                        pass  # trailer fields, up to the blank line
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _serve(self) -> None:
                try:
                    body = self._read_body()
                except ValueError:
                    self.close_connection = True
                    self._send(Scripted(400, error_body(
                        400, "INVALID_ARGUMENT", "The request body could not be read."),
                        {"Connection": "close"}))
                    return
                recorded = Recorded(self.command, self.path,
                                    {k.lower(): v for k, v in self.headers.items()}, body,
                                    self.client_address[:2])
                counted = self.command == "POST" and bool(
                    _GENERATE_PATH.match(unquote(urlsplit(self.path).path)))
                if counted:
                    emulator._enter()
                try:
                    with emulator._lock:
                        emulator.requests.append(recorded)
                        scripted = emulator.script.popleft() if emulator.script else None
                    if scripted is None:
                        scripted = emulator.answer(recorded)
                    pause = scripted.delay + (emulator.latency if counted else 0.0)
                    if pause:
                        time.sleep(pause)
                    self._send(scripted)
                finally:
                    if counted:
                        emulator._leave()

            def _send(self, scripted: Scripted) -> None:
                try:
                    if scripted.stream is not None:
                        write_stream(self, scripted)
                        return
                    self.send_response(scripted.status)
                    for name, value in scripted.headers.items():
                        self.send_header(name, value)
                    if not any(name.lower() == "content-type" for name in scripted.headers):
                        self.send_header("Content-Type", _JSON_TYPE)
                    self.send_header("Content-Length", str(len(scripted.body)))
                    self.end_headers()
                    self.wfile.write(scripted.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- routing ----------------------------------------------------------------------------------

    def _route(self, method: str, path: str
               ) -> tuple[Callable[..., Scripted], tuple[Any, ...]] | None:
        parts = [unquote(part) for part in path.strip("/").split("/")]
        kind = parts[0] if parts[0] in ("upload", "download") else None
        if kind is not None:
            parts = parts[1:]
        if not parts or parts[0] not in self.api_versions:
            return None
        version, rest = parts[0], parts[1:]
        match kind, method, rest:
            case None, "POST", ["models", spec] if spec.endswith(":generateContent"):
                return self._generate, (spec.rpartition(":")[0], version)
            case None, "POST", ["models", spec] if spec.endswith(":streamGenerateContent"):
                return self._stream_generate, (spec.rpartition(":")[0], version)
            case None, "POST", ["models", spec] if spec.endswith(":batchGenerateContent"):
                return self._create_batch, (spec.rpartition(":")[0], version)
            case None, "GET", ["batches"]:
                return self._list_batches, ()
            case None, "GET", ["batches", batch_id] if ":" not in batch_id:
                return self._get_batch, (batch_id,)
            case None, "DELETE", ["batches", batch_id] if ":" not in batch_id:
                return self._delete_batch, (batch_id,)
            case None, "POST", ["batches", spec] if spec.endswith(":cancel"):
                return self._cancel_batch, (spec.rpartition(":")[0],)
            case "upload", "POST", ["files"]:
                return self._upload, (version,)
            case None, "GET", ["files"]:
                return self._list_files, ()
            case None | "download", "GET", ["files", spec] if spec.endswith(":download"):
                return self._download, (spec.rpartition(":")[0],)
            case None, "GET", ["files", file_id] if ":" not in file_id:
                return self._get_file, (file_id,)
            case None, "DELETE", ["files", file_id] if ":" not in file_id:
                return self._delete_file, (file_id,)
        return None

    @staticmethod
    def _key_invalid(message: str = "API key not valid. Please pass a valid API key.",
                     headers: Mapping[str, str] | None = None) -> Scripted:
        return _error(400, "INVALID_ARGUMENT", message, reason="API_KEY_INVALID",
                      headers=headers)

    def _authenticate(self, headers: Mapping[str, str], query: Mapping[str, list[str]],
                      required: bool = True) -> Scripted | None:
        """``None`` when the request may go on; else the API's API_KEY_INVALID answer."""
        if self.api_key is None:
            return None
        sent: list[str] = []
        if "key" in query:
            if not self.accept_query_key:
                return self._key_invalid(
                    "API key not valid. Please pass a valid API key. (This emulator refuses "
                    "API keys in the URL, ?key=...: send the x-goog-api-key header.)")
            sent += query["key"]
        if "x-goog-api-key" in headers:
            sent.append(headers["x-goog-api-key"])
        if (required and not sent) or any(key != self.api_key for key in sent):
            return self._key_invalid()
        return None

    def answer(self, recorded: Recorded) -> Scripted:
        """The emulated API: routing, authentication, then the route itself."""
        url = urlsplit(recorded.path)
        query = parse_qs(url.query, keep_blank_values=True)
        route = self._route(recorded.method, url.path)
        if route is None:
            return _error(404, "NOT_FOUND", f"The requested URL {url.path} was not found on "
                          "this server.")
        handler, args = route
        if handler == self._upload and "upload_id" in query:
            # the upload_id authorizes this step; a key sent along must still be right
            problem = self._authenticate(recorded.headers, query, self.upload_requires_key)
            if problem is not None:
                return Scripted(problem.status, problem.body,
                                {**problem.headers, "x-goog-upload-status": "final"})
        else:
            problem = self._authenticate(recorded.headers, query)
            if problem is not None:
                return problem
        return handler(recorded, query, *args)

    def _parse(self, recorded: Recorded) -> tuple[Any, Scripted | None]:
        if len(recorded.body) > self.max_inline_bytes:
            return None, _invalid(f"Request payload size exceeds the limit: "
                                  f"{self.max_inline_bytes} bytes.")
        try:
            return json.loads(recorded.body or b"{}"), None
        except ValueError as exc:
            return None, _invalid(f"Invalid JSON payload received. {exc}.")

    # --- generateContent --------------------------------------------------------------------------

    def answer_for(self, model: str, request: Mapping[str, Any]
                   ) -> tuple[int, str, str] | dict[str, Any]:
        """What a valid, normalized request gets: an error (code, status, message) or a body."""
        prompt = last_user_text(request)
        if prompt in self.errors:
            return self.errors[prompt]
        if prompt in self.overrides:
            return copy.deepcopy(self.overrides[prompt])
        return default_answer(model, request)

    def _stream_generate(self, recorded: Recorded, query: Mapping[str, list[str]], model: str,
                         version: str) -> Scripted:
        """``streamGenerateContent``: what ``generateContent`` answers, in chunks."""
        whole = self._generate(recorded, query, model, version, "streamGenerateContent")
        if whole.status != 200:
            return whole
        chunks = content_chunks(json.loads(whole.body))
        if query.get("alt", [""])[-1] != "sse":
            return _json(200, chunks)
        events = [sse_event(chunk, newline="\r\n") for chunk in chunks]
        first = next((index for index, chunk in enumerate(chunks) if any(
            "text" in part and not part.get("thought") for candidate in chunk["candidates"]
            for part in candidate["content"]["parts"])), 0) if len(events) > 1 else 0
        return Scripted(200, b"", stream=faulted(events, min(first, len(events) - 1),
                                                 stream_error_event, self._next_fault()))

    def _generate(self, recorded: Recorded, query: Mapping[str, list[str]], model: str,
                  version: str, method: str = "generateContent") -> Scripted:
        body, problem = self._parse(recorded)
        if problem is not None:
            return problem
        try:
            request = _normalize(body)
        except _InvalidError as invalid:
            return _invalid(invalid.message, invalid.details)
        if model.removeprefix("models/") in self.missing_models:
            return _model_not_found(model.removeprefix("models/"), method, version)
        answer = self.answer_for(model, request)
        if isinstance(answer, tuple):
            return _error(*answer)
        return _json(200, answer)

    # --- Batch API --------------------------------------------------------------------------------

    def _create_batch(self, recorded: Recorded, query: Mapping[str, list[str]], model: str,
                      version: str) -> Scripted:
        model = model.removeprefix("models/")
        body, problem = self._parse(recorded)
        if problem is not None:
            return problem
        root = "BatchGenerateContentRequest"
        checker = _Checker("", root)
        try:
            outer = checker.fields(body, "", {"batch"}, "BatchGenerateContentRequest")
            if outer.get("batch") is None:
                raise checker.problem("batch", "batch is not specified")
            batch = checker.fields(outer["batch"], "batch", {
                "name", "displayName", "model", "inputConfig", "priority", "webhookConfig"},
                "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch")
            named = batch.get("model")
            if named is not None and \
                    checker.typed(named, "batch.model", "TYPE_STRING").removeprefix(
                        "models/") != model:
                raise checker.problem("batch.model", f"the batch names model {named!r} but the "
                                      f"request URL names models/{model}.")
            display_name = batch.get("displayName")
            if display_name is not None:
                checker.typed(display_name, "batch.display_name", "TYPE_STRING")
            if batch.get("inputConfig") is None:
                raise checker.problem("batch.input_config", "input_config is not specified")
            source = checker.fields(batch["inputConfig"], "batch.input_config",
                                    {"requests", "fileName"},
                                    "type.googleapis.com/google.ai.generativelanguage.v1beta."
                                    "InputConfig")
            if ("requests" in source) == ("fileName" in source):
                raise checker.problem("batch.input_config", "exactly one of requests and "
                                      "file_name must be set.")
            if model in self.missing_models:
                return _model_not_found(model, "batchGenerateContent", version)
            items: list[BatchItem] = []
            file_id: str | None = None
            if "requests" in source:
                items = self._inline_items(source["requests"], model, root)
            else:
                file_id = checker.typed(source["fileName"], "batch.input_config.file_name",
                                        "TYPE_STRING").removeprefix("files/")
        except _InvalidError as invalid:
            return _invalid(invalid.message, invalid.details)
        with self._lock:
            failure = None
            if file_id is not None:
                file = self.files.get(file_id)
                if file is None:
                    return _no_file(file_id)
                items, failure = self._file_items(file)
            now = self.clock()
            batch_id = (self.batch_ids.popleft() if self.batch_ids
                        else _random_id(_LOWER_ALNUM, 36))
            emulated = EmulatedGeminiBatch(
                batch_id, attrs.evolve(self.batch_plan), model, items,
                display_name=display_name,
                input_file=None if file_id is None else f"files/{file_id}", create_time=now,
                update_time=now, failure=failure, stats=_stats(len(items), pending=len(items)))
            self.batches[batch_id] = emulated
            if emulated.plan.finish_after <= 0:
                self._finish(emulated)
            self._render(emulated)
            return _json(200, emulated.api_object)

    @staticmethod
    def _inline_items(value: Any, model: str, root: str) -> list[BatchItem]:
        checker = _Checker("", root)
        path = "batch.input_config.requests"
        wrapper = checker.fields(value, path, {"requests"},
                                 "type.googleapis.com/google.ai.generativelanguage.v1beta."
                                 "InlinedRequests")
        requests = wrapper.get("requests")
        if not requests:
            raise checker.problem(f"{path}.requests", "requests must not be empty.")
        if not isinstance(requests, list):
            requests = [requests]
        items = []
        for index, raw in enumerate(requests):
            where = f"{path}.requests[{index}]"
            item = checker.fields(raw, where, {"request", "metadata"},
                                  "type.googleapis.com/google.ai.generativelanguage.v1beta."
                                  "InlinedRequest")
            if item.get("request") is None:
                raise checker.problem(f"{where}.request", "request is not specified")
            request = _normalize(item["request"], f"{where}.request", root)
            named = request.get("model")
            if named is not None and named.removeprefix("models/") != model:
                raise checker.problem(f"{where}.request.model", f"the request names model "
                                      f"{named!r} but the batch runs models/{model}.")
            metadata = item.get("metadata")
            if metadata is not None and not isinstance(metadata, dict):
                raise _InvalidError(f"Invalid value at '{where}.metadata' (type.googleapis.com/"
                                    f"google.protobuf.Struct), {json.dumps(metadata)}")
            key = metadata.get("key") if isinstance(metadata, dict) else None
            items.append(BatchItem(key if isinstance(key, str) else None, metadata, request))
        return items

    @staticmethod
    def _file_items(file: StoredGeminiFile) -> tuple[list[BatchItem], tuple[int, str, str] | None]:
        """The items of a JSONL input file; a line that is not ``{"key": str, "request": {...}}``
        fails the whole batch (returned as the failure), an invalid request only its item."""
        items: list[BatchItem] = []
        failure: tuple[int, str, str] | None = None
        for number, raw in enumerate(file.content.split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                line = None
            problem = None
            if not isinstance(line, dict):
                problem = "it is not a JSON object"
            elif not isinstance(line.get("key"), str):
                problem = 'it has no string "key"'
            elif not isinstance(line.get("request"), dict):
                problem = 'it has no "request" object'
            elif set(line) - {"key", "request"}:
                problem = f"it has unknown fields {sorted(set(line) - {'key', 'request'})}"
            if problem is not None:
                failure = failure or (400, "INVALID_ARGUMENT", f"Line {number} of {file.name} is "
                                      f"not a valid batch request: {problem}.")
                items.append(BatchItem(None, None, {}))
                continue
            assert isinstance(line, dict)
            try:
                request = _normalize(line["request"])
                items.append(BatchItem(line["key"], None, request))
            except _InvalidError as invalid:
                items.append(BatchItem(line["key"], None, line["request"], invalid.message))
        if not items:
            failure = (400, "INVALID_ARGUMENT", f"{file.name} holds no requests.")
        return items, failure

    def _get_batch(self, recorded: Recorded, query: Mapping[str, list[str]], batch_id: str
                   ) -> Scripted:
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return self._no_batch()
            self._advance(batch)
            return _json(200, batch.api_object)

    def _list_batches(self, recorded: Recorded, query: Mapping[str, list[str]]) -> Scripted:
        with self._lock:
            operations = [b.api_object for b in reversed(self.batches.values())]
        return _json(200, self._page("operations", operations, query, 50, 1000))

    @staticmethod
    def _page(name: str, items: list[Any], query: Mapping[str, list[str]], default: int,
              most: int) -> dict[str, Any]:
        try:
            size = int(query.get("pageSize", [str(default)])[0]) or default
            start = int(query.get("pageToken", ["0"])[0] or 0)
        except ValueError:
            size, start = default, 0
        size = min(max(1, size), most)
        page: dict[str, Any] = {}
        if items[start:start + size]:
            page[name] = items[start:start + size]
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return page

    def _delete_batch(self, recorded: Recorded, query: Mapping[str, list[str]], batch_id: str
                      ) -> Scripted:
        with self._lock:
            if self.batches.pop(batch_id, None) is None:
                return self._no_batch()
        return _json(200, {})

    def _cancel_batch(self, recorded: Recorded, query: Mapping[str, list[str]], batch_id: str
                      ) -> Scripted:
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return self._no_batch()
            if batch.ended:
                return _error(400, "FAILED_PRECONDITION", f"Batch {batch.name} has already "
                              f"ended ({batch.state}) and cannot be cancelled.")
            batch.cancel_requested = True
            batch.update_time = self.clock()
            self._render(batch)
        return _json(200, {})

    @staticmethod
    def _no_batch() -> Scripted:
        return _error(404, "NOT_FOUND", "Requested entity was not found.")

    def _advance(self, batch: EmulatedGeminiBatch) -> None:
        """One retrieve: RUNNING until the plan's ``finish_after``-th (or a cancel), then the
        end."""
        if batch.ended:
            return
        batch.retrieves += 1
        batch.update_time = self.clock()
        if batch.cancel_requested or batch.retrieves >= batch.plan.finish_after:
            self._finish(batch)
        else:
            batch.state = BATCH_STATES["running"]
        self._render(batch)

    def _run(self, batch: EmulatedGeminiBatch, item: BatchItem) -> dict[str, Any]:
        """``{"response": ...}`` or ``{"error": ...}`` for one item that ran."""
        plan = batch.plan
        if item.key is not None and item.key in plan.item_errors:
            return _item_error(*plan.item_errors[item.key])
        if item.key is not None and item.key in plan.item_bodies:
            return {"response": copy.deepcopy(dict(plan.item_bodies[item.key]))}
        if item.problem is not None:
            return _item_error(400, "INVALID_ARGUMENT", item.problem)
        answer = self.answer_for(batch.model, item.request)
        if isinstance(answer, tuple):
            return _item_error(*answer)
        return {"response": answer}

    def _finish(self, batch: EmulatedGeminiBatch) -> None:
        """The terminal state, with the responses (inline or a generated file) the plan asks
        for."""
        plan, total = batch.plan, len(batch.items)
        now = self.clock()
        batch.end_time = batch.update_time = now
        if batch.cancel_requested:
            outcome = "cancelled"
        elif batch.failure is not None:
            outcome = "failed"
        else:
            outcome = plan.outcome
        batch.state = BATCH_STATES[outcome]
        if outcome == "failed":
            code, status, message = batch.failure or plan.failure
            batch.error = {"code": code, "message": message, "status": status}
            batch.stats = _stats(total)
            for item in batch.items:
                if item.key is not None:
                    batch.outcomes[item.key] = "not_run"
            return
        ran = plan.ran(total, outcome)
        entries: list[dict[str, Any]] = []
        doubled: list[dict[str, Any]] = []
        succeeded = failed = 0
        for index, item in enumerate(batch.items):
            if index >= ran:
                if item.key is not None:
                    batch.outcomes[item.key] = "not_run"
                continue
            result = self._run(batch, item)
            kind = "error" if "error" in result else "response"
            if kind == "error":
                failed += 1
            else:
                succeeded += 1
            if batch.mode == "file":
                entry = {"key": item.key, **result}
            else:
                entry = dict(result)
                if item.metadata is not None and not plan.drop_metadata:
                    entry["metadata"] = copy.deepcopy(item.metadata)
            if item.key is not None:
                batch.outcomes[item.key] = kind
            if item.key not in plan.omit:
                entries.append(entry)
            if item.key in plan.duplicate:
                doubled.append(copy.deepcopy(entry))
        entries += doubled
        if plan.shuffle_seed is not None:
            random.Random(plan.shuffle_seed).shuffle(entries)
        batch.responses = entries
        batch.stats = _stats(total, succeeded, failed, total - ran)
        if ran == 0:
            return  # nothing ran: no responses at all
        if batch.mode == "inline":
            batch.output = {"inlinedResponses": {"inlinedResponses": entries} if entries else {}}
            return
        content = "".join(json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n"
                          for entry in entries).encode()
        file = self._store(f"batch-{batch.id}", "application/jsonl", content, None, "GENERATED")
        batch.output = {"responsesFile": file.name}

    def _render(self, batch: EmulatedGeminiBatch) -> None:
        """The Operation as the API shows it now, keys in the recorded order."""
        metadata: dict[str, Any] = {"@type": BATCH_TYPE, "model": f"models/{batch.model}"}
        if batch.display_name is not None:
            metadata["displayName"] = batch.display_name
        if batch.input_file is not None:
            metadata["inputConfig"] = {"fileName": batch.input_file}
        if batch.output is not None:
            metadata["output"] = copy.deepcopy(batch.output)
        metadata["createTime"] = timestamp(batch.create_time)
        if batch.end_time is not None:
            metadata["endTime"] = timestamp(batch.end_time)
        metadata["updateTime"] = timestamp(batch.update_time)
        metadata["batchStats"] = dict(batch.stats)
        metadata["state"] = batch.state
        metadata["name"] = batch.name
        operation: dict[str, Any] = {"name": batch.name, "metadata": metadata}
        if batch.ended:
            operation["done"] = True
        if batch.error is not None:
            operation["error"] = dict(batch.error)
        if batch.output is not None:
            operation["response"] = {"@type": BATCH_OUTPUT_TYPE, **copy.deepcopy(batch.output)}
        batch.api_object = operation

    # --- Files API --------------------------------------------------------------------------------

    def _store(self, file_id: str, mime_type: str, content: bytes, display_name: str | None,
               source: Literal["UPLOADED", "GENERATED"]) -> StoredGeminiFile:
        """Keep a file (called with the lock held) and build its resource."""
        now = self.clock()
        file = StoredGeminiFile(file_id, mime_type, content, now, display_name, source)
        resource: dict[str, Any] = {"name": file.name}
        if display_name is not None:
            resource["displayName"] = display_name
        resource.update({
            "mimeType": mime_type, "sizeBytes": str(len(content)),
            "createTime": timestamp(now), "updateTime": timestamp(now),
            "expirationTime": timestamp(now + FILE_TTL_SECONDS),
            "sha256Hash": base64.b64encode(hashlib.sha256(content).hexdigest().encode()).decode(),
            "uri": f"{self.base_url}/{API_VERSION}/files/{file_id}"})
        if source == "GENERATED":
            resource["downloadUri"] = (f"{self.base_url}/download/{API_VERSION}/files/"
                                       f"{file_id}:download?alt=media")
        resource.update({"state": "ACTIVE", "source": source})
        file.api_object = resource
        self.files[file_id] = file
        return file

    def _upload(self, recorded: Recorded, query: Mapping[str, list[str]], version: str
                ) -> Scripted:
        if "upload_id" in query:
            with self._lock:
                return self._upload_step(recorded, query["upload_id"][0], version)
        headers = recorded.headers
        protocol = headers.get("x-goog-upload-protocol", "").lower()
        command = headers.get("x-goog-upload-command", "").lower()
        if protocol != "resumable" or command != "start":
            return _invalid("This emulator takes resumable uploads only: send "
                            "X-Goog-Upload-Protocol: resumable and X-Goog-Upload-Command: start "
                            f"(got {protocol or 'none'!r} and {command or 'none'!r}).")
        try:
            size = int(headers["x-goog-upload-header-content-length"])
        except (KeyError, ValueError):
            return _invalid("X-Goog-Upload-Header-Content-Length must give the size of the file "
                            "in bytes.")
        body, problem = self._parse(recorded)
        if problem is not None:
            return problem
        checker = _Checker("", "CreateFileRequest")
        try:
            outer = checker.fields(body, "", {"file"}, "CreateFileRequest")
            meta = checker.fields(outer.get("file") or {}, "file", {
                "name", "displayName", "mimeType", "sizeBytes", "source"},
                "type.googleapis.com/google.ai.generativelanguage.v1beta.File")
            if meta.get("sizeBytes") is not None and \
                    checker.typed(meta["sizeBytes"], "file.size_bytes", "TYPE_INT32") != size:
                raise checker.problem("file.size_bytes", f"size_bytes ({meta['sizeBytes']}) "
                                      "does not match X-Goog-Upload-Header-Content-Length "
                                      f"({size}).")
            mime = meta.get("mimeType") or headers.get("x-goog-upload-header-content-type")
            if not mime:
                raise checker.problem("file.mime_type", "the MIME type is not specified: send "
                                      "X-Goog-Upload-Header-Content-Type or file.mime_type.")
            display_name = meta.get("displayName")
            name = meta.get("name")
        except _InvalidError as invalid:
            return _invalid(invalid.message, invalid.details)
        if size < 0 or size > self.max_file_bytes:
            return _invalid(f"The file is {size} bytes; files may be at most "
                            f"{self.max_file_bytes} bytes.")
        file_id = _random_id(_LOWER_ALNUM, 12)
        if name is not None:
            file_id = str(name).removeprefix("files/")
            if not _FILE_NAME.match(file_id):
                return _invalid(f"* CreateFileRequest.file.name: the name {name!r} must be "
                                "files/ followed by up to 40 lowercase letters, digits or "
                                "dashes.\n")
        with self._lock:
            if file_id in self.files or any(s.file_id == file_id for s in self.uploads.values()):
                return _error(409, "ALREADY_EXISTS", f"A file named files/{file_id} already "
                              "exists.")
            session = UploadSession(_random_id(_URL_SAFE, 64), file_id, size, mime, display_name)
            self.uploads[session.id] = session
        url = f"{self.base_url}/upload/{version}/files?upload_id={session.id}" \
              "&upload_protocol=resumable"
        return Scripted(200, b"", {
            "Content-Type": "text/plain; charset=utf-8", "x-goog-upload-status": "active",
            "x-goog-upload-url": url, "x-goog-upload-control-url": url,
            "x-goog-upload-chunk-granularity": str(8 * 1024 * 1024)})

    def _upload_step(self, recorded: Recorded, upload_id: str, version: str) -> Scripted:
        """``upload``, ``finalize`` (together or apart), ``query`` or ``cancel`` on a session
        (called with the lock held)."""
        session = self.uploads.get(upload_id)
        final = {"x-goog-upload-status": "final"}
        if session is None:
            return _error(404, "NOT_FOUND", "No upload session has this upload_id (it was "
                          "finalized, cancelled or never started).", headers=final)
        commands = {c.strip().lower() for c in
                    recorded.headers.get("x-goog-upload-command", "").split(",") if c.strip()}
        if not commands or commands - {"upload", "finalize", "query", "cancel"}:
            del self.uploads[upload_id]
            return _invalid("X-Goog-Upload-Command must be upload, finalize, query or cancel "
                            f"(got {recorded.headers.get('x-goog-upload-command')!r}).",
                            headers=final)
        if "query" in commands:
            return Scripted(200, b"", {"x-goog-upload-status": "active",
                                       "x-goog-upload-size-received": str(len(session.received))})
        if "cancel" in commands:
            del self.uploads[upload_id]
            return Scripted(200, b"", {"x-goog-upload-status": "cancelled"})
        if "upload" in commands:
            try:
                offset = int(recorded.headers.get("x-goog-upload-offset", ""))
            except ValueError:
                offset = -1
            if offset != len(session.received):
                del self.uploads[upload_id]
                return _invalid(f"X-Goog-Upload-Offset is {offset}, but "
                                f"{len(session.received)} bytes were received so far.",
                                headers=final)
            session.received += recorded.body
            if len(session.received) > session.size:
                del self.uploads[upload_id]
                return _invalid(f"The upload ({len(session.received)} bytes so far) exceeds "
                                "X-Goog-Upload-Header-Content-Length "
                                f"({session.size} bytes).", headers=final)
        if "finalize" not in commands:
            return Scripted(200, b"", {"x-goog-upload-status": "active"})
        del self.uploads[upload_id]
        if len(session.received) != session.size:
            return _invalid(f"The upload size ({len(session.received)} bytes) does not match "
                            f"X-Goog-Upload-Header-Content-Length ({session.size} bytes).",
                            headers=final)
        file = self._store(session.file_id, session.mime_type, bytes(session.received),
                           session.display_name, "UPLOADED")
        return _json(200, {"file": file.api_object}, final)

    def _get_file(self, recorded: Recorded, query: Mapping[str, list[str]], file_id: str
                  ) -> Scripted:
        with self._lock:
            file = self.files.get(file_id)
            return _no_file(file_id) if file is None else _json(200, file.api_object)

    def _list_files(self, recorded: Recorded, query: Mapping[str, list[str]]) -> Scripted:
        with self._lock:
            files = [f.api_object for f in reversed(self.files.values())]
        return _json(200, self._page("files", files, query, 10, 100))

    def _delete_file(self, recorded: Recorded, query: Mapping[str, list[str]], file_id: str
                     ) -> Scripted:
        with self._lock:
            if self.files.pop(file_id, None) is None:
                return _no_file(file_id)
        return _json(200, {})

    def _download(self, recorded: Recorded, query: Mapping[str, list[str]], file_id: str
                  ) -> Scripted:
        with self._lock:
            file = self.files.get(file_id)
        if file is None:
            return _no_file(file_id)
        if query.get("alt") != ["media"]:
            return _invalid("A download needs ?alt=media.")
        if file.source != "GENERATED":
            return _invalid(f"Only generated files can be downloaded; {file.name} was uploaded "
                            f"(source {file.source}).")
        return Scripted(200, file.content, {"Content-Type": file.mime_type})
