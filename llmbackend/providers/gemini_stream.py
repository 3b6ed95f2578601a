"""Pure: the reader of a Gemini ``streamGenerateContent?alt=sse`` stream (``llmbackend.streams``).

Wire (the google-genai SDK's ``Models.generate_content_stream`` and its SSE reader in
``_api_client``; https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent):
every event is ``data: {GenerateContentResponse}`` with no event name, one chunk of the answer.
A chunk's ``candidates[0].content.parts`` hold the text added since the last chunk (parts with
``"thought": true`` are thinking, never answer text; a part may carry only a
``thoughtSignature``). ``finishReason`` comes on the last chunk(s), ``usageMetadata`` on every
chunk as a running total (the last one counts), ``responseId`` / ``modelVersion`` on each.
There is no closing event: the body just ends, so a stream none of whose chunks said how the
answer ended (a ``finishReason``, or a ``promptFeedback.blockReason``) ended early. An error
during the stream comes as a chunk ``{"error": {"code", "message", "status", "details"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import evolve
from returns.result import Failure, Result, Success

from llmbackend.errors import LLMError, ProviderError, ResponseParseError, excerpt
from llmbackend.providers import json_object
from llmbackend.providers.gemini import LABEL, NAME, parse_error, parse_response_object
from llmbackend.streams import (
    NO_DELTA,
    FoldingReader,
    ServerEvent,
    ended_early,
    error_event_message,
)
from llmbackend.types import Generation, GenerationRequest, WireResponse

__all__ = [
    "READER", "TEXT_PART_KEYS", "ContentStreamReader", "merge_parts", "stream_error"]

#: The keys a plain text part may have (anything else makes it a part of its own kind).
TEXT_PART_KEYS = frozenset({"text", "thought", "thoughtSignature"})


class ContentStreamReader(FoldingReader):
    """The reader of one streamed ``generateContent`` answer to ``request``.

    Strategy: each chunk is folded into one merged ``GenerateContentResponse``: the top-level
    fields and each candidate's fields (``finishReason``, ``safetyRatings``...) take their latest
    value (``usageMetadata`` is a running total, so the last one is the whole call's), and each
    candidate's parts are appended in order, adjacent text parts joined (``merge_parts``). That
    body goes to ``parse_response_object``, so blocks, truncation and no-text answers are the
    whole call's, with the same text.
    """

    def __init__(self, request: GenerationRequest) -> None:
        super().__init__()
        self._request = request
        self._body: dict[str, Any] = {}
        self._candidates: list[dict[str, Any]] = []
        self._ended = False

    def feed(self, event: ServerEvent) -> Result[str, LLMError]:
        if self._failure is not None:
            return Failure(self._failure)
        # Gemini names no events: a named one is something newer, and not for this reader.
        if event.event != "message" or not event.data.strip():
            return NO_DELTA
        chunk = json_object(event.data)
        if chunk is None:
            return self._fail(ResponseParseError(
                message=f"{LABEL} sent a stream event that is not a JSON object",
                provider=NAME, body=excerpt(event.data)))
        if "error" in chunk:
            return self._fail(stream_error(chunk, event.data))
        candidates = chunk.get("candidates", [])
        if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
            return self._fail(ResponseParseError(
                message=f"{LABEL} sent a stream chunk whose 'candidates' is not a list of "
                "objects", provider=NAME, body=excerpt(event.data)))
        self._body.update(chunk)  # 'candidates' too, to keep the keys in the order they came
        delta = ""
        for position, candidate in enumerate(candidates):
            parts = self._merge_candidate(position, candidate)
            if position == 0:
                delta = "".join(_answer_texts(parts))
            if candidate.get("finishReason") is not None:
                self._ended = True
        feedback = chunk.get("promptFeedback")
        blocked = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if blocked is not None and blocked != "BLOCK_REASON_UNSPECIFIED":
            self._ended = True  # a blocked prompt has no candidate to finish
        if delta:
            self._deltas.append(delta)
        return Success(delta)

    def finish(self) -> Result[Generation[str], LLMError]:
        if self._failure is not None:
            return Failure(self._failure)
        if not self._ended:
            return Failure(ended_early(NAME, LABEL, self.text, "finishReason"))
        return parse_response_object(self._request, self.response())

    def response(self) -> dict[str, Any]:
        """The ``GenerateContentResponse`` rebuilt from the chunks fed so far."""
        body = dict(self._body)
        if "candidates" in body:  # some chunk had a list of them
            body["candidates"] = [dict(candidate) for candidate in self._candidates]
        return body

    def _merge_candidate(self, position: int, candidate: Mapping[str, Any]) -> list[Any]:
        """Fold ``candidate`` into the merged candidate at ``position``; its parts."""
        while len(self._candidates) <= position:
            self._candidates.append({})
        merged = self._candidates[position]
        previous = merged.get("content")
        merged.update(candidate)  # each key where it first came, with its latest value
        content = candidate.get("content")
        if not isinstance(content, dict):
            if previous is not None:
                merged["content"] = previous
            return []  # as the whole call's parser reads it: no parts
        parts = content.get("parts")
        new = parts if isinstance(parts, list) else []
        before = previous if isinstance(previous, dict) else {}
        old = before.get("parts")
        merged["content"] = {**before, **content}
        if isinstance(old, list) or isinstance(parts, list):
            merged["content"]["parts"] = merge_parts(old if isinstance(old, list) else [], new)
        return new


def merge_parts(parts: list[Any], more: list[Any]) -> list[Any]:
    """Pure: ``parts`` followed by ``more``, each text part joined onto a text part just before
    it of the same kind (answer or thought), as a whole answer holds them; every other part
    (a function call, inline data, a signature alone) is kept as it came."""
    merged = list(parts)
    for part in more:
        last = merged[-1] if merged else None
        if _joinable(last, part):
            assert isinstance(last, dict) and isinstance(part, dict)
            merged[-1] = {**last, **part, "text": last["text"] + part["text"]}
        else:
            merged.append(part)
    return merged


def _joinable(first: object, second: object) -> bool:
    """Whether two parts are text parts of the same kind that do not both carry a signature
    (two signatures stay on their own parts, as they came)."""
    return (_is_text_part(first) and _is_text_part(second)
            and isinstance(first, dict) and isinstance(second, dict)
            and (first.get("thought") is True) == (second.get("thought") is True)
            and not ("thoughtSignature" in first and "thoughtSignature" in second))


def _is_text_part(part: object) -> bool:
    return (isinstance(part, dict) and isinstance(part.get("text"), str)
            and part.keys() <= TEXT_PART_KEYS)


def _answer_texts(parts: list[Any]) -> list[str]:
    """The answer text of ``parts``, read as ``parse_response_object`` reads it."""
    return [part["text"] for part in parts
            if isinstance(part, dict) and part.get("thought") is not True
            and isinstance(part.get("text"), str)]


def stream_error(chunk: Mapping[str, Any], data: str) -> ProviderError:
    """Pure: the error of a stream chunk ``{"error": {...}}``: the ``HTTPStatusError`` that
    ``parse_error`` makes of the same object with its ``code`` as the status (so it is retried
    as that status would be), said to come from the stream; a ``ProviderError`` when ``code``
    is not an HTTP error status."""
    error = chunk.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
        parsed = parse_error(WireResponse(status=code, body=data.encode()))
        kind = "/".join(part for part in (parsed.error_type, parsed.error_code) if part)
        message = error.get("message") if isinstance(error, dict) else None
        return evolve(parsed, message=error_event_message(
            LABEL, f"code {code}" + (f", {kind}" if kind else ""), message))
    status = error.get("status") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return ProviderError(
        message=error_event_message(LABEL, status, message),
        provider=NAME, error_type=status if isinstance(status, str) else None,
        body=excerpt(data))


#: The reader the provider registry names (``providers.open_stream_reader``).
READER = ContentStreamReader
