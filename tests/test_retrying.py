"""Properties of the pure retry policy."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmbackend.retrying import RetryPolicy, is_retryable_status, parse_retry_after, retry_delay

policies = st.builds(
    RetryPolicy,
    max_retries=st.integers(0, 10),
    initial_delay=st.floats(0, 5),
    max_delay=st.floats(0, 30),
    retry_after_cap=st.floats(0, 120),
    jitter=st.floats(0, 1),
)
units = st.floats(0, 1, exclude_max=True)
NOW = 1_760_000_000.0


@given(st.integers(100, 599))
def test_retryable_statuses_are_exactly_408_409_429_and_5xx(status: int) -> None:
    assert is_retryable_status(status) == (status in (408, 409, 429) or status >= 500)


@given(policies, st.integers(1, 20), st.integers(400, 499).filter(
    lambda s: s not in (408, 409, 429)), units)
def test_other_4xx_is_never_retried(policy: RetryPolicy, attempt: int, status: int,
                                    unit: float) -> None:
    assert retry_delay(policy, attempt, status=status, headers={"retry-after": "1"}, now=NOW,
                       random_unit=unit) is None


@given(policies, st.integers(1, 30), st.none() | st.sampled_from([408, 409, 429, 500, 502, 503,
                                                                  529]), units)
def test_attempts_are_bounded_and_delays_within_caps(policy: RetryPolicy, attempt: int,
                                                     status: int | None, unit: float) -> None:
    delay = retry_delay(policy, attempt, status=status, headers={}, now=NOW, random_unit=unit)
    if attempt > policy.max_retries:
        assert delay is None
    else:
        assert delay is not None
        assert 0.0 <= delay <= policy.max_delay


@given(policies.filter(lambda p: p.max_retries >= 1), st.floats(0, 10_000), units)
def test_retry_after_seconds_is_honoured_up_to_the_cap(policy: RetryPolicy, seconds: float,
                                                       unit: float) -> None:
    delay = retry_delay(policy, 1, status=429, headers={"retry-after": repr(seconds)}, now=NOW,
                        random_unit=unit)
    assert delay == pytest.approx(min(seconds, policy.retry_after_cap))


@given(st.integers(0, 3600))
def test_retry_after_http_date(seconds: int) -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + seconds, tz=UTC), usegmt=True)
    assert parse_retry_after({"retry-after": when}, NOW) == pytest.approx(seconds, abs=1)


def test_retry_after_ms_wins_and_junk_is_ignored() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}, NOW) == 0.25
    assert parse_retry_after({"retry-after": "soon"}, NOW) is None
    assert parse_retry_after({"retry-after": "nan"}, NOW) is None
    assert parse_retry_after({"retry-after": "-5"}, NOW) == 0.0
    assert parse_retry_after({}, NOW) is None


def test_backoff_grows_exponentially_without_jitter() -> None:
    policy = RetryPolicy(max_retries=6, initial_delay=0.5, max_delay=4.0, jitter=0.0)
    delays = [retry_delay(policy, n, status=503, headers={}, now=NOW, random_unit=0.5)
              for n in range(1, 7)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_provider_veto_stops_retries() -> None:
    assert retry_delay(RetryPolicy(), 1, status=500, headers={"x-should-retry": "false"}, now=NOW,
                       random_unit=0.0) is None


def test_huge_retry_budget_does_not_overflow() -> None:
    policy = RetryPolicy(max_retries=10**9)
    assert retry_delay(policy, 5000, status=None, headers={}, now=NOW,
                       random_unit=0.0) == policy.max_delay


def test_policy_rejects_nonsense() -> None:
    with pytest.raises((ValueError, TypeError)):
        RetryPolicy(max_retries=-1)
    with pytest.raises((ValueError, TypeError)):
        RetryPolicy(jitter=2.0)
