"""Pure: the reader of an Anthropic ``POST /v1/messages`` stream (``"stream": true``;
``llmbackend.streams``).

Wire (https://docs.claude.com/en/docs/build-with-claude/streaming, and the ``anthropic`` SDK's
``lib/streaming/_messages.py``, whose ``accumulate_event`` rebuilds the message the same way):
every event is named, and its ``data`` is a JSON object whose ``type`` repeats the name.

- ``message_start``: ``message``, the message with an empty ``content``, its ``id``, ``model``
  and first ``usage`` (``input_tokens``, cache counts...);
- ``content_block_start`` (``index``, ``content_block``: a ``text``, ``thinking``,
  ``redacted_thinking``, ``tool_use``, ``server_tool_use``... block as it starts), then
  ``content_block_delta`` (``index``, ``delta``: ``text_delta`` adds ``text`` to a text block,
  ``citations_delta`` a ``citation``, ``thinking_delta`` adds ``thinking`` and
  ``signature_delta`` sets ``signature`` on a thinking block, ``input_json_delta`` a
  ``partial_json`` piece of a tool's input, JSON only once the block stops), then
  ``content_block_stop`` (``index``);
- ``message_delta``: ``delta`` (``stop_reason``, ``stop_sequence``, ``stop_details``...) and
  ``usage``, whose counts are running totals: they replace the ``message_start`` values, and a
  count it omits keeps that value;
- ``message_stop``: the final event. ``ping`` events may come anywhere;
- ``error``: ``{"type": "error", "error": {"type": "overloaded_error", "message": ...}}``, an
  error after the HTTP 200 had been sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from returns.result import Failure, Result, Success

from llmbackend.errors import (
    HTTPStatusError,
    LLMError,
    ProviderError,
    ResponseParseError,
    excerpt,
)
from llmbackend.providers import json_object
from llmbackend.providers.anthropic import (
    LABEL,
    NAME,
    parse_message_object,
    structured_output_method,
)
from llmbackend.streams import (
    NO_DELTA,
    FoldingReader,
    ServerEvent,
    ended_early,
    error_event_message,
)
from llmbackend.types import Generation, GenerationRequest

__all__ = [
    "FINAL_EVENT",
    "OUTCOME_REASONS",
    "READER",
    "MessageStreamReader",
    "stream_error",
]

#: The event that ends a complete stream.
FINAL_EVENT = "message_stop"
#: Stop reasons whose failure the whole call reports before it looks at any tool input.
OUTCOME_REASONS = frozenset({"refusal", "max_tokens", "model_context_window_exceeded"})


class MessageStreamReader(FoldingReader):
    """The reader of one streamed Messages answer to ``request``.

    Strategy: the events are folded into the ``message`` the same call answers without
    streaming, as the SDK's ``accumulate_event`` does: ``message_start`` gives the message,
    each block starts as its ``content_block_start`` gives it and grows by its deltas, and
    ``message_delta`` sets the stop reason and the final usage. That message goes to
    ``parse_message_object``, so refusals, truncation, tool calls and no-text answers are the
    whole call's, with the same text.

    The deltas are the text blocks' ``text_delta`` pieces: the answer text as the whole call's
    parser joins it. With ``structured_output="tool"`` the answer is the forced tool's input
    instead, which is JSON only once its block stops: it is handed out whole then, as the
    parser writes it, and text blocks (which the forced call does not write) are held back
    until the end, when they are the answer only if the forced tool never came.
    """

    def __init__(self, request: GenerationRequest) -> None:
        super().__init__()
        self._request = request
        schema = request.schema
        self._forced = (schema.name if schema is not None
                        and structured_output_method(request) == "tool" else None)
        self._message: dict[str, Any] | None = None
        self._content: list[Any] = []
        self._inputs: dict[int, list[str]] = {}  # a tool block's partial_json pieces so far
        self._unreadable: LLMError | None = None  # the first tool input that is not JSON
        self._forced_given = False
        self._ended = False

    def feed(self, event: ServerEvent) -> Result[str, LLMError]:
        if self._failure is not None:
            return Failure(self._failure)
        if event.event == "ping" or self._ended or not event.data.strip():
            return NO_DELTA
        data = json_object(event.data)
        if data is None:
            if event.event == "error":
                return self._fail(ProviderError(
                    message=f"{LABEL} reported an error in the stream: "
                    f"{excerpt(event.data, 300)}", provider=NAME, body=excerpt(event.data)))
            return self._fail(ResponseParseError(
                message=f"{LABEL} sent a stream event that is not a JSON object "
                f"({event.event!r})", provider=NAME, body=excerpt(event.data)))
        kind = data.get("type") if isinstance(data.get("type"), str) else None
        if kind == "error" or event.event == "error":
            return self._fail(stream_error(data, event.data))
        if kind == "message_start":
            return self._start(data, event.data)
        if kind not in _CONTENT_EVENTS:
            return NO_DELTA  # ping, and event types newer than this reader
        if self._message is None:
            return self._malformed(f"a {kind!r} event came before 'message_start'", event.data)
        if kind == "message_delta":
            return self._delta(data, event.data)
        if kind == "message_stop":
            self._ended = True
            return Success(self._held_back())
        index = data.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            return self._malformed(f"a {kind!r} event has no integer 'index'", event.data)
        if kind == "content_block_start":
            block = data.get("content_block")
            if not isinstance(block, dict) or index != len(self._content):
                return self._malformed("a 'content_block_start' event does not start the next "
                                       "block with an object", event.data)
            self._content.append(dict(block))
            return NO_DELTA
        if not 0 <= index < len(self._content) or not isinstance(self._content[index], dict):
            return self._malformed(f"a {kind!r} event names a block that never started",
                                   event.data)
        if kind == "content_block_delta":
            return self._block_delta(index, data, event.data)
        return self._block_stop(index)

    def finish(self) -> Result[Generation[str], LLMError]:
        if self._failure is not None:
            return Failure(self._failure)
        if not self._ended:
            return Failure(ended_early(NAME, LABEL, self.text, FINAL_EVENT))
        message = self.message()
        parsed = parse_message_object(self._request, message)
        if self._unreadable is not None and message.get("stop_reason") not in OUTCOME_REASONS:
            # a refusal or truncation is reported before any tool input is read: a tool input
            # cut by max_tokens is that truncation; any other unreadable input is this error
            return Failure(self._unreadable)
        return parsed

    def message(self) -> dict[str, Any]:
        """The ``message`` rebuilt from the events fed so far (``{}`` before
        ``message_start``)."""
        if self._message is None:
            return {}
        for index in list(self._inputs):
            self._read_input(index)
        return {**self._message, "content": [
            dict(block) if isinstance(block, dict) else block for block in self._content]}

    # --- events -----------------------------------------------------------------------------

    def _start(self, data: Mapping[str, Any], raw: str) -> Result[str, LLMError]:
        message = data.get("message")
        if self._message is not None or not isinstance(message, dict):
            return self._malformed("a 'message_start' event carries no message object, or "
                                   "came twice", raw)
        content = message.get("content")
        self._message = dict(message)
        self._content = list(content) if isinstance(content, list) else []
        usage = message.get("usage")
        self._message["usage"] = dict(usage) if isinstance(usage, dict) else {}
        return NO_DELTA

    def _delta(self, data: Mapping[str, Any], raw: str) -> Result[str, LLMError]:
        assert self._message is not None
        delta = data.get("delta", {})
        usage = data.get("usage", {})
        if not isinstance(delta, dict) or not isinstance(usage, dict):
            return self._malformed("a 'message_delta' event whose 'delta' or 'usage' is not "
                                   "an object", raw)
        # Strategy: usage counts here are running totals (the SDK overwrites, never adds);
        # one left out (or null) keeps its message_start value, as input_tokens often is.
        self._message.update({key: value for key, value in delta.items()
                              if value is not None and key not in ("content", "usage")})
        self._message["usage"].update(
            {key: value for key, value in usage.items() if value is not None})
        return NO_DELTA

    def _block_delta(self, index: int, data: Mapping[str, Any], raw: str
                     ) -> Result[str, LLMError]:
        block = self._content[index]
        delta = data.get("delta")
        if not isinstance(delta, dict):
            return self._malformed("a 'content_block_delta' event has no 'delta' object", raw)
        kind = delta.get("type")
        if kind == "text_delta":
            piece = delta.get("text")
            if not isinstance(piece, str):
                return self._malformed("a 'text_delta' carries no text", raw)
            if block.get("type") != "text":
                return NO_DELTA  # as the SDK: text only grows a text block
            block["text"] = _string(block.get("text")) + piece
            if self._forced is not None:
                return NO_DELTA  # held back: see the class docstring
            self._deltas.append(piece)
            return Success(piece)
        if kind == "input_json_delta":
            piece = delta.get("partial_json")
            if not isinstance(piece, str):
                return self._malformed("an 'input_json_delta' carries no partial_json", raw)
            if "input" in block:  # tool_use, server_tool_use and the like
                self._inputs.setdefault(index, []).append(piece)
        elif kind == "thinking_delta" and block.get("type") == "thinking":
            # never answer text: it stays in the thinking block, in ``raw``
            block["thinking"] = _string(block.get("thinking")) + _string(delta.get("thinking"))
        elif kind == "signature_delta" and block.get("type") == "thinking":
            block["signature"] = delta.get("signature")
        elif kind == "citations_delta" and block.get("type") == "text":
            citations = block.get("citations")
            block["citations"] = [*(citations if isinstance(citations, list) else []),
                                  delta.get("citation")]
        return NO_DELTA  # other deltas (and types newer than this reader) carry no text

    def _block_stop(self, index: int) -> Result[str, LLMError]:
        read = self._read_input(index)
        block = self._content[index]
        if (read and self._forced is not None and not self._forced_given
                and block.get("type") == "tool_use" and block.get("name") == self._forced):
            # the forced tool's input is the answer: handed out as the parser will write it
            self._forced_given = True
            try:
                answer = json.dumps(block.get("input"), ensure_ascii=False)
            except (RecursionError, ValueError):
                return NO_DELTA  # the parser reports it at the end
            self._deltas.append(answer)
            return Success(answer)
        return NO_DELTA

    def _read_input(self, index: int) -> bool:
        """Parse the ``partial_json`` pieces of block ``index`` into its ``input`` (none, or
        only empty ones, keep the input it started with: ``{}`` for a tool without
        arguments); whether it is readable."""
        pieces = self._inputs.pop(index, None)
        buffer = "".join(pieces or ())
        if not buffer:
            return True
        try:
            self._content[index]["input"] = json.loads(buffer)
        except (ValueError, RecursionError):
            if self._unreadable is None:
                self._unreadable = ResponseParseError(
                    message=f"{LABEL} streamed a tool input that is not JSON (block {index})",
                    provider=NAME, body=excerpt(buffer))
            return False
        return True

    def _held_back(self) -> str:
        """At the final event: the text blocks' text held back under a forced tool that never
        came (then it is the answer the parser gives), else nothing."""
        if self._forced is None or self._forced_given:
            return ""
        held = "".join(_string(block.get("text")) for block in self._content
                       if isinstance(block, dict) and block.get("type") == "text")
        if held:
            self._deltas.append(held)
        return held

    def _malformed(self, problem: str, raw: str) -> Result[str, LLMError]:
        return self._fail(ResponseParseError(
            message=f"{LABEL} sent a stream that cannot be read: {problem}", provider=NAME,
            body=excerpt(raw)))


_CONTENT_EVENTS = frozenset({"content_block_start", "content_block_delta", "content_block_stop",
                             "message_delta", "message_stop"})


#: The HTTP status each error type stands for, in Anthropic's errors reference, for the types
#: worth retrying. An ``error`` event arrives after the stream answered 200; one of these types
#: is what the same failure answers as a status before a stream starts (an ``overloaded_error``
#: is a 529), so it is retried as that status would be when no text had flowed.
RETRYABLE_ERROR_STATUSES: Mapping[str, int] = {
    "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529,
}


def stream_error(data: Mapping[str, Any], raw: str) -> ProviderError:
    """Pure: the error of an ``error`` event, named as ``parse_error`` names an error body
    (Anthropic's error ``type`` and ``message``), said to come from the stream: an
    ``HTTPStatusError`` with the status its type stands for (``RETRYABLE_ERROR_STATUSES``),
    else a ``ProviderError`` (the stream had answered 200)."""
    error = data.get("error")
    error_type = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    kind = error_type if isinstance(error_type, str) else None
    said = error_event_message(LABEL, error_type, message)
    status = RETRYABLE_ERROR_STATUSES.get(kind or "")
    if status is not None:
        return HTTPStatusError(message=said, provider=NAME, status=status, error_type=kind,
                               body=excerpt(raw))
    return ProviderError(message=said, provider=NAME, error_type=kind, body=excerpt(raw))


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


#: The reader the provider registry names (``providers.open_stream_reader``).
READER = MessageStreamReader
