"""Effectful: what every provider's native batch job shares: the ``NativeJobs`` record each
``llmbackend.jobs.<provider>`` module exports as ``JOBS``, and the few helpers they all use.

Strategy: the shell chooses a provider's job by table (``llmbackend.jobs.native_jobs`` reads
the provider registry), never by an if-chain on names; so each job module offers the same
three verbs with the same signatures, and a new provider adds one module and one registry row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from attrs import evolve, frozen

from llmbackend.batching import ResultReport
from llmbackend.errors import LLMError, TransportError, unwrap
from llmbackend.jobs.handle import Batch, BatchJob
from llmbackend.jobs.saved import SavedHandle
from llmbackend.logs import log
from llmbackend.messages import CheckedInput
from llmbackend.transport import HTTPTransport
from llmbackend.types import GenerationRequest

__all__ = ["Attach", "NativeJobs", "Restore", "Submit", "live", "log_report", "maybe_created"]

#: ``submit(transport, request, prompts, options, warn)``: start a job of ``prompts``.
Submit = Callable[[HTTPTransport, GenerationRequest, Sequence[CheckedInput], Mapping[str, Any],
                   Callable[[str], None]], Batch[Any]]
#: ``attach(transport, batch_id, request)``: a handle on a job from its id alone; ``request``
#: has model ``""`` and carries the schema and provider options to read the answers with.
Attach = Callable[[HTTPTransport, str, GenerationRequest], Batch[Any]]
#: ``restore(transport, saved)``: the handle of a checked saved handle.
Restore = Callable[[HTTPTransport, SavedHandle], Batch[Any]]


@frozen(kw_only=True)
class NativeJobs:
    """One provider's native batch job: its three verbs (see ``Submit``, ``Attach``,
    ``Restore``). Each raises the ``LLMError`` of a step that failed."""

    submit: Submit
    attach: Attach
    restore: Restore


def maybe_created(error: LLMError, where: str) -> LLMError:
    """``error`` of a create request; when it is a ``TransportError`` (no answer came), it says
    that the batch may exist anyway and to look in ``where`` before submitting again.

    Strategy: a create whose answer was lost is not sent again blindly (that could bill the
    batch twice) unless the provider offers a way to find it (OpenAI does, by input file)."""
    if not isinstance(error, TransportError):
        return error
    return evolve(error, message=f"{error.message}; the batch may have been created anyway: "
                  f"check {where} before submitting again")


def log_report(batch_id: str, report: ResultReport[Any], unreadable: str) -> None:
    """The one warning line of results that were not used (``report.clean`` is quiet);
    ``unreadable`` says in the provider's words what an unreadable one is."""
    if report.clean:
        return
    log().warning(
        "batch %s: %d result line(s) name a custom id that is not among the inputs (first: %r) "
        "and %d %s; none of them was used", batch_id, len(report.unknown_ids),
        list(report.unknown_ids[:1]), report.unreadable_lines, unreadable)


def live(job: BatchJob, order: Sequence[str] | None = None) -> Batch[Any]:
    """The handle of ``job`` (an existing batch), its state fetched now; ``order``: the item
    order a saved handle chose."""
    return Batch(job, unwrap(job.refresh()), order)
