"""Checked by mypy --strict in tests/test_typing.py (never run): the public API's inferred types."""

from __future__ import annotations

from typing import Any, assert_type

from pydantic import BaseModel
from returns.pipeline import is_successful
from returns.result import Result, Success

import llmbackend
from llmbackend import Generation, LLMError, StructuredOutput
from llmbackend.pipeline import generate as pipeline_generate
from llmbackend.providers.openai import PROVIDER, build_response_request, parse_response
from llmbackend.types import GenerationRequest, WireRequest, WireResponse


class Summary(BaseModel):
    title: str


summary_schema = StructuredOutput(pydantic_model=Summary)
dict_schema = StructuredOutput(schema={"type": "object"})
assert_type(summary_schema, StructuredOutput[Summary])
assert_type(dict_schema, StructuredOutput[Any])

# Seed face: str without a schema, the model's type with one.
assert_type(llmbackend.get_response("openai", "m", "hi"), str)
assert_type(llmbackend.get_response("openai", "m", "hi", {"temperature": 0.1}), str)
assert_type(llmbackend.get_response("openai", "m", "hi", schema=summary_schema), Summary)
assert_type(llmbackend.get_response("openai", "m", "hi", None, summary_schema), Summary)

client = llmbackend.client("openai", "m", api_key="k")
assert_type(client.get_response("hi"), str)
assert_type(client.get_response("hi", schema=summary_schema), Summary)

# Typed face: Result[Generation[T], LLMError].
text_result = llmbackend.generate("openai", "m", "hi")
assert_type(text_result, Result[Generation[str], LLMError])
model_result = client.generate("hi", schema=summary_schema)
assert_type(model_result, Result[Generation[Summary], LLMError])

# returns' Success/Failure patterns bind Any for type checkers; is_successful + unwrap/failure
# keeps the precise types (this is what docs/typed-face.md recommends).
if is_successful(model_result):
    assert_type(model_result.unwrap().parsed.title, str)
else:
    assert_type(model_result.failure(), LLMError)

title = model_result.map(lambda g: g.parsed.title)
assert_type(title, Result[str, LLMError])

# Pure builders and parsers compose with any sender.
request = GenerationRequest(model="m", input="hi")
assert_type(build_response_request(request), Result[WireRequest, LLMError])


def send(wire: WireRequest) -> Result[WireResponse, LLMError]:
    return Success(WireResponse(status=200, body=b"{}"))


assert_type(parse_response(request, WireResponse(status=200)), Result[Generation[str], LLMError])
assert_type(pipeline_generate(PROVIDER, request, send), Result[Generation[Any], LLMError])

# Batches: the handle carries the answer type through to results() and outcomes().
text_batch = client.submit_batch(["a", "b"])
assert_type(text_batch, llmbackend.Batch[str])
assert_type(text_batch.results(), list[str])
model_batch = client.submit_batch(["a"], schema=summary_schema, batch_options={"custom_ids": ["x"]})
assert_type(model_batch.results(), list[Summary])
assert_type(model_batch.outcomes(), list[Result[Generation[Summary], LLMError]])
assert_type(llmbackend.create_batch(["a"], "openai", "m").results(), list[str])
assert_type(llmbackend.create_batch(["a"], "openai", "m", schema=summary_schema).results(),
            list[Summary])
assert_type(llmbackend.get_batch("openai", "batch_1", summary_schema).results(), list[Summary])
assert_type(client.get_batch("batch_1").status(), llmbackend.BatchStatus)
assert_type(model_batch.wait(poll_interval=1.0, timeout=5.0), llmbackend.BatchStatus)
assert_type(model_batch.counts.total, int)

# Immediate batches are Batch handles too.
claude = llmbackend.client("anthropic", "claude-sonnet-4-5", structured_output="tool")
assert_type(claude.submit_batch(["a"], schema=summary_schema).results(), list[Summary])
assert_type(llmbackend.get_batch("anthropic", "msgbatch_1", custom_ids=["a"]).custom_ids,
            tuple[str, ...])
gemini_batch = llmbackend.client("gemini", "gemini-2.5-flash").submit_batch(["a"])
assert_type(gemini_batch.results(), list[str])
saved = text_batch.to_dict()
assert_type(llmbackend.restore_batch(saved).results(), list[Any])
assert_type(llmbackend.restore_batch(saved, summary_schema).results(), list[Summary])


async def async_faces() -> None:
    assert_type(await llmbackend.aget_response("openai", "m", "hi"), str)
    assert_type(await llmbackend.aget_response("openai", "m", "hi", schema=summary_schema),
                Summary)
    assert_type(await client.agenerate("hi", schema=summary_schema),
                Result[Generation[Summary], LLMError])
    assert_type(await client.aget_response("hi"), str)
    assert_type(await client.aget_response("hi", timeout=5.0, max_retries=0), str)
    assert_type(await client.asubmit_batch(["a"], schema=summary_schema),
                llmbackend.Batch[Summary])
    async_batch = await llmbackend.acreate_batch(["a"], "openai", "m")
    assert_type(await async_batch.aresults(), list[str])
    assert_type(await async_batch.await_(poll_interval=1.0), llmbackend.BatchStatus)
    assert_type(await async_batch.astatus(), llmbackend.BatchStatus)
    assert_type(await (await llmbackend.aget_batch("openai", "b", summary_schema)).aoutcomes(),
                list[Result[Generation[Summary], LLMError]])
    assert_type(await llmbackend.arestore_batch(saved, summary_schema), llmbackend.Batch[Summary])
    async for item in client.amap(["a"], schema=summary_schema, concurrency=4):
        assert_type(item, Result[Generation[Summary], LLMError])
    async for text_item in client.amap(["a"]):
        assert_type(text_item, Result[Generation[str], LLMError])


# Fan-out: one Result per input, typed by the schema; per-call options on every single call.
for mapped in client.map(["a", "b"], schema=summary_schema, concurrency=16, progress=True):
    assert_type(mapped, Result[Generation[Summary], LLMError])
assert_type(list(client.map(iter(["a"]))), list[Result[Generation[str], LLMError]])
assert_type(client.get_response("hi", timeout=1.5, max_retries=3), str)
assert_type(client.generate("hi", schema=summary_schema, timeout=2.0),
            Result[Generation[Summary], LLMError])

# Messages in: a list-of-dicts literal, Message values, a TypedDict and a mixed batch, no casts.
conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
assert_type(llmbackend.get_response("openai", "m", conversation), str)
assert_type(llmbackend.get_response("openai", "m", [{"role": "user", "content": "Hi"}]), str)
assert_type(llmbackend.get_response("openai", "m", conversation, schema=summary_schema), Summary)
assert_type(client.generate([llmbackend.Message(role="user", content="Hi")]),
            Result[Generation[str], LLMError])
typed_message: llmbackend.MessageDict = {"role": "assistant", "content": "Hello"}
assert_type(client.get_response([{"role": "user", "content": "Hi"}, typed_message,
                                 {"role": "user", "content": "More"}]), str)
mixed: list[llmbackend.Input] = ["plain", conversation, [llmbackend.Message("user", "x")]]
for mixed_outcome in client.map(mixed):
    assert_type(mixed_outcome, Result[Generation[str], LLMError])
assert_type(client.submit_batch(["plain", conversation]), llmbackend.Batch[str])
assert_type(llmbackend.create_batch([conversation, "plain"], "openai", "m"),
            llmbackend.Batch[str])


async def messages_async() -> None:
    assert_type(await client.aget_response(conversation), str)
    assert_type(await llmbackend.agenerate("openai", "m", conversation),
                Result[Generation[str], LLMError])
    assert_type(await client.asubmit_batch([conversation]), llmbackend.Batch[str])


# Streaming: a TextStream of str deltas, typed by the schema through to its generation.
text_stream = llmbackend.stream("openai", "m", "hi")
assert_type(text_stream, llmbackend.TextStream[str])
with text_stream as opened:
    for delta in opened:
        assert_type(delta, str)
    assert_type(opened.generation, Generation[str])
    assert_type(opened.text, str)
    assert_type(opened.finished, bool)
model_stream = client.stream("hi", schema=summary_schema, timeout=5.0, max_retries=1)
assert_type(model_stream, llmbackend.TextStream[Summary])
assert_type(model_stream.generation.parsed, Summary)
assert_type(model_stream.generation.parsed.title, str)
assert_type(model_stream.result(), Result[Generation[Summary], LLMError])
assert_type(llmbackend.stream("openai", "m", conversation, None, summary_schema),
            llmbackend.TextStream[Summary])
assert_type(client.stream(conversation, {"temperature": 0.1}), llmbackend.TextStream[str])
stream_error = llmbackend.StreamError(message="broke", text="so far")
assert_type(stream_error.text, str)
assert_type(stream_error.error, LLMError | None)


async def stream_async() -> None:
    async with llmbackend.astream("openai", "m", "hi") as text_astream:
        assert_type(text_astream, llmbackend.AsyncTextStream[str])
        async for text_delta in text_astream:
            assert_type(text_delta, str)
        assert_type(await text_astream.result(), Result[Generation[str], LLMError])
    async with client.astream("hi", schema=summary_schema) as model_astream:
        assert_type(model_astream, llmbackend.AsyncTextStream[Summary])
        assert_type(await model_astream.result(), Result[Generation[Summary], LLMError])
        assert_type(model_astream.generation.parsed, Summary)
    model_astream_top = llmbackend.astream("openai", "m", "hi", schema=summary_schema)
    assert_type(model_astream_top, llmbackend.AsyncTextStream[Summary])
    await model_astream_top.aclose()
