"""Effectful: immediate batches: every prompt sent now as its own request, concurrently
(``fanout``), and the ``CompletedBatch`` handle of outcomes already in memory.

Strategy: an immediate batch ran in this process, so its job only holds its outcomes; nothing
of it is kept at the provider and its handle cannot be saved. ``completed_batch`` is the one way
to make such a handle: the local models' batches (``llmbackend.backends``) use it too.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from attrs import evolve
from returns.result import Result, Success

from llmbackend import pipeline
from llmbackend.batching import (
    BatchCounts,
    BatchState,
    BatchStatus,
    ImmediateOptions,
    default_custom_ids,
    encoded_items,
    parse_immediate_options,
)
from llmbackend.errors import LLMError, UnsupportedError, unwrap
from llmbackend.fanout import aordered_map, ordered_map
from llmbackend.jobs.handle import CompletedBatch, Keep, Outcome
from llmbackend.logs import log
from llmbackend.messages import CheckedInput
from llmbackend.progress import progress_callback
from llmbackend.providers import Provider
from llmbackend.transport import HTTPTransport
from llmbackend.types import Generation, GenerationRequest

__all__ = ["CompletedJob", "arun_immediate_batch", "completed_batch", "run_immediate_batch"]


class CompletedJob:
    """A batch that already ran in this process (immediate mode): its outcomes are in memory."""

    def __init__(self, provider: str, custom_ids: Sequence[str],
                 outcomes: Sequence[Result[Generation[Any], LLMError]],
                 display_name: str | None = None) -> None:
        self.id = f"immediate-{secrets.token_hex(12)}"
        self.provider = provider
        self.display_name = display_name
        self._custom_ids = tuple(custom_ids)
        self._outcomes = list(outcomes)
        succeeded = sum(1 for outcome in outcomes if isinstance(outcome, Success))
        self._state = BatchState(
            status=BatchStatus("completed"),
            counts=BatchCounts(total=len(outcomes), completed=succeeded,
                               failed=len(outcomes) - succeeded))

    def snapshot(self) -> BatchState:
        """Its state: completed, with its counts (it never changes)."""
        return self._state

    def refresh(self) -> Result[BatchState, LLMError]:
        return Success(self._state)

    def cancel(self) -> Result[BatchState, LLMError]:
        return Success(self._state)

    def custom_ids(self) -> Result[tuple[str, ...], LLMError]:
        return Success(self._custom_ids)

    def collect(self, keep: Keep) -> Result[list[Outcome], LLMError]:
        return Success([keep(outcome) for outcome in self._outcomes])

    def to_dict(self) -> dict[str, Any]:
        raise UnsupportedError(
            message="an immediate batch ran in this process and nothing of it is kept at the "
            "provider, so its handle cannot be restored elsewhere: save batch.results() "
            "instead", provider=self.provider, parameter="to_dict")


def completed_batch(provider_name: str, custom_ids: Sequence[str] | None,
                    outcomes: Sequence[Result[Generation[Any], LLMError]],
                    display_name: str | None = None) -> CompletedBatch[Any]:
    """The handle of a batch that has run in this process: ``outcomes`` in input order, named by
    ``custom_ids`` (``None``: the default ``request-0``, ``request-1``...)."""
    ids = custom_ids if custom_ids is not None else default_custom_ids(len(outcomes))
    job = CompletedJob(provider_name, ids, outcomes, display_name)
    return CompletedBatch(job, job.snapshot())


def run_immediate_batch(
    provider: Provider, transport: HTTPTransport, request: GenerationRequest,
    inputs: Sequence[CheckedInput], *, batch_options: Mapping[str, Any],
    warn: Callable[[str], None],
) -> CompletedBatch[Any]:
    """Effectful: every input as its own request, ``concurrency`` at a time on worker threads
    (``fanout.ordered_map``); a completed handle.

    The shared request is built before anything is sent, so a config the provider cannot take
    fails at once (and a dropped parameter warns once, not once per input); so is every
    conversation, and one the provider refuses raises naming it (``batching.encoded_items``).
    """
    options, custom_ids = _immediate_start(provider, request, inputs, batch_options, warn)

    def run(prompt: CheckedInput) -> Result[Generation[Any], LLMError]:
        return pipeline.generate(provider, evolve(request, input=prompt), transport.send)

    update, close = progress_callback(options.progress, "immediate batch")
    try:
        outcomes = list(ordered_map(run, inputs, options.concurrency, progress=update,
                                    total=len(inputs)))
    finally:
        close()
    return _immediate_end(provider, custom_ids, outcomes, options)


async def arun_immediate_batch(
    provider: Provider, transport: HTTPTransport, request: GenerationRequest,
    inputs: Sequence[CheckedInput], *, batch_options: Mapping[str, Any],
    warn: Callable[[str], None],
) -> CompletedBatch[Any]:
    """Effectful, async: ``run_immediate_batch`` as tasks on the running event loop."""
    options, custom_ids = _immediate_start(provider, request, inputs, batch_options, warn)

    async def run(prompt: CheckedInput) -> Result[Generation[Any], LLMError]:
        return await pipeline.agenerate(provider, evolve(request, input=prompt), transport.asend)

    update, close = progress_callback(options.progress, "immediate batch")
    try:
        outcomes = [outcome async for outcome in aordered_map(
            run, inputs, options.concurrency, progress=update, total=len(inputs))]
    finally:
        close()
    return _immediate_end(provider, custom_ids, outcomes, options)


def _immediate_start(provider: Provider, request: GenerationRequest,
                     inputs: Sequence[CheckedInput],
                     batch_options: Mapping[str, Any], warn: Callable[[str], None]
                     ) -> tuple[ImmediateOptions, tuple[str, ...]]:
    options = parse_immediate_options(batch_options, len(inputs))
    custom_ids = options.custom_ids or default_custom_ids(len(inputs))

    def buildable(_: str, item: CheckedInput) -> Result[None, LLMError]:
        # A prompt builds as the shared request does; a conversation may be refused on its own
        # (a prefill where the provider takes none), and is named, before anything is sent.
        if isinstance(item, str):
            return Success(None)
        return provider.build_generation(evolve(request, input=item)).map(lambda _: None)

    # The shared request (its input "") first: a config the provider refuses fails once, for
    # all, and a dropped parameter warns once; then each conversation on its own.
    shared = unwrap(provider.build_generation(request))
    for message in shared.warnings:
        warn(message)
    for _ in encoded_items(buildable, custom_ids, inputs):
        pass
    return options, custom_ids


def _immediate_end(provider: Provider, custom_ids: Sequence[str],
                   outcomes: Sequence[Result[Generation[Any], LLMError]],
                   options: ImmediateOptions) -> CompletedBatch[Any]:
    log().info("ran an immediate batch of %d requests on %s (concurrency %d)", len(outcomes),
               provider.name, options.concurrency)
    return completed_batch(provider.name, custom_ids, outcomes, options.display_name)
