"""When to try again: the retry schedule, its jitter, and ``Retry-After``.

Jitter spreads retries of a burst that failed together (a destination's
outage) so they do not all come back in the same second.
"""

from __future__ import annotations

import email.utils
import logging
import random
from collections.abc import Sequence

__all__ = ("jittered", "next_delay", "parse_retry_after")

log = logging.getLogger(__name__)


def jittered(delay: float, jitter: float, rng: random.Random | None = None) -> float:
    """``delay`` moved by up to +-``jitter`` (a fraction), never negative."""
    if jitter <= 0 or delay <= 0:
        return max(0.0, delay)
    r = (rng or random).uniform(-jitter, jitter)
    return max(0.0, delay * (1.0 + r))


def next_delay(
    attempts_done: int,
    schedule: Sequence[float],
    jitter: float,
    *,
    retry_after: float | None = None,
    max_retry_after: float = 3600.0,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt after ``attempts_done`` attempts; None: no more.

    ``schedule[i]`` is the wait after attempt ``i + 1``.  A ``Retry-After`` is
    honoured (never retry earlier than asked) but clamped to
    ``max_retry_after``, so one destination cannot park a delivery for days.
    """
    if attempts_done < 1 or attempts_done > len(schedule):
        return None
    delay = jittered(schedule[attempts_done - 1], jitter, rng)
    if retry_after is not None:
        delay = max(delay, min(max(0.0, retry_after), max_retry_after))
    return delay


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        log.debug("unparseable Retry-After %r", value)
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return max(0.0, when.timestamp() - now)
