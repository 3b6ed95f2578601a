"""Pure: provider-agnostic batch bookkeeping: normalized statuses, request counts, splitting a
stream of request lines into provider-sized parts, and matching result lines to inputs by id.

Strategy: every provider's batch API reports the same few things in its own words. The words are
normalized here once (``BatchStatus``), so that handles, polling loops and docs speak one
language, while a status still compares equal to the provider's raw name. Results are matched to
inputs by custom id only, never by position: providers document that result order is not input
order, and a line that cannot be matched is never guessed at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from attrs import evolve, field, frozen
from returns.result import Failure, Result, Success

from llmbackend.checks import check_progress
from llmbackend.errors import BatchItemFailure, ConfigurationError, LLMError, ProviderError
from llmbackend.types import Generation

__all__ = [
    "DEFAULT_CONCURRENCY",
    "IMMEDIATE_OPTIONS",
    "MAX_BATCH_ID",
    "STATUS_ALIASES",
    "TERMINAL_STATES",
    "BatchCounts",
    "BatchState",
    "BatchStatus",
    "ImmediateOptions",
    "OutcomeCollector",
    "ResultReport",
    "batch_id_problem",
    "check_batch_id",
    "check_concurrency",
    "check_custom_ids",
    "check_option_names",
    "collect_all",
    "combine_statuses",
    "default_custom_ids",
    "describe_failures",
    "encoded_items",
    "item_failures",
    "natural_key",
    "parse_immediate_options",
    "read_results",
    "reorder",
    "shown_id",
    "split_job_id",
    "split_lines",
    "status_key",
    "unusable_batch_id",
]

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 -- an input

# --- statuses -------------------------------------------------------------------------------------

#: The normalized states, and the provider spellings each one compares equal to (lower case,
#: without Gemini's ``BATCH_STATE_`` / ``JOB_STATE_`` prefixes).
STATUS_ALIASES: Mapping[str, frozenset[str]] = {
    "pending": frozenset({"pending", "queued", "validating", "created", "submitted",
                          "unspecified"}),
    "running": frozenset({"running", "in_progress", "processing", "finalizing", "active"}),
    "cancelling": frozenset({"cancelling", "canceling"}),
    "completed": frozenset({"completed", "succeeded", "success", "successful", "complete",
                            "done", "ended"}),
    "failed": frozenset({"failed", "failure"}),
    "expired": frozenset({"expired"}),
    "cancelled": frozenset({"cancelled", "canceled"}),
}
TERMINAL_STATES = frozenset({"completed", "failed", "expired", "cancelled"})
_STATE_OF = {alias: state for state, aliases in STATUS_ALIASES.items() for alias in aliases}
_PREFIXES = ("batch_state_", "job_state_")


def status_key(word: str) -> str:
    """Pure: ``word`` as compared by ``BatchStatus``: lower case, ``-`` and spaces as ``_``, and
    without a ``BATCH_STATE_`` / ``JOB_STATE_`` prefix."""
    key = word.strip().lower().replace("-", "_").replace(" ", "_")
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


class BatchStatus(str):
    """A batch's status, normalized, that still compares equal to the provider's own words.

    The value is one of ``pending``, ``running``, ``cancelling`` (not yet ended) or ``completed``,
    ``failed``, ``expired``, ``cancelled`` (ended). Comparison with a string ignores case and
    accepts every usual spelling of the same state: a completed batch equals ``"completed"``,
    ``"COMPLETED"``, ``"succeeded"`` and ``"SUCCEEDED"``; a cancelled one equals ``"cancelled"``
    and ``"canceled"``; an OpenAI batch that is ``finalizing`` equals ``"finalizing"`` and
    ``"running"``. ``raw`` is the provider's own word. A word llmbackend does not know (a state a
    provider adds later) is kept as it is and counts as not ended.

    Hashing uses the normalized value, so a ``dict`` or ``set`` of statuses should be keyed by
    the normalized names above.
    """

    raw: str
    also: tuple[str, ...]

    def __new__(cls, raw: str, state: str | None = None, also: tuple[str, ...] = ()
                ) -> BatchStatus:
        """``raw`` is the provider's word; ``state`` the normalized value when the word alone
        does not say it (Anthropic's ``ended`` covers completed, cancelled and expired); ``also``
        more words it should equal (a Gemini batch that expired also equals ``FAILED``, so that
        the seed README's Gemini loop, which has no expired case, ends)."""
        key = status_key(raw)
        status = super().__new__(cls, state if state is not None else _STATE_OF.get(key, key))
        status.raw = raw
        status.also = tuple(status_key(word) for word in also)
        return status

    @property
    def value(self) -> str:
        """The normalized name as a plain ``str``."""
        return str.__str__(self)

    @property
    def is_terminal(self) -> bool:
        """Whether the batch has ended (completed, failed, expired or cancelled)."""
        return self.value in TERMINAL_STATES

    @property
    def is_success(self) -> bool:
        """Whether the batch ended by completing (its items may still have failed one by one)."""
        return self.value == "completed"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BatchStatus):
            return self.value == other.value
        if not isinstance(other, str):
            return NotImplemented
        key = status_key(other)
        return (key == self.value or key in STATUS_ALIASES.get(self.value, ())
                or key == status_key(self.raw) or key in self.also)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return str.__hash__(self)

    def __repr__(self) -> str:
        return f"BatchStatus({self.value!r}, raw={self.raw!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (BatchStatus, (self.raw, self.value, self.also))


#: How far along a state is, for combining the parts of a split batch: the least advanced part
#: sets the status until all have ended.
_PROGRESS = {"pending": 0, "running": 1, "cancelling": 2}
#: Which ended state wins when the parts ended differently.
_ENDING = {"failed": 0, "cancelled": 1, "expired": 2, "completed": 3}


def combine_statuses(statuses: Sequence[BatchStatus]) -> BatchStatus:
    """Pure: the status of a batch split into parts.

    Until every part has ended, the least advanced unfinished part's status. Once all have ended:
    ``completed`` if all completed, else the worst ending (``failed``, then ``cancelled``, then
    ``expired``): the results of the completed parts are still there to read.
    """
    if not statuses:
        raise ValueError("a batch has at least one part")
    running = [s for s in statuses if not s.is_terminal]
    if running:
        return min(running, key=lambda s: _PROGRESS.get(s.value, 1))
    return min(statuses, key=lambda s: _ENDING[s.value])


# --- counts and state -----------------------------------------------------------------------------


@frozen(kw_only=True)
class BatchCounts:
    """How many requests a batch holds, and how many have completed or failed so far, as the
    provider reports them."""

    total: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def pending(self) -> int:
        """Requests not yet completed or failed."""
        return max(0, self.total - self.completed - self.failed)

    def __add__(self, other: BatchCounts) -> BatchCounts:
        return BatchCounts(total=self.total + other.total,
                           completed=self.completed + other.completed,
                           failed=self.failed + other.failed)


@frozen(kw_only=True)
class BatchState:
    """One look at a batch: its status, its counts, and the provider's objects as they came
    (one per provider batch; several when a large batch was split)."""

    status: BatchStatus
    counts: BatchCounts
    raw: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)


# --- splitting ------------------------------------------------------------------------------------


def split_lines(
    lines: Iterable[bytes], *, max_count: int, max_bytes: int, what: str = "batch"
) -> Iterator[tuple[int, bytes]]:
    """Pure: ``(part number, line)`` for each line, starting a new part whenever the next line
    would take the current one past ``max_count`` lines or ``max_bytes`` bytes.

    Lazy, so any number of lines streams through in constant memory. Raises
    ``ConfigurationError`` for a single line larger than ``max_bytes``.
    """
    part = count = size = 0
    for index, line in enumerate(lines):
        if len(line) > max_bytes:
            raise ConfigurationError(
                message=f"input #{index} takes {len(line):,} bytes as a {what} request, more "
                f"than the {max_bytes:,} bytes one {what} file may hold; shorten it",
                key="inputs",
            )
        if count and (count >= max_count or size + len(line) > max_bytes):
            part, count, size = part + 1, 0, 0
        count += 1
        size += len(line)
        yield part, line


# --- matching results to inputs -------------------------------------------------------------------


class OutcomeCollector(Generic[T]):
    """Pure bookkeeping: one outcome per input, matched by custom id.

    Feed it ``(custom_id, outcome)`` for every result line, in any order, then ``finish``. A
    custom id that arrives twice becomes a failure (which line is right cannot be known); an id
    that is not among the inputs, and a line without an id, are counted and never assigned.
    """

    def __init__(self, custom_ids: Sequence[str]) -> None:
        self.custom_ids = custom_ids
        self._index = {custom_id: i for i, custom_id in enumerate(custom_ids)}
        if len(self._index) != len(custom_ids):
            raise ValueError("custom ids must be unique")
        self._slots: list[Result[T, LLMError] | None] = [None] * len(custom_ids)
        self._seen = [0] * len(custom_ids)
        self.unknown_ids: list[str] = []
        self.unreadable_lines = 0

    def add(self, custom_id: str | None, outcome: Result[T, LLMError], provider: str) -> None:
        """Record the outcome of the result line for ``custom_id`` (``None``: unreadable)."""
        if custom_id is None:
            self.unreadable_lines += 1
            return
        index = self._index.get(custom_id)
        if index is None:
            self.unknown_ids.append(custom_id)
            return
        self._seen[index] += 1
        if self._seen[index] == 1:
            self._slots[index] = outcome
        else:
            self._slots[index] = Failure(ProviderError(
                message=f"the provider returned {self._seen[index]} results for custom id "
                f"{custom_id!r}; which one is right cannot be known, so none is used",
                provider=provider, error_type="batch_error", error_code="duplicate_result",
            ))

    def finish(
        self, missing: Callable[[int, str], LLMError]
    ) -> list[Result[T, LLMError]]:
        """The outcomes in input order; an input with no result line gets
        ``Failure(missing(index, custom_id))``."""
        return [
            slot if slot is not None else Failure(missing(index, self.custom_ids[index]))
            for index, slot in enumerate(self._slots)
        ]


@frozen(kw_only=True)
class ResultReport(Generic[T]):
    """What ``read_results`` made of a batch's (or one part's) results.

    - ``outcomes``: one per input, in input order (a failure for an input without a result);
    - ``custom_ids``: the ids they belong to (those given, or those the results named, in
      natural order, for a job re-attached by id);
    - ``unknown_ids``: ids the results named that are not among the inputs (never used);
    - ``unreadable_lines``: results that named no id at all (never used, never guessed at).
    """

    outcomes: list[Result[T, LLMError]] = field(repr=False)
    custom_ids: tuple[str, ...] = field(repr=False)
    unknown_ids: tuple[str, ...] = ()
    unreadable_lines: int = 0

    @property
    def clean(self) -> bool:
        """Whether every result was matched to an input (nothing to warn about)."""
        return not self.unknown_ids and not self.unreadable_lines


def read_results(
    custom_ids: Sequence[str] | None,
    results: Iterable[tuple[str | None, Result[Generation[Any], LLMError]]],
    *,
    provider: str,
    validate: Callable[[Generation[Any]], Result[Generation[Any], LLMError]] | None,
    keep: Callable[[Result[Generation[Any], LLMError]], Result[T, LLMError]],
    missing: Callable[[int, str, int], LLMError],
) -> ResultReport[T]:
    """Pure: the outcomes of a batch's results, matched to its inputs by custom id.

    ``results`` are ``(custom id or None, outcome)`` pairs in any order, as the provider's
    result parser reads them; each answer goes through ``validate`` (the schema check of a
    synchronous answer, e.g. ``pipeline.attach_parsed``) and then ``keep`` (what to hold of it:
    the whole ``Generation``, or less) as it is read. ``missing(position, custom_id,
    unreadable_lines)`` is the failure of an input that has no result.

    Strategy: with ``custom_ids`` given the results stream through in constant memory (beyond
    the kept outcomes); with ``None`` (a job re-attached by id, whose inputs are not known) they
    are read whole first, to learn the ids they name.
    """
    if custom_ids is None:
        results = list(results)
        custom_ids = sorted({custom_id for custom_id, _ in results if custom_id is not None},
                            key=natural_key)
    collector: OutcomeCollector[T] = OutcomeCollector(tuple(custom_ids))
    for custom_id, outcome in results:
        checked = outcome if validate is None else outcome.bind(validate)
        collector.add(custom_id, keep(checked), provider)
    unreadable = collector.unreadable_lines
    return ResultReport(
        outcomes=collector.finish(lambda position, custom_id: missing(position, custom_id,
                                                                      unreadable)),
        custom_ids=tuple(custom_ids), unknown_ids=tuple(collector.unknown_ids),
        unreadable_lines=unreadable)


def collect_all(results: Iterable[Result[T, LLMError]]) -> Result[list[T], LLMError]:
    """Pure: the values of ``results`` as a list, or the first ``Failure``. Lazy: nothing after
    the first failure is drawn from ``results`` (so no request after it is sent)."""
    values: list[T] = []
    for result in results:
        if isinstance(result, Failure):
            return Failure(result.failure())
        values.append(result.unwrap())
    return Success(values)


def item_failures(
    outcomes: Sequence[Result[Any, LLMError]], custom_ids: Sequence[str]
) -> tuple[BatchItemFailure, ...]:
    """Pure: every failed item, in input order."""
    return tuple(
        BatchItemFailure(index=i, custom_id=custom_ids[i], error=outcome.failure())
        for i, outcome in enumerate(outcomes)
        if isinstance(outcome, Failure)
    )


def describe_failures(failures: Sequence[BatchItemFailure], total: int, limit: int = 3) -> str:
    """Pure: ``2 of 5 items failed: #1 'b' (HTTPStatusError: ...), ...`` for messages."""
    shown = "; ".join(
        f"#{f.index} {f.custom_id!r} ({type(f.error).__name__}: {_short(str(f.error))})"
        for f in failures[:limit]
    )
    more = f"; and {len(failures) - limit} more" if len(failures) > limit else ""
    return f"{len(failures)} of {total} items failed: {shown}{more}"


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# --- immediate batches ----------------------------------------------------------------------------

#: Concurrent requests of an immediate batch when ``concurrency`` is not given.
DEFAULT_CONCURRENCY = 8
IMMEDIATE_OPTIONS = ("mode", "concurrency", "custom_ids", "display_name", "progress")


@frozen(kw_only=True)
class ImmediateOptions:
    """The checked ``batch_options`` of an immediate batch (``mode="immediate"``)."""

    concurrency: int = DEFAULT_CONCURRENCY
    custom_ids: tuple[str, ...] | None = field(default=None, repr=False)
    display_name: str | None = None
    #: ``None``, ``True`` (the ready-made bar) or a ``callable(done, total)``.
    progress: Callable[[int, int], object] | bool | None = field(default=None, repr=False)


def parse_immediate_options(options: Mapping[str, Any], count: int) -> ImmediateOptions:
    """Pure: ``batch_options`` for an immediate batch: ``concurrency`` (a whole number from 1,
    default 8), ``custom_ids`` (unique non-empty strings, one per input, used to name items in
    errors), ``display_name`` (kept on the handle) and ``progress`` (``callable(done, total)``,
    called as prompts finish, or ``True`` for a ready-made progress bar). Raises
    ``ConfigurationError`` naming the option."""
    check_option_names(options, IMMEDIATE_OPTIONS, "an immediate batch")
    concurrency = check_concurrency(options.get("concurrency", DEFAULT_CONCURRENCY),
                                    "batch option 'concurrency'")
    display_name = options.get("display_name")
    if display_name is not None and not isinstance(display_name, str):
        raise ConfigurationError(message="batch option 'display_name' must be a string",
                                 key="display_name")
    progress = check_progress(options.get("progress"), "batch option")
    custom_ids = options.get("custom_ids")
    return ImmediateOptions(
        concurrency=concurrency,
        custom_ids=None if custom_ids is None else check_custom_ids(custom_ids, count, None),
        display_name=display_name,
        progress=progress,
    )


def default_custom_ids(count: int) -> tuple[str, ...]:
    """Pure: the custom ids of a batch whose caller gave none: ``request-0``, ``request-1``...
    (the one place they are spelled; every provider's job and the immediate batches use it)."""
    return tuple(f"request-{index}" for index in range(count))


def encoded_items(encode: Callable[[str, I], Result[T, LLMError]], custom_ids: Sequence[str],
                  inputs: Sequence[I]) -> Iterator[T]:
    """Pure, lazy: ``encode(custom_id, input)`` of every item of a batch, in order. The first
    item that cannot be encoded (a conversation the provider refuses: a prefill, a system
    message beside ``extra["system"]``) raises its error, the message naming the item by index
    and custom id; a batch encodes every item before it uploads or sends any, so nothing has
    been sent then.

    Strategy: the one convention for a refused batch item, on every provider and both modes
    (the native jobs' encoders, the immediate batches' builder)."""
    for index, (custom_id, item) in enumerate(zip(custom_ids, inputs, strict=True)):
        encoded = encode(custom_id, item)
        if isinstance(encoded, Failure):
            error = encoded.failure()
            raise evolve(error, message=f"input #{index} (custom id {custom_id!r}): "
                         f"{error.message}")
        yield encoded.unwrap()


# --- batch ids ------------------------------------------------------------------------------------

#: The longest provider batch id llmbackend takes (ids are a few dozen characters at every
#: provider; a longer one is a broken answer, and would not fit in a URL).
MAX_BATCH_ID = 8192


def batch_id_problem(value: object, reserved: str = "") -> str | None:
    """Pure: why ``value`` cannot be one provider batch id, or ``None`` when it can: the one rule
    for batch ids, applied where they come in (the provider's batch object, at submit and at
    every fetch) and where they go out (attach by id, restore, the command line).

    An id is any string that is not empty, not ``.`` or ``..`` (path steps, not names), at most
    ``MAX_BATCH_ID`` characters, printable on one line (no line break, escape code, control,
    format character or lone surrogate: ``str.isprintable``), and without a character of
    ``reserved`` (the provider's separator: ``+`` joins a split job's ids, ``/`` a Gemini
    name's parts). Everything else is fine, spaces, ``/`` and ``%`` included: an id is
    percent-encoded into the URL path (``providers.path_segment``).
    """
    if not isinstance(value, str):
        return f"it is a {type(value).__name__}, not a string"
    if not value:
        return "it is empty"
    if value in {".", ".."}:
        return "'.' and '..' are steps in a path, not ids"
    if len(value) > MAX_BATCH_ID:
        return f"it is {len(value):,} characters long; llmbackend takes ids up to {MAX_BATCH_ID:,}"
    for char in value:
        if char in reserved:
            return f"it holds {char!r}, which cannot be part of one id"
        if not char.isprintable():
            return f"it holds {char!r}, which cannot be printed on one line"
    return None


def shown_id(value: object, limit: int = 100) -> str:
    """Pure: ``value`` as an error message shows an id: its ``repr`` (control characters, escape
    codes and lone surrogates escaped, so that printing it cannot corrupt a terminal), cut to
    ``limit`` characters."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value):,} characters)"
    return repr(value)


def check_batch_id(value: object, reserved: str, kind: str) -> str:
    """Pure: ``value`` if ``batch_id_problem`` finds nothing wrong with it, else
    ``ConfigurationError`` (key ``batch_id``) saying it is not ``kind`` (e.g. "an OpenAI batch
    id (like 'batch_abc123')"), and why."""
    problem = batch_id_problem(value, reserved)
    if problem is None:
        assert isinstance(value, str)
        return value
    if not isinstance(value, str) or not value:
        raise ConfigurationError(message=f"batch id must be a non-empty string, got {value!r}",
                                 key="batch_id")
    raise ConfigurationError(message=f"{shown_id(value)} is not {kind}: {problem}",
                             key="batch_id")


def split_job_id(value: object, separator: str, kind: str) -> tuple[str, ...]:
    """Pure: the provider batch ids behind a job's id (one, or several joined by
    ``separator``), each checked by ``batch_id_problem``; ``ConfigurationError`` (as
    ``check_batch_id``) for anything else."""
    if not isinstance(value, str) or not value:
        return (check_batch_id(value, separator, kind),)  # raises
    parts = tuple(value.split(separator))
    for part in parts:
        problem = batch_id_problem(part, separator)
        if problem is not None:
            raise ConfigurationError(
                message=f"{shown_id(value)} is not {kind}: "
                + (problem if len(parts) == 1 else f"its part {shown_id(part)}: {problem}"),
                key="batch_id")
    return parts


def unusable_batch_id(value: object, problem: str, *, provider: str, label: str,
                      body: str | None = None) -> ProviderError:
    """Pure: the error of a batch object whose id ``batch_id_problem`` refuses (``problem``): it
    is not saved or printed as if fine; the error shows it escaped (``shown_id``), for the batch
    may exist (a create's answer: made, and billed if it runs)."""
    return ProviderError(
        message=f"{label} answered with a batch id llmbackend cannot use, {shown_id(value)}: "
        f"{problem}. Nothing was saved under it; if this answered the creation of a batch, "
        f"the batch exists at {label} and may run (and be billed): cancel it there",
        provider=provider, error_type="invalid_batch_id", body=body)


def check_concurrency(value: object, what: str = "concurrency") -> int:
    """Pure: ``value`` if it is a whole number of at least 1, else ``ConfigurationError``.

    There is no ceiling: how many requests may be in flight is the caller's to choose (and
    bounded by memory: a few KiB each on the async face; a thread each on the sync one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            message=f"{what} must be a whole number of at least 1, got {value!r}",
            key="concurrency")
    return value


def check_option_names(options: Mapping[str, Any], known: Sequence[str], what: str) -> None:
    """Pure: raise ``ConfigurationError`` for the first option not in ``known``."""
    from llmbackend.errors import did_you_mean

    for name in options:
        if name not in known:
            raise ConfigurationError(
                message=f"unknown batch option {name!r} for {what}."
                f"{did_you_mean(str(name), known)} Options: {', '.join(known)}.",
                key=str(name),
            )


def check_custom_ids(custom_ids: object, count: int, pattern: Any, rule: str = ""
                     ) -> tuple[str, ...]:
    """Pure: ``custom_ids`` as a tuple, after checking there is one unique id per input, each a
    non-empty string matching ``pattern`` (a compiled regex, or ``None`` for any string);
    ``rule`` says the pattern in words. Raises ``ConfigurationError`` naming the first offender.
    """
    if isinstance(custom_ids, str | bytes) or not isinstance(custom_ids, Iterable):
        raise ConfigurationError(message="batch option 'custom_ids' must be a list of strings, "
                                 "one per input", key="custom_ids")
    ids = tuple(custom_ids)
    if len(ids) != count:
        raise ConfigurationError(
            message=f"batch option 'custom_ids' has {len(ids)} ids for {count} inputs; give "
            "exactly one per input, in input order", key="custom_ids")
    seen: dict[str, int] = {}
    for index, custom_id in enumerate(ids):
        if not isinstance(custom_id, str) or not custom_id or (
            pattern is not None and not pattern.fullmatch(custom_id)
        ):
            raise ConfigurationError(
                message=f"custom id #{index} {custom_id!r} is not valid: use "
                f"{rule or 'a non-empty string'}", key="custom_ids")
        first = seen.setdefault(custom_id, index)
        if first != index:
            raise ConfigurationError(
                message=f"custom id {custom_id!r} is used twice (inputs #{first} and #{index}); "
                "custom ids must be unique, since results are matched to inputs by them",
                key="custom_ids")
    return ids


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Pure: a sort key that orders ``request-2`` before ``request-10``."""
    import re

    # isdecimal, not isdigit: "²" is a digit that int() cannot read.
    return tuple((0, int(part)) if part.isdecimal() else (1, part)
                 for part in re.split(r"(\d+)", text) if part)


def reorder(items: Sequence[T], have: Sequence[str], want: Sequence[str]) -> list[T]:
    """Pure: ``items`` (one per id of ``have``) in the order of ``want``. Raises
    ``ConfigurationError`` unless ``want`` names exactly the same ids."""
    if sorted(have) != sorted(want):
        missing = sorted(set(have) - set(want))[:3]
        extra = sorted(set(want) - set(have))[:3]
        raise ConfigurationError(
            message="custom_ids must name exactly the batch's items"
            + (f"; missing {missing}" if missing else "")
            + (f"; not in the batch {extra}" if extra else ""),
            key="custom_ids")
    position = {custom_id: index for index, custom_id in enumerate(have)}
    return [items[position[custom_id]] for custom_id in want]
