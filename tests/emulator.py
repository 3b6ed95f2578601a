"""A loopback emulator of OpenAI's Responses API, for tests and benchmarks (127.0.0.1 only).

It is a real HTTP/1.1 server (keep-alive; request bodies with Content-Length or chunked) on a
random port. By default it answers ``POST /v1/responses`` the way the API does, with a tiny
deterministic "model": plain text echoes the prompt, and a ``json_schema`` format gets a small
valid instance of the schema. Tests can queue scripted replies (any status, headers, body, delay)
that are served first, in order, and every request is recorded for assertions.

It also emulates the Files and Batch APIs (``/v1/files``, ``/v1/batches``) faithfully enough for the
official ``openai`` SDK: uploads are stored in ``OpenAIEmulator.files``, a batch validates its input
file the way OpenAI does, walks its lifecycle one step per retrieve and is kept in
``OpenAIEmulator.batches``; how it ends (completed, expired, cancelled or failed, which items fail,
in which order the lines come) follows ``OpenAIEmulator.batch_plan``, a ``BatchPlan``.

Streaming: ``POST /v1/responses`` with ``"stream": true`` answers ``text/event-stream`` (chunked)
with the Responses event sequence (``response.created``, ``response.in_progress``, then per output
item ``output_item.added``, ``content_part.added``, a few ``output_text.delta``,
``output_text.done``, ``content_part.done``, ``output_item.done``, and ``response.completed``
carrying the very object the call answers without streaming), ``sequence_number`` counting up.
Authentication, a scripted reply (``reply``: any status, served whole as JSON, before any stream)
and its delay apply to stream requests as to others. For fault tests, ``stream_fault(...)``
queues a ``StreamFault`` that the next served stream follows (in order, one per stream): ``cut``
drops the final event (the stream then ends cleanly), ``error`` sends an ``error`` event right
after the first delta and ends there, ``error_first`` sends it in place of the first delta (before
any text) and ends there, ``trickle`` waits that many seconds before every event but the first,
``stall`` sends nothing for that many seconds after the first delta (the connection kept open),
then goes on. ``write_stream``, ``sse_event``, ``split_text`` and ``faulted`` are
shared with the Anthropic and Gemini emulators, whose streams follow the same ``StreamFault``.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
from attrs import define, field, frozen

API_KEY = "sk-test-emulator-0123456789abcdef"


@frozen
class Recorded:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    peer: tuple[str, int] = ("", 0)

    def json(self) -> Any:
        return json.loads(self.body)


@frozen
class StreamFault:
    """How one stream goes wrong (see the module docstring); the defaults: it does not."""

    cut: bool = False  # drop the final event; the stream ends cleanly without it
    error: bool = False  # the provider's error event right after the first delta, then the end
    trickle: float = 0.0  # seconds before each event but the first
    stall: float = 0.0  # seconds of silence after the first delta (the connection kept open)
    error_first: bool = False  # the error event in place of the first delta, then the end


@frozen
class Stream:
    """A streamed answer: whole SSE events (blank line included) and the pause before each."""

    events: tuple[bytes, ...]
    pauses: tuple[float, ...] = ()


@frozen
class Scripted:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(factory=dict)
    delay: float = 0.0
    stream: Stream | None = None  # set: the body is these events, sent chunked, as they come


def sse_event(data: Any, event: str | None = None, newline: str = "\n") -> bytes:
    """One server-sent event: ``event: <event>`` (when given) and ``data: <compact JSON>``."""
    text = json.dumps(data, separators=(",", ":"))
    head = f"event: {event}{newline}" if event is not None else ""
    return f"{head}data: {text}{newline}{newline}".encode()


def split_text(text: str, pieces: int = 3) -> list[str]:
    """``text`` in up to ``pieces`` non-empty deltas (none for an empty text)."""
    if not text:
        return []
    size = -(-len(text) // pieces)
    return [text[start:start + size] for start in range(0, len(text), size)]


def faulted(events: Sequence[bytes], first_delta: int, error_event: Callable[[int], bytes],
            fault: StreamFault | None) -> Stream:
    """``events`` as ``fault`` serves them: ``first_delta`` is the index of the first delta
    event (the error and the stall come right after it, ``error_first``'s error in its place),
    ``error_event(index)`` the provider's
    error event at that index."""
    served = list(events)
    if fault is None:
        return Stream(tuple(served), (0.0,) * len(served))
    if fault.error_first:
        served = [*served[:first_delta], error_event(first_delta)]
    elif fault.error:
        served = [*served[:first_delta + 1], error_event(first_delta + 1)]
    elif fault.cut:
        served = served[:-1]
    pauses = [fault.trickle if index else 0.0 for index in range(len(served))]
    if fault.stall and first_delta + 1 < len(served):
        pauses[first_delta + 1] += fault.stall
    return Stream(tuple(served), tuple(pauses))


def quiet_on_reset(handler: type[BaseHTTPRequestHandler]) -> type[BaseHTTPRequestHandler]:
    """The emulators' request handlers, made quiet about a client that drops its connection (a
    stream it closed mid-answer, a reset): the connection ends, as a real server's would,
    instead of a traceback printed by ``socketserver`` for a keep-alive read that was reset."""
    handle = handler.handle

    def quiet(self: BaseHTTPRequestHandler) -> None:
        try:
            handle(self)
        except (ConnectionResetError, BrokenPipeError):
            self.close_connection = True

    handler.handle = quiet  # type: ignore[method-assign,assignment]
    return handler


def write_stream(handler: BaseHTTPRequestHandler, scripted: Scripted,
                 content_type: str = "text/event-stream") -> None:
    """Send ``scripted.stream`` with chunked transfer encoding, one event per chunk, each
    flushed at once, waiting its pause before it; the connection stays open throughout."""
    assert scripted.stream is not None
    handler.send_response(scripted.status)
    for name, value in scripted.headers.items():
        handler.send_header(name, value)
    if not any(name.lower() == "content-type" for name in scripted.headers):
        handler.send_header("Content-Type", content_type)
    handler.send_header("Cache-Control", "no-cache")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    handler.wfile.flush()
    stream = scripted.stream
    pauses = stream.pauses or (0.0,) * len(stream.events)
    for event, pause in zip(stream.events, pauses, strict=True):
        if pause:
            time.sleep(pause)
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        handler.wfile.flush()
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()


def example_instance(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> Any:
    """A small value valid for the JSON Schema subset that structured outputs use."""
    root = schema if root is None else root
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return example_instance({**target, **{k: v for k, v in schema.items() if k != "$ref"}},
                                root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            options = [s for s in schema[keyword] if s.get("type") != "null"] or schema[keyword]
            return example_instance(options[0], root)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {name: example_instance(sub, root)
                for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [example_instance(schema.get("items", {"type": "string"}), root)]
    return {"string": "example", "integer": 7, "number": 1.5, "boolean": True,
            "null": None}[kind]


def response_body(model: str, text: str, *, status: str = "completed",
                  incomplete_reason: str | None = None, response_id: str = "resp_emulated",
                  output: list[Any] | None = None) -> dict[str, Any]:
    """A Responses API object shaped like the recorded ones."""
    return {
        "id": response_id, "object": "response", "created_at": 1761175253, "status": status,
        "error": None,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "model": model,
        "output": output if output is not None else [{
            "id": "msg_emulated", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
        }],
        "parallel_tool_calls": True, "store": True, "temperature": 1.0, "top_p": 1.0,
        "text": {"format": {"type": "text"}}, "tools": [], "truncation": "disabled",
        "instructions": None, "tool_choice": "auto",
        "usage": {"input_tokens": 11,
                  "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": max(1, len(text.split())),
                  "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 11 + max(1, len(text.split()))},
        "metadata": {},
    }


def default_answer(request: Mapping[str, Any]) -> dict[str, Any]:
    """What the emulated model says to a ``POST /v1/responses`` body."""
    fmt = request.get("text", {}).get("format", {})
    if fmt.get("type") == "json_schema":
        text = json.dumps(example_instance(fmt["schema"]), separators=(",", ":"))
    else:
        text = f"Echo: {request.get('input')}"
    return response_body(str(request.get("model")), text)


def response_events(final: Mapping[str, Any]) -> tuple[list[bytes], int]:
    """The Responses stream that builds ``final`` (a whole Responses object), and the index of
    its first ``response.output_text.delta`` (else of the last event before the end)."""
    payloads: list[dict[str, Any]] = []
    first_delta: int | None = None
    opening = {**final, "status": "in_progress", "output": [], "usage": None}
    payloads.append({"type": "response.created", "response": opening})
    payloads.append({"type": "response.in_progress", "response": opening})
    for index, item in enumerate(final.get("output") or []):
        if item.get("type") != "message":
            payloads.append({"type": "response.output_item.added", "output_index": index,
                             "item": item})
            payloads.append({"type": "response.output_item.done", "output_index": index,
                             "item": item})
            continue
        item_id = item.get("id")
        payloads.append({"type": "response.output_item.added", "output_index": index,
                         "item": {**item, "status": "in_progress", "content": []}})
        for part_index, part in enumerate(item.get("content") or []):
            where = {"content_index": part_index, "item_id": item_id, "output_index": index}
            text = part.get("text", "") if part.get("type") == "output_text" else ""
            empty = {**part, "text": ""} if part.get("type") == "output_text" else part
            payloads.append({"type": "response.content_part.added", **where, "part": empty})
            if part.get("type") == "output_text":
                for delta in split_text(text):
                    if first_delta is None:
                        first_delta = len(payloads)
                    payloads.append({"type": "response.output_text.delta", **where,
                                     "delta": delta, "logprobs": []})
                payloads.append({"type": "response.output_text.done", **where, "logprobs": [],
                                 "text": text})
            payloads.append({"type": "response.content_part.done", **where, "part": part})
        payloads.append({"type": "response.output_item.done", "output_index": index,
                         "item": item})
    final_type = {"incomplete": "response.incomplete", "failed": "response.failed"}.get(
        str(final.get("status")), "response.completed")
    payloads.append({"type": final_type, "response": final})
    events = [sse_event({**payload, "sequence_number": number}, payload["type"])
              for number, payload in enumerate(payloads)]
    return events, len(events) - 2 if first_delta is None else first_delta


def stream_error_event(number: int) -> bytes:
    """The ``error`` event the Responses API sends mid-stream (a server error), nested the way
    the recorded traffic nests it."""
    payload = {"type": "error", "sequence_number": number, "error": {
        "type": "server_error", "code": "server_error",
        "message": "The server had an error while processing your request.", "param": None}}
    return sse_event(payload, "error")


def error_object(message: str, error_type: str, code: str | None, param: str | None = None
                 ) -> dict[str, Any]:
    """OpenAI's error body, as a dict (``error_body`` gives the same as bytes)."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_body(message: str, error_type: str, code: str | None, param: str | None = None
               ) -> bytes:
    return json.dumps(error_object(message, error_type, code, param)).encode()


# --- Files and Batch API --------------------------------------------------------------------------

BATCH_ENDPOINTS = ("/v1/responses",)
#: Batch ids a server may give (the spec's id is any string), by what llmbackend does with them:
#: the usable ones work at every later step, the others are refused where they come in (and
#: where they go out). "/" and "+" are one id's characters on OpenAI and Anthropic (percent-
#: encoded into the path), but "+" joins a split job's parts there, and Gemini's ids are one
#: segment of a name (no "/" or ":").
USABLE_BATCH_IDS = ("batch 1", "../../x", "a/b", "x" * 5000)
UNUSABLE_BATCH_IDS = ("batch\n1", "", ".", "..", "a+b", "\x1b[31mred\x1b[0m", "\ud800",
                      "y" * 8193, "tab\there", "\u202eevil")
BATCH_COMPLETION_WINDOWS = ("24h",)
BATCH_WINDOW_SECONDS = 24 * 3600
FILE_TTL_SECONDS = 30 * 24 * 3600  # files with purpose batch expire after 30 days
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
# What an item that never ran gets in the error file of an expired or cancelled batch.
NOT_RUN_ERRORS = {
    "expired": ("batch_expired",
                "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled",
                  "This request was not executed because the batch was cancelled."),
}
DEFAULT_FAILURE_ERRORS: tuple[Mapping[str, Any], ...] = (
    {"code": "invalid_request", "message": "The batch failed validation.", "param": None,
     "line": None},
)
_ALPHANUMERIC = string.ascii_letters + string.digits
_FORM_ESCAPE = re.compile(r"%(22|[01][0-9A-Fa-f])")
_HEADER_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


_ids = random.Random(secrets.randbits(128))  # unpredictable enough for ids, and fast


def _hex(digits: int) -> str:
    return f"{_ids.getrandbits(4 * digits):0{digits}x}"


def _file_id() -> str:
    return "file-" + "".join(_ids.choices(_ALPHANUMERIC, k=22))


def _header_params(value: str) -> dict[str, str]:
    """The ``; name=value`` parameters of a header (quoted, HTML5 form-escaped, or RFC 5987)."""
    params: dict[str, str] = {}
    for match in _HEADER_PARAM.finditer(value):
        name = match.group(1).lower()
        if match.group(2) is not None:
            text = re.sub(r"\\(.)", r"\1", match.group(2))
            text = _FORM_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
        else:
            text = match.group(3).strip()
        if name.endswith("*"):  # filename*=UTF-8''na%C3%AFve.jsonl takes precedence
            charset, _, rest = text.partition("'")
            params[name[:-1]] = unquote(rest.partition("'")[2], encoding=charset or "utf-8",
                                        errors="replace")
        else:
            params.setdefault(name, text)
    return params


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """A multipart/form-data body as ``{field name: (filename or None, content bytes)}``.

    A plain split on the boundary: content bytes are kept exactly as sent, whatever they are, and
    a body of many MB costs a few copies. The first part with a given name wins.
    """
    boundary = _header_params(content_type).get("boundary")
    if not boundary:
        raise ValueError("the Content-Type header names no boundary")
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    form: dict[str, tuple[str | None, bytes]] = {}
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            return form
        head, blank, content = chunk.partition(b"\r\n\r\n")
        if not blank:
            raise ValueError("a part has no blank line after its headers")
        headers: dict[str, str] = {}
        for raw in head.split(b"\r\n")[1:]:
            name, colon, value = raw.decode("utf-8", "replace").partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        params = _header_params(headers.get("content-disposition", ""))
        if "name" not in params:
            raise ValueError("a part has no Content-Disposition name")
        form.setdefault(params["name"], (params.get("filename"), content))
    raise ValueError("the body does not end with the closing boundary")


@define
class BatchPlan:
    """How the emulated Batch API finishes a batch (set ``OpenAIEmulator.batch_plan`` first).

    The plan is copied (shallowly) into each batch when it is created (``EmulatedBatch.plan``);
    changing it afterwards touches only later batches (or change ``emulator.batches[id].plan``).

    - ``outcome``: how the batch ends. ``"completed"`` runs every item. ``"expired"`` and
      ``"cancelled"`` run the first ``done`` items (input order) and then end that way, a planned
      cancel as if a user had cancelled it near the end (``cancelling`` before ``cancelled``).
      ``"failed"`` fails validation with ``failure_errors`` even for a valid input file (an input
      file with real problems fails whatever the outcome).
    - ``done``: how many items ran before an expiry or cancel; ``None``: half, rounded down.
    - ``missing_lines``: what items that never ran get: ``"error_file"`` writes a line with
      ``error.code`` ``batch_expired`` or ``batch_cancelled`` to the error file, ``"omit"`` none.
    - ``item_errors``: custom_id -> (status_code, body): that item's request fails; its line goes
      to the error file with ``response.status_code`` and ``response.body`` (an ``{"error": ...}``
      dict; a dict without an ``error`` key is wrapped in one, see ``error_object``).
    - ``item_bodies``: custom_id -> a whole Responses object, answered with status 200 instead of
      ``default_answer`` (refusals, incomplete answers, invalid JSON for a schema...).
    - ``output_status_code``: custom_id -> (status_code, body): the line goes to the output file
      (not the error file) with that status and body, as real output files sometimes have.
    - ``shuffle_seed``: when set, output and error lines are written in a seeded shuffled order;
      ``None`` keeps input order.
    - ``finish_after``: the retrieve that shows the terminal state (default 3: validating ->
      in_progress -> finalizing -> terminal); more retrieves stay in_progress longer; 1 goes
      straight to the end; 0 makes the create answer itself terminal. A batch that fails
      validation fails at the first retrieve (or at create with 0).
    - ``failure_errors``: the ``errors.data`` entries for ``outcome="failed"``.
    """

    outcome: Literal["completed", "expired", "cancelled", "failed"] = "completed"
    done: int | None = None
    missing_lines: Literal["error_file", "omit"] = "error_file"
    item_errors: Mapping[str, tuple[int, Mapping[str, Any]]] = field(factory=dict)
    item_bodies: Mapping[str, Mapping[str, Any]] = field(factory=dict)
    output_status_code: Mapping[str, tuple[int, Mapping[str, Any]]] = field(factory=dict)
    shuffle_seed: int | None = None
    finish_after: int = 3
    failure_errors: Sequence[Mapping[str, Any]] = DEFAULT_FAILURE_ERRORS

    def ran(self, total: int, outcome: str) -> int:
        """How many items (in input order) ran for a batch of ``total`` that ends ``outcome``."""
        if outcome == "completed":
            return total
        return max(0, min(total, total // 2 if self.done is None else self.done))


@define
class StoredFile:
    """An uploaded file, or a batch's output or error file."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int
    expires_at: int | None

    def api_object(self) -> dict[str, Any]:
        return {"object": "file", "id": self.id, "purpose": self.purpose,
                "filename": self.filename, "bytes": len(self.content),
                "created_at": self.created_at, "expires_at": self.expires_at,
                "status": "processed", "status_details": None}

    def lines(self) -> list[dict[str, Any]]:
        """The content as JSONL, parsed."""
        return [json.loads(line) for line in self.content.splitlines() if line.strip()]


@define
class EmulatedBatch:
    """A batch: its API object as it reads now, its input and what the plan does with it."""

    id: str
    plan: BatchPlan
    api_object: dict[str, Any]
    requests: list[dict[str, Any]] = field(factory=list)  # the valid input lines, in order
    problems: list[dict[str, Any]] = field(factory=list)  # validation errors (errors.data)
    model: str | None = None
    retrieves: int = 0
    cancelled_while: str | None = None  # the status a user's cancel found, None: no cancel

    @property
    def status(self) -> str:
        return str(self.api_object["status"])

    @property
    def failing(self) -> bool:
        return bool(self.problems) or self.plan.outcome == "failed"


def _zero_usage() -> dict[str, Any]:
    return {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0}}


def _add_usage(total: dict[str, Any], usage: Any) -> None:
    if not isinstance(usage, Mapping):
        return
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        total[key] += int(usage.get(key) or 0)
    total["input_tokens_details"]["cached_tokens"] += int(
        (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0)
    total["output_tokens_details"]["reasoning_tokens"] += int(
        (usage.get("output_tokens_details") or {}).get("reasoning_tokens") or 0)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", list: "an array",
            dict: "an object"}.get(type(value), "a string")


def _invalid(message: str, param: str | None, code: str | None, status: int = 400) -> Scripted:
    return Scripted(status, error_body(message, "invalid_request_error", code, param))


def _ok(value: Any) -> Scripted:
    return Scripted(200, json.dumps(value).encode())


def _line_problem(code: str, message: str, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}


class StreamFaults:
    """The stream-fault hook every emulator shares: ``stream_fault(...)`` queues a fault, the
    next served stream takes it (``_next_fault``). Its emulator has ``stream_faults`` (a deque)
    and ``_lock``."""

    stream_faults: deque[StreamFault]
    _lock: threading.Lock

    def stream_fault(self, *, cut: bool = False, error: bool = False, trickle: float = 0.0,
                     stall: float = 0.0, error_first: bool = False) -> None:
        """Queue one ``StreamFault``: the next served stream follows it (module docstring)."""
        self.stream_faults.append(StreamFault(cut, error, trickle, stall, error_first))

    def _next_fault(self) -> StreamFault | None:
        with self._lock:
            return self.stream_faults.popleft() if self.stream_faults else None



@define
class OpenAIEmulator(StreamFaults):
    api_key: str | None = API_KEY
    requests: list[Recorded] = field(factory=list)
    script: deque[Scripted] = field(factory=deque)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(factory=threading.Lock)
    # Files and Batch API: set batch_plan before creating a batch; files and batches by id.
    batch_plan: BatchPlan = field(factory=BatchPlan)
    files: dict[str, StoredFile] = field(factory=dict)
    batches: dict[str, EmulatedBatch] = field(factory=dict)
    batch_max_requests: int = 50_000
    batch_max_bytes: int = 200 * 1024 * 1024
    clock: Callable[[], float] = time.time
    # The ids the next batches get, in order (then random ``batch_...`` ones): a server whose
    # ids are any string, as the spec allows.
    batch_ids: deque[str] = field(factory=deque)
    # Streaming: how the next streams go wrong, in order (see ``stream_fault``).
    stream_faults: deque[StreamFault] = field(factory=deque)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def reply(self, status: int, body: bytes | Mapping[str, Any], headers: Mapping[str, str]
              | None = None, delay: float = 0.0) -> None:
        """Queue one scripted reply; scripted replies are served before the default model."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.script.append(Scripted(status, raw, dict(headers or {}), delay))

    def start(self) -> OpenAIEmulator:
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
                        "We could not read the body of your request.",
                        "invalid_request_error", None), {"Connection": "close"}))
                    return
                recorded = Recorded(self.command, self.path,
                                    {k.lower(): v for k, v in self.headers.items()}, body,
                                    self.client_address[:2])
                with emulator._lock:
                    emulator.requests.append(recorded)
                    scripted = emulator.script.popleft() if emulator.script else None
                if scripted is None:
                    scripted = emulator.answer(recorded)
                if scripted.delay:
                    time.sleep(scripted.delay)
                self._send(scripted)

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
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answer(self, recorded: Recorded) -> Scripted:
        """The emulated API: authentication, routing, and the default model."""
        if self.api_key is not None and recorded.headers.get("authorization") != \
                f"Bearer {self.api_key}":
            return Scripted(401, error_body(
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error", "invalid_api_key"))
        url = urlsplit(recorded.path)
        if recorded.method == "POST" and url.path == "/v1/responses":
            try:
                request = recorded.json()
            except ValueError:
                return Scripted(400, error_body(
                    "We could not parse the JSON body of your request.",
                    "invalid_request_error", None))
            answer = default_answer(request)
            if isinstance(request, dict) and request.get("stream") is True:
                events, first_delta = response_events(answer)
                return Scripted(200, b"", stream=faulted(events, first_delta,
                                                         stream_error_event, self._next_fault()))
            return Scripted(200, json.dumps(answer).encode())
        parts = [unquote(part) for part in url.path.strip("/").split("/")]
        if parts[0] == "v1" and parts[1:2] in (["files"], ["batches"]):
            with self._lock:
                routed = self._files_and_batches(recorded, parts[1:], parse_qs(url.query))
            if routed is not None:
                return routed
        return Scripted(404, error_body(f"Invalid URL ({recorded.method} {recorded.path})",
                                        "invalid_request_error", None))

    # --- Files and Batch API (called with the lock held) -----------------------------------------

    def _now(self) -> int:
        return int(self.clock())

    def _files_and_batches(self, recorded: Recorded, parts: list[str],
                           query: dict[str, list[str]]) -> Scripted | None:
        match recorded.method, parts:
            case "POST", ["files"]:
                return self._upload(recorded)
            case "GET", ["files"]:
                purpose = query.get("purpose", [None])[0]
                return self._page([(f.id, f.api_object()) for f in reversed(self.files.values())
                                   if purpose is None or f.purpose == purpose], query)
            case "GET", ["files", file_id]:
                file = self.files.get(file_id)
                return self._no_file(file_id) if file is None else _ok(file.api_object())
            case "DELETE", ["files", file_id]:
                if self.files.pop(file_id, None) is None:
                    return self._no_file(file_id)
                return _ok({"id": file_id, "object": "file", "deleted": True})
            case "GET", ["files", file_id, "content"]:
                file = self.files.get(file_id)
                if file is None:
                    return self._no_file(file_id)
                return Scripted(200, file.content, {"Content-Type": "application/jsonl"})
            case "POST", ["batches"]:
                return self._create_batch(recorded)
            case "GET", ["batches"]:
                return self._page([(b.id, b.api_object) for b in reversed(self.batches.values())],
                                  query)
            case "GET", ["batches", batch_id]:
                batch = self.batches.get(batch_id)
                if batch is None:
                    return self._no_batch(batch_id)
                self._advance(batch)
                return _ok(batch.api_object)
            case "POST", ["batches", batch_id, "cancel"]:
                return self._cancel(batch_id)
        return None

    @staticmethod
    def _no_file(file_id: str) -> Scripted:
        return _invalid(f"No such File object: {file_id}", "id", None, 404)

    @staticmethod
    def _no_batch(batch_id: str) -> Scripted:
        return _invalid(f"No batch found with id '{batch_id}'.", None, None, 404)

    @staticmethod
    def _page(items: list[tuple[str, dict[str, Any]]], query: dict[str, list[str]]) -> Scripted:
        """A cursor page (newest first), with ``after`` and ``limit`` as OpenAI reads them."""
        try:
            limit = int(query.get("limit", ["20"])[0])
        except ValueError:
            return _invalid("Invalid 'limit': expected an integer.", "limit", "invalid_type")
        if not 1 <= limit <= 10_000:
            return _invalid(f"Invalid 'limit': {limit}.", "limit", "invalid_value")
        after = query.get("after", [None])[0]
        ids = [item_id for item_id, _ in items]
        if after in ids:
            items = items[ids.index(after) + 1:]
        page = items[:limit]
        return _ok({"object": "list", "data": [obj for _, obj in page],
                    "first_id": page[0][0] if page else None,
                    "last_id": page[-1][0] if page else None,
                    "has_more": len(items) > limit})

    def _upload(self, recorded: Recorded) -> Scripted:
        content_type = recorded.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            return _invalid(f"Invalid Content-Type header ({content_type}), expected "
                            "multipart/form-data.", None, None)
        try:
            form = parse_multipart(content_type, recorded.body)
        except ValueError as exc:
            return _invalid(f"Could not parse the multipart form: {exc}.", None, None)
        if "purpose" not in form:
            return _invalid("Missing required parameter: 'purpose'.", "purpose",
                            "missing_required_parameter")
        purpose = form["purpose"][1].decode("utf-8", "replace")
        if purpose != "batch":
            return _invalid(f"Invalid value: '{purpose}'. Supported values are: 'batch'.",
                            "purpose", "invalid_value")
        if "file" not in form or form["file"][0] is None:
            return _invalid("Missing required parameter: 'file'.", "file",
                            "missing_required_parameter")
        filename, content = form["file"]
        ttl = FILE_TTL_SECONDS
        if "expires_after[seconds]" in form:
            try:
                ttl = int(form["expires_after[seconds]"][1])
            except ValueError:
                return _invalid("Invalid 'expires_after.seconds': expected an integer.",
                                "expires_after.seconds", "invalid_type")
        now = self._now()
        file = StoredFile(_file_id(), filename or "upload", purpose, content, now, now + ttl)
        self.files[file.id] = file
        return _ok(file.api_object())

    def _create_batch(self, recorded: Recorded) -> Scripted:
        try:
            request = recorded.json()
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return _invalid("We could not parse the JSON body of your request.", None, None)
        for name in ("input_file_id", "endpoint", "completion_window"):
            if request.get(name) is None:
                return _invalid(f"Missing required parameter: '{name}'.", name,
                                "missing_required_parameter")
        known = {"input_file_id", "endpoint", "completion_window", "metadata",
                 "output_expires_after"}
        for name in request:
            if name not in known:
                return _invalid(f"Unrecognized request argument supplied: {name}", None, None)
        endpoint, window = request["endpoint"], request["completion_window"]
        if endpoint not in BATCH_ENDPOINTS:
            return _invalid(f"Invalid value: '{endpoint}'. Supported values are: "
                            + ", ".join(f"'{e}'" for e in BATCH_ENDPOINTS) + ".",
                            "endpoint", "invalid_value")
        if window not in BATCH_COMPLETION_WINDOWS:
            return _invalid(f"Invalid value: '{window}'. Supported values are: '24h'.",
                            "completion_window", "invalid_value")
        metadata = request.get("metadata")
        problem = self._metadata_problem(metadata)
        if problem is not None:
            return problem
        file = self.files.get(str(request["input_file_id"]))
        if file is None:
            return _invalid(f"No such File object: {request['input_file_id']}",
                            "input_file_id", None, 404)
        if file.purpose != "batch":
            return _invalid(f"The file {file.id} has purpose '{file.purpose}'; a batch input "
                            "file must have purpose 'batch'.", "input_file_id", None)
        now = self._now()
        batch_id = self.batch_ids.popleft() if self.batch_ids else "batch_" + _hex(32)
        batch = EmulatedBatch(batch_id, attrs.evolve(self.batch_plan), {
            "id": "", "object": "batch", "endpoint": endpoint, "model": None, "errors": None,
            "input_file_id": file.id, "completion_window": window, "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": now,
            "in_progress_at": None, "expires_at": now + BATCH_WINDOW_SECONDS,
            "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
            "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "usage": _zero_usage(), "metadata": metadata})
        batch.api_object["id"] = batch.id
        batch.requests, batch.problems, batch.model = self._read_input(file.content, endpoint)
        self.batches[batch.id] = batch
        if batch.plan.finish_after <= 0:
            self._finish(batch)
        return _ok(batch.api_object)

    @staticmethod
    def _metadata_problem(metadata: Any) -> Scripted | None:
        """OpenAI's limits: at most 16 keys, keys up to 64 characters, string values up to 512."""
        if metadata is None:
            return None
        if not isinstance(metadata, dict):
            return _invalid(f"Invalid type for 'metadata': expected an object, but got "
                            f"{_json_type(metadata)} instead.", "metadata", "invalid_type")
        if len(metadata) > 16:
            return _invalid("Invalid 'metadata': too many properties. Expected an object with at "
                            f"most 16 properties, but got an object with {len(metadata)} "
                            "properties instead.", "metadata", "object_above_max_properties")
        for key, value in metadata.items():
            if len(key) > 64:
                return _invalid(f"Invalid 'metadata': key too long. Expected a key with maximum "
                                f"length 64, but got a key with length {len(key)} instead.",
                                "metadata", "string_above_max_length")
            if not isinstance(value, str):
                return _invalid(f"Invalid type for 'metadata.{key}': expected a string, but got "
                                f"{_json_type(value)} instead.", f"metadata.{key}",
                                "invalid_type")
            if len(value) > 512:
                return _invalid(f"Invalid 'metadata.{key}': string too long. Expected a string "
                                f"with maximum length 512, but got a string with length "
                                f"{len(value)} instead.", f"metadata.{key}",
                                "string_above_max_length")
        return None

    def _read_input(self, content: bytes, endpoint: str
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
        """The valid request lines, the problems (one per bad line, 1-based line numbers, blank
        lines skipped but counted), and the model every line names."""
        if len(content) > self.batch_max_bytes:
            return [], [_line_problem(
                "file_too_large", f"The input file is {len(content)} bytes; the limit is "
                f"{self.batch_max_bytes} bytes.", None)], None
        requests: list[dict[str, Any]] = []
        problems: list[dict[str, Any]] = []
        seen: set[str] = set()
        model: str | None = None
        count = 0
        for number, raw in enumerate(content.split(b"\n"), 1):
            if not raw.strip():
                continue
            count += 1
            if count > self.batch_max_requests:
                problems.append(_line_problem(
                    "too_many_requests", f"The input file has more than "
                    f"{self.batch_max_requests} requests; a batch may have at most "
                    f"{self.batch_max_requests}.", number))
                break
            try:
                line = json.loads(raw)
            except ValueError:
                line = None
            if not isinstance(line, dict):
                problems.append(_line_problem(
                    "invalid_json_line", "This line is not parseable as valid JSON.", number))
                continue
            custom_id, body = line.get("custom_id"), line.get("body")
            problem: tuple[str, str] | None = None
            if not isinstance(custom_id, str) or not custom_id:
                problem = ("missing_custom_id",
                           "The custom_id for this request must be a non-empty string.")
            elif custom_id in seen:
                problem = ("duplicate_custom_id",
                           "The custom_id for this request is a duplicate of another request. "
                           "The custom_id parameter must be unique for each request in a batch.")
            elif line.get("method") != "POST":
                problem = ("invalid_method",
                           "The method for this request must be 'POST'.")
            elif line.get("url") != endpoint:
                problem = ("mismatched_url",
                           f"The url for this request does not match the batch endpoint "
                           f"'{endpoint}'.")
            elif not isinstance(body, dict):
                problem = ("invalid_body", "The body for this request must be a JSON object.")
            elif not isinstance(body.get("model"), str):
                problem = ("missing_model", "The body for this request must name a 'model'.")
            elif model is not None and body["model"] != model:
                problem = ("mismatched_model",
                           f"The provided model '{body['model']}' does not match the model "
                           f"'{model}' of the other requests in this file: a batch uses one "
                           "model.")
            if isinstance(custom_id, str):
                seen.add(custom_id)
            if problem is not None:
                problems.append(_line_problem(*problem, number))
                continue
            model = model or line["body"]["model"]
            requests.append(line)
        if count == 0:
            problems.append(_line_problem("empty_file", "The input file has no requests.", None))
        return requests, problems, model

    def _cancel(self, batch_id: str) -> Scripted:
        batch = self.batches.get(batch_id)
        if batch is None:
            return self._no_batch(batch_id)
        if batch.status in TERMINAL_STATUSES:
            return _invalid(f"Cannot cancel a batch with status '{batch.status}'.", None, None,
                            409)
        if batch.status != "cancelling":  # cancelling again changes nothing
            batch.cancelled_while = batch.status
            batch.api_object["status"] = "cancelling"
            batch.api_object["cancelling_at"] = self._now()
        return _ok(batch.api_object)

    def _classify(self, batch: EmulatedBatch, ran: int) -> tuple[int, int]:
        """(completed, failed) once the first ``ran`` items ran (see ``_finish`` for why)."""
        plan = batch.plan
        completed = failed = 0
        for line in batch.requests[:ran]:
            custom_id = line["custom_id"]
            answered = plan.output_status_code.get(custom_id, (200, {}))[0]
            if custom_id in plan.item_errors or not 200 <= answered < 300:
                failed += 1
            else:
                completed += 1
        return completed, failed

    def _advance(self, batch: EmulatedBatch) -> None:
        """One retrieve: one step of validating -> in_progress ... -> finalizing -> the end."""
        obj, plan = batch.api_object, batch.plan
        if batch.status in TERMINAL_STATUSES:
            return
        batch.retrieves += 1
        if batch.status == "cancelling" or batch.failing or batch.retrieves >= plan.finish_after:
            self._finish(batch)
            return
        now = self._now()
        obj["in_progress_at"] = obj["in_progress_at"] or now
        obj["model"] = batch.model
        total = len(batch.requests)
        completed, failed = self._classify(batch, plan.ran(total, plan.outcome))
        if batch.retrieves >= 2 and batch.retrieves == plan.finish_after - 1:
            if plan.outcome == "cancelled":
                obj["status"], obj["cancelling_at"] = "cancelling", now
            else:
                obj["status"], obj["finalizing_at"] = "finalizing", now
        else:  # in progress: counts grow with each retrieve
            obj["status"] = "in_progress"
            steps = max(1, plan.finish_after - 1)
            completed = completed * batch.retrieves // steps
            failed = failed * batch.retrieves // steps
        obj["request_counts"] = {"total": total, "completed": completed, "failed": failed}

    def _finish(self, batch: EmulatedBatch) -> None:
        """The terminal state, with the output and error files the plan asks for."""
        obj, plan = batch.api_object, batch.plan
        now = self._now()
        outcome: str = plan.outcome
        if batch.cancelled_while is not None:
            outcome = "cancelled"
        elif batch.failing:
            outcome = "failed"
        if outcome == "failed":  # validation failed: nothing ran, request_counts stay 0
            obj.update(status="failed", failed_at=now, errors={
                "object": "list",
                "data": batch.problems or [dict(error) for error in plan.failure_errors]})
            return
        if batch.problems:  # cancelled before its validation failed: no requests, no files
            batch.requests = []
        # A batch cancelled while still validating ran nothing.
        ran = 0 if batch.cancelled_while == "validating" else plan.ran(len(batch.requests),
                                                                        outcome)
        if batch.cancelled_while != "validating":
            obj["in_progress_at"] = obj["in_progress_at"] or now
            obj["model"] = batch.model
        if outcome == "cancelled":
            obj["cancelling_at"] = obj["cancelling_at"] or now
        else:  # completed and expired batches pass through finalizing
            obj["finalizing_at"] = obj["finalizing_at"] or now
        obj[f"{outcome}_at"] = now
        output: list[str] = []  # lines, serialised at once (60,000 dicts kept alive would make
        errors: list[str] = []  # the garbage collector rescan them over and over)
        usage = _zero_usage()
        not_run = NOT_RUN_ERRORS.get(outcome)
        for index, line in enumerate(batch.requests):
            custom_id = line["custom_id"]
            line_id = "batch_req_" + _hex(32)
            if index >= ran:
                if not_run is not None and plan.missing_lines == "error_file":
                    errors.append(json.dumps({
                        "id": line_id, "custom_id": custom_id, "response": None,
                        "error": {"code": not_run[0], "message": not_run[1]}}) + "\n")
                continue
            if custom_id in plan.item_errors:
                status, body = plan.item_errors[custom_id]
                target = errors
                body = body if "error" in body else {"error": dict(body)}
            elif custom_id in plan.output_status_code:
                status, body = plan.output_status_code[custom_id]
                target = output
            else:
                status, target = 200, output
                if custom_id in plan.item_bodies:
                    body = plan.item_bodies[custom_id]
                else:
                    body = default_answer(line["body"])
                    body["id"] = "resp_" + _hex(48)
            if target is output and 200 <= status < 300:
                _add_usage(usage, body.get("usage"))
            target.append(json.dumps({"id": line_id, "custom_id": custom_id, "response": {
                "status_code": status, "request_id": _hex(32), "body": body},
                "error": None}) + "\n")
        if plan.shuffle_seed is not None:
            shuffler = random.Random(plan.shuffle_seed)
            shuffler.shuffle(output)
            shuffler.shuffle(errors)
        for kind, lines in (("output", output), ("error", errors)):
            if lines:
                file = StoredFile(_file_id(), f"{batch.id}_{kind}.jsonl", "batch_output",
                                  "".join(lines).encode(),
                                  now, now + FILE_TTL_SECONDS)
                self.files[file.id] = file
                obj[f"{kind}_file_id"] = file.id
        # request_counts as OpenAI reports them: total is every request in the file, completed
        # the ones answered with a 2xx, failed the ones that ran and got a non-2xx (error file or
        # output file). Items an expiry or cancel kept from running are in neither count (they
        # are only in the error file, with batch_expired / batch_cancelled), so completed +
        # failed < total for such batches.
        completed, failed = self._classify(batch, ran)
        obj["request_counts"] = {"total": len(batch.requests), "completed": completed,
                                 "failed": failed}
        obj["usage"] = usage
        obj["status"] = outcome


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog (5) drops connections when a fan-out (or a forwarding FaultServer,
    # which opens one connection per request) connects many at once.
    request_queue_size = 1024
