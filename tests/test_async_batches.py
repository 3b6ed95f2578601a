"""The async batch API (``asubmit_batch``, ``acreate_batch``, ``aget_batch``, ``arestore_batch``
and the handle's ``astatus``/``await_``/``aresults``/``aoutcomes``/``acancel``) end to end: the
real facade and transport against the three loopback emulators. The async path must give what the
sync path gives, fail as it fails, and leave the event loop free while it runs."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from returns.result import Failure

import llmbackend
from llmbackend import (
    BatchItemsError,
    BatchNotReadyError,
    BatchState,
    ConfigurationError,
    HTTPStatusError,
    LLMBackendWarning,
    LLMError,
    StructuredOutput,
    UnsupportedError,
)
from tests.anthropic_emulator import AnthropicEmulator, MessageBatchPlan
from tests.anthropic_emulator import error_body as anthropic_error_body
from tests.emulator import BatchPlan, OpenAIEmulator, Recorded, Scripted, error_body
from tests.gemini_emulator import GeminiBatchPlan, GeminiEmulator

PROMPTS = [f"Write a title for: article {i}" for i in range(5)]
IDS = ["zeta", "alpha", "mid", "b", "a"]  # not in any sorted order
Emulator = OpenAIEmulator | AnthropicEmulator | GeminiEmulator


class Title(BaseModel):
    title: str
    words: int


TITLE = StructuredOutput(pydantic_model=Title)


# --- providers ------------------------------------------------------------------------------------

#: provider -> (model, the batch_options that make a native batch, the plan class)
NATIVE: dict[str, tuple[str, dict[str, Any], type[Any]]] = {
    "openai": ("gpt-4o-mini", {}, BatchPlan),
    "anthropic": ("claude-sonnet-4-5", {"mode": "native"}, MessageBatchPlan),
    "gemini": ("gemini-2.5-flash", {}, GeminiBatchPlan),
}
PROVIDERS = list(NATIVE)


class Setup:
    """One provider wired to its emulator through the environment, as a user would."""

    def __init__(self, name: str, emulator: Any) -> None:
        self.name = name
        self.emulator = emulator
        self.model, self.native, self._plan = NATIVE[name]
        self.client = llmbackend.client(name, self.model, max_retries=0)

    def plan(self, **fields: Any) -> None:
        """Set the emulator's batch plan (for the batches created from now on)."""
        self.emulator.batch_plan = self._plan(**fields)

    def item_errors(self, custom_id: str, message: str) -> dict[str, Any]:
        """A plan's ``item_errors`` failing ``custom_id`` with ``message``, in its own shape."""
        if self.name == "openai":
            return {custom_id: (400, json.loads(error_body(message, "invalid_request_error",
                                                           "bad_request")))}
        if self.name == "anthropic":
            return {custom_id: ("invalid_request_error", message)}
        return {custom_id: (400, "INVALID_ARGUMENT", message)}

    def creates(self) -> list[Any]:
        """What every batch was created from, in order: the uploaded JSONL (OpenAI) or the
        create body (Anthropic, Gemini)."""
        if self.name == "openai":
            return [f.content for f in self.emulator.files.values() if f.purpose == "batch"]
        if self.name == "anthropic":
            return [r.json() for r in self.emulator.requests
                    if r.method == "POST" and r.path == "/v1/messages/batches"]
        return [r.json() for r in self.emulator.requests
                if r.method == "POST" and r.path.split("?")[0].endswith(":batchGenerateContent")]

    async def submit(self, inputs: Any = PROMPTS, **kwargs: Any) -> llmbackend.Batch[Any]:
        options = {**self.native, **kwargs.pop("batch_options", {})}
        return await self.client.asubmit_batch(inputs, batch_options=options, **kwargs)


@pytest.fixture(params=PROVIDERS)
def setup(request: pytest.FixtureRequest) -> Setup:
    name = request.param
    return Setup(name, request.getfixturevalue(f"{name}_env"))


# --- a slower emulator and a ticker, to see the event loop run -----------------------------------


class Slow:
    """Slows an emulator class's answers down (``delay`` seconds each, or ``delay_for(recorded)``)
    and counts the answers being served now: test plumbing on the emulator side only."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cls: type[Any], delay: float,
                 delay_for: Callable[[Recorded], float] | None = None,
                 answer_for: Callable[[Recorded], Scripted | None] | None = None) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.served = 0
        lock = threading.Lock()
        real = cls.answer
        slow = self

        def answer(emulator: Any, recorded: Recorded) -> Scripted:
            with lock:
                slow.in_flight += 1
                slow.max_in_flight = max(slow.max_in_flight, slow.in_flight)
            try:
                time.sleep(delay_for(recorded) if delay_for is not None else delay)
                planted = answer_for(recorded) if answer_for is not None else None
                return planted if planted is not None else real(emulator, recorded)
            finally:
                with lock:
                    slow.in_flight -= 1
                    slow.served += 1

        monkeypatch.setattr(cls, "answer", answer)


async def ticking(work: Awaitable[Any], probe: Callable[[], object]
                  ) -> tuple[Any, list[object]]:
    """Await ``work`` while a ticker coroutine records ``probe()`` every few milliseconds; the
    result and what the ticks saw while ``work`` ran (nothing if ``work`` blocked the loop)."""
    running = False
    stop = asyncio.Event()
    seen: list[object] = []

    async def ticker() -> None:
        while not stop.is_set():
            if running:
                seen.append(probe())
            await asyncio.sleep(0.002)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    running = True
    try:
        result = await work
    finally:
        running = False
        stop.set()
        await task
    return result, seen


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    """``asyncio.run(main())``, with a generous bound so that a hang fails instead of hanging."""
    async def bounded() -> Any:
        return await asyncio.wait_for(main(), timeout=60)

    return asyncio.run(bounded())


# --- 1. submit, wait, read: as the sync path, in input order --------------------------------------


@pytest.mark.parametrize("schema", [None, TITLE], ids=["text", "pydantic"])
def test_a_native_async_batch_gives_what_the_sync_one_gives(
    setup: Setup, schema: StructuredOutput[Any] | None
) -> None:
    setup.plan(finish_after=1, shuffle_seed=3)
    sync = setup.client.submit_batch(PROMPTS, schema=schema, batch_options=setup.native)
    assert sync.wait(poll_interval=0.01) == "completed"
    expected = sync.results()

    setup.plan(finish_after=4, shuffle_seed=3)  # running for three retrieves, then done

    async def main() -> tuple[Any, ...]:
        batch = await setup.submit(schema=schema)
        running = await batch.astatus()
        seen: list[BatchState] = []
        ended = await batch.await_(poll_interval=0.01, progress=seen.append)
        return batch, running, seen, ended, await batch.aresults(), await batch.aoutcomes()

    batch, running, seen, ended, results, outcomes = run(main)
    assert not isinstance(batch, llmbackend.CompletedBatch)
    assert batch.provider == setup.name
    assert running == "running" and not running.is_terminal
    assert ended == "completed" and ended.is_success
    assert results == expected
    if schema is None:
        assert results == [f"Echo: {p}" for p in PROMPTS]
    else:
        assert all(isinstance(item, Title) for item in results)
        assert results == [Title(title="example", words=7)] * len(PROMPTS)
    assert [o.unwrap().parsed for o in outcomes] == results
    assert all(isinstance(state, BatchState) for state in seen)
    assert seen[-1].status.is_terminal and seen[-1].status == ended
    assert len(seen) >= 2 and not any(state.status.is_terminal for state in seen[:-1])
    assert seen[-1].counts.total == len(PROMPTS)
    first, second = setup.creates()
    assert first == second  # the same requests, whichever face sent them


def test_async_handles_read_their_state_and_counts(setup: Setup) -> None:
    setup.plan(finish_after=3)

    async def main() -> tuple[Any, ...]:
        batch = await setup.submit(PROMPTS[:3])
        state = await batch.astate()
        return batch, state, await batch.await_(poll_interval=0.01), await batch.astate()

    batch, running, ended, final = run(main)
    assert isinstance(running, BatchState) and running.status == "running"
    assert final.status == ended == "completed"
    assert final.counts == llmbackend.BatchCounts(total=3, completed=3, failed=0)
    assert batch.counts == final.counts and len(batch.raw) == 1
    assert repr(batch) == f"Batch(provider={setup.name!r}, id={batch.id!r}, status='completed')"


def test_inputs_may_be_any_iterable_of_prompts(setup: Setup) -> None:
    setup.plan(finish_after=1)

    async def main() -> list[str]:
        batch = await setup.submit(p for p in PROMPTS[:3])  # a generator, read once
        await batch.await_(poll_interval=0.01)
        return await batch.aresults()

    assert run(main) == [f"Echo: {p}" for p in PROMPTS[:3]]


# --- 2. partial failures ------------------------------------------------------------------------


def test_partly_failed_batches_fail_only_their_items(setup: Setup) -> None:
    ids = list("abcde")
    setup.plan(finish_after=2, outcome="expired", done=4, shuffle_seed=1,
               item_errors=setup.item_errors("b", "bad request b"))

    async def main() -> tuple[Any, ...]:
        batch = await setup.submit(batch_options={"custom_ids": ids})
        with pytest.raises(BatchNotReadyError) as early:
            await batch.aresults()  # the first retrieve: still running
        ended = await batch.await_(poll_interval=0.01)
        outcomes = await batch.aoutcomes()
        with pytest.raises(BatchItemsError) as raised:
            await batch.aresults()
        return batch, early.value, ended, outcomes, raised.value

    batch, early, ended, outcomes, error = run(main)
    assert early.batch_id == batch.id and early.retryable
    assert "of 5 requests done" in str(early)
    assert ended == "expired" and ended.is_terminal
    assert [type(o).__name__ for o in outcomes] == [
        "Success", "Failure", "Success", "Success", "Failure"]
    assert [o.unwrap().text for i, o in enumerate(outcomes) if i in (0, 2, 3)] == [
        f"Echo: {PROMPTS[i]}" for i in (0, 2, 3)]
    failed_b, failed_e = outcomes[1].failure(), outcomes[4].failure()
    assert isinstance(failed_b, LLMError) and "bad request b" in str(failed_b)
    assert isinstance(failed_e, LLMError) and failed_e.error_code == "batch_expired"
    assert [(f.index, f.custom_id) for f in error.failures] == [(1, "b"), (4, "e")]
    assert error.succeeded == 3 and error.batch_id == batch.id
    assert "2 of 5 items failed: #1 'b'" in str(error)


def test_outcomes_before_the_end_are_not_ready(setup: Setup) -> None:
    setup.plan(finish_after=1000)

    async def main() -> BatchNotReadyError:
        batch = await setup.submit(PROMPTS[:2])
        with pytest.raises(BatchNotReadyError) as raised:
            await batch.aoutcomes()
        return raised.value

    assert run(main).status == "running"


# --- 3. cancel and timeouts -----------------------------------------------------------------------


def test_acancel_ends_the_batch_cancelled_and_keeps_what_ran(setup: Setup) -> None:
    setup.plan(finish_after=1000, done=1)

    async def main() -> tuple[Any, ...]:
        batch = await setup.submit(PROMPTS[:3])
        asked = await batch.acancel()
        ended = await batch.await_(poll_interval=0.01)
        return asked, ended, await batch.aoutcomes(), await batch.acancel()

    asked, ended, outcomes, again = run(main)
    assert asked in ("cancelling", "cancelled")
    assert ended == "cancelled" and ended.is_terminal and not ended.is_success
    assert outcomes[0].unwrap().text == f"Echo: {PROMPTS[0]}"
    assert [o.failure().error_code for o in outcomes[1:]] == ["batch_cancelled"] * 2  # type: ignore[attr-defined]
    assert again == "cancelled"  # cancelling an ended batch changes nothing


def test_await_times_out_on_a_batch_that_never_ends(setup: Setup) -> None:
    setup.plan(finish_after=10**6)

    async def main() -> tuple[Any, ...]:
        batch = await setup.submit(PROMPTS[:2])
        with pytest.raises(BatchNotReadyError, match=r"after waiting 0\.1 s") as raised:
            await batch.await_(poll_interval=0.01, timeout=0.1)
        with pytest.raises(BatchNotReadyError):  # a poll far longer than the timeout
            await batch.await_(poll_interval=3600, timeout=0.05)
        return batch, raised.value, await batch.astatus()

    batch, error, after = run(main)
    assert error.batch_id == batch.id and error.status == "running"
    assert "it goes on at the provider" in str(error)
    assert after == "running"  # timing out touches nothing at the provider


@pytest.mark.parametrize("interval", [0, -1, True, "1"])
def test_await_checks_its_poll_interval_before_polling(setup: Setup, interval: Any) -> None:
    setup.plan(finish_after=5)

    async def main() -> int:
        batch = await setup.submit(PROMPTS[:1])
        before = len(setup.emulator.requests)
        with pytest.raises(ConfigurationError, match="poll_interval"):
            await batch.await_(poll_interval=interval)
        return len(setup.emulator.requests) - before

    assert run(main) == 0


@pytest.mark.parametrize("timeout", ["5", True], ids=["string", "bool"])
def test_await_checks_its_timeout_as_it_checks_its_poll_interval(
    openai_env: OpenAIEmulator, timeout: Any
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=10**6)
    client = llmbackend.client("openai", "gpt-4o-mini")

    async def main() -> None:
        batch = await client.asubmit_batch(PROMPTS[:1])
        with pytest.raises(ConfigurationError, match="timeout"):
            await batch.await_(poll_interval=0.01, timeout=timeout)

    run(main)


def test_an_await_cancelled_by_its_caller_stops_polling(openai_env: OpenAIEmulator) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=10**6)
    client = llmbackend.client("openai", "gpt-4o-mini")

    async def main() -> tuple[int, int]:
        batch = await client.asubmit_batch(PROMPTS[:2])
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batch.await_(poll_interval=0.01), timeout=0.1)
        await asyncio.sleep(0.05)  # a poll already sent from its worker thread lands
        polls = len(openai_env.requests)
        await asyncio.sleep(0.1)
        return polls, len(openai_env.requests)

    polls, later = run(main)
    assert later == polls  # nothing polls on after the cancel


# --- 4. re-attaching: aget_batch and arestore_batch -----------------------------------------------


def test_aget_batch_reattaches_by_id_in_both_forms(setup: Setup) -> None:
    setup.plan(finish_after=1, shuffle_seed=9)

    async def main() -> tuple[Any, ...]:
        batch = await setup.submit(batch_options={"custom_ids": IDS})
        by_client = await setup.client.aget_batch(batch.id, custom_ids=IDS)
        top_level = await llmbackend.aget_batch(setup.name, batch.id, custom_ids=IDS)
        typed = await setup.client.aget_batch(batch.id, schema=TITLE, custom_ids=IDS)
        return (batch, by_client, await by_client.aresults(), top_level,
                await top_level.aresults(), typed, await typed.aoutcomes())

    batch, by_client, client_results, top_level, top_results, typed, typed_outcomes = run(main)
    expected = [f"Echo: {p}" for p in PROMPTS]
    assert by_client.id == top_level.id == typed.id == batch.id
    assert by_client.custom_ids == top_level.custom_ids == tuple(IDS)
    assert client_results == top_results == expected
    # A text batch read with a schema: every answer fails validation, in place.
    assert len(typed_outcomes) == len(PROMPTS)
    assert all(isinstance(o, Failure) for o in typed_outcomes)


def test_aget_batch_on_openai_reads_the_order_back_from_the_provider(
    openai_env: OpenAIEmulator,
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=1, shuffle_seed=9)
    client = llmbackend.client("openai", "gpt-4o-mini")

    async def main() -> tuple[Any, ...]:
        batch = await client.asubmit_batch(PROMPTS, schema=TITLE, batch_options={
            "custom_ids": IDS, "max_requests_per_batch": 2})
        resumed = await llmbackend.aget_batch("openai", batch.id)
        untyped = await resumed.aresults()
        typed = await (await client.aget_batch(batch.id, schema=TITLE)).aresults()
        return batch, resumed, untyped, typed

    batch, resumed, untyped, typed = run(main)
    assert len(batch.id.split("+")) == 3
    assert resumed.custom_ids == tuple(IDS)
    assert untyped == [{"title": "example", "words": 7}] * 5
    assert typed == [Title(title="example", words=7)] * 5


def test_arestore_batch_reattaches_a_saved_handle_in_both_forms(setup: Setup) -> None:
    setup.plan(finish_after=2, shuffle_seed=4)

    async def main() -> tuple[Any, ...]:
        batch = await setup.submit(schema=TITLE, batch_options={"custom_ids": IDS})
        saved = json.loads(json.dumps(batch.to_dict()))  # plain JSON, as kept on disk
        by_client = await setup.client.arestore_batch(saved, TITLE)
        top_level = await llmbackend.arestore_batch(saved)
        ended = await top_level.await_(poll_interval=0.01)
        return (batch, saved, by_client, ended, await by_client.aresults(),
                await top_level.aresults())

    batch, saved, by_client, ended, typed, untyped = run(main)
    assert saved["provider"] == setup.name and saved["format"] == "llmbackend.batch/1"
    assert by_client.id == batch.id and by_client.custom_ids == tuple(IDS)
    assert ended == "completed"
    assert typed == [Title(title="example", words=7)] * 5
    assert untyped == [{"title": "example", "words": 7}] * 5  # the saved JSON schema


def test_reattaching_fails_as_the_sync_calls_do(
    anthropic_env: AnthropicEmulator, openai_env: OpenAIEmulator
) -> None:
    async def main() -> list[BaseException]:
        raised = []
        for attempt in (
            lambda: llmbackend.aget_batch("anthropic", "immediate-0123"),
            lambda: llmbackend.arestore_batch({"provider": "openai", "id": "batch_1"}),
            lambda: llmbackend.client("openai", "gpt-4o-mini").aget_batch(".."),
            lambda: llmbackend.client("openai", "gpt-4o-mini").aget_batch("batch_nothere"),
        ):
            with pytest.raises(LLMError) as error:
                await attempt()
            raised.append(error.value)
        return raised

    immediate, unsaved, bad_id, unknown = run(main)
    assert isinstance(immediate, ConfigurationError) and "immediate batch" in str(immediate)
    assert isinstance(unsaved, ConfigurationError) and "Batch.to_dict" in str(unsaved)
    assert isinstance(bad_id, ConfigurationError) and "not an OpenAI batch id" in str(bad_id)
    assert isinstance(unknown, HTTPStatusError) and unknown.status == 404


# --- 5. immediate batches, on the event loop ------------------------------------------------------


def test_an_anthropic_batch_runs_at_once_concurrently_in_order(
    anthropic_env: AnthropicEmulator,
) -> None:
    anthropic_env.latency = 0.05
    prompts = [f"prompt {i}" for i in range(12)]
    client = llmbackend.client("anthropic", "claude-sonnet-4-5")

    async def main() -> tuple[Any, ...]:
        batch, seen = await ticking(client.asubmit_batch(prompts, batch_options={
            "concurrency": 4}), lambda: anthropic_env.in_flight)
        results = await batch.aresults()
        await client.aclose()
        return batch, seen, results

    batch, seen, results = run(main)
    assert isinstance(batch, llmbackend.CompletedBatch)
    assert batch.id.startswith("immediate-")
    assert results == [f"Echo: {p}" for p in prompts]
    assert 1 < anthropic_env.max_in_flight <= 4  # concurrent, never more than asked
    assert any(in_flight for in_flight in seen)  # the loop ran while requests were out
    assert batch.counts == llmbackend.BatchCounts(total=12, completed=12, failed=0)
    assert {r.path for r in anthropic_env.requests} == {"/v1/messages"}


def test_an_immediate_batch_keeps_each_failure_in_its_place(
    anthropic_env: AnthropicEmulator,
) -> None:
    anthropic_env.message_errors[PROMPTS[2]] = (400, "invalid_request_error", "bad prompt")
    client = llmbackend.client("anthropic", "claude-sonnet-4-5", max_retries=0)

    async def main() -> tuple[Any, ...]:
        batch = await client.asubmit_batch(PROMPTS, batch_options={"custom_ids": list("abcde")})
        assert await batch.await_() == "completed"  # at once: nothing to wait for
        outcomes = await batch.aoutcomes()
        with pytest.raises(BatchItemsError) as raised:
            await batch.aresults()
        return batch, outcomes, raised.value

    batch, outcomes, error = run(main)
    assert [type(o).__name__ for o in outcomes] == ["Success"] * 2 + ["Failure"] + ["Success"] * 2
    failed = outcomes[2].failure()
    assert isinstance(failed, HTTPStatusError) and failed.status == 400
    assert "bad prompt" in str(failed)
    assert [(f.index, f.custom_id) for f in error.failures] == [(2, "c")]
    assert batch.counts == llmbackend.BatchCounts(total=5, completed=4, failed=1)
    with pytest.raises(UnsupportedError, match=r"save batch\.results"):
        batch.to_dict()


def test_acreate_batch_runs_an_immediate_openai_batch_concurrently(
    openai_env: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts = [f"prompt {i}" for i in range(10)]
    bad = prompts[6]

    def later_prompts_are_faster(recorded: Recorded) -> float:
        # The answers come back out of order, so the order kept is the library's doing.
        return 0.02 + 0.01 * (len(prompts) - int(recorded.json()["input"].split()[-1]))

    def fail_one(recorded: Recorded) -> Scripted | None:
        if recorded.json()["input"] == bad:
            return Scripted(400, error_body("bad input", "invalid_request_error", "bad"))
        return None

    slow = Slow(monkeypatch, OpenAIEmulator, 0, later_prompts_are_faster, fail_one)

    async def main() -> tuple[Any, ...]:
        batch, seen = await ticking(llmbackend.acreate_batch(
            prompts, "openai", "gpt-4o-mini",
            batch_options={"mode": "immediate", "concurrency": 4}), lambda: slow.in_flight)
        return batch, seen, await batch.aoutcomes()

    batch, seen, outcomes = run(main)
    assert isinstance(batch, llmbackend.CompletedBatch)
    assert [o.unwrap().text for i, o in enumerate(outcomes) if i != 6] == [
        f"Echo: {p}" for i, p in enumerate(prompts) if i != 6]
    error = outcomes[6].failure()
    assert isinstance(error, HTTPStatusError) and error.status == 400
    assert 1 < slow.max_in_flight <= 4
    assert any(in_flight for in_flight in seen)
    assert {r.path for r in openai_env.requests} == {"/v1/responses"}


def test_gemini_runs_immediate_batches_on_the_loop_too(gemini_env: GeminiEmulator) -> None:
    gemini_env.latency = 0.03
    prompts = [f"p{i}" for i in range(8)]

    async def main() -> list[str]:
        batch = await llmbackend.acreate_batch(prompts, "gemini", "gemini-2.5-flash",
                                               schema=TITLE, batch_options={
                                                   "mode": "immediate", "concurrency": 3})
        return await batch.aresults()

    assert run(main) == [Title(title="example", words=7)] * 8
    assert 1 < gemini_env.max_in_flight <= 3


def test_cancelling_an_immediate_batch_stops_its_requests(
    anthropic_env: AnthropicEmulator,
) -> None:
    anthropic_env.latency = 0.2
    prompts = [f"prompt {i}" for i in range(20)]
    client = llmbackend.client("anthropic", "claude-sonnet-4-5")

    async def main() -> None:
        task = asyncio.create_task(client.asubmit_batch(prompts, batch_options={
            "concurrency": 2}))
        while not anthropic_env.in_flight:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
    time.sleep(0.3)  # any request already started has reached the emulator by now
    assert len(anthropic_env.requests) < len(prompts)


def test_an_immediate_async_batch_retries_as_the_sync_calls_do(
    anthropic_env: AnthropicEmulator,
) -> None:
    anthropic_env.reply(429, anthropic_error_body("slow down", "rate_limit_error"),
                        {"retry-after": "0"})
    client = llmbackend.client("anthropic", "claude-sonnet-4-5", max_retries=1)

    async def main() -> list[str]:
        batch = await client.asubmit_batch(PROMPTS[:3], batch_options={"concurrency": 1})
        return await batch.aresults()

    assert run(main) == [f"Echo: {p}" for p in PROMPTS[:3]]  # the 429 was retried
    assert len(anthropic_env.requests) == 4


def test_one_client_runs_immediate_batches_on_several_event_loops(
    anthropic_env: AnthropicEmulator,
) -> None:
    client = llmbackend.client("anthropic", "claude-sonnet-4-5")

    async def one(prompt: str) -> list[str]:
        return await (await client.asubmit_batch([prompt, prompt + "!"])).aresults()

    assert asyncio.run(one("a")) == ["Echo: a", "Echo: a!"]
    assert asyncio.run(one("b")) == ["Echo: b", "Echo: b!"]  # a new loop, a new pool


# --- 6. a native submit and wait leave the loop free ----------------------------------------------


def test_a_native_submit_and_wait_leave_the_event_loop_free(
    openai_env: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=3)
    client = llmbackend.client("openai", "gpt-4o-mini")
    slow = Slow(monkeypatch, OpenAIEmulator, 0.05)

    async def main() -> tuple[Any, ...]:
        batch, while_submitting = await ticking(client.asubmit_batch(PROMPTS), lambda:
                                                slow.in_flight)
        ended, while_waiting = await ticking(batch.await_(poll_interval=0.01),
                                             lambda: slow.in_flight)
        results, while_reading = await ticking(batch.aresults(), lambda: slow.in_flight)
        return ended, results, while_submitting, while_waiting, while_reading

    ended, results, *ticks = run(main)
    assert ended == "completed"
    assert results == [f"Echo: {p}" for p in PROMPTS]
    for seen in ticks:  # the ticker ran while the emulator was answering the library
        assert any(in_flight for in_flight in seen)


def test_the_ticker_does_see_a_blocked_loop(
    openai_env: OpenAIEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above is able to fail: the sync submit, called on the loop, blocks it."""
    openai_env.batch_plan = BatchPlan(finish_after=3)
    client = llmbackend.client("openai", "gpt-4o-mini")
    slow = Slow(monkeypatch, OpenAIEmulator, 0.05)

    async def blocking() -> llmbackend.Batch[str]:
        return client.submit_batch(PROMPTS)

    async def main() -> list[object]:
        _, seen = await ticking(blocking(), lambda: slow.in_flight)
        return seen

    assert not any(run(main))
    assert slow.served == 2  # the upload and the create were answered, the ticker saw neither


@pytest.mark.parametrize("name", ["anthropic", "gemini"])
def test_native_anthropic_and_gemini_jobs_leave_the_loop_free(
    name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = Setup(name, request.getfixturevalue(f"{name}_env"))
    setup.plan(finish_after=2)
    slow = Slow(monkeypatch, type(setup.emulator), 0.05)

    async def main() -> tuple[Any, ...]:
        batch, submitting = await ticking(setup.submit(), lambda: slow.in_flight)
        ended, waiting = await ticking(batch.await_(poll_interval=0.01), lambda: slow.in_flight)
        return ended, await batch.aresults(), submitting, waiting

    ended, results, submitting, waiting = run(main)
    assert ended == "completed"
    assert results == [f"Echo: {p}" for p in PROMPTS]
    assert any(submitting) and any(waiting)


# --- 7. progress ----------------------------------------------------------------------------------


@pytest.fixture
def no_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


def test_wait_and_await_draw_a_line_on_stderr_without_tqdm(
    openai_env: OpenAIEmulator, no_tqdm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=3)
    client = llmbackend.client("openai", "gpt-4o-mini")

    batch = client.submit_batch(PROMPTS)
    assert batch.wait(poll_interval=0.01, progress=True) == "completed"
    synced = capsys.readouterr()

    async def main() -> tuple[Any, ...]:
        batch = await client.asubmit_batch(PROMPTS)
        return batch, await batch.await_(poll_interval=0.01, progress=True)

    awaited, status = run(main)
    assert status == "completed"
    line = capsys.readouterr()
    for done, handle in ((synced, batch), (line, awaited)):
        assert done.out == ""
        assert f"\rbatch {handle.id}: 5/5 requests (100%)" in done.err
        assert done.err.endswith("\n") and done.err.count("\n") == 1


def test_await_draws_a_tqdm_bar_when_tqdm_is_installed(
    openai_env: OpenAIEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    openai_env.batch_plan = BatchPlan(finish_after=2)
    client = llmbackend.client("openai", "gpt-4o-mini")

    async def main() -> llmbackend.Batch[str]:
        batch = await client.asubmit_batch(PROMPTS)
        await batch.await_(poll_interval=0.01, progress=True)
        return batch

    batch = run(main)
    err = capsys.readouterr().err
    assert f"batch {batch.id}" in err and "5/5" in err


def test_an_immediate_batch_takes_a_ready_made_bar(
    anthropic_env: AnthropicEmulator, no_tqdm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    client = llmbackend.client("anthropic", "claude-sonnet-4-5")
    calls: list[tuple[int, int | None]] = []

    async def main() -> tuple[list[str], list[str]]:
        drawn = await client.asubmit_batch(PROMPTS, batch_options={"progress": True})
        called = await client.asubmit_batch(PROMPTS, batch_options={
            "concurrency": 2, "progress": lambda done, total: calls.append((done, total))})
        return await drawn.aresults(), await called.aresults()

    drawn, called = run(main)
    assert drawn == called == [f"Echo: {p}" for p in PROMPTS]
    err = capsys.readouterr().err
    assert "\rimmediate batch: 5/5 prompts (100%)" in err and err.endswith("\n")
    assert calls[-1] == (5, 5)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


@pytest.mark.parametrize("progress", ["bar", 3, object()])
def test_a_bad_progress_value_is_a_configuration_error(
    openai_env: OpenAIEmulator, anthropic_env: AnthropicEmulator, progress: Any
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=5)
    openai = llmbackend.client("openai", "gpt-4o-mini")
    claude = llmbackend.client("anthropic", "claude-sonnet-4-5")

    async def main() -> int:
        batch = await openai.asubmit_batch(PROMPTS[:1])
        before = len(openai_env.requests)
        with pytest.raises(ConfigurationError, match="progress") as waited:
            await batch.await_(poll_interval=0.01, progress=progress)
        assert waited.value.key == "progress"
        with pytest.raises(ConfigurationError, match="progress"):
            await claude.asubmit_batch(PROMPTS, batch_options={"progress": progress})
        return len(openai_env.requests) - before

    assert run(main) == 0  # no poll was sent
    assert anthropic_env.requests == []  # no prompt was sent
    batch = openai.submit_batch(PROMPTS[:1])
    with pytest.raises(ConfigurationError, match="progress"):
        batch.wait(poll_interval=0.01, progress=progress)


# --- 8. bad input fails as in the sync path, before anything is sent ------------------------------


BAD_CALLS: list[Any] = [
    pytest.param(PROMPTS, {"completion_window": "1h"}, None, id="bad-option-value"),
    pytest.param(PROMPTS, {"custom_ids": ["a", "a", "b", "c", "d"]}, None, id="repeated-ids"),
    pytest.param(PROMPTS, {"custom_ids": ["a"]}, None, id="too-few-ids"),
    pytest.param(PROMPTS, {"colour": "red"}, None, id="unknown-option"),
    pytest.param(PROMPTS, {"mode": "later"}, None, id="bad-mode"),
    pytest.param(PROMPTS, ["mode"], None, id="options-not-a-dict"),
    pytest.param(PROMPTS, {"mode": "immediate", "concurrency": 0}, None, id="bad-concurrency"),
    pytest.param([], None, None, id="no-inputs"),
    pytest.param("one prompt", None, None, id="a-string"),
    pytest.param(["ok", 3], None, None, id="not-a-string"),
    pytest.param(PROMPTS, None, {"temprature": 1}, id="config-typo"),
    pytest.param(PROMPTS, None, {"seed": 1}, id="unsupported-parameter"),
]


@pytest.mark.parametrize(("inputs", "options", "config"), BAD_CALLS)
def test_bad_input_fails_like_the_sync_call_before_anything_is_sent(
    openai_env: OpenAIEmulator, inputs: Any, options: Any, config: Any
) -> None:
    client = llmbackend.client("openai", "gpt-4o-mini")
    with pytest.raises(LLMError) as sync:
        client.submit_batch(inputs, config=config, batch_options=options)

    async def main() -> tuple[BaseException, BaseException]:
        with pytest.raises(LLMError) as by_client:
            await client.asubmit_batch(inputs, config=config, batch_options=options)
        with pytest.raises(LLMError) as top_level:
            await llmbackend.acreate_batch(inputs, "openai", "gpt-4o-mini", config=config,
                                           batch_options=options)
        return by_client.value, top_level.value

    for raised in run(main):
        assert type(raised) is type(sync.value)
        assert str(raised) == str(sync.value)
    assert isinstance(sync.value, ConfigurationError | UnsupportedError)
    assert openai_env.requests == []


@pytest.mark.parametrize("options", [{"mode": "native", "custom_ids": ["a.1", "b"]},
                                     {"mode": "native", "completion_window": "24h"},
                                     {"concurrency": 0}, {"custom_ids": ["a"]}])
def test_anthropic_batch_options_fail_like_the_sync_call(
    anthropic_env: AnthropicEmulator, options: dict[str, Any]
) -> None:
    client = llmbackend.client("anthropic", "claude-sonnet-4-5")
    with pytest.raises(ConfigurationError) as sync:
        client.submit_batch(["a", "b"], batch_options=options)

    async def main() -> BaseException:
        with pytest.raises(ConfigurationError) as raised:
            await client.asubmit_batch(["a", "b"], batch_options=options)
        return raised.value

    assert str(run(main)) == str(sync.value)
    assert anthropic_env.requests == []


def _dropped_warnings(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    return [w for w in caught if issubclass(w.category, LLMBackendWarning)]


def test_an_immediate_batch_warns_once_at_the_caller(openai_env: OpenAIEmulator) -> None:
    dropping = llmbackend.client("openai", "gpt-4o-mini", drop_unsupported_params=True)

    async def main() -> list[str]:
        batch = await dropping.asubmit_batch(PROMPTS, config={"seed": 1},
                                             batch_options={"mode": "immediate"})
        return await batch.aresults()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run(main) == [f"Echo: {p}" for p in PROMPTS]
    (dropped,) = _dropped_warnings(caught)
    assert "seed" in str(dropped.message)
    assert dropped.filename == __file__
    assert all("seed" not in r.json() for r in openai_env.requests)


def test_a_native_batch_warns_at_the_caller_as_the_sync_one_does(
    openai_env: OpenAIEmulator,
) -> None:
    openai_env.batch_plan = BatchPlan(finish_after=1)
    dropping = llmbackend.client("openai", "gpt-4o-mini", drop_unsupported_params=True)

    async def main() -> llmbackend.Batch[str]:
        return await dropping.asubmit_batch(PROMPTS, config={"seed": 1})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(main)
    (dropped,) = _dropped_warnings(caught)
    assert "seed" in str(dropped.message)
    assert dropped.filename == __file__


# --- 9. local models ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_client(tiny_model: Path) -> Iterator[llmbackend.Client]:
    client = llmbackend.client("transformers", str(tiny_model), apply_chat_template=True)
    yield client
    client.close()


@pytest.mark.runtime
def test_a_local_batch_runs_in_a_worker_thread_in_order(
    local_client: llmbackend.Client, tiny_model: Path
) -> None:
    prompts = ["Hello", "Why is the sky blue?", "Tell me a story about a small red boat"]
    config = {"max_tokens": 8}
    sync = local_client.submit_batch(prompts, config=config).results()
    one_by_one = [local_client.get_response(p, config) for p in prompts]

    async def main() -> tuple[Any, ...]:
        batch, seen = await ticking(local_client.asubmit_batch(
            prompts, config, batch_options={"custom_ids": ["x", "y", "z"]}), lambda: True)
        top_level = await llmbackend.acreate_batch(prompts, "transformers", str(tiny_model),
                                                   config, apply_chat_template=True)
        return batch, seen, await batch.aresults(), await top_level.aresults()

    batch, seen, results, top_results = run(main)
    assert isinstance(batch, llmbackend.CompletedBatch)
    assert results == top_results == sync == one_by_one
    assert all(isinstance(text, str) for text in results)
    assert batch.custom_ids == ("x", "y", "z")
    assert seen  # the loop ticked while the model ran in its worker thread
    with pytest.raises(ConfigurationError, match="immediate"):
        run(lambda: local_client.asubmit_batch(prompts, batch_options={"mode": "native"}))
