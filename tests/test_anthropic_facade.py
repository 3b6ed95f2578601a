"""Anthropic end to end: the real facade and transport against the loopback Messages and Message
Batches emulator, for single calls, immediate batches and native batches."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel
from returns.result import Failure

import llmbackend
from llmbackend import (
    BatchItemsError,
    BatchNotReadyError,
    ConfigurationError,
    HTTPStatusError,
    MissingCredentialsError,
    RefusalError,
    StructuredOutput,
    TruncationError,
    UnsupportedError,
)
from tests.anthropic_emulator import API_KEY, AnthropicEmulator, MessageBatchPlan, message_body
from tests.emulator import OpenAIEmulator

PROMPTS = [f"Summarize: story {i}" for i in range(6)]


class City(BaseModel):
    city: str
    population: int


@pytest.fixture
def claude(anthropic_env: AnthropicEmulator) -> llmbackend.Client:
    anthropic_env.batch_plan = MessageBatchPlan(finish_after=1)
    return llmbackend.client("anthropic", "claude-sonnet-4-5", max_retries=1)


def sent(emulator: AnthropicEmulator, path: str = "/v1/messages") -> list[dict[str, Any]]:
    return [r.json() for r in emulator.requests if r.path == path and r.method == "POST"]


# --- single calls ---------------------------------------------------------------------------------


def test_a_call_sends_the_key_the_version_and_the_mapped_config(
    anthropic_env: AnthropicEmulator
) -> None:
    # temperature reaches a compatible server only (Anthropic's own API no longer takes it).
    compatible = llmbackend.client("anthropic", "claude-sonnet-4-5", server="compatible")
    answer = compatible.get_response("Hello there", config={
        "temperature": 0.2, "max_tokens": 50,
        "extra": {"system": "Be brief.", "stop": "\n\n", "metadata": {"user_id": "u1"}}})
    assert answer == "Echo: Hello there"
    (request,) = anthropic_env.requests
    assert request.headers["x-api-key"] == API_KEY
    assert "authorization" not in request.headers
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.json() == {
        "model": "claude-sonnet-4-5", "max_tokens": 50,
        "messages": [{"role": "user", "content": "Hello there"}], "system": "Be brief.",
        "temperature": 0.2, "stop_sequences": ["\n\n"], "metadata": {"user_id": "u1"}}


def test_the_typed_face_gives_usage_and_ids(claude: llmbackend.Client) -> None:
    generation = claude.generate("Count").unwrap()
    assert generation.provider == "anthropic"
    assert generation.response_id is not None and generation.response_id.startswith("msg_")
    assert generation.usage.input_tokens is not None
    assert generation.finish_reason == "stop"


@pytest.mark.parametrize("method", ["native", "tool"])
def test_structured_answers_come_back_validated(
    anthropic_env: AnthropicEmulator, method: str
) -> None:
    client = llmbackend.client("anthropic", "claude-sonnet-4-5", structured_output=method)
    city = client.get_response("Tell me about London",
                               schema=StructuredOutput(pydantic_model=City))
    assert city == City(city="example", population=7)
    (body,) = sent(anthropic_env)
    assert ("output_config" in body) == (method == "native")
    assert ("tool_choice" in body) == (method == "tool")


def test_refusal_truncation_and_errors_are_typed(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    anthropic_env.message_overrides["refuse"] = message_body(
        "claude-sonnet-4-5", [{"type": "text", "text": "I can't help with that."}],
        stop_reason="refusal")
    with pytest.raises(RefusalError, match="can't help"):
        claude.get_response("refuse")
    with pytest.raises(TruncationError) as truncated:
        claude.get_response("one two three four five six", config={"max_tokens": 3})
    assert truncated.value.text == "Echo: one two"
    with pytest.raises(HTTPStatusError) as missing:
        llmbackend.client("anthropic", "missing-model").get_response("hi")
    assert (missing.value.status, missing.value.error_type) == (404, "not_found_error")
    with pytest.raises(UnsupportedError, match="no longer takes 'temperature'"):
        claude.get_response("hot", config={"temperature": 0.5})
    compatible = llmbackend.client("anthropic", "claude-sonnet-4-5", server="compatible")
    with pytest.raises(UnsupportedError, match="from 0 to 1"):
        compatible.get_response("hot", config={"temperature": 1.5})


def test_overloaded_is_retried(claude: llmbackend.Client, anthropic_env: AnthropicEmulator
                               ) -> None:
    anthropic_env.reply(529, {"type": "error", "error": {"type": "overloaded_error",
                                                         "message": "Overloaded"}},
                        {"retry-after-ms": "5"})
    assert claude.get_response("again") == "Echo: again"
    assert len(anthropic_env.requests) == 2
    anthropic_env.message_errors["always busy"] = (529, "overloaded_error", "Overloaded")
    error = claude.generate("always busy").failure()
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.attempts, error.retryable) == (529, 2, True)


def test_keys_and_options_are_checked_at_once(anthropic_emulator: AnthropicEmulator) -> None:
    with pytest.raises(MissingCredentialsError, match="ANTHROPIC_API_KEY"):
        llmbackend.client("anthropic", "claude-sonnet-4-5")
    with pytest.raises(ConfigurationError, match="'native', 'tool'"):
        llmbackend.client("anthropic", "m", api_key="k", structured_output="json")
    with pytest.raises(ConfigurationError, match="Did you mean 'structured_output'"):
        llmbackend.client("anthropic", "m", api_key="k", structured_outputs="tool")
    with pytest.raises(ConfigurationError, match="unknown option 'structured_output'"):
        llmbackend.client("openai", "m", api_key="k", structured_output="tool")
    wrong = llmbackend.client("anthropic", "m", api_key="sk-ant-wrong",
                              base_url=anthropic_emulator.base_url)
    error = wrong.generate("hi").failure()
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.error_type) == (401, "authentication_error")
    assert "sk-ant-wrong" not in str(error) + repr(error) + repr(wrong)


# --- immediate batches ----------------------------------------------------------------------------


def test_the_seed_batch_runs_concurrently_and_keeps_input_order(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    anthropic_env.latency = 0.05
    prompts = [f"prompt {i}" for i in range(12)]
    batch = claude.submit_batch(prompts, batch_options={"concurrency": 4})
    assert isinstance(batch, llmbackend.CompletedBatch)
    assert batch.status() == "completed"
    assert batch.results() == [f"Echo: {p}" for p in prompts]
    assert 1 < anthropic_env.max_in_flight <= 4  # concurrent, and never more than asked
    assert batch.counts == llmbackend.BatchCounts(total=12, completed=12, failed=0)
    assert batch.id.startswith("immediate-")
    assert batch.wait() == "completed"


def test_an_immediate_batch_keeps_every_failure_beside_the_successes(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    anthropic_env.message_errors[PROMPTS[2]] = (400, "invalid_request_error", "bad prompt")
    batch = claude.submit_batch(PROMPTS, batch_options={"custom_ids": list("abcdef")})
    outcomes = batch.outcomes()
    assert [type(o).__name__ for o in outcomes] == ["Success"] * 2 + ["Failure"] + ["Success"] * 3
    error = outcomes[2].failure()
    assert isinstance(error, HTTPStatusError)
    assert error.error_type == "invalid_request_error"
    with pytest.raises(BatchItemsError, match="1 of 6 items failed: #2 'c'"):
        batch.results()
    assert batch.counts.failed == 1


def test_an_immediate_batch_checks_its_config_before_sending(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    with pytest.raises(UnsupportedError, match="seed"):
        claude.submit_batch(PROMPTS, config={"seed": 3})
    with pytest.raises(ConfigurationError, match="concurrency"):
        claude.submit_batch(PROMPTS, batch_options={"concurrency": 0})
    with pytest.raises(ConfigurationError, match="'mode' must be 'native'"):
        claude.submit_batch(PROMPTS, batch_options={"mode": "later"})
    assert anthropic_env.requests == []
    with pytest.raises(ConfigurationError, match="immediate batch"):
        llmbackend.get_batch("anthropic", "immediate-0123")


def test_openai_runs_immediate_batches_too(openai_env: OpenAIEmulator) -> None:
    batch = llmbackend.create_batch(["a", "b", "c"], "openai", "gpt-4o-mini",
                                    batch_options={"mode": "immediate", "concurrency": 2})
    assert batch.results() == ["Echo: a", "Echo: b", "Echo: c"]
    assert {r.path for r in openai_env.requests} == {"/v1/responses"}


# --- native batches -------------------------------------------------------------------------------

NATIVE = {"mode": "native"}


def test_a_native_batch_runs_at_the_provider_and_comes_back_in_order(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    anthropic_env.batch_plan = MessageBatchPlan(finish_after=2, shuffle_seed=4)
    batch = claude.submit_batch(PROMPTS, config={"max_tokens": 100}, batch_options=NATIVE)
    assert batch.id.startswith("msgbatch_")
    assert batch.status() == "in_progress"
    assert batch.wait(poll_interval=0.01) == "ended"
    assert batch.results() == [f"Echo: {p}" for p in PROMPTS]
    (create,) = sent(anthropic_env, "/v1/messages/batches")
    sync = [claude._backend.record.build_generation(  # the same params a sync call sends
        claude._backend.request(p, {"max_tokens": 100}, None)).unwrap().json
        for p in PROMPTS]
    assert [item["params"] for item in create["requests"]] == sync
    assert [item["custom_id"] for item in create["requests"]] == [
        f"request-{i}" for i in range(6)]


def test_errored_expired_missing_and_doubled_lines_fail_only_their_items(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    anthropic_env.batch_plan = MessageBatchPlan(
        finish_after=1, outcome="expired", done=5, shuffle_seed=1,
        item_errors={"b": ("invalid_request_error", "max_tokens: too large")},
        omit={"c"}, duplicate={"d"})
    batch = claude.submit_batch(PROMPTS, batch_options={**NATIVE, "custom_ids": list("abcdef")})
    status = batch.status()
    assert status == "expired" and status == "ended"
    assert status in ("failed", "expired", "canceled")
    outcomes = batch.outcomes()
    codes = [None if not isinstance(o, Failure) else o.failure().error_code  # type: ignore[attr-defined]
             for o in outcomes]
    assert codes == [None, "batch_errored", "missing_result", "duplicate_result", None,
                     "batch_expired"]
    assert outcomes[0].unwrap().text == f"Echo: {PROMPTS[0]}"
    assert outcomes[4].unwrap().text == f"Echo: {PROMPTS[4]}"
    assert "max_tokens: too large" in str(outcomes[1].failure())


def test_cancel_ends_a_native_batch_as_cancelled(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    anthropic_env.batch_plan = MessageBatchPlan(finish_after=10, done=2)
    batch = claude.submit_batch(PROMPTS, batch_options=NATIVE)
    assert batch.cancel() == "canceling"
    assert batch.wait(poll_interval=0.01) == "canceled"
    outcomes = batch.outcomes()
    assert [isinstance(o, Failure) for o in outcomes] == [False, False] + [True] * 4
    assert all(o.failure().error_code == "batch_cancelled"  # type: ignore[attr-defined]
               for o in outcomes[2:])


def test_a_native_structured_batch_gives_objects(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    batch = claude.submit_batch(PROMPTS[:2], schema=StructuredOutput(pydantic_model=City),
                                batch_options=NATIVE)
    assert batch.results() == [City(city="example", population=7)] * 2


def test_a_large_native_job_is_split_and_resumes_from_its_id(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    anthropic_env.batch_plan = MessageBatchPlan(finish_after=1, shuffle_seed=3)
    batch = claude.submit_batch(PROMPTS, batch_options={**NATIVE, "max_requests_per_batch": 4})
    assert len(batch.id.split("+")) == 2
    assert [len(b["requests"]) for b in sent(anthropic_env, "/v1/messages/batches")] == [4, 2]
    resumed = llmbackend.get_batch("anthropic", batch.id)
    assert resumed.results() == [f"Echo: {p}" for p in PROMPTS]
    assert resumed.custom_ids == tuple(f"request-{i}" for i in range(6))
    assert resumed.counts.total == 6


def test_own_custom_ids_resume_in_the_order_given(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    ids = ["zeta", "alpha", "mid"]
    batch = claude.submit_batch(PROMPTS[:3], batch_options={**NATIVE, "custom_ids": ids})
    in_natural_order = llmbackend.get_batch("anthropic", batch.id)
    assert in_natural_order.custom_ids == ("alpha", "mid", "zeta")
    assert in_natural_order.results() == [f"Echo: {PROMPTS[i]}" for i in (1, 2, 0)]
    in_my_order = llmbackend.get_batch("anthropic", batch.id, custom_ids=ids)
    assert in_my_order.results() == [f"Echo: {p}" for p in PROMPTS[:3]]
    with pytest.raises(ConfigurationError, match="exactly the batch's items"):
        llmbackend.get_batch("anthropic", batch.id, custom_ids=["zeta", "alpha"]).results()


def test_a_resumed_batch_knows_its_ids_once_it_has_ended(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    anthropic_env.batch_plan = MessageBatchPlan(finish_after=5)
    batch = claude.submit_batch(PROMPTS[:2], batch_options=NATIVE)
    resumed = claude.get_batch(batch.id)
    with pytest.raises(BatchNotReadyError, match="not ended"):
        _ = resumed.custom_ids
    assert batch.custom_ids == ("request-0", "request-1")  # the submitting handle knows them


def test_native_batch_options_are_checked_before_sending(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    with pytest.raises(ConfigurationError, match="1 to 64 letters"):
        claude.submit_batch(["a", "b"], batch_options={**NATIVE, "custom_ids": ["a.1", "b"]})
    with pytest.raises(ConfigurationError, match="unknown batch option 'completion_window'"):
        claude.submit_batch(["a"], batch_options={**NATIVE, "completion_window": "24h"})
    assert anthropic_env.requests == []


def test_the_key_never_shows_in_native_handles(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    batch = claude.submit_batch(PROMPTS[:1], batch_options=NATIVE)
    assert API_KEY not in repr(batch) + repr(batch.state()) + json.dumps(batch.raw)


def test_a_lost_create_answer_is_not_sent_again(
    claude: llmbackend.Client, anthropic_env: AnthropicEmulator
) -> None:
    anthropic_env.reply(200, b"{}", delay=1.0)  # the create's answer never arrives in time
    slow = llmbackend.client("anthropic", "claude-sonnet-4-5", timeout=0.2, max_retries=3)
    with pytest.raises(llmbackend.RequestTimeoutError, match="may have been created") as err:
        slow.submit_batch(PROMPTS[:2], batch_options=NATIVE)
    assert err.value.attempts == 1
    assert len(sent(anthropic_env, "/v1/messages/batches")) == 1


def test_an_immediate_batch_reports_progress(claude: llmbackend.Client) -> None:
    seen: list[tuple[int, int]] = []
    batch = claude.submit_batch(PROMPTS, batch_options={
        "concurrency": 2, "progress": lambda done, total: seen.append((done, total))})
    assert batch.results() == [f"Echo: {p}" for p in PROMPTS]
    assert seen[-1] == (6, 6)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    with pytest.raises(ConfigurationError, match="callable"):
        claude.submit_batch(PROMPTS, batch_options={"progress": "bar"})
