"""Effectful: the ``Batch`` handle that ``submit_batch``, ``get_batch`` and ``restore_batch``
return, the ``BatchJob`` protocol every provider's job meets, and the wait loop.

Strategy: a handle holds a job (which talks to the provider) and the last ``BatchState`` it
saw; everything it says comes from one of the two. Every ``Result`` a job returns is turned
into a value or an exception here, by ``llmbackend.errors.unwrap``: the jobs stay on the
railway, the handle is the seed-style face. Every error it returns or raises first passes
through the handle's ``redact`` (the transport's ``redact_error``: no credential is shown).
Nothing outside this module reads or sets a handle's fields: ``in_order`` and ``redacting``
derive a new handle instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from attrs import evolve
from returns.result import Result

from llmbackend.batching import (
    BatchCounts,
    BatchState,
    BatchStatus,
    describe_failures,
    item_failures,
    reorder,
)
from llmbackend.checks import check_poll_interval, check_progress, check_wait_timeout
from llmbackend.errors import BatchItemsError, BatchNotReadyError, LLMError, unwrap
from llmbackend.jobs.saved import HANDLE_FORMAT
from llmbackend.types import Generation

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "Batch",
    "BatchJob",
    "CompletedBatch",
    "Keep",
    "Outcome",
    "keep_parsed",
    "keep_whole",
    "keep_without_raw",
]

T = TypeVar("T")
Outcome = Result[Any, LLMError]
#: What to keep of each item's outcome while collecting (the whole ``Generation``, or less).
Keep = Callable[[Result[Generation[Any], LLMError]], Outcome]

#: The default pause between two status checks in ``Batch.wait``.
DEFAULT_POLL_INTERVAL = 30.0


def keep_whole(outcome: Result[Generation[Any], LLMError]) -> Outcome:
    return outcome


def keep_without_raw(outcome: Result[Generation[Any], LLMError]) -> Outcome:
    return outcome.map(lambda generation: evolve(generation, raw={}))


def keep_parsed(outcome: Result[Generation[Any], LLMError]) -> Outcome:
    # results() keeps only the answers: a large batch's raw bodies would not fit in memory.
    return outcome.map(lambda generation: generation.parsed)


class BatchJob(Protocol):
    """What a ``Batch`` handle needs from a provider's batch job (one per provider)."""

    @property
    def id(self) -> str: ...

    @property
    def provider(self) -> str: ...

    def refresh(self) -> Result[BatchState, LLMError]: ...

    def cancel(self) -> Result[BatchState, LLMError]: ...

    def custom_ids(self) -> Result[tuple[str, ...], LLMError]: ...

    def collect(self, keep: Keep) -> Result[list[Outcome], LLMError]: ...

    def to_dict(self) -> dict[str, Any]: ...


class Batch(Generic[T]):
    """Effectful: a handle on a batch job, live at the provider.

    - ``id``: the id to keep; ``llmbackend.get_batch(provider, id)`` re-attaches to it from any
      process. A job split into several provider batches has one id joining theirs with ``+``.
    - ``status()``: the current ``BatchStatus``, fetched; it compares equal to the provider's
      names (``"completed"``, ``"SUCCEEDED"``, ``"canceled"``...). ``state()`` also gives the
      counts and the provider's objects; ``counts`` and ``raw`` keep those of the last fetch.
    - ``wait(poll_interval, timeout)``: polls until the batch ends; ``cancel()`` asks it to stop.
    - ``results()``: the answers in input order (text, or the parsed objects with a schema);
      raises ``BatchItemsError`` naming the failed items when any failed, and
      ``BatchNotReadyError`` before the batch has ended.
    - ``outcomes()``: every item's ``Result[Generation[T], LLMError]`` in input order, failures
      included: the typed way to read a partly failed (e.g. expired) batch.
    """

    def __init__(self, job: BatchJob, state: BatchState | None = None,
                 order: Sequence[str] | None = None,
                 redact: Callable[[LLMError], LLMError] | None = None) -> None:
        self._job = job
        self._state = state
        # The custom ids in the order the caller wants the items (``get_batch(custom_ids=...)``).
        self._order = tuple(order) if order is not None else None
        # What every error goes through before it is shown (the transport's secrets out).
        self._redact = redact

    def in_order(self, custom_ids: Sequence[str]) -> Batch[T]:
        """A new handle on the same job whose items come in the order of ``custom_ids`` (which
        must name exactly the batch's items, each once: checked when results are read)."""
        return type(self)(self._job, self._state, custom_ids, self._redact)

    def redacting(self, redact: Callable[[LLMError], LLMError]) -> Batch[T]:
        """A new handle on the same job whose errors (raised, and in ``outcomes()``) pass
        through ``redact`` (the transport's ``redact_error``) before they are shown."""
        return type(self)(self._job, self._state, self._order, redact)

    def _unwrap(self, result: Result[Any, LLMError]) -> Any:
        """``errors.unwrap``, with the error redacted first."""
        return unwrap(self._shown(result))

    def _shown(self, result: Result[Any, LLMError]) -> Result[Any, LLMError]:
        return result if self._redact is None else result.alt(self._redact)

    @property
    def id(self) -> str:
        return self._job.id

    @property
    def provider(self) -> str:
        return self._job.provider

    def __repr__(self) -> str:
        status = f", status={self._state.status.value!r}" if self._state is not None else ""
        return f"Batch(provider={self.provider!r}, id={self.id!r}{status})"

    def state(self) -> BatchState:
        """Fetch the batch's status, counts and provider objects."""
        self._state = self._unwrap(self._job.refresh())
        return self._state

    def status(self) -> BatchStatus:
        """Fetch the batch's current status."""
        return self.state().status

    @property
    def counts(self) -> BatchCounts:
        """Request counts as of the last fetch (fetched now if there was none)."""
        return (self._state or self.state()).counts

    @property
    def raw(self) -> tuple[Mapping[str, Any], ...]:
        """The provider's batch objects as of the last fetch, one per provider batch."""
        return (self._state or self.state()).raw

    @property
    def custom_ids(self) -> tuple[str, ...]:
        """The custom id of every input, in input order (read back from the provider when the
        handle was re-attached by id)."""
        return self._order if self._order is not None else self._unwrap(self._job.custom_ids())

    def _collect(self, keep: Keep) -> list[Outcome]:
        outcomes = [self._shown(outcome) for outcome in self._unwrap(self._job.collect(keep))]
        if self._order is None:
            return outcomes
        return reorder(outcomes, self._unwrap(self._job.custom_ids()), self._order)

    def to_dict(self) -> dict[str, Any]:
        """The handle as plain JSON data, to save and give to ``llmbackend.restore_batch`` in
        another process: the provider, the batch id(s), the custom ids in input order, the model,
        the JSON schema and the provider options the answers are read with. Never a credential
        or a URL: the restoring process brings its own."""
        return {"format": HANDLE_FORMAT, **self._job.to_dict(),
                **({"order": list(self._order)} if self._order is not None else {})}

    def wait(self, poll_interval: float = DEFAULT_POLL_INTERVAL,
             timeout: float | None = None,
             progress: Callable[[BatchState], object] | bool | None = None) -> BatchStatus:
        """Poll every ``poll_interval`` seconds until the batch has ended; its final status.

        ``progress``, when given, is called with the ``BatchState`` (status and counts) of every
        poll, the last one included: a hook for a log line or your own bar; ``True`` shows a
        ready-made bar (tqdm if installed, else a line on stderr). Off by default.
        Raises ``BatchNotReadyError`` when ``timeout`` seconds pass first (the batch goes on).
        """
        poll, deadline = _wait_plan(poll_interval, timeout)
        report, close = _state_progress(progress, self.id)
        try:
            while True:
                state = self.state()
                pause = self._next_poll(state, report, poll, timeout, deadline)
                if pause is None:
                    return state.status
                time.sleep(pause)
        finally:
            close()

    async def await_(self, poll_interval: float = DEFAULT_POLL_INTERVAL,
                     timeout: float | None = None,
                     progress: Callable[[BatchState], object] | bool | None = None
                     ) -> BatchStatus:
        """Async ``wait`` (named with PEP 8's trailing underscore, ``await`` being a keyword):
        the event loop runs other tasks between polls, and each poll runs in a worker thread."""
        import asyncio

        poll, deadline = _wait_plan(poll_interval, timeout)
        report, close = _state_progress(progress, self.id)
        try:
            while True:
                state = await asyncio.to_thread(self.state)
                pause = self._next_poll(state, report, poll, timeout, deadline)
                if pause is None:
                    return state.status
                await asyncio.sleep(pause)
        finally:
            close()

    def _next_poll(self, state: BatchState, report: Callable[[BatchState], object] | None,
                   poll_interval: float, timeout: float | None, deadline: float | None
                   ) -> float | None:
        """Seconds to the next poll, ``None`` once ``state`` has ended; ``BatchNotReadyError``
        past the deadline."""
        if report is not None:
            report(state)
        status = state.status
        if status.is_terminal:
            return None
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            raise BatchNotReadyError(
                message=f"batch {self.id} is still {status.value!r} after waiting "
                f"{timeout:g} s; it goes on at the provider: wait again later",
                provider=self.provider, batch_id=self.id, status=status.value,
            )
        return max(poll_interval if deadline is None else min(poll_interval, deadline - now),
                   0.0)

    async def astate(self) -> BatchState:
        """Async ``state()`` (the request runs in a worker thread)."""
        import asyncio

        return await asyncio.to_thread(self.state)

    async def astatus(self) -> BatchStatus:
        """Async ``status()``."""
        return (await self.astate()).status

    async def acancel(self) -> BatchStatus:
        """Async ``cancel()``."""
        import asyncio

        return await asyncio.to_thread(self.cancel)

    async def aoutcomes(self, keep_raw: bool = True) -> list[Result[Generation[T], LLMError]]:
        """Async ``outcomes()``: the result files are downloaded and read in a worker thread."""
        import asyncio

        return await asyncio.to_thread(self.outcomes, keep_raw)

    async def aresults(self) -> list[T]:
        """Async ``results()``: the result files are downloaded and read in a worker thread."""
        import asyncio

        return await asyncio.to_thread(self.results)

    def cancel(self) -> BatchStatus:
        """Ask the provider to stop the batch; its status afterwards (usually ``cancelling``).
        Requests already run keep their results, which ``outcomes()`` gives once it has ended."""
        self._state = self._unwrap(self._job.cancel())
        return self._state.status

    def outcomes(self, keep_raw: bool = True) -> list[Result[Generation[T], LLMError]]:
        """Every item's ``Result`` in input order: the ``Generation`` of each success and the
        ``LLMError`` of each failure. Raises ``BatchNotReadyError`` before the batch has ended,
        or the ``LLMError`` of a download that failed.

        ``keep_raw=False`` drops each answer's ``raw`` provider body as it is read (``raw`` is
        then ``{}``): the memory of a large batch is then that of its answers, as in
        ``results()``, with usage, finish reasons and the failures still there."""
        self._require_ended()
        return self._collect(keep_whole if keep_raw else keep_without_raw)

    def results(self) -> list[T]:
        """The answers in input order: text, or the parsed objects when a schema was given.

        Raises ``BatchItemsError`` naming every failed item when any failed (``outcomes()``
        gives the others), and ``BatchNotReadyError`` before the batch has ended.
        """
        status = self._require_ended()
        outcomes = self._collect(keep_parsed)
        failures = item_failures(outcomes, self.custom_ids)
        if failures:
            raise BatchItemsError(
                message=f"batch {self.id} ended {status.value!r} and "
                f"{describe_failures(failures, len(outcomes))}. batch.outcomes() gives every "
                "item's Result, the successes included.",
                provider=self.provider, batch_id=self.id, status=status.value,
                failures=failures, succeeded=len(outcomes) - len(failures),
            )
        return [outcome.unwrap() for outcome in outcomes]

    def _require_ended(self) -> BatchStatus:
        status = self.status()
        if not status.is_terminal:
            counts = self.counts
            raise BatchNotReadyError(
                message=f"batch {self.id} is still {status.value!r} "
                f"({counts.completed + counts.failed} of {counts.total} requests done); "
                "results come once it has ended: poll batch.status() or call batch.wait()",
                provider=self.provider, batch_id=self.id, status=status.value,
            )
        return status


class CompletedBatch(Batch[T]):
    """Effectful: a batch that has already run, at once, as concurrent calls (the ``immediate``
    mode: Anthropic's default, and anywhere with ``batch_options={"mode": "immediate"}``).

    Its status is ``"completed"`` from the start and its results are in memory; ``wait`` and
    ``cancel`` return at once. Its id names this process's handle only: there is nothing to
    resume at the provider.
    """


def _wait_plan(poll_interval: object, timeout: object) -> tuple[float, float | None]:
    """``wait``'s checked poll interval and its deadline on the monotonic clock (``None``: no
    timeout)."""
    poll = check_poll_interval(poll_interval)
    seconds = check_wait_timeout(timeout)
    return poll, None if seconds is None else time.monotonic() + seconds


def _state_progress(progress: object, batch_id: str
                    ) -> tuple[Callable[[BatchState], object] | None, Callable[[], None]]:
    """``wait``'s ``progress`` as a ``BatchState`` callback and a close function."""
    checked = check_progress(progress, "wait")
    if checked is None or checked is False:
        return None, lambda: None
    if checked is True:
        from llmbackend.progress import ProgressBar

        bar = ProgressBar(f"batch {batch_id}", "request")

        def report(state: BatchState) -> None:
            counts = state.counts
            bar.update(counts.completed + counts.failed, counts.total or None,
                       state.status.value)

        return report, bar.close
    return checked, lambda: None
