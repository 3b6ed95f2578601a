"""Pure: the lines the commands print: answers and states as JSON or text, and a saved handle's
line in the listing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmbackend.batching import BatchCounts, BatchState, BatchStatus
    from llmbackend.jobs import Batch
    from llmbackend.jobs.saved import SavedSummary
    from llmbackend.types import Generation

__all__ = [
    "dumps",
    "generation_json",
    "saved_handle_json",
    "saved_handle_line",
    "shown",
    "state_json",
    "state_line",
]


def dumps(value: object) -> str:
    """``value`` as one line of JSON, non-ASCII text kept as it is, unless it holds a lone
    surrogate (which no output encoding can write): then all of it is escaped."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


def shown(text: str | None) -> str:
    """``text`` as a line of text output shows a value read from a file or a provider: as it is
    when it prints on one line, else escaped (its ``repr``), so that a line break, an escape code
    or a lone surrogate cannot corrupt the listing or the terminal."""
    if text is None:
        return "None"
    return text if text.isprintable() else repr(text)


def generation_json(generation: Generation[Any]) -> str:
    """``run --json``: the whole result."""
    usage = generation.usage
    return dumps({
        "text": generation.text, "parsed": generation.parsed,
        "finish_reason": generation.finish_reason,
        "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                  "reasoning_tokens": usage.reasoning_tokens,
                  "cached_input_tokens": usage.cached_input_tokens,
                  "total_tokens": usage.total_tokens},
        "provider": generation.provider, "model": generation.model,
        "response_id": generation.response_id})


def state_line(status: BatchStatus, counts: BatchCounts) -> str:
    """A batch's status and request counts, on one line."""
    return (f"{status.value} ({counts.completed + counts.failed} of {counts.total} requests "
            f"done: {counts.completed} completed, {counts.failed} failed)")


def state_json(handle: Batch[Any], state: BatchState) -> str:
    """``batch status --json``: the whole state."""
    counts = state.counts
    return dumps({
        "id": handle.id, "provider": handle.provider, "status": state.status.value,
        "provider_status": state.status.raw, "ended": state.status.is_terminal,
        "counts": {"total": counts.total, "completed": counts.completed, "failed": counts.failed,
                   "pending": counts.pending},
        "raw": list(state.raw)})


def saved_handle_line(summary: SavedSummary, saved_at: str) -> str:
    """``batch list``: a saved handle, tab-separated."""
    requests = "?" if summary.requests is None else summary.requests
    return (f"{shown(summary.id)}\t{shown(summary.provider)}\t{shown(summary.model)}\t"
            f"{requests} requests\tsaved {saved_at}")


def saved_handle_json(summary: SavedSummary, path: str, saved_at: str) -> str:
    """``batch list --json``: a saved handle."""
    return dumps({"id": summary.id, "provider": summary.provider, "model": summary.model,
                  "requests": summary.requests, "path": path, "saved_at": saved_at})
