"""Pure: the typed composition of a generation: build -> send -> parse -> validate, on ``Result``.

Strategy: the transport is a parameter (``send``), so this module does no I/O itself and any
sender works: llmbackend's pooled transport, a test double, or your own HTTP stack. Each step is a
named function chained with ``.bind``; the first failure short-circuits the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from attrs import evolve
from returns.result import Failure, Result, Success

from llmbackend.convert import validate_output
from llmbackend.errors import LLMError
from llmbackend.providers import Provider
from llmbackend.types import (
    Generation,
    GenerationRequest,
    StructuredOutput,
    WireRequest,
    WireResponse,
)

__all__ = [
    "AsyncSend",
    "Send",
    "agenerate",
    "attach_parsed",
    "generate",
]

#: What the pipeline needs from a transport: one request in, one response (or failure) out.
Send = Callable[[WireRequest], Result[WireResponse, LLMError]]
#: The same, awaited: the async transport's ``asend``.
AsyncSend = Callable[[WireRequest], Awaitable[Result[WireResponse, LLMError]]]


def generate(
    provider: Provider, request: GenerationRequest, send: Send
) -> Result[Generation[Any], LLMError]:
    """The answer to one request: ``parsed`` is the text, or the validated object when the
    request has a schema. Pure given a pure ``send``."""
    return (
        provider.build_generation(request)
        .bind(send)
        .bind(lambda response: provider.parse_generation(request, response))
        .bind(lambda generation: attach_parsed(request.schema, generation))
    )


async def agenerate(
    provider: Provider, request: GenerationRequest, send: AsyncSend
) -> Result[Generation[Any], LLMError]:
    """``generate`` with an awaited sender: the same builder, parser and validation, so the
    async face answers exactly as the sync one."""
    built = provider.build_generation(request)
    if isinstance(built, Failure):
        return built
    sent = await send(built.unwrap())
    return sent.bind(lambda response: provider.parse_generation(request, response)).bind(
        lambda generation: attach_parsed(request.schema, generation))


def attach_parsed(
    schema: StructuredOutput[Any] | None, generation: Generation[str]
) -> Result[Generation[Any], LLMError]:
    """Pure: ``generation`` with its text validated against ``schema`` as ``parsed`` (unchanged
    when there is no schema)."""
    if schema is None:
        return Success(generation)
    return validate_output(schema, generation.text, generation.provider).map(
        lambda parsed: cast(Generation[Any], evolve(generation, parsed=parsed))
    )
