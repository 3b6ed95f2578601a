"""The async faces (``aget_response``, ``agenerate``, and the client's twins): the same builders,
parsers and retries as the sync ones, over an async pool, really concurrent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import BaseModel
from returns.result import Success

import llmbackend
from llmbackend import HTTPStatusError, StructuredOutput
from tests.anthropic_emulator import AnthropicEmulator
from tests.emulator import OpenAIEmulator, error_body
from tests.gemini_emulator import GeminiEmulator


class Item(BaseModel):
    title: str


def test_the_async_seed_face_answers_as_the_sync_one(openai_env: OpenAIEmulator) -> None:
    async def main() -> tuple[str, Item, str]:
        text = await llmbackend.aget_response("openai", "gpt-4o-mini", "hi")
        client = llmbackend.client("openai", "gpt-4o-mini")
        item = await client.aget_response("title?", schema=StructuredOutput(pydantic_model=Item))
        sync = client.get_response("hi")  # the sync path works inside a running loop too
        await client.aclose()
        return text, item, sync

    text, item, sync = asyncio.run(main())
    assert text == sync == "Echo: hi"
    assert item == Item(title="example")
    bodies = [r.json() for r in openai_env.requests]
    assert bodies[0] == bodies[2]  # the same request, whichever face sent it


def test_async_calls_run_concurrently(anthropic_env: AnthropicEmulator) -> None:
    anthropic_env.latency = 0.2
    client = llmbackend.client("anthropic", "claude-sonnet-4-5")

    async def main() -> list[str]:
        answers = await asyncio.gather(*(client.aget_response(f"p{i}") for i in range(8)))
        await client.aclose()
        return list(answers)

    assert asyncio.run(main()) == [f"Echo: p{i}" for i in range(8)]
    assert anthropic_env.max_in_flight > 1  # in flight together, not one after another


def test_async_retries_and_typed_failures(openai_env: OpenAIEmulator) -> None:
    openai_env.reply(429, error_body("slow down", "rate_limit_error", None),
                     {"retry-after-ms": "5"})
    client = llmbackend.client("openai", "gpt-4o-mini", max_retries=2)

    async def main() -> tuple[object, object]:
        first = await client.agenerate("a")  # retried after the 429
        openai_env.reply(400, error_body("bad", "invalid_request_error", "bad_param", "input"))
        second = await client.agenerate("b")  # a 400 is never retried
        return first, second

    first, second = asyncio.run(main())
    assert isinstance(first, Success) and first.unwrap().text == "Echo: a"
    error = second.failure()  # type: ignore[attr-defined]
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.attempts) == (400, 1)
    assert len(openai_env.requests) == 3

    with pytest.raises(HTTPStatusError):
        openai_env.reply(401, error_body("nope", "invalid_request_error", "invalid_api_key"))
        asyncio.run(client.aget_response("c"))


def test_a_client_serves_several_event_loops(gemini_env: GeminiEmulator) -> None:
    client = llmbackend.client("gemini", "gemini-2.5-flash")
    assert asyncio.run(client.aget_response("one")) == "Echo: one"
    assert asyncio.run(client.aget_response("two")) == "Echo: two"  # a new loop, a new pool


@pytest.mark.runtime
def test_a_local_model_answers_asynchronously(tiny_model: Path) -> None:
    async def main() -> list[str]:
        client = llmbackend.client("transformers", str(tiny_model), apply_chat_template=True)
        answers = await asyncio.gather(*(client.aget_response(p, {"max_tokens": 6})
                                         for p in ("Hello", "Hi")))
        sync = client.get_response("Hello", {"max_tokens": 6})
        await client.aclose()
        return [*answers, sync]

    first, second, sync = asyncio.run(main())
    assert first == sync
    assert isinstance(second, str)


def test_a_client_is_an_async_context_manager(openai_env: OpenAIEmulator) -> None:
    async def main() -> tuple[str, object]:
        async with llmbackend.client("openai", "gpt-4o-mini") as client:
            answer = await client.aget_response("hi")
            pool = client._backend.transport._pool
            assert len(pool.async_clients) == 1  # opened by the call, for this loop
        return answer, len(pool.async_clients)

    answer, left_open = asyncio.run(main())
    assert answer == "Echo: hi"
    assert left_open == 0  # closed on the way out
