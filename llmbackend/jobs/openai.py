"""Effectful: OpenAI's native batch job (``/v1/batches`` on JSONL files of ``/v1/responses``
requests): submit, attach by id, restore; ``JOBS`` for ``llmbackend.jobs.native_jobs``.

Strategy: a job above OpenAI's limits (50,000 requests or 200 MB a file) is several provider
batches, one ``PartedJob`` of ``PARTS``. A job re-attached by id reads its custom ids, model
and schema back from its parts' input files, so its results still come in input order. A
create whose answer is lost is looked up by its input file before it is sent again, so that a
lost answer never makes a second (billed) batch.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

from attrs import evolve
from returns.result import Failure, Result, Success

from llmbackend.batching import default_custom_ids, shown_id
from llmbackend.errors import LLMError, ProviderError, TransportError, UnsupportedError, unwrap
from llmbackend.jobs.files import chunks, download, lines, spool, write_parts
from llmbackend.jobs.handle import Batch
from llmbackend.jobs.native import NativeJobs, live
from llmbackend.jobs.parted import PartedJob, PartWire, start_job
from llmbackend.jobs.saved import SavedHandle
from llmbackend.logs import log
from llmbackend.messages import CheckedInput
from llmbackend.providers import openai_batch as wire
from llmbackend.providers.openai import NAME, parse_error
from llmbackend.transport import HTTPTransport
from llmbackend.types import GenerationRequest, StructuredOutput, WireRequest

__all__ = ["JOBS", "PARTS", "attach", "restore", "submit"]


def _check_readable(part: wire.OpenAIBatch, job_id: str) -> LLMError | None:
    if part.endpoint in (None, wire.ENDPOINT):
        return None
    return UnsupportedError(
        message=f"batch {part.id} runs {part.endpoint}; llmbackend reads batches of "
        f"{wire.ENDPOINT} only", provider=NAME, parameter="batch_id")


def _result_files(part: wire.OpenAIBatch) -> list[WireRequest]:
    return [wire.build_file_content(file_id)
            for file_id in (part.output_file_id, part.error_file_id) if file_id is not None]


def _read_inputs(transport: HTTPTransport, part: wire.OpenAIBatch,
                 schema: StructuredOutput[Any] | None
                 ) -> Result[tuple[tuple[str, ...], GenerationRequest], LLMError]:
    """Part ``part``'s custom ids in input order and the request to read its answers with,
    read back from its input file (for a job re-attached by id)."""
    if part.input_file_id is None:
        return Failure(ProviderError(
            message=f"batch {part.id} names no input file, so its inputs cannot be read "
            "back", provider=NAME, error_type="batch_error"))
    with spool() as sink:
        return download(transport, wire.build_file_content(part.input_file_id), sink,
                        parse_error).bind(lambda _: _input_ids(part, lines(sink), schema))


def _input_ids(part: wire.OpenAIBatch, input_lines: Iterable[bytes],
               schema: StructuredOutput[Any] | None
               ) -> Result[tuple[tuple[str, ...], GenerationRequest], LLMError]:
    ids: list[str] = []
    first_body: Mapping[str, Any] | None = None
    for number, line in enumerate(input_lines, start=1):
        item = wire.parse_input_line(line)
        if item.custom_id is None:
            return Failure(ProviderError(
                message=f"line {number} of batch {part.id}'s input file has no custom_id",
                provider=NAME, error_type="batch_error"))
        ids.append(item.custom_id)
        if first_body is None:
            first_body = item.body
    if len(set(ids)) != len(ids):
        return Failure(ProviderError(
            message=f"batch {part.id}'s input file repeats custom ids, so its results "
            "cannot be matched to inputs", provider=NAME, error_type="batch_error"))
    model = first_body.get("model") if first_body is not None else None
    return Success((tuple(ids), GenerationRequest(
        model=model if isinstance(model, str) else "", input="",
        schema=schema if schema is not None else wire.schema_from_body(first_body))))


#: OpenAI's parts, as data for ``PartedJob``.
PARTS: PartWire[wire.OpenAIBatch] = PartWire(
    provider=NAME,
    retrieve=wire.build_retrieve_batch,
    cancel=wire.build_cancel_batch,
    parse=wire.parse_batch_object,
    join_ids=wire.join_batch_ids,
    check_readable=_check_readable,
    result_files=_result_files,
    parse_error=parse_error,
    parse_line=wire.parse_result_line,
    # OpenAI's validation errors name the input's 1-based line in the input file.
    missing=lambda part, position, custom_id, unreadable: wire.missing_result_error(
        part, custom_id, position + 1, unreadable),
    read_inputs=_read_inputs,
)


def submit(transport: HTTPTransport, request: GenerationRequest, prompts: Sequence[CheckedInput],
           options: Mapping[str, Any], warn: Callable[[str], None]) -> Batch[Any]:
    """Effectful: write, upload and start an OpenAI batch of ``prompts`` with ``request``'s
    model, config and schema; split into several provider batches when it exceeds OpenAI's
    limits. Every input is checked and written before the first upload. When a later part fails
    to start, the parts already started are cancelled and the error is raised."""
    parsed = wire.parse_batch_options(options, len(prompts))
    request = evolve(request, config=wire.apply_system(request.config, parsed.system))
    custom_ids = parsed.custom_ids or default_custom_ids(len(prompts))
    encoder = unwrap(wire.build_line_encoder(request))
    for message in encoder.warnings:
        warn(message)
    files, sizes, counts = write_parts(encoder.lines(custom_ids, prompts),
                                       parsed.max_requests_per_batch, wire.MAX_FILE_BYTES)

    def start(part: int, sink: IO[bytes]) -> Result[wire.OpenAIBatch, LLMError]:
        upload = wire.build_file_upload(
            f"llmbackend-batch-{part + 1}-of-{len(files)}.jsonl", sizes[part], chunks(sink),
            boundary=f"llmbackend-{secrets.token_hex(16)}",
        )
        return transport.send(upload).bind(wire.parse_file_object).bind(
            lambda file_id: _create(transport, file_id, parsed, part=part, parts=len(files)))

    return start_job(transport, PARTS, files, start, request=request, custom_ids=custom_ids,
                     counts=counts)


def _create(transport: HTTPTransport, file_id: str, options: wire.OpenAIBatchOptions, *,
            part: int, parts: int) -> Result[wire.OpenAIBatch, LLMError]:
    """Create the batch on ``file_id``. When the answer is lost (no response), the batch may
    exist anyway: it is looked up by its input file before the create is sent again, so that a
    lost answer never makes a second (billed) batch."""
    create = wire.build_create_batch(file_id, options, part, parts)

    def found_or_again(found: wire.OpenAIBatch | None) -> Result[wire.OpenAIBatch, LLMError]:
        if found is None:
            return transport.send(create).bind(wire.parse_batch_object)
        log().info("the answer to creating batch %s was lost; found it by its input file",
                   shown_id(found.id))
        return wire.check_batch(found)

    def recover(error: LLMError) -> Result[wire.OpenAIBatch, LLMError]:
        if not isinstance(error, TransportError):
            return Failure(error)
        lost: LLMError = error

        def create_error(_: LLMError) -> Result[wire.OpenAIBatch | None, LLMError]:
            return Failure(lost)  # a list that cannot be read leaves the create's error

        return (transport.send(wire.build_list_batches()).bind(wire.parse_batch_list)
                .map(lambda batches: wire.find_batch(batches, file_id))
                .lash(create_error)
                .bind(found_or_again))

    return transport.send(create).bind(wire.parse_batch_object).lash(recover)


def attach(transport: HTTPTransport, batch_id: str, request: GenerationRequest) -> Batch[Any]:
    """Effectful: a handle on an existing OpenAI batch (or split job) from its id alone; the
    model and custom ids are read back from its input files (``request`` gives the schema)."""
    return live(PartedJob(transport, PARTS, wire.split_batch_id(batch_id), request=None,
                          schema=request.schema))


def restore(transport: HTTPTransport, saved: SavedHandle) -> Batch[Any]:
    """Effectful: the handle of a saved OpenAI job; the saved custom ids give the input order
    without reading the input files back (they are read back when the handle had none)."""
    known = saved.part_custom_ids
    job = PartedJob(transport, PARTS, [wire.check_part_id(i) for i in saved.part_ids],
                    request=saved.request if known else None, schema=saved.request.schema,
                    part_custom_ids=known)
    return live(job, saved.order)


JOBS = NativeJobs(submit=submit, attach=attach, restore=restore)
