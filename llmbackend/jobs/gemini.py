"""Effectful: Gemini's native batch job (``models/{model}:batchGenerateContent``): submit,
attach by name, restore; ``JOBS`` for ``llmbackend.jobs.native_jobs``.

Strategy: a batch is one provider batch, inline when its create body stays within 20 MB, else
an uploaded JSONL file (up to 2 GB: more is refused before anything is sent). Every request
carries its custom id as its key; a batch re-attached by name learns its keys from its results
once it has ended, in natural order. A create whose answer is lost is not sent again blindly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

from returns.result import Failure, Result, Success

from llmbackend.batching import BatchState, default_custom_ids, encoded_items, read_results
from llmbackend.errors import (
    BatchNotReadyError,
    ConfigurationError,
    LLMError,
    ProviderError,
    unwrap,
)
from llmbackend.jobs.files import chunks, download, lines, require_success, spool, write_parts
from llmbackend.jobs.handle import Batch, Keep, Outcome, keep_whole
from llmbackend.jobs.native import NativeJobs, live, log_report, maybe_created
from llmbackend.jobs.saved import SavedHandle, request_to_dict
from llmbackend.logs import log
from llmbackend.messages import CheckedInput
from llmbackend.pipeline import attach_parsed
from llmbackend.providers import gemini_batch as wire
from llmbackend.providers.gemini import NAME, parse_error
from llmbackend.transport import HTTPTransport
from llmbackend.types import Generation, GenerationRequest, WireResponse

__all__ = ["JOBS", "GeminiJob", "attach", "restore", "submit"]


class GeminiJob:
    """Effectful: one Gemini batch (inline or file mode). Made by ``submit`` (which knows the
    keys) or from the batch name alone (which reads them from the results)."""

    def __init__(self, transport: HTTPTransport, name: str, *, request: GenerationRequest,
                 custom_ids: Sequence[str] | None = None,
                 batch: wire.GeminiBatch | None = None) -> None:
        self._transport = transport
        self.provider = NAME
        self.id = name
        self._request = request
        self._custom_ids = tuple(custom_ids) if custom_ids is not None else None
        self._object = batch

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "id": self.id,
                "parts": [{"id": self.id, "custom_ids": None if self._custom_ids is None
                           else list(self._custom_ids)}],
                **request_to_dict(self._request)}

    def snapshot(self) -> BatchState:
        """The state as of the last fetch, without fetching."""
        assert self._object is not None
        return BatchState(status=self._object.status, counts=self._object.counts,
                          raw=(self._object.raw,))

    def _keep(self, batch: wire.GeminiBatch) -> wire.GeminiBatch:
        self._object = batch
        return batch

    def refresh(self) -> Result[BatchState, LLMError]:
        return self._transport.send(wire.build_retrieve_batch(self.id)).bind(
            wire.parse_batch).map(self._keep).map(lambda _: self.snapshot())

    def cancel(self) -> Result[BatchState, LLMError]:
        def stop(state: BatchState) -> Result[BatchState, LLMError]:
            if state.status.is_terminal:
                return Success(state)
            return self._transport.send(wire.build_cancel_batch(self.id)).bind(
                lambda response: require_success(response, parse_error)).bind(
                lambda _: self.refresh())

        return self.refresh().bind(stop)

    def custom_ids(self) -> Result[tuple[str, ...], LLMError]:
        known = self._custom_ids
        if known is not None:
            return Success(known)
        return self.collect(keep_whole).map(  # reads the keys from the results
            lambda _: self._custom_ids or ())

    def collect(self, keep: Keep) -> Result[list[Outcome], LLMError]:
        batch = self._object
        fetched: Result[wire.GeminiBatch, LLMError] = (
            Success(batch) if batch is not None
            else self.refresh().map(lambda _: self._latest()))
        return fetched.bind(lambda ended: self._read(ended, keep))

    def _latest(self) -> wire.GeminiBatch:
        assert self._object is not None
        return self._object

    def _read(self, batch: wire.GeminiBatch, keep: Keep) -> Result[list[Outcome], LLMError]:
        if not batch.status.is_terminal:
            return Failure(BatchNotReadyError(
                message=f"batch {batch.name} has not ended, so its results (and, for a batch "
                "resumed by name, its keys) are not known yet; call batch.wait()",
                provider=self.provider, batch_id=self.id, status=batch.status.value))
        request = self._request
        if batch.inlined is not None:
            return Success(self._report(batch, (
                (key, wire.parse_result(request, item, key))
                for item in batch.inlined for key in (wire.inline_key(item),)), keep))
        if batch.responses_file is None:
            return Success(self._report(batch, (), keep))
        with spool() as sink:
            return download(self._transport, wire.build_download(batch.responses_file), sink,
                            parse_error).map(lambda _: self._report(batch, (
                                wire.parse_result_line(request, line) for line in lines(sink)),
                                keep))

    def _report(self, batch: wire.GeminiBatch,
                results: Iterable[tuple[str | None, Result[Generation[Any], LLMError]]],
                keep: Keep) -> list[Outcome]:
        schema = self._request.schema
        report = read_results(
            self._custom_ids, results, provider=self.provider,
            validate=None if schema is None else (
                lambda generation: attach_parsed(schema, generation)),
            keep=keep,
            missing=lambda _position, key, unreadable: wire.missing_result_error(
                batch, key, unreadable))
        self._custom_ids = report.custom_ids
        log_report(batch.name, report, "carry no key")
        return report.outcomes


def submit(transport: HTTPTransport, request: GenerationRequest, prompts: Sequence[CheckedInput],
           options: Mapping[str, Any], warn: Callable[[str], None]) -> Batch[Any]:
    """Effectful: start a Gemini batch of ``prompts``: inline when the create body stays within
    20 MB, else as an uploaded JSONL file. Every request is built before anything is sent."""
    del warn  # the Gemini builder drops nothing, so it never warns
    parsed = wire.parse_batch_options(options, len(prompts))
    keys = parsed.custom_ids or default_custom_ids(len(prompts))
    encoder = unwrap(wire.build_item_encoder(request))
    files, sizes, _ = write_parts(encoded_items(encoder.encode_inline, keys, prompts),
                                  len(prompts) or 1,
                                  wire.MAX_FILE_BYTES, b",")
    _one_file(files)
    (inline,) = files
    try:
        size = sizes[0]
        inline_bytes = wire.inline_body_size(request.model, size, parsed.display_name)
        if inline_bytes <= wire.INLINE_LIMIT:
            created = transport.send(wire.build_inline_create(
                request.model, chunks(inline), size, parsed.display_name)
            ).bind(wire.parse_batch)
            mode = "inline"
        else:
            created = _create_from_file(transport, request, encoder, keys=keys, prompts=prompts,
                                        display_name=parsed.display_name)
            mode = "file"
    finally:
        inline.close()
    batch = unwrap(created.alt(lambda error: maybe_created(error, "the batch list")))
    job = GeminiJob(transport, batch.name, request=request, custom_ids=keys, batch=batch)
    log().info("started Gemini batch %s: %d requests (%s)", batch.name, len(prompts), mode)
    return Batch(job, job.snapshot())


def _create_from_file(transport: HTTPTransport, request: GenerationRequest,
                      encoder: wire.ItemEncoder, *, keys: Sequence[str],
                      prompts: Sequence[CheckedInput], display_name: str | None
                      ) -> Result[wire.GeminiBatch, LLMError]:
    files, sizes, _ = write_parts(encoded_items(encoder.encode_line, keys, prompts),
                                  len(prompts) or 1,
                                  wire.MAX_FILE_BYTES)
    _one_file(files)
    (sink,) = files
    try:
        size = sizes[0]
        label = display_name or "llmbackend-batch"

        def finish(url: str) -> Result[WireResponse, LLMError]:
            path = wire.upload_path(url, transport.base_url)
            if path is None:
                return Failure(ProviderError(
                    message="Gemini named an upload URL outside the client's base URL; "
                    "llmbackend sends the API key nowhere else", provider=NAME,
                    error_type="upload"))
            return transport.send(wire.build_upload_finish(path, chunks(sink), size))

        return (
            transport.send(wire.build_upload_start(size, label))
            .bind(wire.parse_upload_url)
            .bind(finish)
            .bind(wire.parse_file)
            .bind(lambda file_name: transport.send(
                wire.build_file_create(request.model, file_name, display_name)))
            .bind(wire.parse_batch)
        )
    finally:
        sink.close()


def _one_file(files: list[IO[bytes]]) -> None:
    if len(files) > 1:
        for sink in files:
            sink.close()
        raise ConfigurationError(
            message=f"the batch needs more than {wire.MAX_FILE_BYTES:,} bytes of input, "
            "the most one Gemini batch file takes; submit it in several batches", key="inputs")


def attach(transport: HTTPTransport, batch_id: str, request: GenerationRequest) -> Batch[Any]:
    """Effectful: a handle on an existing Gemini batch from its name alone."""
    return live(GeminiJob(transport, wire.batch_name(batch_id), request=request))


def restore(transport: HTTPTransport, saved: SavedHandle) -> Batch[Any]:
    """Effectful: the handle of a saved Gemini batch; the saved keys give the input order
    (without them, they are read from the results)."""
    known = saved.part_custom_ids
    job = GeminiJob(transport, wire.batch_name(saved.part_ids[0]), request=saved.request,
                    custom_ids=known[0] if known else None)
    return live(job, saved.order)


JOBS = NativeJobs(submit=submit, attach=attach, restore=restore)
