"""Effectful: provider batch jobs and the ``Batch`` handle that ``submit_batch``,
``get_batch`` and ``restore_batch`` return; the one provider -> job table, and the three
funnels the backends call (``submit``, ``attach``, ``restore``).

The package, module by module:

- ``handle``: ``Batch`` / ``CompletedBatch``, the ``BatchJob`` protocol, the wait loop;
- ``saved`` (pure): the saved-handle format, its check and its tolerant summary;
- ``files``: spooled input parts, result lines, the one download helper;
- ``native``: the ``NativeJobs`` record every provider's job module exports as ``JOBS``;
- ``parted``: a job of several provider batches, driven by one ``PartWire`` record a provider;
- ``openai``, ``anthropic``, ``gemini``: each provider's native job;
- ``immediate``: batches run now as concurrent calls, and ``completed_batch``.

Strategy: which provider's job runs is read from the provider registry
(``Registration.batch_jobs`` names the module), never decided by an if-chain on names; the
job modules are imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any

from llmbackend.errors import ConfigurationError, UnsupportedError
from llmbackend.jobs.files import write_parts
from llmbackend.jobs.handle import (
    DEFAULT_POLL_INTERVAL,
    Batch,
    BatchJob,
    CompletedBatch,
    Keep,
    Outcome,
    keep_parsed,
    keep_whole,
    keep_without_raw,
)
from llmbackend.jobs.immediate import (
    CompletedJob,
    arun_immediate_batch,
    completed_batch,
    run_immediate_batch,
)
from llmbackend.jobs.native import NativeJobs
from llmbackend.jobs.saved import (
    HANDLE_FORMAT,
    SavedHandle,
    SavedSummary,
    check_saved,
    request_from_dict,
    request_to_dict,
    summarize,
)
from llmbackend.messages import CheckedInput
from llmbackend.providers import Provider, registration
from llmbackend.transport import HTTPTransport
from llmbackend.types import ConfigInput, GenerationRequest, StructuredOutput

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "HANDLE_FORMAT",
    "Batch",
    "BatchJob",
    "CompletedBatch",
    "CompletedJob",
    "Keep",
    "NativeJobs",
    "Outcome",
    "SavedHandle",
    "SavedSummary",
    "arun_immediate_batch",
    "attach",
    "batch_request",
    "check_saved",
    "completed_batch",
    "keep_parsed",
    "keep_whole",
    "keep_without_raw",
    "native_jobs",
    "request_from_dict",
    "request_to_dict",
    "restore",
    "run_immediate_batch",
    "submit",
    "summarize",
    "write_parts",
]


def native_jobs(name: str) -> NativeJobs:
    """The native batch job of provider ``name`` (its ``JOBS``), from the provider registry;
    ``UnsupportedError`` (parameter ``mode``) for a provider without one."""
    row = registration(name)
    if row.batch_jobs is None:
        raise UnsupportedError(
            message=f"provider {name!r} has no native batch API in llmbackend; use "
            "batch_options={'mode': 'immediate'}", provider=row.name, parameter="mode")
    jobs = import_module(row.batch_jobs).JOBS
    assert isinstance(jobs, NativeJobs)
    return jobs


def submit(  # noqa: PLR0917 -- the backends call it positionally, as NativeJobs.submit
    provider: Provider, transport: HTTPTransport, request: GenerationRequest,
    prompts: list[CheckedInput], options: dict[str, Any], warn: Callable[[str], None],
) -> Batch[Any]:
    """Effectful: start ``provider``'s native batch job of ``prompts`` (checked, the mode
    already taken out of ``options``); raises the ``LLMError`` of a step that failed."""
    return native_jobs(provider.name).submit(transport, request, prompts, options, warn)


def attach(provider: Provider, transport: HTTPTransport, batch_id: str,
           request: GenerationRequest, order: Sequence[str] | None) -> Batch[Any]:
    """Effectful: a handle on ``provider``'s batch ``batch_id`` (its answers read with
    ``request``'s schema and options), its items in ``order`` when given."""
    if batch_id.startswith("immediate-"):
        raise ConfigurationError(
            message=f"{batch_id!r} is an immediate batch: it ran in the process that made it "
            "and nothing of it is kept at the provider, so it cannot be re-attached; keep its "
            "handle (or its results) instead", key="batch_id")
    handle = native_jobs(provider.name).attach(transport, batch_id, request)
    return handle if order is None else handle.in_order(order)


def restore(provider: Provider, transport: HTTPTransport, data: object,
            schema: StructuredOutput[Any] | None) -> Batch[Any]:
    """Effectful: the handle ``Batch.to_dict()`` saved as ``data``, re-attached over
    ``transport``; the saved custom ids give the input order without asking the provider."""
    saved = check_saved(data, schema)
    if saved.provider != provider.name:
        raise ConfigurationError(
            message=f"the saved batch is a {saved.provider!r} batch, not a "
            f"{provider.name!r} one", key="provider")
    return native_jobs(provider.name).restore(transport, saved)


def batch_request(model: str, config: ConfigInput, schema: StructuredOutput[Any] | None,
                  drop_unsupported: bool) -> GenerationRequest:
    """The request every item of a batch shares (its ``input`` is set per item)."""
    from llmbackend.convert import config_from

    return GenerationRequest(model=model, input="", config=config_from(config), schema=schema,
                             drop_unsupported=drop_unsupported)
