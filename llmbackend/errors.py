"""Pure: the one error base of llmbackend and its typed subclasses, all frozen values.

Strategy: errors are values first. Expected failures (HTTP errors, timeouts, refusals, schema
mismatches, truncation) travel on the railway as ``Failure(error)``; the seed-face functions raise
them. Programmer errors (unknown provider, unknown config key, invalid schema, missing credentials)
are raised at once. ``auto_exc=False`` makes equal errors compare equal, which keeps tests honest.
They are not slotted: a slotted layout cannot be combined with ImportError's, which
MissingDependencyError extends so that ``except ImportError`` keeps working as the seed README
promises.

No error shown to the user carries a credential: messages and body excerpts are built by the
parsers from the provider's response as it came, and the shell redacts every error before it
leaves (``llmbackend.redact.redact_error``, with the transport's secrets).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from attrs import field, fields, frozen
from returns.result import Failure, Result, Success

from llmbackend.retrying import is_retryable_status

__all__ = [
    "BODY_EXCERPT_LIMIT",
    "BatchItemFailure",
    "BatchItemsError",
    "BatchNotReadyError",
    "BlockedError",
    "ConfigurationError",
    "HTTPStatusError",
    "InvalidSchemaError",
    "LLMError",
    "MissingCredentialsError",
    "MissingDependencyError",
    "NoTextError",
    "OutputError",
    "ProviderError",
    "RefusalError",
    "RequestTimeoutError",
    "ResponseParseError",
    "SchemaValidationError",
    "StreamError",
    "ToolCallError",
    "TransportError",
    "TruncationError",
    "UnsupportedError",
    "did_you_mean",
    "excerpt",
    "excerpt_json",
    "unwrap",
]

T = TypeVar("T")

#: How much of a raw response body an error keeps (enough to debug, small enough to log).
BODY_EXCERPT_LIMIT = 2000


def excerpt(body: bytes | str, limit: int = BODY_EXCERPT_LIMIT) -> str:
    """Pure: the first ``limit`` characters of a body, decoded leniently, marked when cut."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def excerpt_json(value: object, limit: int = BODY_EXCERPT_LIMIT) -> str:
    """Pure: the first ``limit`` characters of ``value`` written as JSON. A value JSON cannot
    write back (nested deeper than the encoder's recursion allows) is described instead: an
    error report must never fail itself."""
    import json

    try:
        text = json.dumps(value, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        text = f"<a {type(value).__name__} too deeply nested to show>"
    return excerpt(text, limit)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Pure: `` Did you mean 'x'?`` for the closest of ``choices``, or an empty string."""
    import difflib  # only on the error path: keeps ``import llmbackend`` fast

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _rebuild(cls: type[LLMError], values: dict[str, Any]) -> LLMError:
    return cls(**values)


@frozen(kw_only=True, auto_exc=False, slots=False)
class LLMError(Exception):
    """Base of every error llmbackend reports.

    ``message`` says what happened and what to do; ``provider`` names the provider involved
    (``None`` when the error is not tied to one).
    """

    message: str
    provider: str | None = None

    @property
    def retryable(self) -> bool:
        """Whether sending the same request again may succeed."""
        return False

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle through ``args``, which keyword-only attrs classes leave empty.
        values = {a.name: getattr(self, a.name) for a in fields(type(self)) if a.init}
        return (_rebuild, (type(self), values))


# --- raised at once: the caller must change the code ----------------------------------------------


@frozen(kw_only=True, auto_exc=False, slots=False)
class ConfigurationError(LLMError, ValueError):
    """A bad argument: an unknown provider, option or config key, or a value out of range.

    ``key`` names the offending key or option where there is one.
    """

    key: str | None = None


@frozen(kw_only=True, auto_exc=False, slots=False)
class InvalidSchemaError(ConfigurationError):
    """A ``StructuredOutput`` schema that is not valid JSON Schema (checked by the metaschema).

    ``path`` is the JSON path inside the schema where the problem is.
    """

    path: str = "$"


@frozen(kw_only=True, auto_exc=False, slots=False)
class MissingCredentialsError(LLMError):
    """No API key was found. ``env_var`` names the environment variable that would supply it."""

    env_var: str | None = None


@frozen(kw_only=True, auto_exc=False, slots=False)
class MissingDependencyError(LLMError, ImportError):
    """An optional dependency is not installed. ``extra`` is the pip extra that installs it."""

    extra: str | None = None


# --- returned as Failure: the request reached (or tried to reach) the provider --------------------


@frozen(kw_only=True, auto_exc=False, slots=False)
class UnsupportedError(LLMError):
    """The provider cannot do what was asked: a parameter it does not accept, or a feature
    (tool calls, streaming) that llmbackend does not offer for it.

    ``parameter`` names the config field or option at fault, when there is one.
    """

    parameter: str | None = None


@frozen(kw_only=True, auto_exc=False, slots=False)
class TransportError(LLMError):
    """The request did not get an HTTP response: connection refused or reset, DNS failure,
    protocol error. Retried by the transport before it is reported."""

    attempts: int = 1

    @property
    def retryable(self) -> bool:
        return True


@frozen(kw_only=True, auto_exc=False, slots=False)
class RequestTimeoutError(TransportError):
    """No complete response arrived within the configured timeout."""


@frozen(kw_only=True, auto_exc=False, slots=False)
class StreamError(LLMError):
    """A stream broke after answer text had flowed: ``text`` is what was received; ``error``
    is what broke it (a ``TransportError`` for a reset connection or a stall, a
    ``ProviderError`` for an ``error`` event; a ``TransportError`` too for a stream that ended
    without its final event). Not retried: the text was already handed out. A failure before
    any text is reported (and retried) as it would be for a whole call."""

    text: str = field(default="", repr=False)
    error: LLMError | None = None


@frozen(kw_only=True, auto_exc=False, slots=False)
class ProviderError(LLMError):
    """The provider reported a failure. ``error_type`` / ``error_code`` are the provider's own
    words (for OpenAI e.g. ``invalid_request_error`` / ``invalid_api_key``)."""

    error_type: str | None = None
    error_code: str | None = None
    body: str | None = field(default=None, repr=False)


@frozen(kw_only=True, auto_exc=False, slots=False)
class HTTPStatusError(ProviderError):
    """The provider answered with a non-2xx HTTP status.

    ``retryable`` is true for 408, 409, 429 and 5xx: the transport already retried those
    ``max_retries`` times, so seeing one means the retries ran out. ``retry_after`` is the
    wait in seconds the provider asked for (``Retry-After`` / ``retry-after-ms`` in seconds),
    if it asked: for your own retry policy on top of the transport's.
    """

    status: int
    error_param: str | None = None
    attempts: int = 1
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return is_retryable_status(self.status)


@frozen(kw_only=True, auto_exc=False, slots=False)
class ResponseParseError(LLMError):
    """The response could not be read: not JSON, or JSON without the fields the API promises."""

    body: str | None = field(default=None, repr=False)


# --- the answer arrived but cannot be used as asked -----------------------------------------------


@frozen(kw_only=True, auto_exc=False, slots=False)
class OutputError(LLMError):
    """Base of the errors about the model's answer itself. ``text`` is whatever text came back."""

    text: str = ""


@frozen(kw_only=True, auto_exc=False, slots=False)
class RefusalError(OutputError):
    """The model refused. ``text`` holds the model's refusal explanation."""


@frozen(kw_only=True, auto_exc=False, slots=False)
class TruncationError(OutputError):
    """Generation stopped at the token limit. ``text`` holds the partial answer; raise
    ``max_tokens`` to get all of it."""


@frozen(kw_only=True, auto_exc=False, slots=False)
class BlockedError(OutputError):
    """The provider's safety system stopped the answer. ``reason`` is the provider's reason
    (for OpenAI ``content_filter``); ``text`` holds any partial answer."""

    reason: str = ""


@frozen(kw_only=True, auto_exc=False, slots=False)
class NoTextError(OutputError):
    """The provider says the answer is finished, but it holds no text: no text item, block or
    part at all (an empty text part is an empty answer, not this error). ``kinds`` names what came
    back instead (OpenAI output item types, Anthropic content block types, Gemini part kinds;
    empty when nothing came back); ``body`` is an excerpt of the answer."""

    kinds: tuple[str, ...] = ()
    body: str | None = field(default=None, repr=False)


@frozen(kw_only=True, auto_exc=False, slots=False)
class ToolCallError(NoTextError, UnsupportedError):
    """The model answered with tool (function) calls instead of text; llmbackend returns text.
    ``calls`` names the calls. Read from the answer, so an ``OutputError`` (the command line exits
    3); also an ``UnsupportedError`` (``parameter`` is ``"tools"``), as it always was."""

    calls: tuple[str, ...] = ()


@frozen(kw_only=True, auto_exc=False, slots=False)
class SchemaValidationError(OutputError):
    """The answer does not match the requested schema (or is not JSON at all).

    ``path`` is the JSON path of the mismatch inside the answer, e.g. ``$.tags[0]``.
    """

    path: str = "$"


# --- batches --------------------------------------------------------------------------------------


@frozen(kw_only=True, auto_exc=False, slots=False)
class BatchNotReadyError(LLMError):
    """A batch's results were asked for before the batch ended (or ``wait`` ran out of time).

    ``batch_id`` is the handle's id and ``status`` the batch's status when it was checked. Poll
    ``batch.status()`` or call ``batch.wait()`` first.
    """

    batch_id: str = ""
    status: str = ""

    @property
    def retryable(self) -> bool:
        return True


@frozen(kw_only=True)
class BatchItemFailure:
    """One failed item of a batch: its position among the inputs, its custom id and its error."""

    index: int
    custom_id: str
    error: LLMError


@frozen(kw_only=True, auto_exc=False, slots=False)
class BatchItemsError(LLMError):
    """Some items of a finished batch failed, so ``batch.results()`` cannot return a full list.

    ``failures`` names every failed item (index, custom id, error) in input order; ``succeeded``
    counts the others. ``batch.outcomes()`` gives every item's ``Result``, successes included.
    """

    batch_id: str = ""
    status: str = ""
    failures: tuple[BatchItemFailure, ...] = ()
    succeeded: int = 0


def unwrap(result: Result[T, LLMError]) -> T:
    """Pure: the value of a ``Success``; raises the ``LLMError`` of a ``Failure``.

    The one place in llmbackend where a ``Result`` becomes a value or an exception: the seed
    face, the batch handles and the command line all unwrap through it.
    """
    match result:
        case Success(value):
            return value  # type: ignore[no-any-return]
        case Failure(error):
            raise error
    raise AssertionError("unreachable: a Result is a Success or a Failure")  # pragma: no cover
