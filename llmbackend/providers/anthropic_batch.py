"""Pure: Anthropic's Message Batches API, as request builders and parsers.

Reference: https://docs.anthropic.com/en/api/creating-message-batches (create, retrieve, results,
cancel) and https://docs.claude.com/en/docs/build-with-claude/batch-processing.

The lifecycle: one ``POST /v1/messages/batches`` carries every request as
``{"custom_id", "params"}``, where ``params`` is exactly the body the synchronous builder makes for
that prompt; the batch is ``in_progress``, maybe ``canceling``, then ``ended``; its results are a
JSONL file (``/v1/messages/batches/{id}/results``), one line per request, in no particular order,
each ``succeeded``, ``errored``, ``canceled`` or ``expired``.

Strategy: Anthropic keeps no copy of the requests, so a batch resumed from its id alone learns its
custom ids from the results file; they are listed in natural order (``request-2`` before
``request-10``), which is input order for llmbackend's default ids. One batch takes at most
``MAX_REQUESTS`` requests and ``MAX_BYTES`` of body; a larger job is split into several batches
behind one handle whose id joins theirs with ``+``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from attrs import evolve, field, frozen
from returns.result import Failure, Result, Success

from llmbackend import batching
from llmbackend.batching import BatchCounts, BatchStatus
from llmbackend.errors import (
    ConfigurationError,
    LLMError,
    ProviderError,
    ResponseParseError,
    excerpt,
    unwrap,
)
from llmbackend.messages import Conversation
from llmbackend.providers import json_object, path_segment, read_count
from llmbackend.providers.anthropic import (
    API_VERSION,
    LABEL,
    NAME,
    build_messages_request,
    parse_error,
    parse_message_object,
)
from llmbackend.types import GenerationRequest, StreamBody, WireRequest, WireResponse

__all__ = [
    "BATCHES_PATH",
    "BATCH_OPTIONS",
    "CUSTOM_ID",
    "ITEM_BYTES_LIMIT",
    "MAX_BYTES",
    "MAX_REQUESTS",
    "PART_SEPARATOR",
    "SEPARATOR",
    "AnthropicBatch",
    "AnthropicBatchOptions",
    "RequestEncoder",
    "build_cancel_batch",
    "build_create_batch",
    "build_request_encoder",
    "build_results",
    "build_retrieve_batch",
    "check_part_id",
    "missing_result_error",
    "parse_batch_object",
    "parse_batch_options",
    "parse_result_line",
    "split_batch_id",
]

BATCHES_PATH = "/v1/messages/batches"
#: Anthropic's limits for one batch: requests, and bytes of request body ("256 MB", read as
#: decimal megabytes, the smaller reading).
MAX_REQUESTS = 100_000
MAX_BYTES = 256_000_000
#: What the API accepts as a custom id.
CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
#: Joins the provider batch ids of a split batch into one handle id; so one provider batch id
#: never holds it (``batching.batch_id_problem`` refuses it, where ids come in and go out).
PART_SEPARATOR = "+"
_ID_KIND = ("an Anthropic batch id (like 'msgbatch_01Ab...', or several joined by '+' for a "
            "split batch)")
#: The options ``batch_options`` accepts for native Anthropic batches.
BATCH_OPTIONS = ("mode", "custom_ids", "max_requests_per_batch", "display_name")
_HEAD = b'{"requests":['
_TAIL = b"]}"


@frozen(kw_only=True)
class AnthropicBatchOptions:
    """The checked ``batch_options`` of a native Anthropic batch."""

    custom_ids: tuple[str, ...] | None = field(default=None, repr=False)
    max_requests_per_batch: int = MAX_REQUESTS
    display_name: str | None = None


def parse_batch_options(options: Mapping[str, Any], count: int) -> AnthropicBatchOptions:
    """Pure: ``batch_options`` checked for a native batch of ``count`` inputs.

    - ``custom_ids``: one unique id per input, each 1 to 64 letters, digits, ``_`` or ``-``
      (the API's rule); default ``request-0``, ``request-1``...;
    - ``max_requests_per_batch``: split into batches of at most this many (default and most
      100,000);
    - ``display_name``: kept on the handle only (Anthropic batches have no name).
    Raises ``ConfigurationError`` naming the option; nothing has been sent then.
    """
    batching.check_option_names(options, BATCH_OPTIONS, "a native Anthropic batch")
    limit = options.get("max_requests_per_batch", MAX_REQUESTS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_REQUESTS:
        raise ConfigurationError(
            message=f"batch option 'max_requests_per_batch' must be a whole number from 1 to "
            f"{MAX_REQUESTS:,} (Anthropic's limit), got {limit!r}",
            key="max_requests_per_batch")
    display_name = options.get("display_name")
    if display_name is not None and not isinstance(display_name, str):
        raise ConfigurationError(message="batch option 'display_name' must be a string",
                                 key="display_name")
    custom_ids = options.get("custom_ids")
    return AnthropicBatchOptions(
        custom_ids=None if custom_ids is None else batching.check_custom_ids(
            custom_ids, count, CUSTOM_ID, "1 to 64 letters, digits, '_' or '-'"),
        max_requests_per_batch=limit,
        display_name=display_name,
    )


# --- requests -------------------------------------------------------------------------------------

_SLOT = "\x00llmbackend:input\x00"
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@frozen(kw_only=True)
class RequestEncoder:
    """Encodes the ``{"custom_id", "params"}`` items of a batch fast: for a prompt, ``params``
    is built and encoded once, with a slot where each prompt goes; a conversation (each item its
    own messages) is built by ``build_messages_request`` for that item and encoded whole."""

    head: bytes = field(repr=False)
    middle: bytes = field(repr=False)
    tail: bytes = field(repr=False)
    warnings: tuple[str, ...] = ()
    #: The request the template was made from (model, config, schema), for conversations.
    request: GenerationRequest | None = field(default=None, repr=False, eq=False)

    def encode(self, custom_id: str, prompt: str | Conversation) -> Result[bytes, LLMError]:
        """Pure: one request item (no separator), or the ``UnsupportedError`` that
        ``build_messages_request`` gives for this item's conversation."""
        if isinstance(prompt, str):
            return Success(b"".join((self.head, _ENCODER.encode(custom_id).encode(),
                                     self.middle, _ENCODER.encode(prompt).encode(), self.tail)))
        if self.request is None:
            raise ValueError("this encoder was made without its request: it takes prompts only")
        return build_messages_request(evolve(self.request, input=prompt)).map(
            lambda wire: _ENCODER.encode({"custom_id": custom_id, "params": wire.json}).encode())

    def item(self, custom_id: str, prompt: str | Conversation) -> bytes:
        """Pure: one request item (no separator); raises ``encode``'s failure."""
        return unwrap(self.encode(custom_id, prompt))

    def items(self, custom_ids: Sequence[str], prompts: Sequence[str | Conversation]
              ) -> Iterator[bytes]:
        """Pure, lazy: every item, in order; the first that cannot be encoded raises its error
        naming the input (``batching.encoded_items``), before anything is sent."""
        return batching.encoded_items(self.encode, custom_ids, prompts)


def build_request_encoder(request: GenerationRequest) -> Result[RequestEncoder, LLMError]:
    """Pure: the encoder for batch items of ``request``'s model, config and schema; each item's
    ``params`` is what ``build_messages_request`` makes for that input (a prompt or a
    conversation). Fails as it fails for a prompt."""
    built = build_messages_request(evolve(request, input=_SLOT))
    if isinstance(built, Failure):
        return built
    wire = built.unwrap()
    pieces = _ENCODER.encode({"custom_id": _SLOT, "params": wire.json}).split(
        _ENCODER.encode(_SLOT))
    if len(pieces) != 3:
        raise ValueError("cannot template the batch request")
    head, middle, tail = (piece.encode() for piece in pieces)
    return Success(RequestEncoder(head=head, middle=middle, tail=tail, warnings=wire.warnings,
                                  request=request))


#: What ``split_lines`` may put in one batch, so that the body with its brackets and the commas
#: between items (at most one per request) stays within ``MAX_BYTES``.
ITEM_BYTES_LIMIT = MAX_BYTES - len(_HEAD) - len(_TAIL) - MAX_REQUESTS
#: What goes between two items of the body.
SEPARATOR = b","


def build_create_batch(items: Callable[[], Iterator[bytes]], size: int) -> WireRequest:
    """Pure: ``POST /v1/messages/batches`` whose ``requests`` array holds the items that
    ``items`` streams (already joined by ``SEPARATOR``, ``size`` bytes in all; each call yields
    them all again, for a retry)."""

    def body() -> Iterator[bytes]:
        yield _HEAD
        yield from items()
        yield _TAIL

    # Not idempotent: a create whose answer was lost may have made a batch; a blind retry would
    # make (and bill) a second one.
    return WireRequest(
        method="POST", path=BATCHES_PATH,
        content=StreamBody(length=len(_HEAD) + size + len(_TAIL), chunks=body),
        headers={"Content-Type": "application/json", "anthropic-version": API_VERSION},
        idempotent=False,
    )


def build_retrieve_batch(batch_id: str) -> WireRequest:
    """Pure: ``GET /v1/messages/batches/{id}``."""
    return WireRequest(method="GET", path=f"{BATCHES_PATH}/{path_segment(batch_id)}",
                       headers={"anthropic-version": API_VERSION})


def build_cancel_batch(batch_id: str) -> WireRequest:
    """Pure: ``POST /v1/messages/batches/{id}/cancel``."""
    return WireRequest(method="POST", path=f"{BATCHES_PATH}/{path_segment(batch_id)}/cancel",
                       headers={"anthropic-version": API_VERSION})


def build_results(batch_id: str) -> WireRequest:
    """Pure: ``GET /v1/messages/batches/{id}/results``. Built from the id on the client's own
    base URL rather than from the batch's ``results_url``, so that the API key is only ever
    sent where the client was pointed."""
    return WireRequest(method="GET", path=f"{BATCHES_PATH}/{path_segment(batch_id)}/results",
                       headers={"anthropic-version": API_VERSION})


def split_batch_id(batch_id: object) -> tuple[str, ...]:
    """Pure: the provider batch ids behind a handle id, each checked by
    ``batching.batch_id_problem``; ``ConfigurationError`` for anything else."""
    return batching.split_job_id(batch_id, PART_SEPARATOR, _ID_KIND)


def check_part_id(part_id: object) -> str:
    """Pure: ``part_id`` if it is one provider batch id (a saved part's), else
    ``ConfigurationError``."""
    return batching.check_batch_id(part_id, PART_SEPARATOR, "an Anthropic batch id")


# --- parsing --------------------------------------------------------------------------------------


@frozen(kw_only=True)
class AnthropicBatch:
    """What llmbackend reads from a ``message_batch`` object."""

    id: str
    status: BatchStatus
    counts: BatchCounts
    ended: bool = False
    raw: Mapping[str, Any] = field(factory=dict, repr=False, eq=False)


def parse_batch_object(response: WireResponse) -> Result[AnthropicBatch, LLMError]:
    """Pure: a ``message_batch`` object (from create, retrieve or cancel), or the failure.

    ``processing_status`` is normalized: ``in_progress`` -> running, ``canceling`` ->
    cancelling, and ``ended`` -> cancelled when a cancel was asked for, expired when requests
    expired, completed otherwise (the status still equals ``"ended"``).
    """
    if not 200 <= response.status < 300:
        return Failure(parse_error(response, route=f"POST {BATCHES_PATH}"))
    body = json_object(response.body)
    batch_id = body.get("id") if body is not None else None
    status = body.get("processing_status") if body is not None else None
    if body is None or not isinstance(batch_id, str) or not isinstance(status, str):
        return Failure(ResponseParseError(
            message=f"{LABEL} answered with a body that is not a message batch (no id or "
            "processing_status)", provider=NAME, body=excerpt(response.body)))
    problem = batching.batch_id_problem(batch_id, PART_SEPARATOR)
    if problem is not None:
        return Failure(batching.unusable_batch_id(batch_id, problem, provider=NAME, label=LABEL,
                                                  body=excerpt(response.body)))
    counts = body.get("request_counts")
    counts = counts if isinstance(counts, dict) else {}
    numbers = {key: (read_count(counts.get(key)) or 0) for key in
               ("processing", "succeeded", "errored", "canceled", "expired")}
    state = None
    if status == "ended":
        state = ("cancelled" if body.get("cancel_initiated_at") else
                 "expired" if numbers["expired"] else "completed")
    return Success(AnthropicBatch(
        id=batch_id,
        status=BatchStatus(status, state),
        counts=BatchCounts(total=sum(numbers.values()), completed=numbers["succeeded"],
                           failed=numbers["errored"] + numbers["canceled"] + numbers["expired"]),
        ended=status == "ended",
        raw=body,
    ))


def parse_result_line(
    request: GenerationRequest, line: bytes
) -> tuple[str | None, Result[Any, LLMError]]:
    """Pure: the custom id of one results line, and the outcome it reports.

    ``succeeded`` -> the message, parsed exactly as a synchronous answer; ``errored`` ->
    ``ProviderError`` with Anthropic's error type; ``canceled`` / ``expired`` -> ``ProviderError``
    with code ``batch_cancelled`` / ``batch_expired``. An unreadable line has custom id ``None``.
    Never raises, whatever the bytes.
    """
    try:
        item = json.loads(line)
    except (ValueError, RecursionError):
        item = None
    custom_id = item.get("custom_id") if isinstance(item, dict) else None
    if not isinstance(custom_id, str):
        return None, Failure(ResponseParseError(
            message="a batch result line is not an object with a custom_id", provider=NAME,
            body=excerpt(line)))
    result = item.get("result") if isinstance(item, dict) else None
    kind = result.get("type") if isinstance(result, dict) else None
    if kind == "succeeded":
        message = result.get("message") if isinstance(result, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            return custom_id, parse_message_object(request, message)
    elif kind == "errored":
        outer = result.get("error") if isinstance(result, dict) else None
        inner = outer.get("error") if isinstance(outer, dict) else None
        error = inner if isinstance(inner, dict) else outer if isinstance(outer, dict) else {}
        error_type = error.get("type") if isinstance(error.get("type"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else "no message"
        return custom_id, Failure(ProviderError(
            message=f"{LABEL} batch request {custom_id!r} failed"
            + (f" ({error_type})" if error_type else "") + f": {message}",
            provider=NAME, error_type=error_type, error_code="batch_errored",
            body=excerpt(line)))
    elif kind in ("canceled", "expired"):
        code = "batch_cancelled" if kind == "canceled" else "batch_expired"
        why = "the batch was cancelled" if kind == "canceled" else "the batch expired"
        return custom_id, Failure(ProviderError(
            message=f"{LABEL} batch request {custom_id!r} was not run: {why} before it was "
            "reached; submit it again", provider=NAME, error_type="batch_error",
            error_code=code))
    return custom_id, Failure(ResponseParseError(
        message=f"the batch result line for {custom_id!r} is not a succeeded, errored, "
        "canceled or expired result", provider=NAME, body=excerpt(line)))


def missing_result_error(batch: AnthropicBatch, custom_id: str, unreadable_lines: int = 0
                         ) -> LLMError:
    """Pure: the failure of a request with no line in the results file."""
    unread = (f"; {unreadable_lines} result line(s) could not be read and may have held it"
              if unreadable_lines else "")
    return ProviderError(
        message=f"{LABEL} batch {batch.id} ended but its results have no line for request "
        f"{custom_id!r}{unread}", provider=NAME, error_type="batch_error",
        error_code="missing_result")


