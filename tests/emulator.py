"""A loopback emulator of OpenAI's Responses API, for tests and benchmarks (127.0.0.1 only).

It is a real HTTP/1.1 server (keep-alive, Content-Length) on a random port. By default it answers
``POST /v1/responses`` the way the API does, with a tiny deterministic "model": plain text echoes
the prompt, and a ``json_schema`` format gets a small valid instance of the schema. Tests can queue
scripted replies (any status, headers, body, delay) that are served first, in order, and every
request is recorded for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
class Scripted:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(factory=dict)
    delay: float = 0.0


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


def error_body(message: str, error_type: str, code: str | None, param: str | None = None
               ) -> bytes:
    return json.dumps({"error": {"message": message, "type": error_type, "param": param,
                                 "code": code}}).encode()


@define
class OpenAIEmulator:
    api_key: str | None = API_KEY
    requests: list[Recorded] = field(factory=list)
    script: deque[Scripted] = field(factory=deque)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(factory=threading.Lock)

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

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self._serve()

            def do_GET(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
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
                try:
                    self.send_response(scripted.status)
                    for name, value in scripted.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(scripted.body)))
                    self.end_headers()
                    self.wfile.write(scripted.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
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
        if recorded.method != "POST" or recorded.path != "/v1/responses":
            return Scripted(404, error_body(f"Invalid URL ({recorded.method} {recorded.path})",
                                            "invalid_request_error", None))
        try:
            request = recorded.json()
        except ValueError:
            return Scripted(400, error_body("We could not parse the JSON body of your request.",
                                            "invalid_request_error", None))
        return Scripted(200, json.dumps(default_answer(request)).encode())
