"""Pure: the Provider record (one per provider: its data and its pure functions) and the registry.

Strategy: a provider is data plus pure functions, so the shell (``api``) and the pipeline treat
every provider alike. Provider modules are imported on first use, keeping ``import llmbackend``
light however many providers there are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attrs import field, frozen
from returns.result import Result

from llmbackend.errors import (
    ConfigurationError,
    LLMError,
    NoTextError,
    ToolCallError,
    UnsupportedError,
    did_you_mean,
    excerpt_json,
)
from llmbackend.types import Generation, GenerationRequest, WireRequest, WireResponse

if TYPE_CHECKING:
    from llmbackend.streams import StreamReader

__all__ = [
    "LOCAL",
    "PLANNED",
    "REGISTRY",
    "SERVER_KINDS",
    "BuildGeneration",
    "ParseGeneration",
    "Provider",
    "Registration",
    "answer_without_text",
    "get_provider",
    "is_compatible_server",
    "is_local",
    "json_object",
    "missing_route_hint",
    "open_stream_reader",
    "path_segment",
    "read_count",
    "refuse_or_drop",
    "registration",
]

BuildGeneration = Callable[[GenerationRequest], Result[WireRequest, LLMError]]
ParseGeneration = Callable[[GenerationRequest, WireResponse], Result[Generation[str], LLMError]]


@frozen(kw_only=True)
class Provider:
    """Everything llmbackend needs to know to talk to one remote provider.

    - ``name``: the provider argument (``"openai"``); ``label``: for messages (``"OpenAI"``).
    - ``default_base_url``; ``api_key_env`` / ``base_url_env``: environment variables the shell
      reads, in order of preference.
    - ``auth_headers``: the headers that carry an API key (used by the transport only).
    - ``build_generation`` / ``parse_generation``: the pure request builder and response parser.
    - ``build_stream``: the builder of the same request, streamed (its events are read by the
      reader the registry names: ``open_stream_reader``); ``None`` when it does not stream.
    - ``options``: provider options beyond the common ones, each with the values it accepts;
      they reach the builder and parser as ``GenerationRequest.options``.
    """

    name: str
    label: str
    default_base_url: str
    api_key_env: tuple[str, ...]
    base_url_env: tuple[str, ...]
    auth_headers: Callable[[str], Mapping[str, str]]
    build_generation: BuildGeneration
    parse_generation: ParseGeneration
    options: Mapping[str, tuple[object, ...]] = field(factory=dict)
    build_stream: BuildGeneration | None = None


@frozen(kw_only=True)
class Registration:
    """One row of the provider table: everything the shell needs to choose by, as data.

    - ``name``: the provider argument; ``local``: whether it runs in this process (an engine)
      rather than over HTTP;
    - ``module``: the pure module that holds its ``PROVIDER`` record (remote providers) or its
      ``LocalProvider`` (local ones, in ``LOCAL_PROVIDERS``), imported on first use;
    - ``batch_jobs``: the effectful module of its native batch job (``JOBS`` in it: submit,
      attach, restore), or ``None`` when it has no batch API; named here, imported by the shell
      (``llmbackend.jobs.native_jobs``), so this pure table never imports the shell;
    - ``default_batch_mode``: what ``submit_batch`` (and ``llmbackend batch submit``) does
      without a ``mode`` batch option: ``"native"`` (the provider's batch API) or
      ``"immediate"`` (concurrent calls, now; a local model always runs its batch at once);
    - ``stream_reader``: the pure module of its stream reader (``READER`` in it: the
      ``streams.StreamReader`` class, made with the request), or ``None``. Named here, not in the
      provider's module: the reader reads with that module's parsers, so the provider module
      never imports it back.
    """

    name: str
    local: bool
    module: str
    batch_jobs: str | None = None
    default_batch_mode: str = "native"
    stream_reader: str | None = None


def _remote(name: str, default_batch_mode: str = "native") -> Registration:
    return Registration(name=name, local=False, module=f"llmbackend.providers.{name}",
                        batch_jobs=f"llmbackend.jobs.{name}",
                        default_batch_mode=default_batch_mode,
                        stream_reader=f"llmbackend.providers.{name}_stream")


def _local(name: str) -> Registration:
    return Registration(name=name, local=True, module="llmbackend.providers.local",
                        default_batch_mode="immediate")


#: The providers, one line each. Adding one: its own modules, and one line here.
REGISTRY: Mapping[str, Registration] = {
    "openai": _remote("openai"),
    # Anthropic's batches take up to 24 hours; concurrent calls are the default there.
    "anthropic": _remote("anthropic", default_batch_mode="immediate"),
    "gemini": _remote("gemini"),
    "transformers": _local("transformers"),
    "vllm": _local("vllm"),
    "mlx": _local("mlx"),
}

#: Providers the seed README names that are not built yet, with the issue that builds them.
PLANNED: dict[str, str] = {}
#: The local providers (``llmbackend.providers.local``): not HTTP, served by ``engines``.
LOCAL = tuple(name for name, row in REGISTRY.items() if row.local)


def json_object(raw: bytes | str) -> dict[str, Any] | None:
    """Pure: ``raw`` decoded as a JSON object, or ``None`` (not JSON, or not an object)."""
    import json

    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def read_count(value: object) -> int | None:
    """Pure: a token or request count as providers write it: a JSON integer, or an int64 as a
    string of ASCII digits (Gemini); ``None`` for anything else (``True`` included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        return int(value)
    return None


def path_segment(value: str, safe: str = "") -> str:
    """Pure: ``value`` percent-encoded for a URL path (ids and model names come from callers and
    response bodies); characters in ``safe`` are kept."""
    return "".join(
        char if char.isascii() and (char.isalnum() or char in "-_.~" or char in safe)
        else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in value
    )


def registration(name: object) -> Registration:
    """Pure: the table row of provider ``name`` (any case). Raises ``ConfigurationError`` for an
    unknown name and ``UnsupportedError`` for one that is planned but not built yet."""
    if not isinstance(name, str):
        raise ConfigurationError(
            message=f"provider must be a string such as 'openai', got {type(name).__name__}",
            key="provider",
        )
    row = REGISTRY.get(name.lower())
    if row is not None:
        return row
    if name.lower() in PLANNED:
        raise UnsupportedError(
            message=f"provider {name!r} is not available in this version of llmbackend: "
            f"{PLANNED[name.lower()]} is not built yet. Available: {', '.join(REGISTRY)}.",
            provider=name,
            parameter="provider",
        )
    known = list(REGISTRY)
    hint = did_you_mean(name.lower(), known)
    raise ConfigurationError(
        message=f"unknown provider {name!r}.{hint} Available: {', '.join(known)}.",
        key="provider",
    )


def is_local(name: object) -> bool:
    """Pure: whether provider ``name`` runs in this process (transformers, vLLM, MLX); ``False``
    for a remote provider and for a name that is no provider at all."""
    row = REGISTRY.get(name.lower()) if isinstance(name, str) else None
    return row is not None and row.local


def get_provider(name: Any) -> Provider:
    """Pure: the remote provider called ``name``. Raises ``ConfigurationError`` for an unknown
    name (or a local one, which has no HTTP record) and ``UnsupportedError`` for one that is
    planned but not built yet."""
    row = registration(name)
    if row.local:
        remote = [other for other, entry in REGISTRY.items() if not entry.local]
        raise ConfigurationError(
            message=f"provider {name!r} runs in this process and has no HTTP API. Remote "
            f"providers: {', '.join(remote)}.", key="provider")
    from importlib import import_module

    provider = import_module(row.module).PROVIDER
    assert isinstance(provider, Provider)
    return provider


def open_stream_reader(name: str, request: GenerationRequest) -> StreamReader:
    """Pure: a new reader of one streamed answer to ``request`` from the remote provider
    ``name`` (the ``READER`` of the module its registry row names). ``UnsupportedError`` for a
    provider that does not stream."""
    row = registration(name)
    if row.stream_reader is None:
        raise UnsupportedError(message=f"provider {row.name!r} has no stream reader",
                               provider=row.name, parameter="stream")
    from importlib import import_module

    reader: StreamReader = import_module(row.stream_reader).READER(request)
    return reader


def answer_without_text(
    *, provider: str, label: str, kinds: Sequence[str], calls: Sequence[str] = (),
    body: object = None, container: str,
) -> NoTextError:
    """Pure: the one rule, on every provider, for a finished answer that has no text to return.

    Tool calls (and no text) -> ``ToolCallError`` naming them; otherwise ``NoTextError`` naming
    what came back (``kinds``: the item, block or part types; none for an empty ``container``).
    An answer with a text part, even an empty one, is a text answer and never comes here.
    """
    shown = excerpt_json(body) if body is not None else None
    if calls:
        return ToolCallError(
            message=f"the model answered with tool calls ({', '.join(calls)}) instead of text; "
            "llmbackend returns text only (the calls are in the error's body)",
            provider=provider, parameter="tools", kinds=tuple(kinds), calls=tuple(calls),
            body=shown)
    what = (f"only {', '.join(dict.fromkeys(kinds))} in its {container}" if kinds
            else f"an empty {container}")
    return NoTextError(
        message=f"{label} finished the answer without any text: it held {what}; llmbackend "
        "returns text (the answer is in the error's body)",
        provider=provider, kinds=tuple(kinds), body=shown)


#: The provider option ``server``: ``"official"`` (the default: the provider's own API, or a
#: proxy or emulator of it) or ``"compatible"`` (a compatible server such as vLLM behind
#: ``base_url``, which takes parameters the provider's own API refuses).
SERVER_KINDS = ("official", "compatible")


def refuse_or_drop(request: GenerationRequest, extra: dict[str, Any], warnings: list[str], *,
                   name: str, refusal: LLMError, dropped: str) -> LLMError | None:
    """Pure: the one rule for a parameter the endpoint does not take: ``refusal``, unless the
    request lets builders drop it (``drop_unsupported``); then ``name`` leaves ``extra`` and the
    warning ``dropped`` is added to ``warnings`` (``None``: go on without it)."""
    if not request.drop_unsupported:
        return refusal
    extra.pop(name, None)
    warnings.append(dropped)
    return None


def is_compatible_server(request: GenerationRequest) -> bool:
    """Pure: whether ``request`` goes to a compatible server (provider option
    ``server="compatible"``) rather than the provider's own API, so that parameters only such a
    server takes (OpenAI ``seed`` / ``stop``, Anthropic's sampling parameters) are sent."""
    return request.options.get("server") == "compatible"


def missing_route_hint(label: str, route: str) -> str:
    """Pure: what a 404/405 without the provider's error object means on a batch route: the
    server behind ``base_url`` has no ``route`` (a compatible server without the batch API), and
    what to use instead: the batch run as concurrent calls."""
    return (f" (the server has no {route} route: native batches need {label}'s batch API, which "
            "compatible servers such as vLLM do not implement; run the batch as concurrent calls "
            "instead: batch_options={'mode': 'immediate'}, on the command line "
            "llmbackend batch submit --mode immediate)")
