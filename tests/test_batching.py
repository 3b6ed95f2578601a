"""Provider-agnostic batch bookkeeping: statuses, splitting, and matching results to inputs."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from llmbackend.batching import (
    STATUS_ALIASES,
    BatchCounts,
    BatchStatus,
    OutcomeCollector,
    combine_statuses,
    describe_failures,
    encoded_items,
    item_failures,
    split_lines,
)
from llmbackend.errors import ConfigurationError, LLMError, ProviderError, UnsupportedError

OPENAI_STATUSES = ["validating", "failed", "in_progress", "finalizing", "completed", "expired",
                   "cancelling", "cancelled"]
GEMINI_STATES = [f"{prefix}_{state}" for prefix in ("BATCH_STATE", "JOB_STATE")
                 for state in ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED",
                               "EXPIRED")]
ANTHROPIC_STATUSES = ["in_progress", "canceling", "ended"]


def seed_openai_loop(status: BatchStatus) -> str:
    """The seed README's OpenAI polling loop, one turn: what it does with this status."""
    if status in ("completed", "succeeded", "SUCCEEDED", "COMPLETED"):
        return "done"
    if status in ("failed", "expired", "canceled"):
        return "raise"
    return "sleep"


# --- statuses -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "turn"), [
    ("validating", "sleep"), ("in_progress", "sleep"), ("finalizing", "sleep"),
    ("cancelling", "sleep"), ("completed", "done"), ("failed", "raise"), ("expired", "raise"),
    ("cancelled", "raise"),
])
def test_the_seed_polling_loop_ends_correctly_for_every_openai_status(raw: str, turn: str) -> None:
    assert seed_openai_loop(BatchStatus(raw)) == turn


@pytest.mark.parametrize("raw", OPENAI_STATUSES + GEMINI_STATES + ANTHROPIC_STATUSES)
def test_a_status_equals_its_raw_name_in_any_case(raw: str) -> None:
    status = BatchStatus(raw)
    assert status == raw
    assert status == raw.upper()
    assert status == raw.lower()
    assert not status != raw  # noqa: SIM202 -- __ne__ is what is being tested
    assert status.raw == raw
    assert status.value in STATUS_ALIASES


@pytest.mark.parametrize(("raw", "value", "spellings"), [
    ("completed", "completed", ["SUCCEEDED", "succeeded", "COMPLETED", "Completed"]),
    ("cancelled", "cancelled", ["canceled", "CANCELLED", "CANCELED"]),
    ("BATCH_STATE_SUCCEEDED", "completed", ["SUCCEEDED", "completed", "JOB_STATE_SUCCEEDED"]),
    ("JOB_STATE_CANCELLED", "cancelled", ["CANCELLED", "canceled"]),
    ("ended", "completed", ["completed", "ENDED"]),
    ("finalizing", "running", ["running", "in_progress", "FINALIZING"]),
    ("canceling", "cancelling", ["cancelling", "CANCELING"]),
    ("validating", "pending", ["pending", "VALIDATING"]),
])
def test_usual_spellings_compare_equal(raw: str, value: str, spellings: list[str]) -> None:
    status = BatchStatus(raw)
    assert status.value == value
    assert str(status) == value
    for spelling in spellings:
        assert status == spelling, spelling


@pytest.mark.parametrize("raw", OPENAI_STATUSES + GEMINI_STATES + ANTHROPIC_STATUSES)
def test_states_do_not_compare_equal_across(raw: str) -> None:
    status = BatchStatus(raw)
    for state, aliases in STATUS_ALIASES.items():
        if state == status.value:
            continue
        for alias in aliases - {status.raw.lower()}:
            assert status != alias, (raw, alias)


def test_terminal_and_success() -> None:
    assert [s for s in OPENAI_STATUSES if BatchStatus(s).is_terminal] == [
        "failed", "completed", "expired", "cancelled"]
    assert BatchStatus("SUCCEEDED").is_success
    assert not BatchStatus("expired").is_success


def test_an_unknown_status_is_kept_and_is_not_terminal() -> None:
    status = BatchStatus("Paused")
    assert status == "paused"
    assert status.value == "paused"
    assert not status.is_terminal


def test_status_values_pickle_hash_and_compare_among_themselves() -> None:
    status = BatchStatus("SUCCEEDED")
    assert pickle.loads(pickle.dumps(status)) == status
    assert pickle.loads(pickle.dumps(status)).raw == "SUCCEEDED"
    assert hash(status) == hash("completed")
    assert status == BatchStatus("ended")
    assert status != BatchStatus("failed")
    assert status != 3
    assert repr(status) == "BatchStatus('completed', raw='SUCCEEDED')"


@pytest.mark.parametrize(("parts", "combined"), [
    (["completed", "completed"], "completed"),
    (["completed", "in_progress"], "running"),
    (["validating", "finalizing"], "pending"),
    (["completed", "cancelling"], "cancelling"),
    (["completed", "expired"], "expired"),
    (["cancelled", "expired"], "cancelled"),
    (["expired", "failed", "completed"], "failed"),
])
def test_the_parts_of_a_split_batch_combine(parts: list[str], combined: str) -> None:
    assert combine_statuses([BatchStatus(p) for p in parts]).value == combined


def test_counts_add_up() -> None:
    total = BatchCounts(total=3, completed=1, failed=1) + BatchCounts(total=2, completed=2)
    assert total == BatchCounts(total=5, completed=3, failed=1)
    assert total.pending == 1


# --- splitting ------------------------------------------------------------------------------------

line_lists = st.lists(st.binary(min_size=1, max_size=40).map(lambda b: b + b"\n"), max_size=60)


@given(line_lists, st.integers(1, 10), st.integers(41, 200))
def test_split_keeps_order_and_every_part_within_both_limits(
    lines: list[bytes], max_count: int, max_bytes: int
) -> None:
    numbered = list(split_lines(lines, max_count=max_count, max_bytes=max_bytes))
    assert [line for _, line in numbered] == lines
    parts: dict[int, list[bytes]] = {}
    for part, line in numbered:
        parts.setdefault(part, []).append(line)
    assert list(parts) == list(range(len(parts)))  # numbered from 0, consecutive, in order
    for part, members in parts.items():
        assert len(members) <= max_count
        assert sum(map(len, members)) <= max_bytes
        if part + 1 in parts:  # greedy: the next part's first line did not fit in this one
            first = parts[part + 1][0]
            assert len(members) == max_count or sum(map(len, members)) + len(first) > max_bytes


def test_split_boundaries_by_count_and_by_bytes() -> None:
    by_count = [part for part, _ in split_lines([b"x\n"] * 7, max_count=3, max_bytes=100)]
    assert by_count == [0, 0, 0, 1, 1, 1, 2]
    by_bytes = [part for part, _ in split_lines([b"12345\n"] * 5, max_count=100, max_bytes=12)]
    assert by_bytes == [0, 0, 1, 1, 2]
    exact = [part for part, _ in split_lines([b"12345\n"] * 4, max_count=2, max_bytes=12)]
    assert exact == [0, 0, 1, 1]


def test_split_is_lazy_and_refuses_a_line_larger_than_a_file() -> None:
    lines = split_lines(iter([b"ok\n", b"x" * 50]), max_count=5, max_bytes=10)
    assert next(lines) == (0, b"ok\n")
    with pytest.raises(ConfigurationError, match="input #1 takes 50 bytes"):
        next(lines)


# --- matching -------------------------------------------------------------------------------------


def _missing(index: int, custom_id: str) -> LLMError:
    return ProviderError(message=f"missing {index} {custom_id}", error_code="missing")


@given(st.lists(st.text(min_size=1, max_size=8), unique=True, max_size=30), st.randoms(),
       st.data())
def test_any_order_of_result_lines_gives_input_order(
    custom_ids: list[str], random: object, data: st.DataObject
) -> None:
    present = data.draw(st.lists(st.sampled_from(custom_ids), unique=True)
                        if custom_ids else st.just([]))
    lines = [(cid, Success(f"answer to {cid}")) for cid in present]
    random.shuffle(lines)  # type: ignore[attr-defined]
    collector: OutcomeCollector[str] = OutcomeCollector(custom_ids)
    for cid, outcome in lines:
        collector.add(cid, outcome, "openai")
    outcomes = collector.finish(_missing)
    assert len(outcomes) == len(custom_ids)
    for index, (cid, outcome) in enumerate(zip(custom_ids, outcomes, strict=True)):
        if cid in present:
            assert outcome == Success(f"answer to {cid}")
        else:
            assert outcome == Failure(_missing(index, cid))


def test_duplicate_unknown_and_unreadable_lines_are_never_assigned() -> None:
    collector: OutcomeCollector[str] = OutcomeCollector(["a", "b", "c"])
    collector.add("a", Success("first"), "openai")
    collector.add("a", Success("second"), "openai")
    collector.add("zzz", Success("stray"), "openai")
    collector.add(None, Success("unreadable"), "openai")
    collector.add("b", Success("b!"), "openai")
    outcomes = collector.finish(_missing)
    assert isinstance(outcomes[0], Failure)
    assert outcomes[0].failure().error_code == "duplicate_result"  # type: ignore[attr-defined]
    assert "2 results for custom id 'a'" in str(outcomes[0].failure())
    assert outcomes[1] == Success("b!")
    assert outcomes[2] == Failure(_missing(2, "c"))
    assert collector.unknown_ids == ["zzz"]
    assert collector.unreadable_lines == 1


def test_collector_refuses_repeated_input_ids() -> None:
    with pytest.raises(ValueError, match="unique"):
        OutcomeCollector(["a", "a"])


def test_failures_are_named_in_input_order() -> None:
    outcomes: list[Result[str, LLMError]] = [
        Success("ok"), Failure(ProviderError(message="boom")), Success("ok"),
        Failure(ProviderError(message="bang"))]
    failures = item_failures(outcomes, ["a", "b", "c", "d"])
    assert [(f.index, f.custom_id, str(f.error)) for f in failures] == [
        (1, "b", "boom"), (3, "d", "bang")]
    text = describe_failures(failures, 4, limit=1)
    assert text == "2 of 4 items failed: #1 'b' (ProviderError: boom); and 1 more"


# --- encoded_items: the one convention for a refused batch item ---------------------------------


def test_encoded_items_are_lazy_and_in_order_until_the_first_refused_item() -> None:
    seen: list[str] = []

    def encode(custom_id: str, item: str) -> Result[bytes, LLMError]:
        seen.append(custom_id)
        if item.startswith("bad"):
            return Failure(UnsupportedError(message="no prefill here", provider="p",
                                            parameter="input"))
        return Success(f"{custom_id}={item}".encode())

    items = encoded_items(encode, ["a", "b", "c", "d"], ["one", "two", "bad", "never"])
    assert seen == []  # nothing is encoded before it is asked for
    assert [next(items), next(items)] == [b"a=one", b"b=two"]
    with pytest.raises(UnsupportedError) as raised:
        next(items)
    assert raised.value.message == "input #2 (custom id 'c'): no prefill here"
    assert raised.value.parameter == "input" and raised.value.provider == "p"
    assert seen == ["a", "b", "c"]  # it stopped at the refused item
    with pytest.raises(ValueError, match=r"shorter|longer"):
        list(encoded_items(encode, ["a"], ["one", "two"]))
