"""Effectful: the one place that decides "local or remote", and the two backends it opens.

``open_backend(provider, model, options, shared=...)`` looks the provider up in the table
(``providers.REGISTRY``) and opens a ``RemoteBackend`` (a provider record, its settings and a
pooled HTTP transport) or a ``LocalBackend`` (a model loaded by ``engines``). Every ``Client``
method and every top-level function of ``api`` is one call into a backend, the way httpx's
top-level ``get`` opens a client and calls ``request``: nothing above this module asks which
kind a provider is.

Strategy: what both kinds share (checking the arguments, the progress display, the batch
options) is written once in ``Backend``; each kind writes only how it runs a prompt, a fan-out
and a batch. Top-level calls use shared backends: one pooled transport per endpoint and key, one
loaded model per model and options, so a loop of ``llmbackend.get_response(...)`` reuses
connections (and a local model) instead of paying for them on every call.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from attrs import evolve
from returns.result import Failure, Result, Success

from llmbackend import fanout, pipeline, streaming
from llmbackend.batching import check_concurrency, check_custom_ids, parse_immediate_options
from llmbackend.checks import (
    check_batch_options,
    check_inputs,
    check_max_retries,
    check_model,
    check_progress,
    check_schema,
    check_sendable_config,
    check_timeout,
)
from llmbackend.convert import config_from
from llmbackend.errors import ConfigurationError, LLMError, UnsupportedError, unwrap
from llmbackend.fanout import Progress
from llmbackend.messages import CheckedInput, check_input
from llmbackend.progress import progress_callback
from llmbackend.providers import Provider, get_provider, registration
from llmbackend.providers.local import LOCAL_PROVIDERS, LocalProvider, check_options
from llmbackend.retrying import RetryPolicy
from llmbackend.settings import DEFAULT_TIMEOUT, ClientSettings, header_secrets, resolve_settings
from llmbackend.streaming import AsyncSource, AsyncTextStream, Source, TextStream
from llmbackend.transport import HTTPTransport
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

__all__ = [
    "BATCH_MODES",
    "Backend",
    "LLMBackendWarning",
    "LocalBackend",
    "RemoteBackend",
    "ashown_batch",
    "in_thread",
    "open_backend",
    "open_transport",
    "shown_batch",
]

Outcome = Result[Generation[Any], LLMError]
Outcomes = Generator[Outcome, None, None]
AsyncOutcomes = AsyncGenerator[Outcome, None]

#: What ``batch_options["mode"]`` may be.
BATCH_MODES = ("native", "immediate")


_P = ParamSpec("_P")
_T = TypeVar("_T")


async def in_thread(function: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``asyncio.to_thread``, with asyncio imported on the first async call.

    Strategy: sync-only code never loads asyncio (and the sockets, ssl and subprocess modules
    it pulls in) just to import the public API."""
    import asyncio

    return await asyncio.to_thread(function, *args, **kwargs)


class LLMBackendWarning(UserWarning):
    """Something was done that you asked for but should know about (e.g. a dropped parameter)."""


def warn(message: str) -> None:
    """Emit ``message`` as an ``LLMBackendWarning`` pointed at the caller's own line."""
    warnings.warn(message, LLMBackendWarning, stacklevel=_caller_stacklevel())


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


class Backend:
    """Effectful: what a ``Client`` runs on. The argument checks every kind shares live here;
    a kind implements the ``_``-prefixed steps."""

    provider: str
    model: str

    def where(self) -> str:
        """Where calls go, for reprs: a base URL or "in process"."""
        raise NotImplementedError

    def label(self) -> str:
        return f"{self.provider} {self.model}"

    # --- one prompt ---

    def generate(self, input: object, config: ConfigInput, schema: object, *,
                 timeout: float | None = None, max_retries: int | None = None) -> Outcome:
        raise NotImplementedError

    async def agenerate(self, input: object, config: ConfigInput, schema: object, *,
                        timeout: float | None = None, max_retries: int | None = None
                        ) -> Outcome:
        raise NotImplementedError

    # --- one prompt, streamed ---

    def stream(self, input: object, config: ConfigInput, schema: object, *,
               timeout: float | None = None, max_retries: int | None = None
               ) -> TextStream[Any]:
        raise NotImplementedError

    def astream(self, input: object, config: ConfigInput, schema: object, *,
                timeout: float | None = None, max_retries: int | None = None
                ) -> AsyncTextStream[Any]:
        raise NotImplementedError

    # --- fan-outs ---

    def map(self, inputs: object, config: ConfigInput, schema: object, *, concurrency: object,
            progress: object, timeout: float | None, max_retries: int | None) -> Outcomes:
        size, checked = check_concurrency(concurrency), check_schema(schema)
        check_progress(progress)
        prompts, total = fanout.checked_prompts(inputs), fanout.input_length(inputs)
        run = self._map(prompts, size=size, total=total, config=config, schema=checked,
                       timeout=timeout, max_retries=max_retries)
        return fanout.with_progress(run, progress, self.label())

    def amap(self, inputs: object, config: ConfigInput, schema: object, *, concurrency: object,
             progress: object, timeout: float | None, max_retries: int | None
             ) -> AsyncOutcomes:
        size, checked = check_concurrency(concurrency), check_schema(schema)
        check_progress(progress)
        prompts, total = fanout.achecked_prompts(inputs), fanout.input_length(inputs)
        run = self._amap(prompts, size=size, total=total, config=config, schema=checked,
                        timeout=timeout, max_retries=max_retries)
        return fanout.awith_progress(run, progress, self.label())

    def _map(self, prompts: Iterator[CheckedInput], *, size: int, total: int | None,
             config: ConfigInput,
             schema: StructuredOutput[Any] | None, timeout: float | None,
             max_retries: int | None) -> Callable[[Progress | None], Iterator[Outcome]]:
        raise NotImplementedError

    def _amap(self, prompts: AsyncIterator[CheckedInput] | Iterator[CheckedInput], *, size: int,
              total: int | None,
              config: ConfigInput, schema: StructuredOutput[Any] | None,
              timeout: float | None, max_retries: int | None
              ) -> Callable[[Progress | None], AsyncIterator[Outcome]]:
        raise NotImplementedError

    # --- batches ---

    def submit_batch(self, inputs: object, config: ConfigInput, schema: object,
                     batch_options: object) -> Batch[Any]:
        raise NotImplementedError

    async def asubmit_batch(self, inputs: object, config: ConfigInput, schema: object,
                            batch_options: object) -> Batch[Any]:
        raise NotImplementedError

    def get_batch(self, batch_id: object, schema: object, custom_ids: object) -> Batch[Any]:
        raise NotImplementedError

    def restore_batch(self, saved: object, schema: object) -> Batch[Any]:
        raise NotImplementedError

    # --- lifetime ---

    def close(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


# --- remote -------------------------------------------------------------------------------------


def open_transport(provider: Provider, settings: ClientSettings) -> HTTPTransport:
    """A new pooled transport for ``settings`` (connections open on the first request)."""
    auth = (
        {name: Secret(value)
         for name, value in provider.auth_headers(settings.api_key.reveal()).items()}
        if settings.api_key is not None else {}
    )
    return HTTPTransport(
        provider=provider.name,
        base_url=settings.base_url,
        auth_headers=auth,
        secrets=header_secrets(settings),
        headers=dict(settings.headers),
        timeout=settings.timeout,
        retry=RetryPolicy(max_retries=settings.max_retries),
    )


def shown_batch(transport: HTTPTransport, make: Callable[[], Batch[Any]]) -> Batch[Any]:
    """The handle ``make`` returns, redacting its errors with ``transport``'s secrets
    (``Batch.redacting``); an ``LLMError`` raised while making it is redacted the same way.
    Every remote batch handle leaves the backends through here (or ``ashown_batch``)."""
    try:
        return make().redacting(transport.redact_error)
    except LLMError as error:
        shown = transport.redact_error(error)
        if shown is error:
            raise
    raise shown  # outside the ``except``: the unredacted error is not kept as its context


async def ashown_batch(transport: HTTPTransport, making: Awaitable[Batch[Any]]
                       ) -> Batch[Any]:
    """``shown_batch`` for a handle made by an awaitable."""
    try:
        return (await making).redacting(transport.redact_error)
    except LLMError as error:
        shown = transport.redact_error(error)
        if shown is error:
            raise
    raise shown


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


class RemoteBackend(Backend):
    """Effectful: a remote provider: its pure ``record``, its ``settings`` and one pooled
    ``transport`` (read them; the backend is not changed after it is made)."""

    def __init__(self, provider: Provider, model: str, settings: ClientSettings,
                 transport: HTTPTransport) -> None:
        self.provider = provider.name
        self.model = model
        self.record = provider
        self.settings = settings
        self.transport = transport

    def where(self) -> str:
        return self.settings.base_url

    def request(self, input: object, config: ConfigInput, schema: object) -> GenerationRequest:
        """The checked ``GenerationRequest`` of one input, a prompt or a list of messages
        (``""`` for a fan-out's or a batch's shared request, whose input is set per item)."""
        return GenerationRequest(
            model=self.model, input=check_input(input),
            config=check_sendable_config(config_from(config)),
            schema=check_schema(schema), drop_unsupported=self.settings.drop_unsupported,
            options=dict(self.settings.options))

    def _transport_for(self, timeout: float | None, max_retries: int | None) -> HTTPTransport:
        """The transport, or a view of it (same connections) with this call's ``timeout`` /
        ``max_retries``."""
        if timeout is None and max_retries is None:
            return self.transport
        return self.transport.with_options(
            timeout=None if timeout is None else check_timeout(timeout),
            max_retries=None if max_retries is None else check_max_retries(max_retries))

    def _first_build(self, request: GenerationRequest) -> None:
        """Build one request before a fan-out sends anything: a config the provider cannot take
        raises here, once, and a dropped parameter warns once rather than once per prompt."""
        for message in unwrap(self.record.build_generation(request)).warnings:
            warn(message)

    def generate(self, input: object, config: ConfigInput, schema: object, *,
                 timeout: float | None = None, max_retries: int | None = None) -> Outcome:
        request = self.request(input, config, schema)
        transport = self._transport_for(timeout, max_retries)

        def send(wire: WireRequest) -> Result[WireResponse, LLMError]:
            for message in wire.warnings:
                warn(message)
            return transport.send(wire)

        return transport.redact_result(pipeline.generate(self.record, request, send))

    async def agenerate(self, input: object, config: ConfigInput, schema: object, *,
                        timeout: float | None = None, max_retries: int | None = None
                        ) -> Outcome:
        request = self.request(input, config, schema)
        transport = self._transport_for(timeout, max_retries)

        async def send(wire: WireRequest) -> Result[WireResponse, LLMError]:
            for message in wire.warnings:
                warn(message)
            return await transport.asend(wire)

        return transport.redact_result(await pipeline.agenerate(self.record, request, send))

    def _stream_plan(self, input: object, config: ConfigInput, schema: object,
                     timeout: float | None, max_retries: int | None
                     ) -> tuple[GenerationRequest, Result[WireRequest, LLMError], HTTPTransport]:
        """The checked request of a stream, its built wire request (warnings said here, at
        the caller's line) and the transport: everything decided before anything is sent."""
        request = self.request(input, config, schema)
        transport = self._transport_for(timeout, max_retries)
        build = self.record.build_stream
        built: Result[WireRequest, LLMError] = (
            build(request) if build is not None else Failure(UnsupportedError(
                message=f"{self.record.label} does not stream in llmbackend",
                provider=self.provider, parameter="stream")))
        if isinstance(built, Success):
            for message in built.unwrap().warnings:
                warn(message)
        return request, built, transport

    def stream(self, input: object, config: ConfigInput, schema: object, *,
               timeout: float | None = None, max_retries: int | None = None
               ) -> TextStream[Any]:
        request, built, transport = self._stream_plan(input, config, schema, timeout,
                                                      max_retries)
        return TextStream(streaming.remote_deltas(self.record, request, built, transport))

    def astream(self, input: object, config: ConfigInput, schema: object, *,
                timeout: float | None = None, max_retries: int | None = None
                ) -> AsyncTextStream[Any]:
        request, built, transport = self._stream_plan(input, config, schema, timeout,
                                                      max_retries)
        return AsyncTextStream(streaming.aremote_deltas(self.record, request, built,
                                                        transport))

    def _map(self, prompts: Iterator[CheckedInput], *, size: int, total: int | None,
             config: ConfigInput,
             schema: StructuredOutput[Any] | None, timeout: float | None,
             max_retries: int | None) -> Callable[[Progress | None], Iterator[Outcome]]:
        request = self.request("", config, schema)
        provider, transport = self.record, self._transport_for(timeout, max_retries)
        self._first_build(request)

        def run(prompt: CheckedInput) -> Outcome:
            return transport.redact_result(
                pipeline.generate(provider, evolve(request, input=prompt), transport.send))

        return lambda update: fanout.ordered_map(run, prompts, size, progress=update,
                                                 total=total)

    def _amap(self, prompts: AsyncIterator[CheckedInput] | Iterator[CheckedInput], *, size: int,
              total: int | None,
              config: ConfigInput, schema: StructuredOutput[Any] | None,
              timeout: float | None, max_retries: int | None
              ) -> Callable[[Progress | None], AsyncIterator[Outcome]]:
        request = self.request("", config, schema)
        provider, transport = self.record, self._transport_for(timeout, max_retries)
        self._first_build(request)

        async def run(prompt: CheckedInput) -> Outcome:
            return transport.redact_result(await pipeline.agenerate(
                provider, evolve(request, input=prompt), transport.asend))

        return lambda update: fanout.aordered_map(run, prompts, size, progress=update,
                                                  total=total)

    def _batch_plan(self, inputs: object, config: ConfigInput, schema: object,
                    batch_options: object
                    ) -> tuple[list[CheckedInput], GenerationRequest, dict[str, Any], str]:
        """The checked prompts, shared request, options (less ``mode``) and mode of a batch:
        everything is checked here, once, before anything is sent or uploaded."""
        prompts = check_inputs(inputs)
        request = self.request("", config, schema)
        options = check_batch_options(batch_options)
        mode = options.pop("mode", registration(self.record.name).default_batch_mode)
        if mode not in BATCH_MODES:
            raise ConfigurationError(
                message=f"batch option 'mode' must be 'native' (the provider's batch API) or "
                f"'immediate' (concurrent calls now), got {mode!r}", key="mode")
        return prompts, request, options, mode

    def submit_batch(self, inputs: object, config: ConfigInput, schema: object,
                     batch_options: object) -> Batch[Any]:
        from llmbackend import jobs

        prompts, request, options, mode = self._batch_plan(inputs, config, schema,
                                                           batch_options)
        if mode == "immediate":
            return shown_batch(self.transport, lambda: jobs.run_immediate_batch(
                self.record, self.transport, request, prompts, batch_options=options, warn=warn))
        return shown_batch(self.transport, lambda: jobs.submit(
            self.record, self.transport, request, prompts, options, warn))

    async def asubmit_batch(self, inputs: object, config: ConfigInput, schema: object,
                            batch_options: object) -> Batch[Any]:
        """An immediate batch runs as tasks on the event loop; a native job's few requests and
        file uploads run in a worker thread (they are file I/O as much as network, and the job
        code stays one sync implementation). The batch is planned once, here."""
        from llmbackend import jobs

        prompts, request, options, mode = self._batch_plan(inputs, config, schema,
                                                           batch_options)
        if mode == "immediate":
            return await ashown_batch(self.transport, jobs.arun_immediate_batch(
                self.record, self.transport, request, prompts, batch_options=options, warn=warn))
        # Warnings are raised here, in the caller's task, so that they point at the caller's
        # line (from the worker thread, they would point into concurrent.futures).
        said: list[str] = []
        try:
            return await ashown_batch(self.transport, in_thread(
                jobs.submit, self.record, self.transport, request, prompts, options,
                said.append))
        finally:
            for message in said:
                warn(message)

    def get_batch(self, batch_id: object, schema: object, custom_ids: object) -> Batch[Any]:
        from llmbackend import jobs

        order = None
        if custom_ids is not None:
            if isinstance(custom_ids, str | bytes) or not isinstance(custom_ids, Sequence):
                raise ConfigurationError(message="custom_ids must be a list of strings",
                                         key="custom_ids")
            order = check_custom_ids(custom_ids, len(custom_ids), None)
        if not isinstance(batch_id, str) or not batch_id:
            raise ConfigurationError(
                message=f"batch id must be a non-empty string, got {batch_id!r}",
                key="batch_id")
        request = self.request("", None, schema)
        return shown_batch(self.transport, lambda: jobs.attach(
            self.record, self.transport, batch_id, request, order))

    def restore_batch(self, saved: object, schema: object) -> Batch[Any]:
        from llmbackend import jobs

        checked = check_schema(schema)
        return shown_batch(self.transport, lambda: jobs.restore(
            self.record, self.transport, saved, checked))

    def close(self) -> None:
        self.transport.close()

    async def aclose(self) -> None:
        await self.transport.aclose()


_END = object()


async def _threaded(source: Source) -> AsyncSource:
    """``source`` (a local engine's stream, which blocks while the model computes) read on a
    worker thread, one item at a time, so the event loop goes on meanwhile.

    Strategy: a generator runs in one thread at a time: a read still running when the stream
    is closed (or its task cancelled) is waited for before the source is closed."""
    import asyncio

    pending: asyncio.Future[object] | None = None
    try:
        while True:
            pending = asyncio.ensure_future(in_thread(next, source, _END))
            item = await asyncio.shield(pending)
            pending = None
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        if pending is not None:
            await asyncio.wait([pending])
        await in_thread(source.close)

# --- local --------------------------------------------------------------------------------------


def _open_engine(spec: LocalProvider, model: str, options: Mapping[str, Any]) -> Engine:
    from llmbackend.engines import open_engine

    return open_engine(spec, model, options)


# Top-level calls to a local provider reuse the loaded model: a model takes seconds to load.
_ENGINES_LIMIT = 2
_engines: dict[tuple[str, str, str], Engine] = {}


def _shared_engine(spec: LocalProvider, model: str, options: Mapping[str, Any]) -> Engine:
    key = (spec.name, model, repr(sorted(options.items())))
    with _shared_lock:
        engine = _engines.get(key)
        if engine is None:
            if len(_engines) >= _ENGINES_LIMIT:
                _engines.pop(next(iter(_engines))).close()
            engine = _engines[key] = _open_engine(spec, model, options)
    return engine


class LocalBackend(Backend):
    """Effectful: a local runtime (transformers, vLLM, MLX): prompts run in ``engine``, in this
    process, a whole chunk of them per batched generate call. The engine is loaded on first use
    (``load``), so a top-level call that needs no model (re-attaching a batch) loads none."""

    def __init__(self, spec: LocalProvider, model: str, load: Callable[[], Engine]) -> None:
        self.provider = spec.name
        self.model = model
        self._spec = spec
        self._load = load
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._load()
        return self._engine

    def where(self) -> str:
        return "in process"

    def _outcomes(self, prompts: list[CheckedInput], config: GenerationConfig,
                  schema: StructuredOutput[Any] | None) -> list[Outcome]:
        """Every prompt's outcome from one batched run of the engine, validated."""
        return [outcome.bind(lambda generation: pipeline.attach_parsed(schema, generation))
                for outcome in self.engine.generate(prompts, config, schema)]

    def _network_options(self, timeout: float | None, max_retries: int | None) -> None:
        if timeout is not None or max_retries is not None:
            raise ConfigurationError(
                message=f"timeout and max_retries apply to requests to a remote provider; "
                f"{self.provider} runs in this process", key="timeout" if timeout is not None
                else "max_retries")

    def _no_batch_to_find(self, what: str) -> ConfigurationError:
        return ConfigurationError(
            message=f"{self.provider} runs batches in this process, at once: there is no batch "
            f"to {what}; keep the handle (or its results)", key="provider")

    def generate(self, input: object, config: ConfigInput, schema: object, *,
                 timeout: float | None = None, max_retries: int | None = None) -> Outcome:
        self._network_options(timeout, max_retries)
        prompt, checked = check_input(input), check_schema(schema)
        (outcome,) = self._outcomes([prompt], config_from(config), checked)
        return outcome

    async def agenerate(self, input: object, config: ConfigInput, schema: object, *,
                        timeout: float | None = None, max_retries: int | None = None
                        ) -> Outcome:
        self._network_options(timeout, max_retries)
        return await in_thread(self.generate, input, config, schema)

    def _local_source(self, input: object, config: ConfigInput, schema: object,
                      timeout: float | None, max_retries: int | None) -> Source:
        self._network_options(timeout, max_retries)
        prompt, checked = check_input(input), check_schema(schema)
        return streaming.with_parsed(self.engine.stream(prompt, config_from(config), checked),
                                     checked)

    def stream(self, input: object, config: ConfigInput, schema: object, *,
               timeout: float | None = None, max_retries: int | None = None
               ) -> TextStream[Any]:
        """The model's answer, streamed as it generates (vLLM: in one delta at the end)."""
        return TextStream(self._local_source(input, config, schema, timeout, max_retries))

    def astream(self, input: object, config: ConfigInput, schema: object, *,
                timeout: float | None = None, max_retries: int | None = None
                ) -> AsyncTextStream[Any]:
        return AsyncTextStream(_threaded(self._local_source(input, config, schema, timeout,
                                                            max_retries)))

    def _map(self, prompts: Iterator[CheckedInput], *, size: int, total: int | None,
             config: ConfigInput,
             schema: StructuredOutput[Any] | None, timeout: float | None,
             max_retries: int | None) -> Callable[[Progress | None], Iterator[Outcome]]:
        self._network_options(timeout, max_retries)
        settings = config_from(config)

        def run_chunk(chunk: list[CheckedInput]) -> list[Outcome]:
            return self._outcomes(chunk, settings, schema)

        return lambda update: fanout.chunked_map(run_chunk, prompts, size, progress=update,
                                                 total=total)

    def _amap(self, prompts: AsyncIterator[CheckedInput] | Iterator[CheckedInput], *, size: int,
              total: int | None,
              config: ConfigInput, schema: StructuredOutput[Any] | None,
              timeout: float | None, max_retries: int | None
              ) -> Callable[[Progress | None], AsyncIterator[Outcome]]:
        self._network_options(timeout, max_retries)
        settings = config_from(config)

        async def run_chunk(chunk: list[CheckedInput]) -> list[Outcome]:
            # A batched run blocks for as long as the model computes: a worker thread.
            return await in_thread(self._outcomes, chunk, settings, schema)

        return lambda update: fanout.achunked_map(run_chunk, prompts, size, progress=update,
                                                  total=total)

    def submit_batch(self, inputs: object, config: ConfigInput, schema: object,
                     batch_options: object) -> Batch[Any]:
        """A local batch, run now: all the prompts in one batched generate call, or
        ``concurrency`` prompts per call when that option is given (less memory, with
        progress)."""
        from llmbackend import jobs

        prompts, checked = check_inputs(inputs), check_schema(schema)
        options = check_batch_options(batch_options)
        if options.get("mode", "immediate") != "immediate":
            raise ConfigurationError(
                message=f"{self._spec.label} runs batches in this process (mode "
                "'immediate'); it has no provider batch API", key="mode")
        parsed = parse_immediate_options(options, len(prompts))
        size = parsed.concurrency if "concurrency" in options else len(prompts)
        update, close = progress_callback(parsed.progress, f"{self.provider} batch")
        try:
            settings = config_from(config)
            outcomes = list(fanout.chunked_map(
                lambda chunk: self._outcomes(chunk, settings, checked), iter(prompts), size,
                progress=update, total=len(prompts)))
        finally:
            close()
        return jobs.completed_batch(self.provider, parsed.custom_ids, outcomes,
                                    parsed.display_name)

    async def asubmit_batch(self, inputs: object, config: ConfigInput, schema: object,
                            batch_options: object) -> Batch[Any]:
        return await in_thread(self.submit_batch, inputs, config, schema, batch_options)

    def get_batch(self, batch_id: object, schema: object, custom_ids: object) -> Batch[Any]:
        raise self._no_batch_to_find("re-attach to")

    def restore_batch(self, saved: object, schema: object) -> Batch[Any]:
        raise self._no_batch_to_find("restore")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()

    async def aclose(self) -> None:
        self.close()


# --- the one decision -----------------------------------------------------------------------------


def open_backend(provider: object, model: object, options: Mapping[str, Any], *,
                 shared: bool) -> Backend:
    """The backend of ``provider`` (any case) for ``model`` with ``provider_options``.

    ``shared=True`` (the top-level functions) reuses the pooled transport of equal settings
    and the loaded model of equal options, loading a model on first use; ``shared=False``
    (``llmbackend.client``) opens a transport of its own, and loads a local model now, so that
    a model that cannot load fails where the client is made. ``model=None`` is for calls that
    need none (re-attaching a batch). Unknown providers, options and bad values raise
    ``ConfigurationError`` (``MissingCredentialsError`` for a missing API key) at once.
    """
    row = registration(provider)
    if row.local:
        spec = LOCAL_PROVIDERS[row.name]
        name = "" if model is None else check_model(model)
        checked = check_options(spec, options)
        if shared:
            return LocalBackend(spec, name, lambda: _shared_engine(spec, name, checked))
        engine = _open_engine(spec, name, checked)
        return LocalBackend(spec, name, lambda: engine)
    record = get_provider(row.name)
    settings = resolve_settings(record, options, os.environ)
    name = "" if model is None else check_model(model)
    transport = (_shared_transport(record, settings) if shared
                 else open_transport(record, settings))
    return RemoteBackend(record, name, settings, transport)

