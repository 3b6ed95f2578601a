"""Effectful: Anthropic's native Message Batches job: submit, attach by id, restore; ``JOBS``
for ``llmbackend.jobs.native_jobs``.

Strategy: a job above Anthropic's limits (100,000 requests or 256 MB a batch) is several
provider batches, one ``PartedJob`` of ``PARTS``. Anthropic keeps no input file to read back,
so a job re-attached by id learns its custom ids from its results, once it has ended, in
natural order (``request-2`` before ``request-10``). A create whose answer is lost is not sent
again: Anthropic offers no way to find a batch by content, and a second one would be billed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from returns.result import Result

from llmbackend.batching import default_custom_ids
from llmbackend.errors import BatchNotReadyError, LLMError, unwrap
from llmbackend.jobs.files import chunks, write_parts
from llmbackend.jobs.handle import Batch
from llmbackend.jobs.native import NativeJobs, live, maybe_created
from llmbackend.jobs.parted import PartedJob, PartWire, start_job
from llmbackend.jobs.saved import SavedHandle
from llmbackend.messages import CheckedInput
from llmbackend.providers import anthropic_batch as wire
from llmbackend.providers.anthropic import NAME, parse_error
from llmbackend.transport import HTTPTransport
from llmbackend.types import GenerationRequest, WireRequest

__all__ = ["JOBS", "PARTS", "attach", "restore", "submit"]


def _check_readable(part: wire.AnthropicBatch, job_id: str) -> LLMError | None:
    if part.ended:
        return None
    return BatchNotReadyError(
        message=f"batch {part.id} has not ended, so its results (and, for a batch resumed by "
        "id, its custom ids) are not known yet; call batch.wait()",
        provider=NAME, batch_id=job_id, status=part.status.value)


def _result_files(part: wire.AnthropicBatch) -> list[WireRequest]:
    return [wire.build_results(part.id)]


def _join_ids(part_ids: Sequence[str]) -> str:
    return wire.PART_SEPARATOR.join(part_ids)


#: Anthropic's parts, as data for ``PartedJob``.
PARTS: PartWire[wire.AnthropicBatch] = PartWire(
    provider=NAME,
    retrieve=wire.build_retrieve_batch,
    cancel=wire.build_cancel_batch,
    parse=wire.parse_batch_object,
    join_ids=_join_ids,
    check_readable=_check_readable,
    result_files=_result_files,
    parse_error=parse_error,
    parse_line=wire.parse_result_line,
    missing=lambda part, _position, custom_id, unreadable: wire.missing_result_error(
        part, custom_id, unreadable),
)


def submit(transport: HTTPTransport, request: GenerationRequest, prompts: Sequence[CheckedInput],
           options: Mapping[str, Any], warn: Callable[[str], None]) -> Batch[Any]:
    """Effectful: start a native Message Batches job of ``prompts``; split into several batches
    above Anthropic's limits. Every input is checked and encoded before the first request; when
    a later part fails to start, the parts already started are cancelled and the error raised."""
    parsed = wire.parse_batch_options(options, len(prompts))
    custom_ids = parsed.custom_ids or default_custom_ids(len(prompts))
    encoder = unwrap(wire.build_request_encoder(request))
    for message in encoder.warnings:
        warn(message)
    files, sizes, counts = write_parts(encoder.items(custom_ids, prompts),
                                       parsed.max_requests_per_batch, wire.ITEM_BYTES_LIMIT,
                                       wire.SEPARATOR)

    def start(part: int, sink: IO[bytes]) -> Result[wire.AnthropicBatch, LLMError]:
        return transport.send(wire.build_create_batch(chunks(sink), sizes[part])).bind(
            wire.parse_batch_object).alt(
            lambda error: maybe_created(error, "the Message Batches list"))

    return start_job(transport, PARTS, files, start, request=request, custom_ids=custom_ids,
                     counts=counts)


def attach(transport: HTTPTransport, batch_id: str, request: GenerationRequest) -> Batch[Any]:
    """Effectful: a handle on an existing Anthropic batch (or split job) from its id alone."""
    return live(PartedJob(transport, PARTS, wire.split_batch_id(batch_id), request=request))


def restore(transport: HTTPTransport, saved: SavedHandle) -> Batch[Any]:
    """Effectful: the handle of a saved Anthropic job; the saved custom ids give the input
    order (without them, they are read from the results)."""
    job = PartedJob(transport, PARTS, [wire.check_part_id(i) for i in saved.part_ids],
                    request=saved.request, part_custom_ids=saved.part_custom_ids)
    return live(job, saved.order)


JOBS = NativeJobs(submit=submit, attach=attach, restore=restore)
