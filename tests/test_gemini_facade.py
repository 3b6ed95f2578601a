"""Gemini end to end: the real facade and transport against the loopback Gemini emulator, for
single calls and batches (inline and file mode), every way a batch can end, and resume."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from attrs import evolve
from pydantic import BaseModel
from returns.result import Failure

import llmbackend
from llmbackend import (
    BatchItemsError,
    BlockedError,
    ConfigurationError,
    HTTPStatusError,
    MissingCredentialsError,
    ProviderError,
    StructuredOutput,
    TruncationError,
    pipeline,
)
from llmbackend.backends import RemoteBackend
from llmbackend.errors import UnsupportedError
from llmbackend.jobs import gemini as gemini_jobs
from llmbackend.messages import Message
from llmbackend.providers import gemini, gemini_batch
from tests.emulator import UNUSABLE_BATCH_IDS
from tests.gemini_emulator import API_KEY, GeminiBatchPlan, GeminiEmulator, response_body

PROMPTS = [f"Summarize: text {i}" for i in range(6)]


class City(BaseModel):
    city: str
    population: int


@pytest.fixture
def flash(gemini_env: GeminiEmulator) -> llmbackend.Client:
    gemini_env.batch_plan = GeminiBatchPlan(finish_after=1)
    return llmbackend.client("gemini", "gemini-2.5-flash", max_retries=1)


def codes(outcomes: list[Any]) -> list[str | None]:
    return [o.failure().error_code if isinstance(o, Failure) else None for o in outcomes]


def no_key_in_any_url(emulator: GeminiEmulator) -> bool:
    return all(API_KEY not in r.path and "key=" not in r.path for r in emulator.requests)


# --- single calls ---------------------------------------------------------------------------------


def test_a_call_sends_the_key_in_a_header_and_maps_the_config(
    flash: llmbackend.Client, gemini_env: GeminiEmulator
) -> None:
    answer = flash.get_response("Hello there", config={
        "temperature": 0.4, "max_tokens": 50, "seed": 7,
        "extra": {"system_instruction": "Be brief.", "stop": ["\n\n"], "topK": 5}})
    assert answer == "Echo: Hello there"
    (request,) = gemini_env.requests
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == API_KEY
    assert no_key_in_any_url(gemini_env)
    assert request.json() == {
        "contents": [{"role": "user", "parts": [{"text": "Hello there"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.4, "maxOutputTokens": 50, "seed": 7,
                             "stopSequences": ["\n\n"], "topK": 5}}


def test_gemini_api_key_is_accepted_too(gemini_emulator: GeminiEmulator,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    monkeypatch.setenv("GEMINI_BASE_URL", gemini_emulator.base_url)
    assert llmbackend.get_response("gemini", "gemini-2.5-flash", "hi") == "Echo: hi"
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(MissingCredentialsError, match="GOOGLE_API_KEY"):
        llmbackend.client("gemini", "gemini-2.5-flash",
                          base_url="https://generativelanguage.googleapis.com")


def test_structured_answers_come_back_validated(flash: llmbackend.Client,
                                                gemini_env: GeminiEmulator) -> None:
    city = flash.get_response("London?", schema=StructuredOutput(pydantic_model=City))
    assert city == City(city="example", population=7)
    config = gemini_env.requests[0].json()["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"]["title"] == "City"


def test_blocked_truncated_and_http_failures_are_typed(
    flash: llmbackend.Client, gemini_env: GeminiEmulator
) -> None:
    gemini_env.overrides["unsafe"] = response_body("gemini-2.5-flash", "I wi",
                                                   finish_reason="SAFETY")
    with pytest.raises(BlockedError) as blocked:
        flash.get_response("unsafe")
    assert blocked.value.reason == "SAFETY"
    with pytest.raises(TruncationError) as truncated:
        flash.get_response("one two three four", config={"max_tokens": 2})
    assert truncated.value.text == "Echo: one"
    gemini_env.reply(429, {"error": {"code": 429, "message": "Resource has been exhausted",
                                     "status": "RESOURCE_EXHAUSTED"}}, {"retry-after": "0"})
    assert flash.get_response("again") == "Echo: again"
    with pytest.raises(HTTPStatusError) as missing:
        llmbackend.client("gemini", "missing-model").get_response("hi")
    assert (missing.value.status, missing.value.error_type) == (404, "NOT_FOUND")
    wrong = llmbackend.client("gemini", "m", api_key="AIza-wrong")
    error = wrong.generate("hi").failure()
    assert isinstance(error, HTTPStatusError)
    assert error.error_code == "API_KEY_INVALID"
    assert "AIza-wrong" not in str(error) + repr(error)


# --- batches: inline ------------------------------------------------------------------------------


def test_inline_answers_are_rekeyed_whatever_their_order(
    flash: llmbackend.Client, gemini_env: GeminiEmulator
) -> None:
    gemini_env.batch_plan = GeminiBatchPlan(finish_after=2, shuffle_seed=5)
    batch = flash.submit_batch(PROMPTS, config={"max_tokens": 100},
                               batch_options={"display_name": "summaries"})
    assert batch.id.startswith("batches/")
    assert batch.status() == "RUNNING"
    assert batch.wait(poll_interval=0.01) == "SUCCEEDED"
    assert batch.results() == [f"Echo: {p}" for p in PROMPTS]
    stored = gemini_env.batches[batch.id.removeprefix("batches/")]
    assert stored.mode == "inline"
    assert stored.display_name == "summaries"
    echoed = [r["metadata"]["key"]
              for r in batch.raw[0]["response"]["inlinedResponses"]["inlinedResponses"]]
    assert echoed != [f"request-{i}" for i in range(6)], "the emulator shuffled them"
    assert no_key_in_any_url(gemini_env)


def test_item_errors_missing_and_doubled_answers_fail_only_their_items(
    flash: llmbackend.Client, gemini_env: GeminiEmulator
) -> None:
    gemini_env.batch_plan = GeminiBatchPlan(
        finish_after=1, shuffle_seed=2, omit={"c"}, duplicate={"d"},
        item_errors={"b": (400, "INVALID_ARGUMENT", "bad request b")})
    batch = flash.submit_batch(PROMPTS, batch_options={"custom_ids": list("abcdef")})
    outcomes = batch.outcomes()
    assert codes(outcomes) == [None, "batch_errored", "missing_result", "duplicate_result",
                               None, None]
    assert "bad request b" in str(outcomes[1].failure())
    with pytest.raises(BatchItemsError, match="3 of 6 items failed: #1 'b'"):
        batch.results()


def test_answers_without_their_key_are_never_matched_by_position(
    flash: llmbackend.Client, gemini_env: GeminiEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    gemini_env.batch_plan = GeminiBatchPlan(finish_after=1, drop_metadata=True)
    batch = flash.submit_batch(PROMPTS[:3])
    with caplog.at_level(logging.WARNING, logger="llmbackend"):
        outcomes = batch.outcomes()
    assert codes(outcomes) == ["missing_result"] * 3
    assert "could not be matched to a key" in str(outcomes[0].failure())
    assert "3 carry no key" in caplog.text


@pytest.mark.parametrize(("outcome", "code", "loop"), [
    ("expired", "batch_expired", "FAILED"), ("cancelled", "batch_cancelled", "CANCELLED")])
def test_an_ended_batch_keeps_what_ran(
    flash: llmbackend.Client, gemini_env: GeminiEmulator, outcome: Any, code: str, loop: str
) -> None:
    gemini_env.batch_plan = GeminiBatchPlan(finish_after=1, outcome=outcome, done=2)
    batch = flash.submit_batch(PROMPTS)
    status = batch.status()
    assert status == loop  # the seed README's Gemini loop stops
    assert codes(batch.outcomes()) == [None, None] + [code] * 4


def test_a_failed_batch_fails_every_item_with_its_reason(
    flash: llmbackend.Client, gemini_env: GeminiEmulator
) -> None:
    gemini_env.batch_plan = GeminiBatchPlan(finish_after=1, outcome="failed")
    batch = flash.submit_batch(PROMPTS[:2])
    assert batch.status() == "FAILED"
    for outcome in batch.outcomes():
        error = outcome.failure()
        assert isinstance(error, ProviderError)
        assert error.error_type == "batch_failed"


def test_cancel(flash: llmbackend.Client, gemini_env: GeminiEmulator) -> None:
    gemini_env.batch_plan = GeminiBatchPlan(finish_after=10, done=1)
    batch = flash.submit_batch(PROMPTS[:3])
    batch.cancel()
    assert batch.wait(poll_interval=0.01) == "CANCELLED"
    assert codes(batch.outcomes()) == [None, "batch_cancelled", "batch_cancelled"]
    assert batch.cancel() == "cancelled"


def test_a_structured_batch_gives_objects(flash: llmbackend.Client) -> None:
    batch = flash.submit_batch(PROMPTS[:2], schema=StructuredOutput(pydantic_model=City))
    assert batch.results() == [City(city="example", population=7)] * 2


# --- batches: file mode ---------------------------------------------------------------------------


def test_above_the_inline_limit_the_batch_goes_through_a_file(
    flash: llmbackend.Client, gemini_env: GeminiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gemini_batch, "INLINE_LIMIT", 500)
    gemini_env.batch_plan = GeminiBatchPlan(finish_after=1, shuffle_seed=8,
                                            item_errors={"request-4": (500, "INTERNAL", "oops")})
    batch = flash.submit_batch(PROMPTS, batch_options={"display_name": "big"})
    stored = gemini_env.batches[batch.id.removeprefix("batches/")]
    assert stored.mode == "file"
    uploaded = gemini_env.files[stored.input_file.removeprefix("files/")]  # type: ignore[union-attr]
    encoder = gemini_batch.build_item_encoder(
        flash._backend.request("", None, None)).unwrap()
    assert uploaded.content == b"".join(encoder.line(f"request-{i}", p)
                                        for i, p in enumerate(PROMPTS))
    outcomes = batch.outcomes()
    assert [o.unwrap().text for i, o in enumerate(outcomes) if i != 4] == [
        f"Echo: {p}" for i, p in enumerate(PROMPTS) if i != 4]
    assert codes(outcomes)[4] == "batch_errored"
    paths = [r.path.split("?")[0] for r in gemini_env.requests]
    assert paths[:3] == ["/upload/v1beta/files", "/upload/v1beta/files",
                         "/v1beta/models/gemini-2.5-flash:batchGenerateContent"]
    assert no_key_in_any_url(gemini_env)


# --- resume ---------------------------------------------------------------------------------------


def test_a_batch_resumes_from_its_name(flash: llmbackend.Client,
                                       gemini_env: GeminiEmulator) -> None:
    gemini_env.batch_plan = GeminiBatchPlan(finish_after=1, shuffle_seed=1)
    batch = flash.submit_batch([f"p{i}" for i in range(12)])
    resumed = llmbackend.get_batch("gemini", batch.id)
    assert resumed.results() == [f"Echo: p{i}" for i in range(12)]
    bare = llmbackend.get_batch("gemini", batch.id.removeprefix("batches/"))
    assert bare.custom_ids == tuple(f"request-{i}" for i in range(12))
    own = flash.submit_batch(PROMPTS[:3], batch_options={"custom_ids": ["z", "x", "y"]})
    in_my_order = flash.get_batch(own.id, custom_ids=["z", "x", "y"])
    assert in_my_order.results() == [f"Echo: {p}" for p in PROMPTS[:3]]


def test_bad_batch_input_fails_before_sending(flash: llmbackend.Client,
                                              gemini_env: GeminiEmulator) -> None:
    with pytest.raises(ConfigurationError, match="unknown batch option 'completion_window'"):
        flash.submit_batch(PROMPTS, batch_options={"completion_window": "24h"})
    with pytest.raises(ConfigurationError, match="used twice"):
        flash.submit_batch(PROMPTS[:2], batch_options={"custom_ids": ["a", "a"]})
    with pytest.raises(ConfigurationError, match="not a Gemini batch name"):
        flash.get_batch("batches/../x")
    assert gemini_env.requests == []


def test_the_key_never_shows(flash: llmbackend.Client) -> None:
    batch = flash.submit_batch(PROMPTS[:1])
    assert API_KEY not in repr(batch) + repr(batch.state()) + json.dumps(batch.raw)


# --- ids: one rule where they come in and where they go out ---------------------------------------

#: A Gemini batch's id is one segment of its name, batches/<id>: "/" and ":" are refused too.
GEMINI_USABLE_IDS = ("batch 1", "a+b", "x" * 5000)
GEMINI_UNUSABLE_IDS = (*(i for i in UNUSABLE_BATCH_IDS if i != "a+b"), "../../x", "a/b", "a:b")


@pytest.mark.parametrize("batch_id", GEMINI_USABLE_IDS)
def test_any_id_the_server_gives_works_verbatim_at_every_later_step(
        flash: llmbackend.Client, gemini_env: GeminiEmulator, batch_id: str) -> None:
    gemini_env.batch_ids.append(batch_id)
    batch = flash.submit_batch(["one", "two"])
    assert batch.id == f"batches/{batch_id}"
    restored = llmbackend.restore_batch(json.loads(json.dumps(batch.to_dict())))
    assert restored.id == batch.id and restored.results() == ["Echo: one", "Echo: two"]
    for given in (batch.id, batch_id):  # the name, or the bare id
        attached = flash.get_batch(given)
        assert attached.id == batch.id and sorted(attached.results()) == ["Echo: one",
                                                                          "Echo: two"]
    assert attached.cancel() == "succeeded"


@pytest.mark.parametrize("batch_id", GEMINI_UNUSABLE_IDS)
def test_an_id_llmbackend_cannot_use_is_refused_at_submit(
        flash: llmbackend.Client, gemini_env: GeminiEmulator, batch_id: str) -> None:
    gemini_env.batch_ids.append(batch_id)
    with pytest.raises(ProviderError) as raised:
        flash.submit_batch(["one"])
    assert raised.value.error_type == "invalid_batch_id" and str(raised.value).isprintable()
    assert list(gemini_env.batches) == [batch_id]
    with pytest.raises(ConfigurationError, match=r"not a Gemini batch name|non-empty"):
        flash.get_batch(f"batches/{batch_id}")


# --- messages (issue 15): conversations against the emulator ------------------------------------

CONVERSATIONS: list[Any] = [
    (Message(role="system", content="Be brief."), Message(role="user", content="2+2?"),
     Message(role="assistant", content="4"), Message(role="user", content="and 3+3?")),
    (Message(role="user", content="Translate: chat"),),
    (Message(role="assistant", content="Hello! Ask me anything."),
     Message(role="user", content="Why is the sky blue?")),
]


def _remote(flash: llmbackend.Client) -> RemoteBackend:
    backend = flash._backend
    assert isinstance(backend, RemoteBackend)
    return backend


def test_a_conversation_is_accepted_and_answered_by_the_emulator(
    flash: llmbackend.Client, gemini_env: GeminiEmulator
) -> None:
    backend = _remote(flash)
    request = evolve(backend.request("", {"temperature": 0.2}, None), input=CONVERSATIONS[0])
    outcome = pipeline.generate(backend.record, request, backend.transport.send)
    assert outcome.unwrap().text == "Echo: and 3+3?"  # the last user turn
    (sent,) = gemini_env.requests
    assert sent.json() == {
        "contents": [{"role": "user", "parts": [{"text": "2+2?"}]},
                     {"role": "model", "parts": [{"text": "4"}]},
                     {"role": "user", "parts": [{"text": "and 3+3?"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.2}}
    prefill = evolve(request, input=CONVERSATIONS[0][:3])
    error = pipeline.generate(backend.record, prefill, backend.transport.send).failure()
    assert isinstance(error, UnsupportedError) and error.parameter == "input"
    assert len(gemini_env.requests) == 1  # refused before sending


@pytest.mark.parametrize("mode", ["inline", "file"])
def test_a_batch_of_conversations_and_prompts_puts_each_in_its_own_request(
    flash: llmbackend.Client, gemini_env: GeminiEmulator, monkeypatch: pytest.MonkeyPatch,
    mode: str
) -> None:
    if mode == "file":
        monkeypatch.setattr(gemini_batch, "INLINE_LIMIT", 500)
    gemini_env.batch_plan = GeminiBatchPlan(finish_after=1, shuffle_seed=3)
    backend = _remote(flash)
    inputs: list[Any] = [*CONVERSATIONS, "a plain prompt"]
    batch = gemini_jobs.submit(backend.transport, backend.request("", None, None), inputs, {},
                               lambda _: None)
    stored = gemini_env.batches[batch.id.removeprefix("batches/")]
    assert stored.mode == mode
    assert batch.results() == ["Echo: and 3+3?", "Echo: Translate: chat",
                               "Echo: Why is the sky blue?", "Echo: a plain prompt"]
    if mode == "file":
        uploaded = gemini_env.files[stored.input_file.removeprefix("files/")]  # type: ignore[union-attr]
        lines = [json.loads(line) for line in uploaded.content.splitlines()]
        for index, (line, item) in enumerate(zip(lines, inputs, strict=True)):
            assert line == {"key": f"request-{index}", "request": gemini.build_request_body(
                evolve(backend.request("", None, None), input=item)).unwrap()}
