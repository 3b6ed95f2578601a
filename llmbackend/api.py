"""Effectful: the public functions and ``Client``: signatures, typed overloads, docstrings, and
one-line bodies.

Two faces of one pipeline:
- the seed face, ``get_response`` and ``Client.get_response``: returns the answer (``str``, or the
  parsed object when a schema is given) and raises the ``LLMError`` subclass on failure;
- the typed face, ``generate`` and ``Client.generate``: returns ``Result[Generation[T], LLMError]``
  for code that matches on failures instead of catching them.
Programmer errors (unknown provider, option or config key, bad argument types, missing API key)
raise ``ConfigurationError`` / ``MissingCredentialsError`` at once on both faces.

Every ``input`` (and every item of ``inputs``) is a prompt string or a list of messages
(``{"role": "system" | "user" | "assistant", "content": str}`` dicts or ``llmbackend.Message``
values; ``llmbackend.Input`` is the type): see docs/messages.md.

Strategy: every body here is one funnel into a backend (``llmbackend.backends``), the way httpx's
top-level ``get`` opens a client and calls ``request``: ``client(...)`` opens a backend of its
own, the top-level functions a shared one. Which kind of provider it is (remote or local), how
options become settings, and how a batch is run are decided there, once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from returns.result import Result

from llmbackend.backends import Backend, LLMBackendWarning, in_thread, open_backend
from llmbackend.batching import DEFAULT_CONCURRENCY
from llmbackend.errors import ConfigurationError, LLMError, unwrap
from llmbackend.fanout import Progress
from llmbackend.messages import Input
from llmbackend.streaming import AsyncTextStream, TextStream
from llmbackend.types import ConfigInput, Generation, StructuredOutput

if TYPE_CHECKING:
    from llmbackend.jobs import Batch

__all__ = [
    "AsyncTextStream",
    "Client",
    "LLMBackendWarning",
    "TextStream",
    "acreate_batch",
    "agenerate",
    "aget_batch",
    "aget_response",
    "arestore_batch",
    "astream",
    "client",
    "create_batch",
    "generate",
    "get_batch",
    "get_response",
    "restore_batch",
    "stream",
    "unwrap_or_raise",
]

T = TypeVar("T")

#: The ``Result`` -> value-or-exception step, by its old name (``llmbackend.errors.unwrap``).
unwrap_or_raise = unwrap


class Client:
    """Effectful: one provider and model, with its own pooled connection.

    Make it with ``llmbackend.client(provider, model, **provider_options)``; close it when done
    (or use it as a context manager).
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.model = backend.model

    @property
    def provider(self) -> str:
        return self._backend.provider

    def __repr__(self) -> str:
        return (f"Client(provider={self.provider!r}, model={self.model!r}, "
                f"base_url={self._backend.where()!r})")

    def close(self) -> None:
        """Close the pooled connections (or let go of a local model)."""
        self._backend.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, traceback: TracebackType | None) -> None:
        await self.aclose()

    @overload
    def generate(self, input: Input, config: ConfigInput = None, schema: None = None, *,
                 timeout: float | None = None, max_retries: int | None = None
                 ) -> Result[Generation[str], LLMError]: ...

    @overload
    def generate(self, input: Input, config: ConfigInput, schema: StructuredOutput[T], *,
                 timeout: float | None = None, max_retries: int | None = None
                 ) -> Result[Generation[T], LLMError]: ...

    @overload
    def generate(self, input: Input, config: ConfigInput = None, *, schema: StructuredOutput[T],
                 timeout: float | None = None, max_retries: int | None = None
                 ) -> Result[Generation[T], LLMError]: ...

    def generate(self, input: Input, config: ConfigInput = None,
                 schema: StructuredOutput[Any] | None = None, *, timeout: float | None = None,
                 max_retries: int | None = None) -> Result[Generation[Any], LLMError]:
        """Typed face: the whole ``Generation`` on success, the ``LLMError`` as a ``Failure``.

        ``input`` is a prompt string or a list of messages (see docs/messages.md). ``timeout``
        (seconds for the whole request, each attempt) and ``max_retries`` override
        the client's for this call only (see docs/retries-and-timeouts.md).
        """
        return self._backend.generate(input, config, schema, timeout=timeout,
                                     max_retries=max_retries)

    @overload
    async def agenerate(self, input: Input, config: ConfigInput = None, schema: None = None, *,
                        timeout: float | None = None, max_retries: int | None = None
                        ) -> Result[Generation[str], LLMError]: ...

    @overload
    async def agenerate(self, input: Input, config: ConfigInput, schema: StructuredOutput[T], *,
                        timeout: float | None = None, max_retries: int | None = None
                        ) -> Result[Generation[T], LLMError]: ...

    @overload
    async def agenerate(self, input: Input, config: ConfigInput = None, *,
                        schema: StructuredOutput[T], timeout: float | None = None,
                        max_retries: int | None = None) -> Result[Generation[T], LLMError]: ...

    async def agenerate(self, input: Input, config: ConfigInput = None,
                        schema: StructuredOutput[Any] | None = None, *,
                        timeout: float | None = None, max_retries: int | None = None
                        ) -> Result[Generation[Any], LLMError]:
        """Async typed face: ``generate`` on the running event loop. Remote providers use an
        async connection pool (one per event loop); a local model runs in a worker thread."""
        return await self._backend.agenerate(input, config, schema, timeout=timeout,
                                            max_retries=max_retries)

    @overload
    async def aget_response(self, input: Input, config: ConfigInput = None, schema: None = None,
                            *, timeout: float | None = None, max_retries: int | None = None
                            ) -> str: ...

    @overload
    async def aget_response(self, input: Input, config: ConfigInput,
                            schema: StructuredOutput[T], *, timeout: float | None = None,
                            max_retries: int | None = None) -> T: ...

    @overload
    async def aget_response(self, input: Input, config: ConfigInput = None, *,
                            schema: StructuredOutput[T], timeout: float | None = None,
                            max_retries: int | None = None) -> T: ...

    async def aget_response(self, input: Input, config: ConfigInput = None,
                            schema: StructuredOutput[Any] | None = None, *,
                            timeout: float | None = None, max_retries: int | None = None
                            ) -> Any:
        """Async seed face: the answer, or the ``LLMError`` raised."""
        return unwrap(await self.agenerate(
            input, config, schema, timeout=timeout, max_retries=max_retries)).parsed

    async def aclose(self) -> None:
        """Close the pooled connections, the async ones included."""
        await self._backend.aclose()

    @overload
    def get_response(self, input: Input, config: ConfigInput = None, schema: None = None, *,
                     timeout: float | None = None, max_retries: int | None = None) -> str: ...

    @overload
    def get_response(self, input: Input, config: ConfigInput, schema: StructuredOutput[T], *,
                     timeout: float | None = None, max_retries: int | None = None) -> T: ...

    @overload
    def get_response(self, input: Input, config: ConfigInput = None, *,
                     schema: StructuredOutput[T], timeout: float | None = None,
                     max_retries: int | None = None) -> T: ...

    def get_response(self, input: Input, config: ConfigInput = None,
                     schema: StructuredOutput[Any] | None = None, *,
                     timeout: float | None = None, max_retries: int | None = None) -> Any:
        """Seed face: the answer (text, or the parsed object with a schema); raises ``LLMError``.
        ``timeout`` and ``max_retries`` override the client's for this call only."""
        return unwrap(self.generate(
            input, config, schema, timeout=timeout, max_retries=max_retries)).parsed

    @overload
    def stream(self, input: Input, config: ConfigInput = None, schema: None = None, *,
               timeout: float | None = None, max_retries: int | None = None
               ) -> TextStream[str]: ...

    @overload
    def stream(self, input: Input, config: ConfigInput, schema: StructuredOutput[T], *,
               timeout: float | None = None, max_retries: int | None = None
               ) -> TextStream[T]: ...

    @overload
    def stream(self, input: Input, config: ConfigInput = None, *, schema: StructuredOutput[T],
               timeout: float | None = None, max_retries: int | None = None
               ) -> TextStream[T]: ...

    def stream(self, input: Input, config: ConfigInput = None,
               schema: StructuredOutput[Any] | None = None, *, timeout: float | None = None,
               max_retries: int | None = None) -> TextStream[Any]:
        """The answer, streamed: a ``TextStream`` to iterate for the text deltas as they
        arrive, in a ``with`` block (leaving it closes the connection, even mid-stream).
        ``stream.generation`` is then what ``generate`` returns for the same answer, and
        ``stream.result()`` the typed face's ``Result``. Arguments as for ``generate``, except
        that ``timeout`` bounds the wait for each next byte, not the whole answer. Bad
        arguments raise at once; the request is sent when the stream is first read. See
        docs/streaming.md.
        """
        return self._backend.stream(input, config, schema, timeout=timeout,
                                    max_retries=max_retries)

    @overload
    def astream(self, input: Input, config: ConfigInput = None, schema: None = None, *,
                timeout: float | None = None, max_retries: int | None = None
                ) -> AsyncTextStream[str]: ...

    @overload
    def astream(self, input: Input, config: ConfigInput, schema: StructuredOutput[T], *,
                timeout: float | None = None, max_retries: int | None = None
                ) -> AsyncTextStream[T]: ...

    @overload
    def astream(self, input: Input, config: ConfigInput = None, *,
                schema: StructuredOutput[T], timeout: float | None = None,
                max_retries: int | None = None) -> AsyncTextStream[T]: ...

    def astream(self, input: Input, config: ConfigInput = None,
                schema: StructuredOutput[Any] | None = None, *, timeout: float | None = None,
                max_retries: int | None = None) -> AsyncTextStream[Any]:
        """``stream`` on an event loop: ``async with client.astream(...) as stream:``, then
        ``async for delta in stream``; ``await stream.result()``; ``aclose()``."""
        return self._backend.astream(input, config, schema, timeout=timeout,
                                     max_retries=max_retries)

    @overload
    def map(self, inputs: Iterable[Input], config: ConfigInput = None, schema: None = None, *,
            concurrency: int = DEFAULT_CONCURRENCY, progress: Progress | bool | None = None,
            timeout: float | None = None, max_retries: int | None = None
            ) -> Generator[Result[Generation[str], LLMError], None, None]: ...

    @overload
    def map(self, inputs: Iterable[Input], config: ConfigInput, schema: StructuredOutput[T], *,
            concurrency: int = DEFAULT_CONCURRENCY, progress: Progress | bool | None = None,
            timeout: float | None = None, max_retries: int | None = None
            ) -> Generator[Result[Generation[T], LLMError], None, None]: ...

    @overload
    def map(self, inputs: Iterable[Input], config: ConfigInput = None, *,
            schema: StructuredOutput[T], concurrency: int = DEFAULT_CONCURRENCY,
            progress: Progress | bool | None = None, timeout: float | None = None,
            max_retries: int | None = None
            ) -> Generator[Result[Generation[T], LLMError], None, None]: ...

    def map(self, inputs: Iterable[Input], config: ConfigInput = None,
            schema: StructuredOutput[Any] | None = None, *,
            concurrency: int = DEFAULT_CONCURRENCY, progress: Progress | bool | None = None,
            timeout: float | None = None, max_retries: int | None = None
            ) -> Generator[Result[Generation[Any], LLMError], None, None]:
        """Fan-out, typed face: one ``generate`` per input, ``concurrency`` at a time (any whole
        number from 1, default 8); each input's ``Result`` in input order, as an iterator you
        loop over.

        Memory stays bounded whatever the number of inputs: ``inputs`` may be a generator, it
        is read ``2 x concurrency`` ahead at most, and each result is handed back as soon as
        those before it are. A failed prompt is a ``Failure`` at its place; it never stops the
        others. ``progress`` is ``True`` (a bar: tqdm if installed, else a line on stderr) or
        a ``callable(done, total)`` (``total`` is ``None`` for an input without a length).
        A config the provider cannot take raises at once, before anything is sent. A local
        provider runs ``concurrency`` prompts per batched generate call instead.
        See docs/fan-out.md.
        """
        return self._backend.map(inputs, config, schema, concurrency=concurrency,
                                 progress=progress, timeout=timeout, max_retries=max_retries)

    @overload
    def amap(self, inputs: Iterable[Input] | AsyncIterable[Input], config: ConfigInput = None,
             schema: None = None, *, concurrency: int = DEFAULT_CONCURRENCY,
             progress: Progress | bool | None = None, timeout: float | None = None,
             max_retries: int | None = None
             ) -> AsyncGenerator[Result[Generation[str], LLMError], None]: ...

    @overload
    def amap(self, inputs: Iterable[Input] | AsyncIterable[Input], config: ConfigInput,
             schema: StructuredOutput[T], *, concurrency: int = DEFAULT_CONCURRENCY,
             progress: Progress | bool | None = None, timeout: float | None = None,
             max_retries: int | None = None
             ) -> AsyncGenerator[Result[Generation[T], LLMError], None]: ...

    @overload
    def amap(self, inputs: Iterable[Input] | AsyncIterable[Input], config: ConfigInput = None, *,
             schema: StructuredOutput[T], concurrency: int = DEFAULT_CONCURRENCY,
             progress: Progress | bool | None = None, timeout: float | None = None,
             max_retries: int | None = None
             ) -> AsyncGenerator[Result[Generation[T], LLMError], None]: ...

    def amap(self, inputs: Iterable[Input] | AsyncIterable[Input], config: ConfigInput = None,
             schema: StructuredOutput[Any] | None = None, *,
             concurrency: int = DEFAULT_CONCURRENCY, progress: Progress | bool | None = None,
             timeout: float | None = None, max_retries: int | None = None
             ) -> AsyncGenerator[Result[Generation[Any], LLMError], None]:
        """Async fan-out: ``map`` as tasks on the running event loop, for ``async for``;
        ``inputs`` may also be an async iterable. A local model runs in a worker thread."""
        return self._backend.amap(inputs, config, schema, concurrency=concurrency,
                                  progress=progress, timeout=timeout, max_retries=max_retries)

    @overload
    def submit_batch(self, inputs: Iterable[Input], config: ConfigInput = None,
                     schema: None = None, batch_options: Mapping[str, Any] | None = None
                     ) -> Batch[str]: ...

    @overload
    def submit_batch(self, inputs: Iterable[Input], config: ConfigInput,
                     schema: StructuredOutput[T],
                     batch_options: Mapping[str, Any] | None = None) -> Batch[T]: ...

    @overload
    def submit_batch(self, inputs: Iterable[Input], config: ConfigInput = None, *,
                     schema: StructuredOutput[T],
                     batch_options: Mapping[str, Any] | None = None) -> Batch[T]: ...

    def submit_batch(self, inputs: Iterable[Input], config: ConfigInput = None,
                     schema: StructuredOutput[Any] | None = None,
                     batch_options: Mapping[str, Any] | None = None) -> Batch[Any]:
        """Start a provider batch job of ``inputs`` (each a prompt or a list of messages) and
        return its handle.

        ``batch_options`` for OpenAI: ``display_name``, ``completion_window`` (``"24h"``),
        ``custom_ids`` (one unique id per input), ``system``, ``max_requests_per_batch``. Bad
        inputs or options raise ``ConfigurationError`` before anything is uploaded. See
        ``docs/batches.md``.
        """
        return self._backend.submit_batch(inputs, config, schema, batch_options)

    @overload
    def get_batch(self, batch_id: str, schema: None = None,
                  custom_ids: Sequence[str] | None = None) -> Batch[Any]: ...

    @overload
    def get_batch(self, batch_id: str, schema: StructuredOutput[T],
                  custom_ids: Sequence[str] | None = None) -> Batch[T]: ...

    def get_batch(self, batch_id: str, schema: StructuredOutput[Any] | None = None,
                  custom_ids: Sequence[str] | None = None) -> Batch[Any]:
        """Re-attach to a batch from its id (e.g. in another process). Give the ``schema`` it was
        submitted with to get the parsed objects back (on OpenAI, without one a structured
        batch's answers come back as JSON values, checked against the schema in its input file).
        ``custom_ids`` lists the items in the order you want them back (needed for your own
        ids on Anthropic, which keeps no copy of the inputs; see docs/batches.md)."""
        return self._backend.get_batch(batch_id, schema, custom_ids)

    @overload
    def restore_batch(self, saved: Mapping[str, Any], schema: None = None) -> Batch[Any]: ...

    @overload
    def restore_batch(self, saved: Mapping[str, Any], schema: StructuredOutput[T]
                      ) -> Batch[T]: ...

    def restore_batch(self, saved: Mapping[str, Any],
                      schema: StructuredOutput[Any] | None = None) -> Batch[Any]:
        """The handle that ``Batch.to_dict()`` saved, re-attached through this client; give
        the ``schema`` it was submitted with to get Pydantic objects back."""
        return self._backend.restore_batch(saved, schema)

    @overload
    async def asubmit_batch(self, inputs: Iterable[Input], config: ConfigInput = None,
                            schema: None = None, batch_options: Mapping[str, Any] | None = None
                            ) -> Batch[str]: ...

    @overload
    async def asubmit_batch(self, inputs: Iterable[Input], config: ConfigInput,
                            schema: StructuredOutput[T],
                            batch_options: Mapping[str, Any] | None = None) -> Batch[T]: ...

    @overload
    async def asubmit_batch(self, inputs: Iterable[Input], config: ConfigInput = None, *,
                            schema: StructuredOutput[T],
                            batch_options: Mapping[str, Any] | None = None) -> Batch[T]: ...

    async def asubmit_batch(self, inputs: Iterable[Input], config: ConfigInput = None,
                            schema: StructuredOutput[Any] | None = None,
                            batch_options: Mapping[str, Any] | None = None) -> Batch[Any]:
        """Async ``submit_batch``: an immediate batch runs as tasks on the event loop, a native
        job is uploaded and created in a worker thread. The handle's ``astatus()``,
        ``await_()``, ``aresults()`` and ``aoutcomes()`` are its async twins."""
        return await self._backend.asubmit_batch(inputs, config, schema, batch_options)

    @overload
    async def aget_batch(self, batch_id: str, schema: None = None,
                         custom_ids: Sequence[str] | None = None) -> Batch[Any]: ...

    @overload
    async def aget_batch(self, batch_id: str, schema: StructuredOutput[T],
                         custom_ids: Sequence[str] | None = None) -> Batch[T]: ...

    async def aget_batch(self, batch_id: str, schema: StructuredOutput[Any] | None = None,
                         custom_ids: Sequence[str] | None = None) -> Batch[Any]:
        """Async ``get_batch`` (its requests run in a worker thread)."""
        return await in_thread(self._backend.get_batch, batch_id, schema, custom_ids)

    @overload
    async def arestore_batch(self, saved: Mapping[str, Any], schema: None = None
                             ) -> Batch[Any]: ...

    @overload
    async def arestore_batch(self, saved: Mapping[str, Any], schema: StructuredOutput[T]
                             ) -> Batch[T]: ...

    async def arestore_batch(self, saved: Mapping[str, Any],
                             schema: StructuredOutput[Any] | None = None) -> Batch[Any]:
        """Async ``restore_batch`` (its request runs in a worker thread)."""
        return await in_thread(self._backend.restore_batch, saved, schema)


def client(provider: str, model: str, **provider_options: Any) -> Client:
    """A client for one provider and model.

    Provider options for the remote providers: ``api_key`` and ``base_url`` (else read from the
    provider's environment variables), ``timeout`` (seconds, default 600), ``max_retries``
    (default 2), ``headers`` (extra HTTP headers) and ``drop_unsupported_params`` (drop, with a
    warning, config parameters the provider does not have, instead of failing).
    """
    return Client(open_backend(provider, model, provider_options, shared=False))


@overload
def generate(provider: str, model: str, input: Input, config: ConfigInput = None,
             schema: None = None, **provider_options: Any) -> Result[Generation[str], LLMError]: ...


@overload
def generate(provider: str, model: str, input: Input, config: ConfigInput,
             schema: StructuredOutput[T], **provider_options: Any
             ) -> Result[Generation[T], LLMError]: ...


@overload
def generate(provider: str, model: str, input: Input, config: ConfigInput = None, *,
             schema: StructuredOutput[T], **provider_options: Any
             ) -> Result[Generation[T], LLMError]: ...


def generate(provider: str, model: str, input: Input, config: ConfigInput = None,
             schema: StructuredOutput[Any] | None = None, **provider_options: Any
             ) -> Result[Generation[Any], LLMError]:
    """Typed face, one call: ``Result[Generation[T], LLMError]`` without making a client.

    Connections are pooled and shared between calls with the same provider settings (and a
    local provider's model stays loaded between calls).
    """
    return open_backend(provider, model, provider_options, shared=True).generate(
        input, config, schema)


@overload
def get_response(provider: str, model: str, input: Input, config: ConfigInput = None,
                 schema: None = None, **provider_options: Any) -> str: ...


@overload
def get_response(provider: str, model: str, input: Input, config: ConfigInput,
                 schema: StructuredOutput[T], **provider_options: Any) -> T: ...


@overload
def get_response(provider: str, model: str, input: Input, config: ConfigInput = None, *,
                 schema: StructuredOutput[T], **provider_options: Any) -> T: ...


def get_response(provider: str, model: str, input: Input, config: ConfigInput = None,
                 schema: StructuredOutput[Any] | None = None, **provider_options: Any) -> Any:
    """Seed face, one call: the answer (text, or the parsed object with a schema).

    Raises the ``LLMError`` subclass that says what went wrong.
    """
    return unwrap(generate(provider, model, input, config, schema, **provider_options)).parsed


@overload
def stream(provider: str, model: str, input: Input, config: ConfigInput = None,
           schema: None = None, **provider_options: Any) -> TextStream[str]: ...


@overload
def stream(provider: str, model: str, input: Input, config: ConfigInput,
           schema: StructuredOutput[T], **provider_options: Any) -> TextStream[T]: ...


@overload
def stream(provider: str, model: str, input: Input, config: ConfigInput = None, *,
           schema: StructuredOutput[T], **provider_options: Any) -> TextStream[T]: ...


def stream(provider: str, model: str, input: Input, config: ConfigInput = None,
           schema: StructuredOutput[Any] | None = None, **provider_options: Any
           ) -> TextStream[Any]:
    """The answer, streamed, without making a client (``Client.stream``; connections pooled
    as for ``generate``)."""
    return open_backend(provider, model, provider_options, shared=True).stream(
        input, config, schema)


@overload
def astream(provider: str, model: str, input: Input, config: ConfigInput = None,
            schema: None = None, **provider_options: Any) -> AsyncTextStream[str]: ...


@overload
def astream(provider: str, model: str, input: Input, config: ConfigInput,
            schema: StructuredOutput[T], **provider_options: Any) -> AsyncTextStream[T]: ...


@overload
def astream(provider: str, model: str, input: Input, config: ConfigInput = None, *,
            schema: StructuredOutput[T], **provider_options: Any) -> AsyncTextStream[T]: ...


def astream(provider: str, model: str, input: Input, config: ConfigInput = None,
            schema: StructuredOutput[Any] | None = None, **provider_options: Any
            ) -> AsyncTextStream[Any]:
    """``stream`` on an event loop (``Client.astream``)."""
    return open_backend(provider, model, provider_options, shared=True).astream(
        input, config, schema)


@overload
def create_batch(inputs: Iterable[Input], provider: str, model: str, config: ConfigInput = None,
                 schema: None = None, batch_options: Mapping[str, Any] | None = None,
                 **provider_options: Any) -> Batch[str]: ...


@overload
def create_batch(inputs: Iterable[Input], provider: str, model: str, config: ConfigInput,
                 schema: StructuredOutput[T], batch_options: Mapping[str, Any] | None = None,
                 **provider_options: Any) -> Batch[T]: ...


@overload
def create_batch(inputs: Iterable[Input], provider: str, model: str, config: ConfigInput = None,
                 *, schema: StructuredOutput[T], batch_options: Mapping[str, Any] | None = None,
                 **provider_options: Any) -> Batch[T]: ...


def create_batch(  # noqa: PLR0917 -- the seed README's signature, positional as documented
    inputs: Iterable[Input], provider: str, model: str, config: ConfigInput = None,
    schema: StructuredOutput[Any] | None = None, batch_options: Mapping[str, Any] | None = None,
    **provider_options: Any,
) -> Batch[Any]:
    """Start a provider batch job without making a client; the handle, as
    ``client(provider, model).submit_batch(...)`` returns it."""
    return open_backend(provider, model, provider_options, shared=True).submit_batch(
        inputs, config, schema, batch_options)


@overload
def get_batch(provider: str, batch_id: str, schema: None = None,
              custom_ids: Sequence[str] | None = None, **provider_options: Any) -> Batch[Any]: ...


@overload
def get_batch(provider: str, batch_id: str, schema: StructuredOutput[T],
              custom_ids: Sequence[str] | None = None, **provider_options: Any) -> Batch[T]: ...


def get_batch(provider: str, batch_id: str, schema: StructuredOutput[Any] | None = None,
              custom_ids: Sequence[str] | None = None, **provider_options: Any) -> Batch[Any]:
    """Re-attach to a batch from its id alone, in any process: ``get_batch("openai", id)``.

    Its results still come back in input order: the order and the custom ids are read back
    from the provider. Give the ``schema`` it was submitted with to get parsed objects back.
    """
    return open_backend(provider, None, provider_options, shared=True).get_batch(
        batch_id, schema, custom_ids)


@overload
def restore_batch(saved: Mapping[str, Any], schema: None = None, **provider_options: Any
                  ) -> Batch[Any]: ...


@overload
def restore_batch(saved: Mapping[str, Any], schema: StructuredOutput[T],
                  **provider_options: Any) -> Batch[T]: ...


def restore_batch(saved: Mapping[str, Any], schema: StructuredOutput[Any] | None = None,
                  **provider_options: Any) -> Batch[Any]:
    """The handle that ``Batch.to_dict()`` saved (e.g. as JSON), in any process: its results
    come back in input order without reading the inputs back. Credentials and base URL come
    from ``provider_options`` and the environment, as for ``client(...)``; give the ``schema``
    it was submitted with to get Pydantic objects back (else the saved JSON schema is used)."""
    if not isinstance(saved, Mapping):
        raise ConfigurationError(message="restore_batch takes what Batch.to_dict() returned",
                                 key="batch")
    return open_backend(saved.get("provider"), None, provider_options, shared=True
                        ).restore_batch(saved, schema)


@overload
async def agenerate(provider: str, model: str, input: Input, config: ConfigInput = None,
                    schema: None = None, **provider_options: Any
                    ) -> Result[Generation[str], LLMError]: ...


@overload
async def agenerate(provider: str, model: str, input: Input, config: ConfigInput,
                    schema: StructuredOutput[T], **provider_options: Any
                    ) -> Result[Generation[T], LLMError]: ...


@overload
async def agenerate(provider: str, model: str, input: Input, config: ConfigInput = None, *,
                    schema: StructuredOutput[T], **provider_options: Any
                    ) -> Result[Generation[T], LLMError]: ...


async def agenerate(provider: str, model: str, input: Input, config: ConfigInput = None,
                    schema: StructuredOutput[Any] | None = None, **provider_options: Any
                    ) -> Result[Generation[Any], LLMError]:
    """Async typed face, one call: ``generate`` on the running event loop."""
    return await open_backend(provider, model, provider_options, shared=True).agenerate(
        input, config, schema)


@overload
async def aget_response(provider: str, model: str, input: Input, config: ConfigInput = None,
                        schema: None = None, **provider_options: Any) -> str: ...


@overload
async def aget_response(provider: str, model: str, input: Input, config: ConfigInput,
                        schema: StructuredOutput[T], **provider_options: Any) -> T: ...


@overload
async def aget_response(provider: str, model: str, input: Input, config: ConfigInput = None, *,
                        schema: StructuredOutput[T], **provider_options: Any) -> T: ...


async def aget_response(provider: str, model: str, input: Input, config: ConfigInput = None,
                        schema: StructuredOutput[Any] | None = None, **provider_options: Any
                        ) -> Any:
    """Async seed face, one call: the answer, or the ``LLMError`` raised."""
    return unwrap(await agenerate(provider, model, input, config, schema,
                                **provider_options)).parsed


@overload
async def acreate_batch(inputs: Iterable[Input], provider: str, model: str,
                        config: ConfigInput = None, schema: None = None,
                        batch_options: Mapping[str, Any] | None = None,
                        **provider_options: Any) -> Batch[str]: ...


@overload
async def acreate_batch(inputs: Iterable[Input], provider: str, model: str, config: ConfigInput,
                        schema: StructuredOutput[T],
                        batch_options: Mapping[str, Any] | None = None,
                        **provider_options: Any) -> Batch[T]: ...


@overload
async def acreate_batch(inputs: Iterable[Input], provider: str, model: str,
                        config: ConfigInput = None, *, schema: StructuredOutput[T],
                        batch_options: Mapping[str, Any] | None = None,
                        **provider_options: Any) -> Batch[T]: ...


async def acreate_batch(  # noqa: PLR0917 -- create_batch's signature
    inputs: Iterable[Input], provider: str, model: str, config: ConfigInput = None,
    schema: StructuredOutput[Any] | None = None, batch_options: Mapping[str, Any] | None = None,
    **provider_options: Any,
) -> Batch[Any]:
    """Async ``create_batch``: an immediate batch runs as tasks on the event loop, a native job
    is uploaded and created in a worker thread."""
    return await open_backend(provider, model, provider_options, shared=True
                              ).asubmit_batch(inputs, config, schema, batch_options)


@overload
async def aget_batch(provider: str, batch_id: str, schema: None = None,
                     custom_ids: Sequence[str] | None = None, **provider_options: Any
                     ) -> Batch[Any]: ...


@overload
async def aget_batch(provider: str, batch_id: str, schema: StructuredOutput[T],
                     custom_ids: Sequence[str] | None = None, **provider_options: Any
                     ) -> Batch[T]: ...


async def aget_batch(provider: str, batch_id: str, schema: StructuredOutput[Any] | None = None,
                     custom_ids: Sequence[str] | None = None, **provider_options: Any
                     ) -> Batch[Any]:
    """Async ``get_batch`` (its requests run in a worker thread)."""
    return await in_thread(
        lambda: get_batch(provider, batch_id, schema, custom_ids, **provider_options))


@overload
async def arestore_batch(saved: Mapping[str, Any], schema: None = None,
                         **provider_options: Any) -> Batch[Any]: ...


@overload
async def arestore_batch(saved: Mapping[str, Any], schema: StructuredOutput[T],
                         **provider_options: Any) -> Batch[T]: ...


async def arestore_batch(saved: Mapping[str, Any], schema: StructuredOutput[Any] | None = None,
                         **provider_options: Any) -> Batch[Any]:
    """Async ``restore_batch`` (its request runs in a worker thread)."""
    return await in_thread(lambda: restore_batch(saved, schema, **provider_options))
