"""Pure: the frozen values that flow through llmbackend (config, schemas, requests, results).

Strategy: every value is an attrs ``frozen(kw_only=True)`` class that checks itself when built,
so a bad value never gets past the line that made it; derive new values with ``attrs.evolve``.
Nothing here imports a network library, an SDK or an ML runtime, and nothing reads the environment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from attrs import field, frozen

from llmbackend.errors import ConfigurationError

if TYPE_CHECKING:
    from attrs import Attribute

    from llmbackend.messages import Message

__all__ = [
    "ConfigInput",
    "FinishReason",
    "Generation",
    "GenerationConfig",
    "GenerationRequest",
    "Secret",
    "StreamBody",
    "StructuredOutput",
    "Usage",
    "WireRequest",
    "WireResponse",
    "format_name",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: Why the model stopped, in llmbackend's words; ``Generation.raw`` keeps the provider's own.
FinishReason = Literal["stop", "length", "content_filter", "refusal", "tool_calls", "other"]


@frozen(repr=False)
class Secret:
    """A credential. Its repr and str never show the value; ``reveal()`` does."""

    _value: str = field(alias="value")

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


# --- generation config ----------------------------------------------------------------------------


def _number_between(low: float, high: float) -> Any:
    def check(_instance: object, attribute: Attribute[Any], value: object) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(
                message=f"config {attribute.name!r} must be a number, got {type(value).__name__}",
                key=attribute.name,
            )
        if not (math.isfinite(value) and low <= value <= high):
            raise ConfigurationError(
                message=f"config {attribute.name!r} must be between {low:g} and {high:g}, "
                f"got {value!r}",
                key=attribute.name,
            )

    return check


def _integer_at_least(low: int | None) -> Any:
    def check(_instance: object, attribute: Attribute[Any], value: object) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(
                message=f"config {attribute.name!r} must be an integer, got {type(value).__name__}",
                key=attribute.name,
            )
        if low is not None and value < low:
            raise ConfigurationError(
                message=f"config {attribute.name!r} must be at least {low}, got {value!r}",
                key=attribute.name,
            )

    return check


def _string_keyed(_instance: object, attribute: Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            message=f"config {attribute.name!r} must be a dict, got {type(value).__name__}",
            key=attribute.name,
        )
    for key in value:
        if not isinstance(key, str):
            raise ConfigurationError(
                message=f"config 'extra' keys must be strings, got {key!r}", key="extra"
            )


def _copy_mapping(value: Any) -> Any:
    # Any in and out: the validator after it says what a value that is not a mapping is.
    return dict(value) if isinstance(value, Mapping) else value


@frozen(kw_only=True)
class GenerationConfig:
    """Portable generation settings. Unset (``None``) fields are not sent at all.

    - ``temperature``: 0 to 2 (a provider with a narrower range says so when building).
    - ``top_p``: 0 to 1.
    - ``max_tokens``: at least 1; the cap on generated tokens.
    - ``seed``: an integer, for providers that offer reproducible sampling.
    - ``extra``: provider-specific parameters, passed through by the provider's builder
      (e.g. ``{"system": "..."}`` on OpenAI, ``{"stop": [...]}`` where stop strings exist).

    Build it directly, or pass a plain dict wherever a config is accepted; either way an unknown
    key or an out-of-range value raises ``ConfigurationError`` naming the key.
    """

    temperature: float | None = field(default=None, validator=_number_between(0.0, 2.0))
    top_p: float | None = field(default=None, validator=_number_between(0.0, 1.0))
    max_tokens: int | None = field(default=None, validator=_integer_at_least(1))
    seed: int | None = field(default=None, validator=_integer_at_least(None))
    extra: Mapping[str, Any] = field(
        factory=dict, converter=_copy_mapping, validator=_string_keyed, hash=False
    )


#: What the public functions accept as a config.
ConfigInput = GenerationConfig | Mapping[str, Any] | None


# --- structured output ----------------------------------------------------------------------------

_FORMAT_NAME = re.compile(r"[^a-zA-Z0-9_-]+")


def format_name(candidate: object) -> str:
    """Pure: a schema name as providers accept it (``[a-zA-Z0-9_-]``, 1 to 64 chars)."""
    cleaned = _FORMAT_NAME.sub("_", str(candidate)).strip("_")[:64]
    return cleaned or "response"


@frozen(kw_only=True, init=False)
class StructuredOutput(Generic[T_co]):
    """Ask for a JSON answer that matches a schema: exactly one of a JSON Schema dict
    (``schema=``) or a Pydantic model class (``pydantic_model=``).

    The answer comes back parsed and validated: a Pydantic model instance, or the JSON value for
    a dict schema. A malformed schema raises ``InvalidSchemaError`` here, not at the provider.

    ``name`` is the schema's name as sent to providers that want one (default: the model's class
    name or the schema's ``title``). ``strict`` chooses the provider's strict mode: ``None`` (the
    default) uses it wherever the schema allows, ``True`` requires it, ``False`` never uses it.
    """

    schema: Mapping[str, Any] = field(hash=False)
    pydantic_model: type[T_co] | None
    name: str
    strict: bool | None

    @overload
    def __init__(
        self: StructuredOutput[Any],
        *,
        schema: Mapping[str, Any],
        name: str | None = None,
        strict: bool | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        *,
        pydantic_model: type[T_co],
        name: str | None = None,
        strict: bool | None = None,
    ) -> None: ...

    def __init__(
        self,
        *,
        schema: Mapping[str, Any] | None = None,
        pydantic_model: type[T_co] | None = None,
        name: str | None = None,
        strict: bool | None = None,
    ) -> None:
        from llmbackend.schemas import check_schema, pydantic_schema

        if (schema is None) == (pydantic_model is None):
            raise ConfigurationError(
                message="StructuredOutput takes exactly one of schema= (a JSON Schema dict) "
                "or pydantic_model= (a Pydantic model class)",
                key="schema" if schema is not None else "pydantic_model",
            )
        if strict is not None and not isinstance(strict, bool):
            raise ConfigurationError(message="StructuredOutput strict= must be a bool or None",
                                     key="strict")
        if pydantic_model is not None:
            resolved = pydantic_schema(pydantic_model)
            default_name: object = getattr(pydantic_model, "__name__", "response")
        else:
            if not isinstance(schema, Mapping):
                raise ConfigurationError(
                    message=f"StructuredOutput schema= must be a dict, got {type(schema).__name__}",
                    key="schema",
                )
            resolved = dict(schema)
            default_name = resolved.get("title", "response")
        check_schema(resolved)
        # attrs made __attrs_init__ (init=False keeps the typed overloads above as the init).
        self.__attrs_init__(  # pyright: ignore[reportAttributeAccessIssue]
            schema=resolved,
            pydantic_model=pydantic_model,
            name=format_name(name if name is not None else default_name),
            strict=strict,
        )


# --- results --------------------------------------------------------------------------------------


@frozen(kw_only=True)
class Usage:
    """Token counts as the provider reported them (``None`` when it did not), normalized so that
    every field means the same thing on every provider:

    - ``input_tokens``: all the input tokens, cached ones included (Anthropic reports the
      uncached ones alone: its cache reads and writes are added here);
    - ``cached_input_tokens``: the input tokens read from the provider's prompt cache, among
      ``input_tokens``; ``cache_write_tokens``: those written to it (Anthropic's
      ``cache_creation_input_tokens``), among ``input_tokens`` too; ``cache_write_5m_tokens``
      / ``cache_write_1h_tokens``: the writes by cache lifetime, where the answer gives them;
    - ``output_tokens``: all the output tokens, reasoning included; ``reasoning_tokens``: the
      reasoning (thinking) ones among them;
    - ``service_tier``: the service tier the provider says it served the request on (OpenAI's
      ``service_tier``, Anthropic's ``usage.service_tier``), as it spells it.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    cache_write_5m_tokens: int | None = None
    cache_write_1h_tokens: int | None = None
    service_tier: str | None = None

    @property
    def uncached_input_tokens(self) -> int | None:
        """The input tokens neither read from nor written to the cache (the ones a price table
        calls plain input)."""
        if self.input_tokens is None:
            return None
        return self.input_tokens - (self.cached_input_tokens or 0) - (
            self.cache_write_tokens or 0)

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return self.input_tokens + self.output_tokens


@frozen(kw_only=True)
class Generation(Generic[T_co]):
    """One answer and everything known about it.

    ``parsed`` is the answer itself: the text when no schema was given, the validated object
    (Pydantic instance or JSON value) when one was. ``raw`` is the provider's whole response body.
    """

    text: str
    parsed: T_co
    usage: Usage
    finish_reason: FinishReason
    provider: str
    model: str
    response_id: str | None = None
    raw: Mapping[str, Any] = field(factory=dict, repr=False, hash=False)


# --- the wire -------------------------------------------------------------------------------------


@frozen(kw_only=True)
class StreamBody:
    """A request body too large to hold as one ``bytes``: ``length`` bytes that ``chunks()``
    yields in order. ``chunks`` is called again for each retry, so it must start over each time."""

    length: int
    chunks: Callable[[], Iterator[bytes]] = field(repr=False, eq=False)


@frozen(kw_only=True)
class WireRequest:
    """A provider request as data: what to send, not how or where.

    ``path`` is relative to the provider's base URL. ``headers`` never hold credentials: the
    transport adds those. ``warnings`` are messages for the caller (e.g. a dropped parameter) that
    the effectful shell emits, since a pure builder cannot. ``idempotent``: see below.
    """

    method: str
    path: str
    json: Any = field(default=None, hash=False)
    content: bytes | StreamBody | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(factory=dict, hash=False)
    warnings: tuple[str, ...] = ()
    #: Whether sending it twice is harmless. A request that is not (e.g. creating a batch) is not
    #: retried after an attempt that got no response, since it may have taken effect.
    idempotent: bool = True


@frozen(kw_only=True)
class WireResponse:
    """What came back: status, lower-case header names, raw body bytes, and how many attempts
    the transport made to get it."""

    status: int
    headers: Mapping[str, str] = field(factory=dict, hash=False)
    body: bytes = field(default=b"", repr=False)
    attempts: int = 1


@frozen(kw_only=True)
class GenerationRequest:
    """One prompt to one model, with its config and optional schema: the input of every builder.

    ``drop_unsupported`` lets a builder drop a parameter its provider does not accept (with a
    warning) instead of failing with ``UnsupportedError``. ``options`` are the client's
    provider-specific options (e.g. Anthropic's ``structured_output``), already checked.
    """

    model: str
    #: The prompt, or a checked conversation (``llmbackend.messages.check_input``).
    input: str | tuple[Message, ...]
    config: GenerationConfig = field(factory=GenerationConfig)
    schema: StructuredOutput[Any] | None = None
    drop_unsupported: bool = False
    options: Mapping[str, Any] = field(factory=dict, hash=False)
