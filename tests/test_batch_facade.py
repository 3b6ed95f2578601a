"""OpenAI batch jobs end to end: the real facade and transport against the loopback Batch API
emulator, for every way a batch can end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from returns.result import Failure, Success

import llmbackend
from llmbackend import (
    BatchItemsError,
    BatchNotReadyError,
    ConfigurationError,
    HTTPStatusError,
    LLMBackendWarning,
    ProviderError,
    RefusalError,
    SchemaValidationError,
    StructuredOutput,
    TransportError,
    UnsupportedError,
)
from llmbackend.providers import openai_batch
from tests.conftest import ROOT
from tests.emulator import (
    API_KEY,
    UNUSABLE_BATCH_IDS,
    USABLE_BATCH_IDS,
    BatchPlan,
    OpenAIEmulator,
    error_body,
    response_body,
)

PROMPTS = [f"Write a title for: article {i}" for i in range(5)]


class Item(BaseModel):
    title: str


@pytest.fixture
def client(openai_env: OpenAIEmulator) -> llmbackend.Client:
    openai_env.batch_plan = BatchPlan(finish_after=1)
    return llmbackend.client("openai", "gpt-4o-mini")


def uploads(emulator: OpenAIEmulator) -> list[list[dict[str, Any]]]:
    """The JSONL files uploaded for batches, parsed, in upload order."""
    return [stored.lines() for stored in emulator.files.values() if stored.purpose == "batch"]


def calls(emulator: OpenAIEmulator) -> list[str]:
    return [f"{r.method} {r.path}" for r in emulator.requests]


# --- the happy path -------------------------------------------------------------------------------


def test_answers_come_back_in_input_order_whatever_the_file_order(
    client: llmbackend.Client, openai_env: OpenAIEmulator
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=2, shuffle_seed=3)
    batch = client.submit_batch(PROMPTS, config={"max_tokens": 50},
                                batch_options={"display_name": "titles"})
    assert batch.id.startswith("batch_")
    assert batch.status() == "in_progress"
    assert batch.status() == "completed"
    assert batch.results() == [f"Echo: {p}" for p in PROMPTS]
    output = next(f for f in openai_env.files.values() if f.purpose == "batch_output")
    assert [line["custom_id"] for line in output.lines()] != [
        f"request-{i}" for i in range(5)], "the emulator shuffled the output file"
    assert batch.counts == llmbackend.BatchCounts(total=5, completed=5, failed=0)
    assert batch.raw[0]["metadata"] == {"display_name": "titles"}
    assert calls(openai_env)[:2] == ["POST /v1/files", "POST /v1/batches"]


def test_each_uploaded_line_is_the_request_the_sync_call_sends(
    client: llmbackend.Client, openai_env: OpenAIEmulator
) -> None:
    config = {"temperature": 0.3, "max_tokens": 40, "extra": {"system": "Be brief."}}
    schema = StructuredOutput(pydantic_model=Item)
    client.submit_batch(PROMPTS[:2], config=config, schema=schema,
                        batch_options={"custom_ids": ["x", "y"]})
    lines = uploads(openai_env)[0]
    for prompt in PROMPTS[:2]:
        client.get_response(prompt, config=config, schema=schema)
    sync_bodies = [r.json() for r in openai_env.requests if r.path == "/v1/responses"]
    assert [line["custom_id"] for line in lines] == ["x", "y"]
    assert {line["url"] for line in lines} == {"/v1/responses"}
    assert [line["body"] for line in lines] == sync_bodies


def test_structured_batches_give_validated_objects(
    client: llmbackend.Client, openai_env: OpenAIEmulator
) -> None:
    batch = client.submit_batch(PROMPTS[:3], schema=StructuredOutput(pydantic_model=Item))
    items = batch.results()
    assert items == [Item(title="example")] * 3


def test_create_batch_is_the_same_without_a_client(openai_env: OpenAIEmulator) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=1)
    batch = llmbackend.create_batch(PROMPTS[:2], "openai", "gpt-4o-mini",
                                    batch_options={"display_name": "seo"})
    assert batch.wait(poll_interval=0.01) == "completed"
    assert batch.results() == [f"Echo: {p}" for p in PROMPTS[:2]]


# --- failures per item ----------------------------------------------------------------------------


def test_error_file_lines_and_bad_answers_fail_only_their_items(
    client: llmbackend.Client, openai_env: OpenAIEmulator
) -> None:
    refusal = response_body("gpt-4o-mini", "", output=[{
        "type": "message", "role": "assistant", "status": "completed",
        "content": [{"type": "refusal", "refusal": "I can't help with that."}]}])
    openai_env.batch_plan = BatchPlan(
        finish_after=1, shuffle_seed=1,
        item_errors={"b": (400, json.loads(error_body(
            "Invalid 'input': string too long", "invalid_request_error", "string_above_max_length",
            "input")))},
        output_status_code={"d": (500, json.loads(error_body(
            "The server had an error", "server_error", None)))},
        item_bodies={"c": refusal},
    )
    batch = client.submit_batch(PROMPTS, batch_options={"custom_ids": list("abcde")})
    outcomes = batch.outcomes()
    assert [type(o).__name__ for o in outcomes] == [
        "Success", "Failure", "Failure", "Failure", "Success"]
    assert outcomes[0].unwrap().text == f"Echo: {PROMPTS[0]}"
    assert outcomes[4].unwrap().text == f"Echo: {PROMPTS[4]}"
    error_b = outcomes[1].failure()
    assert isinstance(error_b, HTTPStatusError)
    assert (error_b.status, error_b.error_code, error_b.error_param) == (
        400, "string_above_max_length", "input")
    assert isinstance(outcomes[2].failure(), RefusalError)
    error_d = outcomes[3].failure()
    assert isinstance(error_d, HTTPStatusError)
    assert error_d.status == 500

    with pytest.raises(BatchItemsError) as raised:
        batch.results()
    error = raised.value
    assert [(f.index, f.custom_id) for f in error.failures] == [(1, "b"), (2, "c"), (3, "d")]
    assert error.succeeded == 2
    assert "3 of 5 items failed: #1 'b' (HTTPStatusError" in str(error)
    assert "batch.outcomes()" in str(error)


def test_an_answer_that_breaks_the_schema_fails_only_its_item(
    client: llmbackend.Client, openai_env: OpenAIEmulator
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=1, item_bodies={
        "request-1": response_body("gpt-4o-mini", '{"name": "no title"}')})
    batch = client.submit_batch(PROMPTS[:3], schema=StructuredOutput(pydantic_model=Item))
    outcomes = batch.outcomes()
    assert outcomes[0].unwrap().parsed == Item(title="example")
    assert isinstance(outcomes[1].failure(), SchemaValidationError)
    assert outcomes[2].unwrap().parsed == Item(title="example")


@pytest.mark.parametrize("missing_lines", ["error_file", "omit"])
@pytest.mark.parametrize(("outcome", "code"), [("expired", "batch_expired"),
                                               ("cancelled", "batch_cancelled")])
def test_an_ended_batch_keeps_its_partial_results(
    client: llmbackend.Client, openai_env: OpenAIEmulator, outcome: Any, code: str,
    missing_lines: Any,
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=1, outcome=outcome, done=2,
                                      missing_lines=missing_lines, shuffle_seed=5)
    batch = client.submit_batch(PROMPTS)
    status = batch.status()
    assert status == outcome
    assert status in ("failed", "expired", "canceled")  # the seed README's loop stops
    outcomes = batch.outcomes()
    assert [o.unwrap().text for o in outcomes[:2]] == [f"Echo: {p}" for p in PROMPTS[:2]]
    for failed in outcomes[2:]:
        error = failed.failure()
        assert isinstance(error, ProviderError)
        assert error.error_code == code
    with pytest.raises(BatchItemsError, match=f"ended '{status.value}' and 3 of 5 items failed"):
        batch.results()


def test_a_batch_that_fails_validation_fails_every_item_with_its_reason(
    client: llmbackend.Client, openai_env: OpenAIEmulator
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=1, outcome="failed")
    batch = client.submit_batch(PROMPTS[:2])
    assert batch.status() == "failed"
    outcomes = batch.outcomes()
    for outcome in outcomes:
        error = outcome.failure()
        assert isinstance(error, ProviderError)
        assert error.error_type == "batch_failed"
        assert "failed, so request" in str(error)


def test_cancel_stops_the_batch_and_keeps_what_ran(
    client: llmbackend.Client, openai_env: OpenAIEmulator
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=5, done=1)
    batch = client.submit_batch(PROMPTS[:3])
    assert batch.status() == "running"
    assert batch.cancel() == "cancelling"
    assert batch.wait(poll_interval=0.01) == "canceled"
    outcomes = batch.outcomes()
    assert outcomes[0].unwrap().text == f"Echo: {PROMPTS[0]}"
    assert all(isinstance(o, Failure) for o in outcomes[1:])
    assert batch.cancel() == "cancelled"  # cancelling an ended batch changes nothing


def test_results_before_the_end_and_wait_timeouts_say_so(
    client: llmbackend.Client, openai_env: OpenAIEmulator
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=50)
    batch = client.submit_batch(PROMPTS[:2])
    with pytest.raises(BatchNotReadyError) as raised:
        batch.results()
    assert raised.value.batch_id == batch.id
    assert raised.value.retryable
    assert "of 2 requests done" in str(raised.value)
    with pytest.raises(BatchNotReadyError, match=r"after waiting 0\.05 s"):
        batch.wait(poll_interval=0.01, timeout=0.05)
    with pytest.raises(ConfigurationError, match="poll_interval"):
        batch.wait(poll_interval=0)


# --- splitting ------------------------------------------------------------------------------------


def test_a_large_job_is_split_behind_one_handle(
    client: llmbackend.Client, openai_env: OpenAIEmulator
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=1, shuffle_seed=2)
    batch = client.submit_batch(PROMPTS, batch_options={
        "max_requests_per_batch": 2, "display_name": "big", "custom_ids": list("abcde")})
    part_ids = batch.id.split("+")
    assert len(part_ids) == 3
    assert [len(lines) for lines in uploads(openai_env)] == [2, 2, 1]
    assert [[line["custom_id"] for line in lines] for lines in uploads(openai_env)] == [
        ["a", "b"], ["c", "d"], ["e"]]
    assert [openai_env.batches[i].api_object["metadata"] for i in part_ids] == [
        {"display_name": "big", "llmbackend_part": f"{n}/3"} for n in (1, 2, 3)]
    assert batch.status() == "completed"
    assert batch.counts.total == 5
    assert len(batch.raw) == 3
    assert batch.results() == [f"Echo: {p}" for p in PROMPTS]
    assert batch.custom_ids == tuple("abcde")


def test_a_job_is_split_by_bytes_too(
    client: llmbackend.Client, openai_env: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = len(openai_batch.build_line_encoder(llmbackend.jobs.batch_request(
        "gpt-4o-mini", None, None, False)).unwrap().line("request-0", PROMPTS[0]))
    monkeypatch.setattr(openai_batch, "MAX_FILE_BYTES", 2 * line + 1)
    batch = client.submit_batch(PROMPTS)
    assert [len(lines) for lines in uploads(openai_env)] == [2, 2, 1]
    assert batch.results() == [f"Echo: {p}" for p in PROMPTS]


def test_a_split_part_that_fails_to_start_cancels_the_others(
    client: llmbackend.Client, openai_env: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = client._backend.transport
    real_send = transport.send
    sent: list[str] = []

    def send(request: Any) -> Any:  # the third request (second part's upload) loses the network
        sent.append(request.path)
        if len(sent) == 3:
            return Failure(TransportError(message="connection reset", provider="openai"))
        return real_send(request)

    monkeypatch.setattr(transport, "send", send)
    openai_env.batch_plan = BatchPlan(finish_after=20)
    with pytest.raises(TransportError, match="the parts already started were cancelled") as err:
        client.submit_batch(PROMPTS, batch_options={"max_requests_per_batch": 3})
    (first,) = openai_env.batches.values()
    assert first.id in str(err.value)
    assert sent[-1] == f"/batches/{first.id}/cancel"
    assert openai_env.batches[first.id].status == "cancelling"


# --- resume ---------------------------------------------------------------------------------------


def test_a_batch_resumes_from_its_id_alone_in_input_order(
    client: llmbackend.Client, openai_env: OpenAIEmulator
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=1, shuffle_seed=9)
    ids = ["zeta", "alpha", "mid", "b", "a"]  # not sorted: order comes from the input file
    submitted = client.submit_batch(PROMPTS, batch_options={"custom_ids": ids,
                                                            "max_requests_per_batch": 2})
    resumed = llmbackend.get_batch("openai", submitted.id)
    assert resumed.id == submitted.id
    assert resumed.custom_ids == tuple(ids)
    assert resumed.results() == [f"Echo: {p}" for p in PROMPTS]
    again = llmbackend.client("openai", "any-model").get_batch(submitted.id)
    assert again.results() == resumed.results()


def test_a_structured_batch_resumes_with_or_without_its_schema(
    client: llmbackend.Client, openai_env: OpenAIEmulator
) -> None:
    submitted = client.submit_batch(PROMPTS[:2], schema=StructuredOutput(pydantic_model=Item))
    typed = client.get_batch(submitted.id, schema=StructuredOutput(pydantic_model=Item))
    assert typed.results() == [Item(title="example")] * 2
    untyped = client.get_batch(submitted.id)
    assert untyped.results() == [{"title": "example"}] * 2


def test_a_batch_resumes_in_a_new_process(
    client: llmbackend.Client, openai_env: OpenAIEmulator
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=1, shuffle_seed=4)
    submitted = client.submit_batch(PROMPTS, batch_options={"max_requests_per_batch": 3})
    code = ("import json, sys, llmbackend\n"
            "batch = llmbackend.get_batch('openai', sys.argv[1])\n"
            "print(json.dumps([str(batch.status()), batch.results()]))\n")
    env = {**os.environ, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": openai_env.base_url,
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code, submitted.id], env=env, check=True,
                          capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout) == ["completed", [f"Echo: {p}" for p in PROMPTS]]


def test_unknown_batch_ids_fail_clearly(client: llmbackend.Client,
                                       openai_env: OpenAIEmulator) -> None:
    with pytest.raises(HTTPStatusError) as raised:
        client.get_batch("batch_doesnotexist")
    assert raised.value.status == 404
    with pytest.raises(HTTPStatusError) as raised:  # an id, percent-encoded: one path segment
        client.get_batch("../files")
    assert raised.value.status == 404
    assert openai_env.requests[-1].path == "/v1/batches/..%2Ffiles"
    with pytest.raises(ConfigurationError, match="not an OpenAI batch id"):
        client.get_batch("..")


# --- ids: one rule where they come in and where they go out ---------------------------------------


@pytest.mark.parametrize("batch_id", USABLE_BATCH_IDS)
def test_any_id_the_server_gives_works_verbatim_at_every_later_step(
        client: llmbackend.Client, openai_env: OpenAIEmulator, batch_id: str) -> None:
    openai_env.batch_ids.append(batch_id)
    batch = client.submit_batch(PROMPTS)
    assert batch.id == batch_id
    echoes = [f"Echo: {p}" for p in PROMPTS]
    saved = json.loads(json.dumps(batch.to_dict()))
    assert saved["id"] == saved["parts"][0]["id"] == batch_id
    restored = llmbackend.restore_batch(saved)
    assert restored.id == batch_id and restored.status() == "completed"
    assert restored.results() == echoes
    attached = client.get_batch(batch_id)  # by id alone: its inputs read back
    assert attached.id == batch_id and attached.results() == echoes
    assert attached.cancel() == "completed"
    assert llmbackend.get_batch("openai", batch_id).to_dict()["id"] == batch_id


@pytest.mark.parametrize("batch_id", UNUSABLE_BATCH_IDS)
def test_an_id_llmbackend_cannot_use_is_refused_at_submit_shown_escaped(
        client: llmbackend.Client, openai_env: OpenAIEmulator, batch_id: str) -> None:
    openai_env.batch_ids.append(batch_id)
    with pytest.raises(ProviderError) as raised:
        client.submit_batch(PROMPTS)
    error = raised.value
    assert error.error_type == "invalid_batch_id" and str(error).isprintable()
    assert repr(batch_id)[:40] in str(error) and "may run (and be billed)" in str(error)
    assert list(openai_env.batches) == [batch_id]  # it was made: the error is all that says so
    if batch_id != "a+b":  # (a handle's id "a+b" is the join of parts "a" and "b")
        with pytest.raises(ConfigurationError) as refused:
            client.get_batch(batch_id)
        assert str(refused.value).isprintable()


def test_a_part_whose_id_is_refused_cancels_the_parts_already_started(
        client: llmbackend.Client, openai_env: OpenAIEmulator) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=5)
    openai_env.batch_ids.extend(["batch_first", "batch+second"])
    with pytest.raises(ProviderError, match="'batch\\+second'") as raised:
        client.submit_batch(PROMPTS, batch_options={"max_requests_per_batch": 3})
    assert "the parts already started were cancelled: batch_first" in str(raised.value)
    assert openai_env.batches["batch_first"].status in {"cancelling", "cancelled"}


def test_a_saved_part_id_is_checked_not_cut(client: llmbackend.Client) -> None:
    batch = client.submit_batch(PROMPTS)
    saved = batch.to_dict()
    saved["parts"][0]["id"] = f"{batch.id}+batch_other"
    with pytest.raises(ConfigurationError, match="not an OpenAI batch id"):
        llmbackend.restore_batch(saved)


# --- bad input fails before anything is sent ------------------------------------------------------


@pytest.mark.parametrize(("inputs", "options", "config", "words"), [
    (PROMPTS, {"completion_window": "1h"}, None, "completion_window"),
    (PROMPTS, {"custom_ids": ["a", "a", "b", "c", "d"]}, None, "used twice"),
    (PROMPTS, {"custom_ids": ["a"]}, None, "1 ids for 5 inputs"),
    (PROMPTS, {"colour": "red"}, None, "unknown batch option 'colour'"),
    ([], None, None, "inputs is empty"),
    ("one prompt", None, None, "list of prompts"),
    (["ok", 3], None, None, "input #1 must be a string"),
    (PROMPTS, None, {"temprature": 1}, "temprature"),
])
def test_bad_input_raises_before_any_upload(
    client: llmbackend.Client, openai_env: OpenAIEmulator, *, inputs: Any, options: Any,
    config: Any, words: str,
) -> None:
    with pytest.raises(ConfigurationError, match=words):
        client.submit_batch(inputs, config=config, batch_options=options)
    assert openai_env.requests == []


def test_an_unsupported_parameter_raises_before_any_upload(
    client: llmbackend.Client, openai_env: OpenAIEmulator
) -> None:
    with pytest.raises(UnsupportedError, match="seed"):
        client.submit_batch(PROMPTS, config={"seed": 1})
    assert openai_env.requests == []


def test_dropped_parameters_warn_once_at_the_caller(openai_env: OpenAIEmulator) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=1)
    dropping = llmbackend.client("openai", "gpt-4o-mini", drop_unsupported_params=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dropping.submit_batch(PROMPTS, config={"seed": 1})
    dropped = [w for w in caught if issubclass(w.category, LLMBackendWarning)]
    assert len(dropped) == 1
    assert dropped[0].filename == __file__
    assert all("seed" not in line["body"] for line in uploads(openai_env)[0])


def test_the_key_never_shows(client: llmbackend.Client, openai_env: OpenAIEmulator) -> None:
    batch = client.submit_batch(PROMPTS[:1])
    assert API_KEY not in repr(batch)
    assert API_KEY not in repr(batch.state())
    assert API_KEY not in json.dumps(batch.raw)


def test_typed_outcomes_match_on_result(client: llmbackend.Client) -> None:
    batch = client.submit_batch(PROMPTS[:2])
    texts = []
    for outcome in batch.outcomes():
        match outcome:
            case Success(generation):
                texts.append(generation.text)
            case Failure(error):
                raise AssertionError(error)
    assert texts == [f"Echo: {p}" for p in PROMPTS[:2]]


# --- every item accounted for, whatever happens ---------------------------------------------------


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(1, 7), failing=st.sets(st.integers(0, 6)),
       outcome=st.sampled_from(["completed", "expired", "cancelled"]), done=st.integers(0, 7),
       missing_lines=st.sampled_from(["error_file", "omit"]), seed=st.integers(0, 1000),
       part_size=st.integers(1, 8))
def test_every_item_gets_its_own_outcome(
    client: llmbackend.Client, openai_env: OpenAIEmulator, *, count: int, failing: set[int],
    outcome: Any, done: int, missing_lines: Any, seed: int, part_size: int,
) -> None:
    ids = [f"id-{(i * 7919) % 1000}" for i in range(count)]  # not in sorted order
    openai_env.batch_plan = BatchPlan(
        finish_after=1, outcome=outcome, done=done, missing_lines=missing_lines,
        shuffle_seed=seed, item_errors={ids[i]: (400, json.loads(error_body(
            f"bad request {ids[i]}", "invalid_request_error", "bad"))) for i in failing
            if i < count})
    batch = client.submit_batch([f"prompt {i}" for i in range(count)],
                                batch_options={"custom_ids": ids,
                                               "max_requests_per_batch": part_size})
    outcomes = batch.outcomes()
    assert len(outcomes) == count
    parts = [ids[i:i + part_size] for i in range(0, count, part_size)]
    for index, result in enumerate(outcomes):
        ran = outcome == "completed" or any(
            ids[index] in part and part.index(ids[index]) < done for part in parts)
        if ran and index not in failing:
            assert result.unwrap().text == f"Echo: prompt {index}"
        elif ran:
            error = result.failure()
            assert isinstance(error, HTTPStatusError)
            assert f"bad request {ids[index]}" in str(error)
        else:
            error = result.failure()
            assert isinstance(error, ProviderError)
            assert error.error_code == ("batch_expired" if outcome == "expired"
                                        else "batch_cancelled")


def test_a_batch_made_elsewhere_resumes_and_its_line_errors_reach_their_items(
    openai_env: OpenAIEmulator,
) -> None:
    """A batch created with the official SDK, failed by OpenAI's validation on its second line,
    is read by id: that item names its own error, the others the batch's."""
    import openai

    sdk = openai.OpenAI(api_key=API_KEY, base_url=openai_env.base_url)
    lines = [{"custom_id": cid, "method": "POST", "url": "/v1/responses",
              "body": {"model": model, "input": f"prompt {cid}"}}
             for cid, model in (("first", "gpt-4o-mini"), ("second", "gpt-4o"),
                                ("third", "gpt-4o-mini"))]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    uploaded = sdk.files.create(file=("in.jsonl", content), purpose="batch")
    created = sdk.batches.create(input_file_id=uploaded.id, endpoint="/v1/responses",
                                 completion_window="24h")
    batch = llmbackend.get_batch("openai", created.id)
    assert batch.wait(poll_interval=0.01) == "failed"
    assert batch.custom_ids == ("first", "second", "third")
    errors = [outcome.failure() for outcome in batch.outcomes()]
    assert all(isinstance(error, ProviderError) for error in errors)
    assert "this request:" in str(errors[1])
    assert "model" in str(errors[1]).lower()
    assert "this request:" not in str(errors[0])


@pytest.mark.parametrize("made", [True, False])
def test_a_lost_create_answer_never_makes_a_second_batch(
    client: llmbackend.Client, openai_env: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch,
    made: bool,
) -> None:
    """The network drops the answer to ``POST /batches`` (after the batch was made, or before):
    the handle is the one batch that exists, found by its input file, or made once."""
    transport = client._backend.transport
    real_send = transport.send
    dropped: list[str] = []

    def send(request: Any) -> Any:
        if request.path == "/batches" and not dropped:
            dropped.append(request.path)
            if made:
                real_send(request)
            return Failure(TransportError(message="connection reset", provider="openai"))
        return real_send(request)

    monkeypatch.setattr(transport, "send", send)
    batch = client.submit_batch(PROMPTS[:2])
    assert list(openai_env.batches) == [batch.id]
    assert "GET /v1/batches?limit=100" in calls(openai_env)
    assert batch.results() == [f"Echo: {p}" for p in PROMPTS[:2]]


def test_wait_reports_progress_at_every_poll(client: llmbackend.Client,
                                             openai_env: OpenAIEmulator) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=3)
    batch = client.submit_batch(PROMPTS)
    seen: list[llmbackend.BatchState] = []
    assert batch.wait(poll_interval=0.01, progress=seen.append) == "completed"
    assert [state.status.value for state in seen] == ["running", "running", "completed"]
    assert seen[-1].counts == llmbackend.BatchCounts(total=5, completed=5)


def test_outcomes_can_leave_the_raw_bodies_out(openai_env: OpenAIEmulator) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=0, outcome="expired", done=3)
    batch = llmbackend.client("openai", "gpt-4o-mini").submit_batch(PROMPTS)
    whole, light = batch.outcomes(), batch.outcomes(keep_raw=False)
    assert [type(o) for o in light] == [type(o) for o in whole]  # the same failures, in place
    assert [o.failure().error_code for o in light if isinstance(o, Failure)] == [  # type: ignore[attr-defined]
        "batch_expired", "batch_expired"]
    for kept, dropped in zip(whole, light, strict=True):
        if isinstance(kept, Success):
            assert kept.unwrap().raw  # the provider's body, by default
            assert dropped.unwrap().raw == {}
            assert (dropped.unwrap().text, dropped.unwrap().usage) == (
                kept.unwrap().text, kept.unwrap().usage)
