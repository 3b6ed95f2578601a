"""Effectful: provider batch jobs and the ``Batch`` handle that ``submit_batch``, ``create_batch``
and ``get_batch`` return. Uploads, polls, cancels and downloads over the one transport, using the
pure builders and parsers of ``llmbackend.providers.openai_batch`` and ``llmbackend.batching``.

Strategy: the input JSONL is written in provider-sized parts to spooled temporary files (memory up
to a few MB, disk beyond), all of them before the first upload, so that a bad input fails before
anything is sent and any job size runs in bounded memory. Result files are streamed the same way
and read line by line; every line is matched to its input by custom id.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, Generic, Protocol, TypeVar

from attrs import evolve
from returns.result import Failure, Result, Success

from llmbackend import pipeline
from llmbackend.batching import (
    BatchCounts,
    BatchState,
    BatchStatus,
    ImmediateOptions,
    OutcomeCollector,
    combine_statuses,
    describe_failures,
    item_failures,
    natural_key,
    parse_immediate_options,
    reorder,
    split_lines,
)
from llmbackend.errors import (
    BatchItemsError,
    BatchNotReadyError,
    ConfigurationError,
    LLMError,
    ProviderError,
    TransportError,
    UnsupportedError,
)
from llmbackend.fanout import aordered_map, ordered_map
from llmbackend.logs import log
from llmbackend.pipeline import attach_parsed
from llmbackend.progress import progress_callback
from llmbackend.providers import Provider
from llmbackend.providers import anthropic_batch as anthropic_wire
from llmbackend.providers import gemini_batch as gemini_wire
from llmbackend.providers import openai_batch as wire
from llmbackend.providers.anthropic import parse_error as anthropic_parse_error
from llmbackend.providers.gemini import parse_error as gemini_parse_error
from llmbackend.providers.openai import parse_error
from llmbackend.transport import HTTPTransport
from llmbackend.types import (
    ConfigInput,
    Generation,
    GenerationRequest,
    StructuredOutput,
    WireRequest,
    WireResponse,
)

T = TypeVar("T")
Outcome = Result[Any, LLMError]
#: What to keep of each item's outcome while collecting (the whole ``Generation``, or less).
Keep = Callable[[Result[Generation[Any], LLMError]], Outcome]

#: Spooled files stay in memory up to this size, then move to disk.
SPOOL_MEMORY = 8 * 1024 * 1024
CHUNK = 1024 * 1024
#: The default pause between two status checks in ``Batch.wait``.
DEFAULT_POLL_INTERVAL = 30.0


def unwrap(result: Result[T, LLMError]) -> T:
    """The value of a ``Success``; raises the ``LLMError`` of a ``Failure``."""
    if isinstance(result, Failure):
        raise result.failure()
    return result.unwrap()


class BatchJob(Protocol):
    """What a ``Batch`` handle needs from a provider's batch job (one per provider)."""

    id: str
    provider: str

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
                 order: Sequence[str] | None = None) -> None:
        self._job = job
        self._state = state
        # The custom ids in the order the caller wants the items (``get_batch(custom_ids=...)``).
        self._order = tuple(order) if order is not None else None

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
        self._state = unwrap(self._job.refresh())
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
        return self._order if self._order is not None else unwrap(self._job.custom_ids())

    def _collect(self, keep: Keep) -> list[Outcome]:
        outcomes = unwrap(self._job.collect(keep))
        if self._order is None:
            return outcomes
        return reorder(outcomes, unwrap(self._job.custom_ids()), self._order)

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
        deadline = self._wait_deadline(poll_interval, timeout)
        report, close = _state_progress(progress, self.id)
        try:
            while True:
                state = self.state()
                pause = self._next_poll(state, report, poll_interval, timeout, deadline)
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

        deadline = self._wait_deadline(poll_interval, timeout)
        report, close = _state_progress(progress, self.id)
        try:
            while True:
                state = await asyncio.to_thread(self.state)
                pause = self._next_poll(state, report, poll_interval, timeout, deadline)
                if pause is None:
                    return state.status
                await asyncio.sleep(pause)
        finally:
            close()

    @staticmethod
    def _wait_deadline(poll_interval: float, timeout: float | None) -> float | None:
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float) or not (
                poll_interval > 0):
            raise ConfigurationError(message="poll_interval must be a positive number of seconds",
                                     key="poll_interval")
        if timeout is None:
            return None
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (
                timeout >= 0):
            raise ConfigurationError(
                message=f"timeout must be None (wait as long as it takes) or a number of "
                f"seconds >= 0, got {timeout!r}", key="timeout")
        return time.monotonic() + timeout

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
        self._state = unwrap(self._job.cancel())
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


def _state_progress(progress: object, batch_id: str
                    ) -> tuple[Callable[[BatchState], object] | None, Callable[[], None]]:
    """``wait``'s ``progress`` as a ``BatchState`` callback and a close function."""
    if progress is None or progress is False:
        return None, lambda: None
    if progress is True:
        from llmbackend.progress import ProgressBar

        bar = ProgressBar(f"batch {batch_id}", "request")

        def report(state: BatchState) -> None:
            counts = state.counts
            bar.update(counts.completed + counts.failed, counts.total or None,
                       state.status.value)

        return report, bar.close
    if callable(progress):
        return progress, lambda: None
    raise ConfigurationError(
        message="progress must be True (a progress bar), a callable(BatchState) or None; got "
        f"{type(progress).__name__}", key="progress")


#: The ``format`` of ``Batch.to_dict()``.
HANDLE_FORMAT = "llmbackend.batch/1"


def request_to_dict(request: GenerationRequest | None) -> dict[str, Any]:
    """What of a batch's request its answers are read with: model, schema, provider options."""
    if request is None:
        return {}
    schema = request.schema
    return {"model": request.model,
            "schema": None if schema is None else {"name": schema.name,
                                                   "schema": dict(schema.schema)},
            "options": dict(request.options)}


def request_from_dict(data: Mapping[str, Any], schema: StructuredOutput[Any] | None
                      ) -> GenerationRequest:
    """The request to read a restored batch's answers with: ``schema`` when given (to get a
    Pydantic model's objects back), else the saved JSON schema."""
    saved = data.get("schema")
    if schema is None and isinstance(saved, Mapping):
        schema = StructuredOutput(schema=saved["schema"], name=str(saved.get("name")))
    options = data.get("options")
    return GenerationRequest(model=str(data.get("model") or ""), input="", schema=schema,
                             options=dict(options) if isinstance(options, Mapping) else {})


def keep_whole(outcome: Result[Generation[Any], LLMError]) -> Outcome:
    return outcome


def keep_without_raw(outcome: Result[Generation[Any], LLMError]) -> Outcome:
    return outcome.map(lambda generation: evolve(generation, raw={}))


def keep_parsed(outcome: Result[Generation[Any], LLMError]) -> Outcome:
    # results() keeps only the answers: a large batch's raw bodies would not fit in memory.
    return outcome.map(lambda generation: generation.parsed)


# --- OpenAI ---------------------------------------------------------------------------------------


class _Part(Protocol):
    """What a multi-part job reads from one provider batch object."""

    id: str
    status: BatchStatus
    counts: BatchCounts
    raw: Mapping[str, Any]


class _PartedJob:
    """Effectful: what the OpenAI and Anthropic jobs share: a job made of provider batches
    ("parts"), fetched, cancelled and summed the same way; each subclass names its provider's
    builders and parser."""

    provider: str
    id: str
    part_ids: tuple[str, ...]
    _transport: HTTPTransport
    _request: GenerationRequest | None
    _part_custom_ids: list[tuple[str, ...] | None]
    _objects: list[Any]

    def _retrieve(self, part_id: str) -> WireRequest:
        raise NotImplementedError

    def _cancel(self, part_id: str) -> WireRequest:
        raise NotImplementedError

    def _parse(self, response: WireResponse) -> Result[Any, LLMError]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "id": self.id,
                "parts": [{"id": part_id, "custom_ids": None if ids is None else list(ids)}
                          for part_id, ids in zip(self.part_ids, self._part_custom_ids,
                                                  strict=True)],
                **request_to_dict(self._request)}

    def refresh(self) -> Result[BatchState, LLMError]:
        for index, part_id in enumerate(self.part_ids):
            fetched = self._transport.send(self._retrieve(part_id)).bind(self._parse)
            if isinstance(fetched, Failure):
                return fetched
            self._objects[index] = fetched.unwrap()
        return Success(self._state())

    def cancel(self) -> Result[BatchState, LLMError]:
        refreshed = self.refresh()
        if isinstance(refreshed, Failure):
            return refreshed
        for index, part in enumerate(self._objects):
            if part is None or part.status.is_terminal or part.status == "cancelling":
                continue
            cancelled = self._transport.send(self._cancel(part.id)).bind(self._parse)
            if isinstance(cancelled, Failure):
                return cancelled
            self._objects[index] = cancelled.unwrap()
        return Success(self._state())

    def _state(self) -> BatchState:
        objects: list[_Part] = [part for part in self._objects if part is not None]
        counts = BatchCounts()
        for part in objects:
            counts += part.counts
        return BatchState(status=combine_statuses([part.status for part in objects]),
                          counts=counts, raw=tuple(part.raw for part in objects))


class OpenAIBatchJob(_PartedJob):
    """Effectful: one OpenAI batch job, made of one or more provider batches ("parts").

    Made by ``submit_openai_batch`` (which knows the inputs) or from an id alone (which reads the
    custom ids, model and schema back from the parts' input files when results are collected).
    """

    provider = "openai"

    def _retrieve(self, part_id: str) -> WireRequest:
        return wire.build_retrieve_batch(part_id)

    def _cancel(self, part_id: str) -> WireRequest:
        return wire.build_cancel_batch(part_id)

    def _parse(self, response: WireResponse) -> Result[Any, LLMError]:
        return wire.parse_batch_object(response)

    def __init__(
        self,
        transport: HTTPTransport,
        part_ids: Sequence[str],
        *,
        schema: StructuredOutput[Any] | None = None,
        request: GenerationRequest | None = None,
        part_custom_ids: Sequence[tuple[str, ...]] | None = None,
    ) -> None:
        self._transport = transport
        self.part_ids = tuple(part_ids)
        self.id = wire.join_batch_ids(self.part_ids)
        self._schema = schema if schema is not None else (
            request.schema if request is not None else None)
        self._request = request
        self._part_custom_ids: list[tuple[str, ...] | None] = (
            list(part_custom_ids) if part_custom_ids is not None else [None] * len(part_ids))
        self._part_requests: list[GenerationRequest | None] = [request] * len(part_ids)
        self._objects: list[wire.OpenAIBatch | None] = [None] * len(part_ids)


    def custom_ids(self) -> Result[tuple[str, ...], LLMError]:
        ids: list[str] = []
        for index in range(len(self.part_ids)):
            loaded = self._load_inputs(index)
            if isinstance(loaded, Failure):
                return loaded
            ids.extend(loaded.unwrap())
        return Success(tuple(ids))

    def collect(self, keep: Keep) -> Result[list[Outcome], LLMError]:
        if any(part is None for part in self._objects):
            refreshed = self.refresh()
            if isinstance(refreshed, Failure):
                return refreshed
        outcomes: list[Outcome] = []
        for index, part in enumerate(self._objects):
            assert part is not None
            collected = self._collect_part(index, part, keep)
            if isinstance(collected, Failure):
                return collected
            outcomes.extend(collected.unwrap())
        return Success(outcomes)

    def _collect_part(self, index: int, part: wire.OpenAIBatch, keep: Keep
                      ) -> Result[list[Outcome], LLMError]:
        if part.endpoint not in (None, wire.ENDPOINT):
            return Failure(UnsupportedError(
                message=f"batch {part.id} runs {part.endpoint}; llmbackend reads batches of "
                f"{wire.ENDPOINT} only", provider=self.provider, parameter="batch_id"))
        loaded = self._load_inputs(index)
        if isinstance(loaded, Failure):
            return loaded
        custom_ids = loaded.unwrap()
        request = self._part_requests[index]
        assert request is not None  # set by _load_inputs
        schema = self._schema if self._schema is not None else request.schema
        collector: OutcomeCollector[Any] = OutcomeCollector(custom_ids)
        for file_id in (part.output_file_id, part.error_file_id):
            if file_id is None:
                continue
            with _spool() as sink:
                fetched = self._fetch(file_id, sink)
                if isinstance(fetched, Failure):
                    return fetched
                read_result_lines(collector, _lines(sink), request, schema, keep)
        if collector.unknown_ids or collector.unreadable_lines:
            log().warning(
                "batch %s: %d result line(s) name a custom id that is not among the inputs "
                "(first: %r) and %d line(s) could not be read; none of them was used",
                part.id, len(collector.unknown_ids), collector.unknown_ids[:1],
                collector.unreadable_lines)
        return Success(collector.finish(
            lambda position, custom_id: wire.missing_result_error(
                part, custom_id, position + 1, collector.unreadable_lines)))

    def _load_inputs(self, index: int) -> Result[tuple[str, ...], LLMError]:
        """The custom ids of part ``index`` in input order, and the request to parse its answers
        with; read back from the part's input file for a job re-attached by id."""
        known = self._part_custom_ids[index]
        if known is not None and self._part_requests[index] is not None:
            return Success(known)
        part = self._objects[index]
        if part is None:
            refreshed = self.refresh()
            if isinstance(refreshed, Failure):
                return refreshed
            part = self._objects[index]
        assert part is not None
        if part.input_file_id is None:
            return Failure(ProviderError(
                message=f"batch {part.id} names no input file, so its inputs cannot be read "
                "back", provider=self.provider, error_type="batch_error"))
        ids: list[str] = []
        first_body: Mapping[str, Any] | None = None
        with _spool() as sink:
            fetched = self._fetch(part.input_file_id, sink)
            if isinstance(fetched, Failure):
                return fetched
            for number, line in enumerate(_lines(sink), start=1):
                item = wire.parse_input_line(line)
                if item.custom_id is None:
                    return Failure(ProviderError(
                        message=f"line {number} of batch {part.id}'s input file has no "
                        "custom_id", provider=self.provider, error_type="batch_error"))
                ids.append(item.custom_id)
                if first_body is None:
                    first_body = item.body
        if len(set(ids)) != len(ids):
            return Failure(ProviderError(
                message=f"batch {part.id}'s input file repeats custom ids, so its results "
                "cannot be matched to inputs", provider=self.provider, error_type="batch_error"))
        model = first_body.get("model") if first_body is not None else None
        self._part_custom_ids[index] = tuple(ids)
        self._part_requests[index] = GenerationRequest(
            model=model if isinstance(model, str) else "",
            input="",
            schema=self._schema if self._schema is not None else wire.schema_from_body(
                first_body),
        )
        return Success(tuple(ids))

    def _fetch(self, file_id: str, sink: IO[bytes]) -> Result[WireResponse, LLMError]:
        fetched = self._transport.download(wire.build_file_content(file_id), sink)
        if isinstance(fetched, Success) and not 200 <= fetched.unwrap().status < 300:
            return Failure(parse_error(fetched.unwrap()))
        return fetched


def read_result_lines(collector: OutcomeCollector[Any], lines: Iterable[bytes],
                      request: GenerationRequest, schema: StructuredOutput[Any] | None,
                      keep: Keep) -> None:
    """Parse OpenAI result lines (output or error file) into ``collector``, each answer
    validated against ``schema`` like a synchronous one."""
    for line in lines:
        custom_id, outcome = wire.parse_result_line(request, line)
        if schema is not None:
            outcome = outcome.bind(lambda generation: attach_parsed(schema, generation))
        collector.add(custom_id, keep(outcome), "openai")


def write_parts(lines: Iterable[bytes], max_count: int, max_bytes: int, separator: bytes = b""
                ) -> tuple[list[IO[bytes]], list[int], list[int]]:
    """The input lines written to one spooled file per part (``separator`` between two lines of
    a part), with each part's size and count. The caller closes the files."""
    files: list[IO[bytes]] = []
    sizes: list[int] = []
    counts: list[int] = []
    try:
        for part, line in split_lines(lines, max_count=max_count, max_bytes=max_bytes):
            if part == len(files):
                files.append(_spool())
                sizes.append(0)
                counts.append(0)
            elif separator:
                sizes[part] += files[part].write(separator)
            files[part].write(line)
            sizes[part] += len(line)
            counts[part] += 1
    except BaseException:
        for sink in files:
            sink.close()
        raise
    return files, sizes, counts


def _spool() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)


def _lines(sink: IO[bytes]) -> Iterator[bytes]:
    sink.seek(0)
    for line in sink:
        if line.strip():
            yield line


def _chunks(sink: IO[bytes]) -> Callable[[], Iterator[bytes]]:
    def read() -> Iterator[bytes]:
        sink.seek(0)
        while chunk := sink.read(CHUNK):
            yield chunk

    return read


def submit_openai_batch(
    transport: HTTPTransport,
    request: GenerationRequest,
    inputs: Sequence[str],
    batch_options: Mapping[str, Any] | None,
    warn: Callable[[str], None],
) -> Batch[Any]:
    """Effectful: write, upload and start an OpenAI batch of ``inputs`` with ``request``'s
    model, config and schema; split into several provider batches when it exceeds OpenAI's
    limits. Every input is checked and written before the first upload. When a later part fails
    to start, the parts already started are cancelled and the error is raised."""
    options = wire.parse_batch_options(batch_options, len(inputs))
    request = evolve(request, config=wire.apply_system(request.config, options.system))
    custom_ids = options.custom_ids or wire.default_custom_ids(len(inputs))
    encoder = unwrap(wire.build_line_encoder(request))
    for message in encoder.warnings:
        warn(message)

    files, sizes, counts = write_parts(encoder.lines(custom_ids, inputs),
                                       options.max_requests_per_batch, wire.MAX_FILE_BYTES)
    try:
        started: list[wire.OpenAIBatch] = []
        for part, sink in enumerate(files):
            outcome = _start_part(transport, sink, sizes[part], options, part=part,
                                  parts=len(files))
            if isinstance(outcome, Failure):
                raise _abandon(transport, started, outcome.failure())
            started.append(outcome.unwrap())
    finally:
        for sink in files:
            sink.close()

    job = OpenAIBatchJob(transport, [part.id for part in started], request=request,
                         part_custom_ids=_split(custom_ids, counts))
    return _started(job, started, len(inputs))


def _start_part(transport: HTTPTransport, sink: IO[bytes], size: int,
                options: wire.OpenAIBatchOptions, *, part: int, parts: int
                ) -> Result[wire.OpenAIBatch, LLMError]:
    upload = wire.build_file_upload(
        f"llmbackend-batch-{part + 1}-of-{parts}.jsonl", size, _chunks(sink),
        boundary=f"llmbackend-{secrets.token_hex(16)}",
    )
    return transport.send(upload).bind(wire.parse_file_object).bind(
        lambda file_id: _create(transport, file_id, options, part=part, parts=parts))


def _create(transport: HTTPTransport, file_id: str, options: wire.OpenAIBatchOptions, *,
            part: int, parts: int) -> Result[wire.OpenAIBatch, LLMError]:
    """Create the batch on ``file_id``. When the answer is lost (no response), the batch may
    exist anyway: it is looked up by its input file before the create is sent again, so that a
    lost answer never makes a second (billed) batch."""
    create = wire.build_create_batch(file_id, options, part, parts)
    created = transport.send(create).bind(wire.parse_batch_object)
    if not isinstance(created, Failure) or not isinstance(created.failure(), TransportError):
        return created
    listed = transport.send(wire.build_list_batches()).bind(wire.parse_batch_list)
    if isinstance(listed, Failure):
        return created
    found = wire.find_batch(listed.unwrap(), file_id)
    if found is not None:
        log().info("the answer to creating batch %s was lost; found it by its input file",
                   found.id)
        return Success(found)
    return transport.send(create).bind(wire.parse_batch_object)


def _abandon(transport: HTTPTransport, started: Sequence[wire.OpenAIBatch],
             error: LLMError) -> LLMError:
    """Cancel the parts already started (best effort) and say so in ``error``."""
    if not started:
        return error
    for part in started:
        transport.send(wire.build_cancel_batch(part.id))
    ids = ", ".join(part.id for part in started)
    return evolve(error, message=f"{error.message} (while starting part {len(started) + 1} of a "
                  f"split batch; the parts already started were cancelled: {ids})")


def _split(custom_ids: Sequence[str], counts: Sequence[int]) -> list[tuple[str, ...]]:
    """The custom ids of each part, given how many inputs each part holds."""
    parts: list[tuple[str, ...]] = []
    offset = 0
    for count in counts:
        parts.append(tuple(custom_ids[offset:offset + count]))
        offset += count
    return parts


def _started(job: OpenAIBatchJob | AnthropicBatchJob, started: Sequence[Any], count: int
             ) -> Batch[Any]:
    """The handle of a multi-part job whose parts have all started (their objects known)."""
    job._objects = list(started)
    log().info("started %s batch %s: %d requests in %d part(s)", job.provider, job.id, count,
               len(started))
    return Batch(job, job._state())


def attach_openai_batch(transport: HTTPTransport, batch_id: str,
                        schema: StructuredOutput[Any] | None) -> Batch[Any]:
    """Effectful: a handle on an existing OpenAI batch (or split job) from its id alone."""
    job = OpenAIBatchJob(transport, wire.split_batch_id(batch_id), schema=schema)
    return Batch(job, unwrap(job.refresh()))


def check_inputs(inputs: object) -> list[str]:
    """The prompts of a batch as a list, after checking each is a string."""
    if isinstance(inputs, str | bytes) or not hasattr(inputs, "__iter__"):
        raise ConfigurationError(
            message="inputs must be a list of prompts (strings), got "
            f"{type(inputs).__name__}", key="inputs")
    prompts = list(inputs)
    if not prompts:
        raise ConfigurationError(message="inputs is empty: a batch needs at least one prompt",
                                 key="inputs")
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise ConfigurationError(
                message=f"input #{index} must be a string (a prompt), got "
                f"{type(prompt).__name__}", key="inputs")
    return prompts


def batch_request(model: str, config: ConfigInput, schema: StructuredOutput[Any] | None,
                  drop_unsupported: bool) -> GenerationRequest:
    """The request every item of a batch shares (its ``input`` is set per item)."""
    from llmbackend.convert import config_from

    return GenerationRequest(model=model, input="", config=config_from(config), schema=schema,
                             drop_unsupported=drop_unsupported)


# --- immediate batches ----------------------------------------------------------------------------

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


class CompletedBatch(Batch[T]):
    """Effectful: a batch that has already run, at once, as concurrent calls (the ``immediate``
    mode: Anthropic's default, and anywhere with ``batch_options={"mode": "immediate"}``).

    Its status is ``"completed"`` from the start and its results are in memory; ``wait`` and
    ``cancel`` return at once. Its id names this process's handle only: there is nothing to
    resume at the provider.
    """


def run_immediate_batch(
    provider: Provider, transport: HTTPTransport, request: GenerationRequest,
    inputs: Sequence[str], *, batch_options: Mapping[str, Any], warn: Callable[[str], None],
) -> CompletedBatch[Any]:
    """Effectful: every input as its own request, ``concurrency`` at a time on worker threads
    (``fanout.ordered_map``); a completed handle.

    The first request is built before anything is sent, so a config the provider cannot take
    fails at once (and a dropped parameter warns once, not once per input).
    """
    options, custom_ids = _immediate_start(provider, request, inputs, batch_options, warn)

    def run(prompt: str) -> Result[Generation[Any], LLMError]:
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
    inputs: Sequence[str], *, batch_options: Mapping[str, Any], warn: Callable[[str], None],
) -> CompletedBatch[Any]:
    """Effectful, async: ``run_immediate_batch`` as tasks on the running event loop."""
    options, custom_ids = _immediate_start(provider, request, inputs, batch_options, warn)

    async def run(prompt: str) -> Result[Generation[Any], LLMError]:
        return await pipeline.agenerate(provider, evolve(request, input=prompt), transport.asend)

    update, close = progress_callback(options.progress, "immediate batch")
    try:
        outcomes = [outcome async for outcome in aordered_map(
            run, inputs, options.concurrency, progress=update, total=len(inputs))]
    finally:
        close()
    return _immediate_end(provider, custom_ids, outcomes, options)


def _immediate_start(provider: Provider, request: GenerationRequest, inputs: Sequence[str],
                     batch_options: Mapping[str, Any], warn: Callable[[str], None]
                     ) -> tuple[ImmediateOptions, tuple[str, ...]]:
    options = parse_immediate_options(batch_options, len(inputs))
    custom_ids = options.custom_ids or tuple(f"request-{i}" for i in range(len(inputs)))
    first = unwrap(provider.build_generation(evolve(request, input=inputs[0])))
    for message in first.warnings:
        warn(message)
    return options, custom_ids


def _immediate_end(provider: Provider, custom_ids: Sequence[str],
                   outcomes: Sequence[Result[Generation[Any], LLMError]],
                   options: ImmediateOptions) -> CompletedBatch[Any]:
    job = CompletedJob(provider.name, custom_ids, outcomes, options.display_name)
    log().info("ran an immediate batch of %d requests on %s (concurrency %d)", len(outcomes),
               provider.name, options.concurrency)
    return CompletedBatch(job, job._state)


# --- Anthropic ------------------------------------------------------------------------------------


class AnthropicBatchJob(_PartedJob):
    """Effectful: one native Anthropic Message Batches job, made of one or more provider
    batches. Made by ``submit_anthropic_batch`` (which knows the custom ids) or from an id alone
    (which reads them from the results once the batch has ended)."""

    provider = "anthropic"
    _request: GenerationRequest

    def _retrieve(self, part_id: str) -> WireRequest:
        return anthropic_wire.build_retrieve_batch(part_id)

    def _cancel(self, part_id: str) -> WireRequest:
        return anthropic_wire.build_cancel_batch(part_id)

    def _parse(self, response: WireResponse) -> Result[Any, LLMError]:
        return anthropic_wire.parse_batch_object(response)

    def __init__(
        self,
        transport: HTTPTransport,
        part_ids: Sequence[str],
        *,
        request: GenerationRequest,
        part_custom_ids: Sequence[tuple[str, ...]] | None = None,
    ) -> None:
        self._transport = transport
        self.part_ids = tuple(part_ids)
        self.id = anthropic_wire.PART_SEPARATOR.join(self.part_ids)
        self._request = request
        self._part_custom_ids: list[tuple[str, ...] | None] = (
            list(part_custom_ids) if part_custom_ids is not None else [None] * len(part_ids))
        self._objects: list[anthropic_wire.AnthropicBatch | None] = [None] * len(part_ids)


    def custom_ids(self) -> Result[tuple[str, ...], LLMError]:
        if all(ids is not None for ids in self._part_custom_ids):
            return Success(tuple(i for ids in self._part_custom_ids if ids for i in ids))
        collected = self.collect(keep_whole)  # reads the ids from the results
        if isinstance(collected, Failure):
            return collected
        return self.custom_ids()

    def collect(self, keep: Keep) -> Result[list[Outcome], LLMError]:
        if any(part is None for part in self._objects):
            refreshed = self.refresh()
            if isinstance(refreshed, Failure):
                return refreshed
        outcomes: list[Outcome] = []
        for index, part in enumerate(self._objects):
            assert part is not None
            if not part.ended:
                return Failure(BatchNotReadyError(
                    message=f"batch {part.id} has not ended, so its results (and, for a batch "
                    "resumed by id, its custom ids) are not known yet; call batch.wait()",
                    provider=self.provider, batch_id=self.id, status=part.status.value))
            collected = self._collect_part(index, part, keep)
            if isinstance(collected, Failure):
                return collected
            outcomes.extend(collected.unwrap())
        return Success(outcomes)

    def _collect_part(self, index: int, part: anthropic_wire.AnthropicBatch, keep: Keep
                      ) -> Result[list[Outcome], LLMError]:
        with _spool() as sink:
            fetched = self._transport.download(anthropic_wire.build_results(part.id), sink)
            if isinstance(fetched, Success) and not 200 <= fetched.unwrap().status < 300:
                return Failure(anthropic_parse_error(fetched.unwrap()))
            if isinstance(fetched, Failure):
                return fetched
            lines = [anthropic_wire.parse_result_line(self._request, line)
                     for line in _lines(sink)]
        known = self._part_custom_ids[index]
        if known is None:
            # Resumed by id: the ids are those the results name, in natural order.
            known = tuple(sorted({cid for cid, _ in lines if cid is not None}, key=natural_key))
            self._part_custom_ids[index] = known
        schema = self._request.schema
        collector: OutcomeCollector[Any] = OutcomeCollector(known)
        for custom_id, outcome in lines:
            validated = outcome if schema is None else outcome.bind(
                lambda generation: attach_parsed(schema, generation))
            collector.add(custom_id, keep(validated), self.provider)
        if collector.unknown_ids or collector.unreadable_lines:
            log().warning("batch %s: %d result line(s) name an unknown custom id and %d could "
                          "not be read; none of them was used", part.id,
                          len(collector.unknown_ids), collector.unreadable_lines)
        return Success(collector.finish(
            lambda _, custom_id: anthropic_wire.missing_result_error(
                part, custom_id, collector.unreadable_lines)))


def submit_anthropic_batch(
    transport: HTTPTransport, request: GenerationRequest, inputs: Sequence[str],
    batch_options: Mapping[str, Any], warn: Callable[[str], None],
) -> Batch[Any]:
    """Effectful: start a native Message Batches job of ``inputs``; split into several batches
    above Anthropic's limits. Every input is checked and encoded before the first request; when
    a later part fails to start, the parts already started are cancelled and the error raised."""
    options = anthropic_wire.parse_batch_options(batch_options, len(inputs))
    custom_ids = options.custom_ids or tuple(f"request-{i}" for i in range(len(inputs)))
    encoder = unwrap(anthropic_wire.build_request_encoder(request))
    for message in encoder.warnings:
        warn(message)
    files, sizes, counts = write_parts(encoder.items(custom_ids, inputs),
                                       options.max_requests_per_batch,
                                       anthropic_wire.ITEM_BYTES_LIMIT, anthropic_wire.SEPARATOR)
    started: list[anthropic_wire.AnthropicBatch] = []
    try:
        for part, sink in enumerate(files):
            created = transport.send(
                anthropic_wire.build_create_batch(_chunks(sink), sizes[part])
            ).bind(anthropic_wire.parse_batch_object)
            if isinstance(created, Failure):
                error = created.failure()
                if isinstance(error, TransportError):
                    # No answer: the batch may exist. It is not created again blindly (that
                    # could bill it twice) and Anthropic offers no way to find it by content.
                    error = evolve(error, message=f"{error.message}; the batch may have been "
                                   "created anyway: check the Message Batches list before "
                                   "submitting again")
                for done in started:
                    transport.send(anthropic_wire.build_cancel_batch(done.id))
                if started:
                    ids = ", ".join(done.id for done in started)
                    error = evolve(error, message=f"{error.message} (while starting part "
                                   f"{part + 1} of {len(files)}; the parts already started were "
                                   f"cancelled: {ids})")
                raise error
            started.append(created.unwrap())
    finally:
        for sink in files:
            sink.close()
    job = AnthropicBatchJob(transport, [part.id for part in started], request=request,
                            part_custom_ids=_split(custom_ids, counts))
    return _started(job, started, len(inputs))


def attach_anthropic_batch(transport: HTTPTransport, batch_id: str,
                           request: GenerationRequest) -> Batch[Any]:
    """Effectful: a handle on an existing Anthropic batch (or split job) from its id alone."""
    job = AnthropicBatchJob(transport, anthropic_wire.split_batch_id(batch_id), request=request)
    return Batch(job, unwrap(job.refresh()))


# --- Gemini ---------------------------------------------------------------------------------------


class GeminiBatchJob:
    """Effectful: one Gemini batch (inline or file mode). Made by ``submit_gemini_batch`` (which
    knows the keys) or from the batch name alone (which reads them from the results)."""

    provider = "gemini"

    def __init__(self, transport: HTTPTransport, name: str, *, request: GenerationRequest,
                 custom_ids: Sequence[str] | None = None) -> None:
        self._transport = transport
        self.id = name
        self._request = request
        self._custom_ids = tuple(custom_ids) if custom_ids is not None else None
        self._object: gemini_wire.GeminiBatch | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "id": self.id,
                "parts": [{"id": self.id, "custom_ids": None if self._custom_ids is None
                           else list(self._custom_ids)}],
                **request_to_dict(self._request)}

    def refresh(self) -> Result[BatchState, LLMError]:
        fetched = self._transport.send(gemini_wire.build_retrieve_batch(self.id)).bind(
            gemini_wire.parse_batch)
        if isinstance(fetched, Failure):
            return fetched
        self._object = fetched.unwrap()
        return Success(self._state())

    def _state(self) -> BatchState:
        assert self._object is not None
        return BatchState(status=self._object.status, counts=self._object.counts,
                          raw=(self._object.raw,))

    def cancel(self) -> Result[BatchState, LLMError]:
        refreshed = self.refresh()
        if isinstance(refreshed, Failure) or refreshed.unwrap().status.is_terminal:
            return refreshed
        cancelled = self._transport.send(gemini_wire.build_cancel_batch(self.id))
        if isinstance(cancelled, Failure):
            return cancelled
        if not 200 <= cancelled.unwrap().status < 300:
            return Failure(gemini_parse_error(cancelled.unwrap()))
        return self.refresh()

    def custom_ids(self) -> Result[tuple[str, ...], LLMError]:
        if self._custom_ids is not None:
            return Success(self._custom_ids)
        collected = self.collect(keep_whole)  # reads the keys from the results
        if isinstance(collected, Failure):
            return collected
        assert self._custom_ids is not None
        return Success(self._custom_ids)

    def collect(self, keep: Keep) -> Result[list[Outcome], LLMError]:
        batch = self._object
        if batch is None:
            refreshed = self.refresh()
            if isinstance(refreshed, Failure):
                return refreshed
            batch = self._object
        assert batch is not None
        if not batch.status.is_terminal:
            return Failure(BatchNotReadyError(
                message=f"batch {batch.name} has not ended, so its results (and, for a batch "
                "resumed by name, its keys) are not known yet; call batch.wait()",
                provider=self.provider, batch_id=self.id, status=batch.status.value))
        results: list[tuple[str | None, Result[Any, LLMError]]] = []
        if batch.inlined is not None:
            for item in batch.inlined:
                key = gemini_wire.inline_key(item)
                results.append((key, gemini_wire.parse_result(self._request, item, key)))
        elif batch.responses_file is not None:
            with _spool() as sink:
                fetched = self._transport.download(
                    gemini_wire.build_download(batch.responses_file), sink)
                if isinstance(fetched, Success) and not 200 <= fetched.unwrap().status < 300:
                    return Failure(gemini_parse_error(fetched.unwrap()))
                if isinstance(fetched, Failure):
                    return fetched
                results = [gemini_wire.parse_result_line(self._request, line)
                           for line in _lines(sink)]
        if self._custom_ids is None:
            # Resumed by name: the keys are those the results name, in natural order.
            self._custom_ids = tuple(sorted({key for key, _ in results if key is not None},
                                            key=natural_key))
        schema = self._request.schema
        collector: OutcomeCollector[Any] = OutcomeCollector(self._custom_ids)
        for key, outcome in results:
            validated = outcome if schema is None else outcome.bind(
                lambda generation: attach_parsed(schema, generation))
            collector.add(key, keep(validated), self.provider)
        if collector.unknown_ids or collector.unreadable_lines:
            log().warning("batch %s: %d result(s) name an unknown key and %d carry no key; none "
                          "of them was used", batch.name, len(collector.unknown_ids),
                          collector.unreadable_lines)
        return Success(collector.finish(lambda _, key: gemini_wire.missing_result_error(
            batch, key, collector.unreadable_lines)))


def submit_gemini_batch(
    transport: HTTPTransport, request: GenerationRequest, inputs: Sequence[str],
    batch_options: Mapping[str, Any], warn: Callable[[str], None],
) -> Batch[Any]:
    """Effectful: start a Gemini batch of ``inputs``: inline when the create body stays within
    20 MB, else as an uploaded JSONL file. Every request is built before anything is sent."""
    del warn  # the Gemini builder drops nothing, so it never warns
    options = gemini_wire.parse_batch_options(batch_options, len(inputs))
    keys = options.custom_ids or tuple(gemini_wire.default_keys(len(inputs)))
    encoder = unwrap(gemini_wire.build_item_encoder(request))
    files, sizes, _ = write_parts(map(encoder.inline, keys, inputs), len(inputs) or 1,
                                  gemini_wire.MAX_FILE_BYTES, b",")
    _one_file(files)
    (inline,) = files
    try:
        size = sizes[0]
        inline_bytes = gemini_wire.inline_body_size(request.model, size, options.display_name)
        if inline_bytes <= gemini_wire.INLINE_LIMIT:
            created = transport.send(gemini_wire.build_inline_create(
                request.model, _chunks(inline), size, options.display_name)
            ).bind(gemini_wire.parse_batch)
            mode = "inline"
        else:
            created = _create_from_file(transport, request, encoder, keys=keys, inputs=inputs,
                                        display_name=options.display_name)
            mode = "file"
    finally:
        inline.close()
    if isinstance(created, Failure):
        error = created.failure()
        if isinstance(error, TransportError):
            error = evolve(error, message=f"{error.message}; the batch may have been created "
                           "anyway: check the batch list before submitting again")
        raise error
    batch = created.unwrap()
    job = GeminiBatchJob(transport, batch.name, request=request, custom_ids=keys)
    job._object = batch
    log().info("started Gemini batch %s: %d requests (%s)", batch.name, len(inputs), mode)
    return Batch(job, job._state())


def _create_from_file(transport: HTTPTransport, request: GenerationRequest,
                      encoder: gemini_wire.ItemEncoder, *, keys: Sequence[str],
                      inputs: Sequence[str], display_name: str | None
                      ) -> Result[gemini_wire.GeminiBatch, LLMError]:
    files, sizes, _ = write_parts(map(encoder.line, keys, inputs), len(inputs) or 1,
                                  gemini_wire.MAX_FILE_BYTES)
    _one_file(files)
    (sink,) = files
    try:
        size = sizes[0]
        label = display_name or "llmbackend-batch"

        def finish(url: str) -> Result[WireResponse, LLMError]:
            path = gemini_wire.upload_path(url, transport.base_url)
            if path is None:
                return Failure(ProviderError(
                    message="Gemini named an upload URL outside the client's base URL; "
                    "llmbackend sends the API key nowhere else", provider="gemini",
                    error_type="upload"))
            return transport.send(gemini_wire.build_upload_finish(path, _chunks(sink), size))

        return (
            transport.send(gemini_wire.build_upload_start(size, label))
            .bind(gemini_wire.parse_upload_url)
            .bind(finish)
            .bind(gemini_wire.parse_file)
            .bind(lambda file_name: transport.send(
                gemini_wire.build_file_create(request.model, file_name, display_name)))
            .bind(gemini_wire.parse_batch)
        )
    finally:
        sink.close()


def _one_file(files: list[IO[bytes]]) -> None:
    if len(files) > 1:
        for sink in files:
            sink.close()
        raise ConfigurationError(
            message=f"the batch needs more than {gemini_wire.MAX_FILE_BYTES:,} bytes of input, "
            "the most one Gemini batch file takes; submit it in several batches", key="inputs")


def attach_gemini_batch(transport: HTTPTransport, batch_id: str, request: GenerationRequest
                        ) -> Batch[Any]:
    """Effectful: a handle on an existing Gemini batch from its name alone."""
    job = GeminiBatchJob(transport, gemini_wire.batch_name(batch_id), request=request)
    return Batch(job, unwrap(job.refresh()))


# --- restoring saved handles ----------------------------------------------------------------------


def check_saved(data: object) -> Mapping[str, Any]:
    """``data`` if it is a saved handle (``Batch.to_dict()``); ``ConfigurationError`` if not."""
    if not isinstance(data, Mapping) or data.get("format") != HANDLE_FORMAT:
        raise ConfigurationError(
            message="restore_batch takes what Batch.to_dict() returned (a dict with "
            f"format {HANDLE_FORMAT!r})", key="batch")
    parts = data.get("parts")
    if not isinstance(parts, list) or not parts or not all(
        isinstance(part, Mapping) and isinstance(part.get("id"), str) for part in parts
    ):
        raise ConfigurationError(message="the saved batch has no parts with ids", key="batch")
    # A saved handle may have been edited by hand: a wrong shape is said here, not a KeyError.
    schema = data.get("schema")
    if schema is not None and not (isinstance(schema, Mapping)
                                   and isinstance(schema.get("schema"), Mapping)):
        raise ConfigurationError(
            message="the saved batch's 'schema' must be null or {\"name\": ..., \"schema\": "
            "{...}} (a JSON schema)", key="batch")
    for name, kind in (("options", Mapping), ("order", list)):
        if data.get(name) is not None and not isinstance(data.get(name), kind):
            raise ConfigurationError(
                message=f"the saved batch's {name!r} must be "
                f"{'an object' if kind is Mapping else 'a list'}", key="batch")
    if any(not isinstance(part.get("custom_ids", []), list) for part in parts):
        raise ConfigurationError(message="the saved batch's parts' 'custom_ids' must be lists",
                                 key="batch")
    return data


def restore(transport: HTTPTransport, data: Mapping[str, Any],
            schema: StructuredOutput[Any] | None) -> Batch[Any]:
    """Effectful: the handle of a saved batch, re-attached over ``transport``; the saved custom
    ids give the input order without reading anything back from the provider."""
    provider = data.get("provider")
    request = request_from_dict(data, schema)
    parts = data["parts"]
    ids = [part["id"] for part in parts]
    saved_ids = [tuple(str(i) for i in part["custom_ids"])
                 if isinstance(part.get("custom_ids"), list) else None for part in parts]
    # The saved ids are used only when every part has them (else they are read back).
    known = ([ids_ for ids_ in saved_ids if ids_ is not None]
             if all(ids_ is not None for ids_ in saved_ids) else None)
    job: OpenAIBatchJob | AnthropicBatchJob | GeminiBatchJob
    if provider == "openai":
        job = OpenAIBatchJob(transport, [wire.split_batch_id(i)[0] for i in ids],
                             schema=request.schema, request=request if known else None,
                             part_custom_ids=known)
    elif provider == "anthropic":
        job = AnthropicBatchJob(transport, anthropic_wire.split_batch_id(
            anthropic_wire.PART_SEPARATOR.join(ids)), request=request, part_custom_ids=known)
    elif provider == "gemini":
        job = GeminiBatchJob(transport, gemini_wire.batch_name(ids[0]), request=request,
                             custom_ids=known[0] if known else None)
    else:
        raise ConfigurationError(message=f"the saved batch names an unknown provider "
                                 f"{provider!r}", key="provider")
    order = data.get("order")
    return Batch(job, unwrap(job.refresh()), order if isinstance(order, list) else None)
