"""The pure Anthropic Message Batches builders and parsers, against the recorded traffic and the
official SDK's typed models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

import llmbackend
from llmbackend.batching import BatchCounts, natural_key
from llmbackend.errors import ConfigurationError, ProviderError, ResponseParseError
from llmbackend.providers import anthropic
from llmbackend.providers import anthropic_batch as wire
from llmbackend.types import GenerationConfig, GenerationRequest, StructuredOutput, WireResponse
from tests import strategies
from tests.anthropic_emulator import AnthropicEmulator, MessageBatchPlan
from tests.conftest import fixture_names, load_fixture
from tests.emulator import UNUSABLE_BATCH_IDS, USABLE_BATCH_IDS

REQUEST = GenerationRequest(model="claude-sonnet-4-5", input="")
custom_ids = st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True)


def response_of(fixture: dict[str, Any]) -> WireResponse:
    body = fixture["response"]["body"]
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return WireResponse(status=fixture["response"]["status"], body=raw)


# --- options --------------------------------------------------------------------------------------


def test_options_default_to_anthropic_limits() -> None:
    assert wire.parse_batch_options({}, 2) == wire.AnthropicBatchOptions()
    assert wire.MAX_REQUESTS == 100_000


@pytest.mark.parametrize(("options", "key", "words"), [
    ({"custom_ids": ["a", "b.c"]}, "custom_ids", "1 to 64 letters, digits, '_' or '-'"),
    ({"custom_ids": ["a", "a"]}, "custom_ids", "used twice"),
    ({"custom_ids": ["a"]}, "custom_ids", "1 ids for 2 inputs"),
    ({"custom_ids": ["a", "x" * 65]}, "custom_ids", "#1"),
    ({"max_requests_per_batch": 100_001}, "max_requests_per_batch", "100,000"),
    ({"completion_window": "24h"}, "completion_window", "unknown batch option"),
    ({"display_name": 3}, "display_name", "string"),
])
def test_bad_options_fail_naming_the_option(options: dict[str, Any], key: str, words: str
                                            ) -> None:
    with pytest.raises(ConfigurationError) as raised:
        wire.parse_batch_options(options, 2)
    assert raised.value.key == key
    assert words in str(raised.value)


# --- the create body ------------------------------------------------------------------------------


@settings(max_examples=100)
@given(strategies.anthropic_configs,
       st.none() | strategies.json_schemas,
       st.lists(st.tuples(custom_ids, strategies.prompts), max_size=5,
                unique_by=lambda item: item[0]))
def test_the_create_body_carries_exactly_the_sync_params(
    config: GenerationConfig, schema: dict[str, Any] | None, items: list[tuple[str, str]]
) -> None:
    # A compatible server: the sampling parameters of the generated configs are sent there.
    request = GenerationRequest(model="claude-sonnet-4-5", input="", config=config,
                                schema=StructuredOutput(schema=schema) if schema else None,
                                options={"server": "compatible"})
    encoder = wire.build_request_encoder(request).unwrap()
    joined = wire.SEPARATOR.join(encoder.items([c for c, _ in items], [p for _, p in items]))
    create = wire.build_create_batch(lambda: iter([joined]), len(joined))
    assert (create.method, create.path, create.idempotent) == (
        "POST", "/v1/messages/batches", False)
    assert create.headers["anthropic-version"] == "2023-06-01"
    body = create.content
    assert isinstance(body, wire.StreamBody)
    raw = b"".join(body.chunks())
    assert len(raw) == body.length
    expected = [{"custom_id": cid, "params": anthropic.build_messages_request(
        GenerationRequest(model=request.model, input=prompt, config=config,
                          schema=request.schema, options=request.options)).unwrap().json}
        for cid, prompt in items]
    assert json.loads(raw) == {"requests": expected}


def test_the_recorded_create_request_has_our_shape() -> None:
    recorded = load_fixture("anthropic", "batches_create_in_progress.json")["request"]
    assert recorded["path"] == "/v1/messages/batches"
    assert [set(item) for item in recorded["body"]["requests"]] == [{"custom_id", "params"}] * 2


def test_paths_and_ids() -> None:
    assert wire.build_retrieve_batch("msgbatch_1").path == "/v1/messages/batches/msgbatch_1"
    assert wire.build_cancel_batch("msgbatch_1").path == "/v1/messages/batches/msgbatch_1/cancel"
    assert wire.build_results("msgbatch_1").path == "/v1/messages/batches/msgbatch_1/results"
    assert wire.split_batch_id("msgbatch_a+msgbatch_b") == ("msgbatch_a", "msgbatch_b")
    # Any printable string is an id, percent-encoded into one path segment of the client's own
    # base URL: it can name no other host or route.
    assert wire.split_batch_id("https://evil.example/x") == ("https://evil.example/x",)
    for build, tail in ((wire.build_retrieve_batch, ""), (wire.build_cancel_batch, "/cancel"),
                        (wire.build_results, "/results")):
        assert build("https://evil.example/../x").path == (
            f"/v1/messages/batches/https%3A%2F%2Fevil.example%2F..%2Fx{tail}")
    for bad in ("..", "a\nb", "msgbatch_a++msgbatch_b", ""):
        with pytest.raises(ConfigurationError, match=r"Anthropic batch id|non-empty"):
            wire.split_batch_id(bad)


def batch_object(batch_id: str) -> WireResponse:
    return WireResponse(status=200, body=json.dumps({
        "id": batch_id, "type": "message_batch", "processing_status": "in_progress"}).encode())


@pytest.mark.parametrize("batch_id", USABLE_BATCH_IDS)
def test_an_id_taken_from_the_server_is_taken_back_from_the_user(batch_id: str) -> None:
    assert wire.parse_batch_object(batch_object(batch_id)).unwrap().id == batch_id
    assert wire.split_batch_id(batch_id) == (batch_id,) == (wire.check_part_id(batch_id),)


@pytest.mark.parametrize("batch_id", UNUSABLE_BATCH_IDS)
def test_an_id_llmbackend_cannot_use_is_refused_at_both_ends(batch_id: str) -> None:
    refused = wire.parse_batch_object(batch_object(batch_id))
    assert isinstance(refused, Failure) and isinstance(refused.failure(), ProviderError)
    assert str(refused.failure()).isprintable() and repr(batch_id)[:40] in str(refused.failure())
    with pytest.raises(ConfigurationError):
        wire.check_part_id(batch_id)


# --- end to end, against the emulator -------------------------------------------------------------


@pytest.fixture
def claude(anthropic_env: AnthropicEmulator) -> llmbackend.Client:
    anthropic_env.batch_plan = MessageBatchPlan(finish_after=1)
    return llmbackend.client("anthropic", "claude-sonnet-4-5", max_retries=1)


@pytest.mark.parametrize("batch_id", USABLE_BATCH_IDS)
def test_any_id_the_server_gives_works_verbatim_at_every_later_step(
        claude: llmbackend.Client, anthropic_env: AnthropicEmulator, batch_id: str) -> None:
    anthropic_env.batch_ids.append(batch_id)
    prompts = ["one", "two"]
    batch = claude.submit_batch(prompts, batch_options={"mode": "native"})
    assert batch.id == batch_id
    restored = llmbackend.restore_batch(json.loads(json.dumps(batch.to_dict())))
    assert restored.id == batch_id and restored.results() == ["Echo: one", "Echo: two"]
    attached = claude.get_batch(batch_id)
    assert attached.id == batch_id and attached.wait(poll_interval=0.01) == "ended"
    assert sorted(attached.results()) == ["Echo: one", "Echo: two"]
    assert attached.cancel() == "ended"


@pytest.mark.parametrize("batch_id", UNUSABLE_BATCH_IDS)
def test_an_id_llmbackend_cannot_use_is_refused_at_submit(
        claude: llmbackend.Client, anthropic_env: AnthropicEmulator, batch_id: str) -> None:
    anthropic_env.batch_ids.append(batch_id)
    with pytest.raises(ProviderError) as raised:
        claude.submit_batch(["one"], batch_options={"mode": "native"})
    assert raised.value.error_type == "invalid_batch_id" and str(raised.value).isprintable()
    assert list(anthropic_env.batches) == [batch_id]


# --- batch objects --------------------------------------------------------------------------------

BATCH_OBJECTS = ["batches_create_in_progress.json", "batches_get_ended.json",
                 "batches_get_in_progress.json"]


@pytest.mark.parametrize("name", BATCH_OBJECTS)
def test_recorded_batch_objects_parse_as_the_sdk_reads_them(name: str) -> None:
    from anthropic.types.messages import MessageBatch

    fixture = load_fixture("anthropic", name)
    ours = wire.parse_batch_object(response_of(fixture)).unwrap()
    sdk = MessageBatch.model_validate(fixture["response"]["body"])
    assert ours.id == sdk.id
    assert ours.status == sdk.processing_status
    counts = sdk.request_counts
    assert ours.counts == BatchCounts(
        total=counts.processing + counts.succeeded + counts.errored + counts.canceled
        + counts.expired, completed=counts.succeeded,
        failed=counts.errored + counts.canceled + counts.expired)
    assert ours.ended == (sdk.processing_status == "ended")


def test_every_batch_fixture_is_covered() -> None:
    assert sorted([*BATCH_OBJECTS, "batches_results_jsonl.json"]) == [
        n for n in fixture_names("anthropic") if n.startswith("batches_")]


@pytest.mark.parametrize(("changes", "value", "seed_loop"), [
    ({"processing_status": "in_progress"}, "running", "sleep"),
    ({"processing_status": "canceling"}, "cancelling", "sleep"),
    ({"processing_status": "ended"}, "completed", "done"),
    ({"processing_status": "ended", "cancel_initiated_at": "2025-01-12T06:00:00+00:00"},
     "cancelled", "raise"),
    ({"processing_status": "ended", "request_counts": {"processing": 0, "succeeded": 1,
                                                       "errored": 0, "canceled": 0,
                                                       "expired": 2}}, "expired", "raise"),
])
def test_statuses_normalize_so_the_seed_loops_end(changes: dict[str, Any], value: str,
                                                  seed_loop: str) -> None:
    body = {**load_fixture("anthropic", "batches_get_ended.json")["response"]["body"], **changes}
    status = wire.parse_batch_object(WireResponse(status=200, body=json.dumps(body).encode())
                                     ).unwrap().status
    assert status.value == value
    assert status == body["processing_status"]  # still the provider's word
    if status in ("completed", "succeeded", "SUCCEEDED", "COMPLETED"):
        turn = "done"
    elif status in ("failed", "expired", "canceled"):
        turn = "raise"
    else:
        turn = "sleep"
    assert turn == seed_loop


@given(st.binary() | strategies.json_values.map(lambda v: json.dumps(v).encode()))
def test_batch_object_parser_never_raises(body: bytes) -> None:
    for status in (200, 404, 529):
        assert isinstance(wire.parse_batch_object(WireResponse(status=status, body=body)),
                          Success | Failure)


# --- result lines ---------------------------------------------------------------------------------


def test_the_recorded_results_file_gives_every_answer() -> None:
    fixture = load_fixture("anthropic", "batches_results_jsonl.json")
    text = fixture["response"]["body"]
    assert not text.endswith("\n")  # as recorded: no newline after the last line
    parsed = [wire.parse_result_line(REQUEST, line.encode()) for line in text.split("\n")]
    assert [cid for cid, _ in parsed] == ["0", "1", "2"]
    first = parsed[0][1].unwrap()
    assert first.text.startswith("Here's a basic spaghetti recipe")
    assert first.model == "claude-3-5-sonnet-20241022"


def test_the_results_lines_read_as_the_sdk_reads_them() -> None:
    from anthropic.types.messages import MessageBatchIndividualResponse

    text = load_fixture("anthropic", "batches_results_jsonl.json")["response"]["body"]
    for line in text.split("\n"):
        sdk = MessageBatchIndividualResponse.model_validate_json(line)
        custom_id, outcome = wire.parse_result_line(REQUEST, line.encode())
        assert custom_id == sdk.custom_id
        assert sdk.result.type == "succeeded"
        assert outcome.unwrap().text == "".join(
            b.text for b in sdk.result.message.content if b.type == "text")


@pytest.mark.parametrize(("result", "error_type", "code"), [
    ({"type": "errored", "error": {"type": "error", "error": {
        "type": "invalid_request_error", "message": "max_tokens: too large"}}},
     "invalid_request_error", "batch_errored"),
    ({"type": "canceled"}, "batch_error", "batch_cancelled"),
    ({"type": "expired"}, "batch_error", "batch_expired"),
])
def test_errored_canceled_and_expired_lines_are_item_failures(
    result: dict[str, Any], error_type: str, code: str
) -> None:
    line = json.dumps({"custom_id": "a", "result": result}).encode()
    custom_id, outcome = wire.parse_result_line(REQUEST, line)
    assert custom_id == "a"
    error = outcome.failure()
    assert isinstance(error, ProviderError)
    assert (error.error_type, error.error_code) == (error_type, code)


@pytest.mark.parametrize(("line", "custom_id"), [
    (b"", None), (b"{", None), (b'{"result": {}}', None), (b'{"custom_id": "a"}', "a"),
    (b'{"custom_id": "a", "result": {"type": "succeeded", "message": {}}}', "a"),
    (b'{"custom_id": "a", "result": {"type": "surprise"}}', "a"),
])
def test_unreadable_lines_fail_without_raising(line: bytes, custom_id: str | None) -> None:
    got, outcome = wire.parse_result_line(REQUEST, line)
    assert got == custom_id
    assert isinstance(outcome.failure(), ResponseParseError)


@given(st.binary() | strategies.json_values.map(lambda v: json.dumps(v).encode()))
def test_result_line_parser_never_raises(line: bytes) -> None:
    custom_id, outcome = wire.parse_result_line(REQUEST, line)
    assert custom_id is None or isinstance(custom_id, str)
    assert isinstance(outcome, Success | Failure)


def test_natural_order_puts_default_ids_in_input_order() -> None:
    ids = [f"request-{i}" for i in range(12)]
    shuffled = ids[6:] + ids[:6]
    assert sorted(shuffled, key=natural_key) == ids
    assert sorted(ids) != ids  # plain string order would put request-10 before request-2
    assert sorted(["b", "a10", "a9"], key=natural_key) == ["a9", "a10", "b"]


# --- messages in ----------------------------------------------------------------------------------

from attrs import evolve  # noqa: E402

from llmbackend.errors import UnsupportedError  # noqa: E402
from llmbackend.messages import Conversation, Message  # noqa: E402
from tests.test_anthropic import conversations  # noqa: E402

batch_inputs = st.lists(st.tuples(custom_ids, strategies.prompts | conversations), max_size=5,
                        unique_by=lambda item: item[0])


@settings(max_examples=100)
@given(strategies.anthropic_configs, st.none() | strategies.json_schemas, st.booleans(),
       batch_inputs)
def test_each_conversation_item_carries_exactly_its_sync_params(
    config: GenerationConfig, schema: dict[str, Any] | None, with_system: bool,
    items: list[tuple[str, str | Conversation]],
) -> None:
    if with_system:
        config = evolve(config, extra={**config.extra, "system": "Be brief."})
    request = GenerationRequest(model="claude-sonnet-4-5", input="", config=config,
                                schema=StructuredOutput(schema=schema) if schema else None,
                                options={"server": "compatible"})
    encoder = wire.build_request_encoder(request).unwrap()
    expected: list[dict[str, Any]] = []
    for custom_id, value in items:
        sync = anthropic.build_messages_request(evolve(request, input=value))
        encoded = encoder.encode(custom_id, value)
        if isinstance(sync, Failure):
            error = encoded.failure()
            assert isinstance(error, UnsupportedError)
            assert error.parameter == sync.failure().parameter
            assert error == sync.failure()
            with pytest.raises(UnsupportedError):
                encoder.item(custom_id, value)
            continue
        item = json.loads(encoded.unwrap())
        assert item == {"custom_id": custom_id, "params": sync.unwrap().json}
        expected.append(item)
    good = [(c, v) for c, v in items
            if isinstance(anthropic.build_messages_request(evolve(request, input=v)), Success)]
    joined = wire.SEPARATOR.join(encoder.items([c for c, _ in good], [v for _, v in good]))
    assert json.loads(b"[" + joined + b"]") == expected


def test_a_mixed_batch_gives_each_item_its_own_messages() -> None:
    request = GenerationRequest(model="claude-sonnet-4-5", input="")
    encoder = wire.build_request_encoder(request).unwrap()
    few_shot = (Message("system", "Classify the sentiment."), Message("user", "I loved it"),
                Message("assistant", "positive"), Message("user", "Meh"))
    joined = wire.SEPARATOR.join(encoder.items(["a", "b", "c"],
                                               ["Plain prompt", few_shot, (Message("user", "x"),)]))
    items = json.loads(b"[" + joined + b"]")
    assert [item["custom_id"] for item in items] == ["a", "b", "c"]
    assert items[0]["params"]["messages"] == [{"role": "user", "content": "Plain prompt"}]
    assert items[1]["params"]["system"] == "Classify the sentiment."
    assert items[1]["params"]["messages"] == [
        {"role": "user", "content": "I loved it"}, {"role": "assistant", "content": "positive"},
        {"role": "user", "content": "Meh"}]
    assert "system" not in items[2]["params"]
    # A one-user-message conversation is byte for byte the plain prompt's item.
    assert encoder.item("c", (Message("user", "x"),)) == encoder.item("c", "x")


def test_a_conversation_item_the_api_refuses_names_its_index_and_custom_id() -> None:
    request = GenerationRequest(model="claude-sonnet-4-5", input="",
                                config=GenerationConfig(extra={"system": "S"}))
    encoder = wire.build_request_encoder(request).unwrap()
    bad = (Message("system", "T"), Message("user", "Hi"))
    with pytest.raises(UnsupportedError) as raised:
        list(encoder.items(["ok", "bad"], ["fine", bad]))
    assert raised.value.parameter == "system"
    assert str(raised.value).startswith(
        "input #1 (custom id 'bad'): give the system prompt once")
