"""The Gemini emulator (generateContent, Batch API, Files API), checked through the official
google-genai SDK (the test oracle) wherever it can drive it, and with raw httpx2 for exact shapes
and for what the SDK would never send. Answers must parse as the SDK's types and have the shapes
of the recorded fixtures (tests/data/fixtures/gemini)."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import errors, types

from tests.conftest import fixture_names, load_fixture
from tests.emulator import example_instance
from tests.gemini_emulator import (
    API_KEY,
    BATCH_OUTPUT_TYPE,
    BATCH_TYPE,
    GeminiBatchPlan,
    GeminiEmulator,
    error_body,
    error_object,
    last_user_text,
    response_body,
    timestamp,
    to_json_schema,
    truncate,
    validate_request,
)

MODEL = "gemini-2.5-flash"
SCHEMA = {"type": "object", "required": ["city", "population"],
          "properties": {"city": {"type": "string"}, "population": {"type": "integer"}}}
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
CREATE_BATCH = f"/v1beta/models/{MODEL}:batchGenerateContent"
JOB_STATES = {"succeeded": "JOB_STATE_SUCCEEDED", "failed": "JOB_STATE_FAILED",
              "cancelled": "JOB_STATE_CANCELLED", "expired": "JOB_STATE_EXPIRED"}


def recorded(name: str) -> dict[str, Any]:
    return load_fixture("gemini", f"{name}.json")


def fixture_body(name: str) -> Any:
    return recorded(name)["response"]["body"]


@pytest.fixture
def emulator() -> Iterator[GeminiEmulator]:
    server = GeminiEmulator().start()
    yield server
    server.stop()


def sdk(emulator: GeminiEmulator, key: str = API_KEY, version: str | None = "v1beta"
        ) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=emulator.base_url, api_version=version))


@pytest.fixture
def client(emulator: GeminiEmulator) -> Iterator[genai.Client]:
    with sdk(emulator) as sdk_client:
        yield sdk_client


_http: list[httpx2.Client] = []  # one client for the module: building one costs ~25 ms


@pytest.fixture(autouse=True, scope="module")
def http_client() -> Iterator[None]:
    _http.append(httpx2.Client(timeout=10))
    yield
    _http.pop().close()


def raw(emulator: GeminiEmulator, method: str, path: str, body: Any = None,
        headers: dict[str, str] | None = None, *, key: bool = True,
        content: bytes | None = None) -> httpx2.Response:
    """A request without the SDK (bodies the SDK would not send, exact shapes)."""
    sent = {"x-goog-api-key": API_KEY} if key else {}
    sent.update(headers or {})
    url = emulator.base_url + path
    if content is not None:
        return _http[0].request(method, url, content=content, headers=sent)
    return _http[0].request(method, url, json=body, headers=sent)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def request(prompt: str = "question", **config: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": [user(prompt)]}
    if config:
        body["generationConfig"] = config
    return body


def generate(emulator: GeminiEmulator, body: Any, model: str = MODEL, **extra: Any
             ) -> httpx2.Response:
    return raw(emulator, "POST", f"/v1beta/models/{model}:generateContent", body, **extra)


def assert_error(response: httpx2.Response, code: int, status: str) -> str:
    assert response.status_code == code
    body = response.json()
    assert list(body) == ["error"]
    assert list(body["error"])[:3] == ["code", "message", "status"]
    assert (body["error"]["code"], body["error"]["status"]) == (code, status)
    return str(body["error"]["message"])


def inline(count: int, prefix: str = "question") -> list[dict[str, Any]]:
    """Inline requests for the SDK (``InlinedRequest``), keyed k0, k1..."""
    return [{"contents": [user(f"{prefix} {i}")], "metadata": {"key": f"k{i}"}}
            for i in range(count)]


def raw_inline(count: int) -> dict[str, Any]:
    """A batchGenerateContent body with ``count`` inline requests, keyed k0, k1..."""
    return {"batch": {"inputConfig": {"requests": {"requests": [
        {"request": request(f"question {i}"), "metadata": {"key": f"k{i}"}}
        for i in range(count)]}}}}


def batch_id(name: str) -> str:
    return name.removeprefix("batches/")


def finish(emulator: GeminiEmulator, name: str) -> dict[str, Any]:
    """Retrieve a batch until it is done; its final Operation."""
    for _ in range(10):
        operation: dict[str, Any] = raw(emulator, "GET", f"/v1beta/{name}").json()
        if operation.get("done"):
            return operation
    raise AssertionError("the batch never ended")


def finish_sdk(client: genai.Client, job: types.BatchJob) -> types.BatchJob:
    assert job.name is not None
    for _ in range(10):
        job = client.batches.get(name=job.name)
        if job.done:
            return job
    raise AssertionError("the batch never ended")


def upload(emulator: GeminiEmulator, content: bytes, mime: str = "application/jsonl",
           headers: dict[str, str] | None = None, meta: dict[str, Any] | None = None
           ) -> httpx2.Response:
    """The start step of a resumable upload, as google-genai sends it."""
    return raw(emulator, "POST", "/upload/v1beta/files", {"file": meta or {}}, {
        "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(len(content)),
        "X-Goog-Upload-Header-Content-Type": mime, **(headers or {})})


def send_chunk(url: str, content: bytes, command: str, offset: int,
               headers: dict[str, str] | None = None) -> httpx2.Response:
    return _http[0].post(url, content=content, headers={
        "X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset),
        **(headers or {})})


def jsonl(lines: list[Any]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


# --- generateContent ------------------------------------------------------------------------------


def test_text_echoes_the_prompt_in_the_recorded_shape(emulator: GeminiEmulator,
                                                      client: genai.Client) -> None:
    answer = client.models.generate_content(model=MODEL, contents="What is 4200 + 42?")
    assert answer.text == "Echo: What is 4200 + 42?"
    assert answer.candidates and answer.candidates[0].finish_reason == "STOP"
    assert answer.model_version == MODEL and answer.response_id
    usage = answer.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count,
            usage.total_token_count) == (5, 6, 11)
    sent = emulator.requests[-1]
    assert (sent.method, sent.path) == ("POST", GENERATE)
    assert sent.headers["x-goog-api-key"] == API_KEY
    assert sent.json() == recorded("generate_text_basic")["request"]["body"]
    # the raw answer: keys in the recorded order, and valid for the SDK's strict model
    body = generate(emulator, sent.json()).json()
    expected = fixture_body("generate_text_basic")
    assert list(body) == list(expected)
    assert list(body["candidates"][0]) == list(expected["candidates"][0])
    assert list(body["usageMetadata"]) == [k for k in expected["usageMetadata"]
                                           if k != "thoughtsTokenCount"]
    assert body["candidates"][0]["content"] == {"parts": [{"text": "Echo: What is 4200 + 42?"}],
                                                "role": "model"}
    types.GenerateContentResponse.model_validate(body)
    assert len(body["responseId"]) == len(expected["responseId"])
    assert body["responseId"] != generate(emulator, sent.json()).json()["responseId"]


def test_system_instruction_and_turns_echo_the_last_user_turn(emulator: GeminiEmulator,
                                                              client: genai.Client) -> None:
    answer = client.models.generate_content(
        model=MODEL, config=types.GenerateContentConfig(system_instruction="Be very brief."),
        contents=[types.Content(role="user", parts=[types.Part(text="first")]),
                  types.Content(role="model", parts=[types.Part(text="an answer")]),
                  types.Content(role="user", parts=[types.Part(text="What is the "),
                                                    types.Part(text="capital of France?")])])
    assert answer.text == "Echo: What is the capital of France?"
    assert answer.usage_metadata and answer.usage_metadata.prompt_token_count == 3 + 1 + 2 + 6
    sent = emulator.requests[-1].json()
    assert sent["systemInstruction"] == {"parts": [{"text": "Be very brief."}], "role": "user"}
    assert last_user_text(sent) == "What is the capital of France?"
    assert last_user_text({"contents": [{"parts": [{"text": "no role"}]}]}) == "no role"


def test_structured_output_answers_an_instance_of_the_schema(emulator: GeminiEmulator,
                                                             client: genai.Client) -> None:
    answer = client.models.generate_content(
        model=MODEL, contents="Tell me about London",
        config={"response_mime_type": "application/json", "response_json_schema": SCHEMA})
    assert answer.text == json.dumps(example_instance(SCHEMA), separators=(",", ":"))
    assert answer.parsed == {"city": "example", "population": 7}
    # the recorded requests: responseJsonSchema, and the OpenAPI-style responseSchema
    text = ""
    for name in ("generate_response_json_schema", "generate_response_schema"):
        body = generate(emulator, recorded(name)["request"]["body"]).json()
        text = types.GenerateContentResponse.model_validate(body).text or ""
        config = recorded(name)["request"]["body"]["generationConfig"]
        schema = config.get("responseJsonSchema") or to_json_schema(config["responseSchema"])
        assert json.loads(text) == example_instance(schema)
    assert json.loads(text) == {"title": "example", "rating": 7,
                                "author": {"first_name": "example", "last_name": "example"}}
    assert list(json.loads(text)) == ["title", "author", "rating"]  # property_ordering
    assert to_json_schema({"type": "STRING", "nullable": True}) == {"type": ["string", "null"]}
    # JSON mode without a schema still answers JSON; text/x.enum answers the first value
    plain = generate(emulator, request("hi", responseMimeType="application/json")).json()
    assert json.loads(plain["candidates"][0]["content"]["parts"][0]["text"]) == "Echo: hi"
    enum = generate(emulator, request("hi", responseMimeType="text/x.enum", responseSchema={
        "type": "STRING", "enum": ["red", "green"]})).json()
    assert enum["candidates"][0]["content"]["parts"][0]["text"] == "red"


def test_max_output_tokens_and_stop_sequences_cut_the_answer(emulator: GeminiEmulator,
                                                             client: genai.Client) -> None:
    sent = recorded("generate_max_tokens")["request"]["body"]  # maxOutputTokens 5
    body = generate(emulator, sent).json()
    candidate = body["candidates"][0]
    assert candidate["content"]["parts"] == [{"text": "Echo: What is the capital"}]
    assert candidate["finishReason"] == "MAX_TOKENS" == fixture_body(
        "generate_max_tokens")["candidates"][0]["finishReason"]
    assert body["usageMetadata"]["candidatesTokenCount"] == 5
    exact = client.models.generate_content(model=MODEL, contents="one two",
                                           config={"max_output_tokens": 3})
    assert exact.text == "Echo: one two" and exact.candidates
    assert exact.candidates[0].finish_reason == "STOP"
    stopped = client.models.generate_content(
        model=MODEL, contents="alpha beta gamma delta",
        config={"stop_sequences": ["gamma", "beta"], "max_output_tokens": 100})
    assert stopped.text == "Echo: alpha " and stopped.candidates
    assert stopped.candidates[0].finish_reason == "STOP"
    assert truncate("Echo: a b c", 2, ["b"]) == ("Echo: a", "MAX_TOKENS")
    assert truncate("Echo: a b c", 3, ["b"]) == ("Echo: a ", "STOP")
    assert truncate("Echo: a", None) == ("Echo: a", "STOP")


@pytest.mark.parametrize("name", [n.removesuffix(".json") for n in fixture_names("gemini")
                                  if n.startswith("generate_")])
def test_every_recorded_request_is_accepted(emulator: GeminiEmulator, name: str) -> None:
    fixture = recorded(name)
    path = fixture["request"]["path"].replace("this-model-does-not-exist-12345", MODEL)
    response = raw(emulator, "POST", path, fixture["request"]["body"])
    assert response.status_code == 200, response.text
    answer = types.GenerateContentResponse.model_validate(response.json())
    assert answer.candidates and answer.candidates[0].content
    assert validate_request(fixture["request"]["body"]) is None


def test_snake_case_names_parse_like_camel_case(emulator: GeminiEmulator) -> None:
    camel = {"contents": [user("one two three")],
             "systemInstruction": {"parts": [{"text": "sys"}]},
             "generationConfig": {"maxOutputTokens": 2, "stopSequences": ["zzz"],
                                  "thinkingConfig": {"thinkingBudget": 0}}}
    snake = {"contents": [user("one two three")],
             "system_instruction": {"parts": [{"text": "sys"}]},
             "generation_config": {"max_output_tokens": 2, "stop_sequences": ["zzz"],
                                   "thinking_config": {"thinking_budget": 0}}}
    answers = [generate(emulator, body).json() for body in (camel, snake)]
    for answer in answers:
        answer.pop("responseId")
    assert answers[0] == answers[1]
    assert answers[0]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    # proto3 JSON also reads numbers sent as strings
    assert generate(emulator, request("x", maxOutputTokens="1")).status_code == 200


def _drop(body: dict[str, Any], name: str) -> dict[str, Any]:
    body.pop(name)
    return body


INVALID: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("no contents", lambda b: _drop(b, "contents"),
     "* GenerateContentRequest.contents: contents is not specified\n"),
    ("empty contents", lambda b: {**b, "contents": []}, "contents is not specified"),
    ("bad role", lambda b: {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
     "Please use a valid role: user, model."),
    ("no parts", lambda b: {"contents": [{"role": "user", "parts": []}]},
     "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty."),
    ("empty part", lambda b: {"contents": [{"role": "user", "parts": [{}]}]},
     "contents[0].parts[0].data: required oneof field 'data' must have one initialized field"),
    ("text not a string", lambda b: {"contents": [{"parts": [{"text": 5}]}]},
     "Invalid value at 'contents[0].parts[0].text' (TYPE_STRING), 5"),
    ("unknown part field", lambda b: {"contents": [{"parts": [{"txt": "x"}]}]},
     "Unknown name \"txt\" at 'contents[0].parts[0]': Cannot find field."),
    ("unknown top-level field", lambda b: {**b, "temperature": 1},
     'Invalid JSON payload received. Unknown name "temperature": Cannot find field.'),
    ("temperature above 2", lambda b: {**b, "generationConfig": {"temperature": 2.5}},
     "* GenerateContentRequest.generation_config.temperature: temperature must be in the range"),
    ("temperature not a number", lambda b: {**b, "generationConfig": {"temperature": "hot"}},
     "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\""),
    ("top_p above 1", lambda b: {**b, "generationConfig": {"top_p": 1.5}},
     "generation_config.top_p: top_p must be in the range [0.0, 1.0]"),
    ("max tokens 0", lambda b: {**b, "generationConfig": {"maxOutputTokens": 0}},
     "generation_config.max_output_tokens: max_output_tokens must be at least 1"),
    ("seed not an integer", lambda b: {**b, "generationConfig": {"seed": 1.5}},
     "Invalid value at 'generation_config.seed' (TYPE_INT32), 1.5"),
    ("six stop sequences", lambda b: {**b, "generationConfig": {"stopSequences": list("abcdef")}},
     "generation_config.stop_sequences: stop_sequences must have at most 5 elements"),
    ("nine candidates", lambda b: {**b, "generationConfig": {"candidateCount": 9}},
     "generation_config.candidate_count: candidate_count must be in the range [1, 8]"),
    ("bad mime type", lambda b: {**b, "generationConfig": {"responseMimeType": "text/csv"}},
     "generation_config.response_mime_type: allowed mimetypes are `text/plain`"),
    ("schema without JSON", lambda b: {**b, "generationConfig": {"responseJsonSchema": SCHEMA}},
     "response_mime_type must be `application/json`"),
    ("two schemas", lambda b: {**b, "generationConfig": {
        "responseMimeType": "application/json", "responseJsonSchema": SCHEMA,
        "responseSchema": {"type": "OBJECT"}}}, "cannot both be set"),
    ("unknown thinking field", lambda b: {**b, "generationConfig": {"thinkingConfig": {
        "budget": 1}}}, "Unknown name \"budget\" at 'generation_config.thinking_config'"),
    ("not an object", lambda b: [b], "Invalid value at ''"),
]


@pytest.mark.parametrize(("mutate", "message"), [case[1:] for case in INVALID],
                         ids=[case[0] for case in INVALID])
def test_invalid_requests_are_refused_naming_the_field(
        emulator: GeminiEmulator, mutate: Callable[[dict[str, Any]], Any], message: str) -> None:
    body = mutate(request("question"))
    answer = generate(emulator, body)
    assert message in assert_error(answer, 400, "INVALID_ARGUMENT")
    assert validate_request(body) is not None


def test_an_unknown_generation_config_name_reads_as_the_api_says(emulator: GeminiEmulator,
                                                                 client: genai.Client) -> None:
    answer = generate(emulator, request("x", maxTokens=5))
    assert assert_error(answer, 400, "INVALID_ARGUMENT") == (
        'Invalid JSON payload received. Unknown name "maxTokens" at \'generation_config\': '
        "Cannot find field.")
    [violation] = answer.json()["error"]["details"]
    assert violation["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model=MODEL, contents="x",
                                       config={"temperature": 7.0})
    assert (raised.value.code, raised.value.status) == (400, "INVALID_ARGUMENT")
    assert "temperature" in str(raised.value.message)


def test_the_key_goes_in_the_header_and_never_in_the_url(emulator: GeminiEmulator) -> None:
    expected = fixture_body("generate_error_400_api_key_invalid")
    for headers, key in (({}, False), ({"x-goog-api-key": "AIza-wrong"}, False)):
        answer = generate(emulator, request(), headers=headers, key=key)
        assert answer.status_code == 400
        assert answer.json() == expected  # byte for byte the recorded body
    with sdk(emulator, key="AIza-wrong") as wrong, pytest.raises(errors.ClientError) as raised:
        wrong.models.generate_content(model=MODEL, contents="x")
    assert (raised.value.code, raised.value.status) == (400, "INVALID_ARGUMENT")
    # ?key= is refused even next to a right header, unless accept_query_key is set
    in_url = raw(emulator, "POST", f"{GENERATE}?key={API_KEY}", request())
    assert "x-goog-api-key" in assert_error(in_url, 400, "INVALID_ARGUMENT")
    assert in_url.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    emulator.accept_query_key = True
    assert raw(emulator, "POST", f"{GENERATE}?key={API_KEY}", request(),
               key=False).status_code == 200
    assert raw(emulator, "POST", f"{GENERATE}?key=AIza-wrong", request()).status_code == 400
    emulator.api_key = None
    assert generate(emulator, request(), key=False).status_code == 200
    assert error_body(400, "INVALID_ARGUMENT", expected["error"]["message"],
                      "API_KEY_INVALID") == json.dumps(expected).encode()


def test_missing_models_unknown_routes_and_api_versions(emulator: GeminiEmulator,
                                                        client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model="missing-model", contents="x")
    assert (raised.value.code, raised.value.status) == (404, "NOT_FOUND")
    answer = generate(emulator, request(), model="this-model-does-not-exist-12345")
    assert answer.status_code == 200  # only missing_models are missing
    emulator.missing_models.add("this-model-does-not-exist-12345")
    answer = generate(emulator, recorded("generate_error_404_model_not_found")["request"]["body"],
                      model="this-model-does-not-exist-12345")
    assert answer.status_code == 404
    assert answer.json() == fixture_body("generate_error_404_model_not_found")
    for method, path in (("GET", "/v1beta/models"), ("POST", "/v1beta/models/x:countTokens"),
                         ("GET", GENERATE), ("POST", "/v2/files")):
        assert "was not found" in assert_error(raw(emulator, method, path), 404, "NOT_FOUND")
    # google-genai 3.x defaults to api_version v1: only v1beta is served unless asked for
    with sdk(emulator, version=None) as default, pytest.raises(errors.ClientError):
        default.models.generate_content(model=MODEL, contents="x")
    emulator.api_versions = ("v1beta", "v1")
    with sdk(emulator, version=None) as default:
        assert default.models.generate_content(model=MODEL, contents="x").text == "Echo: x"
    assert emulator.requests[-1].path == f"/v1/models/{MODEL}:generateContent"


def test_overrides_and_errors_plant_answers_per_prompt(emulator: GeminiEmulator,
                                                       client: genai.Client) -> None:
    emulator.overrides["blocked"] = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 1, "totalTokenCount": 1},
        "modelVersion": MODEL, "responseId": "blocked-1"}
    emulator.overrides["unsafe"] = response_body(MODEL, "", finish_reason="SAFETY")
    emulator.errors["busy"] = (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.")
    emulator.errors["down"] = (503, "UNAVAILABLE", "The model is overloaded.")
    blocked = client.models.generate_content(model=MODEL, contents="blocked")
    assert blocked.prompt_feedback and blocked.prompt_feedback.block_reason == "SAFETY"
    assert not blocked.candidates and blocked.text is None
    unsafe = client.models.generate_content(model=MODEL, contents="unsafe")
    assert unsafe.candidates and unsafe.candidates[0].finish_reason == "SAFETY"
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model=MODEL, contents="busy")
    assert (raised.value.code, raised.value.status) == (429, "RESOURCE_EXHAUSTED")
    with pytest.raises(errors.ServerError) as server:
        client.models.generate_content(model=MODEL, contents="down")
    assert (server.value.code, server.value.status) == (503, "UNAVAILABLE")
    assert error_object(503, "UNAVAILABLE", "x") == {
        "error": {"code": 503, "message": "x", "status": "UNAVAILABLE"}}


def test_thoughts_candidates_and_a_forced_function_call(emulator: GeminiEmulator,
                                                        client: genai.Client) -> None:
    thinking = client.models.generate_content(
        model=MODEL, contents="Think",
        config={"thinking_config": {"include_thoughts": True, "thinking_budget": 100}})
    assert thinking.text == "Echo: Think"  # the SDK leaves thought parts out of .text
    assert thinking.candidates and thinking.candidates[0].content
    parts = thinking.candidates[0].content.parts or []
    assert [(p.thought, p.text) for p in parts] == [(True, "Thinking about: Think"),
                                                    (None, "Echo: Think")]
    assert thinking.usage_metadata and thinking.usage_metadata.thoughts_token_count == 3
    several = client.models.generate_content(model=MODEL, contents="x",
                                             config={"candidate_count": 3})
    assert several.candidates and [c.index for c in several.candidates] == [0, 1, 2]
    called = client.models.generate_content(
        model=MODEL, contents="Weather in Paris?",
        config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
                name="get_weather", parameters_json_schema=SCHEMA)])],
            tool_config=types.ToolConfig(function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY))))
    assert called.function_calls and called.function_calls[0].name == "get_weather"
    assert called.function_calls[0].args == example_instance(SCHEMA)
    recorded_tool = recorded("generate_function_call")["request"]["body"]
    recorded_tool["toolConfig"] = {"functionCallingConfig": {"mode": "ANY"}}
    call = generate(emulator, recorded_tool).json()["candidates"][0]["content"]["parts"][0]
    assert call == {"functionCall": {"name": "secret_retrieval_tool",
                                     "args": {"password": "example"}}}


def test_scripted_replies_latency_and_concurrency(emulator: GeminiEmulator) -> None:
    emulator.reply(503, error_body(503, "UNAVAILABLE", "try later"), {"Retry-After": "1"})
    first = generate(emulator, request())
    assert (first.status_code, first.headers["retry-after"]) == (503, "1")
    assert generate(emulator, request()).status_code == 200
    emulator.latency = 0.2
    started = time.monotonic()
    threads = [threading.Thread(target=generate, args=(emulator, request())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 2  # the last request is counted out just after its answer
    while emulator.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert emulator.max_in_flight == 4 and emulator.in_flight == 0
    assert time.monotonic() - started < 0.8
    emulator.reset_counters()
    assert emulator.max_in_flight == 0
    # a chunked body reads like any other
    payload = json.dumps(request("chunked")).encode()
    with socket.create_connection(("127.0.0.1", int(emulator.base_url.rsplit(":", 1)[1]))) as s:
        s.sendall(f"POST {GENERATE} HTTP/1.1\r\nHost: x\r\nx-goog-api-key: {API_KEY}\r\n"
                  f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                  f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n")
        answer = b"".join(iter(lambda: s.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 200") and b"Echo: chunked" in answer
    assert emulator.requests[-1].json() == request("chunked")


def test_a_payload_over_the_limit_is_refused(emulator: GeminiEmulator) -> None:
    emulator.max_inline_bytes = 1000
    answer = generate(emulator, request("x" * 2000))
    assert assert_error(answer, 400, "INVALID_ARGUMENT") == (
        "Request payload size exceeds the limit: 1000 bytes.")
    too_big = raw(emulator, "POST", CREATE_BATCH, raw_inline(40))
    assert "payload size exceeds" in assert_error(too_big, 400, "INVALID_ARGUMENT")


# --- Batch API ------------------------------------------------------------------------------------


def test_an_inline_batch_through_the_sdk_in_the_recorded_shapes(emulator: GeminiEmulator,
                                                                 client: genai.Client) -> None:
    job = client.batches.create(model=MODEL, src=inline(3),  # type: ignore[arg-type]
                                config={"display_name": "capitals-batch"})
    assert job.state == "JOB_STATE_PENDING" and job.name and job.display_name == "capitals-batch"
    sent = emulator.requests[-1].json()
    assert sent["batch"]["inputConfig"]["requests"]["requests"][0]["metadata"] == {"key": "k0"}
    batch = emulator.batches[batch_id(job.name)]
    pending = raw(emulator, "GET", "/v1beta/batches").json()["operations"][0]
    expected = fixture_body("batches_create_inline_pending")
    assert list(pending) == list(expected)
    assert [k for k in pending["metadata"] if k != "displayName"] == list(expected["metadata"])
    assert pending["metadata"]["@type"] == BATCH_TYPE == expected["metadata"]["@type"]
    assert pending["metadata"]["batchStats"] == {"requestCount": "3", "pendingRequestCount": "3"}
    assert pending["metadata"]["model"] == f"models/{MODEL}"
    assert len(batch.id) == len(batch_id(expected["name"]))
    running = client.batches.get(name=job.name)
    assert running.state == "JOB_STATE_RUNNING" and not running.done
    done = client.batches.get(name=job.name)
    assert done.state == "JOB_STATE_SUCCEEDED" and done.end_time
    assert done.dest and done.dest.inlined_responses
    assert [(r.metadata, r.response.text if r.response else None)
            for r in done.dest.inlined_responses] == [
        ({"key": f"k{i}"}, f"Echo: question {i}") for i in range(3)]
    operation = raw(emulator, "GET", f"/v1beta/{job.name}").json()
    expected = fixture_body("batches_get_succeeded_inline")
    assert list(operation) == list(expected) and operation["done"] is True
    assert list(operation["metadata"]) == ["@type", "model",
                                           "displayName", "output", "createTime", "endTime",
                                           "updateTime", "batchStats", "state", "name"]
    assert operation["metadata"]["batchStats"] == expected["metadata"]["batchStats"]
    assert operation["response"]["@type"] == BATCH_OUTPUT_TYPE == expected["response"]["@type"]
    assert operation["metadata"]["output"] == {
        k: v for k, v in operation["response"].items() if k != "@type"}
    entry = operation["response"]["inlinedResponses"]["inlinedResponses"][0]
    assert list(entry) == ["response", "metadata"]
    assert entry["response"].keys() >= expected["response"]["inlinedResponses"][
        "inlinedResponses"][0]["response"].keys()
    create_time = operation["metadata"]["createTime"]
    assert len(create_time) == len(expected["metadata"]["createTime"]) and create_time[-1] == "Z"
    assert timestamp(1.5) == "1970-01-01T00:00:01.500000000Z"


def test_shuffled_inline_responses_keep_their_metadata(emulator: GeminiEmulator,
                                                       client: genai.Client) -> None:
    emulator.batch_plan = GeminiBatchPlan(shuffle_seed=7)
    orders = []
    for _ in range(2):
        job = finish_sdk(client, client.batches.create(
            model=MODEL, src=inline(8)))  # type: ignore[arg-type]
        assert job.dest and job.dest.inlined_responses
        keys = []
        for response in job.dest.inlined_responses:
            assert response.metadata and response.response
            key = response.metadata["key"]
            assert response.response.text == f"Echo: question {key[1:]}"
            keys.append(key)
        assert sorted(keys) == [f"k{i}" for i in range(8)]
        orders.append(keys)
    assert orders[0] != sorted(orders[0])  # out of order...
    assert orders[0] == orders[1]  # ...the same way for the same seed


def test_item_errors_bodies_and_prompt_errors(emulator: GeminiEmulator,
                                              client: genai.Client) -> None:
    special = response_body(MODEL, "planted", response_id="planted-1")
    emulator.batch_plan = GeminiBatchPlan(
        item_errors={"k1": (429, "RESOURCE_EXHAUSTED", "Quota exceeded.")},
        item_bodies={"k2": special})
    emulator.errors["question 3"] = (500, "INTERNAL", "An internal error has occurred.")
    job = client.batches.create(model=MODEL, src=inline(4))  # type: ignore[arg-type]
    assert job.name
    operation = finish(emulator, job.name)
    entries = operation["response"]["inlinedResponses"]["inlinedResponses"]
    assert entries[1] == {"error": {"code": 429, "message": "Quota exceeded.",
                                    "status": "RESOURCE_EXHAUSTED"}, "metadata": {"key": "k1"}}
    assert entries[2] == {"response": special, "metadata": {"key": "k2"}}
    assert entries[3]["error"]["status"] == "INTERNAL"
    assert operation["metadata"]["batchStats"] == {
        "requestCount": "4", "successfulRequestCount": "2", "failedRequestCount": "2"}
    parsed = client.batches.get(name=job.name)
    assert parsed.dest and parsed.dest.inlined_responses
    error = parsed.dest.inlined_responses[1].error
    assert error and (error.code, error.message) == (429, "Quota exceeded.")
    assert emulator.batches[batch_id(job.name)].outcomes == {
        "k0": "response", "k1": "error", "k2": "response", "k3": "error"}


def test_omitted_doubled_and_metadata_less_responses(emulator: GeminiEmulator) -> None:
    emulator.batch_plan = GeminiBatchPlan(omit={"k0"}, duplicate={"k2"})
    operation = finish(emulator, raw(emulator, "POST", CREATE_BATCH, raw_inline(3)).json()["name"])
    entries = operation["response"]["inlinedResponses"]["inlinedResponses"]
    assert [e["metadata"]["key"] for e in entries] == ["k1", "k2", "k2"]
    assert entries[1] == entries[2]
    assert operation["metadata"]["batchStats"]["successfulRequestCount"] == "3"
    emulator.batch_plan = GeminiBatchPlan(drop_metadata=True, shuffle_seed=3)
    operation = finish(emulator, raw(emulator, "POST", CREATE_BATCH, raw_inline(4)).json()["name"])
    entries = operation["response"]["inlinedResponses"]["inlinedResponses"]
    assert all(list(entry) == ["response"] for entry in entries)
    assert len(entries) == 4
    # an inline request without metadata never gets any
    body = {"batch": {"inputConfig": {"requests": {"requests": [{"request": request("bare")}]}}}}
    operation = finish(emulator, raw(emulator, "POST", CREATE_BATCH, body).json()["name"])
    assert list(operation["response"]["inlinedResponses"]["inlinedResponses"][0]) == ["response"]


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "cancelled", "expired"])
def test_every_outcome_reads_as_the_sdk_job_state(emulator: GeminiEmulator, client: genai.Client,
                                                  outcome: Any) -> None:
    emulator.batch_plan = GeminiBatchPlan(outcome=outcome, done=1)
    job = finish_sdk(client, client.batches.create(
        model=MODEL, src=inline(3)))  # type: ignore[arg-type]
    assert job.state == JOB_STATES[outcome] and job.done and job.name
    operation = raw(emulator, "GET", f"/v1beta/{job.name}").json()
    stats = operation["metadata"]["batchStats"]
    if outcome == "failed":
        assert operation["error"] == {"code": 500, "status": "INTERNAL",
                                      "message": GeminiBatchPlan().failure[2]}
        assert "response" not in operation and "output" not in operation["metadata"]
        assert stats == {"requestCount": "3"}
        return
    assert "error" not in operation
    entries = operation["response"]["inlinedResponses"]["inlinedResponses"]
    if outcome == "succeeded":
        assert len(entries) == 3 and stats["successfulRequestCount"] == "3"
    else:  # only the item that ran answers; the others get nothing at all
        assert [e["metadata"]["key"] for e in entries] == ["k0"]
        assert stats == {"requestCount": "3", "successfulRequestCount": "1",
                         "pendingRequestCount": "2"}


def test_an_expired_batch_where_nothing_ran_has_no_responses(emulator: GeminiEmulator) -> None:
    emulator.batch_plan = GeminiBatchPlan(outcome="expired", done=0, finish_after=1)
    operation = finish(emulator, raw(emulator, "POST", CREATE_BATCH, raw_inline(2)).json()["name"])
    assert operation["metadata"]["state"] == "BATCH_STATE_EXPIRED"
    assert "response" not in operation and "output" not in operation["metadata"]


def test_a_user_cancel_ends_the_batch_at_the_next_retrieve(emulator: GeminiEmulator,
                                                           client: genai.Client) -> None:
    emulator.batch_plan = GeminiBatchPlan(finish_after=5, done=2)
    job = client.batches.create(model=MODEL, src=inline(4))  # type: ignore[arg-type]
    assert job.name
    assert client.batches.get(name=job.name).state == "JOB_STATE_RUNNING"
    client.batches.cancel(name=job.name)
    assert emulator.requests[-1].path == f"/v1beta/{job.name}:cancel"
    again = raw(emulator, "POST", f"/v1beta/{job.name}:cancel")
    assert (again.status_code, again.json()) == (200, {})
    cancelled = client.batches.get(name=job.name)
    assert cancelled.state == "JOB_STATE_CANCELLED"
    assert cancelled.dest and cancelled.dest.inlined_responses
    assert [r.metadata for r in cancelled.dest.inlined_responses] == [{"key": "k0"},
                                                                     {"key": "k1"}]
    late = raw(emulator, "POST", f"/v1beta/{job.name}:cancel")
    assert "cannot be cancelled" in assert_error(late, 400, "FAILED_PRECONDITION")
    with pytest.raises(errors.ClientError):
        client.batches.cancel(name=job.name)
    client.batches.delete(name=job.name)
    assert raw(emulator, "GET", f"/v1beta/{job.name}").status_code == 404


def test_finish_after_zero_and_one(emulator: GeminiEmulator) -> None:
    emulator.batch_plan = GeminiBatchPlan(finish_after=0)
    created = raw(emulator, "POST", CREATE_BATCH, raw_inline(1)).json()
    assert created["done"] is True
    assert created["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    emulator.batch_plan = GeminiBatchPlan(finish_after=1)
    created = raw(emulator, "POST", CREATE_BATCH, raw_inline(1)).json()
    assert "done" not in created and created["metadata"]["state"] == "BATCH_STATE_PENDING"
    first = raw(emulator, "GET", f"/v1beta/{created['name']}").json()
    assert first["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert raw(emulator, "GET", f"/v1beta/{created['name']}").json() == first


def _bad_item(body: dict[str, Any]) -> dict[str, Any]:
    body["batch"]["inputConfig"]["requests"]["requests"][1]["request"]["generationConfig"] = {
        "temperature": 9}
    return body


BAD_BATCHES: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("invalid item", _bad_item,
     "* BatchGenerateContentRequest.batch.input_config.requests.requests[1].request."
     "generation_config.temperature: temperature must be in the range"),
    ("no requests", lambda b: {"batch": {"inputConfig": {"requests": {"requests": []}}}},
     "requests must not be empty"),
    ("no input", lambda b: {"batch": {"displayName": "x"}}, "input_config is not specified"),
    ("two inputs", lambda b: {"batch": {"inputConfig": {
        **b["batch"]["inputConfig"], "fileName": "files/x"}}}, "exactly one of"),
    ("unknown batch field", lambda b: {"batch": {**b["batch"], "displayname": "x"}},
     "Unknown name \"displayname\" at 'batch': Cannot find field."),
    ("model mismatch", lambda b: {"batch": {**b["batch"], "model": "models/other"}},
     "the batch names model"),
    ("no batch", lambda b: {}, "batch is not specified"),
    ("item without request", lambda b: {"batch": {"inputConfig": {"requests": {"requests": [
        {"metadata": {"key": "a"}}]}}}}, "requests[0].request: request is not specified"),
]


@pytest.mark.parametrize(("mutate", "message"), [case[1:] for case in BAD_BATCHES],
                         ids=[case[0] for case in BAD_BATCHES])
def test_invalid_batches_are_refused_naming_the_item(
        emulator: GeminiEmulator, mutate: Callable[[dict[str, Any]], Any], message: str) -> None:
    answer = raw(emulator, "POST", CREATE_BATCH, mutate(raw_inline(2)))
    assert message in assert_error(answer, 400, "INVALID_ARGUMENT")
    assert not emulator.batches


def test_batch_lookups_that_fail(emulator: GeminiEmulator, client: genai.Client) -> None:
    missing = raw(emulator, "POST", "/v1beta/models/missing-model:batchGenerateContent",
                  raw_inline(1))
    assert "not supported for batchGenerateContent" in assert_error(missing, 404, "NOT_FOUND")
    no_file = raw(emulator, "POST", CREATE_BATCH,
                  {"batch": {"inputConfig": {"fileName": "files/nope"}}})
    assert_error(no_file, 403, "PERMISSION_DENIED")
    for method, path in (("GET", "/v1beta/batches/nope"), ("POST", "/v1beta/batches/nope:cancel"),
                         ("DELETE", "/v1beta/batches/nope")):
        assert assert_error(raw(emulator, method, path), 404, "NOT_FOUND") == (
            "Requested entity was not found.")
    with pytest.raises(errors.ClientError) as raised:
        client.batches.get(name="batches/nope")
    assert raised.value.code == 404
    # the model may be named inside the batch and inside each request (as the SDK can send it)
    body = raw_inline(1)
    body["batch"]["model"] = f"models/{MODEL}"
    body["batch"]["inputConfig"]["requests"]["requests"][0]["request"]["model"] = f"models/{MODEL}"
    assert raw(emulator, "POST", CREATE_BATCH, body).status_code == 200


def test_a_file_batch_end_to_end_through_the_sdk(emulator: GeminiEmulator,
                                                 client: genai.Client) -> None:
    emulator.batch_plan = GeminiBatchPlan(shuffle_seed=1)
    lines: list[dict[str, Any]] = [{"key": f"request_{i}", "request": request(f"question {i}")}
                                   for i in range(5)]
    lines[3]["request"]["generationConfig"] = {"temperature": 5}  # that item answers an error
    uploaded = client.files.upload(file=io.BytesIO(jsonl(lines)),
                                   config={"mime_type": "application/jsonl",
                                           "display_name": "batch input"})
    assert uploaded.name and uploaded.source == "UPLOADED" and uploaded.state == "ACTIVE"
    assert uploaded.size_bytes == len(jsonl(lines)) and uploaded.download_uri is None
    job = client.batches.create(model=MODEL, src=uploaded.name,
                                config={"display_name": "ellmer-1783003258"})
    assert job.state == "JOB_STATE_PENDING" and job.name
    assert emulator.requests[-1].json() == {"batch": {
        "inputConfig": {"fileName": uploaded.name}, "displayName": "ellmer-1783003258"}}
    job = finish_sdk(client, job)
    assert job.state == "JOB_STATE_SUCCEEDED"
    assert job.dest and job.dest.file_name == f"files/batch-{batch_id(job.name or '')}"
    operation = raw(emulator, "GET", f"/v1beta/{job.name}").json()
    expected = fixture_body("batches_get_succeeded_file")
    assert list(operation) == list(expected)
    assert list(operation["metadata"]) == list(expected["metadata"])
    assert operation["metadata"]["inputConfig"] == {"fileName": uploaded.name}
    assert operation["response"] == {"@type": BATCH_OUTPUT_TYPE,
                                     "responsesFile": job.dest.file_name}
    assert operation["metadata"]["output"] == {"responsesFile": job.dest.file_name}
    assert operation["metadata"]["batchStats"] == {
        "requestCount": "5", "successfulRequestCount": "4", "failedRequestCount": "1"}
    result = client.files.get(name=job.dest.file_name)
    assert result.source == "GENERATED" and result.download_uri
    assert result.download_uri.startswith(emulator.base_url + "/download/v1beta/files/batch-")
    content = client.files.download(file=result)
    assert content == client.files.download(file=job.dest.file_name)
    via_uri = raw(emulator, "GET", result.download_uri.removeprefix(emulator.base_url))
    assert via_uri.content == content
    # the results file: compact lines, a newline after each, in a shuffled order, keyed
    assert content.endswith(b"\n") and not content.endswith(b"\n\n")
    for line in content.decode().splitlines():
        assert line == json.dumps(json.loads(line), separators=(",", ":"), ensure_ascii=False)
    recorded_line = json.loads(fixture_body("batch_results_file_jsonl").splitlines()[0])
    results = [json.loads(line) for line in content.splitlines()]
    assert [r["key"] for r in results] != [line["key"] for line in lines]
    for line in results:
        if line["key"] == "request_3":
            assert set(line) == {"key", "error"}
            assert "temperature" in line["error"]["message"]
            continue
        assert set(line) == set(recorded_line)
        answer = types.GenerateContentResponse.model_validate(line["response"])
        assert answer.text == f"Echo: question {line['key'].rsplit('_', 1)[1]}"
        assert line["response"].keys() == recorded_line["response"].keys()
    assert emulator.files[f"batch-{batch_id(job.name or '')}"].lines() == results
    assert all("key=" not in sent.path for sent in emulator.requests)


def test_a_bad_input_file_fails_the_batch(emulator: GeminiEmulator, client: genai.Client) -> None:
    content = jsonl([{"key": "a", "request": request("fine")}]) + b"not json\n"
    uploaded = client.files.upload(file=io.BytesIO(content),
                                   config={"mime_type": "application/jsonl"})
    assert uploaded.name
    job = finish_sdk(client, client.batches.create(model=MODEL, src=uploaded.name))
    assert job.state == "JOB_STATE_FAILED"
    operation = raw(emulator, "GET", f"/v1beta/{job.name}").json()
    assert operation["error"]["status"] == "INVALID_ARGUMENT"
    assert operation["error"]["message"].startswith(f"Line 2 of {uploaded.name}")
    assert "response" not in operation
    lines = jsonl([{"key": "a", "request": request("x")}, {"request": request("y")}])
    started = upload(emulator, lines)
    sent = send_chunk(started.headers["x-goog-upload-url"], lines, "upload, finalize", 0)
    name = sent.json()["file"]["name"]
    operation = finish(emulator, raw(emulator, "POST", CREATE_BATCH, {
        "batch": {"inputConfig": {"fileName": name}}}).json()["name"])
    assert operation["metadata"]["state"] == "BATCH_STATE_FAILED"
    assert 'no string "key"' in operation["error"]["message"]


def test_batches_list_and_delete(emulator: GeminiEmulator, client: genai.Client) -> None:
    names = [raw(emulator, "POST", CREATE_BATCH, raw_inline(1)).json()["name"] for _ in range(3)]
    listed = [job.name for job in client.batches.list(config={"page_size": 2})]
    assert listed == names[::-1]
    page = raw(emulator, "GET", "/v1beta/batches?pageSize=2").json()
    assert page["nextPageToken"] and len(page["operations"]) == 2
    assert raw(emulator, "DELETE", f"/v1beta/{names[0]}").json() == {}
    assert batch_id(names[0]) not in emulator.batches


# --- Files API ------------------------------------------------------------------------------------


def test_the_resumable_upload_protocol(emulator: GeminiEmulator) -> None:
    content = b'{"key":"a"}\n'
    assert upload(emulator, content, headers={"x-goog-api-key": "AIza-wrong"}).status_code == 400
    started = upload(emulator, content, meta={"displayName": "input", "sizeBytes": len(content)})
    assert (started.status_code, started.content) == (200, b"")
    assert started.headers["x-goog-upload-status"] == "active"
    url = started.headers["x-goog-upload-url"]
    assert url.startswith(f"{emulator.base_url}/upload/v1beta/files?upload_id=")
    assert url.endswith("&upload_protocol=resumable") and "key=" not in url
    # a wrong key on the second step is refused; no key is fine: the upload_id authorizes it
    wrong = send_chunk(url, content, "upload, finalize", 0, {"x-goog-api-key": "AIza-wrong"})
    assert (wrong.status_code, wrong.headers["x-goog-upload-status"]) == (400, "final")
    started = upload(emulator, content, meta={"display_name": "input"})
    url = started.headers["x-goog-upload-url"]
    assert send_chunk(url, content[:4], "upload", 0).headers["x-goog-upload-status"] == "active"
    query = _http[0].post(url, headers={"X-Goog-Upload-Command": "query"})
    assert query.headers["x-goog-upload-size-received"] == "4"
    final = send_chunk(url, content[4:], "upload, finalize", 4)
    assert (final.status_code, final.headers["x-goog-upload-status"]) == (200, "final")
    file = final.json()["file"]
    expected = fixture_body("files_upload_resumable_finalize")
    assert list(final.json()) == list(expected)
    assert [k for k in file if k != "displayName"] == list(expected["file"])
    assert (file["displayName"], file["mimeType"], file["sizeBytes"], file["source"],
            file["state"]) == ("input", "application/jsonl", str(len(content)), "UPLOADED",
                               "ACTIVE")
    assert emulator.files[file["name"].removeprefix("files/")].content == content
    assert len(file["name"]) == len(expected["file"]["name"])
    assert file["sha256Hash"].endswith("=") and file["uri"].startswith(emulator.base_url)
    gone = send_chunk(url, b"", "finalize", 0)
    assert "No upload session" in assert_error(gone, 404, "NOT_FOUND")


@pytest.mark.parametrize("case", ["size mismatch", "wrong offset", "too long", "too big",
                                  "not resumable", "no key", "key required", "taken name"])
def test_uploads_that_fail(emulator: GeminiEmulator, case: str) -> None:
    content = b"0123456789"
    if case == "too big":
        emulator.max_file_bytes = 5
        assert "at most 5 bytes" in assert_error(upload(emulator, content), 400,
                                                 "INVALID_ARGUMENT")
        return
    if case == "not resumable":
        answer = raw(emulator, "POST", "/upload/v1beta/files", {},
                     {"X-Goog-Upload-Protocol": "multipart"})
        assert "resumable" in assert_error(answer, 400, "INVALID_ARGUMENT")
        return
    if case == "no key":
        answer = upload(emulator, content, headers={"x-goog-api-key": ""})
        assert answer.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
        return
    if case == "taken name":
        first = upload(emulator, content, meta={"name": "files/my-input"})
        send_chunk(first.headers["x-goog-upload-url"], content, "upload, finalize", 0)
        assert_error(upload(emulator, content, meta={"name": "files/my-input"}), 409,
                     "ALREADY_EXISTS")
        return
    emulator.upload_requires_key = case == "key required"
    url = upload(emulator, content).headers["x-goog-upload-url"]
    sent = {"size mismatch": (content[:9], "upload, finalize", 0),
            "wrong offset": (content, "upload, finalize", 3),
            "too long": (content + b"!", "upload", 0),
            "key required": (content, "upload, finalize", 0)}[case]
    answer = send_chunk(url, *sent)
    assert answer.status_code == 400 and answer.headers["x-goog-upload-status"] == "final"
    assert not emulator.files


def test_files_get_list_delete_and_what_may_be_downloaded(emulator: GeminiEmulator,
                                                          client: genai.Client) -> None:
    uploaded = client.files.upload(file=io.BytesIO(b"%PDF-1.4"),
                                   config={"mime_type": "application/pdf"})
    assert uploaded.name and uploaded.mime_type == "application/pdf"
    fetched = raw(emulator, "GET", f"/v1beta/{uploaded.name}").json()
    assert list(fetched) == list(fixture_body("files_get"))
    assert client.files.get(name=uploaded.name).size_bytes == 8
    # uploaded files cannot be downloaded: the SDK refuses a File without downloadUri itself,
    # and the API refuses the name
    with pytest.raises(ValueError, match="Only generated files can be downloaded"):
        client.files.download(file=uploaded)
    with pytest.raises(errors.ClientError) as raised:
        client.files.download(file=uploaded.name)
    assert raised.value.code == 400 and "Only generated files" in str(raised.value.message)
    file_id = uploaded.name.removeprefix("files/")
    assert "alt=media" in assert_error(
        raw(emulator, "GET", f"/download/v1beta/files/{file_id}:download"), 400,
        "INVALID_ARGUMENT")
    assert assert_error(raw(emulator, "GET", "/v1beta/files/nope"), 403,
                        "PERMISSION_DENIED").startswith("You do not have permission")
    assert raw(emulator, "GET", "/download/v1beta/files/nope:download?alt=media"
               ).status_code == 403
    assert [f.name for f in client.files.list()] == [uploaded.name]
    client.files.delete(name=uploaded.name)
    assert raw(emulator, "GET", "/v1beta/files").json() == {}
    assert raw(emulator, "DELETE", f"/v1beta/{uploaded.name}").status_code == 403
