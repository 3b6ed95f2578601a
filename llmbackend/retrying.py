"""Pure: the retry policy. Given what happened, how long to wait before trying again, or not at all.

Strategy: the transport owns the clock, the randomness and the sleeping; this module only decides,
so every rule here is a plain function of its arguments and is property-tested.

Rules (the same for every remote provider):
- retry connection errors and timeouts, and the statuses 408, 409, 429 and 5xx; never another 4xx;
- a ``x-should-retry: false`` header from the provider vetoes a retry (``true`` does not make a
  4xx worth retrying: a request the provider rejected fails the same way again);
- ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date) is honoured, capped;
- otherwise exponential backoff from ``initial_delay``, capped at ``max_delay``, minus up to
  ``jitter`` of it at random so that many clients do not retry in lockstep.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from attrs import field, frozen, validators

__all__ = [
    "RetryPolicy",
    "is_retryable_status",
    "parse_retry_after",
    "retry_after_seconds",
    "retry_delay",
]


def is_retryable_status(status: int) -> bool:
    """Pure: whether an HTTP status is worth retrying (408, 409, 429, 5xx)."""
    return status in (408, 409, 429) or 500 <= status <= 599


@frozen(kw_only=True)
class RetryPolicy:
    """How many times and how patiently to retry. Defaults follow the vendors' own SDKs."""

    max_retries: int = field(default=2, validator=[validators.instance_of(int), validators.ge(0)])
    initial_delay: float = field(default=0.5, validator=validators.ge(0.0))
    max_delay: float = field(default=8.0, validator=validators.ge(0.0))
    retry_after_cap: float = field(default=60.0, validator=validators.ge(0.0))
    jitter: float = field(default=0.25, validator=[validators.ge(0.0), validators.le(1.0)])


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Pure: seconds to wait as the server asked, from ``retry-after-ms`` or ``retry-after``.

    ``headers`` has lower-case names; ``now`` is the current Unix time (for the HTTP-date form).
    Returns ``None`` when there is no usable value.
    """
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        seconds = _finite_float(milliseconds)
        if seconds is not None:
            return max(seconds / 1000.0, 0.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite_float(value)
    if seconds is not None:
        return max(seconds, 0.0)
    from email.utils import parsedate_to_datetime  # rare form; imported here to keep import fast

    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(when.timestamp() - now, 0.0)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Pure: the wait the server asked for when it gave it in (milli)seconds, without a clock
    (so the HTTP-date form, rare, is left out): for errors built by the pure parsers."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None and (seconds := _finite_float(milliseconds)) is not None:
        return max(seconds / 1000.0, 0.0)
    value = headers.get("retry-after")
    seconds = _finite_float(value) if value is not None else None
    return max(seconds, 0.0) if seconds is not None else None


def _finite_float(text: str) -> float | None:
    try:
        number = float(text.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def retry_delay(
    policy: RetryPolicy,
    attempt: int,
    *,
    status: int | None,
    headers: Mapping[str, str],
    now: float,
    random_unit: float,
) -> float | None:
    """Pure: seconds to wait before the next attempt, or ``None`` to stop.

    ``attempt`` counts the attempts made so far (1 after the first). ``status`` is the HTTP status
    received, or ``None`` when the attempt failed without a response (connection error, timeout).
    ``random_unit`` is a number in [0, 1) supplied by the caller, for the jitter.
    """
    if attempt > policy.max_retries:
        return None
    if status is not None:
        if not is_retryable_status(status):
            return None
        if headers.get("x-should-retry", "").strip().lower() == "false":
            return None
        asked = parse_retry_after(headers, now)
        if asked is not None:
            return min(asked, policy.retry_after_cap)
    # The exponent is capped so that a huge max_retries cannot overflow the float.
    backoff = min(policy.initial_delay * 2.0 ** min(attempt - 1, 64), policy.max_delay)
    return backoff * (1.0 - policy.jitter * min(max(random_unit, 0.0), 1.0))
