"""Effectful: the public shell. Reads the environment, owns the transports, emits warnings, and is
the one place where a ``Result`` becomes a value or an exception.

Two faces of one pipeline:
- the seed face, ``get_response`` and ``Client.get_response``: returns the answer (``str``, or the
  parsed object when a schema is given) and raises the ``LLMError`` subclass on failure;
- the typed face, ``generate`` and ``Client.generate``: returns ``Result[Generation[T], LLMError]``
  for code that matches on failures instead of catching them.
Programmer errors (unknown provider, option or config key, bad argument types, missing API key)
raise ``ConfigurationError`` / ``MissingCredentialsError`` at once on both faces.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from attrs import evolve, field, frozen
from returns.result import Failure, Result, Success

from llmbackend import fanout, pipeline
from llmbackend.batching import DEFAULT_CONCURRENCY, check_concurrency
from llmbackend.convert import config_from
from llmbackend.errors import (
    ConfigurationError,
    LLMError,
    MissingCredentialsError,
    UnsupportedError,
    did_you_mean,
)
from llmbackend.fanout import Progress
from llmbackend.progress import check_progress, progress_callback
from llmbackend.providers import Provider, get_provider
from llmbackend.providers.local import LOCAL_PROVIDERS, LocalProvider, check_options
from llmbackend.retrying import RetryPolicy
from llmbackend.transport import DEFAULT_TIMEOUT, HTTPTransport
from llmbackend.types import (
    ConfigInput,
    Generation,
    GenerationConfig,
    GenerationRequest,
    Secret,
    StructuredOutput,
    WireRequest,
    WireResponse,
)

if TYPE_CHECKING:
    from llmbackend.engines import Engine
    from llmbackend.jobs import Batch

T = TypeVar("T")
R = TypeVar("R")


class LLMBackendWarning(UserWarning):
    """Something was done that you asked for but should know about (e.g. a dropped parameter)."""


#: Provider options every remote provider accepts.
REMOTE_OPTIONS = ("api_key", "base_url", "timeout", "max_retries", "headers",
                  "drop_unsupported_params")


@frozen(kw_only=True)
class ClientSettings:
    """Where and how a client connects; equal settings share one pooled transport at top level."""

    provider: str
    base_url: str
    api_key: Secret | None
    timeout: float
    max_retries: int
    # Hidden from the repr: gateways often take a credential in a custom header.
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    drop_unsupported: bool = False
    #: Provider-specific options (``Provider.options``), checked.
    options: tuple[tuple[str, object], ...] = ()


def resolve_settings(
    provider: Provider, options: Mapping[str, Any], environ: Mapping[str, str]
) -> ClientSettings:
    """The settings for ``provider`` from explicit options first, then the environment.

    Raises ``ConfigurationError`` for an unknown option or a bad value, and
    ``MissingCredentialsError`` when the provider's official endpoint would get no API key.
    """
    known = (*REMOTE_OPTIONS, *provider.options)
    for name in options:
        if name not in known:
            hint = did_you_mean(str(name), known)
            raise ConfigurationError(
                message=f"unknown option {name!r} for provider {provider.name!r}.{hint} "
                f"Options: {', '.join(known)}.",
                key=str(name),
            )
    extras: list[tuple[str, object]] = []
    for name, allowed in provider.options.items():
        if name not in options:
            continue
        if options[name] not in allowed:
            raise ConfigurationError(
                message=f"option {name!r} for provider {provider.name!r} must be one of "
                f"{', '.join(map(repr, allowed))}, got {options[name]!r}",
                key=name,
            )
        extras.append((name, options[name]))
    base_url = options.get("base_url") or _first_env(environ, provider.base_url_env)
    base_url = base_url or provider.default_base_url
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ConfigurationError(
            message=f"base_url must be an http:// or https:// URL, got {base_url!r}",
            key="base_url",
        )
    api_key = options.get("api_key") or _first_env(environ, provider.api_key_env)
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigurationError(message="api_key must be a string", key="api_key")
    if api_key and not _header_safe(api_key):
        # Said without the key: it would end up in this message, and from there in logs.
        raise ConfigurationError(
            message="the API key holds whitespace, a control or a non-ASCII character (a "
            "newline from a file, a pasted quote?): strip it", key="api_key")
    if not api_key and base_url.rstrip("/") == provider.default_base_url:
        variable = provider.api_key_env[0]
        raise MissingCredentialsError(
            message=f"{provider.label} needs an API key: set the {variable} environment variable "
            f"or pass api_key=... to llmbackend.client({provider.name!r}, ...)",
            provider=provider.name,
            env_var=variable,
        )
    timeout = check_timeout(options.get("timeout", DEFAULT_TIMEOUT))
    max_retries = check_max_retries(options.get("max_retries", RetryPolicy().max_retries))
    headers = options.get("headers") or {}
    if not isinstance(headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ConfigurationError(message="headers must be a dict of strings", key="headers")
    for name, value in headers.items():
        if not (_header_safe(name) and _header_safe(value.replace(" ", ""))):
            raise ConfigurationError(
                message=f"header {name!r} holds a control or non-ASCII character; HTTP headers "
                "are printable ASCII", key="headers")
    drop = options.get("drop_unsupported_params", False)
    if not isinstance(drop, bool):
        raise ConfigurationError(message="drop_unsupported_params must be True or False",
                                 key="drop_unsupported_params")
    return ClientSettings(
        provider=provider.name,
        base_url=base_url.rstrip("/"),
        api_key=Secret(api_key) if api_key else None,
        timeout=float(timeout),
        max_retries=max_retries,
        headers=tuple(sorted(headers.items())),
        drop_unsupported=drop,
        options=tuple(extras),
    )


def _header_safe(value: str) -> bool:
    """Whether ``value`` can travel in an HTTP header as is: printable ASCII, no spaces."""
    return value.isascii() and value.isprintable() and not any(c.isspace() for c in value)


#: Custom headers whose values are treated as credentials: scrubbed from responses and errors.
SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "password", "cookie", "session")


def _first_env(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = environ.get(name)
        if value:
            return value
    return None


def open_transport(provider: Provider, settings: ClientSettings) -> HTTPTransport:
    """A new pooled transport for ``settings`` (connections open on the first request)."""
    auth = (
        {name: Secret(value)
         for name, value in provider.auth_headers(settings.api_key.reveal()).items()}
        if settings.api_key is not None else {}
    )
    # A credential may also travel in a custom header (gateways): such values are scrubbed too.
    header_secrets = tuple(Secret(value) for name, value in settings.headers
                           if any(word in name.lower() for word in SECRET_HEADER_WORDS))
    return HTTPTransport(
        provider=provider.name,
        base_url=settings.base_url,
        auth_headers=auth,
        secrets=((settings.api_key,) if settings.api_key is not None else ()) + header_secrets,
        headers=dict(settings.headers),
        timeout=settings.timeout,
        retry=RetryPolicy(max_retries=settings.max_retries),
    )


# Top-level calls share one pooled transport per distinct settings, so that a loop of
# ``llmbackend.get_response(...)`` reuses connections instead of paying a TLS handshake per call.
_SHARED_LIMIT = 32
_shared: dict[ClientSettings, HTTPTransport] = {}
_shared_lock = threading.Lock()


def _shared_transport(provider: Provider, settings: ClientSettings) -> HTTPTransport:
    # One pool per endpoint and credentials: a call's own timeout or max_retries gets a view
    # of it (``with_options``), not a pool of its own.
    key = evolve(settings, timeout=DEFAULT_TIMEOUT, max_retries=RetryPolicy().max_retries)
    transport = _shared.get(key)
    if transport is None:
        with _shared_lock:
            transport = _shared.get(key)
            if transport is None:
                if len(_shared) >= _SHARED_LIMIT:
                    # Dropped, not closed: a call in another thread may still be using it.
                    _shared.pop(next(iter(_shared)))
                transport = _shared[key] = open_transport(provider, key)
    return transport.with_options(timeout=settings.timeout, max_retries=settings.max_retries)


def unwrap_or_raise(result: Result[T, LLMError]) -> T:
    """The value of a ``Success``; raises the ``LLMError`` of a ``Failure``."""
    match result:
        case Success(value):
            return value  # type: ignore[no-any-return]
        case Failure(error):
            raise error
    raise AssertionError("unreachable: a Result is a Success or a Failure")  # pragma: no cover


def _request(
    model: str, input: object, config: ConfigInput, schema: object, settings: ClientSettings
) -> GenerationRequest:
    if not isinstance(input, str):
        raise ConfigurationError(
            message=f"input must be a string (the prompt), got {type(input).__name__}",
            key="input",
        )
    return GenerationRequest(
        model=model, input=input, config=config_from(config), schema=_check_schema(schema),
        drop_unsupported=settings.drop_unsupported, options=dict(settings.options),
    )


def _check_schema(schema: object) -> StructuredOutput[Any] | None:
    if schema is not None and not isinstance(schema, StructuredOutput):
        raise ConfigurationError(
            message="schema must be llmbackend.StructuredOutput(schema=...) or "
            f"StructuredOutput(pydantic_model=...), got {type(schema).__name__}",
            key="schema",
        )
    return schema


def _check_model(model: object) -> str:
    if not isinstance(model, str) or not model:
        raise ConfigurationError(message=f"model must be a non-empty string, got {model!r}",
                                 key="model")
    return model


class Client:
    """Effectful: one provider and model, with its own pooled connection.

    Make it with ``llmbackend.client(provider, model, **provider_options)``; close it when done
    (or use it as a context manager).
    """

    def __init__(self, provider: Provider, model: str, settings: ClientSettings) -> None:
        self._name = provider.name
        self._provider = provider
        self.model = _check_model(model)
        self._settings = settings
        self._transport = open_transport(provider, settings)
        self._engine: Engine | None = None

    @classmethod
    def _with_engine(cls, provider: LocalProvider, model: str, engine: Engine) -> Client:
        """A client of a local provider: calls run in ``engine``, in this process."""
        client = cls.__new__(cls)
        client._name = provider.name
        client.model = _check_model(model)
        client._engine = engine
        return client

    @property
    def provider(self) -> str:
        return self._name

    def __repr__(self) -> str:
        where = "in process" if self._engine is not None else self._settings.base_url
        return f"Client(provider={self.provider!r}, model={self.model!r}, base_url={where!r})"

    def close(self) -> None:
        """Close the pooled connections (or let go of a local model)."""
        if self._engine is not None:
            self._engine.close()
        else:
            self._transport.close()

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
    def generate(self, input: str, config: ConfigInput = None, schema: None = None, *,
                 timeout: float | None = None, max_retries: int | None = None
                 ) -> Result[Generation[str], LLMError]: ...

    @overload
    def generate(self, input: str, config: ConfigInput, schema: StructuredOutput[T], *,
                 timeout: float | None = None, max_retries: int | None = None
                 ) -> Result[Generation[T], LLMError]: ...

    @overload
    def generate(self, input: str, config: ConfigInput = None, *, schema: StructuredOutput[T],
                 timeout: float | None = None, max_retries: int | None = None
                 ) -> Result[Generation[T], LLMError]: ...

    def generate(self, input: str, config: ConfigInput = None,
                 schema: StructuredOutput[Any] | None = None, *, timeout: float | None = None,
                 max_retries: int | None = None) -> Result[Generation[Any], LLMError]:
        """Typed face: the whole ``Generation`` on success, the ``LLMError`` as a ``Failure``.

        ``timeout`` (seconds for the whole request, each attempt) and ``max_retries`` override
        the client's for this call only (see docs/retries-and-timeouts.md).
        """
        if self._engine is not None:
            self._no_network_options(timeout, max_retries)
            return _run_local(self._engine, self.model, input, config, schema)
        request = _request(self.model, input, config, schema, self._settings)
        return _run(self._provider, request, self._transport_for(timeout, max_retries))

    @overload
    async def agenerate(self, input: str, config: ConfigInput = None, schema: None = None, *,
                        timeout: float | None = None, max_retries: int | None = None
                        ) -> Result[Generation[str], LLMError]: ...

    @overload
    async def agenerate(self, input: str, config: ConfigInput, schema: StructuredOutput[T], *,
                        timeout: float | None = None, max_retries: int | None = None
                        ) -> Result[Generation[T], LLMError]: ...

    @overload
    async def agenerate(self, input: str, config: ConfigInput = None, *,
                        schema: StructuredOutput[T], timeout: float | None = None,
                        max_retries: int | None = None) -> Result[Generation[T], LLMError]: ...

    async def agenerate(self, input: str, config: ConfigInput = None,
                        schema: StructuredOutput[Any] | None = None, *,
                        timeout: float | None = None, max_retries: int | None = None
                        ) -> Result[Generation[Any], LLMError]:
        """Async typed face: ``generate`` on the running event loop. Remote providers use an
        async connection pool (one per event loop); a local model runs in a worker thread."""
        if self._engine is not None:
            import asyncio

            self._no_network_options(timeout, max_retries)
            return await asyncio.to_thread(
                _run_local, self._engine, self.model, input, config, schema)
        request = _request(self.model, input, config, schema, self._settings)
        return await _arun(self._provider, request, self._transport_for(timeout, max_retries))

    @overload
    async def aget_response(self, input: str, config: ConfigInput = None, schema: None = None,
                            *, timeout: float | None = None, max_retries: int | None = None
                            ) -> str: ...

    @overload
    async def aget_response(self, input: str, config: ConfigInput,
                            schema: StructuredOutput[T], *, timeout: float | None = None,
                            max_retries: int | None = None) -> T: ...

    @overload
    async def aget_response(self, input: str, config: ConfigInput = None, *,
                            schema: StructuredOutput[T], timeout: float | None = None,
                            max_retries: int | None = None) -> T: ...

    async def aget_response(self, input: str, config: ConfigInput = None,
                            schema: StructuredOutput[Any] | None = None, *,
                            timeout: float | None = None, max_retries: int | None = None
                            ) -> Any:
        """Async seed face: the answer, or the ``LLMError`` raised."""
        return unwrap_or_raise(await self.agenerate(
            input, config, schema, timeout=timeout, max_retries=max_retries)).parsed

    async def aclose(self) -> None:
        """Close the pooled connections, the async ones included."""
        if self._engine is not None:
            self._engine.close()
        else:
            await self._transport.aclose()

    @overload
    def get_response(self, input: str, config: ConfigInput = None, schema: None = None, *,
                     timeout: float | None = None, max_retries: int | None = None) -> str: ...

    @overload
    def get_response(self, input: str, config: ConfigInput, schema: StructuredOutput[T], *,
                     timeout: float | None = None, max_retries: int | None = None) -> T: ...

    @overload
    def get_response(self, input: str, config: ConfigInput = None, *,
                     schema: StructuredOutput[T], timeout: float | None = None,
                     max_retries: int | None = None) -> T: ...

    def get_response(self, input: str, config: ConfigInput = None,
                     schema: StructuredOutput[Any] | None = None, *,
                     timeout: float | None = None, max_retries: int | None = None) -> Any:
        """Seed face: the answer (text, or the parsed object with a schema); raises ``LLMError``.
        ``timeout`` and ``max_retries`` override the client's for this call only."""
        return unwrap_or_raise(self.generate(
            input, config, schema, timeout=timeout, max_retries=max_retries)).parsed

    @overload
    def map(self, inputs: Iterable[str], config: ConfigInput = None, schema: None = None, *,
            concurrency: int = DEFAULT_CONCURRENCY, progress: Progress | bool | None = None,
            timeout: float | None = None, max_retries: int | None = None
            ) -> Generator[Result[Generation[str], LLMError], None, None]: ...

    @overload
    def map(self, inputs: Iterable[str], config: ConfigInput, schema: StructuredOutput[T], *,
            concurrency: int = DEFAULT_CONCURRENCY, progress: Progress | bool | None = None,
            timeout: float | None = None, max_retries: int | None = None
            ) -> Generator[Result[Generation[T], LLMError], None, None]: ...

    @overload
    def map(self, inputs: Iterable[str], config: ConfigInput = None, *,
            schema: StructuredOutput[T], concurrency: int = DEFAULT_CONCURRENCY,
            progress: Progress | bool | None = None, timeout: float | None = None,
            max_retries: int | None = None
            ) -> Generator[Result[Generation[T], LLMError], None, None]: ...

    def map(self, inputs: Iterable[str], config: ConfigInput = None,
            schema: StructuredOutput[Any] | None = None, *,
            concurrency: int = DEFAULT_CONCURRENCY, progress: Progress | bool | None = None,
            timeout: float | None = None, max_retries: int | None = None
            ) -> Generator[Result[Generation[Any], LLMError], None, None]:
        """Fan-out, typed face: one ``generate`` per input, ``concurrency`` at a time (1 to 256,
        default 8); each input's ``Result`` in input order, as an iterator you loop over.

        Memory stays bounded whatever the number of inputs: ``inputs`` may be a generator, it
        is read ``2 x concurrency`` ahead at most, and each result is handed back as soon as
        those before it are. A failed prompt is a ``Failure`` at its place; it never stops the
        others. ``progress`` is ``True`` (a bar: tqdm if installed, else a line on stderr) or
        a ``callable(done, total)`` (``total`` is ``None`` for an input without a length).
        A config the provider cannot take raises at once, before anything is sent. A local
        provider runs ``concurrency`` prompts per batched generate call instead.
        See docs/fan-out.md.
        """
        concurrency = check_concurrency(concurrency)
        checked = _check_schema(schema)
        check_progress(progress)
        prompts, total = fanout.checked_prompts(inputs), fanout.input_length(inputs)
        if self._engine is not None:
            self._no_network_options(timeout, max_retries)
            engine, settings = self._engine, config_from(config)

            def run_chunk(chunk: list[str]) -> list[Result[Generation[Any], LLMError]]:
                return _local_outcomes(engine, chunk, settings, checked)

            def start_local(update: Progress | None) -> Iterator[Result[Generation[Any], LLMError]]:
                return fanout.chunked_map(run_chunk, prompts, concurrency, progress=update,
                                          total=total)

            return fanout.with_progress(start_local, progress, self._label())
        request = _request(self.model, "", config, checked, self._settings)
        provider, transport = self._provider, self._transport_for(timeout, max_retries)
        _first_build(provider, request)

        def run(prompt: str) -> Result[Generation[Any], LLMError]:
            return pipeline.generate(provider, evolve(request, input=prompt), transport.send)

        def start(update: Progress | None) -> Iterator[Result[Generation[Any], LLMError]]:
            return fanout.ordered_map(run, prompts, concurrency, progress=update, total=total)

        return fanout.with_progress(start, progress, self._label())

    @overload
    def amap(self, inputs: Iterable[str] | AsyncIterable[str], config: ConfigInput = None,
             schema: None = None, *, concurrency: int = DEFAULT_CONCURRENCY,
             progress: Progress | bool | None = None, timeout: float | None = None,
             max_retries: int | None = None
             ) -> AsyncGenerator[Result[Generation[str], LLMError], None]: ...

    @overload
    def amap(self, inputs: Iterable[str] | AsyncIterable[str], config: ConfigInput,
             schema: StructuredOutput[T], *, concurrency: int = DEFAULT_CONCURRENCY,
             progress: Progress | bool | None = None, timeout: float | None = None,
             max_retries: int | None = None
             ) -> AsyncGenerator[Result[Generation[T], LLMError], None]: ...

    @overload
    def amap(self, inputs: Iterable[str] | AsyncIterable[str], config: ConfigInput = None, *,
             schema: StructuredOutput[T], concurrency: int = DEFAULT_CONCURRENCY,
             progress: Progress | bool | None = None, timeout: float | None = None,
             max_retries: int | None = None
             ) -> AsyncGenerator[Result[Generation[T], LLMError], None]: ...

    def amap(self, inputs: Iterable[str] | AsyncIterable[str], config: ConfigInput = None,
             schema: StructuredOutput[Any] | None = None, *,
             concurrency: int = DEFAULT_CONCURRENCY, progress: Progress | bool | None = None,
             timeout: float | None = None, max_retries: int | None = None
             ) -> AsyncGenerator[Result[Generation[Any], LLMError], None]:
        """Async fan-out: ``map`` as tasks on the running event loop, for ``async for``;
        ``inputs`` may also be an async iterable. A local model runs in a worker thread."""
        concurrency = check_concurrency(concurrency)
        checked = _check_schema(schema)
        check_progress(progress)
        prompts, total = fanout.achecked_prompts(inputs), fanout.input_length(inputs)
        if self._engine is not None:
            import asyncio

            self._no_network_options(timeout, max_retries)
            engine, settings = self._engine, config_from(config)

            async def run_chunk(chunk: list[str]) -> list[Result[Generation[Any], LLMError]]:
                # A batched run blocks for as long as the model computes: a worker thread.
                return await asyncio.to_thread(_local_outcomes, engine, chunk, settings, checked)

            def start_local(update: Progress | None
                            ) -> AsyncIterator[Result[Generation[Any], LLMError]]:
                return fanout.achunked_map(run_chunk, prompts, concurrency, progress=update,
                                           total=total)

            return fanout.awith_progress(start_local, progress, self._label())
        request = _request(self.model, "", config, checked, self._settings)
        provider, transport = self._provider, self._transport_for(timeout, max_retries)
        _first_build(provider, request)

        async def run(prompt: str) -> Result[Generation[Any], LLMError]:
            return await pipeline.agenerate(provider, evolve(request, input=prompt),
                                            transport.asend)

        def start(update: Progress | None) -> AsyncIterator[Result[Generation[Any], LLMError]]:
            return fanout.aordered_map(run, prompts, concurrency, progress=update, total=total)

        return fanout.awith_progress(start, progress, self._label())

    def _label(self) -> str:
        return f"{self.provider} {self.model}"

    def _transport_for(self, timeout: float | None, max_retries: int | None) -> HTTPTransport:
        """The client's transport, or a view of it (same connections) with this call's
        ``timeout`` / ``max_retries``."""
        if timeout is None and max_retries is None:
            return self._transport
        return self._transport.with_options(
            timeout=None if timeout is None else check_timeout(timeout),
            max_retries=None if max_retries is None else check_max_retries(max_retries))

    def _no_network_options(self, timeout: float | None, max_retries: int | None) -> None:
        if timeout is not None or max_retries is not None:
            raise ConfigurationError(
                message=f"timeout and max_retries apply to requests to a remote provider; "
                f"{self.provider} runs in this process", key="timeout" if timeout is not None
                else "max_retries")

    @overload
    def submit_batch(self, inputs: Iterable[str], config: ConfigInput = None,
                     schema: None = None, batch_options: Mapping[str, Any] | None = None
                     ) -> Batch[str]: ...

    @overload
    def submit_batch(self, inputs: Iterable[str], config: ConfigInput,
                     schema: StructuredOutput[T],
                     batch_options: Mapping[str, Any] | None = None) -> Batch[T]: ...

    @overload
    def submit_batch(self, inputs: Iterable[str], config: ConfigInput = None, *,
                     schema: StructuredOutput[T],
                     batch_options: Mapping[str, Any] | None = None) -> Batch[T]: ...

    def submit_batch(self, inputs: Iterable[str], config: ConfigInput = None,
                     schema: StructuredOutput[Any] | None = None,
                     batch_options: Mapping[str, Any] | None = None) -> Batch[Any]:
        """Start a provider batch job of ``inputs`` (one prompt each) and return its handle.

        ``batch_options`` for OpenAI: ``display_name``, ``completion_window`` (``"24h"``),
        ``custom_ids`` (one unique id per input), ``system``, ``max_requests_per_batch``. Bad
        inputs or options raise ``ConfigurationError`` before anything is uploaded. See
        ``docs/batches.md``.
        """
        if self._engine is not None:
            return _submit_local(self._engine, self.model, inputs=inputs, config=config,
                                 schema=schema, batch_options=batch_options)
        return _submit(self._provider, self.model, self._settings, self._transport,
                       inputs=inputs, config=config, schema=schema, batch_options=batch_options)

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
        if self._engine is not None:
            raise ConfigurationError(
                message=f"{self.provider} runs batches in this process, at once: there is no "
                "batch to re-attach to; keep the handle (or its results)", key="batch_id")
        return _attach(self._provider, self._settings, self._transport, batch_id,
                       schema=schema, custom_ids=custom_ids)

    @overload
    def restore_batch(self, saved: Mapping[str, Any], schema: None = None) -> Batch[Any]: ...

    @overload
    def restore_batch(self, saved: Mapping[str, Any], schema: StructuredOutput[T]
                      ) -> Batch[T]: ...

    def restore_batch(self, saved: Mapping[str, Any],
                      schema: StructuredOutput[Any] | None = None) -> Batch[Any]:
        """The handle that ``Batch.to_dict()`` saved, re-attached through this client; give
        the ``schema`` it was submitted with to get Pydantic objects back."""
        if self._engine is not None:
            raise ConfigurationError(
                message=f"{self.provider} runs batches in this process: there is no batch to "
                "restore", key="batch")
        return _restore(self._provider, self._transport, saved, schema)

    @overload
    async def asubmit_batch(self, inputs: Iterable[str], config: ConfigInput = None,
                            schema: None = None, batch_options: Mapping[str, Any] | None = None
                            ) -> Batch[str]: ...

    @overload
    async def asubmit_batch(self, inputs: Iterable[str], config: ConfigInput,
                            schema: StructuredOutput[T],
                            batch_options: Mapping[str, Any] | None = None) -> Batch[T]: ...

    @overload
    async def asubmit_batch(self, inputs: Iterable[str], config: ConfigInput = None, *,
                            schema: StructuredOutput[T],
                            batch_options: Mapping[str, Any] | None = None) -> Batch[T]: ...

    async def asubmit_batch(self, inputs: Iterable[str], config: ConfigInput = None,
                            schema: StructuredOutput[Any] | None = None,
                            batch_options: Mapping[str, Any] | None = None) -> Batch[Any]:
        """Async ``submit_batch``: an immediate batch runs as tasks on the event loop, a native
        job is uploaded and created in a worker thread. The handle's ``astatus()``,
        ``await_()``, ``aresults()`` and ``aoutcomes()`` are its async twins."""
        import asyncio

        if self._engine is not None:
            return await asyncio.to_thread(
                _submit_local, self._engine, self.model, inputs=inputs, config=config,
                schema=schema, batch_options=batch_options)
        return await _asubmit(self._provider, self.model, self._settings, self._transport,
                              inputs=inputs, config=config, schema=schema,
                              batch_options=batch_options)

    @overload
    async def aget_batch(self, batch_id: str, schema: None = None,
                         custom_ids: Sequence[str] | None = None) -> Batch[Any]: ...

    @overload
    async def aget_batch(self, batch_id: str, schema: StructuredOutput[T],
                         custom_ids: Sequence[str] | None = None) -> Batch[T]: ...

    async def aget_batch(self, batch_id: str, schema: StructuredOutput[Any] | None = None,
                         custom_ids: Sequence[str] | None = None) -> Batch[Any]:
        """Async ``get_batch`` (its requests run in a worker thread)."""
        import asyncio

        return await asyncio.to_thread(self.get_batch, batch_id, schema, custom_ids)

    @overload
    async def arestore_batch(self, saved: Mapping[str, Any], schema: None = None
                             ) -> Batch[Any]: ...

    @overload
    async def arestore_batch(self, saved: Mapping[str, Any], schema: StructuredOutput[T]
                             ) -> Batch[T]: ...

    async def arestore_batch(self, saved: Mapping[str, Any],
                             schema: StructuredOutput[Any] | None = None) -> Batch[Any]:
        """Async ``restore_batch`` (its request runs in a worker thread)."""
        import asyncio

        return await asyncio.to_thread(self.restore_batch, saved, schema)


def _restore(provider: Provider, transport: HTTPTransport, saved: object, schema: object
             ) -> Batch[Any]:
    from llmbackend import jobs

    data = jobs.check_saved(saved)
    if data.get("provider") != provider.name:
        raise ConfigurationError(
            message=f"the saved batch is a {data.get('provider')!r} batch, not a "
            f"{provider.name!r} one", key="provider")
    return jobs.restore(transport, data, _check_schema(schema))


def _submit(provider: Provider, model: str, settings: ClientSettings, transport: HTTPTransport,
            *, inputs: object, config: ConfigInput, schema: object,
            batch_options: Mapping[str, Any] | None,
            warn: Callable[[str], None] | None = None) -> Batch[Any]:
    from llmbackend import jobs

    warn = warn or _warn
    prompts, request, options, mode = _batch_plan(provider, model, settings, inputs=inputs,
                                                  config=config, schema=schema,
                                                  batch_options=batch_options)
    if mode == "immediate":
        return jobs.run_immediate_batch(provider, transport, request, prompts,
                                        batch_options=options, warn=warn)
    if provider.name == "openai":
        return jobs.submit_openai_batch(transport, request, prompts, options, warn)
    if provider.name == "anthropic":
        return jobs.submit_anthropic_batch(transport, request, prompts, options, warn)
    if provider.name == "gemini":
        return jobs.submit_gemini_batch(transport, request, prompts, options, warn)
    raise UnsupportedError(  # pragma: no cover - every registered provider is handled above
        message=f"provider {provider.name!r} has no native batch API in llmbackend; use "
        "batch_options={'mode': 'immediate'}", provider=provider.name, parameter="mode")


async def _asubmit(provider: Provider, model: str, settings: ClientSettings,
                   transport: HTTPTransport, *, inputs: object, config: ConfigInput,
                   schema: object, batch_options: Mapping[str, Any] | None) -> Batch[Any]:
    """``_submit`` for async code: an immediate batch runs as tasks on the event loop; a native
    job's few requests and file uploads run in a worker thread (they are file I/O as much as
    network, and the job code stays one sync implementation)."""
    import asyncio

    from llmbackend import jobs

    prompts, request, options, mode = _batch_plan(provider, model, settings, inputs=inputs,
                                                  config=config, schema=schema,
                                                  batch_options=batch_options)
    if mode == "immediate":
        return await jobs.arun_immediate_batch(provider, transport, request, prompts,
                                               batch_options=options, warn=_warn)
    # Warnings are raised here, in the caller's task, so that they point at the caller's line
    # (from the worker thread, they would point into concurrent.futures).
    said: list[str] = []
    try:
        return await asyncio.to_thread(
            _submit, provider, model, settings, transport, inputs=prompts, config=config,
            schema=schema, batch_options=batch_options, warn=said.append)
    finally:
        for message in said:
            _warn(message)


def _batch_plan(provider: Provider, model: str, settings: ClientSettings, *, inputs: object,
                config: ConfigInput, schema: object, batch_options: Mapping[str, Any] | None
                ) -> tuple[list[str], GenerationRequest, dict[str, Any], str]:
    """The checked prompts, shared request, options (less ``mode``) and mode of a batch."""
    from llmbackend import jobs

    prompts = jobs.check_inputs(inputs)
    request = _request(model, "", config, schema, settings)
    if batch_options is not None and not isinstance(batch_options, Mapping):
        raise ConfigurationError(message="batch_options must be a dict, got "
                                 f"{type(batch_options).__name__}", key="batch_options")
    options = dict(batch_options or {})
    mode = options.pop("mode", provider.default_batch_mode)
    if mode not in BATCH_MODES:
        raise ConfigurationError(
            message=f"batch option 'mode' must be 'native' (the provider's batch API) or "
            f"'immediate' (concurrent calls now), got {mode!r}", key="mode")
    return prompts, request, options, mode


def _warn(message: str) -> None:
    warnings.warn(message, LLMBackendWarning, stacklevel=_caller_stacklevel())


#: What ``batch_options["mode"]`` may be.
BATCH_MODES = ("native", "immediate")


def _attach(provider: Provider, settings: ClientSettings, transport: HTTPTransport,
            batch_id: str, *, schema: object, custom_ids: object) -> Batch[Any]:
    from llmbackend import jobs
    from llmbackend.batching import check_custom_ids

    if isinstance(batch_id, str) and batch_id.startswith("immediate-"):
        raise ConfigurationError(
            message=f"{batch_id!r} is an immediate batch: it ran in the process that made it "
            "and nothing of it is kept at the provider, so it cannot be re-attached; keep its "
            "handle (or its results) instead", key="batch_id")
    order = None
    if custom_ids is not None:
        if isinstance(custom_ids, str | bytes) or not isinstance(custom_ids, Sequence):
            raise ConfigurationError(message="custom_ids must be a list of strings",
                                     key="custom_ids")
        order = check_custom_ids(custom_ids, len(custom_ids), None)
    checked = _check_schema(schema)
    if provider.name == "openai":
        handle = jobs.attach_openai_batch(transport, batch_id, checked)
    elif provider.name == "anthropic":
        handle = jobs.attach_anthropic_batch(
            transport, batch_id, _request("", "", None, checked, settings))
    elif provider.name == "gemini":
        handle = jobs.attach_gemini_batch(
            transport, batch_id, _request("", "", None, checked, settings))
    else:  # pragma: no cover - every registered provider is handled above
        raise UnsupportedError(message=f"provider {provider.name!r} has no batches to re-attach",
                               provider=provider.name, parameter="batch_id")
    return handle if order is None else jobs.Batch(handle._job, handle._state, order)


def check_timeout(value: object, key: str = "timeout") -> float:
    """``value`` as seconds if it is a positive number, else ``ConfigurationError``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(
            message=f"timeout must be a positive number of seconds, got {value!r}", key=key)
    return float(value)


def check_max_retries(value: object) -> int:
    """``value`` if it is a whole number >= 0, else ``ConfigurationError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            message=f"max_retries must be a whole number >= 0, got {value!r}",
            key="max_retries")
    return value


def _first_build(provider: Provider, request: GenerationRequest) -> None:
    """Build one request before a fan-out sends anything: a config the provider cannot take
    raises here, once, and a dropped parameter warns once rather than once per prompt."""
    wire = unwrap_or_raise(provider.build_generation(request))
    for message in wire.warnings:
        warnings.warn(message, LLMBackendWarning, stacklevel=_caller_stacklevel())


def _local_outcomes(engine: Engine, prompts: list[str], config: GenerationConfig,
                    schema: StructuredOutput[Any] | None
                    ) -> list[Result[Generation[Any], LLMError]]:
    """Every prompt's outcome from one batched run of a local engine, validated."""
    return [outcome.bind(lambda generation: pipeline.attach_parsed(schema, generation))
            for outcome in engine.generate(prompts, config, schema)]



def _run_local(engine: Engine, model: str, input: object, config: ConfigInput, schema: object
               ) -> Result[Generation[Any], LLMError]:
    if not isinstance(input, str):
        raise ConfigurationError(
            message=f"input must be a string (the prompt), got {type(input).__name__}",
            key="input")
    (outcome,) = _local_outcomes(engine, [input], config_from(config), _check_schema(schema))
    return outcome


def _submit_local(engine: Engine, model: str, *, inputs: object, config: ConfigInput,
                  schema: object, batch_options: Mapping[str, Any] | None) -> Batch[Any]:
    """A local batch, run now: all the prompts in one batched generate call, or
    ``concurrency`` prompts per call when that option is given (less memory, with progress)."""
    from llmbackend import jobs
    from llmbackend.batching import parse_immediate_options

    prompts = jobs.check_inputs(inputs)
    checked = _check_schema(schema)
    if batch_options is not None and not isinstance(batch_options, Mapping):
        raise ConfigurationError(message="batch_options must be a dict, got "
                                 f"{type(batch_options).__name__}", key="batch_options")
    options = dict(batch_options or {})
    if options.get("mode", "immediate") != "immediate":
        raise ConfigurationError(
            message=f"{engine.provider.label} runs batches in this process (mode "
            "'immediate'); it has no provider batch API", key="mode")
    parsed = parse_immediate_options(options, len(prompts))
    ids = parsed.custom_ids or tuple(f"request-{i}" for i in range(len(prompts)))
    size = parsed.concurrency if "concurrency" in options else len(prompts)
    update, close = progress_callback(parsed.progress, f"{engine.provider.name} batch")
    try:
        settings = config_from(config)
        outcomes = list(fanout.chunked_map(
            lambda chunk: _local_outcomes(engine, chunk, settings, checked), iter(prompts),
            size, progress=update, total=len(prompts)))
    finally:
        close()
    job = jobs.CompletedJob(engine.provider.name, ids, outcomes, parsed.display_name)
    return jobs.CompletedBatch(job, unwrap_or_raise(job.refresh()))


def _run(provider: Provider, request: GenerationRequest, transport: HTTPTransport
         ) -> Result[Generation[Any], LLMError]:
    def send(wire: WireRequest) -> Result[WireResponse, LLMError]:
        for message in wire.warnings:
            warnings.warn(message, LLMBackendWarning, stacklevel=_caller_stacklevel())
        return transport.send(wire)

    return pipeline.generate(provider, request, send)


async def _arun(provider: Provider, request: GenerationRequest, transport: HTTPTransport
                ) -> Result[Generation[Any], LLMError]:
    async def send(wire: WireRequest) -> Result[WireResponse, LLMError]:
        for message in wire.warnings:
            warnings.warn(message, LLMBackendWarning, stacklevel=_caller_stacklevel())
        return await transport.asend(wire)

    return await pipeline.agenerate(provider, request, send)


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside llmbackend (and the
    ``returns`` library it chains through), i.e. at the caller's own line."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame = sys._getframe(1)
    level = 1
    while frame is not None and (
        frame.f_code.co_filename.startswith(package)
        or f"{os.sep}returns{os.sep}" in frame.f_code.co_filename
    ):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def client(provider: str, model: str, **provider_options: Any) -> Client:
    """A client for one provider and model.

    Provider options for the remote providers: ``api_key`` and ``base_url`` (else read from the
    provider's environment variables), ``timeout`` (seconds, default 600), ``max_retries``
    (default 2), ``headers`` (extra HTTP headers) and ``drop_unsupported_params`` (drop, with a
    warning, config parameters the provider does not have, instead of failing).
    """
    local_spec = _local_provider(provider)
    if local_spec is not None:
        return Client._with_engine(local_spec, model,
                                   _open_engine(local_spec, model, provider_options))
    spec = get_provider(provider)
    return Client(spec, model, resolve_settings(spec, provider_options, os.environ))


def _local_provider(name: object) -> LocalProvider | None:
    return LOCAL_PROVIDERS.get(name.lower()) if isinstance(name, str) else None


def _open_engine(spec: LocalProvider, model: str, options: Mapping[str, Any]) -> Engine:
    from llmbackend.engines import open_engine

    return open_engine(spec, _check_model(model), check_options(spec, options))


# Top-level calls to a local provider reuse the loaded model: a model takes seconds to load.
_ENGINES_LIMIT = 2
_engines: dict[tuple[str, str, str], Engine] = {}


def _shared_local_client(spec: LocalProvider, model: str, options: Mapping[str, Any]) -> Client:
    key = (spec.name, str(model), repr(sorted(options.items())))
    with _shared_lock:
        engine = _engines.get(key)
        if engine is None:
            if len(_engines) >= _ENGINES_LIMIT:
                _engines.pop(next(iter(_engines))).close()
            engine = _engines[key] = _open_engine(spec, model, options)
    return Client._with_engine(spec, model, engine)


@overload
def generate(provider: str, model: str, input: str, config: ConfigInput = None,
             schema: None = None, **provider_options: Any) -> Result[Generation[str], LLMError]: ...


@overload
def generate(provider: str, model: str, input: str, config: ConfigInput,
             schema: StructuredOutput[T], **provider_options: Any
             ) -> Result[Generation[T], LLMError]: ...


@overload
def generate(provider: str, model: str, input: str, config: ConfigInput = None, *,
             schema: StructuredOutput[T], **provider_options: Any
             ) -> Result[Generation[T], LLMError]: ...


def generate(provider: str, model: str, input: str, config: ConfigInput = None,
             schema: StructuredOutput[Any] | None = None, **provider_options: Any
             ) -> Result[Generation[Any], LLMError]:
    """Typed face, one call: ``Result[Generation[T], LLMError]`` without making a client.

    Connections are pooled and shared between calls with the same provider settings (and a
    local provider's model stays loaded between calls).
    """
    local_spec = _local_provider(provider)
    if local_spec is not None:
        return _shared_local_client(local_spec, model, provider_options).generate(
            input, config, schema)
    spec = get_provider(provider)
    settings = resolve_settings(spec, provider_options, os.environ)
    request = _request(_check_model(model), input, config, schema, settings)
    return _run(spec, request, _shared_transport(spec, settings))


@overload
def get_response(provider: str, model: str, input: str, config: ConfigInput = None,
                 schema: None = None, **provider_options: Any) -> str: ...


@overload
def get_response(provider: str, model: str, input: str, config: ConfigInput,
                 schema: StructuredOutput[T], **provider_options: Any) -> T: ...


@overload
def get_response(provider: str, model: str, input: str, config: ConfigInput = None, *,
                 schema: StructuredOutput[T], **provider_options: Any) -> T: ...


def get_response(provider: str, model: str, input: str, config: ConfigInput = None,
                 schema: StructuredOutput[Any] | None = None, **provider_options: Any) -> Any:
    """Seed face, one call: the answer (text, or the parsed object with a schema).

    Raises the ``LLMError`` subclass that says what went wrong.
    """
    return unwrap_or_raise(
        generate(provider, model, input, config, schema, **provider_options)
    ).parsed


@overload
def create_batch(inputs: Iterable[str], provider: str, model: str, config: ConfigInput = None,
                 schema: None = None, batch_options: Mapping[str, Any] | None = None,
                 **provider_options: Any) -> Batch[str]: ...


@overload
def create_batch(inputs: Iterable[str], provider: str, model: str, config: ConfigInput,
                 schema: StructuredOutput[T], batch_options: Mapping[str, Any] | None = None,
                 **provider_options: Any) -> Batch[T]: ...


@overload
def create_batch(inputs: Iterable[str], provider: str, model: str, config: ConfigInput = None,
                 *, schema: StructuredOutput[T], batch_options: Mapping[str, Any] | None = None,
                 **provider_options: Any) -> Batch[T]: ...


def create_batch(  # noqa: PLR0917 -- the seed README's signature, positional as documented
    inputs: Iterable[str], provider: str, model: str, config: ConfigInput = None,
    schema: StructuredOutput[Any] | None = None, batch_options: Mapping[str, Any] | None = None,
    **provider_options: Any,
) -> Batch[Any]:
    """Start a provider batch job without making a client; the handle, as
    ``client(provider, model).submit_batch(...)`` returns it."""
    local_spec = _local_provider(provider)
    if local_spec is not None:
        return _shared_local_client(local_spec, model, provider_options).submit_batch(
            inputs, config, schema, batch_options)
    spec = get_provider(provider)
    settings = resolve_settings(spec, provider_options, os.environ)
    return _submit(spec, _check_model(model), settings, _shared_transport(spec, settings),
                   inputs=inputs, config=config, schema=schema, batch_options=batch_options)


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
    if _local_provider(provider) is not None:
        raise ConfigurationError(
            message=f"{provider} runs batches in this process, at once: there is no batch to "
            "re-attach to by id; keep the handle (or its results)", key="provider")
    spec = get_provider(provider)
    settings = resolve_settings(spec, provider_options, os.environ)
    return _attach(spec, settings, _shared_transport(spec, settings), batch_id, schema=schema,
                   custom_ids=custom_ids)


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
    spec = get_provider(saved.get("provider"))
    settings = resolve_settings(spec, provider_options, os.environ)
    return _restore(spec, _shared_transport(spec, settings), saved, schema)


@overload
async def agenerate(provider: str, model: str, input: str, config: ConfigInput = None,
                    schema: None = None, **provider_options: Any
                    ) -> Result[Generation[str], LLMError]: ...


@overload
async def agenerate(provider: str, model: str, input: str, config: ConfigInput,
                    schema: StructuredOutput[T], **provider_options: Any
                    ) -> Result[Generation[T], LLMError]: ...


@overload
async def agenerate(provider: str, model: str, input: str, config: ConfigInput = None, *,
                    schema: StructuredOutput[T], **provider_options: Any
                    ) -> Result[Generation[T], LLMError]: ...


async def agenerate(provider: str, model: str, input: str, config: ConfigInput = None,
                    schema: StructuredOutput[Any] | None = None, **provider_options: Any
                    ) -> Result[Generation[Any], LLMError]:
    """Async typed face, one call: ``generate`` on the running event loop."""
    local_spec = _local_provider(provider)
    if local_spec is not None:
        return await _shared_local_client(local_spec, model, provider_options).agenerate(
            input, config, schema)
    spec = get_provider(provider)
    settings = resolve_settings(spec, provider_options, os.environ)
    request = _request(_check_model(model), input, config, schema, settings)
    return await _arun(spec, request, _shared_transport(spec, settings))


@overload
async def aget_response(provider: str, model: str, input: str, config: ConfigInput = None,
                        schema: None = None, **provider_options: Any) -> str: ...


@overload
async def aget_response(provider: str, model: str, input: str, config: ConfigInput,
                        schema: StructuredOutput[T], **provider_options: Any) -> T: ...


@overload
async def aget_response(provider: str, model: str, input: str, config: ConfigInput = None, *,
                        schema: StructuredOutput[T], **provider_options: Any) -> T: ...


async def aget_response(provider: str, model: str, input: str, config: ConfigInput = None,
                        schema: StructuredOutput[Any] | None = None, **provider_options: Any
                        ) -> Any:
    """Async seed face, one call: the answer, or the ``LLMError`` raised."""
    return unwrap_or_raise(await agenerate(provider, model, input, config, schema,
                                           **provider_options)).parsed


@overload
async def acreate_batch(inputs: Iterable[str], provider: str, model: str,
                        config: ConfigInput = None, schema: None = None,
                        batch_options: Mapping[str, Any] | None = None,
                        **provider_options: Any) -> Batch[str]: ...


@overload
async def acreate_batch(inputs: Iterable[str], provider: str, model: str, config: ConfigInput,
                        schema: StructuredOutput[T],
                        batch_options: Mapping[str, Any] | None = None,
                        **provider_options: Any) -> Batch[T]: ...


@overload
async def acreate_batch(inputs: Iterable[str], provider: str, model: str,
                        config: ConfigInput = None, *, schema: StructuredOutput[T],
                        batch_options: Mapping[str, Any] | None = None,
                        **provider_options: Any) -> Batch[T]: ...


async def acreate_batch(  # noqa: PLR0917 -- create_batch's signature
    inputs: Iterable[str], provider: str, model: str, config: ConfigInput = None,
    schema: StructuredOutput[Any] | None = None, batch_options: Mapping[str, Any] | None = None,
    **provider_options: Any,
) -> Batch[Any]:
    """Async ``create_batch``: an immediate batch runs as tasks on the event loop, a native job
    is uploaded and created in a worker thread."""
    local_spec = _local_provider(provider)
    if local_spec is not None:
        return await _shared_local_client(local_spec, model, provider_options).asubmit_batch(
            inputs, config, schema, batch_options)
    spec = get_provider(provider)
    settings = resolve_settings(spec, provider_options, os.environ)
    return await _asubmit(spec, _check_model(model), settings,
                          _shared_transport(spec, settings), inputs=inputs, config=config,
                          schema=schema, batch_options=batch_options)


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
    import asyncio

    return await asyncio.to_thread(
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
    import asyncio

    return await asyncio.to_thread(lambda: restore_batch(saved, schema, **provider_options))
