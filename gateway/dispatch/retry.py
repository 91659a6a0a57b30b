"""The retry policy, whole: the default schedule and jitter, how many attempts a
delivery gets, ``Retry-After``, and a delivery's next state after an attempt.

Nothing else knows a retry default: the ``[delivery]`` settings take theirs
from here, and a rule's overrides fall back to those settings here, so a
newcomer changes the schedule in one place.  Jitter spreads the retries of a
burst that failed together (a destination's outage) so they do not all come
back in the same second.  The next-state rule is a pure function, testable
without sockets, stores or clocks.
"""

from __future__ import annotations

import email.utils
import logging
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

import msgspec

from gateway.store.base import Attempt, Delivery, DeliveryStatus
from gateway.verdict import Verdict

if TYPE_CHECKING:  # settings take their defaults from here: no import at run time
    from gateway.dispatch.settings import DeliverySettings
    from gateway.dispatch.transport.base import Answer

__all__ = (
    "MAX_RETRY_AFTER",
    "RETRY_JITTER",
    "RETRY_MAX_ATTEMPTS",
    "RETRY_SCHEDULE",
    "STORE_ERROR_DELAY",
    "Decision",
    "after_attempt",
    "dry_run",
    "expired",
    "jittered",
    "limits",
    "next_delay",
    "parse_retry_after",
    "rule_retry",
)

log = logging.getLogger(__name__)

#: Waits after the first attempt (seconds), each moved by up to +-``RETRY_JITTER``.
RETRY_SCHEDULE: Final = (10.0, 60.0, 300.0, 1800.0, 7200.0, 21600.0, 43200.0, 86400.0)
RETRY_JITTER: Final = 0.2
#: Attempts in all, the first included: one per wait of the schedule, plus the first.
RETRY_MAX_ATTEMPTS: Final = 1 + len(RETRY_SCHEDULE)
#: ``Retry-After`` is honoured up to this (seconds), so a destination cannot park
#: a delivery for days.
MAX_RETRY_AFTER: Final = 3600.0
#: When recording an attempt fails (store trouble), try the delivery again after this.
STORE_ERROR_DELAY: Final = 5.0


class Decision(msgspec.Struct, frozen=True, gc=False):  # never in a cycle: untracked
    """A delivery's next state, and the attempt as it goes to the log."""

    status: DeliveryStatus
    next_at: float | None
    attempt: Attempt  # as it goes to the log (reason completed)
    #: the Metrics counter to bump: delivered | failed | retries | expired | dry_run
    counter: str


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
    max_retry_after: float = MAX_RETRY_AFTER,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt after ``attempts_done`` attempts; None: no more.

    ``schedule[i]`` is the wait after attempt ``i + 1``.  A ``Retry-After`` is
    honoured (never retry earlier than asked) but clamped to ``max_retry_after``.
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


def limits(
    max_attempts: int | None, schedule: list[float] | None, settings: DeliverySettings
) -> tuple[int, list[float]]:
    """Attempts in all and the waits: the given ones, else the settings' (the one fallback)."""
    return (
        max_attempts if max_attempts is not None and max_attempts > 0 else settings.max_attempts,
        schedule if schedule is not None else settings.schedule,
    )


def rule_retry(
    rule_max_attempts: int | None, rule_schedule: list[float] | None, settings: DeliverySettings
) -> tuple[int, list[float]]:
    """What a rule's deliveries are created with: its overrides, else the settings'.

    An empty schedule in a rule means "not set" (as a missing one does).
    """
    return limits(rule_max_attempts, rule_schedule or None, settings)


def after_attempt(
    d: Delivery,
    attempt: Attempt,
    verdict: Verdict,
    answer: Answer | None,
    settings: DeliverySettings,
    now: Callable[[], float],
    rng: random.Random | None = None,
) -> Decision:
    """The delivery's next state after ``attempt`` (its ``attempts`` not yet counted).

    Delivered comes first and touches nothing else (the usual case, per
    attempt); ``answer`` (for its ``Retry-After``) and ``now`` are read only
    when a retry is planned.
    """
    outcome = verdict.outcome
    if outcome == "delivered":
        return Decision("delivered", None, attempt, "delivered")
    if outcome == "rejected":
        return Decision("failed", None, attempt, "failed")
    attempts = d.attempts + 1
    max_attempts, schedule = limits(d.max_attempts, d.schedule, settings)
    delay = None
    at = now()
    if attempts < max_attempts:
        retry_after = answer.headers.get("retry-after") if answer is not None else None
        delay = next_delay(
            attempts,
            schedule,
            settings.jitter,
            retry_after=parse_retry_after(retry_after, at),
            max_retry_after=settings.max_retry_after,
            rng=rng,
        )
    if delay is None:
        gave_up = msgspec.structs.replace(
            attempt, reason=f"{attempt.reason}; gave up after {attempts} attempts"
        )
        return Decision("failed", None, gave_up, "failed")
    return Decision("queued", at + delay, attempt, "retries")


def expired(attempt: Attempt) -> Decision:
    """The state of a delivery its click outlived: final, and not an attempt spent."""
    return Decision("expired", None, attempt, "expired")


def dry_run(attempt: Attempt) -> Decision:
    """The state of a delivery in shadow mode: final, stored as rendered, never sent."""
    return Decision("dry_run", None, attempt, "dry_run")
