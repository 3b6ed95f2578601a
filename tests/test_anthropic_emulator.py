"""The Anthropic emulator (Messages + Message Batches), checked through the official anthropic SDK
(the test oracle): the SDK must parse every answer, and the objects must have the shapes of the
recorded fixtures (tests/data/fixtures/anthropic)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import anthropic
import httpx2
import pytest
from anthropic.types import Message
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from tests.anthropic_emulator import (
    API_KEY,
    MAX_BATCH_BYTES,
    MAX_BATCH_REQUESTS,
    AnthropicEmulator,
    MessageBatchPlan,
    default_message,
    error_object,
    last_user_text,
    message_body,
    truncate,
    validate_params,
)
from tests.conftest import load_fixture
from tests.emulator import example_instance

MODEL = "claude-emulated-1"  # a name the SDK does not warn about as deprecated
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["city", "population"],
          "properties": {"city": {"type": "string"}, "population": {"type": "integer"}}}
TOOL = {"name": "get_weather", "description": "The weather in a city.",
        "input_schema": {"type": "object", "required": ["city"],
                         "properties": {"city": {"type": "string"},
                                        "unit": {"enum": ["celsius", "fahrenheit"]}}}}


def fixture_body(name: str) -> Any:
    return load_fixture("anthropic", f"{name}.json")["response"]["body"]


@pytest.fixture
def emulator() -> Iterator[AnthropicEmulator]:
    server = AnthropicEmulator().start()
    yield server
    server.stop()


@pytest.fixture
def client(emulator: AnthropicEmulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key=API_KEY, base_url=emulator.base_url, max_retries=0) as sdk:
        yield sdk


def ask(client: anthropic.Anthropic, prompt: Any = "Hello there", **extra: Any) -> Message:
    extra.setdefault("max_tokens", 1024)
    message: Message = client.messages.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}], **extra)
    return message


def raw(emulator: AnthropicEmulator, method: str, path: str, body: Any = None,
        headers: dict[str, str] | None = None) -> httpx2.Response:
    """A request without the SDK (bodies the SDK would not send, headers it always sends)."""
    sent = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01", **(headers or {})}
    with httpx2.Client(base_url=emulator.base_url) as http:
        return http.request(method, path, json=body, headers=sent)


def params(prompt: str = "question", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 256,
            "messages": [{"role": "user", "content": prompt}], **extra}


def batch_requests(count: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"req-{i}", "params": params(f"question {i}")} for i in range(count)]


def results(client: anthropic.Anthropic, batch_id: str) -> list[MessageBatchIndividualResponse]:
    return list(client.messages.batches.results(batch_id))


def run_batch(client: anthropic.Anthropic, requests: list[dict[str, Any]]) -> MessageBatch:
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    for _ in range(10):
        batch = client.messages.batches.retrieve(batch.id)
        if batch.processing_status == "ended":
            return batch
    raise AssertionError("the batch never ended")


def assert_error_shape(response: httpx2.Response, status: int, error_type: str) -> str:
    assert response.status_code == status
    body = response.json()
    assert body.keys() == fixture_body("messages_error_401_invalid_api_key").keys()
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert body["request_id"].startswith("req_")
    assert response.headers["request-id"] == body["request_id"]
    return str(body["error"]["message"])


# --- Messages -------------------------------------------------------------------------------------


def test_text_echoes_the_prompt_in_the_recorded_shape(emulator: AnthropicEmulator,
                                                       client: anthropic.Anthropic) -> None:
    response = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": "What is 4200 + 42?"}])
    message = response.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: What is 4200 + 42?"
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert message.model == MODEL and message.id.startswith("msg_")
    assert message.usage.output_tokens == 6 and message.usage.input_tokens == 5
    recorded = emulator.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/v1/messages")
    assert recorded.json()["messages"][0]["content"] == "What is 4200 + 42?"
    assert recorded.headers["anthropic-version"]
    body = response.http_response.json()
    assert response.http_response.headers["request-id"].startswith("req_")
    recorded_body = fixture_body("messages_text_basic")
    assert body.keys() == recorded_body.keys()
    assert body["usage"].keys() == recorded_body["usage"].keys()
    assert list(body) == list(recorded_body)


def test_blocks_system_and_multi_turn_echo_the_last_user_text(client: anthropic.Anthropic
                                                              ) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=100, system=[{"type": "text", "text": "Be brief."}],
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": [{"type": "text", "text": "an answer"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What's the capital",
                 "cache_control": {"type": "ephemeral", "ttl": "5m"}},
                {"type": "text", "text": "of France?"}]},
        ])
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: What's the capital\nof France?"
    assert message.usage.input_tokens == 2 + 1 + 2 + 5
    assert last_user_text({"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Welcome to Moria!"}]}]}
    ) == "Welcome to Moria!"


def test_structured_output_answers_an_instance_of_the_schema(emulator: AnthropicEmulator,
                                                             client: anthropic.Anthropic) -> None:
    message = ask(client, "Tell me about London",
                  output_config={"format": {"type": "json_schema", "schema": SCHEMA}})
    assert message.content[0].type == "text"
    text = message.content[0].text
    assert json.loads(text) == example_instance(SCHEMA)
    assert text == json.dumps(example_instance(SCHEMA), separators=(",", ":"))
    assert message.stop_reason == "end_turn"
    # the recorded request itself, and the older beta spelling (output_format)
    for name in ("messages_structured_output_config_format",
                 "messages_structured_output_format_beta"):
        request = load_fixture("anthropic", f"{name}.json")["request"]["body"]
        request.pop("stream", None)
        response = raw(emulator, "POST", "/v1/messages?beta=true", request)
        assert response.status_code == 200
        answer = Message.model_validate(response.json())
        assert answer.content[0].type == "text"
        fmt = request.get("output_config", {}).get("format") or request["output_format"]
        assert json.loads(answer.content[0].text) == example_instance(fmt["schema"])
        assert response.json().keys() <= fixture_body(name).keys()


def test_a_forced_tool_gets_a_tool_use_block(client: anthropic.Anthropic) -> None:
    message = ask(client, "Weather in Paris?", tools=[TOOL],
                  tool_choice={"type": "tool", "name": "get_weather"})
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use"
    assert block.name == "get_weather" and block.id.startswith("toolu_")
    assert block.input == {"city": "example", "unit": "celsius"}
    recorded_block = fixture_body("messages_tool_use")["content"][1]
    assert block.model_dump(exclude_unset=True).keys() == recorded_block.keys()
    # "auto" lets the model talk; "any" picks a tool
    assert ask(client, "hi", tools=[TOOL], tool_choice={"type": "auto"}).stop_reason == "end_turn"
    assert ask(client, "hi", tools=[TOOL], tool_choice={"type": "any"}).stop_reason == "tool_use"


def test_max_tokens_cuts_the_answer_at_that_many_words(client: anthropic.Anthropic) -> None:
    message = ask(client, "one two three four", max_tokens=3)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: one two"
    assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 3)
    exact = ask(client, "one two", max_tokens=3)
    assert exact.stop_reason == "end_turn"
    structured = ask(client, "x", max_tokens=1,
                     output_config={"format": {"type": "json_schema", "schema": {
                         "type": "object", "properties": {"a": {"type": "string"},
                                                          "b": {"type": "string"}}}}})
    assert structured.stop_reason == "end_turn"  # compact JSON is one word: not cut


def test_stop_sequences_cut_before_the_earliest(client: anthropic.Anthropic) -> None:
    message = ask(client, "alpha beta STOP gamma END", stop_sequences=["END", "STOP"])
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: alpha beta "
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "STOP")
    assert ask(client, "alpha", stop_sequences=["zzz"]).stop_reason == "end_turn"
    # whichever comes first wins
    assert truncate("a b c STOP", 2, ["STOP"]) == ("a b", "max_tokens", None)
    assert truncate("a STOP b c", 2, ["STOP"]) == ("a ", "stop_sequence", "STOP")
    assert truncate("a bSTOP c", 2, ["STOP"]) == ("a b", "stop_sequence", "STOP")


def test_overrides_plant_whole_messages(emulator: AnthropicEmulator,
                                        client: anthropic.Anthropic) -> None:
    emulator.message_overrides["refuse me"] = message_body(
        MODEL, [], stop_reason="refusal", output_tokens=0)
    thinking = fixture_body("messages_thinking")
    emulator.message_overrides["think"] = thinking
    refusal = ask(client, "refuse me")
    assert (refusal.stop_reason, refusal.content) == ("refusal", [])
    answer = ask(client, [{"type": "text", "text": "think"}])
    assert [block.type for block in answer.content] == ["thinking", "text"]
    assert answer.model_dump(mode="json", exclude_unset=True) == thinking
    assert ask(client, "other").stop_reason == "end_turn"


def test_scripted_replies_come_first_on_any_route(emulator: AnthropicEmulator,
                                                  client: anthropic.Anthropic) -> None:
    emulator.reply(500, {"type": "error", "error": {"type": "api_error", "message": "boom"}},
                   {"request-id": "req_scripted"})
    emulator.reply(200, fixture_body("messages_text_basic"), delay=0.01)
    with pytest.raises(anthropic.InternalServerError) as failure:
        ask(client)
    assert failure.value.status_code == 500 and failure.value.request_id == "req_scripted"
    message = ask(client)
    assert message.content[0].type == "text" and message.content[0].text == "4200 + 42 = 4242"
    assert ask(client, "next").content[0].type == "text"
    assert len(emulator.requests) == 3


# --- errors ---------------------------------------------------------------------------------------


def test_a_wrong_key_is_401_like_the_recording(emulator: AnthropicEmulator) -> None:
    with anthropic.Anthropic(api_key="sk-ant-wrong", base_url=emulator.base_url,
                             max_retries=0) as wrong, \
            pytest.raises(anthropic.AuthenticationError) as failure:
        ask(wrong)
    assert failure.value.status_code == 401
    recorded = fixture_body("messages_error_401_invalid_api_key")
    assert isinstance(failure.value.body, dict)
    assert failure.value.body["error"] == recorded["error"]
    response = raw(emulator, "POST", "/v1/messages", params(), {"x-api-key": "nope"})
    assert assert_error_shape(response, 401, "authentication_error") == "invalid x-api-key"
    # x-api-key alone authenticates; Bearer (what SDK 2.x sends) only while accept_bearer
    assert raw(emulator, "POST", "/v1/messages", params()).status_code == 200
    emulator.accept_bearer = False
    bearer = {"x-api-key": "", "authorization": f"Bearer {API_KEY}"}
    assert raw(emulator, "POST", "/v1/messages", params(), bearer).status_code == 401


def test_missing_version_header_and_unknown_routes(emulator: AnthropicEmulator) -> None:
    with httpx2.Client(base_url=emulator.base_url) as http:
        response = http.post("/v1/messages", json=params(), headers={"x-api-key": API_KEY})
    assert "anthropic-version" in assert_error_shape(response, 400, "invalid_request_error")
    for method, path in (("GET", "/v1/nothing"), ("GET", "/v1/messages"),
                         ("POST", "/v1/messages/batches/msgbatch_x/nothing")):
        assert_error_shape(raw(emulator, method, path), 404, "not_found_error")


def test_an_unknown_model_is_404_like_the_recording(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as failure:
        client.messages.create(model="missing-model", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    assert isinstance(failure.value.body, dict)
    recorded = fixture_body("messages_error_404_model_not_found")
    assert failure.value.body.keys() == recorded.keys()
    assert failure.value.body["error"] == {"type": "not_found_error",
                                           "message": "model: missing-model"}


def test_message_errors_fail_one_prompt_among_many(emulator: AnthropicEmulator,
                                                   client: anthropic.Anthropic) -> None:
    emulator.message_errors["busy"] = (529, "overloaded_error", "Overloaded")
    emulator.message_errors["slow down"] = (429, "rate_limit_error", "Too many requests")
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        ask(client, "busy")
    assert isinstance(overloaded.value, anthropic.APIStatusError)
    assert overloaded.value.status_code == 529
    assert isinstance(overloaded.value.body, dict)
    assert overloaded.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    with pytest.raises(anthropic.RateLimitError):
        ask(client, "slow down")
    assert ask(client, "fine").stop_reason == "end_turn"


BAD_PARAMS = [
    ({"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}, "model: Field required"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
     "max_tokens: Field required"),
    (params(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
    (params(max_tokens="5"), "max_tokens: Input should be a valid integer"),
    (params(max_tokens=True), "max_tokens: Input should be a valid integer"),
    ({**params(), "model": 5}, "model: Input should be a valid string"),
    ({**params(), "messages": []}, "messages: at least one message is required"),
    ({**params(), "messages": "hi"}, "messages: Input should be a valid list"),
    ({**params(), "messages": [{"role": "system", "content": "x"}]},
     "messages.0.role: Input should be 'user' or 'assistant'"),
    ({**params(), "messages": [{"role": "user"}]}, "messages.0.content: Field required"),
    ({**params(), "messages": [{"role": "user", "content": 3}]},
     "messages.0.content: Input should be a valid list"),
    ({**params(), "messages": [{"role": "user", "content": [{"text": "x"}]}]},
     "messages.0.content.0.type: Field required"),
    ({**params(), "messages": [{"role": "user", "content": [{"type": "text"}]}]},
     "messages.0.content.0.text: Field required"),
    ({**params(), "messages": [{"role": "user", "content": ""}]},
     "messages.0: all messages must have non-empty content"),
    (params(system=[{"type": "image"}]), "system.0.type: Input should be 'text'"),
    (params(system=5), "system: Input should be a valid list"),
    (params(temperature=1.5), "temperature: Input should be less than or equal to 1"),
    (params(temperature=-0.1), "temperature: Input should be greater than or equal to 0"),
    (params(top_p=2), "top_p: Input should be less than or equal to 1"),
    (params(top_p="high"), "top_p: Input should be a valid number"),
    (params(stop_sequences="END"), "stop_sequences: Input should be a valid list"),
    (params(stop_sequences=["END", 3]), "stop_sequences.1: Input should be a valid string"),
    (params(output_config={"format": {"type": "json_schema"}}),
     "output_config.format.schema: Field required"),
    (params(output_config={"format": {"type": "regex", "schema": {}}}),
     "output_config.format.type: Input should be 'json_schema'"),
    (params(output_config=[]), "output_config: Input should be a valid dictionary"),
    (params(tools=[{"name": "bad name!", "input_schema": {}}]), "tools.0.name: String should"),
    (params(tools=[{"name": "t"}]), "tools.0.input_schema: Field required"),
    (params(tools=[TOOL, TOOL]), "tools: Tool names must be unique"),
    (params(tool_choice={"type": "any"}), "tool_choice: tool_choice may only be specified"),
    (params(tools=[TOOL], tool_choice={"type": "tool", "name": "other"}),
     "tool_choice.name: Tool 'other' not found"),
    (params(tools=[TOOL], tool_choice={"type": "sometimes"}), "tool_choice.type: Input should"),
    (params(stream="yes"), "stream: Input should be a valid boolean"),
]


@pytest.mark.parametrize(("body", "message"), BAD_PARAMS)
def test_invalid_params_are_400_naming_the_field(emulator: AnthropicEmulator, body: Any,
                                                 message: str) -> None:
    response = raw(emulator, "POST", "/v1/messages", body)
    assert assert_error_shape(response, 400, "invalid_request_error").startswith(message)


def test_validation_accepts_what_the_api_accepts(emulator: AnthropicEmulator,
                                                 client: anthropic.Anthropic) -> None:
    for name in ("messages_text_basic", "messages_thinking", "messages_tool_use",
                 "messages_tool_result_followup", "messages_max_tokens_beta"):
        request = load_fixture("anthropic", f"{name}.json")["request"]
        assert validate_params(request["body"]) is None, name
        response = raw(emulator, "POST", request["path"], request["body"])
        assert response.status_code == 200, name
        Message.model_validate(response.json())
    # unknown top-level keys, a prefilled final assistant turn, and a prompt through the SDK
    assert validate_params({**params(), "metadata": {"user_id": "u"}, "service_tier": "auto",
                            "messages": [{"role": "user", "content": "x"},
                                         {"role": "assistant", "content": ""}]}) is None
    with pytest.raises(anthropic.BadRequestError) as failure:
        ask(client, extra_body={"temperature": 3})
    assert "temperature" in failure.value.message


def test_chunked_bodies_and_unparseable_json(emulator: AnthropicEmulator) -> None:
    payload = json.dumps(params("chunked")).encode()
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01",
               "content-type": "application/json"}
    with httpx2.Client(base_url=emulator.base_url) as http:
        response = http.post("/v1/messages", content=iter([payload[:10], payload[10:]]),
                             headers=headers)
        assert response.status_code == 200
        assert response.json()["content"][0]["text"] == "Echo: chunked"
        assert "chunked" in emulator.requests[-1].headers.get("transfer-encoding", "")
        broken = http.post("/v1/messages", content=b"{not json", headers=headers)
    assert "parsing the body" in assert_error_shape(broken, 400, "invalid_request_error")


def test_count_tokens(emulator: AnthropicEmulator, client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "three little words"}])
    assert counted.input_tokens == 3


def test_latency_and_bounded_concurrency_counters(emulator: AnthropicEmulator,
                                                  client: anthropic.Anthropic) -> None:
    emulator.latency = 0.2
    answers: list[str] = []

    def call(index: int) -> None:
        message = ask(client, f"thread {index}")
        assert message.content[0].type == "text"
        answers.append(message.content[0].text)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert sorted(answers) == [f"Echo: thread {i}" for i in range(4)]
    assert elapsed >= 0.2  # each answer waited its latency
    # The server counts a request out just after sending its answer: let the last one finish.
    deadline = time.monotonic() + 2
    while emulator.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (emulator.max_in_flight, emulator.in_flight) == (4, 0)
    emulator.reset_counters()
    emulator.latency = 0.0
    ask(client)
    client.messages.batches.create(requests=batch_requests(1))  # type: ignore[arg-type]
    assert emulator.max_in_flight == 1  # only POST /v1/messages counts


# --- Message Batches ------------------------------------------------------------------------------


def test_a_batch_walks_its_lifecycle_in_the_recorded_shapes(emulator: AnthropicEmulator,
                                                            client: anthropic.Anthropic) -> None:
    created = client.messages.batches.create(requests=batch_requests(3))  # type: ignore[arg-type]
    body = emulator.batches[created.id].api_object
    recorded = fixture_body("batches_create_in_progress")
    assert list(json.loads(emulator_raw_create(emulator))) == list(recorded)
    assert created.id.startswith("msgbatch_") and created.processing_status == "in_progress"
    assert created.request_counts.processing == 3 and created.results_url is None
    assert (created.expires_at - created.created_at).total_seconds() == 24 * 3600
    assert body["created_at"].endswith("+00:00") and len(body["created_at"]) == 32
    first = client.messages.batches.retrieve(created.id)
    assert first.processing_status == "in_progress" and first.ended_at is None
    ended = client.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert ended.request_counts.model_dump() == {"processing": 0, "succeeded": 3, "errored": 0,
                                                 "canceled": 0, "expired": 0}
    assert ended.results_url == f"{emulator.base_url}/v1/messages/batches/{ended.id}/results"
    ended_body = raw(emulator, "GET", f"/v1/messages/batches/{ended.id}").json()
    recorded_ended = fixture_body("batches_get_ended")
    assert list(ended_body) == list(recorded_ended)
    assert ended_body["request_counts"].keys() == recorded_ended["request_counts"].keys()
    MessageBatch.model_validate(recorded_ended)
    lines = results(client, created.id)
    assert [line.custom_id for line in lines] == ["req-0", "req-1", "req-2"]
    for index, line in enumerate(lines):
        assert line.result.type == "succeeded"
        message = line.result.message
        assert message.content[0].type == "text"
        assert message.content[0].text == f"Echo: question {index}"
        assert message.usage.service_tier == "batch"
    assert emulator.batches[created.id].outcomes == dict.fromkeys(["req-0", "req-1", "req-2"],
                                                                  "succeeded")


def emulator_raw_create(emulator: AnthropicEmulator) -> bytes:
    response = raw(emulator, "POST", "/v1/messages/batches", {"requests": batch_requests(2)})
    assert response.status_code == 200
    MessageBatch.model_validate(response.json())
    return response.content


def test_the_results_file_is_compact_jsonl_without_a_final_newline(
        emulator: AnthropicEmulator, client: anthropic.Anthropic) -> None:
    emulator.batch_plan = MessageBatchPlan(finish_after=1)
    batch = run_batch(client, batch_requests(3))
    response = raw(emulator, "GET", f"/v1/messages/batches/{batch.id}/results")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/binary"
    text = response.text
    assert not text.endswith("\n") and text.count("\n") == 2
    recorded = load_fixture("anthropic", "batches_results_jsonl.json")["response"]["body"]
    assert not recorded.endswith("\n")
    for ours, theirs in zip(text.split("\n"), recorded.split("\n"), strict=True):
        mine, real = json.loads(ours), json.loads(theirs)
        assert list(mine) == list(real) and list(mine["result"]) == list(real["result"])
        assert mine["result"]["message"].keys() == real["result"]["message"].keys()
        MessageBatchIndividualResponse.model_validate(real)
        assert ours == json.dumps(mine, separators=(",", ":"), ensure_ascii=False)
    # fetched twice, the same file (message ids are stable)
    assert raw(emulator, "GET", f"/v1/messages/batches/{batch.id}/results").text == text


@pytest.mark.parametrize("finish_after", [0, 1, 3])
def test_finish_after_sets_the_retrieve_that_shows_the_end(client: anthropic.Anthropic,
                                                           emulator: AnthropicEmulator,
                                                           finish_after: int) -> None:
    emulator.batch_plan = MessageBatchPlan(finish_after=finish_after)
    batch = client.messages.batches.create(requests=batch_requests(2))  # type: ignore[arg-type]
    statuses = [batch.processing_status]
    while statuses[-1] != "ended":
        statuses.append(client.messages.batches.retrieve(batch.id).processing_status)
    assert statuses == ["in_progress"] * finish_after + ["ended"]
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"


def test_a_mixed_batch_reports_errored_items(emulator: AnthropicEmulator,
                                             client: anthropic.Anthropic) -> None:
    thinking = fixture_body("messages_thinking")
    emulator.batch_plan = MessageBatchPlan(
        item_errors={"req-1": ("invalid_request_error", "prompt is too long")},
        item_bodies={"req-2": thinking})
    emulator.message_errors["question 3"] = (529, "overloaded_error", "Overloaded")
    emulator.message_overrides["question 4"] = message_body(MODEL, [], stop_reason="refusal")
    requests = batch_requests(6)
    requests[5]["params"]["model"] = "missing-model"
    batch = run_batch(client, requests)
    assert batch.request_counts.model_dump() == {"processing": 0, "succeeded": 3, "errored": 3,
                                                 "canceled": 0, "expired": 0}
    lines = {line.custom_id: line.result for line in results(client, batch.id)}
    assert lines["req-0"].type == "succeeded"
    errored = lines["req-1"]
    assert errored.type == "errored"
    assert errored.error.error.type == "invalid_request_error"
    assert errored.error.error.message == "prompt is too long"
    assert lines["req-2"].type == "succeeded"
    assert lines["req-2"].message.model_dump(mode="json", exclude_unset=True) == thinking
    assert lines["req-3"].type == "errored" and lines["req-3"].error.error.type == \
        "overloaded_error"
    assert lines["req-4"].type == "succeeded" and lines["req-4"].message.stop_reason == "refusal"
    assert lines["req-5"].type == "errored"
    assert lines["req-5"].error.error.message == "model: missing-model"
    line = emulator.batches[batch.id].result_lines()[1]
    assert line == {"custom_id": "req-1", "result": {"type": "errored", "error": error_object(
        "prompt is too long", "invalid_request_error")}}


def test_an_expired_batch_runs_the_first_done_items(emulator: AnthropicEmulator,
                                                    client: anthropic.Anthropic) -> None:
    emulator.batch_plan = MessageBatchPlan(outcome="expired", done=1)
    batch = run_batch(client, batch_requests(3))
    assert batch.request_counts.model_dump() == {"processing": 0, "succeeded": 1, "errored": 0,
                                                 "canceled": 0, "expired": 2}
    assert batch.cancel_initiated_at is None
    assert [line.result.type for line in results(client, batch.id)] == [
        "succeeded", "expired", "expired"]
    assert emulator.batches[batch.id].result_lines()[2] == {
        "custom_id": "req-2", "result": {"type": "expired"}}


def test_a_planned_cancel_passes_through_canceling(emulator: AnthropicEmulator,
                                                   client: anthropic.Anthropic) -> None:
    emulator.batch_plan = MessageBatchPlan(outcome="canceled", finish_after=3)
    batch = client.messages.batches.create(requests=batch_requests(5))  # type: ignore[arg-type]
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    canceling = client.messages.batches.retrieve(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    assert canceling.request_counts.processing == 5
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.cancel_initiated_at == canceling.cancel_initiated_at
    assert ended.request_counts.model_dump() == {"processing": 0, "succeeded": 2, "errored": 0,
                                                 "canceled": 3, "expired": 0}
    assert [line.result.type for line in results(client, batch.id)] == [
        "succeeded", "succeeded", "canceled", "canceled", "canceled"]


def test_a_cancel_through_the_api(emulator: AnthropicEmulator,
                                  client: anthropic.Anthropic) -> None:
    emulator.batch_plan = MessageBatchPlan(finish_after=5, done=1)
    batch = client.messages.batches.create(requests=batch_requests(3))  # type: ignore[arg-type]
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at
    again = client.messages.batches.cancel(batch.id)
    assert again.cancel_initiated_at == canceling.cancel_initiated_at
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.results_url
    assert (ended.request_counts.succeeded, ended.request_counts.canceled) == (1, 2)
    assert [line.result.type for line in results(client, batch.id)] == [
        "succeeded", "canceled", "canceled"]
    with pytest.raises(anthropic.BadRequestError) as failure:
        client.messages.batches.cancel(batch.id)
    assert "already ended" in failure.value.message


def test_results_only_once_ended(emulator: AnthropicEmulator,
                                 client: anthropic.Anthropic) -> None:
    emulator.batch_plan = MessageBatchPlan(finish_after=3)
    batch = client.messages.batches.create(requests=batch_requests(1))  # type: ignore[arg-type]
    response = raw(emulator, "GET", f"/v1/messages/batches/{batch.id}/results")
    assert "not finished" in assert_error_shape(response, 400, "invalid_request_error")
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        results(client, batch.id)  # the SDK retrieves first and finds no results_url


def test_shuffled_omitted_and_duplicated_lines(emulator: AnthropicEmulator,
                                               client: anthropic.Anthropic) -> None:
    emulator.batch_plan = MessageBatchPlan(shuffle_seed=7)
    ids = [f"req-{i}" for i in range(8)]
    shuffled = [line.custom_id for line in results(client, run_batch(client,
                                                                      batch_requests(8)).id)]
    assert shuffled != ids and sorted(shuffled) == sorted(ids)
    again = [line.custom_id for line in results(client, run_batch(client, batch_requests(8)).id)]
    assert again == shuffled  # seeded
    emulator.batch_plan = MessageBatchPlan(omit={"req-1"}, duplicate={"req-2"})
    batch = run_batch(client, batch_requests(4))
    assert batch.request_counts.succeeded == 4
    assert [line.custom_id for line in results(client, batch.id)] == [
        "req-0", "req-2", "req-3", "req-2"]


def test_batch_validation(emulator: AnthropicEmulator, client: anthropic.Anthropic) -> None:
    def refused(requests: Any) -> str:
        response = raw(emulator, "POST", "/v1/messages/batches", {"requests": requests})
        return assert_error_shape(response, 400, "invalid_request_error")

    good = batch_requests(2)
    assert refused([{**good[0], "custom_id": "has space"}]).startswith(
        "requests.0.custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'")
    assert refused([good[0], {**good[1], "custom_id": "x" * 65}]).startswith(
        "requests.1.custom_id: String should match")
    assert refused([good[0], {**good[1], "custom_id": "req-0"}]).startswith(
        "requests.1.custom_id: Duplicate custom_id 'req-0'")
    assert refused([good[0], {**good[1], "params": {**good[1]["params"], "max_tokens": 0}}]
                   ) == "requests.1.params.max_tokens: Input should be greater than or equal to 1"
    assert refused([{"custom_id": "a"}]) == "requests.0.params: Field required"
    assert refused([{**good[0], "extra": 1}]) == "requests.0.extra: Extra inputs are not permitted"
    assert refused([]).startswith("requests: List should have at least 1 item")
    assert refused("many") == "requests: Input should be a valid list"
    assert raw(emulator, "POST", "/v1/messages/batches", {}).json()["error"]["message"] == \
        "requests: Field required"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=cast(Any, [
            {"custom_id": "a", "params": {"model": MODEL, "messages": []}}]))
    assert (emulator.max_requests, emulator.max_bytes) == (MAX_BATCH_REQUESTS, MAX_BATCH_BYTES)
    emulator.max_requests = 2
    assert refused(batch_requests(3)).startswith("requests: List should have at most 2 items")
    emulator.max_bytes = 100
    response = raw(emulator, "POST", "/v1/messages/batches", {"requests": good})
    assert "100 bytes" in assert_error_shape(response, 413, "request_too_large")
    assert emulator.batches == {}


def test_invalid_params_can_be_left_to_the_results(emulator: AnthropicEmulator,
                                                   client: anthropic.Anthropic) -> None:
    emulator.validate_params_at_create = False
    requests = batch_requests(2)
    requests[1]["params"] = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    batch = run_batch(client, requests)
    assert (batch.request_counts.succeeded, batch.request_counts.errored) == (1, 1)
    line = results(client, batch.id)[1].result
    assert line.type == "errored" and line.error.error.message == "max_tokens: Field required"


def test_list_retrieve_delete_and_unknown_ids(emulator: AnthropicEmulator,
                                              client: anthropic.Anthropic) -> None:
    created = [client.messages.batches.create(requests=batch_requests(1))  # type: ignore[arg-type]
               for _ in range(3)]
    newest_first = [batch.id for batch in reversed(created)]
    assert [batch.id for batch in client.messages.batches.list(limit=2)] == newest_first
    page = client.messages.batches.list(limit=2)
    assert page.has_more and page.first_id == newest_first[0] and page.last_id == newest_first[1]
    assert [b.id for b in client.messages.batches.list(after_id=newest_first[0]).data] == \
        newest_first[1:]
    assert [b.id for b in client.messages.batches.list(before_id=newest_first[2]).data] == \
        newest_first[:2]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(created[0].id)  # still in progress
    client.messages.batches.cancel(created[0].id)
    client.messages.batches.retrieve(created[0].id)
    deleted = client.messages.batches.delete(created[0].id)
    assert (deleted.id, deleted.type) == (created[0].id, "message_batch_deleted")
    for call in (client.messages.batches.retrieve, client.messages.batches.cancel,
                 client.messages.batches.delete):
        with pytest.raises(anthropic.NotFoundError):
            call(created[0].id)
    response = raw(emulator, "GET", "/v1/messages/batches/msgbatch_unknown/results")
    assert "msgbatch_unknown" in assert_error_shape(response, 404, "not_found_error")


def test_helpers_match_the_server(emulator: AnthropicEmulator) -> None:
    request = params("same", stop_sequences=["am"])
    served = raw(emulator, "POST", "/v1/messages", request).json()
    expected = default_message(request)
    for body in (served, expected):
        body.pop("id")
    assert served == expected
    assert expected["content"] == [{"type": "text", "text": "Echo: s"}]
    assert expected["stop_reason"] == "stop_sequence"
