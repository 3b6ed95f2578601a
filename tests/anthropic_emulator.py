"""A loopback emulator of Anthropic's Messages and Message Batches APIs, for tests and benchmarks
(127.0.0.1 only).

It is a real HTTP/1.1 server (keep-alive; request bodies with Content-Length or chunked) on a
random port, the sibling of ``tests.emulator.OpenAIEmulator``. Base URLs are the host alone
(``http://127.0.0.1:<port>``): paths start with ``/v1/...`` as Anthropic's do.

``POST /v1/messages`` validates its body the way the API does (400 ``invalid_request_error``
naming the field) and answers with a tiny deterministic "model": a forced tool gets a
``tool_use`` block with a small valid input, a ``json_schema`` output format gets a small valid
instance as compact JSON, anything else echoes the last user message (``"Echo: <text>"``), cut at
``max_tokens`` words or before a stop sequence. Tests can plant whole answers or errors per prompt
(``message_overrides``, ``message_errors``), queue scripted replies that are served first, in
order, for any route (``reply``), slow every message down (``latency``) and read how many were
served at once (``in_flight``, ``max_in_flight``). Every request is recorded (``requests``).

The Message Batches API (``/v1/messages/batches``) validates a batch at create, walks it one step
per retrieve (``in_progress`` -> ``ended``, or ``canceling`` -> ``ended`` after a cancel), serves
the results as JSONL from the absolute ``results_url`` and keeps every batch in
``AnthropicEmulator.batches``; how a batch ends (completed, expired, canceled, which items fail,
which lines are shuffled, missing or doubled) follows ``AnthropicEmulator.batch_plan``, a
``MessageBatchPlan``.

Streaming: ``POST /v1/messages`` with ``"stream": true`` answers ``text/event-stream`` (chunked)
the way the API does: ``message_start`` (the message with no content and ``output_tokens`` 1),
per block ``content_block_start``, a ``ping`` after the first, a few ``content_block_delta``
(``text_delta``, ``input_json_delta``, ``thinking_delta`` + ``signature_delta``),
``content_block_stop``, then ``message_delta`` (stop reason and the cumulative usage) and
``message_stop``: what the SDK accumulates is the very message the call answers without
streaming. Validation, authentication, ``message_errors``, ``latency`` and scripted replies
apply before the stream starts (an error is JSON with its status, as without streaming).
``stream_fault(...)`` queues a ``tests.emulator.StreamFault`` for the next stream (cut before
``message_stop``, an ``error`` event (``overloaded_error``) after the first delta, a trickle, a
stall), as the OpenAI emulator's docstring describes. A batch item may not stream (400).
"""

from __future__ import annotations

import copy
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
from attrs import define, field

from tests.emulator import (
    Recorded,
    Scripted,
    StreamFault,
    StreamFaults,
    _hex,
    example_instance,
    faulted,
    quiet_on_reset,
    split_text,
    sse_event,
    write_stream,
)

__all__ = [
    "ANTHROPIC_VERSION",
    "API_KEY",
    "BATCH_WINDOW_SECONDS",
    "CUSTOM_ID_PATTERN",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_REQUESTS",
    "MISSING_MODEL",
    "AnthropicEmulator",
    "EmulatedMessageBatch",
    "MessageBatchPlan",
    "Recorded",
    "Scripted",
    "default_message",
    "error_body",
    "error_object",
    "example_instance",
    "last_user_text",
    "message_body",
    "text_of",
    "truncate",
    "usage_object",
    "validate_params",
]

API_KEY = "sk-ant-test-emulator-0123456789"
ANTHROPIC_VERSION = "2023-06-01"  # the documented header value; any is accepted, none is a 400
MISSING_MODEL = "missing-model"  # answered 404 not_found_error "model: missing-model"
MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256_000_000  # 256 MB
BATCH_WINDOW_SECONDS = 24 * 3600
CUSTOM_ID_PATTERN = "^[a-zA-Z0-9_-]{1,64}$"
_CUSTOM_ID = re.compile(CUSTOM_ID_PATTERN)
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_WORD = re.compile(r"\S+")
_ROLES = ("user", "assistant")
_TOOL_CHOICES = ("auto", "any", "tool", "none")
_RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")


# --- bodies ---------------------------------------------------------------------------------------


def error_object(message: str, error_type: str) -> dict[str, Any]:
    """Anthropic's error object without a request id, as batch results carry it."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def error_body(message: str, error_type: str, request_id: str | None = None) -> bytes:
    """An HTTP error body: ``{"type":"error","error":{...},"request_id":"req_..."}``."""
    return json.dumps({**error_object(message, error_type),
                       "request_id": request_id or _request_id()}).encode()


def usage_object(input_tokens: int, output_tokens: int, service_tier: str = "standard"
                 ) -> dict[str, Any]:
    """A ``usage`` object shaped like the recorded ones."""
    return {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens, "service_tier": service_tier}


def message_body(model: str, content: list[dict[str, Any]], *, stop_reason: str | None = "end_turn",
                 stop_sequence: str | None = None, input_tokens: int = 1,
                 output_tokens: int = 1, message_id: str | None = None,
                 service_tier: str = "standard") -> dict[str, Any]:
    """A Messages API ``message`` object, keys in the recorded order."""
    return {"model": model, "id": message_id or "msg_" + _hex(24), "type": "message",
            "role": "assistant", "content": content, "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage_object(input_tokens, output_tokens, service_tier)}


def text_of(content: Any) -> str:
    """The text of a message's ``content``: a string, or its text blocks (and the text inside
    tool_result blocks) joined with newlines."""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, Mapping):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif block.get("type") == "tool_result":
                inner = text_of(block.get("content"))
                if inner:
                    texts.append(inner)
    return "\n".join(texts)


def last_user_text(params: Mapping[str, Any]) -> str:
    """The text of the last ``user`` message: the key of ``message_overrides`` and
    ``message_errors``."""
    messages = params.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def _words(text: str) -> int:
    return len(text.split())


def truncate(text: str, max_tokens: int, stop_sequences: Collection[str] = ()
             ) -> tuple[str, str, str | None]:
    """``(text, stop_reason, stop_sequence)`` for a model that would say ``text``.

    A token is a whitespace-separated word. Generation stops at whichever comes first: the
    earliest stop sequence (cut before it: ``"stop_sequence"``) or the ``max_tokens``-th word
    (cut after it: ``"max_tokens"``); else the whole text, ``"end_turn"``.
    """
    words = list(_WORD.finditer(text))
    limit = words[max_tokens - 1].end() if len(words) > max_tokens else None
    end = len(text) if limit is None else limit
    found: tuple[int, str] | None = None
    for sequence in stop_sequences:
        at = text.find(sequence) if sequence else -1
        if 0 <= at < end and (found is None or at < found[0]):
            found = (at, sequence)
    if found is not None:
        return text[:found[0]], "stop_sequence", found[1]
    if limit is not None:
        return text[:limit], "max_tokens", None
    return text, "end_turn", None


def _output_format(params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``json_schema`` format of ``output_config.format`` (or the beta ``output_format``)."""
    config = params.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else None
    if fmt is None:
        fmt = params.get("output_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        return fmt
    return None


def _forced_tool(params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The tool ``tool_choice`` forces (``{"type":"tool","name":N}``, or ``any``: the first)."""
    choice, tools = params.get("tool_choice"), params.get("tools") or []
    if not isinstance(choice, Mapping) or not isinstance(tools, list):
        return None
    custom = [t for t in tools if isinstance(t, Mapping) and "input_schema" in t]
    if choice.get("type") == "tool":
        return next((t for t in custom if t.get("name") == choice.get("name")), None)
    if choice.get("type") == "any":
        return custom[0] if custom else None
    return None


def _input_tokens(params: Mapping[str, Any]) -> int:
    system = params.get("system")
    total = _words(text_of(system)) if system is not None else 0
    for message in params.get("messages") or []:
        if isinstance(message, Mapping):
            total += _words(text_of(message.get("content")))
    return max(1, total)


def default_message(params: Mapping[str, Any], service_tier: str = "standard"
                    ) -> dict[str, Any]:
    """What the emulated model answers to valid ``POST /v1/messages`` params."""
    model, input_tokens = str(params.get("model")), _input_tokens(params)
    tool = _forced_tool(params)
    if tool is not None:
        arguments = example_instance(tool["input_schema"])
        block = {"type": "tool_use", "id": "toolu_" + _hex(24), "name": tool["name"],
                 "input": arguments}
        return message_body(model, [block], stop_reason="tool_use", input_tokens=input_tokens,
                            output_tokens=max(1, _words(json.dumps(arguments))),
                            service_tier=service_tier)
    fmt = _output_format(params)
    if fmt is not None:
        text = json.dumps(example_instance(fmt.get("schema") or {}), separators=(",", ":"))
    else:
        text = "Echo: " + last_user_text(params)
    text, stop_reason, stop_sequence = truncate(text, int(params["max_tokens"]),
                                                params.get("stop_sequences") or ())
    return message_body(model, [{"type": "text", "text": text}], stop_reason=stop_reason,
                        stop_sequence=stop_sequence, input_tokens=input_tokens,
                        output_tokens=max(1, _words(text)), service_tier=service_tier)


# --- validation -----------------------------------------------------------------------------------


class _InvalidError(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _join(prefix: str, name: str | int) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def _require_dict(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _InvalidError(path, "Input should be a valid dictionary")
    return value


def _require_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _InvalidError(path, "Input should be a valid list")
    return value


def _check_blocks(blocks: list[Any], path: str) -> None:
    for index, raw in enumerate(blocks):
        where = _join(path, index)
        block = _require_dict(raw, where)
        if "type" not in block:
            raise _InvalidError(_join(where, "type"), "Field required")
        if not isinstance(block["type"], str):
            raise _InvalidError(_join(where, "type"), "Input should be a valid string")
        if block["type"] == "text":
            if "text" not in block:
                raise _InvalidError(_join(where, "text"), "Field required")
            if not isinstance(block["text"], str):
                raise _InvalidError(_join(where, "text"), "Input should be a valid string")
            if not block["text"]:
                raise _InvalidError(_join(where, "text"), "text content blocks must be non-empty")


def _check_messages(value: Any, prefix: str) -> None:
    path = _join(prefix, "messages")
    messages = _require_list(value, path)
    if not messages:
        raise _InvalidError(path, "at least one message is required")
    for index, raw in enumerate(messages):
        where = _join(path, index)
        message = _require_dict(raw, where)
        for name in ("role", "content"):
            if name not in message:
                raise _InvalidError(_join(where, name), "Field required")
        if message["role"] not in _ROLES:
            raise _InvalidError(_join(where, "role"), "Input should be 'user' or 'assistant'")
        content = message["content"]
        if not isinstance(content, str):
            _check_blocks(_require_list(content, _join(where, "content")),
                          _join(where, "content"))
        final_assistant = index == len(messages) - 1 and message["role"] == "assistant"
        if not content and not final_assistant:
            raise _InvalidError(where, "all messages must have non-empty content except for the "
                                  "optional final assistant message")


def _check_unit_interval(params: Mapping[str, Any], name: str, prefix: str) -> None:
    value = params.get(name)
    if value is None:
        return
    if not _is_number(value):
        raise _InvalidError(_join(prefix, name), "Input should be a valid number")
    if value < 0:
        raise _InvalidError(_join(prefix, name), "Input should be greater than or equal to 0")
    if value > 1:
        raise _InvalidError(_join(prefix, name), "Input should be less than or equal to 1")


def _check_format(value: Any, path: str) -> None:
    if value is None:
        return
    fmt = _require_dict(value, path)
    if fmt.get("type") != "json_schema":
        raise _InvalidError(_join(path, "type"), "Input should be 'json_schema'")
    if "schema" not in fmt:
        raise _InvalidError(_join(path, "schema"), "Field required")
    _require_dict(fmt["schema"], _join(path, "schema"))


def _check_tools(params: Mapping[str, Any], prefix: str) -> None:
    names: list[str] = []
    if params.get("tools") is not None:
        path = _join(prefix, "tools")
        for index, raw in enumerate(_require_list(params["tools"], path)):
            where = _join(path, index)
            tool = _require_dict(raw, where)
            if "name" not in tool:
                raise _InvalidError(_join(where, "name"), "Field required")
            name = tool["name"]
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                raise _InvalidError(_join(where, "name"),
                               f"String should match pattern '{_TOOL_NAME.pattern}'")
            if tool.get("type") in (None, "custom"):  # server tools have a versioned type
                if "input_schema" not in tool:
                    raise _InvalidError(_join(where, "input_schema"), "Field required")
                _require_dict(tool["input_schema"], _join(where, "input_schema"))
            if name in names:
                raise _InvalidError(path, f"Tool names must be unique: '{name}' appears twice")
            names.append(name)
    if params.get("tool_choice") is None:
        return
    path = _join(prefix, "tool_choice")
    choice = _require_dict(params["tool_choice"], path)
    if choice.get("type") not in _TOOL_CHOICES:
        raise _InvalidError(_join(path, "type"), "Input should be 'auto', 'any', 'tool' or 'none'")
    if choice["type"] in ("any", "tool") and not names:
        raise _InvalidError(path, "tool_choice may only be specified while providing tools")
    if choice["type"] == "tool":
        if not isinstance(choice.get("name"), str):
            raise _InvalidError(_join(path, "name"), "Field required")
        if choice["name"] not in names:
            raise _InvalidError(_join(path, "name"),
                           f"Tool '{choice['name']}' not found in the provided tools")


def _check(params: Any, prefix: str, require_max_tokens: bool) -> None:
    params = _require_dict(params, prefix)
    required = ("model", "max_tokens", "messages") if require_max_tokens else ("model",
                                                                                "messages")
    for name in required:
        if name not in params:
            raise _InvalidError(_join(prefix, name), "Field required")
    model = params["model"]
    if not isinstance(model, str):
        raise _InvalidError(_join(prefix, "model"), "Input should be a valid string")
    if not model:
        raise _InvalidError(_join(prefix, "model"), "String should have at least 1 character")
    if require_max_tokens:
        if not _is_int(params["max_tokens"]):
            raise _InvalidError(_join(prefix, "max_tokens"), "Input should be a valid integer")
        if params["max_tokens"] < 1:
            raise _InvalidError(_join(prefix, "max_tokens"),
                           "Input should be greater than or equal to 1")
    _check_messages(params["messages"], prefix)
    system = params.get("system")
    if system is not None and not isinstance(system, str):
        path = _join(prefix, "system")
        blocks = _require_list(system, path)
        _check_blocks(blocks, path)
        for index, block in enumerate(blocks):
            if block["type"] != "text":
                raise _InvalidError(_join(_join(path, index), "type"), "Input should be 'text'")
    _check_unit_interval(params, "temperature", prefix)
    _check_unit_interval(params, "top_p", prefix)
    if params.get("top_k") is not None and (not _is_int(params["top_k"]) or params["top_k"] < 0):
        raise _InvalidError(_join(prefix, "top_k"), "Input should be a non-negative integer")
    if params.get("stop_sequences") is not None:
        path = _join(prefix, "stop_sequences")
        for index, sequence in enumerate(_require_list(params["stop_sequences"], path)):
            if not isinstance(sequence, str):
                raise _InvalidError(_join(path, index), "Input should be a valid string")
    if params.get("output_config") is not None:
        path = _join(prefix, "output_config")
        _check_format(_require_dict(params["output_config"], path).get("format"),
                      _join(path, "format"))
    _check_format(params.get("output_format"), _join(prefix, "output_format"))
    _check_tools(params, prefix)
    stream = params.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _InvalidError(_join(prefix, "stream"), "Input should be a valid boolean")
    if stream and prefix.startswith("requests."):
        raise _InvalidError(_join(prefix, "stream"), "streaming is not supported in batches")


def message_events(message: Mapping[str, Any]) -> tuple[list[bytes], int]:
    """The Messages stream that builds ``message`` (a whole message), and the index of its
    first delta (else of the last event before ``message_stop``)."""
    payloads: list[dict[str, Any]] = []
    usage = dict(message.get("usage") or {})
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1}}
    payloads.append({"type": "message_start", "message": start})
    first_delta: int | None = None
    for index, block in enumerate(message.get("content") or []):
        kind = block.get("type")
        deltas: list[dict[str, Any]] = []
        if kind == "text":
            opening = {**block, "text": ""}
            deltas = [{"type": "text_delta", "text": piece}
                      for piece in split_text(block.get("text", ""))]
        elif kind == "tool_use":
            opening = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": piece}
                      for piece in split_text(json.dumps(block.get("input", {})))]
        elif kind == "thinking":
            opening = {**block, "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": piece}
                      for piece in split_text(block.get("thinking", ""))]
            deltas.append({"type": "signature_delta", "signature": block.get("signature", "")})
        else:
            opening = dict(block)
        payloads.append({"type": "content_block_start", "index": index,
                         "content_block": opening})
        if index == 0:
            payloads.append({"type": "ping"})
        for delta in deltas:
            if first_delta is None and delta["type"] in ("text_delta", "input_json_delta"):
                first_delta = len(payloads)
            payloads.append({"type": "content_block_delta", "index": index, "delta": delta})
        payloads.append({"type": "content_block_stop", "index": index})
    cumulative = {key: usage[key] for key in ("input_tokens", "cache_creation_input_tokens",
                                              "cache_read_input_tokens", "output_tokens")
                  if key in usage}
    payloads.append({"type": "message_delta", "delta": {
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence")}, "usage": cumulative})
    payloads.append({"type": "message_stop"})
    events = [sse_event(payload, payload["type"]) for payload in payloads]
    return events, len(events) - 2 if first_delta is None else first_delta


def stream_error_event(_index: int) -> bytes:
    """The ``error`` event the API sends mid-stream when it is overloaded."""
    return sse_event({"type": "error", "error": {"type": "overloaded_error",
                                                 "message": "Overloaded"}}, "error")


def validate_params(params: Any, prefix: str = "", *, require_max_tokens: bool = True
                    ) -> str | None:
    """``None`` if ``params`` is a valid ``POST /v1/messages`` body, else the API's message
    (``"<path>: <problem>"``, the path under ``prefix``, e.g. ``requests.3.params``).

    Unknown top-level keys are accepted (the API has many: metadata, thinking, service_tier...).
    """
    try:
        _check(params, prefix, require_max_tokens)
    except _InvalidError as problem:
        return str(problem)
    return None


# --- batches --------------------------------------------------------------------------------------


@define
class MessageBatchPlan:
    """How the emulated Message Batches API ends a batch (set ``AnthropicEmulator.batch_plan``).

    The plan is copied (shallowly) into each batch when it is created
    (``EmulatedMessageBatch.plan``); changing it afterwards touches only later batches.

    - ``outcome``: ``"completed"`` runs every item; ``"expired"`` and ``"canceled"`` run the
      first ``done`` items (input order), the others end ``expired`` / ``canceled``. A planned
      cancel is as if someone cancelled the batch elsewhere: it sets ``cancel_initiated_at`` and
      (with ``finish_after >= 3``) shows ``canceling`` at the retrieve before the end.
    - ``done``: how many items ran before an expiry or cancel (also a user's cancel through the
      API); ``None``: half, rounded down.
    - ``item_errors``: custom_id -> (error_type, message): that item is ``errored``.
    - ``item_bodies``: custom_id -> a whole message object, the item's ``succeeded`` message.
    - ``shuffle_seed``: when set, the results file's lines come in a seeded shuffled order.
    - ``finish_after``: the retrieve that shows the batch ended (default 2: the first retrieve
      is in_progress, the second ended); 1: the first retrieve; 0: the create answer itself.
    - ``omit``: custom_ids left out of the results file (they still count in request_counts).
    - ``duplicate``: custom_ids whose line is written twice (the copy goes at the end).

    Other items answer what ``POST /v1/messages`` would (``message_overrides`` and
    ``message_errors`` apply; a ``missing-model`` item is errored ``not_found_error``).
    """

    outcome: Literal["completed", "expired", "canceled"] = "completed"
    done: int | None = None
    item_errors: Mapping[str, tuple[str, str]] = field(factory=dict)
    item_bodies: Mapping[str, Mapping[str, Any]] = field(factory=dict)
    shuffle_seed: int | None = None
    finish_after: int = 2
    omit: Collection[str] = field(factory=set)
    duplicate: Collection[str] = field(factory=set)

    def ran(self, total: int, outcome: str) -> int:
        """How many items (in input order) ran for a batch of ``total`` that ends ``outcome``."""
        if outcome == "completed":
            return total
        return max(0, min(total, total // 2 if self.done is None else self.done))


@define
class EmulatedMessageBatch:
    """A batch: its API object as it reads now, its requests, and once ended its results."""

    id: str
    plan: MessageBatchPlan
    api_object: dict[str, Any]
    requests: list[dict[str, Any]] = field(factory=list)  # {"custom_id", "params"}, input order
    retrieves: int = 0
    canceled_by_user: bool = False
    results: bytes | None = None  # the JSONL results file, once ended
    outcomes: dict[str, str] = field(factory=dict)  # custom_id -> result type, once ended

    @property
    def processing_status(self) -> str:
        return str(self.api_object["processing_status"])

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"

    def result_lines(self) -> list[dict[str, Any]]:
        """The results file, parsed (empty until the batch ended)."""
        return [json.loads(line) for line in (self.results or b"").splitlines() if line.strip()]


# --- the server -----------------------------------------------------------------------------------


def _request_id() -> str:
    return "req_" + _hex(24)


def _json(status: int, value: Any, headers: Mapping[str, str] | None = None) -> Scripted:
    text = json.dumps(value, ensure_ascii=False)
    try:
        body = text.encode()
    except UnicodeEncodeError:  # a lone surrogate (a hostile batch id): JSON escapes it
        body = json.dumps(value).encode()
    return Scripted(status, body, {"request-id": _request_id(), **(headers or {})})


def _error(status: int, error_type: str, message: str) -> Scripted:
    request_id = _request_id()
    return Scripted(status, error_body(message, error_type, request_id),
                    {"request-id": request_id})


def _invalid(message: str, status: int = 400) -> Scripted:
    return _error(status, "invalid_request_error", message)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # many concurrent clients connect at once in benchmarks


@define
class AnthropicEmulator(StreamFaults):
    """The emulated API (see the module docstring). ``start()`` it, point a client at
    ``base_url`` with ``API_KEY``, ``stop()`` it."""

    api_key: str | None = API_KEY  # None: no authentication
    accept_bearer: bool = True  # False: only x-api-key authenticates
    requests: list[Recorded] = field(factory=list)
    script: deque[Scripted] = field(factory=deque)
    latency: float = 0.0  # seconds slept before answering each POST /v1/messages
    # Per prompt (the last user message's text): a whole message to answer instead, or an error
    # (status, error_type, message). Both apply to batch items too.
    message_overrides: dict[str, dict[str, Any]] = field(factory=dict)
    message_errors: dict[str, tuple[int, str, str]] = field(factory=dict)
    missing_models: set[str] = field(factory=lambda: {MISSING_MODEL})
    # Message Batches: set batch_plan before creating a batch; batches by id, in creation order.
    batch_plan: MessageBatchPlan = field(factory=MessageBatchPlan)
    batches: dict[str, EmulatedMessageBatch] = field(factory=dict)
    # The ids the next batches get, in order (then random ``msgbatch_...`` ones).
    batch_ids: deque[str] = field(factory=deque)
    # Streaming: how the next streams go wrong, in order (see ``stream_fault``).
    stream_faults: deque[StreamFault] = field(factory=deque)
    max_requests: int = MAX_BATCH_REQUESTS
    max_bytes: int = MAX_BATCH_BYTES
    # True: a batch with invalid params is refused at create (400 naming requests.N.params...).
    # False: as the real API does, the batch is accepted and such items end up errored.
    validate_params_at_create: bool = True
    clock: Callable[[], float] = time.time
    in_flight: int = 0  # POST /v1/messages being served now
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

    def start(self) -> AnthropicEmulator:
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
                        "There was an error reading the body of your request.",
                        "invalid_request_error"), {"Connection": "close"}))
                    return
                recorded = Recorded(self.command, self.path,
                                    {k.lower(): v for k, v in self.headers.items()}, body,
                                    self.client_address[:2])
                counted = self.command == "POST" and urlsplit(self.path).path == "/v1/messages"
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
                        self.send_header("Content-Type", "application/json")
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

    def authenticated(self, headers: Mapping[str, str]) -> bool:
        """``x-api-key: <key>``, or (unless ``accept_bearer`` is off) ``Authorization: Bearer
        <key>``, which the API also takes and the anthropic SDK 2.x sends."""
        if headers.get("x-api-key") == self.api_key:
            return True
        return self.accept_bearer and headers.get("authorization") == f"Bearer {self.api_key}"

    def answer(self, recorded: Recorded) -> Scripted:
        """The emulated API: authentication, routing, messages and batches."""
        if self.api_key is not None and not self.authenticated(recorded.headers):
            return _error(401, "authentication_error", "invalid x-api-key")
        if not recorded.headers.get("anthropic-version"):
            return _invalid("anthropic-version: header is required")
        url = urlsplit(recorded.path)
        parts = [unquote(part) for part in url.path.strip("/").split("/")]
        match recorded.method, parts:
            case "POST", ["v1", "messages"]:
                return self._create_message(recorded)
            case "POST", ["v1", "messages", "count_tokens"]:
                return self._count_tokens(recorded)
            case _, ["v1", "messages", "batches", *rest]:
                with self._lock:
                    routed = self._batches(recorded.method, rest, recorded,
                                           parse_qs(url.query))
                if routed is not None:
                    return routed
        return _error(404, "not_found_error", "Not Found")

    @staticmethod
    def _parse(recorded: Recorded) -> tuple[Any, Scripted | None]:
        try:
            return json.loads(recorded.body), None
        except ValueError as exc:
            return None, _invalid(f"There was an error parsing the body of your request: {exc}")

    def message_for(self, params: Mapping[str, Any], service_tier: str = "standard"
                    ) -> tuple[int, str, str] | dict[str, Any]:
        """What valid ``params`` get: an error ``(status, error_type, message)`` or a message."""
        if params["model"] in self.missing_models:
            return 404, "not_found_error", f"model: {params['model']}"
        prompt = last_user_text(params)
        if prompt in self.message_errors:
            return self.message_errors[prompt]
        if prompt in self.message_overrides:
            return copy.deepcopy(self.message_overrides[prompt])
        return default_message(params, service_tier)

    def _create_message(self, recorded: Recorded) -> Scripted:
        params, problem = self._parse(recorded)
        if problem is not None:
            return problem
        message = validate_params(params)
        if message is not None:
            return _invalid(message)
        answer = self.message_for(params)
        if isinstance(answer, tuple):
            return _error(*answer)
        if params.get("stream") is True:
            events, first_delta = message_events(answer)
            return Scripted(200, b"", {"request-id": _request_id()}, stream=faulted(
                events, first_delta, stream_error_event, self._next_fault()))
        return _json(200, answer)

    def _count_tokens(self, recorded: Recorded) -> Scripted:
        params, problem = self._parse(recorded)
        if problem is not None:
            return problem
        message = validate_params(params, require_max_tokens=False)
        if message is not None:
            return _invalid(message)
        if params["model"] in self.missing_models:
            return _error(404, "not_found_error", f"model: {params['model']}")
        return _json(200, {"input_tokens": _input_tokens(params)})

    # --- Message Batches (called with the lock held) ----------------------------------------------

    def _now(self) -> str:
        return self._iso(self.clock())

    @staticmethod
    def _iso(timestamp: float) -> str:
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="microseconds")

    def _batches(self, method: str, rest: list[str], recorded: Recorded,
                 query: dict[str, list[str]]) -> Scripted | None:
        match method, rest:
            case "POST", []:
                return self._create_batch(recorded)
            case "GET", []:
                return self._list(query)
            case "GET", [batch_id]:
                batch = self.batches.get(batch_id)
                if batch is None:
                    return self._no_batch(batch_id)
                self._advance(batch)
                return _json(200, batch.api_object)
            case "DELETE", [batch_id]:
                return self._delete(batch_id)
            case "POST", [batch_id, "cancel"]:
                return self._cancel(batch_id)
            case "GET", [batch_id, "results"]:
                return self._results(batch_id)
        return None

    @staticmethod
    def _no_batch(batch_id: str) -> Scripted:
        return _error(404, "not_found_error", f"message_batch: {batch_id} not found")

    def _create_batch(self, recorded: Recorded) -> Scripted:
        if len(recorded.body) > self.max_bytes:
            return _error(413, "request_too_large", f"Request exceeds the maximum allowed size "
                          f"of {self.max_bytes} bytes for a message batch.")
        body, problem = self._parse(recorded)
        if problem is not None:
            return problem
        if not isinstance(body, dict):
            return _invalid("Input should be a valid dictionary")
        if "requests" not in body:
            return _invalid("requests: Field required")
        items = body["requests"]
        if not isinstance(items, list):
            return _invalid("requests: Input should be a valid list")
        if not items:
            return _invalid("requests: List should have at least 1 item after validation, not 0")
        if len(items) > self.max_requests:
            return _invalid(f"requests: List should have at most {self.max_requests} items "
                            f"after validation, not {len(items)}")
        seen: set[str] = set()
        requests: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            where = f"requests.{index}"
            if not isinstance(item, dict):
                return _invalid(f"{where}: Input should be a valid dictionary")
            for name in ("custom_id", "params"):
                if name not in item:
                    return _invalid(f"{where}.{name}: Field required")
            for name in item:
                if name not in ("custom_id", "params"):
                    return _invalid(f"{where}.{name}: Extra inputs are not permitted")
            custom_id = item["custom_id"]
            if not isinstance(custom_id, str):
                return _invalid(f"{where}.custom_id: Input should be a valid string")
            if not _CUSTOM_ID.match(custom_id):
                return _invalid(f"{where}.custom_id: String should match pattern "
                                f"'{CUSTOM_ID_PATTERN}'")
            if custom_id in seen:
                return _invalid(f"{where}.custom_id: Duplicate custom_id '{custom_id}': each "
                                "request in a batch must have a unique custom_id")
            seen.add(custom_id)
            if self.validate_params_at_create:
                message = validate_params(item["params"], f"{where}.params")
                if message is not None:
                    return _invalid(message)
            requests.append({"custom_id": custom_id, "params": item["params"]})
        now = self.clock()
        batch_id = self.batch_ids.popleft() if self.batch_ids else "msgbatch_" + _hex(24)
        batch = EmulatedMessageBatch(batch_id, attrs.evolve(self.batch_plan), {
            "id": "", "type": "message_batch", "processing_status": "in_progress",
            "request_counts": {"processing": len(requests), "succeeded": 0, "errored": 0,
                               "canceled": 0, "expired": 0},
            "ended_at": None, "created_at": self._iso(now),
            "expires_at": self._iso(now + BATCH_WINDOW_SECONDS), "archived_at": None,
            "cancel_initiated_at": None, "results_url": None}, requests)
        batch.api_object["id"] = batch.id
        self.batches[batch.id] = batch
        if batch.plan.finish_after <= 0:
            self._finish(batch)
        return _json(200, batch.api_object)

    def _list(self, query: dict[str, list[str]]) -> Scripted:
        """A page, newest first, with ``limit``, ``after_id`` and ``before_id`` as the API
        reads them."""
        try:
            limit = int(query.get("limit", ["20"])[0])
        except ValueError:
            return _invalid("limit: Input should be a valid integer")
        if not 1 <= limit <= 1000:
            return _invalid("limit: Input should be between 1 and 1000")
        items = [b.api_object for b in reversed(self.batches.values())]
        ids = [obj["id"] for obj in items]
        after, before = query.get("after_id", [None])[0], query.get("before_id", [None])[0]
        if before is not None:
            items = items[:ids.index(before)] if before in ids else []
            page = items[-limit:]
        else:
            if after is not None:
                items = items[ids.index(after) + 1:] if after in ids else []
            page = items[:limit]
        return _json(200, {"data": page, "has_more": len(items) > limit,
                           "first_id": page[0]["id"] if page else None,
                           "last_id": page[-1]["id"] if page else None})

    def _delete(self, batch_id: str) -> Scripted:
        batch = self.batches.get(batch_id)
        if batch is None:
            return self._no_batch(batch_id)
        if not batch.ended:
            return _invalid(f"Message batch {batch_id} cannot be deleted while it is still "
                            "processing; cancel it first.")
        del self.batches[batch_id]
        return _json(200, {"id": batch_id, "type": "message_batch_deleted"})

    def _cancel(self, batch_id: str) -> Scripted:
        batch = self.batches.get(batch_id)
        if batch is None:
            return self._no_batch(batch_id)
        if batch.ended:
            return _invalid(f"Message batch {batch_id} has already ended and cannot be "
                            "canceled.")
        if not batch.canceled_by_user:
            batch.canceled_by_user = True
            batch.api_object["processing_status"] = "canceling"
            batch.api_object["cancel_initiated_at"] = (batch.api_object["cancel_initiated_at"]
                                                       or self._now())
        return _json(200, batch.api_object)

    def _results(self, batch_id: str) -> Scripted:
        batch = self.batches.get(batch_id)
        if batch is None:
            return self._no_batch(batch_id)
        if not batch.ended or batch.results is None:
            return _invalid(f"Message batch {batch_id} has not finished processing yet: its "
                            "results are available once processing_status is 'ended'.")
        return Scripted(200, batch.results, {"Content-Type": "application/binary",
                                             "request-id": _request_id()})

    def _advance(self, batch: EmulatedMessageBatch) -> None:
        """One retrieve: in_progress (or canceling) until the plan's ``finish_after``-th."""
        if batch.ended:
            return
        batch.retrieves += 1
        plan = batch.plan
        if batch.canceled_by_user or batch.retrieves >= plan.finish_after:
            self._finish(batch)
        elif plan.outcome == "canceled" and batch.retrieves >= 2 and \
                batch.retrieves == plan.finish_after - 1:
            batch.api_object["processing_status"] = "canceling"
            batch.api_object["cancel_initiated_at"] = self._now()

    def _run(self, item: Mapping[str, Any], plan: MessageBatchPlan) -> dict[str, Any]:
        """The ``result`` of one item that ran."""
        custom_id, params = item["custom_id"], item["params"]
        if custom_id in plan.item_errors:
            error_type, message = plan.item_errors[custom_id]
            return {"type": "errored", "error": error_object(message, error_type)}
        if custom_id in plan.item_bodies:
            return {"type": "succeeded", "message": copy.deepcopy(dict(
                plan.item_bodies[custom_id]))}
        problem = None if self.validate_params_at_create else validate_params(params)
        if problem is not None:
            return {"type": "errored", "error": error_object(problem, "invalid_request_error")}
        answer = self.message_for(params, service_tier="batch")
        if isinstance(answer, tuple):
            return {"type": "errored", "error": error_object(answer[2], answer[1])}
        return {"type": "succeeded", "message": answer}

    def _finish(self, batch: EmulatedMessageBatch) -> None:
        """The end: final request_counts, results_url, and the results file the plan asks for."""
        obj, plan = batch.api_object, batch.plan
        outcome = "canceled" if batch.canceled_by_user else plan.outcome
        ran = plan.ran(len(batch.requests), outcome)
        counts = dict.fromkeys(("processing", *_RESULT_TYPES), 0)
        lines: list[str] = []
        doubled: list[str] = []
        for index, item in enumerate(batch.requests):
            custom_id = item["custom_id"]
            result = self._run(item, plan) if index < ran else {"type": outcome}
            counts[result["type"]] += 1
            batch.outcomes[custom_id] = result["type"]
            line = json.dumps({"custom_id": custom_id, "result": result}, separators=(",", ":"),
                              ensure_ascii=False)
            if custom_id not in plan.omit:
                lines.append(line)
            if custom_id in plan.duplicate:
                doubled.append(line)
        lines += doubled
        if plan.shuffle_seed is not None:
            random.Random(plan.shuffle_seed).shuffle(lines)
        batch.results = "\n".join(lines).encode()  # no newline after the last line, as recorded
        now = self._now()
        if outcome == "canceled":
            obj["cancel_initiated_at"] = obj["cancel_initiated_at"] or now
        obj.update(processing_status="ended", request_counts=counts, ended_at=now,
                   results_url=f"{self.base_url}/v1/messages/batches/{batch.id}/results")
