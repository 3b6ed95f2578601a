"""The emulator's Files + Batch API, checked through the official openai SDK (the test oracle):
the SDK must parse every object, and the objects must have the recorded fixtures' shapes."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import httpx2
import jsonschema
import openai
import pytest
from openai.types import Batch
from openai.types.responses import Response

from tests.conftest import load_fixture
from tests.emulator import (
    API_KEY,
    BatchPlan,
    OpenAIEmulator,
    error_object,
    example_instance,
    response_body,
)

MODEL = "gpt-4.1"
TERMINAL = {"completed", "failed", "expired", "cancelled"}
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["city", "population"],
          "properties": {"city": {"type": "string"}, "population": {"type": "integer"}}}


@pytest.fixture
def client(emulator: OpenAIEmulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key=API_KEY, base_url=emulator.base_url, max_retries=0) as sdk:
        yield sdk


def line(custom_id: str, *, model: str = MODEL, **extra: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/responses",
            "body": {"model": model, "input": f"question {custom_id}", **extra}}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def ids(n: int) -> list[str]:
    return [f"request-{i}" for i in range(n)]


def upload(client: openai.OpenAI, content: bytes, name: str = "input.jsonl") -> str:
    return client.files.create(file=(name, content), purpose="batch").id


def submit(client: openai.OpenAI, lines: list[dict[str, Any]], **kwargs: Any) -> Batch:
    return client.batches.create(input_file_id=upload(client, jsonl(lines)),
                                 endpoint="/v1/responses", completion_window="24h", **kwargs)


def poll(client: openai.OpenAI, batch: Batch) -> list[Batch]:
    """Every state seen, from the create answer to the terminal one."""
    seen = [batch]
    while seen[-1].status not in TERMINAL:
        assert len(seen) < 20, "the batch never finished"
        seen.append(client.batches.retrieve(batch.id))
    return seen


def read(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    text = client.files.content(file_id).text
    assert text.endswith("\n")
    lines = text.splitlines()
    for raw in lines:  # json.dumps with its default separators, one object a line
        assert raw == json.dumps(json.loads(raw))
    return [json.loads(raw) for raw in lines]


def fixture_body(name: str) -> dict[str, Any]:
    return load_fixture("openai", name)["response"]["body"]  # type: ignore[no-any-return]


# --- Files ----------------------------------------------------------------------------------------


def test_upload_answers_the_recorded_file_object(client: openai.OpenAI,
                                                 emulator: OpenAIEmulator) -> None:
    recorded = load_fixture("openai", "files_upload_batch_input_responses.json")
    content = recorded["request"]["body"]["multipart_form"]["files"][0]["content"].encode()
    raw = client.files.with_raw_response.create(file=("tmp0_oud_qc.jsonl", content),
                                                purpose="batch")
    body = raw.http_response.json()
    assert list(body) == list(recorded["response"]["body"])  # same keys, same order
    file = raw.parse()
    assert set(file.model_dump()) == set(recorded["response"]["body"])
    assert (file.object, file.purpose, file.status, file.status_details) == \
        ("file", "batch", "processed", None)
    assert file.filename == "tmp0_oud_qc.jsonl"
    assert file.bytes == len(content) == recorded["response"]["body"]["bytes"]
    assert file.id.startswith("file-") and len(file.id) == len(recorded["response"]["body"]["id"])
    assert file.expires_at == file.created_at + 30 * 24 * 3600
    assert emulator.files[file.id].content == content
    assert client.files.retrieve(file.id) == file
    download = client.files.with_raw_response.content(file.id)
    assert download.http_response.headers["content-type"] == "application/jsonl"
    assert download.http_response.content == content
    upload_request = next(r for r in emulator.requests if r.path == "/v1/files")
    assert upload_request.method == "POST"
    assert upload_request.headers["content-type"].startswith("multipart/form-data; boundary=")


def test_upload_keeps_megabytes_of_arbitrary_bytes(client: openai.OpenAI,
                                                   emulator: OpenAIEmulator) -> None:
    content = os.urandom(3_000_000) + b"\r\n--boundary\r\n\r\n--\r\n" + bytes(range(256)) * 4000
    name = 'we"ird \\ näme.jsonl'
    file = client.files.create(file=(name, content), purpose="batch")
    assert file.bytes == len(content)
    assert file.filename == name
    assert emulator.files[file.id].content == content
    assert client.files.content(file.id).content == content


def _multipart(boundary: str, fields: dict[str, str], file: bytes | None) -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
             .encode() for name, value in fields.items()]
    if file is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                     f'filename="chunked.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode() + file + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def test_chunked_request_bodies(emulator: OpenAIEmulator) -> None:
    content = jsonl([line(i) for i in ids(3)]) * 1000
    body = _multipart("xYz0", {"purpose": "batch"}, content)

    def pieces(data: bytes, size: int) -> Iterator[bytes]:
        for start in range(0, len(data), size):
            yield data[start:start + size]

    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx2.Client(base_url=emulator.base_url, headers=headers) as http:
        uploaded = http.post("/files", content=pieces(body, 7919),
                             headers={"Content-Type": "multipart/form-data; boundary=xYz0"})
        assert uploaded.status_code == 200, uploaded.text
        # The same connection goes on: the chunked body was read to its end.
        answered = http.post("/responses", content=pieces(json.dumps(
            {"model": MODEL, "input": "hi"}).encode(), 5),
            headers={"Content-Type": "application/json"})
        assert answered.status_code == 200
        assert answered.json()["output"][0]["content"][0]["text"] == "Echo: hi"
    assert emulator.files[uploaded.json()["id"]].content == content
    chunked = [r for r in emulator.requests if r.headers.get("transfer-encoding") == "chunked"]
    assert [r.path for r in chunked] == ["/v1/files", "/v1/responses"]
    assert chunked[0].body == body


def test_a_malformed_chunked_body_is_a_400(emulator: OpenAIEmulator) -> None:
    port = int(emulator.base_url.rsplit(":", 1)[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                     b"\r\nzz\r\nhello\r\n0\r\n\r\n")
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400")


def test_upload_checks_purpose_and_file(client: openai.OpenAI, emulator: OpenAIEmulator) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("a.jsonl", b"{}\n"), purpose="fine-tune")
    assert caught.value.body["param"] == "purpose"  # type: ignore[index]
    headers = {"Authorization": f"Bearer {API_KEY}",
               "Content-Type": "multipart/form-data; boundary=b0"}
    no_file = httpx2.post(f"{emulator.base_url}/files", headers=headers,
                          content=_multipart("b0", {"purpose": "batch"}, None))
    assert no_file.status_code == 400
    assert no_file.json()["error"]["param"] == "file"
    not_multipart = httpx2.post(f"{emulator.base_url}/files", json={"purpose": "batch"},
                                headers={"Authorization": f"Bearer {API_KEY}"})
    assert not_multipart.status_code == 400
    assert emulator.files == {}


def test_upload_reads_expires_after(client: openai.OpenAI) -> None:
    file = client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch",
                               expires_after={"anchor": "created_at", "seconds": 3600})
    assert file.expires_at == file.created_at + 3600


def test_files_list_and_delete(client: openai.OpenAI) -> None:
    first, second = upload(client, b"{}\n"), upload(client, b"[]\n")
    assert [f.id for f in client.files.list()] == [second, first]
    deleted = client.files.delete(first)
    assert (deleted.id, deleted.deleted) == (first, True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(first)


# --- a completed batch ----------------------------------------------------------------------------


def test_completed_batch_walks_the_lifecycle(client: openai.OpenAI,
                                             emulator: OpenAIEmulator) -> None:
    structured = {"format": {"type": "json_schema", "name": "city", "schema": SCHEMA,
                             "strict": True}}
    lines = [line("request-0"), line("request-1", text=structured), line("request-2")]
    file_id = upload(client, jsonl(lines))
    raw = client.batches.with_raw_response.create(
        input_file_id=file_id, endpoint="/v1/responses", completion_window="24h",
        metadata={"job": "nightly"})
    created_fixture = fixture_body("batches_create_validating_responses.json")
    assert list(raw.http_response.json()) == list(created_fixture)  # every key, fixture order
    created = raw.parse()
    assert created.status == "validating"
    assert created.request_counts is not None and created.request_counts.total == 0
    assert created.usage is not None and created.usage.total_tokens == 0
    assert (created.model, created.errors, created.output_file_id, created.in_progress_at) == \
        (None, None, None, None)
    assert created.metadata == {"job": "nightly"}
    assert created.expires_at == created.created_at + 24 * 3600
    assert created.id.startswith("batch_") and len(created.id) == len(created_fixture["id"])

    states = poll(client, created)
    assert [s.status for s in states] == ["validating", "in_progress", "finalizing", "completed"]
    in_progress, finalizing, done = states[1:]
    assert in_progress.model == MODEL and in_progress.in_progress_at is not None
    assert in_progress.request_counts is not None and in_progress.request_counts.total == 3
    assert finalizing.finalizing_at is not None and finalizing.completed_at is None
    assert done.completed_at is not None
    assert done.completed_at >= done.finalizing_at >= done.in_progress_at >= done.created_at  # type: ignore[operator]
    completed_fixture = fixture_body("batches_get_completed_responses.json")
    assert set(done.model_dump()) == set(completed_fixture)
    assert done.model_dump()["request_counts"] == {"completed": 3, "failed": 0, "total": 3}
    assert (done.error_file_id, done.errors, done.failed_at, done.cancelled_at) == \
        (None, None, None, None)
    assert emulator.batches[done.id].status == "completed"
    assert emulator.batches[done.id].api_object == done.model_dump()

    output = read(client, done.output_file_id)
    recorded_line = json.loads(load_fixture(
        "openai", "files_content_batch_output_responses.json")["response"]["body"].splitlines()[0])
    for entry in output:
        assert list(entry) == list(recorded_line)
        assert list(entry["response"]) == list(recorded_line["response"])
        assert entry["id"].startswith("batch_req_") and entry["error"] is None
        assert entry["response"]["status_code"] == 200
        Response.model_validate(entry["response"]["body"])
    assert [entry["custom_id"] for entry in output] == ids(3)
    assert len({entry["response"]["body"]["id"] for entry in output}) == 3
    answer = json.loads(output[1]["response"]["body"]["output"][0]["content"][0]["text"])
    jsonschema.validate(answer, SCHEMA)
    assert answer == example_instance(SCHEMA)
    assert output[0]["response"]["body"]["output"][0]["content"][0]["text"] == \
        "Echo: question request-0"
    usage = done.usage
    assert usage is not None
    bodies = [entry["response"]["body"]["usage"] for entry in output]
    assert usage.input_tokens == sum(u["input_tokens"] for u in bodies)
    assert usage.output_tokens == sum(u["output_tokens"] for u in bodies)
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    out_file = client.files.retrieve(done.output_file_id)  # type: ignore[arg-type]
    assert (out_file.purpose, out_file.bytes) == \
        ("batch_output", len(emulator.files[out_file.id].content))


@pytest.mark.parametrize(("finish_after", "statuses"), [
    (0, ["completed"]),
    (1, ["validating", "completed"]),
    (2, ["validating", "in_progress", "completed"]),
    (5, ["validating", "in_progress", "in_progress", "in_progress", "finalizing", "completed"]),
])
def test_finish_after(client: openai.OpenAI, emulator: OpenAIEmulator, finish_after: int,
                      statuses: list[str]) -> None:
    emulator.batch_plan = BatchPlan(finish_after=finish_after)
    states = poll(client, submit(client, [line(i) for i in ids(4)]))
    assert [s.status for s in states] == statuses
    done = states[-1]
    assert done.in_progress_at is not None and done.finalizing_at is not None
    assert done.request_counts is not None and done.request_counts.completed == 4
    assert len(read(client, done.output_file_id)) == 4
    counts = [s.request_counts.completed for s in states if s.request_counts]
    assert counts == sorted(counts)  # progress never goes back
    # A terminal batch stays as it is.
    assert client.batches.retrieve(done.id) == done


def test_the_plan_is_copied_at_create(client: openai.OpenAI, emulator: OpenAIEmulator) -> None:
    batch = submit(client, [line(i) for i in ids(2)])
    emulator.batch_plan = BatchPlan(outcome="failed")
    assert poll(client, batch)[-1].status == "completed"
    assert emulator.batches[batch.id].plan == BatchPlan()


# --- item errors and planted answers --------------------------------------------------------------


def test_item_errors_bodies_and_output_status_codes(client: openai.OpenAI,
                                                    emulator: OpenAIEmulator) -> None:
    refusal = response_body(MODEL, "", output=[{
        "id": "msg_refusal", "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "refusal", "refusal": "I can't help with that."}]}])
    truncated = response_body(MODEL, '{"city": "Par', status="incomplete",
                              incomplete_reason="max_output_tokens")
    emulator.batch_plan = BatchPlan(
        item_errors={
            "request-1": (400, error_object("Invalid 'temperature': 9.", "invalid_request_error",
                                            "invalid_value", "temperature")),
            "request-4": (429, {"message": "Rate limited.", "type": "rate_limit_error",
                                "param": None, "code": None}),  # wrapped in {"error": ...}
        },
        output_status_code={"request-2": (500, error_object("The server had an error.",
                                                            "server_error", None))},
        item_bodies={"request-3": refusal, "request-5": truncated})
    done = poll(client, submit(client, [line(i) for i in ids(7)]))[-1]
    assert done.status == "completed"
    assert done.model_dump()["request_counts"] == {"total": 7, "completed": 4, "failed": 3}

    errors = read(client, done.error_file_id)
    assert [e["custom_id"] for e in errors] == ["request-1", "request-4"]
    for entry in errors:
        assert list(entry) == ["id", "custom_id", "response", "error"]
        assert entry["error"] is None
        assert list(entry["response"]) == ["status_code", "request_id", "body"]
        assert list(entry["response"]["body"]["error"]) == ["message", "type", "param", "code"]
    assert errors[0]["response"]["status_code"] == 400
    assert errors[0]["response"]["body"]["error"]["param"] == "temperature"
    assert errors[1]["response"]["status_code"] == 429
    assert errors[1]["response"]["body"]["error"]["type"] == "rate_limit_error"

    output = {e["custom_id"]: e for e in read(client, done.output_file_id)}
    assert list(output) == ["request-0", "request-2", "request-3", "request-5", "request-6"]
    assert output["request-2"]["response"]["status_code"] == 500
    assert output["request-2"]["response"]["body"]["error"]["type"] == "server_error"
    assert output["request-3"]["response"]["body"] == refusal
    parsed = Response.model_validate(output["request-5"]["response"]["body"])
    assert parsed.status == "incomplete"
    assert parsed.incomplete_details is not None
    assert parsed.incomplete_details.reason == "max_output_tokens"
    usage = done.usage
    assert usage is not None
    assert usage.input_tokens == sum(
        e["response"]["body"]["usage"]["input_tokens"] for e in output.values()
        if e["response"]["status_code"] == 200)


def test_only_failures_leave_no_output_file(client: openai.OpenAI,
                                            emulator: OpenAIEmulator) -> None:
    failure = (400, error_object("Bad.", "invalid_request_error", None))
    emulator.batch_plan = BatchPlan(item_errors=dict.fromkeys(ids(2), failure))
    done = poll(client, submit(client, [line(i) for i in ids(2)]))[-1]
    assert done.status == "completed"
    assert done.output_file_id is None
    assert len(read(client, done.error_file_id)) == 2
    assert done.model_dump()["request_counts"] == {"total": 2, "completed": 0, "failed": 2}


# --- expired and cancelled ------------------------------------------------------------------------


def test_expired_batch_writes_batch_expired_lines(client: openai.OpenAI,
                                                  emulator: OpenAIEmulator) -> None:
    emulator.batch_plan = BatchPlan(outcome="expired", done=2)
    states = poll(client, submit(client, [line(i) for i in ids(5)]))
    assert [s.status for s in states] == ["validating", "in_progress", "finalizing", "expired"]
    done = states[-1]
    assert done.expired_at is not None and done.completed_at is None
    # Items that never ran count neither as completed nor as failed.
    assert done.model_dump()["request_counts"] == {"total": 5, "completed": 2, "failed": 0}
    assert [e["custom_id"] for e in read(client, done.output_file_id)] == ids(2)
    errors = read(client, done.error_file_id)
    assert [e["custom_id"] for e in errors] == ids(5)[2:]
    for entry in errors:
        assert entry["response"] is None
        assert entry["error"] == {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window "
                       "expired."}
        assert entry["id"].startswith("batch_req_")


def test_expired_batch_can_omit_missing_lines(client: openai.OpenAI,
                                              emulator: OpenAIEmulator) -> None:
    emulator.batch_plan = BatchPlan(outcome="expired", missing_lines="omit")  # done: half
    done = poll(client, submit(client, [line(i) for i in ids(5)]))[-1]
    assert done.status == "expired"
    assert done.error_file_id is None
    assert [e["custom_id"] for e in read(client, done.output_file_id)] == ids(2)

    emulator.batch_plan = BatchPlan(outcome="expired", missing_lines="omit", done=0)
    nothing = poll(client, submit(client, [line(i) for i in ids(3)]))[-1]
    assert (nothing.status, nothing.output_file_id, nothing.error_file_id) == \
        ("expired", None, None)
    assert nothing.model_dump()["request_counts"] == {"total": 3, "completed": 0, "failed": 0}


def test_cancel_through_the_sdk(client: openai.OpenAI, emulator: OpenAIEmulator) -> None:
    emulator.batch_plan = BatchPlan(done=3, item_errors={"request-0": (
        400, error_object("Bad.", "invalid_request_error", None))})
    batch = submit(client, [line(i) for i in ids(6)])
    assert client.batches.retrieve(batch.id).status == "in_progress"
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    assert client.batches.cancel(batch.id).status == "cancelling"  # again: no change
    done = client.batches.retrieve(batch.id)
    assert done.status == "cancelled"
    assert done.cancelled_at is not None and done.finalizing_at is None
    assert done.model_dump()["request_counts"] == {"total": 6, "completed": 2, "failed": 1}
    assert [e["custom_id"] for e in read(client, done.output_file_id)] == ["request-1",
                                                                           "request-2"]
    errors = read(client, done.error_file_id)
    assert [e["custom_id"] for e in errors] == ["request-0", "request-3", "request-4",
                                                "request-5"]
    assert errors[0]["response"]["status_code"] == 400
    assert {e["error"]["code"] for e in errors[1:]} == {"batch_cancelled"}
    assert errors[1]["error"]["message"] == \
        "This request was not executed because the batch was cancelled."
    with pytest.raises(openai.ConflictError) as caught:
        client.batches.cancel(batch.id)
    assert "cancelled" in caught.value.message
    assert set(caught.value.body) == {"message", "type", "param", "code"}  # type: ignore[arg-type]


def test_cancel_while_validating_runs_nothing(client: openai.OpenAI) -> None:
    batch = submit(client, [line(i) for i in ids(4)])
    assert client.batches.cancel(batch.id).status == "cancelling"
    done = client.batches.retrieve(batch.id)
    assert done.status == "cancelled" and done.in_progress_at is None
    assert done.error_file_id is not None and done.output_file_id is None
    assert len(read(client, done.error_file_id)) == 4


def test_cancelling_an_invalid_batch_before_it_fails(client: openai.OpenAI) -> None:
    content = jsonl([line("a"), line("a")])
    batch = client.batches.create(input_file_id=upload(client, content),
                                  endpoint="/v1/responses", completion_window="24h")
    client.batches.cancel(batch.id)
    done = client.batches.retrieve(batch.id)
    assert (done.status, done.errors, done.output_file_id, done.error_file_id) == \
        ("cancelled", None, None, None)
    assert done.model_dump()["request_counts"] == {"total": 0, "completed": 0, "failed": 0}


def test_planned_cancel(client: openai.OpenAI, emulator: OpenAIEmulator) -> None:
    emulator.batch_plan = BatchPlan(outcome="cancelled", missing_lines="omit")
    states = poll(client, submit(client, [line(i) for i in ids(4)]))
    assert [s.status for s in states] == ["validating", "in_progress", "cancelling", "cancelled"]
    done = states[-1]
    assert done.cancelling_at is not None and done.cancelled_at is not None
    assert done.error_file_id is None
    assert [e["custom_id"] for e in read(client, done.output_file_id)] == ids(2)


def test_a_completed_batch_cannot_be_cancelled(client: openai.OpenAI,
                                               emulator: OpenAIEmulator) -> None:
    emulator.batch_plan = BatchPlan(finish_after=0)
    batch = submit(client, [line("a")])
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


# --- shuffled order -------------------------------------------------------------------------------


def test_shuffled_lines_keep_each_custom_id_once(client: openai.OpenAI,
                                                 emulator: OpenAIEmulator) -> None:
    failure = (400, error_object("Bad.", "invalid_request_error", None))
    plan = BatchPlan(outcome="expired", done=30, shuffle_seed=7,
                     item_errors={f"request-{i}": failure for i in range(0, 30, 4)})
    emulator.batch_plan = plan
    lines = [line(i) for i in ids(40)]
    done = poll(client, submit(client, lines))[-1]
    output = [e["custom_id"] for e in read(client, done.output_file_id)]
    errors = [e["custom_id"] for e in read(client, done.error_file_id)]
    assert sorted(output + errors) == sorted(ids(40))
    assert len(set(output + errors)) == 40
    assert output != sorted(output, key=ids(40).index)  # really shuffled
    assert errors != sorted(errors, key=ids(40).index)
    emulator.batch_plan = plan  # the same seed gives the same order
    again = poll(client, submit(client, lines))[-1]
    assert [e["custom_id"] for e in read(client, again.output_file_id)] == output


# --- validation -----------------------------------------------------------------------------------


def test_input_problems_fail_the_batch_with_line_numbers(client: openai.OpenAI) -> None:
    content = b"".join([
        json.dumps(line("a")).encode() + b"\n",
        json.dumps(line("b")).encode() + b"\n",
        json.dumps(line("a")).encode() + b"\n",                        # 3: duplicate
        b"{not json\n",                                                # 4
        b"\n",                                                         # 5: blank, skipped
        json.dumps(line("c", model="gpt-4o")).encode() + b"\n",        # 6: another model
        json.dumps({**line("d"), "method": "GET"}).encode() + b"\n",   # 7
        json.dumps({**line("e"), "url": "/v1/chat/completions"}).encode() + b"\n",  # 8
        json.dumps({**line("f"), "body": "text"}).encode() + b"\n",    # 9
        json.dumps({**line("g"), "custom_id": 7}).encode() + b"\n",    # 10
        json.dumps([1, 2]).encode() + b"\n",                           # 11
        b"\xff\xfe\n",                                                 # 12
    ])
    batch = client.batches.create(input_file_id=upload(client, content),
                                  endpoint="/v1/responses", completion_window="24h")
    states = poll(client, batch)
    assert [s.status for s in states] == ["validating", "failed"]
    failed = states[-1]
    assert failed.failed_at is not None and failed.in_progress_at is None
    assert (failed.output_file_id, failed.error_file_id) == (None, None)
    assert failed.model_dump()["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert failed.errors is not None and failed.errors.object == "list"
    assert [(e.code, e.line) for e in failed.errors.data or []] == [
        ("duplicate_custom_id", 3), ("invalid_json_line", 4), ("mismatched_model", 6),
        ("invalid_method", 7), ("mismatched_url", 8), ("invalid_body", 9),
        ("missing_custom_id", 10), ("invalid_json_line", 11), ("invalid_json_line", 12)]
    assert all(e.message and e.param is None for e in failed.errors.data or [])


def test_empty_and_oversized_files_fail(client: openai.OpenAI, emulator: OpenAIEmulator) -> None:
    empty = client.batches.create(input_file_id=upload(client, b"\n"),
                                  endpoint="/v1/responses", completion_window="24h")
    failed = poll(client, empty)[-1]
    assert failed.errors is not None
    assert [(e.code, e.line) for e in failed.errors.data or []] == [("empty_file", None)]
    emulator.batch_max_bytes = 100
    big = poll(client, submit(client, [line(i) for i in ids(3)]))[-1]
    assert big.status == "failed" and big.errors is not None
    assert [e.code for e in big.errors.data or []] == ["file_too_large"]


def test_planned_failure(client: openai.OpenAI, emulator: OpenAIEmulator) -> None:
    emulator.batch_plan = BatchPlan(outcome="failed")
    failed = poll(client, submit(client, [line("a")]))[-1]
    assert failed.status == "failed" and failed.errors is not None
    assert failed.errors.data and failed.errors.data[0].code
    custom = {"code": "token_limit_exceeded", "message": "Enqueued token limit reached.",
              "param": None, "line": None}
    emulator.batch_plan = BatchPlan(outcome="failed", failure_errors=[custom], finish_after=0)
    at_once = submit(client, [line("a")])
    assert at_once.status == "failed"
    assert at_once.model_dump()["errors"] == {"object": "list", "data": [custom]}


def test_sixty_thousand_lines(client: openai.OpenAI, emulator: OpenAIEmulator) -> None:
    content = jsonl([line(f"r{i}") for i in range(60_000)])
    file_id = upload(client, content)
    too_many = client.batches.create(input_file_id=file_id, endpoint="/v1/responses",
                                     completion_window="24h")
    failed = client.batches.retrieve(too_many.id)
    assert failed.status == "failed" and failed.errors is not None
    assert [(e.code, e.line) for e in failed.errors.data or []] == [("too_many_requests", 50_001)]

    emulator.batch_max_requests = 60_000
    emulator.batch_plan = BatchPlan(finish_after=1)
    batch = client.batches.create(input_file_id=file_id, endpoint="/v1/responses",
                                  completion_window="24h")
    done = client.batches.retrieve(batch.id)
    assert done.model_dump()["request_counts"] == {"total": 60_000, "completed": 60_000,
                                                   "failed": 0}
    output = client.files.content(done.output_file_id).content  # type: ignore[arg-type]
    assert output.count(b"\n") == 60_000


@pytest.mark.parametrize(("metadata", "param", "code"), [
    ({f"k{i}": "v" for i in range(17)}, "metadata", "object_above_max_properties"),
    ({"k" * 65: "v"}, "metadata", "string_above_max_length"),
    ({"key": "v" * 513}, "metadata.key", "string_above_max_length"),
    ({"key": 1}, "metadata.key", "invalid_type"),
])
def test_metadata_limits(client: openai.OpenAI, emulator: OpenAIEmulator,
                         metadata: dict[str, Any], param: str, code: str) -> None:
    file_id = upload(client, jsonl([line("a")]))
    with pytest.raises(openai.BadRequestError) as caught:
        client.batches.create(input_file_id=file_id, endpoint="/v1/responses",
                              completion_window="24h", metadata=metadata)
    assert caught.value.body["param"] == param  # type: ignore[index]
    assert caught.value.code == code
    assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert emulator.batches == {}


def test_metadata_at_the_limits_is_accepted(client: openai.OpenAI) -> None:
    metadata = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    assert submit(client, [line("a")], metadata=metadata).metadata == metadata


def test_completion_window_must_be_24h(client: openai.OpenAI) -> None:
    file_id = upload(client, jsonl([line("a")]))
    with pytest.raises(openai.BadRequestError) as caught:
        client.batches.create(input_file_id=file_id, endpoint="/v1/responses",
                              completion_window="48h")  # type: ignore[arg-type]
    assert caught.value.body["param"] == "completion_window"  # type: ignore[index]
    assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_endpoint_and_input_file_are_checked(client: openai.OpenAI,
                                             emulator: OpenAIEmulator) -> None:
    file_id = upload(client, jsonl([line("a")]))
    with pytest.raises(openai.BadRequestError) as caught:
        client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                              completion_window="24h")
    assert caught.value.body["param"] == "endpoint"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as missing:
        client.batches.create(input_file_id="file-nope", endpoint="/v1/responses",
                              completion_window="24h")
    assert missing.value.body["param"] == "input_file_id"  # type: ignore[index]
    answer = httpx2.post(f"{emulator.base_url}/batches", json={"endpoint": "/v1/responses"},
                         headers={"Authorization": f"Bearer {API_KEY}"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "missing_required_parameter"
    assert emulator.batches == {}


# --- errors, auth, scripted replies, listing ------------------------------------------------------


def test_unknown_ids_are_404s_with_openai_error_bodies(client: openai.OpenAI) -> None:
    for call in (lambda: client.files.retrieve("file-nope"),
                 lambda: client.files.content("file-nope"),
                 lambda: client.files.delete("file-nope"),
                 lambda: client.batches.retrieve("batch_nope"),
                 lambda: client.batches.cancel("batch_nope")):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert set(caught.value.body) == {"message", "type", "param", "code"}  # type: ignore[arg-type]
        assert caught.value.type == "invalid_request_error"


def test_a_wrong_key_is_refused_everywhere(client: openai.OpenAI,
                                          emulator: OpenAIEmulator) -> None:
    batch = submit(client, [line("a")])
    with openai.OpenAI(api_key="sk-wrong", base_url=emulator.base_url, max_retries=0) as wrong:
        for call in (lambda: wrong.files.create(file=("a.jsonl", b"{}\n"), purpose="batch"),
                     lambda: wrong.files.content(batch.input_file_id),
                     lambda: wrong.batches.create(input_file_id=batch.input_file_id,
                                                  endpoint="/v1/responses",
                                                  completion_window="24h"),
                     lambda: wrong.batches.retrieve(batch.id),
                     lambda: wrong.batches.cancel(batch.id),
                     wrong.batches.list):
            with pytest.raises(openai.AuthenticationError) as caught:
                call()
            assert caught.value.code == "invalid_api_key"
    assert len(emulator.files) == 1 and len(emulator.batches) == 1
    assert emulator.batches[batch.id].retrieves == 0  # refused retrieves do not advance it


def test_scripted_replies_come_first(client: openai.OpenAI, emulator: OpenAIEmulator) -> None:
    batch = submit(client, [line("a")])
    emulator.reply(429, error_object("Slow down.", "rate_limit_error", None),
                   headers={"retry-after": "0"})
    with pytest.raises(openai.RateLimitError):
        client.batches.retrieve(batch.id)
    assert emulator.batches[batch.id].retrieves == 0
    emulator.reply(200, b"not json at all", headers={"Content-Type": "text/plain"})
    text = httpx2.get(f"{emulator.base_url}/files/whatever/content")
    assert (text.text, text.headers["content-type"]) == ("not json at all", "text/plain")
    assert client.batches.retrieve(batch.id).status == "in_progress"


def test_batches_list_pages_newest_first(client: openai.OpenAI) -> None:
    created = [submit(client, [line("a")]).id for _ in range(3)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == created[::-1][:2]
    assert first.has_more is True
    assert [b.id for b in client.batches.list(limit=2)] == created[::-1]  # auto-pagination
    assert all(b.status == "validating" for b in client.batches.list())  # listing is no retrieve
