"""Pure: the Gemini Batch API (``batchGenerateContent``) and the Files API it uses, as request
builders and parsers.

Reference: https://ai.google.dev/gemini-api/docs/batch-mode and https://ai.google.dev/api/batch-mode,
https://ai.google.dev/api/files (resumable upload), and the REST calls of the ``google-genai`` SDK.

Two ways in: **inline**, the requests inside the create body (up to ``INLINE_LIMIT`` bytes), and
**file**, a JSONL file of ``{"key", "request"}`` lines uploaded first. Each request's body is
exactly what the synchronous builder makes for that prompt. Results come back inline (a list of
responses) or as a JSONL file of ``{"key", "response" | "error"}`` lines.

Strategy: results are never matched by position. Inline responses have been reported out of
order, so every inline request carries its key in ``metadata`` and each response is matched by
the key it echoes; a response without one is never guessed at. A batch resumed from its name
alone learns its keys from the results, in natural order (input order for the default keys).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
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
    excerpt_json,
    unwrap,
)
from llmbackend.messages import Conversation
from llmbackend.providers import json_object, path_segment, read_count
from llmbackend.providers.gemini import (
    API_VERSION,
    LABEL,
    NAME,
    SYSTEM_KEYS,
    build_contents,
    build_request_body,
    model_path,
    parse_error,
    parse_response_object,
)
from llmbackend.types import GenerationRequest, StreamBody, WireRequest, WireResponse

__all__ = [
    "BATCH_OPTIONS",
    "INLINE_LIMIT",
    "MAX_FILE_BYTES",
    "NAME_PREFIX",
    "NAME_RESERVED",
    "GeminiBatch",
    "GeminiBatchOptions",
    "ItemEncoder",
    "batch_name",
    "build_cancel_batch",
    "build_download",
    "build_file_create",
    "build_inline_create",
    "build_item_encoder",
    "build_retrieve_batch",
    "build_upload_finish",
    "build_upload_start",
    "inline_body_size",
    "inline_key",
    "missing_result_error",
    "parse_batch",
    "parse_batch_options",
    "parse_file",
    "parse_result",
    "parse_result_line",
    "parse_upload_url",
    "upload_path",
]

#: Inline requests may make a create body of at most 20 MB; above it llmbackend uses a file.
INLINE_LIMIT = 20_000_000
#: The largest input file the Batch API takes (2 GB).
MAX_FILE_BYTES = 2_000_000_000
#: The options ``batch_options`` accepts for Gemini.
BATCH_OPTIONS = ("mode", "display_name", "custom_ids")
#: A batch's name is ``batches/<id>``; the id is one path segment before a custom verb
#: (``batches/<id>:cancel``), so it never holds ``/`` or ``:`` (``batching.batch_id_problem``
#: refuses them, where names come in and go out).
NAME_PREFIX = "batches/"
NAME_RESERVED = "/:"
_STATES = ("BATCH_STATE_", "JOB_STATE_")


@frozen(kw_only=True)
class GeminiBatchOptions:
    """The checked ``batch_options`` of a Gemini batch."""

    display_name: str | None = None
    custom_ids: tuple[str, ...] | None = field(default=None, repr=False)


def parse_batch_options(options: Mapping[str, Any], count: int) -> GeminiBatchOptions:
    """Pure: ``display_name`` (a string, the batch's ``displayName``) and ``custom_ids`` (one
    unique, non-empty key per input; default ``request-0``, ``request-1``...). Raises
    ``ConfigurationError`` naming the option; nothing has been sent then."""
    batching.check_option_names(options, BATCH_OPTIONS, "Gemini")
    display_name = options.get("display_name")
    if display_name is not None and not isinstance(display_name, str):
        raise ConfigurationError(message="batch option 'display_name' must be a string",
                                 key="display_name")
    custom_ids = options.get("custom_ids")
    return GeminiBatchOptions(
        display_name=display_name,
        custom_ids=None if custom_ids is None else batching.check_custom_ids(
            custom_ids, count, None))


# --- requests -------------------------------------------------------------------------------------

_SLOT = "\x00llmbackend:input\x00"
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@frozen(kw_only=True)
class ItemEncoder:
    """Encodes one input's batch item fast, in either form: the request body is built and
    encoded once, with slots for the key and the prompt (a string), or for the whole
    ``contents`` (a conversation, whose ``systemInstruction`` follows it when it has system
    messages). Each item is byte for byte what the synchronous builder makes for that input."""

    inline_parts: tuple[bytes, bytes, bytes] = field(repr=False)
    line_parts: tuple[bytes, bytes, bytes] = field(repr=False)
    inline_frame: tuple[bytes, bytes, bytes] = field(repr=False)
    line_frame: tuple[bytes, bytes, bytes] = field(repr=False)
    #: The ``extra`` key that gives the config's system instruction, if one does.
    system_key: str | None = None

    def encode_inline(self, key: str, prompt: str | Conversation) -> Result[bytes, LLMError]:
        """Pure: ``{"request": {...}, "metadata": {"key": key}}`` (no separator), or the
        ``UnsupportedError`` the synchronous builder gives for this conversation (a trailing
        assistant turn, or a system message beside the config's system instruction)."""
        return self._encode(self.inline_parts, self.inline_frame, key, prompt)

    def encode_line(self, key: str, prompt: str | Conversation) -> Result[bytes, LLMError]:
        """Pure: the file-mode JSONL line ``{"key": key, "request": {...}}`` with its newline,
        or the failure ``encode_inline`` gives."""
        return self._encode(self.line_parts, self.line_frame, key, prompt).map(
            lambda line: line + b"\n")

    def inline(self, key: str, prompt: str | Conversation) -> bytes:
        """Pure: ``encode_inline``'s item; raises its failure."""
        return unwrap(self.encode_inline(key, prompt))

    def line(self, key: str, prompt: str | Conversation) -> bytes:
        """Pure: ``encode_line``'s line; raises its failure."""
        return unwrap(self.encode_line(key, prompt))

    def _encode(self, parts: tuple[bytes, bytes, bytes], frame: tuple[bytes, bytes, bytes],
                key: str, prompt: str | Conversation) -> Result[bytes, LLMError]:
        if isinstance(prompt, str):
            return Success(_fill(parts, key, prompt))
        before, after, tail = frame

        def joined(built: tuple[list[dict[str, Any]], dict[str, Any] | None]) -> bytes:
            contents, system = built
            # In both forms the request (holding the contents) comes before the key; the
            # builder puts a conversation's systemInstruction right after its contents.
            lifted = b"" if system is None else b',"systemInstruction":' + _ENCODER.encode(
                system).encode()
            return b"".join((before, _ENCODER.encode(contents).encode(), lifted, after,
                             _ENCODER.encode(key).encode(), tail))

        return build_contents(prompt, self.system_key).map(joined)


def _fill(parts: tuple[bytes, bytes, bytes], key: str, prompt: str) -> bytes:
    first, second, third = parts
    # In both forms the request (holding the prompt) comes before the key.
    return b"".join((first, _ENCODER.encode(prompt).encode(), second,
                     _ENCODER.encode(key).encode(), third))


def build_item_encoder(request: GenerationRequest) -> Result[ItemEncoder, LLMError]:
    """Pure: the encoder for the batch items of ``request``'s model, config and schema; each
    item's request is what the synchronous builder makes for that prompt or conversation."""
    built = build_request_body(evolve(request, input=_SLOT))
    if isinstance(built, Failure):
        return built
    body = built.unwrap()
    slot = _ENCODER.encode(_SLOT)
    contents_slot = _ENCODER.encode(body["contents"])
    key_slot = '"\\u0001key\\u0001"'
    inline = _ENCODER.encode({"request": body, "metadata": {"key": "\x01key\x01"}})
    line = _ENCODER.encode({"request": body, "key": "\x01key\x01"})
    parts = []
    frames = []
    for encoded in (inline, line):
        head, rest = encoded.split(slot)
        middle, tail = rest.split(key_slot)
        parts.append((head.encode(), middle.encode(), tail.encode()))
        before, rest = encoded.split(contents_slot)
        after, tail = rest.split(key_slot)
        frames.append((before.encode(), after.encode(), tail.encode()))
    return Success(ItemEncoder(
        inline_parts=parts[0], line_parts=parts[1], inline_frame=frames[0], line_frame=frames[1],
        system_key=next((key for key in SYSTEM_KEYS if key in request.config.extra), None)))


def build_inline_create(model: str, items: Callable[[], Iterator[bytes]], size: int,
                        display_name: str | None) -> WireRequest:
    """Pure: ``POST /v1beta/models/{model}:batchGenerateContent`` with the inline items that
    ``items`` streams (joined by ``,``; ``size`` bytes in all)."""
    batch: dict[str, Any] = {"model": model_path(model)}
    if display_name is not None:
        batch["displayName"] = display_name
    head = (_ENCODER.encode({"batch": batch})[:-2] + ',"inputConfig":{"requests":{"requests":['
            ).encode()
    tail = b"]}}}}"

    def body() -> Iterator[bytes]:
        yield head
        yield from items()
        yield tail

    return WireRequest(
        method="POST", path=f"/{API_VERSION}/{model_path(model)}:batchGenerateContent",
        content=StreamBody(length=len(head) + size + len(tail), chunks=body),
        headers={"Content-Type": "application/json"}, idempotent=False,
    )


def inline_body_size(model: str, size: int, display_name: str | None) -> int:
    """Pure: the size of the inline create body holding ``size`` bytes of joined items."""
    request = build_inline_create(model, lambda: iter(()), size, display_name)
    assert isinstance(request.content, StreamBody)
    return request.content.length


def build_file_create(model: str, file_name: str, display_name: str | None) -> WireRequest:
    """Pure: ``batchGenerateContent`` on an uploaded JSONL file (``files/...``)."""
    batch: dict[str, Any] = {"model": model_path(model), "inputConfig": {"fileName": file_name}}
    if display_name is not None:
        batch["displayName"] = display_name
    return WireRequest(method="POST",
                       path=f"/{API_VERSION}/{model_path(model)}:batchGenerateContent",
                       json={"batch": batch}, idempotent=False)


def build_upload_start(size: int, display_name: str) -> WireRequest:
    """Pure: the first step of the Files API's resumable upload: announce ``size`` bytes of
    JSONL. The answer's ``x-goog-upload-url`` header says where to send them."""
    return WireRequest(
        method="POST", path=f"/upload/{API_VERSION}/files",
        json={"file": {"displayName": display_name}},
        headers={"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                 "X-Goog-Upload-Header-Content-Length": str(size),
                 "X-Goog-Upload-Header-Content-Type": "application/jsonl"},
    )


def upload_path(upload_url: str, base_url: str) -> str | None:
    """Pure: the path (and query) of ``upload_url`` relative to ``base_url``, or ``None`` when
    it points elsewhere: the API key is only ever sent to the client's own base URL."""
    base = base_url.rstrip("/")
    if not upload_url.startswith(base + "/"):
        return None
    return upload_url[len(base):]


def build_upload_finish(path: str, chunks: Callable[[], Iterator[bytes]], size: int
                        ) -> WireRequest:
    """Pure: the second step: send the bytes to ``path`` and finalize the upload."""
    return WireRequest(
        method="POST", path=path,
        content=StreamBody(length=size, chunks=chunks),
        headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0",
                 "Content-Type": "application/jsonl"},
        idempotent=False,
    )


def build_retrieve_batch(name: str) -> WireRequest:
    """Pure: ``GET /v1beta/batches/{id}``."""
    return WireRequest(method="GET", path=f"/{API_VERSION}/{_name_path(name)}")


def build_cancel_batch(name: str) -> WireRequest:
    """Pure: ``POST /v1beta/batches/{id}:cancel``."""
    return WireRequest(method="POST", path=f"/{API_VERSION}/{_name_path(name)}:cancel",
                       json={})


def _name_path(name: str) -> str:
    """A batch name (``batches/<id>``) in a URL path: the id percent-encoded as one segment."""
    return NAME_PREFIX + path_segment(name.removeprefix(NAME_PREFIX))


def build_download(file_name: str) -> WireRequest:
    """Pure: ``GET /download/v1beta/files/{id}:download?alt=media`` (a generated file)."""
    return WireRequest(method="GET", path=f"/download/{API_VERSION}/"
                       f"{path_segment(file_name, safe='/')}:download?alt=media")


def batch_name(batch_id: object) -> str:
    """Pure: ``batches/<id>`` from a batch name or a bare id, the id checked by
    ``batching.batch_id_problem`` (no ``/`` or ``:``: ``NAME_RESERVED``);
    ``ConfigurationError`` for anything else."""
    if not isinstance(batch_id, str) or not batch_id:
        raise ConfigurationError(message=f"batch id must be a non-empty string, got {batch_id!r}",
                                 key="batch_id")
    name, problem = _checked_name(batch_id)
    if problem is not None:
        raise ConfigurationError(
            message=f"{batching.shown_id(batch_id)} is not a Gemini batch name (like "
            f"'batches/abc123'): {problem}", key="batch_id")
    return name


def _checked_name(value: str) -> tuple[str, str | None]:
    """``value`` as a batch name (``batches/`` added to a bare id), and what is wrong with its
    id (``batching.batch_id_problem``), or ``None``."""
    name = value if value.startswith(NAME_PREFIX) else NAME_PREFIX + value
    return name, batching.batch_id_problem(name[len(NAME_PREFIX):], NAME_RESERVED)


# --- parsing --------------------------------------------------------------------------------------


@frozen(kw_only=True)
class GeminiBatch:
    """What llmbackend reads from a Gemini batch (an operation whose metadata is the batch)."""

    name: str
    status: BatchStatus
    counts: BatchCounts
    done: bool = False
    inlined: tuple[Mapping[str, Any], ...] | None = field(default=None, repr=False)
    responses_file: str | None = None
    error: str | None = None
    raw: Mapping[str, Any] = field(factory=dict, repr=False, eq=False)


def parse_file(response: WireResponse) -> Result[str, LLMError]:
    """Pure: the name (``files/...``) of the file an upload made."""
    if not 200 <= response.status < 300:
        return Failure(parse_error(response, route=f"POST /upload/{API_VERSION}/files"))
    body = json_object(response.body)
    file = body.get("file", body) if body is not None else None
    name = file.get("name") if isinstance(file, dict) else None
    if not isinstance(name, str):
        return Failure(ResponseParseError(
            message=f"{LABEL} answered the upload without a file name", provider=NAME,
            body=excerpt(response.body)))
    return Success(name)


def parse_upload_url(response: WireResponse) -> Result[str, LLMError]:
    """Pure: the ``x-goog-upload-url`` of the first upload step."""
    if not 200 <= response.status < 300:
        return Failure(parse_error(response, route=f"POST /upload/{API_VERSION}/files"))
    url = response.headers.get("x-goog-upload-url")
    if not url:
        return Failure(ResponseParseError(
            message=f"{LABEL} started the upload without an x-goog-upload-url header",
            provider=NAME, body=excerpt(response.body)))
    return Success(url)


def parse_batch(response: WireResponse) -> Result[GeminiBatch, LLMError]:
    """Pure: a batch (from create or retrieve), or the failure reported.

    The state is normalized from both spellings (``BATCH_STATE_SUCCEEDED`` in the REST API,
    ``JOB_STATE_SUCCEEDED`` in the SDK). A batch that expired also equals ``"FAILED"``: the seed
    README's Gemini loop checks only ``FAILED`` and ``CANCELLED``, and an expired batch failed
    to finish.
    """
    if not 200 <= response.status < 300:
        return Failure(parse_error(
            response, route=f"POST /{API_VERSION}/models/{{model}}:batchGenerateContent"))
    body = json_object(response.body)
    meta = body.get("metadata") if body is not None else None
    batch = meta if isinstance(meta, dict) else body
    name = (batch.get("name") if isinstance(batch, dict) else None) or (
        body.get("name") if body is not None else None)
    state = batch.get("state") if isinstance(batch, dict) else None
    if body is None or not isinstance(name, str) or not isinstance(state, str):
        return Failure(ResponseParseError(
            message=f"{LABEL} answered with a body that is not a batch (no name or state)",
            provider=NAME, body=excerpt(response.body)))
    name, problem = _checked_name(name)
    if problem is not None:
        return Failure(batching.unusable_batch_id(name, problem, provider=NAME, label=LABEL,
                                                  body=excerpt(response.body)))
    stats = batch.get("batchStats") if isinstance(batch, dict) else None
    stats = stats if isinstance(stats, dict) else {}
    total = read_count(stats.get("requestCount")) or 0
    succeeded = read_count(stats.get("successfulRequestCount")) or 0
    failed = read_count(stats.get("failedRequestCount")) or 0
    output = body.get("response") if isinstance(body.get("response"), dict) else (
        batch.get("output") if isinstance(batch, dict) else None)
    inlined = None
    responses_file = None
    if isinstance(output, dict):
        wrapper = output.get("inlinedResponses")
        listed = wrapper.get("inlinedResponses") if isinstance(wrapper, dict) else wrapper
        if isinstance(listed, list):
            inlined = tuple(item for item in listed if isinstance(item, dict))
        if isinstance(output.get("responsesFile"), str):
            responses_file = output["responsesFile"]
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    expired = any(state == prefix + "EXPIRED" for prefix in _STATES)
    return Success(GeminiBatch(
        name=name,
        status=BatchStatus(state, also=("failed",) if expired else ()),
        counts=BatchCounts(total=total, completed=succeeded, failed=failed),
        done=body.get("done") is True or BatchStatus(state).is_terminal,
        inlined=inlined, responses_file=responses_file,
        error=message if isinstance(message, str) else None,
        raw=body,
    ))


def parse_result(request: GenerationRequest, item: Mapping[str, Any], key: str | None
                 ) -> Result[Any, LLMError]:
    """Pure: the outcome of one inline response or result line: the answer, parsed exactly as a
    synchronous one, or its ``error`` as ``ProviderError`` with Google's status."""
    error = item.get("error")
    if isinstance(error, dict):
        status = error.get("status") if isinstance(error.get("status"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else "no message"
        return Failure(ProviderError(
            message=f"{LABEL} batch request {key!r} failed" + (f" ({status})" if status else "")
            + f": {message}", provider=NAME, error_type=status, error_code="batch_errored",
            body=excerpt_json(error)))
    response = item.get("response")
    if not isinstance(response, dict):
        return Failure(ResponseParseError(
            message=f"the batch result for {key!r} has neither a response nor an error",
            provider=NAME, body=excerpt_json(item)))
    return parse_response_object(request, response)


def inline_key(item: Mapping[str, Any]) -> str | None:
    """Pure: the key an inline response echoes in its ``metadata`` (``None`` if it does not)."""
    metadata = item.get("metadata")
    key = metadata.get("key") if isinstance(metadata, dict) else None
    return key if isinstance(key, str) else None


def parse_result_line(request: GenerationRequest, line: bytes
                      ) -> tuple[str | None, Result[Any, LLMError]]:
    """Pure: the key of one line of a responses file, and its outcome. Never raises."""
    try:
        item = json.loads(line)
    except (ValueError, RecursionError):
        item = None
    key = item.get("key") if isinstance(item, dict) else None
    if not isinstance(item, dict) or not isinstance(key, str):
        return None, Failure(ResponseParseError(
            message="a batch result line is not an object with a key", provider=NAME,
            body=excerpt(line)))
    return key, parse_result(request, item, key)


def missing_result_error(batch: GeminiBatch, key: str, unreadable: int = 0) -> LLMError:
    """Pure: the failure of a request with no result, from how the batch ended."""
    status = batch.status.value
    if status in ("expired", "cancelled"):
        code = "batch_expired" if status == "expired" else "batch_cancelled"
        why = "the batch expired" if status == "expired" else "the batch was cancelled"
        return ProviderError(
            message=f"{LABEL} batch request {key!r} was not run: {why} before it was reached; "
            "submit it again", provider=NAME, error_type="batch_error", error_code=code)
    if status == "failed":
        return ProviderError(
            message=f"{LABEL} batch {batch.name} failed, so request {key!r} was not run"
            + (f": {batch.error}" if batch.error else ""), provider=NAME,
            error_type="batch_failed")
    unread = (f"; {unreadable} result(s) could not be matched to a key and may have held it"
              if unreadable else "")
    return ProviderError(
        message=f"{LABEL} batch {batch.name} ended {batch.status.raw} but has no result for "
        f"request {key!r}{unread}", provider=NAME, error_type="batch_error",
        error_code="missing_result")


