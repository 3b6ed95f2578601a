"""Pure: OpenAI's Batch API over the Responses endpoint, as request builders and parsers.

Reference: https://platform.openai.com/docs/guides/batch and the API reference for Files
(``POST /files``, ``GET /files/{id}/content``) and Batches (``POST /batches``,
``GET /batches/{id}``, ``POST /batches/{id}/cancel``).

The lifecycle: the inputs become a JSONL file, one ``{"custom_id", "method", "url", "body"}`` line
per input, where ``body`` is exactly the body the synchronous builder makes for that prompt (or
conversation); the file is uploaded with ``purpose=batch``; a batch is created on it for
``/v1/responses``; when it ends, its **output file** holds the answers and its **error file** the
requests that failed, each line naming its ``custom_id``, in no particular order. Inputs the batch
never ran (it expired or was cancelled) may be in the error file or in neither file: every input
is accounted for anyway.

Strategy: one batch holds at most ``MAX_REQUESTS`` requests and ``MAX_FILE_BYTES`` of input; a
larger job is split into several batches (``batching.split_lines``) behind one handle whose id
joins theirs with ``+``.
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
from llmbackend.providers.openai import (
    LABEL,
    NAME,
    build_response_request,
    parse_error,
    parse_response,
    parse_response_object,
)
from llmbackend.types import (
    Generation,
    GenerationConfig,
    GenerationRequest,
    StreamBody,
    StructuredOutput,
    WireRequest,
    WireResponse,
)

__all__ = [
    "BATCH_OPTIONS",
    "COMPLETION_WINDOWS",
    "CUSTOM_ID",
    "ENDPOINT",
    "MAX_FILE_BYTES",
    "MAX_METADATA_VALUE",
    "MAX_REQUESTS",
    "PART_SEPARATOR",
    "BatchIssue",
    "InputLine",
    "LineEncoder",
    "OpenAIBatch",
    "OpenAIBatchOptions",
    "apply_system",
    "batch_from_object",
    "build_cancel_batch",
    "build_create_batch",
    "build_file_content",
    "build_file_upload",
    "build_line_encoder",
    "build_list_batches",
    "build_retrieve_batch",
    "check_batch",
    "check_custom_ids",
    "check_part_id",
    "find_batch",
    "join_batch_ids",
    "missing_result_error",
    "parse_batch_list",
    "parse_batch_object",
    "parse_batch_options",
    "parse_file_object",
    "parse_input_line",
    "parse_result_line",
    "schema_from_body",
    "split_batch_id",
]

#: The endpoint every line of an llmbackend batch targets.
ENDPOINT = "/v1/responses"
#: OpenAI's limits for one batch: requests per input file, and bytes of input file.
MAX_REQUESTS = 50_000
#: "200 MB": counted in decimal megabytes, the smaller reading, so that no part is ever refused.
MAX_FILE_BYTES = 200_000_000
#: The completion windows OpenAI accepts (the API reference: "Currently only 24h").
COMPLETION_WINDOWS = ("24h",)
#: Metadata values are limited to 512 characters.
MAX_METADATA_VALUE = 512
#: OpenAI does not publish a rule for custom ids; llmbackend keeps to one that every batch API it
#: knows accepts (at most 64 characters of letters, digits, ``_ - . :``), so that an id is
#: refused here, before any upload, rather than by the provider after it.
CUSTOM_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: Joins the provider batch ids of a split batch into one handle id; so one provider batch id
#: never holds it (``batching.batch_id_problem`` refuses it, where ids come in and go out).
PART_SEPARATOR = "+"
_ID_KIND = ("an OpenAI batch id (like 'batch_abc123', or several joined by '+' for a split "
            "batch)")
#: The options ``batch_options`` accepts for OpenAI.
BATCH_OPTIONS = ("mode", "display_name", "completion_window", "custom_ids", "system",
                 "max_requests_per_batch")


# --- options --------------------------------------------------------------------------------------


@frozen(kw_only=True)
class OpenAIBatchOptions:
    """The checked ``batch_options`` of an OpenAI batch (see ``parse_batch_options``)."""

    display_name: str | None = None
    completion_window: str = "24h"
    custom_ids: tuple[str, ...] | None = field(default=None, repr=False)
    system: str | None = None
    max_requests_per_batch: int = MAX_REQUESTS


def parse_batch_options(options: Mapping[str, Any] | None, count: int) -> OpenAIBatchOptions:
    """Pure: ``batch_options`` checked for a batch of ``count`` inputs.

    - ``display_name``: a string of at most 512 characters, stored in the batch's metadata;
    - ``completion_window``: ``"24h"``, the only window OpenAI accepts;
    - ``custom_ids``: one unique id per input, each 1 to 64 characters of letters, digits and
      ``_ - . :``; results are matched to inputs by them (default ``request-0``, ``request-1``...);
    - ``system``: instructions for every request (as ``config.extra["system"]`` does);
    - ``max_requests_per_batch``: split into provider batches of at most this many requests
      (default and most 50,000; a smaller value keeps each part under a token quota).

    Raises ``ConfigurationError`` naming the option and the fix; nothing has been uploaded then.
    """
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(message="batch_options must be a dict, got "
                                 f"{type(options).__name__}", key="batch_options")
    batching.check_option_names(options, BATCH_OPTIONS, "OpenAI")
    display_name = options.get("display_name")
    if display_name is not None and (
        not isinstance(display_name, str) or len(display_name) > MAX_METADATA_VALUE
    ):
        raise ConfigurationError(
            message=f"batch option 'display_name' must be a string of at most "
            f"{MAX_METADATA_VALUE} characters (OpenAI stores it as batch metadata)",
            key="display_name",
        )
    window = options.get("completion_window", "24h")
    if window not in COMPLETION_WINDOWS:
        raise ConfigurationError(
            message=f"batch option 'completion_window' must be one of {COMPLETION_WINDOWS} "
            f"(the only windows OpenAI accepts), got {window!r}",
            key="completion_window",
        )
    system = options.get("system")
    if system is not None and not isinstance(system, str):
        raise ConfigurationError(message="batch option 'system' must be a string",
                                 key="system")
    limit = options.get("max_requests_per_batch", MAX_REQUESTS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_REQUESTS:
        raise ConfigurationError(
            message=f"batch option 'max_requests_per_batch' must be a whole number from 1 to "
            f"{MAX_REQUESTS:,} (OpenAI's limit), got {limit!r}",
            key="max_requests_per_batch",
        )
    custom_ids = options.get("custom_ids")
    return OpenAIBatchOptions(
        display_name=display_name,
        completion_window=window,
        custom_ids=None if custom_ids is None else check_custom_ids(custom_ids, count),
        system=system,
        max_requests_per_batch=limit,
    )


def check_custom_ids(custom_ids: object, count: int) -> tuple[str, ...]:
    """Pure: ``custom_ids`` as a tuple, after checking there is one valid, unique id per input.

    Raises ``ConfigurationError`` naming the first offending id and its position.
    """
    return batching.check_custom_ids(
        custom_ids, count, CUSTOM_ID,
        "1 to 64 characters of letters, digits, '_', '-', '.' and ':'")




def apply_system(config: GenerationConfig, system: str | None) -> GenerationConfig:
    """Pure: ``config`` with the ``system`` batch option as ``extra["system"]``.

    Raises ``ConfigurationError`` when both are given and differ.
    """
    if system is None:
        return config
    present = config.extra.get("system")
    if present is not None and present != system:
        raise ConfigurationError(
            message="batch option 'system' and config.extra['system'] are both set and differ; "
            "set the instructions in one place",
            key="system",
        )
    return evolve(config, extra={**config.extra, "system": system})


# --- the input file -------------------------------------------------------------------------------

#: Stands in for the prompt while the body template is encoded once for all lines.
_SLOT = "\x00llmbackend:input\x00"
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@frozen(kw_only=True)
class LineEncoder:
    """Encodes batch input lines fast: the request body is built and encoded once, with a slot
    where each prompt goes, so a prompt's line costs two string encodings and a join. A
    conversation's line is built by ``build_response_request`` itself (its system messages and
    turns change more of the body than the slot), so it is the same synchronous call's body."""

    head: bytes = field(repr=False)  # '{"custom_id":'
    middle: bytes = field(repr=False)  # ',"method":"POST","url":...,"body":{...,"input":'
    tail: bytes = field(repr=False)  # '...}}\n'
    warnings: tuple[str, ...] = ()
    #: The request the template was built from (its input the slot): conversations build from it.
    request: GenerationRequest = field(repr=False, eq=False)

    def encode(self, custom_id: str, prompt: str | Conversation) -> Result[bytes, LLMError]:
        """Pure: the JSONL line (newline included) for one prompt or conversation, or the
        ``UnsupportedError`` of a conversation the Responses API cannot take (a prefill, system
        messages beside ``config.extra["system"]``: see ``openai.build_input``). A prompt never
        fails."""
        if isinstance(prompt, str):
            return Success(b"".join((self.head, _ENCODER.encode(custom_id).encode(),
                                     self.middle, _ENCODER.encode(prompt).encode(), self.tail)))
        return build_response_request(evolve(self.request, input=prompt)).map(
            lambda wire: (_ENCODER.encode({"custom_id": custom_id, "method": "POST",
                                           "url": ENDPOINT, "body": wire.json})
                          + "\n").encode())

    def line(self, custom_id: str, prompt: str | Conversation) -> bytes:
        """Pure: the JSONL line (newline included) for one prompt or conversation; raises the
        ``UnsupportedError`` that ``encode`` reports for a conversation that cannot be sent."""
        return unwrap(self.encode(custom_id, prompt))

    def lines(self, custom_ids: Sequence[str], prompts: Sequence[str | Conversation]
              ) -> Iterator[bytes]:
        """Pure, lazy: the line of every input, in order. The first conversation that cannot be
        sent raises its ``UnsupportedError`` naming the input (``batching.encoded_items``),
        before any line after it is made: a batch writes every line before it uploads any."""
        return batching.encoded_items(self.encode, custom_ids, prompts)


def build_line_encoder(request: GenerationRequest) -> Result[LineEncoder, LLMError]:
    """Pure: the encoder for batch lines of ``request``'s model, config and schema.

    Each line's ``body`` is what ``build_response_request`` makes for that prompt or
    conversation, so a batch item is sent exactly as the same synchronous call would be. Fails as
    that builder fails (e.g. ``UnsupportedError`` for ``seed``), before anything is uploaded.
    """
    template = evolve(request, input=_SLOT)
    built = build_response_request(template)
    if isinstance(built, Failure):
        return built
    wire = built.unwrap()
    envelope = _ENCODER.encode({"custom_id": _SLOT, "method": "POST", "url": ENDPOINT,
                                "body": wire.json})
    slot = _ENCODER.encode(_SLOT)
    pieces = envelope.split(slot)
    if len(pieces) != 3:  # the slot text appears elsewhere: impossible short of sabotage
        raise ValueError("cannot template the batch line")
    head, middle, tail = (piece.encode() for piece in pieces)
    return Success(LineEncoder(head=head, middle=middle, tail=tail + b"\n",
                               warnings=wire.warnings, request=template))


def build_file_upload(
    filename: str, size: int, chunks: Callable[[], Iterator[bytes]], boundary: str
) -> WireRequest:
    """Pure: ``POST /files`` with ``purpose=batch`` and the JSONL file as a multipart form,
    streamed from ``chunks`` (``size`` bytes). ``boundary`` is the multipart boundary (random,
    chosen by the caller, since this function cannot draw random numbers)."""
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
        f"filename=\"{filename}\"\r\nContent-Type: application/jsonl\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        yield from chunks()
        yield tail

    return WireRequest(
        method="POST", path="/files",
        content=StreamBody(length=len(head) + size + len(tail), chunks=body),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def build_create_batch(
    input_file_id: str, options: OpenAIBatchOptions, part: int, parts: int
) -> WireRequest:
    """Pure: ``POST /batches`` for one uploaded input file. ``part`` (from 0) of ``parts`` is
    recorded in the metadata when a job was split."""
    metadata: dict[str, str] = {}
    if options.display_name is not None:
        metadata["display_name"] = options.display_name
    if parts > 1:
        metadata["llmbackend_part"] = f"{part + 1}/{parts}"
    body: dict[str, Any] = {"input_file_id": input_file_id, "endpoint": ENDPOINT,
                            "completion_window": options.completion_window}
    if metadata:
        body["metadata"] = metadata
    # Not idempotent: a create whose answer was lost may have made a batch, and a blind retry
    # would make (and bill) a second one. The shell looks for it instead (``find_batch``).
    return WireRequest(method="POST", path="/batches", json=body, idempotent=False)


def build_list_batches(limit: int = 100) -> WireRequest:
    """Pure: ``GET /batches`` (the most recent first)."""
    return WireRequest(method="GET", path=f"/batches?limit={limit}")


def build_retrieve_batch(batch_id: str) -> WireRequest:
    """Pure: ``GET /batches/{id}``."""
    return WireRequest(method="GET", path=f"/batches/{path_segment(batch_id)}")


def build_cancel_batch(batch_id: str) -> WireRequest:
    """Pure: ``POST /batches/{id}/cancel``."""
    return WireRequest(method="POST", path=f"/batches/{path_segment(batch_id)}/cancel")


def build_file_content(file_id: str) -> WireRequest:
    """Pure: ``GET /files/{id}/content`` (the raw bytes of an input, output or error file)."""
    return WireRequest(method="GET", path=f"/files/{path_segment(file_id)}/content")


# --- batch ids ------------------------------------------------------------------------------------


def split_batch_id(batch_id: object) -> tuple[str, ...]:
    """Pure: the provider batch ids behind a handle id (one, or several joined by ``+``), each
    checked by ``batching.batch_id_problem``; ``ConfigurationError`` for anything else."""
    return batching.split_job_id(batch_id, PART_SEPARATOR, _ID_KIND)


def check_part_id(part_id: object) -> str:
    """Pure: ``part_id`` if it is one provider batch id (a saved part's), else
    ``ConfigurationError``."""
    return batching.check_batch_id(part_id, PART_SEPARATOR, "an OpenAI batch id")


def join_batch_ids(ids: Sequence[str]) -> str:
    """Pure: the handle id of a batch made of these provider batches."""
    return PART_SEPARATOR.join(ids)


# --- parsing --------------------------------------------------------------------------------------


@frozen(kw_only=True)
class BatchIssue:
    """A batch-level error from the batch object's ``errors`` (e.g. a validation failure).
    ``line`` is the 1-based line of the input file it is about, when it is about one."""

    code: str | None
    message: str
    line: int | None = None


@frozen(kw_only=True)
class OpenAIBatch:
    """What llmbackend reads from an OpenAI batch object."""

    id: str
    status: BatchStatus
    counts: BatchCounts
    endpoint: str | None = None
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    issues: tuple[BatchIssue, ...] = ()
    raw: Mapping[str, Any] = field(factory=dict, repr=False, eq=False)


def parse_file_object(response: WireResponse) -> Result[str, LLMError]:
    """Pure: the id of the file that ``POST /files`` created, or the failure reported."""
    if not 200 <= response.status < 300:
        return Failure(parse_error(response, route="POST /files"))
    body = json_object(response.body)
    file_id = body.get("id") if body is not None else None
    if not isinstance(file_id, str) or not file_id:
        return Failure(ResponseParseError(
            message=f"{LABEL} answered the file upload with a body that has no file id",
            provider=NAME, body=excerpt(response.body),
        ))
    return Success(file_id)


def parse_batch_object(response: WireResponse) -> Result[OpenAIBatch, LLMError]:
    """Pure: a batch object (from create, retrieve or cancel), or the failure reported."""
    if not 200 <= response.status < 300:
        return Failure(parse_error(response, route="POST /batches"))
    body = json_object(response.body)
    batch = batch_from_object(body) if body is not None else None
    if batch is None:
        return Failure(ResponseParseError(
            message=f"{LABEL} answered with a body that is not a batch object (no id or status)",
            provider=NAME, body=excerpt(response.body),
        ))
    return check_batch(batch, excerpt(response.body))


def check_batch(batch: OpenAIBatch, body: str | None = None) -> Result[OpenAIBatch, LLMError]:
    """Pure: ``batch``, unless its id is one llmbackend cannot use (``batching.batch_id_problem``:
    it could not be attached, restored or printed later): then the error that shows it."""
    problem = batching.batch_id_problem(batch.id, PART_SEPARATOR)
    if problem is None:
        return Success(batch)
    return Failure(batching.unusable_batch_id(batch.id, problem, provider=NAME, label=LABEL,
                                              body=body))


def batch_from_object(body: dict[str, Any]) -> OpenAIBatch | None:
    """Pure: what llmbackend reads from a decoded batch object (``None`` without id or status)."""
    batch_id = body.get("id")
    status = body.get("status")
    if not isinstance(batch_id, str) or not isinstance(status, str):
        return None
    counts = body.get("request_counts")
    counts = counts if isinstance(counts, dict) else {}
    return OpenAIBatch(
        id=batch_id,
        status=BatchStatus(status),
        counts=BatchCounts(total=(read_count(counts.get("total")) or 0),
                           completed=(read_count(counts.get("completed")) or 0),
                           failed=(read_count(counts.get("failed")) or 0)),
        endpoint=_string(body.get("endpoint")),
        input_file_id=_string(body.get("input_file_id")),
        output_file_id=_string(body.get("output_file_id")),
        error_file_id=_string(body.get("error_file_id")),
        issues=_issues(body.get("errors")),
        raw=body,
    )


def _issues(errors: object) -> tuple[BatchIssue, ...]:
    data = errors.get("data") if isinstance(errors, dict) else None
    if not isinstance(data, list):
        return ()
    return tuple(
        BatchIssue(code=_string(item.get("code")),
                   message=_string(item.get("message")) or "no message",
                   line=item["line"] if isinstance(item.get("line"), int) else None)
        for item in data if isinstance(item, dict)
    )


def parse_batch_list(response: WireResponse) -> Result[list[OpenAIBatch], LLMError]:
    """Pure: the batch objects of a ``GET /batches`` page (unreadable entries are skipped)."""
    if not 200 <= response.status < 300:
        return Failure(parse_error(response, route="GET /batches"))
    body = json_object(response.body)
    data = body.get("data") if body is not None else None
    if not isinstance(data, list):
        return Failure(ResponseParseError(
            message=f"{LABEL} answered with a body that is not a list of batches",
            provider=NAME, body=excerpt(response.body)))
    batches = (batch_from_object(item) for item in data if isinstance(item, dict))
    return Success([batch for batch in batches if batch is not None])


def find_batch(batches: Sequence[OpenAIBatch], input_file_id: str) -> OpenAIBatch | None:
    """Pure: the batch made on ``input_file_id``, if there is one (file ids are unique to an
    upload, so at most one batch of ours uses it)."""
    return next((batch for batch in batches if batch.input_file_id == input_file_id), None)


def parse_result_line(
    request: GenerationRequest, line: bytes
) -> tuple[str | None, Result[Generation[str], LLMError]]:
    """Pure: the custom id of one output- or error-file line, and the outcome it reports.

    - ``error`` set (e.g. ``batch_expired``) -> ``ProviderError`` with OpenAI's code;
    - ``response.status_code`` not 2xx -> ``HTTPStatusError``, as the same synchronous call gives;
    - a 2xx response -> parsed exactly as ``parse_response`` parses a synchronous answer;
    - a line that is not such an object -> custom id ``None`` (it cannot be attributed) or, with
      an id, ``ResponseParseError``.
    Never raises, whatever the bytes.
    """
    try:
        item = json.loads(line)
    except (ValueError, RecursionError):
        item = None
    if not isinstance(item, dict):
        return None, Failure(ResponseParseError(
            message="a batch result line is not a JSON object", provider=NAME,
            body=excerpt(line)))
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str):
        return None, Failure(ResponseParseError(
            message="a batch result line has no custom_id", provider=NAME, body=excerpt(line)))
    error = item.get("error")
    if isinstance(error, dict):
        code = _string(error.get("code"))
        message = _string(error.get("message")) or "no message"
        return custom_id, Failure(ProviderError(
            message=f"{LABEL} batch request {custom_id!r} failed"
            + (f" ({code})" if code else "") + f": {message}",
            provider=NAME, error_type="batch_error", error_code=code, body=excerpt(line),
        ))
    response = item.get("response")
    status = response.get("status_code") if isinstance(response, dict) else None
    if not isinstance(response, dict) or not isinstance(status, int):
        return custom_id, Failure(ResponseParseError(
            message=f"batch result line for {custom_id!r} has neither an error nor a response "
            "with a status code", provider=NAME, body=excerpt(line)))
    body = response.get("body")
    if not 200 <= status < 300 or not isinstance(body, dict) or not isinstance(
        body.get("output"), list
    ):
        # The synchronous parser reads error bodies and reports a body that is not a Responses
        # object (e.g. a chat completion from a batch of another endpoint).
        raw = _as_bytes(body)
        return custom_id, parse_response(request, WireResponse(status=status, body=raw))
    return custom_id, parse_response_object(request, body)


@frozen(kw_only=True)
class InputLine:
    """What a line of an input file says: its custom id and its request body."""

    custom_id: str | None
    body: Mapping[str, Any] | None = field(default=None, repr=False)


def parse_input_line(line: bytes) -> InputLine:
    """Pure: the custom id and body of one input-file line (``None`` where unreadable)."""
    try:
        item = json.loads(line)
    except (ValueError, RecursionError):
        return InputLine(custom_id=None)
    if not isinstance(item, dict):
        return InputLine(custom_id=None)
    body = item.get("body")
    return InputLine(custom_id=_string(item.get("custom_id")),
                     body=body if isinstance(body, dict) else None)


def schema_from_body(body: Mapping[str, Any] | None) -> StructuredOutput[Any] | None:
    """Pure: the structured output a request body asked for (``text.format`` of type
    ``json_schema``), to validate the answers of a batch resumed from its id alone; ``None`` when
    it asked for text or the schema cannot be read back."""
    text = body.get("text") if body is not None else None
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        return None
    try:
        return StructuredOutput(schema=schema, name=str(fmt.get("name", "response")))
    except ConfigurationError:
        return None


def missing_result_error(batch: OpenAIBatch, custom_id: str, line: int,
                         unreadable_lines: int = 0) -> LLMError:
    """Pure: the failure of an input that has no line in the output or error file.

    ``line`` is the input's 1-based line in the batch's input file, which OpenAI's validation
    errors refer to. The reason follows from the batch's end: it expired or was cancelled before
    the request ran, it failed validation, or (completed) the files simply lack the line.
    """
    status = batch.status.value
    if status in ("expired", "cancelled"):
        code = "batch_expired" if status == "expired" else "batch_cancelled"
        why = ("the batch expired (its completion window ran out)" if status == "expired"
               else "the batch was cancelled")
        return ProviderError(
            message=f"{LABEL} batch request {custom_id!r} was not run: {why} before it was "
            "reached; submit it again", provider=NAME, error_type="batch_error", error_code=code,
        )
    if status == "failed":
        own = [issue for issue in batch.issues if issue.line == line]
        general = [issue for issue in batch.issues if issue.line is None]
        chosen = own or general or list(batch.issues)
        first = chosen[0] if chosen else BatchIssue(code=None, message="no reason given")
        where = "this request" if own else "the batch"
        return ProviderError(
            message=f"{LABEL} batch {batch.id} failed, so request {custom_id!r} was not run; "
            f"{where}: {first.message}"
            + (f" (and {len(chosen) - 1} more errors)" if len(chosen) > 1 else ""),
            provider=NAME, error_type="batch_failed", error_code=first.code,
        )
    unread = (f"; {unreadable_lines} result line(s) could not be read and may have held it"
              if unreadable_lines else "")
    return ProviderError(
        message=f"{LABEL} batch {batch.id} ended {status!r} but its output and error files have "
        f"no line for request {custom_id!r}{unread}",
        provider=NAME, error_type="batch_error", error_code="missing_result",
    )


def _as_bytes(body: object) -> bytes:
    """A result line's response body as bytes for the synchronous parser: a string as UTF-8
    (a lone surrogate replaced), anything else as JSON (empty if JSON cannot write it back)."""
    if isinstance(body, str):
        return body.encode("utf-8", "replace")
    try:
        return json.dumps(body).encode()
    except (RecursionError, ValueError, TypeError):
        return b""


def _string(value: object) -> str | None:
    return value if isinstance(value, str) else None


