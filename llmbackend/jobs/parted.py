"""Effectful: a batch job made of several provider batches ("parts"), written once and driven
by data: OpenAI's and Anthropic's jobs are each one ``PartWire`` record (their pure builders and
parsers) given to ``PartedJob``.

Strategy: a provider caps a batch's requests and bytes, so a large job is split into parts that
are fetched, cancelled, summed and read alike; what differs between providers is data (which
request fetches or cancels a part, which files hold its results, how a line reads, how a
missing result is explained, whether the inputs can be read back), never control flow. Parts
start in order; when one fails to start, the parts already started are cancelled (best effort)
and the error says which, so that a half-started job never runs unseen. Results are matched to
inputs by custom id only (``batching.read_results``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from functools import partial
from typing import IO, Any, Generic, Protocol, TypeVar

from attrs import evolve, frozen
from returns.result import Failure, Result, Success

from llmbackend.batching import (
    BatchCounts,
    BatchState,
    BatchStatus,
    collect_all,
    combine_statuses,
    read_results,
)
from llmbackend.errors import LLMError
from llmbackend.jobs.files import download, lines, spool
from llmbackend.jobs.handle import Batch, Keep, Outcome, keep_whole
from llmbackend.jobs.native import log_report
from llmbackend.jobs.saved import request_to_dict
from llmbackend.logs import log
from llmbackend.pipeline import attach_parsed
from llmbackend.transport import HTTPTransport
from llmbackend.types import (
    Generation,
    GenerationRequest,
    StructuredOutput,
    WireRequest,
    WireResponse,
)

__all__ = [
    "Part",
    "PartWire",
    "PartedJob",
    "ReadInputs",
    "partial_start_error",
    "split_ids",
    "start_job",
]


class Part(Protocol):
    """What a parted job reads from one provider batch object."""

    @property
    def id(self) -> str: ...

    @property
    def status(self) -> BatchStatus: ...

    @property
    def counts(self) -> BatchCounts: ...

    @property
    def raw(self) -> Mapping[str, Any]: ...


P = TypeVar("P", bound=Part)

#: ``read_inputs(transport, part, schema)``: a part's custom ids in input order and the request
#: to read its answers with, read back from the provider (for a job re-attached by id).
ReadInputs = Callable[[HTTPTransport, Any, StructuredOutput[Any] | None],
                      Result[tuple[tuple[str, ...], GenerationRequest], LLMError]]


@frozen(kw_only=True)
class PartWire(Generic[P]):
    """One provider's parts, as data: its pure builders and parsers.

    - ``retrieve`` / ``cancel``: the request that fetches / cancels a part, by id; ``parse``
      reads the batch object either answers with;
    - ``join_ids``: the job's id from its parts' ids;
    - ``check_readable(part, job_id)``: why a part's results cannot be read now, or ``None``;
    - ``result_files(part)``: the downloads that hold its result lines (``parse_error`` reads a
      failed one); ``parse_line(request, line)``: one line's custom id and outcome;
    - ``missing(part, position, custom_id, unreadable_lines)``: the failure of an input with no
      result line;
    - ``read_inputs``: how a part's custom ids are read back when they are not known, or
      ``None`` when they are read from the results (in natural order);
    - ``unreadable``: what an unreadable line is, in the warning that counts them.
    """

    provider: str
    retrieve: Callable[[str], WireRequest]
    cancel: Callable[[str], WireRequest]
    parse: Callable[[WireResponse], Result[P, LLMError]]
    join_ids: Callable[[Sequence[str]], str]
    check_readable: Callable[[P, str], LLMError | None]
    result_files: Callable[[P], Sequence[WireRequest]]
    parse_error: Callable[[WireResponse], LLMError]
    parse_line: Callable[[GenerationRequest, bytes],
                         tuple[str | None, Result[Generation[Any], LLMError]]]
    missing: Callable[[P, int, str, int], LLMError]
    read_inputs: ReadInputs | None = None
    unreadable: str = "line(s) could not be read"


class PartedJob(Generic[P]):
    """Effectful: a job of one or more provider batches, fetched, cancelled, summed and read as
    ``wire`` says. Made by ``start_job`` (which knows the custom ids and the request) or from
    ids alone (which reads them back, from the inputs or the results, when needed).

    ``request`` is what ``to_dict`` saves and the answers are read with; ``None`` when it is
    read back with the inputs (``wire.read_inputs``; ``schema`` then still validates them).
    """

    def __init__(self, transport: HTTPTransport, wire: PartWire[P], part_ids: Sequence[str], *,
                 request: GenerationRequest | None,
                 schema: StructuredOutput[Any] | None = None,
                 part_custom_ids: Sequence[tuple[str, ...]] | None = None,
                 objects: Sequence[P] | None = None) -> None:
        self._transport = transport
        self._wire = wire
        self.provider = wire.provider
        self.part_ids = tuple(part_ids)
        self.id = wire.join_ids(self.part_ids)
        self._request = request
        self._schema = schema if schema is not None else (
            request.schema if request is not None else None)
        count = len(self.part_ids)
        self._part_custom_ids: list[tuple[str, ...] | None] = (
            list(part_custom_ids) if part_custom_ids is not None else [None] * count)
        self._part_requests: list[GenerationRequest | None] = [request] * count
        self._objects: list[P | None] = list(objects) if objects is not None else [None] * count

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "id": self.id,
                "parts": [{"id": part_id, "custom_ids": None if ids is None else list(ids)}
                          for part_id, ids in zip(self.part_ids, self._part_custom_ids,
                                                  strict=True)],
                **request_to_dict(self._request)}

    def snapshot(self) -> BatchState:
        """The state as of the last fetch (of the parts fetched so far), without fetching."""
        objects = [part for part in self._objects if part is not None]
        counts = BatchCounts()
        for part in objects:
            counts += part.counts
        return BatchState(status=combine_statuses([part.status for part in objects]),
                          counts=counts, raw=tuple(part.raw for part in objects))

    def _keep(self, index: int, part: P) -> P:
        self._objects[index] = part
        return part

    def refresh(self) -> Result[BatchState, LLMError]:
        return collect_all(
            self._transport.send(self._wire.retrieve(part_id)).bind(self._wire.parse)
            .map(partial(self._keep, index))
            for index, part_id in enumerate(self.part_ids)
        ).map(lambda _: self.snapshot())

    def cancel(self) -> Result[BatchState, LLMError]:
        def cancel_running(_: BatchState) -> Result[list[P], LLMError]:
            return collect_all(
                self._transport.send(self._wire.cancel(part.id)).bind(self._wire.parse)
                .map(partial(self._keep, index))
                for index, part in enumerate(list(self._objects))
                if part is not None and not part.status.is_terminal
                and part.status != "cancelling"
            )

        return self.refresh().bind(cancel_running).map(lambda _: self.snapshot())

    def custom_ids(self) -> Result[tuple[str, ...], LLMError]:
        def joined(readings: list[tuple[tuple[str, ...] | None, GenerationRequest]]
                   ) -> Result[tuple[str, ...], LLMError]:
            if all(ids is not None for ids, _ in readings):
                return Success(tuple(i for ids, _ in readings if ids for i in ids))
            # Read from the results: collecting them learns the ids (in natural order).
            return self.collect(keep_whole).bind(lambda _: self.custom_ids())

        return collect_all(self._reading(index) for index in range(len(self.part_ids))
                           ).bind(joined)

    def collect(self, keep: Keep) -> Result[list[Outcome], LLMError]:
        ready: Result[object, LLMError] = (
            self.refresh() if any(part is None for part in self._objects) else Success(None))
        return ready.bind(lambda _: collect_all(
            self._collect_part(index, keep) for index in range(len(self.part_ids))
        )).map(lambda parts: [outcome for outcomes in parts for outcome in outcomes])

    def _part(self, index: int) -> Result[P, LLMError]:
        part = self._objects[index]
        if part is not None:
            return Success(part)

        def fetched(_: BatchState) -> Result[P, LLMError]:
            now = self._objects[index]
            assert now is not None
            return Success(now)

        return self.refresh().bind(fetched)

    def _reading(self, index: int
                 ) -> Result[tuple[tuple[str, ...] | None, GenerationRequest], LLMError]:
        """Part ``index``'s custom ids (``None``: to be read from its results) and the request
        to read its answers with; read back from the provider when ``wire.read_inputs`` can."""
        known, request = self._part_custom_ids[index], self._part_requests[index]
        read_inputs = self._wire.read_inputs
        if request is not None and (known is not None or read_inputs is None):
            return Success((known, request))
        assert read_inputs is not None, "a job that cannot read its inputs back has a request"

        def remember(read: tuple[tuple[str, ...], GenerationRequest]
                     ) -> tuple[tuple[str, ...] | None, GenerationRequest]:
            self._part_custom_ids[index], self._part_requests[index] = read
            return read

        return self._part(index).bind(
            lambda part: read_inputs(self._transport, part, self._schema)).map(remember)

    def _collect_part(self, index: int, keep: Keep) -> Result[list[Outcome], LLMError]:
        part = self._objects[index]
        assert part is not None
        problem = self._wire.check_readable(part, self.id)
        if problem is not None:
            return Failure(problem)
        return self._reading(index).bind(
            lambda reading: self._read_part(index, part, reading[0], reading[1], keep))

    def _read_part(self, index: int, part: P, known: tuple[str, ...] | None,
                   request: GenerationRequest, keep: Keep) -> Result[list[Outcome], LLMError]:
        wire = self._wire
        with ExitStack() as stack:
            def fetch(file: WireRequest) -> Result[IO[bytes], LLMError]:
                sink = stack.enter_context(spool())
                return download(self._transport, file, sink, wire.parse_error).map(
                    lambda _: sink)

            def read(sinks: list[IO[bytes]]) -> list[Outcome]:
                results = (wire.parse_line(request, line)
                           for sink in sinks for line in lines(sink))
                schema = request.schema
                report = read_results(
                    known, results, provider=self.provider,
                    validate=None if schema is None else partial(attach_parsed, schema),
                    keep=keep,
                    missing=lambda position, custom_id, unreadable: wire.missing(
                        part, position, custom_id, unreadable))
                self._part_custom_ids[index] = report.custom_ids
                log_report(part.id, report, wire.unreadable)
                return report.outcomes

            return collect_all(fetch(file) for file in wire.result_files(part)).map(read)


def split_ids(custom_ids: Sequence[str], counts: Sequence[int]) -> list[tuple[str, ...]]:
    """Pure: the custom ids of each part, given how many inputs each part holds."""
    parts: list[tuple[str, ...]] = []
    offset = 0
    for count in counts:
        parts.append(tuple(custom_ids[offset:offset + count]))
        offset += count
    return parts


def partial_start_error(error: LLMError, started: Sequence[str], part: int, parts: int
                        ) -> LLMError:
    """Pure: the error of a job whose part ``part`` (0-based, of ``parts``) failed to start
    after the parts ``started`` had: it names them, cancelled."""
    if not started:
        return error
    return evolve(error, message=f"{error.message} (while starting part {part + 1} of {parts}; "
                  f"the parts already started were cancelled: {', '.join(started)})")


def start_job(transport: HTTPTransport, wire: PartWire[P], files: list[IO[bytes]],
              start: Callable[[int, IO[bytes]], Result[P, LLMError]], *,
              request: GenerationRequest, custom_ids: Sequence[str], counts: Sequence[int]
              ) -> Batch[Any]:
    """Effectful: start a part on each of ``files`` (the written inputs, closed here), in
    order, with ``start(index, file)``; the handle of the job. When a part fails to start, the
    parts already started are cancelled (best effort) and the error says so (raised)."""
    started: list[P] = []
    try:
        for index, sink in enumerate(files):
            outcome = start(index, sink)
            if isinstance(outcome, Failure):
                for part in started:
                    transport.send(wire.cancel(part.id))
                raise partial_start_error(outcome.failure(), [part.id for part in started],
                                          index, len(files))
            started.append(outcome.unwrap())
    finally:
        for sink in files:
            sink.close()
    job = PartedJob(transport, wire, [part.id for part in started], request=request,
                    part_custom_ids=split_ids(custom_ids, counts), objects=started)
    log().info("started %s batch %s: %d requests in %d part(s)", job.provider, job.id,
               len(custom_ids), len(started))
    return Batch(job, job.snapshot())
