"""Pure: the reader of an OpenAI Responses API stream (``POST /responses`` with ``"stream":
true``; ``llmbackend.streams``).

Wire (https://developers.openai.com/api/reference/resources/responses/streaming-events, the
OpenAPI ``ResponseStreamEvent`` union, and the openai SDK's ``Stream`` and
``lib/streaming/responses``): every event is ``event: <type>`` with ``data: {"type": <type>,
"sequence_number": n, ...}``. ``response.created`` / ``response.in_progress`` carry the response
so far; ``response.output_item.added`` / ``.done`` an output item (a message, a reasoning item,
a tool call) at its ``output_index``; ``response.content_part.added`` / ``.done`` a part of a
message at its ``content_index``; ``response.output_text.delta`` the answer text (``delta``);
``response.refusal.delta`` refusal text and ``response.reasoning_*`` reasoning, neither of them
answer text. The stream ends with one of ``response.completed``, ``response.incomplete``
(``max_output_tokens`` or ``content_filter``) and ``response.failed`` (its ``response.error``),
each carrying the whole final ``Response`` object, and no ``[DONE]``. An ``error`` event reports
an error inside a stream that had already answered HTTP 200: the OpenAPI spec puts ``code`` /
``message`` / ``param`` on the event, the recorded traffic nests them in ``error`` with a
``type`` (``{"type": "error", "error": {"type", "code", "message", "param"}}``); both are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from returns.result import Failure, Result, Success

from llmbackend.errors import LLMError, ProviderError, ResponseParseError, excerpt, excerpt_json
from llmbackend.providers import json_object
from llmbackend.providers.openai import LABEL, NAME, parse_response_object
from llmbackend.streams import (
    NO_DELTA,
    FoldingReader,
    ServerEvent,
    ended_early,
    error_event_message,
)
from llmbackend.types import Generation, GenerationRequest

__all__ = [
    "FINAL_EVENTS",
    "READER",
    "SKIPPED_EVENTS",
    "ResponseStreamReader",
    "stream_error",
]

#: Events whose data the answer never needs, by their SSE event name: the response's status
#: updates (its whole object, repeated: the final event carries it once more) and the "done"
#: events of a text or a part (their text is the deltas', joined).
#:
#: Strategy: named by the ``event:`` field, they are not decoded at all. The two status
#: updates are the largest events before the first delta: decoding them is most of a reader's
#: cost to the first delta. An event without a name (``message``) is always decoded.
SKIPPED_EVENTS = frozenset({
    "response.created", "response.in_progress", "response.queued",
    "response.output_text.done", "response.content_part.done",
})

#: The events that end a stream, each with the status its final ``response`` has.
FINAL_EVENTS: Mapping[str, str] = {
    "response.completed": "completed",
    "response.incomplete": "incomplete",
    "response.failed": "failed",
}


class ResponseStreamReader(FoldingReader):
    """The reader of one streamed Responses answer to ``request``.

    Strategy: the final event carries the whole ``Response`` the same call would have answered
    without streaming, so that object goes, as it came, to ``parse_response_object``: refusals,
    truncation, blocks, failures and answers without text are the whole call's, with its text.
    The output items are also rebuilt from the item, part and delta events, but only to stand in
    for a final object without an ``output`` (as the SDK's accumulator does: a done item, else
    the item as its deltas built it).
    """

    def __init__(self, request: GenerationRequest) -> None:
        super().__init__()
        self._request = request
        self._items: dict[int, dict[str, Any]] = {}
        self._final: dict[str, Any] | None = None
        # Each rebuilt output_text part, by (output_index, content_index), with the text pieces
        # it has had so far.
        self._pieces: dict[tuple[object, object], tuple[dict[str, Any], list[str]]] = {}

    def feed(self, event: ServerEvent) -> Result[str, LLMError]:
        if self._failure is not None:
            return Failure(self._failure)
        if event.event in SKIPPED_EVENTS:
            return NO_DELTA
        data = event.data.strip()
        # the answer is whole after its final event; "[DONE]" ends an OpenAI-compatible stream
        if self._final is not None or not data or data == "[DONE]":
            return NO_DELTA
        value = json_object(data)
        if value is None:
            return self._fail(ResponseParseError(
                message=f"{LABEL} sent a stream event that is not a JSON object",
                provider=NAME, body=excerpt(event.data)))
        kind = value.get("type")
        kind = kind if isinstance(kind, str) else event.event
        # Strategy: as the SDK's stream does, any event with a top-level error is one.
        if kind == "error" or value.get("error"):
            return self._fail(stream_error(value, event.data))
        if kind in FINAL_EVENTS:
            return self._end(kind, value, event.data)
        if kind == "response.output_text.delta":
            return self._text_delta(value, event.data)
        self._rebuild(kind, value)
        return NO_DELTA  # starts, parts, refusal and reasoning text, and any newer event

    def finish(self) -> Result[Generation[str], LLMError]:
        if self._failure is not None:
            return Failure(self._failure)
        if self._final is None:
            return Failure(ended_early(NAME, LABEL, self.text, "response.completed"))
        return parse_response_object(self._request, self._final)

    def response(self) -> dict[str, Any] | None:
        """The final ``Response`` object (``None`` before the final event)."""
        return self._final

    def _end(self, kind: str, value: Mapping[str, Any], data: str) -> Result[str, LLMError]:
        response = value.get("response")
        if not isinstance(response, dict):
            return self._fail(ResponseParseError(
                message=f"{LABEL} sent a {kind!r} event without its 'response' object",
                provider=NAME, body=excerpt(data)))
        body = dict(response)
        if body.get("output") is None:
            for part, pieces in self._pieces.values():
                part["text"] = "".join(pieces)
            body["output"] = [self._items[index] for index in sorted(self._items)]
        if body.get("status") is None:
            body["status"] = FINAL_EVENTS[kind]
        if kind != "response.failed":
            self._final = body
            return NO_DELTA
        parsed = parse_response_object(self._request, body)
        if isinstance(parsed, Failure):
            return self._fail(parsed.failure())
        return self._fail(ProviderError(  # a failed response whose status says otherwise
            message=f"{LABEL} reported that the response failed (response.failed)",
            provider=NAME, error_type="failed", body=excerpt_json(body)))

    def _text_delta(self, value: Mapping[str, Any], data: str) -> Result[str, LLMError]:
        delta = value.get("delta")
        if not isinstance(delta, str):
            return self._fail(ResponseParseError(
                message=f"{LABEL} sent a text delta event whose 'delta' is not a string",
                provider=NAME, body=excerpt(data)))
        # Strategy: the pieces are joined once, at the end (``_end``), not on every delta (which
        # would copy the text so far each time: quadratic in a long answer); the part they
        # belong to is looked up once, at its first delta.
        key = (value.get("output_index"), value.get("content_index"))
        entry = self._pieces.get(key)
        if entry is None:
            part = self._part(value)
            if part is not None and part.get("type") == "output_text":
                entry = self._pieces[key] = (part, [_string(part.get("text"))])
        if entry is not None:
            entry[1].append(delta)
        if delta:
            self._deltas.append(delta)
        return Success(delta)

    def _rebuild(self, kind: str, value: Mapping[str, Any]) -> None:
        """Fold an item, part or refusal event into the output items rebuilt so far."""
        index = _index(value.get("output_index"))
        if kind in ("response.output_item.added", "response.output_item.done"):
            item = value.get("item")
            if index is not None and isinstance(item, dict):
                self._items[index] = item
        elif kind == "response.content_part.added":
            item = self._items.get(index) if index is not None else None
            part = value.get("part")
            position = _index(value.get("content_index"))
            if item is None or not isinstance(part, dict) or position is None:
                return
            content = item.get("content")
            if not isinstance(content, list):
                content = item["content"] = []
            if position < len(content):
                content[position] = part
            elif position == len(content):  # the parts come in order; a gap is not kept
                content.append(part)
        elif kind == "response.refusal.delta":
            part = self._part(value)
            delta = value.get("delta")
            if part is not None and part.get("type") == "refusal" and isinstance(delta, str):
                part["refusal"] = _string(part.get("refusal")) + delta

    def _part(self, value: Mapping[str, Any]) -> dict[str, Any] | None:
        """The rebuilt content part an event names by ``output_index`` / ``content_index``."""
        index, position = _index(value.get("output_index")), _index(value.get("content_index"))
        item = self._items.get(index) if index is not None else None
        content = item.get("content") if item is not None else None
        if not isinstance(content, list) or position is None or position >= len(content):
            return None
        part = content[position]
        return part if isinstance(part, dict) else None


def stream_error(value: Mapping[str, Any], data: str) -> ProviderError:
    """Pure: the ``ProviderError`` of an ``error`` event, with OpenAI's error ``type`` and
    ``code`` as ``parse_error`` names them (the type only where the event nests its fields in
    ``error``: a top-level ``type`` is the event's own, ``"error"``)."""
    nested = value.get("error")
    fields: Mapping[str, Any] = nested if isinstance(nested, dict) else value
    error_type = _text(fields.get("type")) if isinstance(nested, dict) else None
    code = _text(fields.get("code"))
    message = _text(fields.get("message")) or (nested if isinstance(nested, str) else "")
    kind = "/".join(part for part in (error_type, code) if part)
    return ProviderError(
        message=error_event_message(LABEL, kind, message),
        provider=NAME, error_type=error_type, error_code=code, body=excerpt(data))


def _index(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _text(value: object) -> str | None:
    if value is None or isinstance(value, Mapping | list):
        return None
    return str(value)


#: The reader the provider registry names (``providers.open_stream_reader``).
READER = ResponseStreamReader
